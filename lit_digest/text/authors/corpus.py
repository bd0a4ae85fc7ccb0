"""Texts grouped by label (a writer or a topic): reading them strictly, and splitting them by document.

Sources, each giving ``Document(text, label, source)``:

- ``read_folder(root)``: ``<root>/<label>/*.txt``, one document a file, one label a folder;
- ``read_table(path)``: a ``.csv`` or ``.jsonl`` file with a text column and a label column, one document a row;
- ``read_fortune_topics(folder)``: Debian's ``fortunes`` (English, one topic a file: ``art``, ``computers``, ...)
  or ``fortunes-ru`` (``/usr/share/games/fortunes/ru``), one document a fortune, the file's name its label;
- ``read_dictionaries()``: the corpus shipped with lit_digest (``lit_digest/text/corpus/``, public domain): the
  definitions of two dictionaries of the same letters, A to F, by two kinds of writer: Ambrose Bierce's *The
  Devil's Dictionary* (1881-1906) and the hackers' *Jargon File* 4.4.7 (2003); one document a definition.

Every byte is decoded as UTF-8; a byte that is not names its file and offset. Exact duplicates (the same text
twice, in one label or two) are kept once, so that no text is both trained on and tested on.
``split_documents`` then deals each label's documents to train / validation / test: a document is never cut
across splits (its passages, cut later, stay together).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import random
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lit_digest.core.download import missing_data_error
from lit_digest.text.data import FORTUNES_DIR, JARGON_PATH, fortune_sets

__all__ = ["Document", "decode_utf8", "read_folder", "read_table", "read_fortune_topics", "read_dictionaries",
           "strip_attribution", "deduplicate", "check_labels", "split_documents", "BIERCE_PATH", "SPLITS"]

BIERCE_PATH = Path(__file__).parents[1] / "corpus" / "bierce.txt.gz"
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Document:
    """One text, its label, and where it came from (a file, or ``file:row``)."""

    text: str
    label: str
    source: str


def decode_utf8(data: bytes, where: str | os.PathLike, offset: int = 0) -> str:
    """``data`` as UTF-8, or a ValueError naming ``where`` and the byte offset (``offset`` + the position in
    ``data``) of the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        start, reason = err.start, err.reason
    # raised outside the handler: the decoder's own error is no part of the message's chain
    raise ValueError(f"{where}: byte offset {offset + start} is not UTF-8 ({reason}, bytes "
                     f"{data[start:start + 4]!r}); convert the file to UTF-8, e.g. `iconv -f latin1 -t utf-8 FILE > "
                     "FILE.utf8`")


def read_folder(root: str | os.PathLike) -> list[Document]:
    """``<root>/<label>/*.txt``: one document a file, the folder's name its label."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise missing_data_error("Labelled text folder", root, fix="set data.init_args.path to a folder of label "
                                 "folders (<root>/<label>/*.txt), or a .csv/.jsonl file")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ValueError(f"{root} has no label folders: put each writer's or topic's texts in <root>/<label>/*.txt")
    docs = []
    for folder in folders:
        files = sorted(folder.glob("*.txt"))
        if not files:
            raise ValueError(f"the label folder {folder} has no .txt files: add its texts or remove the folder")
        docs += [Document(decode_utf8(f.read_bytes(), f), folder.name, str(f)) for f in files]
    return docs


def read_table(path: str | os.PathLike, text_column: str = "text", label_column: str = "label") -> list[Document]:
    """A ``.csv`` (with a header) or ``.jsonl`` file: one document a row."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise missing_data_error("Labelled text table", path, fix="set data.init_args.path to a .csv or .jsonl "
                                 "file with a text and a label column, or to a folder <root>/<label>/*.txt")
    data = path.read_bytes()
    rows: list[tuple[str, dict]] = []
    if path.suffix == ".jsonl":
        offset = 0
        for number, line in enumerate(data.split(b"\n"), start=1):
            if line.strip():
                try:
                    rows.append((f"{path}:{number}", json.loads(decode_utf8(line, f"{path} line {number}", offset))))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{number}: not a JSON line ({err.msg})") from None
            offset += len(line) + 1
    elif path.suffix == ".csv":
        reader = csv.DictReader(io.StringIO(decode_utf8(data, path), newline=""))
        rows = [(f"{path}:{number}", row) for number, row in enumerate(reader, start=2)]
    else:
        raise ValueError(f"{path}: a labelled table must be .csv or .jsonl, got {path.suffix!r}")
    docs = []
    for where, row in rows:
        if not isinstance(row, dict) or text_column not in row or label_column not in row:
            raise ValueError(f"{where}: no {text_column!r} or {label_column!r} column; set data.init_args."
                             "text_column / label_column to the names the file uses")
        text, label = row[text_column], row[label_column]
        if not isinstance(text, str) or label is None or str(label) == "":
            raise ValueError(f"{where}: the text must be a string and the label non-empty, got {text!r}, {label!r}")
        docs.append(Document(text, str(label), where))
    return docs


_DASH = re.compile(r"^\s*(--|—)\s*\S")


def strip_attribution(text: str) -> str:
    """A fortune without its attribution lines (``\t\t-- Terry Pratchett, "Mort"`` and its indented continuation
    lines), wherever they are: a name would give the label away without the style. A dash line counts when it is
    indented or the last line."""
    lines, out, inside = text.split("\n"), [], False
    for number, line in enumerate(lines):
        if _DASH.match(line) and (line[:1].isspace() or number == len(lines) - 1):
            inside = True
            continue
        if inside and line[:1].isspace() and line.strip():
            continue  # the attribution goes on
        inside = False
        out.append(line)
    return "\n".join(out).rstrip()


def read_fortune_topics(folder: str | os.PathLike = FORTUNES_DIR, sets: Sequence[str] | None = None,
                        attribution: bool = False) -> list[Document]:
    """Every fortune of the strfile files in ``folder`` (or of ``sets`` only), labelled by its file's name; the
    closing ``-- author`` lines removed unless ``attribution``."""
    folder = Path(folder)
    russian = folder.name == "ru"
    package = "fortunes-ru" if russian else "fortunes"
    missing = missing_data_error(f"Debian's {package} files", folder, url=f"`apt-get install {package}`",
                                 fix="or use data.init_args.corpus dictionaries, the corpus shipped with lit_digest")
    if not folder.is_dir():
        raise missing
    names = fortune_sets(folder)
    if not names:
        raise missing
    if sets:
        names = fortune_sets(folder, sets)
    docs = []
    for name in names:
        text = decode_utf8((folder / name).read_bytes(), folder / name)
        for number, entry in enumerate(re.split(r"\n%\n", text)):
            entry = entry.strip("\n") if attribution else strip_attribution(entry.strip("\n"))
            if entry.strip() and entry.strip() != "%":
                docs.append(Document(entry, name, f"{folder / name}#{number}"))
    return docs


_TYPOGRAPHY = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "—": "--", "–": "-", "…": "..."})


def read_dictionaries() -> list[Document]:
    """The shipped corpus: Bierce's definitions (``bierce``) and the Jargon File's (``jargon``), A to F, each
    without its head line (the word, its pronunciation and part of speech), its paragraphs one line each, curly
    quotes and dashes written in ASCII as Bierce's text has them (so that typography does not give the label)."""
    for path in (BIERCE_PATH, JARGON_PATH):
        if not path.is_file():
            raise missing_data_error("The corpus shipped with lit_digest", path, reason="this installation lacks "
                                     "its data files", fix="reinstall lit-digest from a wheel or checkout that "
                                     "includes lit_digest/text/corpus/")
    docs = []
    bierce = gzip.decompress(BIERCE_PATH.read_bytes()).decode("utf-8")
    for number, entry in enumerate(bierce.split("\n%\n")):
        head, _, rest = entry.strip("\n").partition("\n")
        body = re.sub(r"^[A-Z][A-Z'. -]*(,[^.]*\.)?\s+", "", head) + ("\n" + rest if rest else "")
        if body.strip():
            docs.append(Document(body.strip(), "bierce", f"{BIERCE_PATH.name}#{number}"))
    jargon = gzip.decompress(JARGON_PATH.read_bytes()).decode("utf-8")
    entries = re.split(r"\n(?=:[^\n]+:)", jargon[jargon.find("\n:") + 1:])
    for number, entry in enumerate(entries):
        body = "\n".join(p.strip() for p in entry.split("\n")[1:] if p.strip())
        if body:
            docs.append(Document(body.translate(_TYPOGRAPHY), "jargon", f"{JARGON_PATH.name}#{number}"))
    return docs


def deduplicate(docs: Sequence[Document]) -> list[Document]:
    """The first of each text (compared without surrounding white space)."""
    seen: set[str] = set()
    out = []
    for doc in docs:
        key = doc.text.strip()
        if key not in seen:
            seen.add(key)
            out.append(doc)
    return out


def check_labels(docs: Sequence[Document], where: str, per_label: int = 3) -> list[str]:
    """The sorted labels of ``docs``; a ValueError when there are fewer than two, or a label has fewer than
    ``per_label`` documents (one for each split)."""
    counts: dict[str, int] = defaultdict(int)
    for doc in docs:
        counts[doc.label] += 1
    if len(counts) < 2:
        found = f"only the label {next(iter(counts))!r}" if counts else "no documents"
        raise ValueError(f"{where} has {found}: attribution needs texts of at least two writers or topics")
    few = {label: n for label, n in counts.items() if n < per_label}
    if few:
        raise ValueError(f"{where}: labels {few} have fewer than {per_label} documents (one for each of train, "
                         "validation and test); add texts or leave those labels out (data.init_args.labels)")
    return sorted(counts)


def split_documents(docs: Sequence[Document], val_fraction: float, test_fraction: float,
                    seed: int = 0) -> dict[str, list[Document]]:
    """Each label's documents shuffled with ``seed`` and dealt whole to ``test``, ``val`` and ``train`` (at least
    one each): stratified by label, never a document in two splits."""
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"val_fraction and test_fraction must be in (0, 1) with a sum below 1, got "
                         f"{val_fraction}, {test_fraction}")
    by_label: dict[str, list[Document]] = defaultdict(list)
    for doc in docs:
        by_label[doc.label].append(doc)
    rng = random.Random(seed)
    out: dict[str, list[Document]] = {s: [] for s in SPLITS}
    for label in sorted(by_label):
        group = list(by_label[label])
        rng.shuffle(group)
        n_test = max(1, round(test_fraction * len(group)))
        n_val = max(1, round(val_fraction * len(group)))
        out["test"] += group[:n_test]
        out["val"] += group[n_test:n_test + n_val]
        out["train"] += group[n_test + n_val:]
    return out
