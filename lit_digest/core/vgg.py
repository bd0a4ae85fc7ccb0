"""Frozen VGG-16 feature maps for perceptual and style losses, with torchvision's ImageNet weights.

Shared by the domains that need perceptual features (SC-FEGAN, GANs N' Roses, NeRF stylisation).
SC-FEGAN (arXiv 1902.06838, section 3.3) and PConv (arXiv 1804.07723, section 3.3) compare images on
the outputs of VGG-16's pool1, pool2 and pool3 layers, VGG-16 pre-trained on ImageNet. The weights are
torchvision's ``VGG16_Weights.IMAGENET1K_V1`` file, looked up where ``torchvision`` keeps it
(``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth``) or at a path of the user's; a missing file is
downloaded only when asked, and otherwise stops the run with the path, the URL and the fixes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torchvision
from torch import nn

from lit_digest.core.download import MissingDataError, fetch, missing_data_error

__all__ = ["VGG16_URL", "VGG16Features", "default_vgg16_path", "load_vgg16_features"]

VGG16_URL = torchvision.models.VGG16_Weights.IMAGENET1K_V1.url  # https://download.pytorch.org/models/vgg16-397923af.pth
POOL_LAYERS = {"pool1": 4, "pool2": 9, "pool3": 16, "pool4": 23, "pool5": 30}  # indices in vgg16().features
# the first ReLU of each block: the layers of AdaIN-style content and style losses (arXiv 1703.06868 section 6)
RELU_LAYERS = {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 18, "relu5_1": 25}
LAYERS = {**POOL_LAYERS, **RELU_LAYERS}


class VGG16Features(nn.Module):
    """VGG-16's ``features`` up to the deepest requested layer, frozen, in eval mode:
    images in [-1, 1] ``(B, 3, H, W)`` -> the list of requested feature maps (pooling outputs ``pool1`` ...
    or the first ReLU of a block, ``relu1_1`` ..., in network order).

    Inputs are mapped to [0, 1] and normalised with ImageNet's mean and std, as torchvision's weights expect.
    Build it with ``load_vgg16_features`` to get the ImageNet weights.
    """

    def __init__(self, layers: Sequence[str] = ("pool1", "pool2", "pool3"),
                 state_dict: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in LAYERS]
        if unknown or not layers:
            raise ValueError(f"VGG16Features layers must be among {list(LAYERS)}, got {list(layers)}")
        self.indices = [LAYERS[name] for name in layers]
        if self.indices != sorted(set(self.indices)):
            raise ValueError(f"VGG16Features layers must be distinct and in network order, got {list(layers)}")
        # torchvision's vgg16().features, without building the 102M-parameter classifier
        features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"], batch_norm=False)
        self.features = features[: max(self.indices) + 1]
        if state_dict is not None:  # a vgg16 state_dict: only the layers kept are read, strictly
            wanted = {f"features.{k}" for k in self.features.state_dict()}
            missing = sorted(wanted - set(state_dict))
            if missing:
                raise ValueError(f"missing keys {missing[:4]}{' ...' if len(missing) > 4 else ''}")
            self.features.load_state_dict({k[len("features."):]: state_dict[k] for k in wanted})
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG16Features:
        return super().train(False)  # always eval: no dropout or batch statistics to change

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:  # (B, 3, H, W) in [-1, 1]
        x = ((images + 1) / 2 - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.indices:
                out.append(x)  # (B, C_q, H / 2^q, W / 2^q)
        return out


def default_vgg16_path() -> Path:
    """Where torchvision caches the ImageNet VGG-16 weights (``torch.hub.get_dir()``, i.e. ``$TORCH_HOME/hub``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(VGG16_URL)


def load_vgg16_features(path: str | os.PathLike | None = None, download: bool = False,
                        layers: Sequence[str] = ("pool1", "pool2", "pool3"),
                        options: tuple[str, str, str] = ("model.init_args.vgg_weights", "model.init_args.download_vgg",
                                                         "model.init_args.perceptual_style false")) -> VGG16Features:
    """``VGG16Features`` with the ImageNet weights from ``path`` (default: torchvision's cache file).

    ``options``: the caller's config options for the message: (the weights path, the download switch, the
    setting that does without VGG).

    Raises ``MissingDataError`` naming the path, the URL and the fixes when the file is absent and
    ``download`` is false, or when the download fails.
    """
    target = Path(path).expanduser() if path is not None else default_vgg16_path()
    path_option, download_option, without = options
    fixes = (f"set {path_option} to a copy of {os.path.basename(VGG16_URL)}, pass --{download_option} true to "
             f"download it (528 MB), or go without VGG features: --{without}")
    if not target.is_file():
        if not download:
            raise missing_data_error("VGG-16 ImageNet weights (for the perceptual and style losses)", target,
                                     url=VGG16_URL, fix=fixes)
        try:
            fetch(target, VGG16_URL, download=True)
        except MissingDataError as err:
            raise missing_data_error("VGG-16 ImageNet weights (for the perceptual and style losses)", target,
                                     url=VGG16_URL, reason=str(err), fix=fixes) from err
    try:
        state = torch.load(target, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated or foreign file
        raise ValueError(f"Could not read VGG-16 weights from '{target}' ({type(err).__name__}: {err}); expected "
                         f"torchvision's {os.path.basename(VGG16_URL)} (a state_dict of torchvision.models.vgg16)."
                         ) from err
    if not isinstance(state, dict):
        raise ValueError(f"'{target}' holds a {type(state).__name__}, not a state_dict of torchvision.models.vgg16")
    try:
        return VGG16Features(layers, state_dict=state)
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"'{target}' is not a state_dict of torchvision.models.vgg16: {err}") from err
