"""SC-FEGAN's generator: a U-net of gated convolutions (Jo & Park, arXiv 1902.06838, section 3.2, figure 3).

The layer list follows the released demo (run-youngjoo/SC-FEGAN ``model.py``, ``build_gen``) at 512 px:

- encoder: seven stride-2 gated convolutions, 64 ch 7x7 (no LRN, the input layer), 128 5x5, 256 5x5,
  then 512 3x3 four times (512 -> 4 px);
- bottleneck: four 3x3 gated convolutions of 512 ch dilated by 2, 4, 8, 16;
- decoder: seven 5x5 stride-2 gated transposed convolutions (512, 512, 512, 256, 128, 64, 3 ch), each
  followed by the concatenation of the encoder feature of the same size (the input itself at the last
  one) and a 3x3 gated convolution to the same width;
- the last gated convolution (3 ch) has neither LRN nor leaky ReLU and is followed by ``tanh``.

Local response normalisation follows every feature convolution but the input and output layers and the
transposed convolutions, as in the demo ("after feature map convolution layers excluding other soft
gates", section 3.2). The composite ``gen * M + image * (1 - M)`` is the system's job
(``lit_digest.gan.scfegan.SCFEGAN``); ``scfegan_input`` builds the 9 input channels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lit_digest.gan.layers import GatedConv2d, GatedConvTranspose2d

__all__ = ["SCFEGANGenerator", "scfegan_input", "compose"]


def scfegan_input(image: torch.Tensor, mask: torch.Tensor, sketch: torch.Tensor, colour: torch.Tensor,
                  noise: torch.Tensor) -> torch.Tensor:
    """The generator's 9 channels in the demo's order: ``[image * (1 - M), sketch * M, colour * M, M, noise * M]``.

    ``image, colour: (B, 3, H, W)`` in [-1, 1]; ``mask, sketch, noise: (B, 1, H, W)``; -> ``(B, 9, H, W)``.
    """
    for name, t, c in (("image", image, 3), ("mask", mask, 1), ("sketch", sketch, 1), ("colour", colour, 3),
                       ("noise", noise, 1)):
        if t.dim() != 4 or t.shape[1] != c or t.shape[-2:] != image.shape[-2:] or t.shape[0] != image.shape[0]:
            raise ValueError(f"SC-FEGAN input '{name}' must be (B, {c}, H, W) like the image "
                             f"{tuple(image.shape)}, got {tuple(t.shape)}")
    return torch.cat([image * (1 - mask), sketch * mask, colour * mask, mask, noise * mask], dim=1)


def compose(generated: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``gen * M + image * (1 - M)`` for a binary mask, as a selection: the generated pixels inside the hole, the
    known ones outside, exactly (no ``0 * gen`` term that a non-finite output could spoil)."""
    return torch.where(mask > 0.5, generated, image)


class SCFEGANGenerator(nn.Module):
    """``(B, in_channels, H, W) -> (B, out_channels, H, W)`` in [-1, 1]; ``H`` and ``W`` multiples of
    ``2 ** len(widths)`` (128 at the paper's seven levels).

    Args:
        in_channels: 9 (image 3, sketch 1, colour 3, mask 1, noise 1).
        out_channels: 3.
        widths: encoder widths, one stride-2 level each (paper: 64, 128, 256, 512, 512, 512, 512); the decoder
            mirrors them.
        kernels: encoder kernel sizes (paper: 7, 5, 5, 3, 3, 3, 3).
        dilations: of the bottleneck's 3x3 gated convolutions (paper: 2, 4, 8, 16).
        deconv_kernel: of the transposed convolutions (paper: 5).
        lrn: local response normalisation where the paper puts it (False: nowhere).
        negative_slope: of the leaky ReLUs (0.2).
    """

    def __init__(self, in_channels: int = 9, out_channels: int = 3,
                 widths: Sequence[int] = (64, 128, 256, 512, 512, 512, 512),
                 kernels: Sequence[int] = (7, 5, 5, 3, 3, 3, 3), dilations: Sequence[int] = (2, 4, 8, 16),
                 deconv_kernel: int = 5, lrn: bool = True, negative_slope: float = 0.2) -> None:
        super().__init__()
        if not widths or len(widths) != len(kernels):
            raise ValueError(f"need one kernel size per encoder width, got widths {list(widths)}, kernels "
                             f"{list(kernels)}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.size_multiple = 2 ** len(widths)
        slope = dict(negative_slope=negative_slope)
        self.encoder = nn.ModuleList()
        c_in = in_channels
        for i, (width, k) in enumerate(zip(widths, kernels)):
            self.encoder.append(GatedConv2d(c_in, width, k, stride=2, lrn=lrn and i > 0, **slope))
            c_in = width
        self.bottleneck = nn.Sequential(*[GatedConv2d(c_in, c_in, 3, dilation=d, lrn=lrn, **slope) for d in dilations])
        # decoder level i upsamples to the size of encoder level i - 1 (the input at i = 0)
        skips = [in_channels, *widths[:-1]]
        outs = [out_channels, *widths[:-1]]
        self.up = nn.ModuleList()
        self.fuse = nn.ModuleList()
        for level in reversed(range(len(widths))):
            self.up.append(GatedConvTranspose2d(c_in, outs[level], deconv_kernel, 2, **slope))
            last = level == 0
            self.fuse.append(GatedConv2d(outs[level] + skips[level], outs[level], 3, lrn=lrn and not last,
                                         activation="none" if last else "leaky_relu", **slope))
            c_in = outs[level]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 9, H, W) -> (B, 3, H, W)
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"SCFEGANGenerator expects (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % self.size_multiple or w % self.size_multiple:
            raise ValueError(f"SCFEGANGenerator needs H and W multiples of {self.size_multiple} "
                             f"({len(self.encoder)} stride-2 levels), got {h}x{w}: resize the images")
        features = [x]
        for layer in self.encoder:
            features.append(layer(features[-1]))  # level i: (B, widths[i], H / 2^(i+1), W / 2^(i+1))
        y = self.bottleneck(features.pop())
        for up, fuse in zip(self.up, self.fuse):
            y = fuse(torch.cat([features.pop(), up(y)], dim=1))  # skip first, as the demo's concat
        return torch.tanh(y)
