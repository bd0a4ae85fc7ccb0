"""Weighted kNN evaluation of a frozen encoder, runnable through the CLI (``fit`` or ``validate``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lit_digest.core.checkpoints import load_encoder_weights
from lit_digest.core.lightning import LightningModule, modules_in_hparams
from lit_digest.ssl.backbones import default_encoder
from lit_digest.ssl.knn import FeatureBank, dataset_lengths
from lit_digest.ssl.linear_eval import freeze
from lit_digest.ssl.probe import check_num_classes, encoder_predict_step

__all__ = ["KNNEval"]


class KNNEval(LightningModule):
    """kNN accuracy of a frozen encoder's features: the validation split is classified by
    a vote of its ``k`` most cosine-similar labeled training images (the DataModule's second
    validation loader, the un-augmented kNN bank), each neighbour weighted by
    ``exp(similarity / temperature)`` (Wu et al., arXiv 1805.01978, section 3.4). Defaults k = 20,
    T = 0.07: solo-learn's ``WeightedKNNClassifier`` (cosine), so that the numbers compare with the
    solo-learn table we quote; ``ks: [20, 200], temperature: 0.1`` gives Wu et al.'s setting (k = 200,
    T = 0.1) and DINO's k = 20 (arXiv 2104.14294, section 4.1). Logs ``val/knn_acc_k{k}`` for every
    ``k``. Features are L2-normalised and all-gathered across ranks (the DistributedSampler's padding
    removed) before the vote.

    Nothing trains: ``python -m lit_digest validate --config configs/knn_eval/<data>.yaml`` runs it
    directly; under ``fit`` the training step is a no-op (the configs set
    ``limit_train_batches: 1`` and ``max_epochs: 1``) and the result comes from the
    validation at the end of that epoch, logged to every logger (W&B); ``fit`` stops after that epoch whatever
    ``max_epochs`` says (no step is ever taken, so ``max_steps`` could not end it).

    Args:
        backbone: the encoder architecture, any ``nn.Module`` mapping images to ``(B, D)``; None: the methods'
            default ``SmallConvNet(width=16)`` (``lit_digest.ssl.backbones.default_encoder``).
        checkpoint: path of the pretrained weights (lit_digest ``.ckpt`` or a state_dict file);
            ``None`` evaluates the backbone as built (e.g. a random-encoder baseline).
        checkpoint_prefix: the encoder's key prefix in the checkpoint (``None``: ``"backbone."``
            when present, else the keys as they are).
        ks: the neighbourhood sizes to report.
        temperature: the vote temperature ``T``.
    """

    def __init__(
        self,
        backbone: nn.Module | None = None,
        checkpoint: str | None = None,
        checkpoint_prefix: str | None = None,
        ks: Sequence[int] = (20,),
        temperature: float = 0.07,
    ) -> None:
        super().__init__()
        if not ks or any(k < 1 for k in ks):
            raise ValueError(f"KNNEval: ks must be positive neighbourhood sizes, got {ks}")
        if temperature <= 0:
            raise ValueError(f"KNNEval: temperature must be > 0, got {temperature}")
        with modules_in_hparams():
            self.save_hyperparameters()
        backbone = default_encoder(backbone)
        if checkpoint is not None:  # fail here, before any data is read, if the weights do not fit
            load_encoder_weights(backbone, checkpoint, checkpoint_prefix)
        self.backbone = freeze(backbone)
        self.automatic_optimization = False
        self.bank = FeatureBank()
        self.results: dict[str, float] = {}

    def train(self, mode: bool = True) -> KNNEval:
        super().train(mode)
        self.backbone.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder features ``(B, D)`` of normalised images ``(B, C, H, W)``."""
        return self.backbone(x)

    def predict_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        return encoder_predict_step(self, batch)

    def training_step(self, batch, batch_idx: int) -> None:
        return None  # nothing to train: see the class docstring

    def on_train_epoch_end(self) -> None:
        self.trainer.should_stop = True  # the epoch's validation gave the result; another would repeat it

    def configure_optimizers(self):
        return None

    # -- evaluation -------------------------------------------------------------------------------
    def on_validation_start(self) -> None:
        check_num_classes(self, None)  # the images' channels against the encoder's

    def on_validation_epoch_start(self) -> None:
        self.bank.clear()

    def validation_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        x, labels = batch
        self.bank.add(dataloader_idx, self.backbone(x), labels)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        if not self.bank.ready:
            raise ValueError(
                "KNNEval needs the DataModule's two validation loaders [val, kNN bank]: do not set "
                "data.init_args.knn_bank_size to 0."
            )
        scores = self.bank.score(self, self.hparams.ks, self.hparams.temperature, dataset_lengths(self.trainer))
        for k, acc in scores.items():
            self.results[f"val/knn_acc_k{k}"] = float(acc)
            # identical on every rank (all-gathered inputs): no further reduction
            self.log(f"val/knn_acc_k{k}", acc, prog_bar=True, sync_dist=False, rank_zero_only=False,
                     add_dataloader_idx=False)
        self.bank.clear()
