"""``LabelledTextDataModule``: texts grouped by label, split by document, as passages or as control-prefixed windows.

The documents of a corpus (``lit_digest.text.authors.corpus``) are split by document, stratified by label, then
tokenized (bytes, or a saved Hugging Face tokenizer) and served in one of two forms:

- ``batches="passages"`` (attribution): each document cut into passages of ``passage_len`` tokens (the last,
  shorter one kept when it has ``min_passage_len``), batched as ``{"tokens": (B, L) right-padded, "lengths": (B,),
  "label": (B,), "index": (B,)}``. The label never appears in the tokens.
- ``batches="lm"`` (conditioned generation, CTRL's recipe, Keskar et al., arXiv 1909.05858, Sec. 3: every training
  sequence starts with the control code of its domain): each label's training documents joined by ``separator``
  into one stream, cut into windows, each window preceded by the label's control prefix (``control_format``,
  ``"[computers]\\n"``), as ``CausalLM``'s ``(tokens, targets)`` pairs of ``seq_len`` tokens. With probability
  ``null_control`` a window gets the prefix of no label (``"[?]\\n"``) instead, so that the same model also
  samples unconditioned text (label dropout, as classifier-free guidance trains one model for both, Ho and
  Salimans, arXiv 2207.12598, Sec. 3.2; CTRL itself has no null code).

``predict`` asks for ``samples_per_label`` samples of every label and of no label (``label`` -1): batches of
``{"label": (B,), "sample": (B,)}`` that the generating module turns into prompts.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from lit_digest.core.lightning import LightningDataModule
from lit_digest.text.authors.corpus import (
    SPLITS,
    Document,
    check_labels,
    deduplicate,
    read_dictionaries,
    read_folder,
    read_fortune_topics,
    read_table,
    split_documents,
)
from lit_digest.text.data import FORTUNES_DIR, load_tokenizer

__all__ = ["LabelledTextDataModule", "Passage", "cut_passages", "collate_passages", "ControlWindows", "chance_macro_f1",
           "NULL_LABEL"]

NULL_LABEL = "?"


class Passage:
    """Tokens of one passage, its label's index, its document's index in the split, and its text."""

    __slots__ = ("ids", "label", "document", "text")

    def __init__(self, ids: list[int], label: int, document: int, text: str) -> None:
        self.ids, self.label, self.document, self.text = ids, label, document, text


def cut_passages(ids: Sequence[int], length: int, min_length: int) -> list[list[int]]:
    """Non-overlapping passages of ``length`` tokens; the last, shorter one kept if it has ``min_length`` tokens
    (or if it is the whole document)."""
    chunks = [list(ids[i:i + length]) for i in range(0, len(ids), length)]
    return [c for k, c in enumerate(chunks) if len(c) >= min_length or (k == 0 and len(chunks) == 1 and c)]


def collate_passages(batch: list[tuple[Passage, int]], pad_id: int = 0) -> dict[str, Tensor]:
    """Right-padded ``(B, L)`` tokens with their ``lengths``, ``label`` and ``index`` (in the split's passages)."""
    length = max(len(p.ids) for p, _ in batch)
    tokens = torch.full((len(batch), length), pad_id, dtype=torch.long)
    for row, (passage, _) in enumerate(batch):
        tokens[row, :len(passage.ids)] = torch.tensor(passage.ids)
    return {"tokens": tokens, "lengths": torch.tensor([len(p.ids) for p, _ in batch]),
            "label": torch.tensor([p.label for p, _ in batch]), "index": torch.tensor([i for _, i in batch])}


class _Indexed(Dataset):
    def __init__(self, passages: list[Passage]) -> None:
        self.passages = passages

    def __len__(self) -> int:
        return len(self.passages)

    def __getitem__(self, index: int) -> tuple[Passage, int]:
        return self.passages[index], index


class ControlWindows(Dataset):
    """``(tokens, targets)`` of ``seq_len`` tokens each: a control prefix then a window of one label's stream.

    Windows start every ``seq_len + 1 - longest prefix`` tokens of each stream; each takes as many stream tokens
    as its prefix leaves room for. ``null_control``: the probability that a window gets ``null_prefix`` instead
    (drawn from torch's global generator, so ``seed_everything`` fixes it)."""

    def __init__(self, streams: Sequence[Sequence[int]], prefixes: Sequence[Sequence[int]], null_prefix: Sequence[int],
                 seq_len: int, null_control: float = 0.0) -> None:
        longest = max(len(p) for p in [*prefixes, null_prefix])
        self.step = seq_len + 1 - longest
        if self.step < 1:
            raise ValueError(f"seq_len={seq_len} leaves no room after the {longest}-token control prefix")
        self.streams, self.prefixes, self.null_prefix = streams, prefixes, list(null_prefix)
        self.seq_len, self.null_control = seq_len, null_control
        self.windows = []  # (label, start)
        for label, stream in enumerate(streams):
            if len(stream) + len(prefixes[label]) < seq_len + 1:
                raise ValueError(f"label {label} has {len(stream)} tokens, too few for windows of seq_len={seq_len}; "
                                 "use a smaller data.init_args.seq_len or more text")
            starts = range(0, max(1, len(stream) - self.step + 1), self.step)
            self.windows += [(label, s) for s in starts]

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        label, start = self.windows[index]
        null = self.null_control > 0 and float(torch.rand(())) < self.null_control
        prefix = self.null_prefix if null else list(self.prefixes[label])
        need = self.seq_len + 1 - len(prefix)
        stream = self.streams[label]
        start = min(start, len(stream) - need)  # the last window ends at the stream's end
        window = torch.tensor(prefix + list(stream[start:start + need]))  # (T + 1,)
        return window[:-1], window[1:]


class LabelledTextDataModule(LightningDataModule):
    """Texts grouped by label for attribution and for conditioned generation.

    Args:
        corpus: ``"dictionaries"``: shipped with lit_digest (Bierce's *Devil's Dictionary* and the *Jargon File*,
            A to F, public domain); ``"fortunes"`` / ``"fortunes-ru"``: Debian's packages, one label a topic file
            (``apt-get install fortunes fortunes-ru``), read from ``fortunes_dir``.
        path: instead of ``corpus``: a folder ``<path>/<label>/*.txt`` or a ``.csv`` / ``.jsonl`` file.
        labels: keep these labels only (fortune files, label folders, table labels); ``None`` keeps all.
        text_column, label_column: the table's columns.
        attribution: keep a fortune's closing ``-- author`` lines (off: a name would give the label away).
        tokenizer: a saved Hugging Face tokenizer folder, or ``None`` for bytes.
        batches: ``"passages"`` (``AuthorAttribution``) or ``"lm"`` (``ControlledLM``, ``CausalLM``).
        passage_len, min_passage_len: tokens per passage, and the fewest kept.
        max_documents: per label, at most this many documents (drawn with ``split_seed``, before the split):
            balanced labels and quick runs; ``None`` keeps all.
        seq_len: tokens per ``"lm"`` sequence, control prefix included.
        control_format: the control prefix, ``{label}`` replaced by the label (the null prefix by ``?``).
        null_control: share of ``"lm"`` training windows given the null prefix.
        separator: between the documents of a label's stream (and after a prompt's prefix).
        val_fraction, test_fraction, split_seed: the split by document (stratified by label).
        samples_per_label: samples that ``predict`` asks for, for each label and for no label.
        conditioning: how ``predict`` asks for a label: ``"prefix"`` (its control prefix) or ``"in_context"``
            (``shots`` real training passages of it as the prompt).
        classifier: an ``AuthorAttribution`` checkpoint whose verdicts join the TF-IDF baseline's in the report.
        copy_words: in the report, a run of this many shared words or more counts as copied.
        real_texts: real held-out documents the report shows per label.
        report: ``"html"`` (``report.html``) or ``"markdown"`` (``report.md``).
        batch_size, num_workers: as usual.
    """

    def __init__(self, corpus: Literal["dictionaries", "fortunes", "fortunes-ru"] = "dictionaries",
                 path: str | None = None, labels: list[str] | None = None, text_column: str = "text",
                 label_column: str = "label", attribution: bool = False, tokenizer: str | None = None,
                 batches: Literal["passages", "lm"] = "passages", passage_len: int = 128, min_passage_len: int = 16,
                 max_documents: int | None = None, seq_len: int = 128, control_format: str = "[{label}]\n",
                 null_control: float = 0.1, separator: str = "\n\n", val_fraction: float = 0.1,
                 test_fraction: float = 0.2, split_seed: int = 0, samples_per_label: int = 4,
                 conditioning: Literal["prefix", "in_context"] = "prefix", shots: int = 2,
                 classifier: str | None = None, copy_words: int = 8, real_texts: int = 3,
                 report: Literal["html", "markdown"] = "html", batch_size: int = 32, num_workers: int = 0,
                 fortunes_dir: str = str(FORTUNES_DIR)) -> None:
        super().__init__()
        if corpus not in ("dictionaries", "fortunes", "fortunes-ru"):
            raise ValueError(f"corpus must be 'dictionaries', 'fortunes' or 'fortunes-ru', got {corpus!r}; a folder "
                             "or a .csv/.jsonl goes in data.init_args.path")
        if batches not in ("passages", "lm"):
            raise ValueError(f"batches must be 'passages' or 'lm', got {batches!r}")
        if not 1 <= min_passage_len <= passage_len or seq_len < 2 or batch_size < 1 or samples_per_label < 0:
            raise ValueError(f"need 1 <= min_passage_len <= passage_len, seq_len >= 2, batch_size >= 1 and "
                             f"samples_per_label >= 0, got {min_passage_len}, {passage_len}, {seq_len}, {batch_size}, "
                             f"{samples_per_label}")
        if "{label}" not in control_format:
            raise ValueError(f"control_format must contain {{label}}, got {control_format!r}")
        if conditioning not in ("prefix", "in_context") or report not in ("html", "markdown"):
            raise ValueError(f"conditioning must be 'prefix' or 'in_context' and report 'html' or 'markdown', got "
                             f"{conditioning!r}, {report!r}")
        if shots < 1 or copy_words < 1 or real_texts < 0:
            raise ValueError(f"shots and copy_words must be >= 1 and real_texts >= 0, got {shots}, {copy_words}, "
                             f"{real_texts}")
        if not 0.0 <= null_control < 1.0:
            raise ValueError(f"null_control must be in [0, 1), got {null_control}")
        self.corpus, self.path, self.keep_labels = corpus, path, labels
        self.text_column, self.label_column, self.attribution = text_column, label_column, attribution
        self.batches, self.passage_len, self.min_passage_len = batches, passage_len, min_passage_len
        self.max_documents, self.seq_len, self.control_format = max_documents, seq_len, control_format
        self.null_control, self.separator = null_control, separator
        self.val_fraction, self.test_fraction, self.split_seed = val_fraction, test_fraction, split_seed
        self.samples_per_label, self.batch_size, self.num_workers = samples_per_label, batch_size, num_workers
        self.fortunes_dir = fortunes_dir
        self.conditioning, self.shots, self.classifier = conditioning, shots, classifier
        self.copy_words, self.real_texts, self.report = copy_words, real_texts, report
        self.tokenizer = load_tokenizer(tokenizer)
        self.labels: list[str] = []
        self.documents: dict[str, list[Document]] = {}
        self.passages: dict[str, list[Passage]] = {}
        self.bytes_per_token = 1.0

    # -- reading --------------------------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    @property
    def num_labels(self) -> int:
        self.setup()
        return len(self.labels)

    def read(self) -> tuple[list[Document], str]:
        """Every document of the source, and the source's name for messages."""
        if self.path is not None:
            where = str(Path(self.path).expanduser())
            docs = read_folder(self.path) if Path(where).is_dir() else read_table(self.path, self.text_column,
                                                                                  self.label_column)
            return docs, where
        if self.corpus == "dictionaries":
            return read_dictionaries(), "the shipped dictionaries"
        folder = Path(self.fortunes_dir) / ("ru" if self.corpus == "fortunes-ru" else "")
        return read_fortune_topics(folder, self.keep_labels, self.attribution), str(folder)

    def control_prefix(self, label: int) -> str:
        """The control prefix of label number ``label`` (-1: the null prefix)."""
        return self.control_format.format(label=NULL_LABEL if label < 0 else self.labels[label])

    def setup(self, stage: str | None = None) -> None:
        if self.documents:
            return
        docs, where = self.read()
        if self.keep_labels is not None:
            unknown = sorted(set(self.keep_labels) - {d.label for d in docs})
            if unknown:
                raise ValueError(f"{where} has no label {unknown}; its labels are {sorted({d.label for d in docs})}")
            docs = [d for d in docs if d.label in self.keep_labels]
        docs = deduplicate(docs)
        self.labels = check_labels(docs, where)
        if NULL_LABEL in self.labels:
            raise ValueError(f"{where}: the label {NULL_LABEL!r} is the null control code; rename it")
        if self.max_documents is not None:
            docs = _first_per_label(docs, self.max_documents, self.split_seed)
        split = split_documents(docs, self.val_fraction, self.test_fraction, self.split_seed)
        self.documents = split
        index = {label: i for i, label in enumerate(self.labels)}
        text_bytes, tokens = 0, 0
        for name in SPLITS:
            self.passages[name] = []
            for number, doc in enumerate(split[name]):
                ids = self.tokenizer.encode(doc.text)
                text_bytes, tokens = text_bytes + len(doc.text.encode("utf-8")), tokens + len(ids)
                for chunk in cut_passages(ids, self.passage_len, self.min_passage_len):
                    self.passages[name].append(Passage(chunk, index[doc.label], number, self.tokenizer.decode(chunk)))
            if not self.passages[name]:
                raise ValueError(f"{where}: no {name} passage of {self.min_passage_len} tokens or more; lower "
                                 "data.init_args.min_passage_len or add texts")
        self.bytes_per_token = text_bytes / max(1, tokens)

    # -- loaders --------------------------------------------------------------------------------------------------
    def _windows(self, name: str, null_control: float) -> ControlWindows:
        sep = self.tokenizer.encode(self.separator)
        streams = [[] for _ in self.labels]
        index = {label: i for i, label in enumerate(self.labels)}
        for doc in self.documents[name]:
            streams[index[doc.label]] += sep + self.tokenizer.encode(doc.text)
        prefixes = [self.tokenizer.encode(self.control_prefix(i)) for i in range(len(self.labels))]
        return ControlWindows(streams, prefixes, self.tokenizer.encode(self.control_prefix(-1)), self.seq_len,
                              null_control)

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        assert self.passages, "call setup() first"
        if self.batches == "lm":
            windows = self._windows(name, self.null_control if name == "train" else 0.0)
            return DataLoader(windows, batch_size=self.batch_size, shuffle=shuffle, drop_last=shuffle and
                              len(windows) > self.batch_size, num_workers=self.num_workers)
        return DataLoader(_Indexed(self.passages[name]), batch_size=self.batch_size, shuffle=shuffle,
                          collate_fn=collate_passages, num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """``"passages"``: the test passages. ``"lm"``: ``samples_per_label`` requests for each label and for none
        (label -1), as ``{"label", "sample"}`` batches."""
        if self.batches == "passages":
            return self._loader("test", shuffle=False)
        asks = [(label, k) for label in [*range(len(self.labels)), -1] for k in range(self.samples_per_label)]
        return DataLoader(asks, batch_size=self.batch_size, collate_fn=lambda b: {
            "label": torch.tensor([a for a, _ in b]), "sample": torch.tensor([k for _, k in b])})

    @property
    def prompts(self) -> list[str]:
        """``CausalLM``'s samples during training: the first label's control prefix."""
        self.setup()
        return [self.control_prefix(0) + self.separator]

    def label_share(self) -> dict[str, float]:
        """Each label's share of the test passages."""
        counts = torch.bincount(torch.tensor([p.label for p in self.passages["test"]]), minlength=len(self.labels))
        return {label: float(c) / max(1, int(counts.sum())) for label, c in zip(self.labels, counts)}


def _first_per_label(docs: list[Document], most: int, seed: int) -> list[Document]:
    """At most ``most`` documents of each label, drawn with ``seed``, in their original order."""
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    kept: dict[str, int] = {}
    chosen = []
    for i in order:
        doc = docs[i]
        if kept.get(doc.label, 0) < most:
            kept[doc.label] = kept.get(doc.label, 0) + 1
            chosen.append(i)
    return [docs[i] for i in sorted(chosen)]


def chance_macro_f1(shares: Sequence[float]) -> float:
    """Expected macro-F1 of guessing labels uniformly at random when the true labels have ``shares``: class c gets
    precision ``p_c`` and recall ``1/K``, so F1 ``2 p_c / (1 + K p_c)``."""
    k = len(shares)
    return sum(2 * p / (1 + k * p) for p in shares) / k if k else math.nan
