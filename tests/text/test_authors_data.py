"""Labelled corpora: strict reading with the file and byte offset of a bad byte, one clear line per bad input, the
split by document, passages, control-prefixed windows, the shipped corpus and Debian's fortunes."""

from __future__ import annotations

import json

import pytest
import torch

from lit_digest.text.authors.corpus import (
    Document,
    read_dictionaries,
    read_folder,
    read_fortune_topics,
    read_table,
    split_documents,
    strip_attribution,
)
from lit_digest.text.authors.data import LabelledTextDataModule, chance_macro_f1, cut_passages
from lit_digest.text.data import FORTUNES_DIR


def write_corpus(root, docs_per_label=6, labels=("austen", "melville"), length=300):
    for li, label in enumerate(labels):
        (root / label).mkdir(parents=True)
        for d in range(docs_per_label):
            words = " ".join(f"{label}{li}w{(d * 7 + k) % 23}" for k in range(length // 10))
            (root / label / f"{d:02d}.txt").write_text(f"Document {label} {d}. {words}", encoding="utf-8")
    return root


def test_a_folder_of_label_folders_and_the_split_never_cuts_a_document(tmp_path):
    root = write_corpus(tmp_path / "c", docs_per_label=10)
    data = LabelledTextDataModule(path=str(root), passage_len=64, min_passage_len=8, val_fraction=0.2,
                                  test_fraction=0.2, split_seed=3)
    data.setup()
    assert data.labels == ["austen", "melville"]
    owners = {}
    for split in ("train", "val", "test"):
        docs = data.documents[split]
        assert {d.label for d in docs} == {"austen", "melville"}  # stratified: every label in every split
        for passage in data.passages[split]:
            doc = docs[passage.document]
            assert passage.text in doc.text and data.labels[passage.label] == doc.label
            owners.setdefault(doc.source, set()).add(split)
        assert sum(len(p.ids) for p in data.passages[split]) == sum(len(d.text.encode()) for d in docs)
    assert len(owners) == 20 and all(len(splits) == 1 for splits in owners.values())  # no document in two splits
    assert max(len(p.ids) for p in data.passages["train"]) == 64  # documents of ~300 bytes: several passages each


def test_split_by_document_with_a_seed():
    docs = [Document(f"text {i}", "ab"[i % 2], str(i)) for i in range(40)]
    a, b = split_documents(docs, 0.1, 0.2, seed=0), split_documents(docs, 0.1, 0.2, seed=0)
    assert a == b and a != split_documents(docs, 0.1, 0.2, seed=1)
    assert [len(a[s]) for s in ("train", "val", "test")] == [28, 4, 8]
    assert sorted(d.source for s in a.values() for d in s) == sorted(d.source for d in docs)


def test_passages_cut_without_overlap_and_keep_a_long_enough_tail():
    assert cut_passages(list(range(10)), 4, 2) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert cut_passages(list(range(9)), 4, 2) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert cut_passages([1, 2], 4, 3) == [[1, 2]]  # a short document is one passage


def test_bad_inputs_get_one_clear_line_each(tmp_path):
    root = write_corpus(tmp_path / "c")
    (root / "empty").mkdir()
    with pytest.raises(ValueError, match=r"label folder .*empty has no \.txt files"):
        read_folder(root)
    single = write_corpus(tmp_path / "s", labels=("austen",))
    with pytest.raises(ValueError, match="only the label 'austen'.*at least two"):
        LabelledTextDataModule(path=str(single)).setup()
    bad = write_corpus(tmp_path / "b")
    (bad / "melville" / "03.txt").write_bytes(b"Call me Ishmael. Caf\xe9 at sea")
    with pytest.raises(ValueError) as err:
        read_folder(bad)
    message = str(err.value)
    assert "03.txt" in message and "byte offset 20" in message and "\n" not in message
    few = write_corpus(tmp_path / "f", docs_per_label=2)
    with pytest.raises(ValueError, match="fewer than 3 documents"):
        LabelledTextDataModule(path=str(few)).setup()
    with pytest.raises(ValueError, match="no label"):
        LabelledTextDataModule(path=str(root.parent / "s"), labels=["tolstoy"]).setup()


def test_csv_and_jsonl_tables_and_their_bad_bytes(tmp_path):
    rows = [{"body": f"text number {i} " * 5, "who": "ab"[i % 2]} for i in range(8)]
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    docs = read_table(jsonl, "body", "who")
    assert [d.label for d in docs] == [r["who"] for r in rows] and docs[3].source == f"{jsonl}:4"
    csv = tmp_path / "t.csv"
    csv.write_text("body,who\n" + "".join(f'"{r["body"]}",{r["who"]}\n' for r in rows))
    assert [d.text for d in read_table(csv, "body", "who")] == [r["body"] for r in rows]
    with pytest.raises(ValueError, match="no 'text' or 'label' column"):
        read_table(csv)
    raw = jsonl.read_bytes()
    line_start = raw.index(b'{"body": "text number 2')
    jsonl.write_bytes(raw[:line_start + 12] + b"\xff" + raw[line_start + 13:])
    with pytest.raises(ValueError, match=rf"line 3: byte offset {line_start + 12} is not UTF-8"):
        read_table(jsonl, "body", "who")


def test_lm_windows_open_with_their_labels_control_prefix(tmp_path):
    """The control prefix reaches the model: every training sequence starts with its label's prefix (or the null
    one) and holds only that label's text."""
    root = write_corpus(tmp_path / "c", docs_per_label=8, length=400)
    data = LabelledTextDataModule(path=str(root), batches="lm", seq_len=48, null_control=0.3, batch_size=4)
    data.setup()
    torch.manual_seed(0)
    seen_null = 0
    for tokens, targets in data.train_dataloader():
        assert tokens.shape == targets.shape == (4, 48) and torch.equal(tokens[:, 1:], targets[:, :-1])
        for row in tokens:
            text = data.tokenizer.decode(row.tolist())
            head, _, body = text.partition("\n")
            assert head in ("[austen]", "[melville]", "[?]")
            seen_null += head == "[?]"
            other = "melville1w" if head == "[austen]" else "austen0w"
            assert head == "[?]" or other not in body  # a window holds one label's text
    assert seen_null > 0
    val_heads = {data.tokenizer.decode(t[:10].tolist()).partition("\n")[0] for t, _ in data.val_dataloader()
                 for t in t}
    assert val_heads <= {"[austen]", "[melville]"}  # no null prefix when scoring
    asks = [b for b in data.predict_dataloader()]
    labels = torch.cat([b["label"] for b in asks]).tolist()
    assert labels == [0] * 4 + [1] * 4 + [-1] * 4


def test_chance_macro_f1_is_the_expected_score_of_a_uniform_guess():
    assert chance_macro_f1([0.5, 0.5]) == pytest.approx(0.5)
    assert chance_macro_f1([0.25] * 4) == pytest.approx(0.25)
    gen = torch.Generator().manual_seed(0)
    truth = torch.multinomial(torch.tensor([0.7, 0.2, 0.1]), 200_000, replacement=True, generator=gen)
    guess = torch.randint(0, 3, (200_000,), generator=gen)
    f1 = []
    for c in range(3):
        tp = ((truth == c) & (guess == c)).sum().item()
        f1.append(2 * tp / ((truth == c).sum().item() + (guess == c).sum().item()))
    shares = [(truth == c).float().mean().item() for c in range(3)]
    assert chance_macro_f1(shares) == pytest.approx(sum(f1) / 3, abs=3e-3)


def test_the_shipped_dictionaries_are_two_writers_without_their_head_words():
    docs = read_dictionaries()
    by = {label: [d for d in docs if d.label == label] for label in ("bierce", "jargon")}
    assert len(docs) == len(by["bierce"]) + len(by["jargon"]) and len(by["bierce"]) > 300 and len(by["jargon"]) > 600
    assert by["bierce"][1].text.startswith("Rubbish in front of a fort")  # "ABATIS, n." removed
    assert not any(d.text.startswith(":") for d in by["jargon"])
    assert not any(ch in d.text for d in docs for ch in "“”‘’")  # typography does not give the writer away
    data = LabelledTextDataModule()
    data.setup()
    assert data.labels == ["bierce", "jargon"] and len(data.passages["test"]) > 100


def test_fortune_attributions_are_removed():
    text = "Time is an illusion.\n\t\t-- Douglas Adams,\n\t\t   \"The Hitchhiker's Guide\""
    assert strip_attribution(text) == "Time is an illusion."
    assert strip_attribution("A -- B in the middle stays.") == "A -- B in the middle stays."
    quotes = '"Not a mechanic."\n\t\t-- "Doomsday", when asked\n\t\t   about it.\n"Not a bricklayer."\n-- Devil'
    assert strip_attribution(quotes) == '"Not a mechanic."\n"Not a bricklayer."'


@pytest.mark.skipif(not (FORTUNES_DIR / "zippy").is_file(), reason="Debian's fortunes are absent: apt-get install "
                    "fortunes fortunes-ru")
def test_debian_fortune_topics_are_labels():
    docs = read_fortune_topics(FORTUNES_DIR, ["zippy", "startrek"])
    assert {d.label for d in docs} == {"zippy", "startrek"} and len(docs) > 700
    assert not any("\n\t\t--" in d.text for d in docs)
    if (FORTUNES_DIR / "ru").is_dir():
        ru = read_fortune_topics(FORTUNES_DIR / "ru", ["polyakov", "haiku"])
        assert {d.label for d in ru} == {"polyakov", "haiku"} and any("а" in d.text for d in ru)
    with pytest.raises(ValueError, match="no fortune file"):
        read_fortune_topics(FORTUNES_DIR, ["no-such-topic"])
