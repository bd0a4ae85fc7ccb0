"""Text for causal language models: tokenizers, packed fixed-length sequences, DataModules, a unigram baseline.

- ``ByteTokenizer`` (the 256 byte values: nothing to download) or ``HFTokenizer`` (any Hugging Face tokenizer
  saved in a local folder, e.g. GPT-J's own);
- ``TextDataModule``: text files, joined with a separator, the last ``val_fraction`` held out, each split
  tokenized once and cut into non-overlapping windows of ``seq_len + 1`` tokens (packing: no padding, documents
  run into each other as in GPT-J's training data);
- ``CorpusDataModule``: an offline corpus, the Jargon File excerpt shipped in ``lit_digest/text/corpus/``
  (public domain; see its README) or Debian's ``fortunes`` / ``fortunes-ru`` when installed.

Batches are ``(tokens, targets)``, ``(B, T)`` int64 each, ``targets`` shifted by one. ``bytes_per_token`` (UTF-8
bytes of the validation text over its tokens) turns nats per token into bits per byte, a unit that does not
depend on the tokenizer.
"""

from __future__ import annotations

import gzip
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from lit_digest.core.download import missing_data_error
from lit_digest.core.lightning import LightningDataModule

__all__ = ["ByteTokenizer", "HFTokenizer", "load_tokenizer", "PackedWindows", "TextDataModule", "CorpusDataModule",
           "bits_per_byte",
           "JARGON_PATH", "FORTUNES_DIR", "read_fortunes", "split_text", "unigram_bits_per_byte"]

JARGON_PATH = Path(__file__).parent / "corpus" / "jargon.txt.gz"
FORTUNES_DIR = Path("/usr/share/games/fortunes")


class ByteTokenizer:
    """UTF-8 bytes as tokens: vocabulary 256, one token per byte, no special tokens."""

    vocab_size = 256
    eos_token_id: int | None = None

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(i for i in ids if 0 <= i < 256).decode("utf-8", errors="replace")


class HFTokenizer:
    """A Hugging Face tokenizer read from a local folder (``save_pretrained``'s ``tokenizer.json`` & co.); never
    downloads."""

    def __init__(self, path: str | os.PathLike) -> None:
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise missing_data_error("Tokenizer folder", folder, fix="point data.init_args.tokenizer at a folder "
                                     "written by `tokenizer.save_pretrained(...)`, or leave it null for bytes")
        try:
            from transformers import AutoTokenizer
        except ImportError as err:  # pragma: no cover - the `text` extra
            raise ImportError("a Hugging Face tokenizer needs transformers: pip install 'lit-digest[text]'") from err
        self.path = str(folder)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        self.vocab_size = len(self.tokenizer)
        self.eos_token_id = self.tokenizer.eos_token_id

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids))


def load_tokenizer(path: str | None) -> ByteTokenizer | HFTokenizer:
    """Bytes for ``None``, else the Hugging Face tokenizer saved in folder ``path``."""
    return ByteTokenizer() if path is None else HFTokenizer(path)


class PackedWindows(Dataset):
    """Non-overlapping windows of ``seq_len + 1`` tokens of one long sequence: ``(w[:-1], w[1:])``."""

    def __init__(self, tokens: Tensor, seq_len: int) -> None:
        self.tokens, self.seq_len = tokens, seq_len

    def __len__(self) -> int:
        return max(0, (len(self.tokens) - 1) // self.seq_len)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        window = self.tokens[index * self.seq_len: (index + 1) * self.seq_len + 1]  # (T + 1,)
        return window[:-1], window[1:]


def split_text(documents: Sequence[str], val_fraction: float, separator: str) -> tuple[str, str]:
    """``(train, validation)`` text: the documents joined by ``separator``, cut at the first separator after
    ``1 - val_fraction`` of the characters (at that point itself when there is none, as for one long document)."""
    text = separator.join(documents)
    point = int(len(text) * (1.0 - val_fraction))
    boundary = text.find(separator, point) if separator else -1
    if boundary > 0 and len(text) - boundary > 0.5 * val_fraction * len(text):
        return text[:boundary], text[boundary + len(separator):]
    return text[:point], text[point:]


def unigram_bits_per_byte(train: Tensor, val: Tensor, vocab_size: int, bytes_per_token: float) -> float:
    """Bits per byte of ``val`` under the token frequencies of ``train`` (add-one smoothed): the baseline a
    language model must beat, since it knows nothing of context."""
    counts = torch.bincount(train, minlength=vocab_size).double() + 1.0  # (V,)
    log2p = (counts / counts.sum()).log2()
    return float(-log2p[val].mean()) / bytes_per_token


def fortune_sets(folder: Path, sets: Sequence[str] | None = None) -> list[str]:
    """The strfile text files of ``folder`` by name, sorted (or the named ``sets`` among them, refused in one line
    when one is missing)."""
    # fortunes-ru names sets by month ("2001.03"): skip the strfile indexes and links, not every dotted name
    names = sorted(p.name for p in folder.iterdir()
                   if p.is_file() and not p.is_symlink() and p.suffix not in (".dat", ".u8"))
    if sets:
        unknown = sorted(set(sets) - set(names))
        if unknown:
            raise ValueError(f"no fortune set {unknown} in {folder}: no fortune file of that name; there are {names}")
        names = [n for n in names if n in sets]
    return names


def read_fortunes(folder: str | os.PathLike, sets: Sequence[str] | None = None) -> list[str]:
    """Every fortune of the strfile text files in ``folder`` (entries between ``%`` lines; the ``.dat`` indexes
    and the ``.u8`` links skipped), or of the named ``sets`` only, in file-name order."""
    folder = Path(folder)
    names = fortune_sets(folder, sets)
    fortunes = []
    for name in names:
        text = (folder / name).read_text(encoding="utf-8", errors="replace")
        fortunes += [f.strip("\n") for f in text.split("\n%\n") if f.strip()]
    return fortunes


def _collate_prompts(batch: list[tuple[str, list[int]]]) -> dict:
    return {"text": [t for t, _ in batch], "ids": [ids for _, ids in batch]}


class TextDataModule(LightningDataModule):
    """Causal-LM data from text files.

    Args:
        paths: UTF-8 text files, each one document (read in this order; the validation text is the end).
        tokenizer: a folder with a saved Hugging Face tokenizer, or ``None`` for bytes.
        seq_len: tokens per training sequence (GPT-J: 2048).
        batch_size: sequences per device and step.
        val_fraction: share of the text, at its end, held out.
        separator: put between documents (bytes need no end-of-text token).
        max_bytes: keep only the first bytes of the joined text (quick runs); ``None`` keeps all.
        prompts: texts for ``predict`` to continue.
        num_workers: DataLoader workers.
    """

    def __init__(self, paths: list[str] | None = None, tokenizer: str | None = None, seq_len: int = 256,
                 batch_size: int = 16, val_fraction: float = 0.05, separator: str = "\n\n",
                 max_bytes: int | None = None, prompts: list[str] | None = None, num_workers: int = 0) -> None:
        super().__init__()
        if seq_len < 1 or batch_size < 1:
            raise ValueError(f"seq_len and batch_size must be >= 1, got {seq_len}, {batch_size}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        self.paths, self.tokenizer_path, self.seq_len, self.batch_size = paths or [], tokenizer, seq_len, batch_size
        self.val_fraction, self.separator, self.max_bytes = val_fraction, separator, max_bytes
        self.prompts, self.num_workers = list(prompts) if prompts else ["The "], num_workers
        self.tokenizer = load_tokenizer(tokenizer)
        self.train_tokens: Tensor | None = None
        self.val_tokens: Tensor | None = None
        self.bytes_per_token = 1.0

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def documents(self) -> list[str]:
        if not self.paths:
            raise ValueError("TextDataModule needs data.init_args.paths: one or more text files")
        docs = []
        for path in self.paths:
            file = Path(path).expanduser()
            if not file.is_file():
                raise missing_data_error("Text file", file, fix="set data.init_args.paths to existing text files")
            docs.append(file.read_text(encoding="utf-8", errors="replace"))
        return docs

    def setup(self, stage: str | None = None) -> None:
        if self.train_tokens is not None:
            return
        docs = self.documents()
        if self.max_bytes is not None:
            docs = [self.separator.join(docs).encode("utf-8")[: self.max_bytes].decode("utf-8", errors="ignore")]
        train, val = split_text(docs, self.val_fraction, self.separator)
        self.train_tokens = torch.tensor(self.tokenizer.encode(train), dtype=torch.long)
        self.val_tokens = torch.tensor(self.tokenizer.encode(val), dtype=torch.long)
        if len(self.train_tokens) < self.seq_len + 1 or len(self.val_tokens) < self.seq_len + 1:
            raise ValueError(f"{len(self.train_tokens)} training and {len(self.val_tokens)} validation tokens: too "
                             f"few for seq_len={self.seq_len}; use more text or a smaller data.init_args.seq_len")
        self.bytes_per_token = len(val.encode("utf-8")) / len(self.val_tokens)

    def unigram_bits_per_byte(self) -> float:
        """The unigram baseline of this data (see ``unigram_bits_per_byte``)."""
        self.setup()
        return unigram_bits_per_byte(self.train_tokens, self.val_tokens, self.vocab_size, self.bytes_per_token)

    def train_dataloader(self) -> DataLoader:
        assert self.train_tokens is not None, "call setup() first"
        return DataLoader(PackedWindows(self.train_tokens, self.seq_len), batch_size=self.batch_size, shuffle=True,
                          drop_last=True, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        assert self.val_tokens is not None, "call setup() first"
        return DataLoader(PackedWindows(self.val_tokens, self.seq_len), batch_size=self.batch_size,
                          num_workers=self.num_workers)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader:
        items = [(p, self.tokenizer.encode(p)) for p in self.prompts]
        return DataLoader(items, batch_size=self.batch_size, collate_fn=_collate_prompts)


class CorpusDataModule(TextDataModule):
    """``TextDataModule`` over an offline corpus.

    Args:
        corpus: ``"jargon"``: the Jargon File 4.4.7 excerpt shipped with lit_digest (512 KB, public domain), one
            document; ``"fortunes"`` / ``"fortunes-ru"``: every fortune of Debian's ``fortunes`` (2.5 MB) /
            ``fortunes-ru`` (3.1 MB) packages, one document each, read from ``fortunes_dir``
            (``apt-get install fortunes``).
        fortune_sets: only these files of the fortunes folder (e.g. ``[literature, science]``).
        fortunes_dir: where Debian puts them.
        (the rest as ``TextDataModule``)
    """

    def __init__(self, corpus: Literal["jargon", "fortunes", "fortunes-ru"] = "jargon",
                 fortune_sets: list[str] | None = None, fortunes_dir: str = str(FORTUNES_DIR),
                 tokenizer: str | None = None, seq_len: int = 256, batch_size: int = 16, val_fraction: float = 0.1,
                 separator: str = "\n\n", max_bytes: int | None = None, prompts: list[str] | None = None,
                 num_workers: int = 0) -> None:
        if corpus not in ("jargon", "fortunes", "fortunes-ru"):
            raise ValueError(f"corpus must be 'jargon', 'fortunes' or 'fortunes-ru', got {corpus!r}")
        super().__init__(None, tokenizer, seq_len, batch_size, val_fraction, separator, max_bytes, prompts,
                         num_workers)
        self.corpus, self.fortune_sets, self.fortunes_dir = corpus, fortune_sets, fortunes_dir

    def documents(self) -> list[str]:
        if self.corpus == "jargon":
            if not JARGON_PATH.is_file():
                raise missing_data_error("The shipped Jargon File excerpt", JARGON_PATH, reason="this installation "
                                         "of lit_digest lacks its data files", fix="reinstall lit-digest from a "
                                         "wheel or checkout that includes lit_digest/text/corpus/")
            return [gzip.decompress(JARGON_PATH.read_bytes()).decode("utf-8")]
        folder = Path(self.fortunes_dir) / ("ru" if self.corpus == "fortunes-ru" else "")
        package = "fortunes-ru" if self.corpus == "fortunes-ru" else "fortunes"
        missing = missing_data_error(f"Debian's {package} files", folder, url=f"`apt-get install {package}`",
                                     fix="or use data.init_args.corpus jargon, the corpus shipped with lit_digest")
        if not folder.is_dir():
            raise missing
        fortunes = read_fortunes(folder, self.fortune_sets)
        if not fortunes:  # the folder of another package (fortunes-ru makes fortunes/ru) but no English sets
            raise missing
        return fortunes


def bits_per_byte(nats_per_token: float, bytes_per_token: float) -> float:
    """Nats per token as bits per byte."""
    return nats_per_token / math.log(2) / bytes_per_token
