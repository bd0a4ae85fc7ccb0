"""The small base of every supervised tabular model here (SAINT, the MLP baseline): built from its table's
schema, trained with the task's loss, evaluated with the task's metrics. Subclasses give ``build(schema)``
and ``forward(x_cat, x_cont, cont_mask)``."""

from __future__ import annotations

from torch import Tensor, nn

from lit_digest.core.lightning import LightningModule
from lit_digest.core.optim import configure_optim
from lit_digest.tabular.data import TableBatch, TableSchema
from lit_digest.tabular.predict import TablePredictionWriter
from lit_digest.tabular.tasks import (
    SCORE,
    check_schema,
    predictions,
    schema_from_trainer,
    task_loss,
    task_metrics,
    update_metrics,
)

__all__ = ["TabularSystem"]


class TabularSystem(LightningModule):
    """Builds the network for the DataModule's ``schema`` when training starts (or at once when ``schema`` is in
    the hyperparameters, as in a checkpoint), then: ``train/loss``; ``val/*`` and ``test/*`` metrics
    (``auroc`` + ``acc``, ``acc`` or ``rmse``) and ``score``, the task's metric with higher better (AUROC,
    accuracy, or minus the RMSE) for a checkpoint monitor that works on any table; ``predict`` gives class
    probabilities or the target in its units, written to ``predictions.csv`` (``TablePredictionWriter``)."""

    schema: TableSchema | None = None

    def __init__(self) -> None:  # explicit: its subclasses' hyperparameters are what a checkpoint must name
        super().__init__()

    def build(self, schema: TableSchema) -> None:
        """Subclasses build their layers here, then call ``super().build(schema)``."""
        self.schema = schema
        self.metrics = nn.ModuleDict({"val": task_metrics(schema), "test": task_metrics(schema)})
        self.hparams["schema"] = schema.as_dict()

    def setup(self, stage: str) -> None:
        if self.schema is None:
            self.build(schema_from_trainer(self))
        else:
            check_schema(self.schema, self)

    def _require_built(self) -> None:
        if self.schema is None:
            raise RuntimeError(f"{type(self).__name__} is built from its table's schema: fit it with a "
                               "TabularDataModule first, or pass schema=TableSchema(...).as_dict().")

    def training_step(self, batch: TableBatch, batch_idx: int) -> Tensor:
        batch = TableBatch(*batch)
        loss = task_loss(self(batch.x_cat, batch.x_cont, batch.cont_mask), batch.y, self.schema.task)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch.y))
        return loss

    def _evaluate(self, batch: TableBatch, split: str) -> None:
        batch = TableBatch(*batch)
        out = self(batch.x_cat, batch.x_cont, batch.cont_mask)
        self.log(f"{split}/loss", task_loss(out, batch.y, self.schema.task), batch_size=len(batch.y))
        update_metrics(self.metrics[split], out, batch.y, self.schema)
        for name, metric in self.metrics[split].items():
            self.log(f"{split}/{name}", metric, on_step=False, on_epoch=True, prog_bar=name != "acc")

    def _log_score(self, split: str) -> None:
        name, higher = SCORE[self.schema.task]
        metric = self.metrics[split][name]
        if metric.update_called:
            value = metric.compute()
            self.log(f"{split}/score", value if higher else -value)

    def validation_step(self, batch: TableBatch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_score("val")

    def test_step(self, batch: TableBatch, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_score("test")

    def predict_step(self, batch: TableBatch, batch_idx: int) -> Tensor:
        """Class probabilities ``(B, classes)`` or the target in its own units ``(B,)``."""
        batch = TableBatch(*batch)
        return predictions(self(batch.x_cat, batch.x_cont, batch.cont_mask), self.schema)

    def configure_callbacks(self) -> list:
        return [TablePredictionWriter("predictions")]

    def configure_optimizers(self):
        # one group over every weight (the official SAINT AdamW decays all of them)
        return configure_optim(self, [{"params": [p for p in self.parameters() if p.requires_grad]}], self.optim)
