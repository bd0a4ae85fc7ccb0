"""lit_digest: Lightning implementations of the methods reviewed in two ML paper-digest channels.

One package per domain over a small core (``lit_digest.core``, which imports no domain)::

    core/            optim, ema, dist, callbacks, checkpoints, download, layers, lightning (namespace)
    ssl/             BYOL, SimCLR, SupCon, Supervised, LinearEval, KNNEval and their parts
    muse/            MUSE, MUSEProcrustes and their parts
    codistillation/  Codistillation, CodistillationStrategy, byte-level LM data
    gan/ tabular/ text/ depth/ lr_control/  SC-FEGAN; SAINT; the GPT-J-style LM; depth merging; controllers
    tools/shapes     conv output sizes and receptive fields

``import lit_digest`` imports no domain: the names below load their package on first use::

    from lit_digest import BYOL, CIFAR10DataModule      # or: from lit_digest.ssl import BYOL
"""

from __future__ import annotations

import importlib
from typing import Any

from lit_digest import _legacy

__version__ = "0.2.0"

_EXPORTS: dict[str, str] = {
    **dict.fromkeys([
        "BYOL", "SimCLR", "SupCon", "Supervised", "LinearEval", "KNNEval", "ResNet", "SmallConvNet", "ViewAugment",
        "MultiView", "BYOLViews", "SimCLRViews", "SupervisedViews", "ImageDataModule", "CIFAR10DataModule",
        "CIFAR100DataModule", "STL10DataModule", "MNISTDataModule", "FashionMNISTDataModule", "ImageFolderDataModule",
        "DigitsDataModule", "NpzImageDataModule", "SyntheticImageDataModule", "KNNMonitor", "LogAugmentedViews",
        "EncoderReport",
    ], "lit_digest.ssl"),
    **dict.fromkeys(["MUSE", "MUSEProcrustes", "EmbeddingsDataModule", "SyntheticEmbeddingsDataModule",
                     "ExportAlignment"], "lit_digest.muse"),
    **dict.fromkeys(["Codistillation", "CodistillationStrategy", "ByteLSTM", "ByteTextDataModule"],
                    "lit_digest.codistillation"),
    **dict.fromkeys(["SAINT", "SAINTPretrain", "TabularDataModule", "TabularMLP"], "lit_digest.tabular"),
    **dict.fromkeys(["SCFEGAN", "GANsNRoses"], "lit_digest.gan"),
    **dict.fromkeys(["AET", "AED", "NetworkInNetwork", "AffineTransformation", "ProjectiveTransformation"],
                    "lit_digest.ssl.aet"),
    **dict.fromkeys(["GeneratedViewsDataModule", "LatentWalk", "DCGAN"], "lit_digest.ssl.genrep"),
    **dict.fromkeys(["GPTJ", "GPTJConfig", "CausalLM", "TextDataModule", "CorpusDataModule"], "lit_digest.text"),
    **dict.fromkeys(["DepthMerge", "DepthEstimation", "ProceduralRGBDDataModule"], "lit_digest.depth"),
    **dict.fromkeys(["HyperparameterControl", "PlateauController", "LearnedController"], "lit_digest.lr_control"),
    **dict.fromkeys(["FiniteLossGuard", "CheckpointOnException", "ChannelsLast"], "lit_digest.core.callbacks"),
    **dict.fromkeys(["LARS", "Optim"], "lit_digest.core.optim"),
    "MLP": "lit_digest.core.layers",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return _legacy.top_level(getattr(importlib.import_module(_EXPORTS[name]), name))
    raise AttributeError(f"module 'lit_digest' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


_legacy.install()
