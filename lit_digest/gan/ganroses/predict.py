"""Translate with a trained GANs N' Roses: one image in N styles (random, or read from reference images) to a grid,
or a folder of video frames in one fixed style to a folder of frames.

    python -m lit_digest.gan.ganroses.predict --checkpoint runs/ganroses-att_faces/<run>/checkpoints/last.ckpt \\
        --image face.png --styles 8                         # <run>/translate_face.png: the input, 8 translations
    python -m lit_digest.gan.ganroses.predict --checkpoint ... --image face.png --reference a.png b.png
    python -m lit_digest.gan.ganroses.predict --checkpoint ... --frames video_frames/ --seed 3
                                                            # <run>/frames_video_frames/<each frame's name>.png

Images must have the model's size (``--resize``: shorter side resized, centre crop); grey or colour files are
converted to the model's channels. Frames keep one style code; its mapped style is computed once and each batch
of frames is encoded and decoded in one pass. The outputs go into the checkpoint's run folder (``--out`` to
change), and one line says where.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

from lit_digest.core.checkpoints import expect_checkpoint
from lit_digest.core.console import script
from lit_digest.core.outputs import announce
from lit_digest.gan.faces import list_images, load_face
from lit_digest.gan.ganroses.module import GANsNRoses

__all__ = ["read_image", "load_model", "translate_image", "translate_frames", "main"]


def read_image(path: str | os.PathLike, size: int, channels: int, what: str = "image", resize: bool = False
               ) -> torch.Tensor:
    """``(channels, size, size)`` in [-1, 1]. Raises ``FileNotFoundError`` for no file and ``ValueError`` for an
    image of another size (unless ``resize``: shorter side to ``size``, centre crop) or one that is no image."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found at '{path.resolve()}'")
    mode = "RGB" if channels == 3 else "L"
    try:
        with Image.open(path) as img:
            width, height = img.size
            if resize:
                pixels = load_face(path, size, mode)
            else:
                if (width, height) != (size, size):
                    raise ValueError(f"the {what} '{path}' is {width}x{height} px but the model translates "
                                     f"{size}x{size} images: resize it, or pass --resize (shorter side to {size}, "
                                     "centre crop)")
                array = np.array(img.convert(mode))
                pixels = torch.from_numpy(array.reshape(size, size, -1)).permute(2, 0, 1)
    except OSError as err:  # PIL's UnidentifiedImageError, a truncated file
        raise ValueError(f"the {what} '{path}' cannot be read as an image ({err})") from err
    return pixels.float() / 127.5 - 1


def load_model(checkpoint: str | os.PathLike, device: str = "cpu") -> GANsNRoses:
    """A ``GANsNRoses`` checkpoint (of a run, or written by ``lit_digest.gan.ganroses.official``), in eval mode."""
    expect_checkpoint(checkpoint, GANsNRoses)
    return GANsNRoses.load_from_checkpoint(checkpoint, map_location=device).eval()


def _output_folder(checkpoint: str | os.PathLike, out: str | os.PathLike | None) -> Path:
    """``out``, or the checkpoint's run folder (``<run>/checkpoints/x.ckpt`` -> ``<run>``)."""
    if out is not None:
        return Path(out)
    parent = Path(checkpoint).resolve().parent
    return parent.parent if parent.name == "checkpoints" else parent


@torch.no_grad()
def translate_image(model: GANsNRoses, image: torch.Tensor, styles: torch.Tensor, direction: str = "a2b",
                    references: torch.Tensor | None = None) -> torch.Tensor:
    """The grid of one image ``(C, S, S)`` in every style ``(N, D)``, in [0, 1]: the input then its N translations;
    with ``references`` ``(N, C, S, S)`` (whose styles ``styles`` are) a first row shows them above their outputs."""
    device = model.device
    outputs = model.translate(image[None].to(device), styles.to(device), direction)[0].cpu()  # (N, C, S, S)
    cells = [image[None], outputs]
    if references is not None:
        cells = [torch.ones_like(image)[None], references, *cells]
    return torchvision.utils.make_grid((torch.cat(cells) + 1) / 2, nrow=len(styles) + 1, padding=2)


@torch.no_grad()
def translate_frames(model: GANsNRoses, frames: list[torch.Tensor], style: torch.Tensor, direction: str = "a2b",
                     batch_size: int = 16) -> list[torch.Tensor]:
    """Every frame ``(C, S, S)`` in one style ``(D,)``: the list of translations in [-1, 1]. The style's mapping is
    computed once; frames go through the encoder and decoder ``batch_size`` at a time."""
    g = model.generator(direction)
    device = model.device
    w = g.decoder.mapping(style[None].to(device))  # (1, style_dim)
    out = []
    for start in range(0, len(frames), batch_size):
        x = torch.stack(frames[start: start + batch_size]).to(device)
        y = g.decode(g.encode(x)[0], w.expand(len(x), -1), use_mapping=False)
        out += list(y.clamp(-1, 1).cpu())
    return out


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a GANsNRoses .ckpt")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", help="one image of the source domain")
    source.add_argument("--frames", help="a folder of video frames (natural order)")
    parser.add_argument("--direction", choices=("a2b", "b2a"), default="a2b")
    parser.add_argument("--styles", type=int, default=8, help="random style codes (for --image; --frames uses one)")
    parser.add_argument("--reference", nargs="+", help="target-domain images whose styles to use instead")
    parser.add_argument("--seed", type=int, default=0, help="of the random style codes")
    parser.add_argument("--resize", action="store_true", help="resize images of another size (shorter side, crop)")
    parser.add_argument("--batch-size", type=int, default=16, help="frames per pass")
    parser.add_argument("--out", help="output folder (default: the checkpoint's run folder)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.styles < 1 or args.batch_size < 1:
        raise ValueError(f"--styles and --batch-size must be >= 1, got {args.styles} and {args.batch_size}")
    frames = None
    if args.frames is not None:
        folder = Path(args.frames)
        if not folder.is_dir():
            raise FileNotFoundError(f"frame folder not found at '{folder.resolve()}'")
        frames = list_images(folder)
        if not frames:
            raise ValueError(f"the frame folder '{folder}' holds no image: put the video's frames there "
                             "(ffmpeg -i video.mp4 frames/%05d.png)")
    model = load_model(args.checkpoint, args.device)
    size, channels = model.hparams.image_size, model.hparams.image_channels
    references = None
    if args.reference:
        references = torch.stack([read_image(p, size, channels, "reference image", args.resize)
                                  for p in args.reference])
        styles = model.reference_styles(references.to(model.device), args.direction).cpu()
    else:
        g = torch.Generator().manual_seed(args.seed)
        styles = torch.randn(args.styles if frames is None else 1, model.hparams.latent_dim, generator=g)
    out = _output_folder(args.checkpoint, args.out)
    if frames is None:
        image = read_image(args.image, size, channels, "image", args.resize)
        grid = translate_image(model, image, styles, args.direction, references)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"translate_{Path(args.image).stem}.png"
        torchvision.utils.save_image(grid, path)
        return announce(path, len(styles), "translations")
    inputs = [read_image(p, size, channels, "frame", args.resize) for p in frames]
    outputs = translate_frames(model, inputs, styles[0], args.direction, args.batch_size)
    target = out / f"frames_{Path(args.frames).resolve().name}"
    target.mkdir(parents=True, exist_ok=True)
    for frame, result in zip(frames, outputs):
        torchvision.utils.save_image((result + 1) / 2, target / f"{frame.stem}.png")
    return announce(target, len(outputs), "frames")


if __name__ == "__main__":
    raise SystemExit(script(main)())
