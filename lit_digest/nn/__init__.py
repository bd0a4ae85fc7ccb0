"""Plain ``nn.Module`` building blocks (no Lightning import)."""

from lit_digest.nn.backbones import ResNet, SmallConvNet, feature_dim_of
from lit_digest.nn.ema import copy_frozen, cosine_tau, update_ema
from lit_digest.nn.heads import MLP
from lit_digest.nn.language import ByteLSTM
from lit_digest.nn.muse import LanguageDiscriminator, LinearMapping

__all__ = [
    "MLP", "ByteLSTM", "LanguageDiscriminator", "LinearMapping", "ResNet", "SmallConvNet", "copy_frozen",
    "cosine_tau", "feature_dim_of", "update_ema",
]
