"""Edit a face with a trained SC-FEGAN: an image plus mask, sketch and colour images in, the edited image out.

    python -m lit_digest.gan.scfegan.predict --checkpoint runs/scfegan-celeba_hq/<run>/checkpoints/last.ckpt \\
        --image face.png --mask mask.png --sketch sketch.png --colour colour.png --out edited.png

The inputs follow the released demo (run-youngjoo/SC-FEGAN ``demo.py``): the mask is white (or any
non-zero value) where the face is to be redrawn; the sketch is white lines on black; the colour image holds
the colour strokes (black where none was drawn). Sketch and colour count inside the mask only. All must
have the image's size; the mask and sketch one channel (or three equal ones), the image and colour three
(or one, grey). The network runs at the size it was trained for (``--size``; the image's own size when it
is a multiple of the generator's, else the nearest such) and the result is pasted back at the image's size:
pixels outside the mask are the input's, exactly.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from lit_digest.core.checkpoints import expect_checkpoint
from lit_digest.core.console import script
from lit_digest.core.outputs import announce
from lit_digest.gan.scfegan.generator import compose, scfegan_input

__all__ = ["read_edit_inputs", "edit", "edit_files", "main"]


def _read(path: str | os.PathLike, name: str, channels: int) -> np.ndarray:
    """``(H, W, channels)`` uint8; one channel from L/1/P-grey or equal RGB channels; three from RGB or grey."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{name} image not found at '{path.resolve()}'")
    with Image.open(path) as img:
        if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
            img = img.convert("RGBA" if img.mode != "LA" else "LA")
            array = np.asarray(img)[..., :-1]  # the alpha channel carries no edit
        else:
            array = np.asarray(img.convert("L") if img.mode in ("1", "L", "I", "I;16", "F") else img.convert("RGB"))
    array = array.reshape(*array.shape[:2], -1)
    if channels == 1 and array.shape[2] == 3:
        if not (np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 0], array[..., 2])):
            raise ValueError(f"the {name} '{path}' is a colour image (3 different channels); a {name} has one "
                             "channel (white = yes, black = no): save it as greyscale")
        array = array[..., :1]
    if channels == 3 and array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return array


def read_edit_inputs(image: str | os.PathLike, mask: str | os.PathLike, sketch: str | os.PathLike | None = None,
                     colour: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """The four files as a batch of one: ``image, colour (1, 3, H, W)`` in [-1, 1], ``mask, sketch (1, 1, H, W)``
    in {0, 1}. Sketch and colour default to none drawn. Raises ``ValueError`` when the sizes or channels do not
    match."""
    arrays = {"image": _read(image, "image", 3), "mask": _read(mask, "mask", 1)}
    if sketch is not None:
        arrays["sketch"] = _read(sketch, "sketch", 1)
    if colour is not None:
        arrays["colour"] = _read(colour, "colour", 3)
    size = arrays["image"].shape[:2]
    wrong = {k: a.shape[:2] for k, a in arrays.items() if a.shape[:2] != size}
    if wrong:
        shown = ", ".join(f"{k} {w}x{h}" for k, (h, w) in wrong.items())
        raise ValueError(f"the edit inputs must all have the image's size {size[1]}x{size[0]} (width x height); "
                         f"got {shown}")
    h, w = size

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(a)).permute(2, 0, 1)[None].float()

    batch = {"image": tensor(arrays["image"]) / 127.5 - 1, "mask": (tensor(arrays["mask"]) > 127).float()}
    batch["sketch"] = (tensor(arrays["sketch"]) > 127).float() if "sketch" in arrays else torch.zeros(1, 1, h, w)
    batch["colour"] = tensor(arrays["colour"]) / 127.5 - 1 if "colour" in arrays else -torch.ones(1, 3, h, w)
    return batch


@torch.no_grad()
def edit(generator: torch.nn.Module, batch: dict[str, torch.Tensor], size: int | None = None, seed: int = 0
         ) -> torch.Tensor:
    """The edited images ``(B, 3, H, W)`` in [-1, 1] of a ``read_edit_inputs`` batch: ``generator`` runs at
    ``size x size`` (None: the image's size rounded to the generator's ``size_multiple``) and its output,
    resized back, fills the mask; outside it the image is returned unchanged."""
    image, mask = batch["image"], batch["mask"]
    h, w = image.shape[-2:]
    multiple = getattr(generator, "size_multiple", 1)
    if size is not None:
        work = (size, size)
    else:
        work = tuple(max(multiple, round(s / multiple) * multiple) for s in (h, w))
    if work[0] % multiple or work[1] % multiple:
        raise ValueError(f"size {size} is not a multiple of the generator's {multiple}")
    resized = {k: (v if work == (h, w) else F.interpolate(v, size=work, mode="nearest") if k in ("mask", "sketch")
                   else F.interpolate(v, size=work, mode="bilinear", align_corners=False, antialias=True))
               for k, v in batch.items()}
    noise = (torch.randn(mask.shape[0], 1, *work, generator=torch.Generator().manual_seed(seed)) >= 1).float()
    device = next(generator.parameters()).device
    x = scfegan_input(resized["image"], resized["mask"], resized["sketch"], resized["colour"], noise)
    generated = generator(x.to(device)).cpu()
    if work != (h, w):
        generated = F.interpolate(generated, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return compose(generated.clamp(-1, 1), image, mask)


def _generator_from_checkpoint(path: str | os.PathLike) -> torch.nn.Module:
    from lit_digest.gan.scfegan.module import SCFEGAN

    expect_checkpoint(path, SCFEGAN)  # at once: no file, not a checkpoint, another method's
    try:
        return SCFEGAN.load_from_checkpoint(path, map_location="cpu").generator.eval()
    except RuntimeError as err:  # weights of another network under SC-FEGAN's argument names (a GAN of our own)
        if "state_dict" not in str(err):
            raise
        raise ValueError(f"'{path}' is not a SCFEGAN checkpoint: its weights are not those of the networks its "
                         f"hyperparameters build ({str(err).splitlines()[0]})") from err


def edit_files(checkpoint: str | os.PathLike, image: str | os.PathLike, mask: str | os.PathLike, out: str | os.PathLike,
               sketch: str | os.PathLike | None = None, colour: str | os.PathLike | None = None,
               size: int | None = None, seed: int = 0) -> Path:
    """Edit ``image`` with the generator of ``checkpoint`` and write the result (PNG) to ``out``."""
    generator = _generator_from_checkpoint(checkpoint)
    batch = read_edit_inputs(image, mask, sketch, colour)
    edited = edit(generator, batch, size=size, seed=seed)
    pixels = ((edited[0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="an SC-FEGAN .ckpt")
    parser.add_argument("--image", required=True, help="the face (RGB or grey)")
    parser.add_argument("--mask", required=True, help="white where the face is redrawn")
    parser.add_argument("--sketch", help="white lines on black (optional)")
    parser.add_argument("--colour", help="colour strokes on black (optional)")
    parser.add_argument("--out", required=True, help="where to write the edited image (PNG)")
    parser.add_argument("--size", type=int, help="run the network at SIZE x SIZE (default: the image's size)")
    parser.add_argument("--seed", type=int, default=0, help="of the noise channel")
    args = parser.parse_args(argv)
    path = edit_files(args.checkpoint, args.image, args.mask, args.out, args.sketch, args.colour, args.size, args.seed)
    announce(path, 1, "edited image")
    return 0


if __name__ == "__main__":
    raise SystemExit(script(main)())
