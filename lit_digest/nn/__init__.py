"""Plain ``nn.Module`` building blocks (no Lightning import)."""

from lit_digest.nn.backbones import ResNet, SmallConvNet, feature_dim_of
from lit_digest.nn.ema import copy_frozen, cosine_tau, update_ema
from lit_digest.nn.heads import MLP

__all__ = ["MLP", "ResNet", "SmallConvNet", "copy_frozen", "cosine_tau", "feature_dim_of", "update_ema"]
