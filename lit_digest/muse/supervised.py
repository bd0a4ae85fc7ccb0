"""Supervised MUSE (the official ``supervised.py``, arXiv 1710.04087 section 4.1): Procrustes on a training
dictionary (or the identical-strings seed), then refinement on induced dictionaries, keeping the best W."""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor

from lit_digest.core.lightning import LightningModule, pl
from lit_digest.muse.callbacks import TranslationWriter
from lit_digest.muse.evaluator import AlignmentEvaluator, InductionSettings
from lit_digest.muse.mapping import LinearMapping
from lit_digest.muse.parts import (
    attach_embeddings,
    closed_form_step,
    evaluate,
    finish_fit,
    format_metrics,
    keep_best,
    predict_translations,
)
from lit_digest.muse.unsupervised import DicoBuild

__all__ = ["MUSEProcrustes"]


class MUSEProcrustes(LightningModule):
    """Supervised MUSE (``supervised.py``): Procrustes on the DataModule's ``dico_train``, then
    ``n_refinement`` iterations on CSLS mutual-nearest-neighbour dictionaries (S2T&T2S, the
    10000 most frequent words), keeping the best W.

    ``select_by``: "criterion" (the unsupervised mean cosine), "precision" (CSLS P@1 on the
    evaluation dictionary, which is what the official code does for a given training
    dictionary; note that it selects on the test words), or None for the official choice:
    "criterion" with the identical-strings seed, "precision" otherwise.
    """

    def __init__(
        self,
        dim: int = 300,
        n_refinement: int = 5,
        dico_method: Literal["csls", "nn"] = "csls",
        dico_build: DicoBuild = "S2T&T2S",
        dico_max_rank: int = 10000,
        dico_max_size: int = 0,
        dico_min_size: int = 0,
        dico_threshold: float = 0.0,
        select_by: Literal["criterion", "precision"] | None = None,
        csls_knn: int = 10,
        criterion_words: int = 10000,
        chunk_mib: int = 256,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.mapping = LinearMapping(dim)
        self.register_buffer("best_weight", torch.eye(dim))
        self.register_buffer("best_score", torch.tensor(-math.inf))
        self.induction = InductionSettings(dico_method, dico_build, dico_max_rank, dico_max_size, dico_min_size,
                                           dico_threshold)
        self.evaluator: AlignmentEvaluator | None = None
        self.dico_train: Tensor | None = None
        self.dico_eval: Tensor | None = None
        self.selection: str | None = None
        self._dico_size = 0
        self.final_metrics: dict[str, float] = {}

    def forward(self, x: Tensor) -> Tensor:  # (..., d) source embeddings -> target space
        return self.mapping(x)

    def setup(self, stage: str) -> None:
        hp = self.hparams
        self.evaluator = attach_embeddings(self, hp.dim, hp.csls_knn, hp.criterion_words, hp.chunk_mib)
        self.selection = self._selection(getattr(self.trainer.datamodule, "dico_train_spec", None))
        if stage == "fit" and self.dico_train is None:
            raise ValueError(
                "MUSEProcrustes needs a training dictionary: set data.init_args.dico_train to 'default', "
                "'identical_char' or a file"
            )

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> int | None:
        return -1 if batch_idx >= 1 else None  # one closed-form step per epoch; -1 ends the epoch

    def training_step(self, batch: Any, batch_idx: int) -> None:
        dictionary = self.dico_train if self.current_epoch == 0 else self.evaluator.induce(self.mapping.weight,
                                                                                           self.induction)
        self.mapping.set_weight_(self.evaluator.procrustes(dictionary))
        self._dico_size = len(dictionary)
        closed_form_step(self)
        self.log("train/dico_size", float(len(dictionary)), on_step=False, on_epoch=True, batch_size=1)

    def _selection(self, seed: str | None) -> str:
        """``select_by``, or the official choice for the training dictionary ``seed``."""
        if self.hparams.select_by is not None:
            choice = self.hparams.select_by
        else:
            choice = "criterion" if seed == "identical_char" else "precision"
        if choice == "precision" and (self.dico_eval is None or not self.dico_eval.numel()):
            pl.utilities.rank_zero_warn(
                "MUSEProcrustes: no evaluation dictionary to select by precision; using the criterion"
            )
            choice = "criterion"
        return choice

    def on_train_epoch_end(self) -> None:
        """Evaluate W (logged under ``val/`` and printed) and keep the best by the selection rule."""
        metrics = evaluate(self.evaluator, self.mapping.weight, self.dico_eval)
        metrics["dico_size"] = float(self._dico_size)
        score = metrics["p@1_csls"] if self.selection == "precision" else metrics["criterion"]
        improved = keep_best(self, score)
        label = f"refinement {self.current_epoch}" if self.current_epoch else "Procrustes on the training dictionary"
        best = " (best)" if improved else ""
        pl.utilities.rank_zero_info(f"MUSEProcrustes {label}: {format_metrics(metrics)}{best}")
        self.log_dict({f"val/{k}": v for k, v in metrics.items()}, batch_size=1)
        self.log("val/best_score", float(self.best_score), batch_size=1)
        if self.current_epoch >= self.hparams.n_refinement:
            self.trainer.should_stop = True

    # evaluation ---------------------------------------------------------------
    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        metrics = evaluate(self.evaluator, self.mapping.weight, batch)
        self.log_dict({f"val/{k}": v for k, v in metrics.items()}, batch_size=1)

    def predict_step(self, batch: tuple[Tensor, Tensor], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Tensor]:
        """The source vocabulary (row ``index``, vectors) mapped into the target space by W, and each word's best
        translations by CSLS; ``TranslationWriter`` writes them (``translations.tsv``, ``vectors-<src>.txt``)."""
        return predict_translations(self, *batch)

    def configure_callbacks(self) -> list:
        return [TranslationWriter()]

    def test_step(self, batch: Tensor, batch_idx: int) -> None:
        metrics = evaluate(self.evaluator, self.mapping.weight, batch)
        self.log_dict({f"test/{k}": v for k, v in metrics.items()}, batch_size=1)

    def on_train_end(self) -> None:
        rule = "CSLS P@1 on the evaluation dictionary" if self.selection == "precision" else "unsupervised criterion"
        self.final_metrics = finish_fit(self, self.evaluator, rule)

    def configure_optimizers(self):
        # closed-form updates only: the optimiser never has a gradient, it counts the steps (closed_form_step)
        return torch.optim.SGD(self.mapping.parameters(), lr=0.0)
