"""``ExportAlignment``: at the end of ``fit``, write the aligned embeddings (MUSE's ``--export``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from lit_digest.core.callbacks import run_dir
from lit_digest.core.lightning import Callback, LightningModule, Trainer, pl

__all__ = ["ExportAlignment"]


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
