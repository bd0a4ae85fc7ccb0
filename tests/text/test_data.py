"""Text data: bytes and a Hugging Face tokenizer saved on disk, packed windows, the split, the unigram baseline,
the shipped corpus and Debian's fortunes (skipped when not installed), clear errors."""

from __future__ import annotations

import gzip
import math
from collections import Counter

import pytest
import torch

from lit_digest.core.download import MissingDataError
from lit_digest.text.data import (
    FORTUNES_DIR,
    JARGON_PATH,
    ByteTokenizer,
    CorpusDataModule,
    PackedWindows,
    TextDataModule,
    read_fortunes,
    split_text,
    unigram_bits_per_byte,
)

TEXT = "Hacker: one who enjoys the intellectual challenge of creatively overcoming limitations. Ünïcode ✓\n" * 40


def test_bytes_round_trip_and_windows_are_shifted_non_overlapping():
    tok = ByteTokenizer()
    ids = tok.encode(TEXT)
    assert tok.decode(ids) == TEXT and len(ids) == len(TEXT.encode("utf-8")) and max(ids) < 256
    data = torch.arange(103)
    windows = PackedWindows(data, seq_len=10)
    assert len(windows) == 10
    x, y = windows[3]
    assert torch.equal(x, torch.arange(30, 40)) and torch.equal(y, torch.arange(31, 41))
    covered = torch.cat([windows[i][0] for i in range(len(windows))])
    assert torch.equal(covered, torch.arange(100))  # every token once, none twice


def test_split_keeps_documents_whole_and_holds_out_the_end():
    docs = [f"document {i} " * 5 for i in range(20)]
    train, val = split_text(docs, 0.1, "\n\n")
    assert train + "\n\n" + val == "\n\n".join(docs)
    assert val.startswith("document ") and all(d in docs for d in val.split("\n\n"))
    assert 0.05 < len(val) / (len(train) + len(val)) < 0.15


def test_unigram_baseline_is_the_cross_entropy_of_training_frequencies():
    train, val = torch.tensor([0, 0, 0, 1]), torch.tensor([0, 1])
    # add-one: p(0) = 4/8, p(1) = 2/8, p(2) = p(3) = 1/8 over a vocabulary of 4
    expected = -(math.log2(4 / 8) + math.log2(2 / 8)) / 2
    assert unigram_bits_per_byte(train, val, 4, 1.0) == pytest.approx(expected)
    assert unigram_bits_per_byte(train, val, 4, 2.0) == pytest.approx(expected / 2)


def test_text_files_module(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text(TEXT)
    b.write_text(TEXT.upper())
    dm = TextDataModule(paths=[str(a), str(b)], seq_len=32, batch_size=4, val_fraction=0.2)
    dm.setup()
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == y.shape == (4, 32) and torch.equal(x[:, 1:], y[:, :-1])
    assert dm.bytes_per_token == 1.0 and dm.vocab_size == 256
    assert ByteTokenizer().decode(dm.val_tokens.tolist()).isupper()  # the end of the joined text
    assert 1.0 < dm.unigram_bits_per_byte() < 8.0
    with pytest.raises(MissingDataError, match="nope.txt"):
        TextDataModule(paths=[str(tmp_path / "nope.txt")]).setup()
    with pytest.raises(ValueError, match="too few for seq_len=4096"):
        TextDataModule(paths=[str(a)], seq_len=4096).setup()


@pytest.fixture(scope="module")
def hf_tokenizer_folder(tmp_path_factory):
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"], show_progress=False,
                                             initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([TEXT], trainer)
    folder = tmp_path_factory.mktemp("tokenizer")
    transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>").save_pretrained(folder)
    return folder


def test_a_hugging_face_tokenizer_on_disk(tmp_path, hf_tokenizer_folder):
    path = tmp_path / "a.txt"
    path.write_text(TEXT)
    dm = TextDataModule(paths=[str(path)], tokenizer=str(hf_tokenizer_folder), seq_len=16, batch_size=2,
                        val_fraction=0.2)
    dm.setup()
    assert dm.vocab_size == len(dm.tokenizer.tokenizer) and 257 < dm.vocab_size <= 400
    assert dm.tokenizer.eos_token_id is not None
    assert dm.tokenizer.decode(dm.tokenizer.encode(TEXT[:200])) == TEXT[:200]
    val_text = dm.tokenizer.decode(dm.val_tokens.tolist())
    assert dm.bytes_per_token == pytest.approx(len(val_text.encode("utf-8")) / len(dm.val_tokens))
    assert dm.bytes_per_token > 2.0  # merges learnt on this very text
    with pytest.raises(MissingDataError, match="Tokenizer folder not found"):
        TextDataModule(paths=[str(path)], tokenizer=str(tmp_path / "no-tokenizer"))


def test_the_shipped_corpus_is_there_and_readable():
    assert JARGON_PATH.is_file() and JARGON_PATH.stat().st_size < 300_000
    text = gzip.decompress(JARGON_PATH.read_bytes()).decode("utf-8")
    assert "Jargon File" in text and "public domain" in text and len(text.encode()) > 400_000
    dm = CorpusDataModule(corpus="jargon", seq_len=64, batch_size=2, max_bytes=30_000)
    dm.setup()
    assert 25_000 < len(dm.train_tokens) + len(dm.val_tokens) <= 30_000
    assert 3.5 < dm.unigram_bits_per_byte() < 5.5  # English text in bytes


def test_missing_fortunes_say_how_to_get_them(tmp_path):
    with pytest.raises(MissingDataError, match="apt-get install fortunes-ru"):
        CorpusDataModule(corpus="fortunes-ru", fortunes_dir=str(tmp_path)).setup()
    (tmp_path / "ru").mkdir()  # fortunes-ru installed, fortunes not: the folder is there, empty
    with pytest.raises(MissingDataError, match=f"not found at '{tmp_path}'.*apt-get install fortunes`.*jargon"):
        CorpusDataModule(corpus="fortunes", fortunes_dir=str(tmp_path)).setup()
    with pytest.raises(ValueError, match="corpus must be"):
        CorpusDataModule(corpus="shakespeare")


def test_fortune_files_are_split_into_fortunes(tmp_path):
    (tmp_path / "wisdom").write_text("First one.\n%\nSecond,\n  two lines.\n%\n")
    (tmp_path / "wisdom.dat").write_bytes(b"\x00\x01")
    (tmp_path / "wisdom.u8").symlink_to(tmp_path / "wisdom")
    (tmp_path / "2001.03").write_text("Март.\n%\n")  # fortunes-ru names sets by month
    assert read_fortunes(tmp_path) == ["Март.", "First one.", "Second,\n  two lines."]
    with pytest.raises(ValueError, match="no fortune set"):
        read_fortunes(tmp_path, ["jokes"])


@pytest.mark.skipif(not (FORTUNES_DIR / "fortunes").is_file(), reason="Debian's fortunes package is not installed")
def test_debian_fortunes_english_and_russian():
    english = read_fortunes(FORTUNES_DIR, ["fortunes", "literature"])
    assert len(english) > 300 and all(f.strip() for f in english)
    if (FORTUNES_DIR / "ru").is_dir():
        russian = read_fortunes(FORTUNES_DIR / "ru")
        assert len(russian) > 17_000  # the monthly sets ("2001.03", ...) too
        letters = Counter(ch for f in russian[:200] for ch in f if ch.isalpha())
        assert sum(n for ch, n in letters.items() if "а" <= ch.lower() <= "я") > 0.5 * sum(letters.values())
    dm = CorpusDataModule(corpus="fortunes", fortune_sets=["fortunes"], seq_len=64, batch_size=2)
    dm.setup()
    assert len(dm.train_dataloader()) > 10
