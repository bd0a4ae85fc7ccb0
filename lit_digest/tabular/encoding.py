"""A table's rows as tensors: the schema a model is built from, and the preprocessing fitted on the training split.

* categorical columns: a vocabulary of the values seen in training, indexed from 1; index 0 is the column's
  missing-value token, for missing values and for values never seen in training;
* continuous columns: standardised with the training mean and standard deviation (floor 1e-6, as the official
  code); a missing value becomes 0 (the training mean) and its mask entry 0;
* the target: class labels of the training split (index order: sorted labels), or for regression the value
  standardised with the training mean and deviation (``TableSchema.target_mean`` / ``target_std`` map it back).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
import torch

__all__ = ["Task", "TableBatch", "TableSchema", "TablePreprocessor"]


Task = Literal["binary", "multiclass", "regression"]


class TableBatch(NamedTuple):
    x_cat: torch.Tensor  # (B, C) long: 0 = missing or unseen, 1.. = training vocabulary
    x_cont: torch.Tensor  # (B, N) float: standardised, 0 where missing
    cont_mask: torch.Tensor  # (B, N) float: 1 observed, 0 missing
    y: torch.Tensor  # (B,) long class index, or float standardised target; -1 / nan where unlabelled


@dataclass(frozen=True)
class TableSchema:
    """What a model needs to know of a table: its columns, their sizes and the task."""

    target: str
    task: Task
    categorical: tuple[str, ...]
    cardinalities: tuple[int, ...]  # per categorical column, the missing-value token included
    continuous: tuple[str, ...]
    classes: tuple[str, ...] = ()  # classification labels, in index order
    target_mean: float = 0.0  # regression: y = target_mean + target_std * prediction
    target_std: float = 1.0

    @property
    def num_outputs(self) -> int:
        """2 logits for binary tasks (the official code's ``y_dim = 2`` with cross-entropy), one per class,
        or 1 regression output."""
        return 1 if self.task == "regression" else len(self.classes)

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TableSchema:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


class TablePreprocessor:
    """Encoders, scalers and target classes fitted on the training rows only; ``encode`` turns any rows of
    the same table into tensors."""

    def __init__(self, schema: TableSchema, vocabularies: dict[str, list[str]], mean: list[float],
                 std: list[float], source: str = "the table") -> None:
        self.schema, self.vocabularies, self.source = schema, vocabularies, source
        self.mean, self.std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)

    @classmethod
    def fit(cls, train: pd.DataFrame, target: str, categorical: list[str], continuous: list[str], task: Task,
            source: str = "the table") -> TablePreprocessor:
        vocabularies = {c: sorted(train[c].dropna().astype(str).unique().tolist()) for c in categorical}
        values = train[continuous].to_numpy(dtype=np.float64) if continuous else np.zeros((len(train), 0))
        mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
        mean, std = np.nan_to_num(mean), np.where(np.isnan(std) | (std < 1e-6), 1e-6, std)  # official floor 1e-6
        labels = train[target].dropna()
        if task == "regression":
            y = labels.to_numpy(dtype=np.float64)
            classes, t_mean, t_std = (), float(y.mean()), float(max(y.std(), 1e-6))
        else:
            classes, t_mean, t_std = tuple(sorted(labels.astype(str).unique().tolist())), 0.0, 1.0
            if task == "binary" and len(classes) != 2:
                raise ValueError(f"task 'binary' needs 2 classes in column '{target}' of {source}, found "
                                 f"{len(classes)} in the training split: {list(classes)[:10]}")
        schema = TableSchema(target, task, tuple(categorical), tuple(len(vocabularies[c]) + 1 for c in categorical),
                             tuple(continuous), classes, t_mean, t_std)
        return cls(schema, vocabularies, mean.tolist(), std.tolist(), source)

    def encode(self, frame: pd.DataFrame, split: str = "rows") -> TableBatch:
        s = self.schema
        x_cat = np.zeros((len(frame), len(s.categorical)), dtype=np.int64)
        for j, column in enumerate(s.categorical):
            index = {v: i + 1 for i, v in enumerate(self.vocabularies[column])}
            values = frame[column]
            x_cat[:, j] = [0 if pd.isna(v) else index.get(str(v), 0) for v in values]
        raw = frame[list(s.continuous)].to_numpy(dtype=np.float64) if s.continuous else np.zeros((len(frame), 0))
        observed = ~np.isnan(raw)
        x_cont = np.where(observed, (raw - self.mean) / self.std, 0.0)
        unlabelled = np.full(len(frame), np.nan if s.task == "regression" else -1)
        y = self._encode_target(frame[s.target], split) if s.target in frame else unlabelled
        y_t = torch.as_tensor(y, dtype=torch.float32 if s.task == "regression" else torch.long)
        return TableBatch(torch.as_tensor(x_cat), torch.as_tensor(x_cont, dtype=torch.float32),
                          torch.as_tensor(observed, dtype=torch.float32), y_t)

    def _encode_target(self, labels: pd.Series, split: str) -> np.ndarray:
        s = self.schema
        if s.task == "regression":
            return ((labels.to_numpy(dtype=np.float64) - s.target_mean) / s.target_std).astype(np.float32)
        index = {c: i for i, c in enumerate(s.classes)}
        unknown = sorted({str(v) for v in labels.dropna() if str(v) not in index})
        if unknown:
            raise ValueError(f"The {split} split of {self.source} has classes of column '{s.target}' that the "
                             f"training split lacks: {unknown[:10]}. Use a larger table or a different "
                             "data.init_args.split_seed.")
        return np.array([-1 if pd.isna(v) else index[str(v)] for v in labels], dtype=np.int64)

    def state_dict(self) -> dict[str, Any]:
        return {"schema": self.schema.as_dict(), "vocabularies": self.vocabularies, "mean": self.mean.tolist(),
                "std": self.std.tolist(), "source": self.source}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> TablePreprocessor:
        return cls(TableSchema.from_dict(state["schema"]), state["vocabularies"], state["mean"], state["std"],
                   state.get("source", "the table"))
