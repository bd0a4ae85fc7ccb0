"""SAINT (Somepalli, Goldblum, Schwarzschild, Bruss, Goldstein, arXiv 2106.01342; official code somepago/saint).

- ``layers``: feature embeddings, column and intersample attention, ``SAINTNet``, ``official_sizes``;
- ``module``: the ``SAINT`` LightningModule (supervised training and fine-tuning; SAINT, SAINT-s, SAINT-i);
- ``pretrain``: ``SAINTPretrain``, contrastive + denoising pre-training;
- ``augment`` and ``losses``: CutMix, mixup, InfoNCE and the denoising losses as pure functions.
"""

from lit_digest.tabular.saint.augment import cutmix_rows, mixup_embeddings
from lit_digest.tabular.saint.layers import FeatureEmbedding, SAINTEncoder, SAINTNet, official_sizes
from lit_digest.tabular.saint.losses import denoising_losses, info_nce, pretraining_loss
from lit_digest.tabular.saint.module import SAINT
from lit_digest.tabular.saint.pretrain import SAINTPretrain

__all__ = ["SAINT", "SAINTPretrain", "SAINTNet", "SAINTEncoder", "FeatureEmbedding", "official_sizes", "cutmix_rows",
           "mixup_embeddings", "info_nce", "denoising_losses", "pretraining_loss"]
