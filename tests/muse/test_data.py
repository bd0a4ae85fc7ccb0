"""Embeddings and dictionaries for MUSE (vec_io, dictionary, export, synthetic, data)."""

import numpy as np
import pytest
import torch

from lit_digest.core.download import MissingDataError, fetch
from lit_digest.muse.data import (
    EmbeddingsDataModule,
    SyntheticEmbeddingsDataModule,
    official_dictionary,
    official_vectors,
)
from lit_digest.muse.dictionary import read_dictionary
from lit_digest.muse.export import export_aligned, write_vec
from lit_digest.muse.synthetic import make_synthetic_pair
from lit_digest.muse.vec_io import EmbeddingFormatError, load_embeddings, normalize_embeddings, read_vec


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


VEC = "4 3\nthe 1 0 0\nThe 0 1 0\ncat 0 0 1\ndog 1 1 0\n"


def test_read_vec_header_vocab_and_lowercase(tmp_path):
    path = write(tmp_path / "a.vec", VEC)
    emb = read_vec(path, max_vocab=0)
    assert emb.words == ["the", "The", "cat", "dog"] and emb.vectors.dtype == torch.float32
    with pytest.warns(UserWarning, match="1 duplicate word.*after lowercasing.*line 3"):
        low = read_vec(path, max_vocab=0, lowercase=True)
    assert low.words == ["the", "cat", "dog"]
    assert low.vectors[0].tolist() == [1, 0, 0]  # the first casing's vector is kept
    assert read_vec(path, max_vocab=2).words == ["the", "The"]
    with pytest.warns(UserWarning):
        assert read_vec(path, max_vocab=2, lowercase=True).words == ["the", "cat"]  # distinct words count


def test_read_vec_duplicates_and_missing_header(tmp_path):
    with pytest.warns(UserWarning, match="no 'n_words dim' header"):
        emb = read_vec(write(tmp_path / "b.vec", "a 1 2\nb 3 4\n\nc 5 6\n"))
    assert emb.words == ["a", "b", "c"] and emb.dim == 2
    with pytest.warns(UserWarning, match="1 duplicate word.*first occurrence kept.*line 4"):
        emb = read_vec(write(tmp_path / "c.vec", "3 2\na 1 2\nb 3 4\na 5 6\n"))
    assert emb.words == ["a", "b"] and emb.vectors[0].tolist() == [1, 2]
    with pytest.warns(UserWarning, match="all-zero"):
        assert read_vec(write(tmp_path / "z.vec", "1 2\nz 0 0\n")).vectors[0].tolist() == pytest.approx(
            [0.01, 0]
        )


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("2 3\na 1 2 3\nb 1 2\n", 3, "expected 3 values after the word, found 2"),
        ("2 3\na 1 2 3\nb 1 2 3 4\n", 3, "expected 3 values after the word, found 4"),
        ("2 3\na 1 2 3\nb 1 x 3\n", 3, "value 'x' is not a number"),
        ("1 2\na nan 1\n", 2, "non-finite"),
        ("1 2\n 1 2\n", 2, "empty word"),
    ],
)
def test_read_vec_rejects_malformed_lines_with_file_and_line(tmp_path, text, line, message):
    path = write(tmp_path / "bad.vec", text)
    with pytest.raises(EmbeddingFormatError, match=message) as err:
        read_vec(path)
    assert f"{path}:{line}:" in str(err.value)


def test_read_vec_missing_and_empty(tmp_path):
    with pytest.raises(MissingDataError, match="nothing.vec"):
        read_vec(tmp_path / "nothing.vec")
    with pytest.raises(EmbeddingFormatError, match="no embeddings"):
        read_vec(write(tmp_path / "empty.vec", "\n"))


def test_load_embeddings_pth_and_npy(tmp_path):
    vectors = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    torch.save({"words": ["a", "b", "B", "c"], "vectors": vectors}, tmp_path / "e.pth")
    with pytest.warns(UserWarning, match="duplicate"):
        emb = load_embeddings(tmp_path / "e.pth", lowercase=True)
    assert emb.words == ["a", "b", "c"] and emb.vectors[2].tolist() == [9, 10, 11]
    np.save(tmp_path / "m.npy", vectors.numpy())
    write(tmp_path / "m.words.txt", "w\nx\ny\nz\n")
    emb = load_embeddings(tmp_path / "m.npy", max_vocab=3)
    assert emb.words == ["w", "x", "y"] and torch.equal(emb.vectors, vectors[:3])
    write(tmp_path / "short.txt", "w\nx\n")
    with pytest.raises(EmbeddingFormatError, match="4 vectors but 2 words"):
        load_embeddings(tmp_path / "m.npy", words_path=tmp_path / "short.txt")


def test_read_dictionary(tmp_path):
    src = {"the": 0, "cat": 1, "dog": 2}
    tgt = {"el": 0, "la": 1, "gato": 2, "perro": 3}
    path = write(tmp_path / "d.txt", "cat gato\nthe el\nthe la\ndog\tperro\nfish pez\nbad line here\n\n")
    with pytest.warns(UserWarning, match="1 line.*first: line 6"):
        pairs = read_dictionary(path, src, tgt)
    assert pairs.tolist() == [[0, 0], [0, 1], [1, 2], [2, 3]]  # by source rank, unknown words dropped
    with pytest.raises(EmbeddingFormatError, match="no pair"):
        read_dictionary(write(tmp_path / "none.txt", "fish pez\n"), src, tgt)


def test_normalize_embeddings():
    x = torch.tensor([[3.0, 4.0], [1.0, 0.0], [2.0, 2.0]])
    mean = normalize_embeddings(x, "center,renorm")
    torch.testing.assert_close(mean, torch.tensor([[2.0, 2.0]]))
    torch.testing.assert_close(x.norm(dim=1)[:2], torch.ones(2))
    y = torch.tensor([[4.0, 4.0]])
    normalize_embeddings(y, "center", mean=mean)  # the training mean replayed at export
    assert y.tolist() == [[2.0, 2.0]]
    assert normalize_embeddings(torch.ones(2, 2), "") is None
    with pytest.raises(ValueError, match="unknown normalisation"):
        normalize_embeddings(torch.ones(2, 2), "whiten")


def test_fetch_offline_errors_name_the_file(tmp_path):
    path, url = official_vectors(tmp_path, "es")
    assert path.name == "wiki.es.vec" and url.endswith("/wiki.es.vec")
    with pytest.raises(MissingDataError) as err:
        fetch(path, url)
    assert str(path) in str(err.value) and url in str(err.value) and "download" in str(err.value)
    dico, dico_url = official_dictionary(tmp_path, "en", "es", "test")
    assert dico.name == "en-es.5000-6500.txt" and dico_url.endswith("/en-es.5000-6500.txt")
    unreachable = "http://127.0.0.1:9/wiki.es.vec"  # nothing listens on the discard port
    with pytest.raises(MissingDataError, match="the download failed.*Get it from http://127.0.0.1:9/wiki.es.vec"):
        fetch(path, unreachable, download=True, timeout=5)
    assert not path.exists() and not path.with_name(path.name + ".part").exists()


def test_fetch_downloads_when_asked(tmp_path):
    source = write(tmp_path / "remote.txt", "the el\n")
    dest = tmp_path / "dl" / "en-es.txt"
    assert fetch(dest, source.as_uri(), download=True) == dest
    assert dest.read_text() == "the el\n"


def test_streamed_export_equals_in_memory_mapping(tmp_path):
    g = torch.Generator().manual_seed(0)
    src = torch.randn(50, 4, generator=g)
    tgt = torch.randn(40, 4, generator=g)
    src_words = [f"s{i}" for i in range(50)]
    tgt_words = [f"t{i}" for i in range(40)]
    from lit_digest.muse import Embeddings

    write_vec(tmp_path / "src.vec", Embeddings(src_words, src))
    write_vec(tmp_path / "tgt.vec", Embeddings(tgt_words, tgt))
    w, _ = torch.linalg.qr(torch.randn(4, 4, generator=g))
    src_r = read_vec(tmp_path / "src.vec")
    tgt_r = read_vec(tmp_path / "tgt.vec")
    mean_s = normalize_embeddings(src_r.vectors, "center,renorm")
    mean_t = normalize_embeddings(tgt_r.vectors, "center,renorm")
    for fmt in ("vec", "pth"):
        out_s, out_t = export_aligned(
            tmp_path / "src.vec", tmp_path / "tgt.vec", w, tmp_path / fmt, src_lang="en", tgt_lang="es",
            fmt=fmt, normalize="center,renorm", src_mean=mean_s, tgt_mean=mean_t, chunk_rows=7,
        )  # fmt: skip
        got_s = load_embeddings(out_s, max_vocab=0)
        got_t = load_embeddings(out_t, max_vocab=0)
        assert got_s.words == src_words and got_t.words == tgt_words
        torch.testing.assert_close(got_s.vectors, src_r.vectors @ w.T, atol=1e-4, rtol=0)
        torch.testing.assert_close(got_t.vectors, tgt_r.vectors, atol=1e-4, rtol=0)
    assert (tmp_path / "vec" / "vectors-en.txt").read_text().split("\n", 1)[0].split() == ["50", "4"]


def test_datamodule_from_files(tmp_path):
    write(tmp_path / "wiki.en.vec", "4 2\nthe 1 0\ncat 0 1\nparis 1 1\ndog 2 1\n")
    write(tmp_path / "wiki.es.vec", "4 2\nel 1 0\nparis 1 1\ngato 0 1\nperro 2 1\n")
    (tmp_path / "dictionaries").mkdir()
    write(tmp_path / "dictionaries" / "en-es.0-5000.txt", "the el\ncat gato\n")
    write(tmp_path / "dictionaries" / "en-es.5000-6500.txt", "dog perro\n")
    dm = EmbeddingsDataModule(data_dir=str(tmp_path), dico_train="default", normalize="renorm")
    dm.setup("fit")
    assert dm.dico_train.tolist() == [[0, 0], [1, 2]] and dm.dico_eval.tolist() == [[3, 3]]
    torch.testing.assert_close(dm.src.vectors.norm(dim=1), torch.ones(4))
    seed = EmbeddingsDataModule(data_dir=str(tmp_path), dico_train="identical_char", dico_eval=None)
    seed.setup("fit")
    assert seed.dico_train.tolist() == [[2, 1]] and seed.dico_eval is None
    missing = EmbeddingsDataModule(data_dir=str(tmp_path), tgt_lang="fr")
    with pytest.raises(MissingDataError, match="wiki.fr.vec not found.*wiki.fr.vec"):
        missing.setup("fit")


def test_synthetic_pair_plants_a_rotation_and_a_gold_dictionary():
    pair = make_synthetic_pair(300, 8, noise=0.0, n_identical=5, seed=3)
    src, tgt = pair.src.vectors, pair.tgt.vectors
    torch.testing.assert_close(
        src[pair.gold[:, 0]] @ pair.rotation.T, tgt[pair.gold[:, 1]], atol=1e-5, rtol=0
    )
    assert sorted(pair.gold[:, 1].tolist()) == list(range(300))
    assert not torch.equal(pair.gold[:, 1], torch.arange(300))  # the target vocabulary is shuffled
    shared = [w for w in pair.src.words if w in pair.tgt.word2id]
    assert len(shared) == 5
    dm = SyntheticEmbeddingsDataModule(n_words=300, dim=8, n_eval=100, n_train=50, dico_train="default")
    dm.setup("fit")
    assert len(dm.dico_eval) == 100 and len(dm.dico_train) == 50
    assert not set(dm.dico_eval[:, 0].tolist()) & set(dm.dico_train[:, 0].tolist())
