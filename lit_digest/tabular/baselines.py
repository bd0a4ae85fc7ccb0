"""Baselines on the same splits as SAINT: an MLP (a LightningModule), gradient-boosted trees (LightGBM) and
logistic / linear regression (scikit-learn).

Inputs are the DataModule's encodings (``TableBatch``), so every model sees the same rows, the same fitted
preprocessing and the same missing values: the MLP and the linear models get one-hot categoricals (the
missing-value token is one of the columns), standardised continuous values and a missing indicator per
continuous column; LightGBM gets the category indices as categorical features and NaN where a continuous
value is missing (its own handling of both).
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lit_digest.core.optim import Optim
from lit_digest.tabular.data import TableBatch, TableSchema
from lit_digest.tabular.system import TabularSystem

__all__ = ["TabularMLP", "one_hot_features", "fit_lightgbm", "fit_linear"]


def one_hot_features(rows: TableBatch, schema: TableSchema) -> Tensor:
    """``[one-hot categoricals | standardised continuous | missing indicators] (B, sum K_j + 2 N)``."""
    parts = [torch.nn.functional.one_hot(rows.x_cat[:, j], k).float() for j, k in enumerate(schema.cardinalities)]
    parts += [rows.x_cont.float(), 1.0 - rows.cont_mask.float()]
    return torch.cat(parts, dim=1)


class TabularMLP(TabularSystem):
    """An MLP baseline: ``one_hot_features`` -> ``[Linear -> ReLU -> Dropout] x len(hidden)`` -> ``Linear``.

    Args:
        hidden: hidden widths (default two layers of 256).
        dropout: after each hidden layer.
        schema: as ``SAINT`` (``None``: the DataModule's when training starts).
        optim: AdamW, lr 1e-3, weight decay 0.01, constant: ordinary settings, not tuned per table.
    """

    def __init__(self, hidden: tuple[int, ...] = (256, 256), dropout: float = 0.1, schema: dict | None = None,
                 optim: Optim = Optim(name="adamw", lr=1e-3, weight_decay=0.01, schedule="constant")) -> None:
        super().__init__()
        if not hidden or any(h < 1 for h in hidden):
            raise ValueError(f"model.init_args.hidden needs positive widths, got {hidden}")
        self.save_hyperparameters()
        self.optim = optim
        if schema is not None:
            self.build(TableSchema.from_dict(schema))

    def build(self, schema: TableSchema) -> None:
        layers: list[nn.Module] = []
        width = sum(schema.cardinalities) + 2 * len(schema.continuous)
        for h in self.hparams.hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(self.hparams.dropout)]
            width = h
        self.net = nn.Sequential(*layers, nn.Linear(width, schema.num_outputs))
        super().build(schema)

    def forward(self, x_cat: Tensor, x_cont: Tensor, cont_mask: Tensor) -> Tensor:
        self._require_built()
        features = one_hot_features(TableBatch(x_cat, x_cont, cont_mask, x_cont.new_zeros(len(x_cont))), self.schema)
        return self.net(features)  # (B, outputs)


def _numpy_features(rows: TableBatch, schema: TableSchema) -> np.ndarray:
    return one_hot_features(rows, schema).numpy()


def fit_linear(train: TableBatch, schema: TableSchema, seed: int = 0) -> Any:
    """Logistic regression (classification; L2, C = 1, lbfgs) or ordinary least squares (regression) on
    ``one_hot_features``. Returns a fitted model whose ``scores(rows)`` gives probabilities / predictions."""
    from sklearn.linear_model import LinearRegression, LogisticRegression

    x = _numpy_features(train, schema)
    if schema.task == "regression":
        model = LinearRegression().fit(x, train.y.numpy())
    else:
        model = LogisticRegression(max_iter=5000, random_state=seed).fit(x, train.y.numpy())
    return _Fitted(model, schema, lambda rows: _numpy_features(rows, schema))


def _lightgbm_features(rows: TableBatch, schema: TableSchema) -> np.ndarray:
    cont = np.where(rows.cont_mask.numpy() > 0, rows.x_cont.numpy(), np.nan)
    return np.concatenate([rows.x_cat.numpy().astype(np.float64), cont.astype(np.float64)], axis=1)


def fit_lightgbm(train: TableBatch, val: TableBatch, schema: TableSchema, seed: int = 0,
                 n_estimators: int = 2000, learning_rate: float = 0.05, early_stopping: int = 100) -> Any:
    """LightGBM with its default trees (31 leaves), ``learning_rate`` 0.05 and up to ``n_estimators`` rounds,
    stopped early on the validation loss (``early_stopping`` rounds without improvement). Categorical columns
    are LightGBM categoricals. On small training sets the minimum rows per leaf (``min_child_samples``, default
    20) and per category group (``min_data_per_group``, default 100) shrink to a tenth of the rows (at least 2),
    or a few hundred labelled rows could never split on a category."""
    import lightgbm as lgb

    n = len(train.y)
    params = dict(n_estimators=n_estimators, learning_rate=learning_rate, random_state=seed, verbose=-1,
                  min_child_samples=min(20, max(2, n // 10)), min_data_per_group=min(100, max(2, n // 10)), n_jobs=1)
    model = lgb.LGBMRegressor(**params) if schema.task == "regression" else lgb.LGBMClassifier(**params)
    x_val, y_val = _lightgbm_features(val, schema), val.y.numpy()
    # lightgbm >= 4.6 names the validation set eval_X / eval_y and deprecates eval_set
    evaluation = ({"eval_X": (x_val,), "eval_y": (y_val,)} if "eval_X" in inspect.signature(model.fit).parameters
                  else {"eval_set": [(x_val, y_val)]})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*categorical_feature.*")
        model.fit(_lightgbm_features(train, schema), train.y.numpy(), **evaluation,
                  categorical_feature=list(range(len(schema.categorical))) or "auto",
                  callbacks=[lgb.early_stopping(early_stopping, verbose=False)])
    return _Fitted(model, schema, lambda rows: _lightgbm_features(rows, schema))


class _Fitted:
    """A fitted scikit-learn-style model with the features it needs and the table's task."""

    def __init__(self, model: Any, schema: TableSchema, features: Any) -> None:
        self.model, self.schema, self.features = model, schema, features

    def scores(self, rows: TableBatch) -> np.ndarray:
        """Class probabilities ``(B, classes)``, or standardised regression outputs ``(B,)``."""
        x = self.features(rows)
        if self.schema.task == "regression":
            return np.asarray(self.model.predict(x), dtype=np.float64)
        proba = np.zeros((len(x), len(self.schema.classes)))
        proba[:, self.model.classes_.astype(int)] = self.model.predict_proba(x)  # classes absent from a tiny train
        return proba
