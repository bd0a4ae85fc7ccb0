"""Weighted kNN evaluation of a frozen encoder, runnable through the CLI (``fit`` or ``validate``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from lightning.pytorch import LightningModule
from torch import nn
from torchmetrics.functional.classification import multiclass_accuracy

from lit_digest.evaluation import knn_predict, load_encoder_weights
from lit_digest.methods.linear_eval import freeze

__all__ = ["KNNEval"]


class KNNEval(LightningModule):
    """kNN accuracy of a frozen encoder's features: the validation split is classified by
    a vote of its ``k`` most cosine-similar labeled training images (the DataModule's second
    validation loader, the un-augmented kNN bank), each neighbour weighted by
    ``exp(similarity / temperature)`` (Wu et al., arXiv 1805.01978, section 3.4; k = 200 and
    T = 0.1 as there; k = 20 as DINO, arXiv 2104.14294, section 4.1). Logs
    ``val/knn_acc_k{k}`` for every ``k``. Features are L2-normalised and all-gathered across
    ranks before the vote.

    Nothing trains: ``python -m lit_digest validate --config configs/eval/knn_*.yaml`` runs it
    directly; under ``fit`` the training step is a no-op (the configs set
    ``limit_train_batches: 1`` and ``max_epochs: 1``) and the result comes from the
    validation at the end of that epoch, logged to every logger (W&B).

    Args:
        backbone: the encoder architecture, any ``nn.Module`` mapping images to ``(B, D)``.
        checkpoint: path of the pretrained weights (lit_digest ``.ckpt`` or a state_dict file);
            ``None`` evaluates the backbone as built (e.g. a random-encoder baseline).
        checkpoint_prefix: the encoder's key prefix in the checkpoint (``None``: ``"backbone."``
            when present, else the keys as they are).
        ks: the neighbourhood sizes to report.
        temperature: the vote temperature ``T``.
    """

    def __init__(
        self,
        backbone: nn.Module,
        checkpoint: str | None = None,
        checkpoint_prefix: str | None = None,
        ks: Sequence[int] = (20, 200),
        temperature: float = 0.1,
    ) -> None:
        super().__init__()
        if not ks or any(k < 1 for k in ks):
            raise ValueError(f"KNNEval: ks must be positive neighbourhood sizes, got {ks}")
        if temperature <= 0:
            raise ValueError(f"KNNEval: temperature must be > 0, got {temperature}")
        self.save_hyperparameters()
        if checkpoint is not None:  # fail here, before any data is read, if the weights do not fit
            load_encoder_weights(backbone, checkpoint, checkpoint_prefix)
        self.backbone = freeze(backbone)
        self.automatic_optimization = False
        self._feats: dict[int, list[torch.Tensor]] = {}
        self._labels: dict[int, list[torch.Tensor]] = {}
        self.results: dict[str, float] = {}

    def train(self, mode: bool = True) -> KNNEval:
        super().train(mode)
        self.backbone.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder features ``(B, D)`` of normalised images ``(B, C, H, W)``."""
        return self.backbone(x)

    def training_step(self, batch, batch_idx: int) -> None:
        return None  # nothing to train: see the class docstring

    def configure_optimizers(self):
        return None

    # -- evaluation -------------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._feats, self._labels = {}, {}

    def validation_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        x, labels = batch
        self._feats.setdefault(dataloader_idx, []).append(self.backbone(x).float())
        self._labels.setdefault(dataloader_idx, []).append(labels)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        if 0 not in self._feats or 1 not in self._feats:
            raise ValueError(
                "KNNEval needs the DataModule's two validation loaders [val, kNN bank]: do not set "
                "data.init_args.knn_bank_size to 0."
            )
        query = self.all_gather(torch.cat(self._feats[0])).flatten(0, -2)  # (Q, D)
        query_labels = self.all_gather(torch.cat(self._labels[0])).flatten()  # (Q,)
        bank = self.all_gather(torch.cat(self._feats[1])).flatten(0, -2)  # (N, D)
        bank_labels = self.all_gather(torch.cat(self._labels[1])).flatten()  # (N,)
        labeled = bank_labels >= 0
        bank, bank_labels = bank[labeled], bank_labels[labeled]
        num_classes = int(max(bank_labels.max(), query_labels.max())) + 1
        for k in self.hparams.ks:
            scores = knn_predict(query, bank, bank_labels, num_classes, k, self.hparams.temperature)
            acc = multiclass_accuracy(scores, query_labels, num_classes=num_classes, average="micro")
            self.results[f"val/knn_acc_k{k}"] = float(acc)
            # identical on every rank (all-gathered inputs): no further reduction
            self.log(f"val/knn_acc_k{k}", acc, prog_bar=True, sync_dist=False, rank_zero_only=False)
        self._feats, self._labels = {}, {}
