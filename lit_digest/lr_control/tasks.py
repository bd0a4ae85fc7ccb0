"""Small offline training tasks: the meta-training pool and the held-out tasks of the speedup table.

A task is a ``TaskSpec``: a data set held in memory (scikit-learn's digits, breast cancer and wine,
Fashion-MNIST from Debian's ``/usr/share/datasets/fashion-mnist``, a byte-level corpus from Debian's fortunes or,
when absent, lit_digest's own source), a model built from explicit sizes, a batch size and a step budget.
``TaskModule`` is the LightningModule that trains one with AdamW under one of the paper's seven baseline
schedules (``SCHEDULES``). Tasks whose data are missing on a machine are skipped by ``available``.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import logging
import math
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler

from lit_digest.core.lightning import NAMESPACE, Callback, LightningDataModule, LightningModule, Trainer, pl
from lit_digest.core.optim import Optim, make_optimizer

__all__ = ["TaskSpec", "TaskModule", "TaskData", "SCHEDULES", "schedule_factor", "POOL", "HELD_OUT", "available",
           "load_arrays", "task_loaders", "build_model", "run_task", "ValCurve", "scaled"]

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FORTUNES_DIR = Path("/usr/share/games/fortunes")
SCHEDULES = ("constant", "multistep", "linear", "quadratic", "exponential", "cosine", "cosine_to_0.1")
Data = Literal["digits", "breast_cancer", "wine", "fashion", "bytes"]
Model = Literal["mlp", "cnn", "gru", "context_mlp"]


def schedule_factor(kind: str, progress: float) -> float:
    """The paper's baseline schedules (arXiv 2106.00958, Sec. 4: constant, multi-step, linear decay, quadratic
    decay, exponential decay, cosine to 0, cosine to 0.1 of the initial lr) at ``progress`` in [0, 1]. Multi-step:
    x0.1 at 50% and 75% of the run; exponential: to 1% at the end."""
    p = min(max(progress, 0.0), 1.0)
    if kind == "constant":
        return 1.0
    if kind == "multistep":
        return 0.1 ** ((p >= 0.5) + (p >= 0.75))
    if kind == "linear":
        return 1.0 - p
    if kind == "quadratic":
        return (1.0 - p) ** 2
    if kind == "exponential":
        return 0.01**p
    if kind in ("cosine", "cosine_to_0.1"):
        floor = 0.1 if kind == "cosine_to_0.1" else 0.0
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p))
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {kind!r}")


@dataclass(frozen=True)
class TaskSpec:
    """One small task. ``lr`` is the AdamW learning rate the task starts from; ``steps`` its budget."""

    name: str
    data: Data
    model: Model
    hidden: int = 64
    depth: int = 2
    batch_size: int = 64
    steps: int = 320
    lr: float = 1e-3
    activation: Literal["relu", "tanh", "gelu"] = "relu"


# The meta-training pool: 4 data sets, 4 model families, budgets of 160-640 steps (about 0.3-3 s each on a CPU).
POOL: tuple[TaskSpec, ...] = (
    TaskSpec("digits-mlp", "digits", "mlp", hidden=64, depth=2, batch_size=32, steps=320),
    TaskSpec("digits-mlp-deep-tanh", "digits", "mlp", hidden=48, depth=4, batch_size=64, steps=480, activation="tanh"),
    TaskSpec("digits-mlp-wide", "digits", "mlp", hidden=256, depth=1, batch_size=128, steps=160),
    TaskSpec("digits-cnn", "digits", "cnn", hidden=16, depth=2, batch_size=64, steps=320, lr=3e-3),
    TaskSpec("cancer-mlp", "breast_cancer", "mlp", hidden=32, depth=2, batch_size=32, steps=160),
    TaskSpec("cancer-mlp-gelu", "breast_cancer", "mlp", hidden=128, depth=3, batch_size=64, steps=320,
             activation="gelu"),
    TaskSpec("fashion-mlp", "fashion", "mlp", hidden=128, depth=2, batch_size=64, steps=640),
    TaskSpec("fashion-mlp-small", "fashion", "mlp", hidden=32, depth=1, batch_size=32, steps=320, activation="tanh"),
    TaskSpec("bytes-context-mlp", "bytes", "context_mlp", hidden=128, depth=1, batch_size=32, steps=320),
    TaskSpec("bytes-context-mlp-deep", "bytes", "context_mlp", hidden=64, depth=3, batch_size=32, steps=320,
             activation="gelu"),
)
# Held out: a data set the pool never sees (wine), and model families it never trains (a CNN on Fashion-MNIST,
# a GRU language model on bytes).
HELD_OUT: tuple[TaskSpec, ...] = (
    TaskSpec("wine-mlp", "wine", "mlp", hidden=64, depth=2, batch_size=16, steps=320),
    TaskSpec("fashion-cnn", "fashion", "cnn", hidden=16, depth=2, batch_size=32, steps=320, lr=3e-3),
    TaskSpec("bytes-gru", "bytes", "gru", hidden=64, depth=1, batch_size=32, steps=320),
)


# -- data ------------------------------------------------------------------------------------------
def _fashion_file(name: str) -> np.ndarray:
    with gzip.open(FASHION_DIR / name, "rb") as f:
        raw = f.read()
    return np.frombuffer(raw, dtype=np.uint8, offset=16 if "images" in name else 8).copy()


def _byte_corpus() -> bytes:
    files = sorted(p for p in FORTUNES_DIR.glob("*") if p.is_file() and not p.suffix) if FORTUNES_DIR.is_dir() else []
    if not files:  # Debian's fortunes are absent: the package's own source is always there
        files = sorted(Path(__file__).resolve().parents[1].rglob("*.py"))
    return b"".join(p.read_bytes() for p in files)[:400_000]


@functools.lru_cache(maxsize=8)
def load_arrays(data: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_train, y_train, x_val, y_val)``: features float32 (tabular standardised on the training split, images
    in [0, 1] as ``(N, 1, H, W)``), labels int64; for ``bytes``, ``(N, 17)`` windows of byte values as both x and y."""
    rng = np.random.default_rng(0)
    if data == "bytes":
        corpus = np.frombuffer(_byte_corpus(), dtype=np.uint8)
        windows = torch.as_tensor(corpus[: len(corpus) // 17 * 17].reshape(-1, 17).astype(np.int64))
        order = torch.as_tensor(rng.permutation(len(windows)))
        val, train = windows[order[:512]], windows[order[512:]]
        return train, train, val, val
    if data == "fashion":
        x = _fashion_file("train-images-idx3-ubyte.gz").reshape(-1, 1, 28, 28)[:8000]
        y = _fashion_file("train-labels-idx1-ubyte.gz")[:8000]
        x = torch.nn.functional.avg_pool2d(torch.as_tensor(x, dtype=torch.float32) / 255, 2)  # (N, 1, 14, 14)
        y = torch.as_tensor(y.astype(np.int64))
        return x[:7000], y[:7000], x[7000:], y[7000:]
    from sklearn import datasets

    loader = {"digits": datasets.load_digits, "breast_cancer": datasets.load_breast_cancer,
              "wine": datasets.load_wine}[data]
    bunch = loader()
    x, y = bunch.data.astype(np.float32), bunch.target.astype(np.int64)
    order = rng.permutation(len(y))
    n_val = max(len(y) // 5, 1)
    val, train = order[:n_val], order[n_val:]
    if data == "digits":
        x = (x / 16.0).reshape(-1, 1, 8, 8)
    else:
        mean, std = x[train].mean(0), x[train].std(0) + 1e-6
        x = (x - mean) / std
    t = torch.as_tensor
    return t(x[train]), t(y[train]), t(x[val]), t(y[val])


def available(spec: TaskSpec) -> bool:
    return spec.data != "fashion" or (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file()


class _Batches(Dataset):
    """Indexed by a list of row numbers: whole batches in one indexing operation (no per-sample collation)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, rows):
        return self.x[rows], self.y[rows]


def task_loaders(spec: TaskSpec, seed: int) -> tuple[DataLoader, DataLoader]:
    """A shuffled training loader (its order seeded by ``seed``) and one validation batch of the whole split."""
    x, y, xv, yv = load_arrays(spec.data)
    train = _Batches(x, y)
    sampler = BatchSampler(RandomSampler(train, generator=torch.Generator().manual_seed(seed)), spec.batch_size,
                           drop_last=True)
    val = _Batches(xv, yv)
    return (DataLoader(train, sampler=sampler, batch_size=None),
            DataLoader(val, sampler=BatchSampler(range(len(val)), len(val), drop_last=False), batch_size=None))


# -- models ----------------------------------------------------------------------------------------
_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def _mlp(d_in: int, hidden: int, depth: int, d_out: int, activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(d_in if i == 0 else hidden, hidden), _ACTIVATIONS[activation]()]
    return nn.Sequential(*layers, nn.Linear(hidden if depth else d_in, d_out))


class _ConvNet(nn.Module):
    """``depth`` conv-ReLU blocks of ``hidden`` channels (stride 2 after the first), mean pooling, a linear head."""

    def __init__(self, channels: int, hidden: int, depth: int, classes: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        for i in range(depth):
            blocks += [nn.Conv2d(channels if i == 0 else hidden, hidden, 3, 1 if i == 0 else 2, 1), nn.ReLU()]
        self.features, self.head = nn.Sequential(*blocks), nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))  # (B, classes)


class _ByteLM(nn.Module):
    """Next-byte logits ``(B, T, 256)`` from byte ids ``(B, T)``: a GRU, or an MLP over the last 8 bytes."""

    context = 8

    def __init__(self, kind: str, hidden: int, depth: int, activation: str) -> None:
        super().__init__()
        self.kind = kind
        self.embed = nn.Embedding(256, 32)
        if kind == "gru":
            self.rnn = nn.GRU(32, hidden, num_layers=depth, batch_first=True)
            self.out = nn.Linear(hidden, 256)
        else:
            self.mlp = _mlp(32 * self.context, hidden, depth, 256, activation)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        e = self.embed(tokens)  # (B, T, 32)
        if self.kind == "gru":
            return self.out(self.rnn(e)[0])  # (B, T, 256)
        padded = nn.functional.pad(e, (0, 0, self.context - 1, 0))  # (B, T + C - 1, 32)
        windows = padded.unfold(1, self.context, 1)  # (B, T, 32, C)
        return self.mlp(windows.flatten(2))  # (B, T, 256)


def build_model(spec: TaskSpec) -> nn.Module:
    if spec.data == "bytes":
        return _ByteLM(spec.model, spec.hidden, spec.depth, spec.activation)
    x, y, _, _ = load_arrays(spec.data)
    classes = int(y.max()) + 1
    if spec.model == "cnn":
        return _ConvNet(x.shape[1], spec.hidden, spec.depth, classes)
    return _mlp(x[0].numel(), spec.hidden, spec.depth, classes, spec.activation)


class TaskModule(LightningModule):
    """Trains one ``TaskSpec`` with AdamW (weight decay 0.01, PyTorch's default) under ``schedule``: cross-entropy
    for classification, next-byte cross-entropy for the byte corpus; logs ``train/loss`` and ``val/loss``."""

    def __init__(self, spec: TaskSpec, lr: float | None = None, schedule: str = "constant",
                 weight_decay: float = 0.01) -> None:
        super().__init__()
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        self.save_hyperparameters()  # TaskSpec is plain settings: checkpoints load with load_from_checkpoint(path)
        self.spec, self.schedule = spec, schedule
        self.optim = Optim(name="adamw", lr=spec.lr if lr is None else lr, weight_decay=weight_decay)
        self.model = build_model(spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x if self.spec.data == "bytes" else x.flatten(1) if self.spec.model == "mlp" else x)

    def _loss(self, batch) -> torch.Tensor:
        x, y = batch
        if self.spec.data == "bytes":
            logits = self(x[:, :-1])  # (B, 16, 256)
            return nn.functional.cross_entropy(logits.flatten(0, 1), y[:, 1:].flatten())
        return nn.functional.cross_entropy(self(x), y)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        self.log("val/loss", self._loss(batch))

    def configure_optimizers(self):
        optimizer = make_optimizer(self.optim, [{"params": [p for p in self.parameters() if p.requires_grad]}])
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        factor = functools.partial(lambda step, kind: schedule_factor(kind, step / total), kind=self.schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": LambdaLR(optimizer, factor), "interval": "step"}}


class TaskData(LightningDataModule):
    """One task's data as a DataModule (``task_loaders``): its shuffled training batches (order seeded by ``seed``)
    and one validation batch of the whole split."""

    def __init__(self, spec: TaskSpec, seed: int = 0) -> None:
        super().__init__()
        self.spec, self.seed = spec, seed

    def train_dataloader(self) -> DataLoader:
        return task_loaders(self.spec, self.seed)[0]

    def val_dataloader(self) -> DataLoader:
        return task_loaders(self.spec, self.seed)[1]


def scaled(spec: TaskSpec, step_scale: float, multiple: int) -> TaskSpec:
    """``spec`` with its budget times ``step_scale``, rounded to a multiple of ``multiple`` (at least one)."""
    steps = max(round(spec.steps * step_scale / multiple), 1) * multiple
    return replace(spec, steps=steps)


# -- one run ---------------------------------------------------------------------------------------
class ValCurve(Callback):
    """``points``: ``(global_step, val/loss)`` after each validation; stops a run whose training loss is not finite
    (meta-training scores it as the worst speedup; nothing is learned from its remaining steps)."""

    def __init__(self) -> None:
        self.points: list[tuple[int, float]] = []

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and "val/loss" in trainer.callback_metrics:
            self.points.append((trainer.global_step, float(trainer.callback_metrics["val/loss"])))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None and not bool(torch.isfinite(loss)):
            trainer.should_stop = True


@contextlib.contextmanager
def quiet_inner_runs() -> Iterator[None]:
    """Silences Lightning's per-Trainer banners and its small-data advice for the many short inner runs."""
    logger = logging.getLogger(NAMESPACE)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=pl.utilities.warnings.PossibleUserWarning)
            yield
    finally:
        logger.setLevel(level)


@torch.no_grad()
def _val_loss(module: TaskModule, loader: DataLoader) -> float:
    return float(sum(module._loss(batch) for batch in loader) / len(loader))


def run_task(spec: TaskSpec, seed: int, lr: float | None = None, schedule: str = "constant",
             callbacks: Sequence[Callback] = (), val_points: int = 16) -> tuple[float, list[tuple[int, float]]]:
    """Trains ``spec`` from seed ``seed`` on the CPU, validating ``val_points`` times; returns the validation loss
    at initialisation and the ``(step, val/loss)`` curve. The caller's random state is left as it was."""
    if spec.steps % val_points:
        raise ValueError(f"{spec.name}: {spec.steps} steps do not split into {val_points} validation intervals")
    with torch.random.fork_rng(devices=[]), quiet_inner_runs(), tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(seed)
        module = TaskModule(spec, lr=lr, schedule=schedule)
        train, val = task_loaders(spec, seed)
        initial = _val_loss(module, val)
        curve = ValCurve()
        trainer = Trainer(accelerator="cpu", devices=1, max_steps=spec.steps,
                          val_check_interval=spec.steps // val_points, check_val_every_n_epoch=None,
                          num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                          enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp,
                          callbacks=[*callbacks, curve])
        trainer.fit(module, train, val)
    return initial, curve.points
