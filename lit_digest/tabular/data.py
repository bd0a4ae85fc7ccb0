"""Any table as SAINT's inputs: a DataModule over a DataFrame, a CSV or Parquet file, or a bundled table.

Columns are the ``target``, the categorical ones (named, or detected: every non-numeric column) and the
continuous ones (named, or every other numeric column). Rows are split once, seeded and stratified by the
class for classification: test, validation and training (65 / 15 / 20 % by default, the official
code's ``datasplit=[.65, .15, .2]``, ``data_openml.py``). Everything fitted is fitted on the training
split alone (``TablePreprocessor``):

* categorical columns: a vocabulary of the values seen in training, indexed from 1; index 0 is the
  column's missing-value token, for missing values and for values never seen in training. SAINT embeds
  it like any category (the official code encodes missing values as a ``"MissingValue"`` category);
* continuous columns: standardised with the training mean and standard deviation (a deviation below
  1e-6 counts as 1e-6, as in the official code); a missing value becomes 0 (the training mean) and its
  mask entry 0, and SAINT replaces its embedding by a learned missing-value embedding of the column
  (the official ``con_mask`` / ``mask_embeds_cont``);
* the target: class labels of the training split for classification (index order: sorted labels);
  for regression, standardised with the training mean and deviation (models predict the standardised
  value; ``TableSchema.target_mean`` / ``target_std`` map it back).

Semi-supervised runs keep the labels of a stratified, seeded part of the training split only
(``labels_fraction`` or ``labels_count``); ``train_rows: all`` serves every training row (labels unused)
for pre-training.

Before anything is fitted, the rows without a target are dropped (and counted), a feature column with no
value at all or an infinite value is refused with its name, id-like columns are dropped unless named
(``lit_digest.tabular.columns``), and the roles found for every column are printed.

Batches are ``TableBatch(x_cat (B, C) long, x_cont (B, N) float, cont_mask (B, N) float, y (B,))``.
Training batches are shuffled, and every training row is in one batch each epoch: the epoch's rows are cut
into ``ceil(rows / batch_size)`` batches of sizes that differ by one at most (``EvenBatchSampler``), so no
row is dropped and no batch is a handful of rows (a row-attention batch of a few rows is a different model
input). Validation, test and predict batches keep the table's order and a fixed ``eval_batch_size``, so
every run groups the same rows together. ``row_index`` keeps, for every split, each row's index in the
input table, which ``predict`` writes beside its predictions.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from lit_digest.core.lightning import LightningDataModule
from lit_digest.tabular.columns import check_values, describe_roles, id_like, is_numeric, say
from lit_digest.tabular.encoding import TableBatch, TablePreprocessor, TableSchema, Task
from lit_digest.tabular.tables import read_table

__all__ = ["TableBatch", "TableSchema", "TablePreprocessor", "TableDataset", "TabularDataModule", "Task",
           "EvenBatchSampler"]


class TableDataset(Dataset):
    """Rows of an encoded table; ``__getitems__`` hands the DataLoader whole batches (no per-row collation)."""

    def __init__(self, tensors: TableBatch) -> None:
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors.y)

    def __getitem__(self, i: int) -> TableBatch:
        return TableBatch(*(t[i] for t in self.tensors))

    def __getitems__(self, indices: list[int]) -> TableBatch:
        index = torch.as_tensor(indices, dtype=torch.long)
        return TableBatch(*(t[index] for t in self.tensors))


def _whole_batch(batch: TableBatch) -> TableBatch:
    return batch


class EvenBatchSampler(BatchSampler):
    """The rows of ``sampler`` (each epoch's order) in ``ceil(n / batch_size)`` batches whose sizes differ by one
    at most: every row once per epoch, no batch much smaller than the others. Lightning can rebuild it around a
    distributed sampler (same arguments as ``BatchSampler``)."""

    def __init__(self, sampler, batch_size: int, drop_last: bool = False) -> None:
        super().__init__(sampler, batch_size, drop_last=False)

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def __iter__(self):
        order = list(self.sampler)
        batches = max(1, math.ceil(len(order) / self.batch_size))
        base, extra = divmod(len(order), batches)
        start = 0
        for b in range(batches):
            size = base + (b < extra)
            yield order[start:start + size]
            start += size


def _stratified_split(frame: pd.DataFrame, fraction: float, stratify: pd.Series | None, seed: int,
                      what: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    try:
        return train_test_split(frame, test_size=fraction, random_state=seed, stratify=stratify)
    except ValueError as err:  # a class with a single row, a fraction rounding to zero rows ...
        raise ValueError(f"Cannot split off the {what} split ({fraction:.3g} of {len(frame)} rows): {err}") from err


class TabularDataModule(LightningDataModule):
    """Train / validation / test splits of one table, preprocessed for SAINT and the baselines.

    Args:
        table: a bundled table (``breast_cancer``, ``wine``, ``diabetes``, ``fair``) or a ``.csv`` / ``.parquet``
            path. ``TabularDataModule.from_frame(df, target=...)`` takes a DataFrame.
        target: the target column (bundled tables have their own default).
        categorical: categorical columns; ``None`` detects them (every non-numeric column, and a bundled
            table's coded categories).
        continuous: continuous columns; ``None`` takes every other column (all must be numeric).
        drop: columns to ignore (ids, leaks).
        task: ``binary``, ``multiclass`` or ``regression``; ``None`` guesses: a non-numeric target or an integer
            one with at most 20 values is a classification (2 values: binary).
        val_fraction, test_fraction: of all rows (official: 0.15, 0.2).
        split_seed: seed of the splits and of the labelled subset.
        labels_fraction / labels_count: keep the labels of this part / this many rows of the training split
            (stratified, seeded); both unset: every label.
        train_rows: ``labelled`` (supervised training) or ``all`` (pre-training: every training row).
        batch_size: training batch (official: 256); eval_batch_size: validation / test / predict batch.
        predict_table: a ``.csv`` / ``.parquet`` file of rows to predict, with this table's feature columns (the
            target is optional); ``None`` predicts the test split.
        verbose: print the rows, the task and the role of every column when the table is read.
    """

    def __init__(
        self,
        table: str = "breast_cancer",
        target: str | None = None,
        categorical: list[str] | None = None,
        continuous: list[str] | None = None,
        drop: list[str] | None = None,
        task: Task | None = None,
        val_fraction: float = 0.15,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        labels_fraction: float | None = None,
        labels_count: int | None = None,
        train_rows: Literal["labelled", "all"] = "labelled",
        batch_size: int = 256,
        eval_batch_size: int = 256,
        num_workers: int = 0,
        predict_table: str | None = None,
        verbose: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0.0 < value < 1.0:
                raise ValueError(f"data.init_args.{name} must be in (0, 1), got {value}")
        if val_fraction + test_fraction >= 1.0:
            raise ValueError(f"val_fraction + test_fraction = {val_fraction + test_fraction} leaves no training rows")
        if labels_fraction is not None and labels_count is not None:
            raise ValueError("set data.init_args.labels_fraction or labels_count, not both")
        if labels_fraction is not None and not 0.0 < labels_fraction <= 1.0:
            raise ValueError(f"data.init_args.labels_fraction must be in (0, 1], got {labels_fraction}")
        if labels_count is not None and labels_count < 1:
            raise ValueError(f"data.init_args.labels_count must be >= 1, got {labels_count}")
        if train_rows not in ("labelled", "all"):
            raise ValueError(f"data.init_args.train_rows must be 'labelled' or 'all', got {train_rows!r}")
        self.save_hyperparameters()
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self._frame: pd.DataFrame | None = None
        self.preprocessor: TablePreprocessor | None = None
        self.splits: dict[str, TableBatch] = {}
        self.row_index: dict[str, np.ndarray] = {}  # per split: each row's index in the input table

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, target: str, **kwargs: Any) -> TabularDataModule:
        """A DataModule over an in-memory DataFrame (``table`` then only names it in messages)."""
        module = cls(table=kwargs.pop("table", "DataFrame"), target=target, **kwargs)
        module._frame = frame
        return module

    # -- reading and checking -----------------------------------------------------------------------------
    def _source(self) -> str:
        table = self.hparams.table
        return f"the DataFrame '{table}'" if self._frame is not None else f"table '{table}'"

    def _columns(self, frame: pd.DataFrame, bundled_target: str,
                 bundled_cat: list[str]) -> tuple[str, list, list, list]:
        hp, source = self.hparams, self._source()
        target = hp.target or bundled_target
        if not target:
            raise ValueError(f"No target column for {source}: set data.init_args.target to one of "
                             f"{list(frame.columns)}")
        named = [target, *(hp.categorical or []), *(hp.continuous or []), *(hp.drop or [])]
        unknown = [c for c in named if c not in frame.columns]
        if unknown:
            raise ValueError(f"Column(s) {unknown} not in {source}; its columns are {list(frame.columns)}. "
                             "Fix data.init_args.target / categorical / continuous / drop.")
        features = [c for c in frame.columns if c != target and c not in (hp.drop or [])]
        named = {*(hp.categorical or []), *(hp.continuous or []), *bundled_cat}
        automatic = hp.categorical is None or hp.continuous is None
        id_columns = [c for c in features if automatic and c not in named and id_like(frame[c])]
        features = [c for c in features if c not in id_columns]
        if hp.categorical is not None:
            categorical = list(hp.categorical)
        else:
            categorical = [c for c in features if c in bundled_cat or not is_numeric(frame[c])]
            categorical = [c for c in categorical if hp.continuous is None or c not in hp.continuous]
        continuous = list(hp.continuous) if hp.continuous is not None else [c for c in features if c not in categorical]
        both = sorted(set(categorical) & set(continuous))
        if both:
            raise ValueError(f"Column(s) {both} of {source} are named both categorical and continuous.")
        for column in continuous:
            if not is_numeric(frame[column]):
                example = frame[column].dropna().astype(str).head(3).tolist()
                raise ValueError(f"Continuous column '{column}' of {source} is not numeric (dtype "
                                 f"{frame[column].dtype}, values like {example}): list it in "
                                 "data.init_args.categorical, or drop it.")
        if not categorical and not continuous:
            raise ValueError(f"{source} has no feature columns besides the target '{target}'.")
        return target, categorical, continuous, id_columns

    def _task(self, labels: pd.Series) -> Task:
        if self.hparams.task is not None:
            return self.hparams.task
        values = labels.dropna()
        if not is_numeric(values) or (np.allclose(values, np.round(values)) and values.nunique() <= 20):
            return "binary" if values.nunique() == 2 else "multiclass"
        return "regression"

    # -- Lightning hooks ----------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        hp = self.hparams
        if self._frame is not None:
            frame, bundled_target, bundled_cat = self._frame, "", []
        else:
            bundled = read_table(hp.table)
            frame, bundled_target, bundled_cat = bundled.frame, bundled.target, bundled.categorical
        target, categorical, continuous, id_columns = self._columns(frame, bundled_target, bundled_cat)
        check_values(frame, target, categorical, continuous, self._source())
        labelled = frame[target].notna().to_numpy()
        labels = frame.index.to_numpy()[labelled]  # the input's row index, kept beside the positions
        frame = frame[labelled].reset_index(drop=True)
        if frame.empty:
            raise ValueError(f"The target column '{target}' of {self._source()} has no value.")
        task = self._task(frame[target])
        stratify = frame[target].astype(str) if task != "regression" else None
        rest, test = _stratified_split(frame, hp.test_fraction, stratify, hp.split_seed, "test")
        val_share = hp.val_fraction / (1.0 - hp.test_fraction)
        train, val = _stratified_split(rest, val_share, None if stratify is None else stratify[rest.index],
                                       hp.split_seed, "validation")
        for name, part in (("training", train), ("validation", val), ("test", test)):
            if len(part) == 0:
                raise ValueError(f"The {name} split of {self._source()} is empty ({len(frame)} rows): use a larger "
                                 "table or change data.init_args.val_fraction / test_fraction.")
        prep = TablePreprocessor.fit(train, target, categorical, continuous, task, self._source())
        self.preprocessor = prep
        if hp.verbose:
            dropped = [c for c in frame.columns if c not in (target, *categorical, *continuous)]
            say(describe_roles(self._source(), len(frame), target, task, list(prep.schema.classes), categorical,
                               continuous, dropped, id_columns, int((~labelled).sum())))
        self.splits = {"train_all": prep.encode(train, "training"), "val": prep.encode(val, "validation"),
                       "test": prep.encode(test, "test")}
        self.row_index = {"train_all": labels[train.index], "val": labels[val.index], "test": labels[test.index]}
        kept = self._labelled(self.splits["train_all"], task)
        self.splits["train"] = TableBatch(*(t[kept] for t in self.splits["train_all"]))
        self.row_index["train"] = self.row_index["train_all"][kept.numpy()]

    def _labelled(self, train: TableBatch, task: Task) -> torch.Tensor:
        """The positions of the training rows whose labels are kept."""
        hp = self.hparams
        n = len(train.y)
        if hp.labels_fraction is None and hp.labels_count is None:
            return torch.arange(n)
        keep = hp.labels_count if hp.labels_count is not None else max(1, math.floor(hp.labels_fraction * n))
        if keep >= n:
            return torch.arange(n)
        stratify = train.y.numpy() if task != "regression" else None
        if stratify is not None and keep < len(np.unique(stratify)):
            raise ValueError(f"labels_count / labels_fraction keeps {keep} labelled rows of {self._source()}, "
                             f"fewer than its {len(np.unique(stratify))} classes: keep at least one row per class.")
        rows, _ = train_test_split(np.arange(n), train_size=keep, random_state=hp.split_seed, stratify=stratify)
        return torch.as_tensor(np.sort(rows))

    @property
    def schema(self) -> TableSchema:
        if self.preprocessor is None:
            self.setup()
        return self.preprocessor.schema

    def _loader(self, split: str, train: bool) -> DataLoader:
        if not self.splits:
            self.setup()
        rows = self.splits[split] if split in self.splits else self._predict_rows()
        data = TableDataset(rows)
        if train:
            batches = EvenBatchSampler(RandomSampler(data), self.batch_size)
        else:
            batches = BatchSampler(SequentialSampler(data), self.eval_batch_size, drop_last=False)
        return DataLoader(data, batch_sampler=batches, collate_fn=_whole_batch, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train_all" if self.hparams.train_rows == "all" else "train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)

    def predict_dataloader(self) -> DataLoader:
        """The test split, or the rows of ``predict_table``; ``predict_rows`` names them and ``row_index["predict"]``
        gives their index in that table."""
        return self._loader("test" if self.hparams.predict_table is None else "predict", train=False)

    def predict_index(self) -> np.ndarray:
        """The index, in their table, of the rows ``predict_dataloader`` serves (in its order)."""
        if "predict" not in self.row_index and self.hparams.predict_table is not None:
            self._predict_rows()
        return self.row_index["test" if self.hparams.predict_table is None else "predict"]

    @property
    def predict_rows(self) -> str:
        """What ``predict`` reads: ``test`` (the test split) or the ``predict_table`` file."""
        return "test" if self.hparams.predict_table is None else str(self.hparams.predict_table)

    def _predict_rows(self) -> TableBatch:
        frame = read_table(self.hparams.predict_table).frame
        self.row_index["predict"] = frame.index.to_numpy()
        return self.encode(frame)

    def state_dict(self) -> dict[str, Any]:
        """The fitted preprocessing, saved in Lightning checkpoints."""
        return {} if self.preprocessor is None else self.preprocessor.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            fitted = TablePreprocessor.from_state_dict(state)
            if self.preprocessor is not None and fitted.schema != self.preprocessor.schema:
                raise ValueError(f"The checkpoint's table schema differs from {self._source()}'s: {fitted.schema} vs "
                                 f"{self.preprocessor.schema}")
            self.preprocessor = fitted

    def encode(self, frame: pd.DataFrame | str | Path) -> TableBatch:
        """Rows of a DataFrame (or CSV / Parquet file) with this table's columns, encoded with the fitted
        preprocessing (for predictions on new rows)."""
        if not isinstance(frame, pd.DataFrame):
            frame = read_table(frame).frame
        prep = self.preprocessor or (self.setup() or self.preprocessor)
        missing = [c for c in (*prep.schema.categorical, *prep.schema.continuous) if c not in frame.columns]
        if missing:
            raise ValueError(f"The rows to encode lack column(s) {missing} of {self._source()}.")
        return prep.encode(frame, "given")
