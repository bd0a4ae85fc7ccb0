"""MUSE's LightningDataModules: two monolingual embedding spaces and their dictionaries, from the official
files (fastText Wikipedia vectors, MUSE dictionaries) or any local ones, or synthetic."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from lit_digest.core.download import fetch, missing_data_error
from lit_digest.core.lightning import LightningDataModule
from lit_digest.muse.dictionary import identical_strings_dictionary, read_dictionary
from lit_digest.muse.export import export_aligned, write_vec
from lit_digest.muse.synthetic import SyntheticPair, make_synthetic_pair
from lit_digest.muse.vec_io import Embeddings, _parse_ops, load_embeddings, normalize_embeddings

__all__ = ["DICTIONARY_SPLITS", "EmbeddingsDataModule", "SyntheticEmbeddingsDataModule", "official_dictionary",
           "official_vectors"]

VECTORS_URL = "https://dl.fbaipublicfiles.com/fasttext/vectors-wiki/wiki.{lang}.vec"
DICTIONARY_URL = "https://dl.fbaipublicfiles.com/arrival/dictionaries/{src}-{tgt}{suffix}.txt"
DICTIONARY_SPLITS = {"full": "", "train": ".0-5000", "test": ".5000-6500"}


def official_vectors(data_dir: str | os.PathLike, lang: str) -> tuple[Path, str]:
    """Where the fastText Wikipedia vectors of ``lang`` go, and their URL."""
    return Path(data_dir) / f"wiki.{lang}.vec", VECTORS_URL.format(lang=lang)


def official_dictionary(
    data_dir: str | os.PathLike, src: str, tgt: str, split: str = "test"
) -> tuple[Path, str]:
    """Where a MUSE dictionary goes, and its URL; ``split``: "train" (0-5000), "test" (5000-6500), "full"."""
    if split not in DICTIONARY_SPLITS:
        raise ValueError(f"split must be one of {sorted(DICTIONARY_SPLITS)}, got {split!r}")
    suffix = DICTIONARY_SPLITS[split]
    return Path(data_dir) / "dictionaries" / f"{src}-{tgt}{suffix}.txt", DICTIONARY_URL.format(
        src=src, tgt=tgt, suffix=suffix
    )


class _Ticks(IterableDataset):
    """An endless stream of step numbers. MUSE's systems draw their word batches on the device and end each
    epoch by their own schedule, so the data only has to keep the training loop going."""

    def __iter__(self) -> Iterator[int]:
        return itertools.count()


class EmbeddingsDataModule(LightningDataModule):
    """Two monolingual embedding spaces and their dictionaries, for MUSE's LightningModules.

    After ``setup`` it holds ``src`` / ``tgt`` (``Embeddings``, normalised as asked),
    ``src_mean`` / ``tgt_mean`` (the ``center`` shifts, for export), ``dico_train`` and
    ``dico_eval`` ((p, 2) pairs or None). Paths left as None are the official files under
    ``data_dir`` (``wiki.<lang>.vec``, ``dictionaries/<src>-<tgt>.<split>.txt``), fetched when
    ``download`` is true and otherwise reported missing with their URL and the option to set.

    ``dico_train``: None (unsupervised), "default" (the official 0-5000 split),
    "identical_char" (words spelled the same in both vocabularies) or a path. ``dico_eval``:
    "default" (the official 5000-6500 split), a path, or None (criterion only).
    ``lowercase`` (MUSE's default when loading the training vocabulary) also applies to the
    dictionaries. ``src_words`` / ``tgt_words``: word lists for ``.npy`` / bare-tensor ``.pth``.
    ``normalize``: MUSE's ``--normalize_embeddings`` ("", "center", "renorm", "renorm,center,renorm" ...).

    Batches: training is an endless stream of step numbers (the systems sample word ids on the
    device and end their epochs themselves); validation and test yield the evaluation dictionary
    as one batch; ``predict`` yields the source vocabulary in chunks, to be mapped.
    """

    def __init__(
        self,
        src_lang: str = "en",
        tgt_lang: str = "es",
        src_emb: str | None = None,
        tgt_emb: str | None = None,
        data_dir: str = "data/muse",
        max_vocab: int = 200000,
        lowercase: bool = True,
        normalize: str = "",
        dico_train: str | None = None,
        dico_eval: str | None = "default",
        download: bool = False,
        src_words: str | None = None,
        tgt_words: str | None = None,
        predict_batch_size: int = 8192,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        _parse_ops(normalize)
        self.src_lang, self.tgt_lang = src_lang, tgt_lang
        self.src_emb_path, self.tgt_emb_path = src_emb, tgt_emb
        self.src_words_path, self.tgt_words_path = src_words, tgt_words
        self.data_dir, self.download = data_dir, download
        self.max_vocab, self.lowercase, self.normalize = max_vocab, lowercase, normalize
        self.dico_train_spec, self.dico_eval_spec = dico_train, dico_eval
        self.predict_batch_size = predict_batch_size
        self.src: Embeddings | None = None
        self.tgt: Embeddings | None = None
        self.src_mean: Tensor | None = None
        self.tgt_mean: Tensor | None = None
        self.dico_train: Tensor | None = None
        self.dico_eval: Tensor | None = None

    # files --------------------------------------------------------------------
    def _emb_file(self, given: str | None, lang: str) -> tuple[Path, str | None]:
        return (Path(given), None) if given is not None else official_vectors(self.data_dir, lang)

    def _dico_file(self, given: str, split: str) -> tuple[Path, str | None]:
        if given != "default":
            return Path(given), None
        return official_dictionary(self.data_dir, self.src_lang, self.tgt_lang, split)

    def _files(self) -> list[tuple[str, Path, str | None]]:
        """(option, path, download URL or None) of every file this configuration reads."""
        files = [
            ("src_emb", *self._emb_file(self.src_emb_path, self.src_lang)),
            ("tgt_emb", *self._emb_file(self.tgt_emb_path, self.tgt_lang)),
        ]
        if self.dico_train_spec not in (None, "identical_char"):
            files.append(("dico_train", *self._dico_file(self.dico_train_spec, "train")))
        if self.dico_eval_spec is not None:
            files.append(("dico_eval", *self._dico_file(self.dico_eval_spec, "test")))
        return files

    def _ensure(self, option: str) -> Path:
        _, path, url = next(f for f in self._files() if f[0] == option)
        if url is None:
            if not path.is_file():
                raise missing_data_error(f"{option} file", path, fix=f"set data.init_args.{option} to an existing file")
            return path
        try:
            return fetch(path, url, download=self.download)
        except FileNotFoundError as err:
            raise type(err)(f"data.init_args.{option} (default: the official file): {err}") from err

    # Lightning hooks ----------------------------------------------------------
    def prepare_data(self) -> None:
        if self.download:
            for option, _, _ in self._files():
                self._ensure(option)

    def _load_spaces(self) -> tuple[Embeddings, Embeddings]:
        src = load_embeddings(self._ensure("src_emb"), max_vocab=self.max_vocab, lowercase=self.lowercase,
                              words_path=self.src_words_path)
        tgt = load_embeddings(self._ensure("tgt_emb"), max_vocab=self.max_vocab, lowercase=self.lowercase,
                              words_path=self.tgt_words_path)
        return src, tgt

    def _load_dictionaries(self) -> None:
        if self.dico_train_spec == "identical_char":
            self.dico_train = identical_strings_dictionary(self.src.words, self.tgt.words)
        elif self.dico_train_spec is not None:
            self.dico_train = read_dictionary(self._ensure("dico_train"), self.src.word2id, self.tgt.word2id,
                                              lowercase=self.lowercase)
        if self.dico_eval_spec is not None:
            self.dico_eval = read_dictionary(self._ensure("dico_eval"), self.src.word2id, self.tgt.word2id,
                                             lowercase=self.lowercase)

    def setup(self, stage: str | None = None) -> None:
        if self.src is not None:
            return
        src, tgt = self._load_spaces()
        if src.dim != tgt.dim:
            raise ValueError(
                f"source vectors are {src.dim}-dimensional, target vectors {tgt.dim}-dimensional"
            )
        self.src_mean = normalize_embeddings(src.vectors, self.normalize)
        self.tgt_mean = normalize_embeddings(tgt.vectors, self.normalize)
        self.src, self.tgt = src, tgt
        self._load_dictionaries()

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Ticks(), batch_size=None)

    def _dictionary_loader(self) -> DataLoader:
        pairs = self.dico_eval if self.dico_eval is not None else torch.empty(0, 2, dtype=torch.long)
        return DataLoader([pairs], batch_size=None)

    def val_dataloader(self) -> DataLoader:
        return self._dictionary_loader()

    def test_dataloader(self) -> DataLoader:
        return self._dictionary_loader()

    def predict_dataloader(self) -> DataLoader:
        """The source vocabulary as ``(row ids, vectors)`` chunks: ``predict`` maps them with W."""
        rows = TensorDataset(torch.arange(len(self.src)), self.src.vectors)
        return DataLoader(rows, batch_size=self.predict_batch_size)

    # export -------------------------------------------------------------------
    def export(self, weight: Tensor, out_dir: str | os.PathLike, fmt: str = "vec") -> tuple[Path, Path]:
        """Every word of the two ``.vec`` files, mapped / normalised, streamed to ``out_dir``.

        As MUSE's export (``export_aligned``); embeddings loaded from ``.pth`` / ``.npy`` are
        exported from memory instead (the loaded vocabularies).
        """
        src_path, _ = self._emb_file(self.src_emb_path, self.src_lang)
        tgt_path, _ = self._emb_file(self.tgt_emb_path, self.tgt_lang)
        if src_path.suffix.lower() not in (".vec", ".txt") or tgt_path.suffix.lower() not in (".vec", ".txt"):
            return self._export_loaded(weight, out_dir, fmt)
        return export_aligned(
            src_path, tgt_path, weight, out_dir, src_lang=self.src_lang, tgt_lang=self.tgt_lang, fmt=fmt,
            normalize=self.normalize, src_mean=self.src_mean, tgt_mean=self.tgt_mean,
        )

    @torch.no_grad()
    def _export_loaded(self, weight: Tensor, out_dir: str | os.PathLike, fmt: str) -> tuple[Path, Path]:
        if self.src is None:
            raise RuntimeError("call setup() before export()")
        if fmt not in ("vec", "pth"):
            raise ValueError(f"fmt must be 'vec' or 'pth', got {fmt!r}")
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        w = weight.detach().cpu().float()
        step = 8192
        outputs = []
        for emb, lang, mapped in ((self.src, self.src_lang, True), (self.tgt, self.tgt_lang, False)):
            chunks = (
                (
                    emb.words[i : i + step],
                    emb.vectors[i : i + step] @ w.t() if mapped else emb.vectors[i : i + step],
                )
                for i in range(0, len(emb), step)
            )
            if fmt == "vec":
                out = out_dir / f"vectors-{lang}.txt"
                write_vec(out, chunks)
            else:
                out = out_dir / f"vectors-{lang}.pth"
                matrix = torch.empty_like(emb.vectors)
                for i, (_, x) in enumerate(chunks):
                    matrix[i * step : i * step + x.shape[0]] = x
                torch.save({"words": list(emb.words), "vectors": matrix}, out)
            outputs.append(out)
        return outputs[0], outputs[1]


class SyntheticEmbeddingsDataModule(EmbeddingsDataModule):
    """``EmbeddingsDataModule`` on ``make_synthetic_pair`` data: offline, seeded, any size.

    The evaluation dictionary is ``n_eval`` random gold pairs; ``dico_train`` is None, "default"
    (``n_train`` other gold pairs) or "identical_char" (the ``n_identical`` shared spellings).
    """

    def __init__(
        self,
        n_words: int = 2000,
        dim: int = 32,
        noise: float = 0.02,
        n_clusters: int = 24,
        n_identical: int = 0,
        n_train: int = 500,
        n_eval: int = 500,
        rotation_angle: float | None = None,
        seed: int = 0,
        normalize: str = "",
        dico_train: str | None = None,
    ) -> None:
        super().__init__(
            src_lang="src", tgt_lang="tgt", normalize=normalize, dico_train=dico_train, max_vocab=0
        )
        self.save_hyperparameters()
        self.n_words, self.dim, self.noise, self.n_clusters = n_words, dim, noise, n_clusters
        self.n_identical, self.n_train, self.n_eval, self.seed = n_identical, n_train, n_eval, seed
        self.rotation_angle = rotation_angle
        self.pair: SyntheticPair | None = None

    def prepare_data(self) -> None:
        pass

    def _load_spaces(self) -> tuple[Embeddings, Embeddings]:
        self.pair = make_synthetic_pair(
            self.n_words,
            self.dim,
            noise=self.noise,
            n_clusters=self.n_clusters,
            n_identical=self.n_identical,
            rotation_angle=self.rotation_angle,
            seed=self.seed,
        )
        return self.pair.src, self.pair.tgt

    def _load_dictionaries(self) -> None:
        order = torch.randperm(self.n_words, generator=torch.Generator().manual_seed(self.seed + 1))
        gold = self.pair.gold
        n_eval = min(self.n_eval, self.n_words // 2)  # leave words for a training dictionary
        eval_ids = order[:n_eval]
        self.dico_eval = gold[eval_ids.sort().values] if n_eval > 0 else None
        if self.dico_train_spec == "identical_char":
            self.dico_train = identical_strings_dictionary(self.src.words, self.tgt.words)
        elif self.dico_train_spec is not None:
            train_ids = order[n_eval : n_eval + self.n_train]
            self.dico_train = gold[train_ids.sort().values]

    def export(self, weight: Tensor, out_dir: str | os.PathLike, fmt: str = "vec") -> tuple[Path, Path]:
        return self._export_loaded(weight, out_dir, fmt)
