"""What ``predict`` writes for a table: one CSV row per input row, keyed by the row's index in the input table.

``python -m lit_digest predict --config configs/saint/wine.yaml --ckpt_path <ckpt>`` writes
``<run folder>/predictions.csv`` (the test split, or the rows of ``data.init_args.predict_table``):

* ``row``: the row's index in the table it came from (the bundled table's, the file's line order, or the
  DataFrame's index);
* ``target``: the row's known target, when the rows have one (empty otherwise);
* ``predicted``: the most probable class (its label as in the table), or the predicted value in the target's
  units (regression);
* ``p_<class>``: the probability of every class (classification).

``SAINTPretrain`` writes ``embeddings.csv`` instead: the row, then ``e0 .. e<d-1>``, the CLS token's contextual
embedding (the features a fine-tuned SAINT's head reads).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from lit_digest.core.callbacks import run_dir
from lit_digest.core.lightning import LightningModule, Trainer, pl
from lit_digest.core.outputs import announce
from lit_digest.tabular.encoding import TableBatch, TableSchema

__all__ = ["TablePredictionWriter", "prediction_frame", "embedding_frame"]


def prediction_frame(rows: np.ndarray, outputs: Tensor, y: Tensor, schema: TableSchema) -> pd.DataFrame:
    """``outputs``: class probabilities ``(N, classes)`` or regression values ``(N,)`` in the target's units;
    ``y``: the encoded targets ``(N,)`` (class index, -1 unknown; standardised value, NaN unknown)."""
    if schema.task == "regression":
        known = y.double() * schema.target_std + schema.target_mean
        return pd.DataFrame({"row": rows, "target": known.numpy(), "predicted": outputs.double().numpy()})
    classes = np.asarray(schema.classes, dtype=object)
    labels = y.numpy()
    target = np.where(labels >= 0, classes[np.clip(labels, 0, None)], None)
    frame = pd.DataFrame({"row": rows, "target": target, "predicted": classes[outputs.argmax(1).numpy()]})
    for j, name in enumerate(schema.classes):
        frame[f"p_{name}"] = outputs[:, j].double().numpy()
    return frame


def embedding_frame(rows: np.ndarray, features: Tensor) -> pd.DataFrame:
    """One row per input row: its index, then ``e0 .. e<d-1>``."""
    values = features.double().numpy()
    return pd.concat([pd.DataFrame({"row": rows}),
                      pd.DataFrame(values, columns=[f"e{j}" for j in range(values.shape[1])])], axis=1)


class TablePredictionWriter(pl.callbacks.BasePredictionWriter):
    """Collects ``predict``'s outputs and writes them as one CSV in the run folder (``predictions.csv`` or
    ``embeddings.csv``, module docstring); every tabular LightningModule adds it (``configure_callbacks``).

    Args:
        kind: ``predictions`` (``SAINT``, ``TabularMLP``) or ``embeddings`` (``SAINTPretrain``).
        dirpath: the folder; ``None`` is the run folder.
    """

    def __init__(self, kind: Literal["predictions", "embeddings"] = "predictions", dirpath: str | None = None) -> None:
        super().__init__(write_interval="batch")
        if kind not in ("predictions", "embeddings"):
            raise ValueError(f"TablePredictionWriter: kind must be 'predictions' or 'embeddings', got {kind!r}")
        self.kind, self.dirpath = kind, dirpath
        self.parts: list[tuple[np.ndarray, Tensor, Tensor]] = []
        self.path: Path | None = None

    def on_predict_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.parts = []

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx,
                           dataloader_idx=0) -> None:
        positions = np.asarray(list(batch_indices) if batch_indices is not None else [], dtype=np.int64)
        y = TableBatch(*batch).y.detach().cpu()
        self.parts.append((positions, prediction.detach().float().cpu(), y))

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.parts:
            return
        positions = np.concatenate([p for p, _, _ in self.parts])
        outputs, y = torch.cat([o for _, o, _ in self.parts]), torch.cat([t for _, _, t in self.parts])
        if len(positions) != len(outputs):  # a loader without index tracking: number the rows in order
            positions = np.arange(len(outputs))
        index = getattr(trainer.datamodule, "predict_index", None)
        rows = index()[positions] if callable(index) else positions
        if self.kind == "embeddings":
            frame, unit = embedding_frame(rows, outputs), "row embeddings"
        else:
            frame, unit = prediction_frame(rows, outputs, y, pl_module.schema), "row predictions"
        folder = Path(self.dirpath) if self.dirpath else run_dir(trainer)
        suffix = f"_rank{trainer.global_rank}" if trainer.world_size > 1 else ""
        self.path = folder / f"{self.kind}{suffix}.csv"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(self.path, index=False)
        announce(self.path, len(frame), unit)
