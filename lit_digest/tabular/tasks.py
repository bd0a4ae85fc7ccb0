"""What every tabular model shares: the task's loss, its metrics (torchmetrics) and predictions, and the table
schema a model is built from.

Binary and multi-class tasks train with cross-entropy on one logit per class (binary: 2 logits, as the official
SAINT code's ``y_dim = 2``); regression with the mean squared error of the standardised target. Metrics, as the
SAINT paper reports them: AUROC for binary tasks (with accuracy), accuracy for multi-class, RMSE in the
target's own units for regression.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
import torchmetrics
from torch import Tensor, nn

from lit_digest.tabular.data import TableSchema

__all__ = ["SCORE", "task_loss", "task_metrics", "predictions", "schema_from_trainer", "update_metrics"]

# the metric that selects checkpoints and that the comparison reports, per task: (name, higher is better); every
# task also logs it as ``<split>/score``, higher is better (RMSE negated), so one ModelCheckpoint(monitor='val/score',
# mode='max') works for any table
SCORE: dict[str, tuple[str, bool]] = {"binary": ("auroc", True), "multiclass": ("acc", True),
                                      "regression": ("rmse", False)}


def task_loss(out: Tensor, y: Tensor, task: str) -> Tensor:
    """Cross-entropy of ``out (B, classes)`` against class indices, or MSE of ``out (B, 1)`` against the
    standardised target ``y (B,)``."""
    if task == "regression":
        return F.mse_loss(out.squeeze(-1).float(), y.float())
    return F.cross_entropy(out.float(), y)


def predictions(out: Tensor, schema: TableSchema) -> Tensor:
    """Class probabilities ``(B, classes)``, or the regression target in its own units ``(B,)``."""
    if schema.task == "regression":
        return schema.target_mean + schema.target_std * out.squeeze(-1).float()
    return out.float().softmax(-1)


def task_metrics(schema: TableSchema) -> nn.ModuleDict:
    """The metrics of one split: ``auroc`` and ``acc`` (binary), ``acc`` (multi-class) or ``rmse`` (regression)."""
    if schema.task == "binary":
        return nn.ModuleDict({"auroc": torchmetrics.classification.BinaryAUROC(),
                              "acc": torchmetrics.classification.BinaryAccuracy()})
    if schema.task == "multiclass":
        return nn.ModuleDict({"acc": torchmetrics.classification.MulticlassAccuracy(len(schema.classes),
                                                                                    average="micro")})
    return nn.ModuleDict({"rmse": torchmetrics.MeanSquaredError(squared=False)})


def update_metrics(metrics: nn.ModuleDict, out: Tensor, y: Tensor, schema: TableSchema) -> None:
    pred = predictions(out, schema)
    if schema.task == "binary":
        pred = pred[:, 1]  # P(second class)
    elif schema.task == "regression":
        y = schema.target_mean + schema.target_std * y.float()
    for metric in metrics.values():
        metric.update(pred, y)


def schema_from_trainer(module: Any) -> TableSchema:
    """The schema of the DataModule a module is trained with; a clear error without one."""
    trainer = getattr(module, "_trainer", None)
    data = getattr(trainer, "datamodule", None) if trainer is not None else None
    schema = getattr(data, "schema", None)
    if not isinstance(schema, TableSchema):
        raise ValueError(
            f"{type(module).__name__} is built from its table's schema: train it with a "
            "lit_digest.tabular.TabularDataModule (trainer.fit(model, datamodule=...)), or pass "
            "schema=TableSchema(...).as_dict()."
        )
    return schema


@torch.no_grad()
def check_schema(expected: TableSchema, module: Any) -> None:
    """The module was built for ``expected``; its DataModule (if any) must serve the same columns."""
    trainer = getattr(module, "_trainer", None)
    schema = getattr(getattr(trainer, "datamodule", None), "schema", None)
    if isinstance(schema, TableSchema) and schema != expected:
        raise ValueError(f"{type(module).__name__} was built for the table schema {expected}, but its DataModule "
                         f"serves {schema}. Use the same table, columns and split_seed.")
