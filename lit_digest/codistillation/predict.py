"""What ``predict`` writes for codistillation: every group's prediction and the ensemble's, in one file.

Classifiers (image configs): ``<run folder>/predictions.csv``, one row per sample of each predict split:
``split``, ``index`` (the sample's index in its split), ``target``, ``predicted_group<g>`` for every group,
``predicted_ensemble`` (the class of the groups' mean probability, what a user of the codistilled models would
average), then ``p_ensemble_<c>`` and ``p_group<g>_<c>`` (probabilities). Language models (``ByteTextDataModule``
with prompts): ``<run folder>/completions.jsonl``, one line per prompt, ``{"prompt", "group0", ..., "ensemble"}``.

Under a multi-process strategy every rank predicts its share with every group's live weights (the strategy hands
them to every rank); rank 0 gathers the rows and writes the file once.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist

from lit_digest.core.callbacks import run_dir
from lit_digest.core.lightning import LightningModule, Trainer, pl
from lit_digest.core.outputs import announce

__all__ = ["CodistillationPredictionWriter", "prediction_frame"]


def prediction_frame(split: list[str], index: np.ndarray, targets: np.ndarray, probs: np.ndarray) -> pd.DataFrame:
    """``probs``: ``(G, N, C)`` every group's class probabilities; the ensemble is their mean."""
    groups, _, classes = probs.shape
    ensemble = probs.mean(0)  # (N, C)
    frame = pd.DataFrame({"split": split, "index": index, "target": targets})
    for g in range(groups):
        frame[f"predicted_group{g}"] = probs[g].argmax(-1)
    frame["predicted_ensemble"] = ensemble.argmax(-1)
    for c in range(classes):
        frame[f"p_ensemble_{c}"] = ensemble[:, c]
    for g in range(groups):
        for c in range(classes):
            frame[f"p_group{g}_{c}"] = probs[g, :, c]
    return frame


def _gather(rows: list) -> list | None:
    """Every rank's ``rows`` on rank 0 (None elsewhere); as they are in one process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return rows
    gathered = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(rows, gathered, dst=0)
    return None if gathered is None else [row for part in gathered for row in part]


class CodistillationPredictionWriter(pl.callbacks.BasePredictionWriter):
    """Collects ``Codistillation.predict_step``'s outputs and writes them (module docstring); ``Codistillation``
    adds it itself (``configure_callbacks``).

    Args:
        dirpath: the folder; ``None`` is the run folder.
    """

    def __init__(self, dirpath: str | None = None) -> None:
        super().__init__(write_interval="batch")
        self.dirpath = dirpath
        self.rows: list = []
        self.path: Path | None = None

    def on_predict_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.rows = []

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx,
                           dataloader_idx=0) -> None:
        if "completions" in prediction:
            self.rows += prediction["completions"]
            return
        names = getattr(trainer.datamodule, "predict_split_names", None)
        split = names[dataloader_idx] if names and dataloader_idx < len(names) else str(dataloader_idx)
        probs = prediction["probs"].float().cpu().numpy()  # (G, B, C)
        targets = prediction["targets"].cpu().numpy()
        index = list(batch_indices) if batch_indices is not None else [None] * len(targets)
        self.rows += [(split, int(i) if i is not None else None, int(t), probs[:, j]) for j, (i, t) in
                      enumerate(zip(index, targets))]

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        folder = Path(self.dirpath) if self.dirpath else run_dir(trainer)  # a broadcast: every rank asks
        rows = _gather(self.rows)
        if rows is None or not rows:
            return
        folder.mkdir(parents=True, exist_ok=True)
        if isinstance(rows[0], dict):
            self.path = folder / "completions.jsonl"
            self.path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
            announce(self.path, len(rows), "completions")
            return
        unique: dict = {}
        for n, row in enumerate(rows):  # a distributed sampler repeats a few samples to even out the ranks
            unique.setdefault((row[0], row[1] if row[1] is not None else n), row)
        rows = sorted(unique.values(), key=lambda r: (r[0], -1 if r[1] is None else r[1]))
        probs = np.stack([r[3] for r in rows], axis=1)  # (G, N, C)
        index = np.array([-1 if r[1] is None else r[1] for r in rows])
        frame = prediction_frame([r[0] for r in rows], index, np.array([r[2] for r in rows]), probs)
        self.path = folder / "predictions.csv"
        frame.to_csv(self.path, index=False)
        announce(self.path, len(frame), "predictions")


@torch.no_grad()
def sample_bytes(models: list[torch.nn.Module], prompt: torch.Tensor, new: int, generator: torch.Generator,
                 temperature: float = 1.0) -> list[int]:
    """``new`` bytes after ``prompt (1, L)``, drawn from the mean next-byte distribution of ``models`` (one model:
    its own); each model maps ``(1, T)`` tokens to ``(1, T, 256)`` logits and reads the whole text every step."""
    tokens = prompt
    out: list[int] = []
    for _ in range(new):
        probs = torch.stack([(m(tokens)[0, -1].float() / temperature).softmax(-1) for m in models]).mean(0)  # (V,)
        nxt = torch.multinomial(probs.cpu(), 1, generator=generator)
        out.append(int(nxt))
        tokens = torch.cat([tokens, nxt.to(tokens.device).view(1, 1)], dim=1)
    return out
