"""SN-PatchGAN: the discriminator of free-form inpainting (Yu et al., arXiv 1806.03589, section 3.2).

Six strided convolutions, each spectrally normalised (Miyato et al., arXiv 1802.05957) and followed by
a leaky ReLU; the output is a 3-d feature map whose every element is a GAN score for one patch of the
input ("we directly apply GANs for each feature element in this feature map"). The official code
(JiahuiYu/generative_inpainting, ``build_sn_patch_gan_discriminator``): kernel 5, stride 2, widths
64-128-256-256-256-256, leaky ReLU also after the last layer; its input is the image with the mask
(and the user's sketch, when guided) as extra channels. SC-FEGAN (arXiv 1902.06838, section 3.2) uses
the same structure with 3x3 kernels, on the completed image, mask, sketch and colour.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["SNPatchGAN"]


class SNPatchGAN(nn.Module):
    """``(B, in_channels, H, W) -> (B, widths[-1], H / 2^L, W / 2^L)`` patch scores, ``L = len(widths)``.

    Args:
        in_channels: image channels plus condition channels (SC-FEGAN: 3 + mask 1 + sketch 1 + colour 3).
        widths: output channels of the strided layers (Yu et al.: 64, 128, 256, 256, 256, 256).
        kernel_size: 5 in Yu et al., 3 in SC-FEGAN.
        stride: of every layer.
        negative_slope: leaky ReLU slope (0.2, TensorFlow's default in the official code).
        final_activation: leaky ReLU after the last layer too, as the official code.
        power_iterations: of the spectral norm's singular-value estimate per forward pass in training.
    """

    def __init__(self, in_channels: int = 8, widths: Sequence[int] = (64, 128, 256, 256, 256, 256),
                 kernel_size: int = 5, stride: int = 2, negative_slope: float = 0.2, final_activation: bool = True,
                 power_iterations: int = 1) -> None:
        super().__init__()
        self._config = dict(in_channels=in_channels, widths=tuple(widths), kernel_size=kernel_size, stride=stride,
                            negative_slope=negative_slope, final_activation=final_activation,
                            power_iterations=power_iterations)
        if not widths:
            raise ValueError("SNPatchGAN needs at least one layer width")
        layers: list[nn.Module] = []
        c_in = in_channels
        for i, c_out in enumerate(widths):
            conv = nn.Conv2d(c_in, c_out, kernel_size, stride, padding=kernel_size // 2)
            layers.append(spectral_norm(conv, n_power_iterations=power_iterations))
            if final_activation or i < len(widths) - 1:
                layers.append(nn.LeakyReLU(negative_slope))
            c_in = c_out
        self.net = nn.Sequential(*layers)
        self.in_channels = in_channels
        self.downsampling = stride ** len(widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, C, h, w) patch scores
        if x.shape[1] != self.in_channels:
            raise ValueError(f"SNPatchGAN expects {self.in_channels} input channels, got {x.shape[1]}")
        return self.net(x)

    def __reduce__(self):
        # torch refuses to pickle parametrized (spectrally normalised) modules; a system built in Python keeps
        # this module in its hyperparameters, so it pickles as a call of its class on its arguments, then its
        # weights: nothing but this nn.Module class and tensors, which load_from_checkpoint(path) trusts
        return SNPatchGAN, tuple(self._config.values()), {"state_dict": self.state_dict(), "training": self.training}

    def __setstate__(self, state: dict) -> None:
        if set(state) != {"state_dict", "training"}:  # nn.Module's own state (not written by __reduce__ above)
            super().__setstate__(state)
            return
        self.load_state_dict(state["state_dict"])
        self.train(state["training"])

    def convs(self) -> list[nn.Conv2d]:
        """The spectrally normalised convolutions (their ``.weight`` is the normalised weight)."""
        return [m for m in self.net if isinstance(m, nn.Conv2d)]
