"""``ExportAlignment``: at the end of ``fit``, write the aligned embeddings (MUSE's ``--export``).
``TranslationWriter``: what ``predict`` writes, the induced translations and the mapped source vocabulary."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from lit_digest.core.callbacks import run_dir
from lit_digest.core.lightning import Callback, LightningModule, Trainer, pl
from lit_digest.core.outputs import announce
from lit_digest.muse.export import write_vec

__all__ = ["ExportAlignment", "TranslationWriter"]


class ExportAlignment(Callback):
    """Writes every word of both vocabularies, the source side mapped by the best W, as MUSE's export:
    ``vectors-<src>.txt`` / ``vectors-<tgt>.txt`` (``fmt="vec"``) or ``.pth``, streamed from the
    original files by the DataModule (``EmbeddingsDataModule.export``).

    Args:
        fmt: ``"vec"`` (fastText text) or ``"pth"`` (``{"words", "vectors"}``).
        dirpath: output folder; ``None`` is ``<run folder>/export``.
    """

    def __init__(self, fmt: Literal["vec", "pth"] = "vec", dirpath: str | None = None) -> None:
        if fmt not in ("vec", "pth"):
            raise ValueError(f"ExportAlignment: fmt must be 'vec' or 'pth', got {fmt!r}")
        self.fmt, self.dirpath = fmt, dirpath

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        out = Path(self.dirpath) if self.dirpath else run_dir(trainer) / "export"
        if not trainer.is_global_zero:
            return
        paths = trainer.datamodule.export(pl_module.mapping.weight.detach().cpu(), out, self.fmt)
        pl.utilities.rank_zero_info(f"aligned embeddings written to {paths[0]} and {paths[1]}")


class TranslationWriter(pl.callbacks.BasePredictionWriter):
    """Writes what ``predict`` computes over the source vocabulary (both MUSE systems add it themselves):

    * ``translations.tsv``: a header, then one line per source word, most frequent first: the word, then its best
      target words by CSLS with their scores (``translation_1``, ``csls_1``, ... ``translation_5``, ``csls_5``);
    * ``vectors-<src>.txt``: the source words mapped by W into the target space (fastText ``.vec``; the target
      space is the DataModule's own ``tgt`` embeddings).

    Args:
        dirpath: the folder; ``None`` is the run folder.
    """

    def __init__(self, dirpath: str | None = None) -> None:
        super().__init__(write_interval="batch")
        self.dirpath = dirpath
        self.parts: list[dict[str, torch.Tensor]] = []
        self.paths: list[Path] = []

    def on_predict_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.parts = []

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx,
                           dataloader_idx=0) -> None:
        self.parts.append({k: v.detach().cpu() for k, v in prediction.items()})

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.parts or not trainer.is_global_zero:
            return
        data = trainer.datamodule
        src, tgt = data.src.words, data.tgt.words
        folder = Path(self.dirpath) if self.dirpath else run_dir(trainer)
        folder.mkdir(parents=True, exist_ok=True)
        index = torch.cat([p["index"] for p in self.parts])
        translations = torch.cat([p["translations"] for p in self.parts]).tolist()
        csls = torch.cat([p["csls"] for p in self.parts]).tolist()
        k = len(translations[0])
        header = "\t".join(["source", *(f"translation_{j}\tcsls_{j}" for j in range(1, k + 1))])
        lines = [header] + ["\t".join([src[i], *(f"{tgt[t]}\t{c:.4f}" for t, c in zip(ts, cs))])
                            for i, ts, cs in zip(index.tolist(), translations, csls)]
        table = folder / "translations.tsv"
        table.write_text("\n".join(lines) + "\n", encoding="utf-8")
        vectors = folder / f"vectors-{data.src_lang}.txt"
        write_vec(vectors, (([src[i] for i in p["index"].tolist()], p["mapped"]) for p in self.parts))
        self.paths = [table, vectors]
        announce(table, len(lines) - 1, "translated words")
        announce(vectors, len(index), "mapped source embeddings")
