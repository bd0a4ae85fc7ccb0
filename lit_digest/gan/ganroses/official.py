"""The official GANs N' Roses checkpoints (mchong6/GANsNRoses) in and out of our modules.

The official ``train.py`` saves ``{'G_A2B', 'G_B2A', 'G_A2B_ema', 'G_B2A_ema', 'D_A', 'D_B', 'D_L', 'G_optim',
'D_optim', 'iter'}``, each network a ``state_dict`` of its ``model.py`` classes; the released selfie2anime file
(``GNR_checkpoint.pt``, loaded by the notebooks with ``Generator(256, 4, 8, 5, channel_multiplier=1, lr_mlp=.01,
n_res=1)``) holds the same entries. Our networks keep the official names but for two things, which this module
maps: a ``ConvLayer`` names its parts (``blur``, ``conv``, ``activate``) where the official one is an
``nn.Sequential`` (``0``, ``1``, ``2``), and a generator keeps its decoder under ``decoder.`` where the official one
has it at the top. The official files also store the constant blur kernels; they are checked and dropped.

    python -m lit_digest.gan.ganroses.official --checkpoint GNR_checkpoint.pt --out gnr_selfie2anime.ckpt
    python -m lit_digest.gan.ganroses.predict --checkpoint gnr_selfie2anime.ckpt --image face.png --styles 8
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from torch import nn

from lit_digest.core.console import script
from lit_digest.core.lightning import pl
from lit_digest.core.outputs import announce
from lit_digest.gan.ganroses.layers import ConvLayer, ModulatedConv2d, ToRGB
from lit_digest.gan.ganroses.module import GANsNRoses
from lit_digest.gan.ganroses.networks import Generator

__all__ = ["PAPER", "ENTRIES", "official_names", "to_official", "from_official", "save_official_checkpoint",
           "load_official_checkpoint", "main"]

# the official networks' sizes at 256 px (model.py's channels table, train.py's defaults; num_down 4 as the
# released checkpoint)
PAPER = dict(image_size=256, num_down=4, n_res=1, n_mlp=5, style_dim=512, lr_mlp=0.01, channel_base=16384,
             channel_max=512, d_local_size=32, d_global_size=8, d_std_dim=128, latent_d_width=256, latent_dim=8)
ENTRIES = {"G_A2B": "g_a2b", "G_B2A": "g_b2a", "G_A2B_ema": "g_a2b_ema", "G_B2A_ema": "g_b2a_ema", "D_A": "d_a",
           "D_B": "d_b", "D_L": "d_latent"}


def official_names(net: nn.Module) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """``({our state key: official key}, {official constant key: tensor})`` for one of our networks."""
    strip = "decoder." if isinstance(net, Generator) else ""
    renames: dict[str, str] = {}
    constants: dict[str, torch.Tensor] = {}
    for name, module in net.named_modules():
        official = name[len(strip):] if strip and name.startswith(strip) else name
        if isinstance(module, ConvLayer):
            first = 1 if module.blur is not None else 0
            if module.blur is not None:
                constants[f"{official}.0.kernel"] = module.blur.kernel
            renames[f"{name}.conv.weight"] = f"{official}.{first}.weight"
            if module.conv.bias is not None:
                renames[f"{name}.conv.bias"] = f"{official}.{first}.bias"
            if module.activate is not None and hasattr(module.activate, "bias"):
                renames[f"{name}.activate.bias"] = f"{official}.{first + 1}.bias"
        elif isinstance(module, ModulatedConv2d) and module.blur is not None:
            constants[f"{official}.blur.kernel"] = module.blur.kernel
        elif isinstance(module, ToRGB) and module.upsample is not None:
            constants[f"{official}.upsample.kernel"] = module.upsample.kernel
    for key in net.state_dict():
        if key not in renames:
            renames[key] = key[len(strip):] if strip and key.startswith(strip) else key
    return renames, constants


def to_official(net: nn.Module) -> dict[str, torch.Tensor]:
    """The network's ``state_dict`` under the official names, with the official constant blur kernels."""
    renames, constants = official_names(net)
    state = {renames[k]: v.detach().clone() for k, v in net.state_dict().items()}
    state.update({k: v.detach().clone() for k, v in constants.items()})
    return state


def from_official(net: nn.Module, state: dict[str, torch.Tensor], what: str = "network") -> None:
    """Load an official ``state_dict`` into ``net`` strictly. Raises ``ValueError`` naming missing, unexpected and
    mis-shaped keys (another ``num_down``, image size or width table) or constants that differ."""
    renames, constants = official_names(net)
    ours = net.state_dict()
    expected = {official: ours[key].shape for key, official in renames.items()}
    expected.update({k: v.shape for k, v in constants.items()})
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(f"{k} {tuple(state[k].shape)} vs ours {tuple(expected[k])}" for k in set(expected) & set(state)
                    if tuple(state[k].shape) != tuple(expected[k]))
    wrong = sorted(k for k, v in constants.items() if k in state and state[k].shape == v.shape
                   and not torch.allclose(state[k].float().cpu(), v.float().cpu()))
    if missing or unexpected or shapes or wrong:
        def show(names: list[str]) -> str:
            return ", ".join(names[:6]) + (f" ... ({len(names)} in all)" if len(names) > 6 else "")

        problems = [f"{label}: {show(names)}" for label, names in (("missing", missing), ("unexpected", unexpected),
                                                                   ("shapes", shapes), ("other blur kernels", wrong))
                    if names]
        raise ValueError(f"the official {what} does not fit our network ({'; '.join(problems)}): give the sizes it "
                         "was trained with (--image-size, --num-down: 4 for the released selfie2anime checkpoint, "
                         "3 for train.py's default)")
    net.load_state_dict({key: state[official] for key, official in renames.items()})


def save_official_checkpoint(module: GANsNRoses, path: str | os.PathLike) -> Path:
    """Write ``module``'s networks as the official ``train.py`` does (``G_A2B`` ... ``D_L``, ``iter``; no optimiser
    states): a file the official code loads with ``load_state_dict``."""
    state = {entry: to_official(getattr(module, attr)) for entry, attr in ENTRIES.items()}
    state["iter"] = 0
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def load_official_checkpoint(path: str | os.PathLike, **sizes) -> tuple[GANsNRoses, list[str]]:
    """A ``GANsNRoses`` (the official sizes ``PAPER`` updated with ``sizes``) holding the networks of an official
    checkpoint, and the names of the entries it found. An entry the file lacks is filled from its twin (the
    average from the trained weights or the reverse) when there is one; else it stays at its initialisation."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no official checkpoint at '{path.resolve()}': download GNR_checkpoint.pt (the "
                                "mchong6/GANsNRoses README links it) and give its path")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"'{path}' cannot be read as a torch checkpoint ({type(err).__name__}: {err})") from err
    found = [e for e in ENTRIES if isinstance(state, dict) and isinstance(state.get(e), dict)]
    if not found or not any(e.startswith("G_") for e in found):
        raise ValueError(f"'{path}' is not an official GANs N' Roses checkpoint: it has none of the entries "
                         f"{', '.join(e for e in ENTRIES if e.startswith('G_'))}")
    module = GANsNRoses(**{**PAPER, **sizes})
    for entry in ENTRIES:
        twin = entry.replace("_ema", "") if entry.endswith("_ema") else f"{entry}_ema"
        source = entry if entry in found else twin if twin in found and entry.startswith("G_") else None
        if source is not None:
            from_official(getattr(module, ENTRIES[entry]), state[source], source)
    return module, found


def write_lightning_checkpoint(module: GANsNRoses, path: str | os.PathLike) -> Path:
    """``module`` as a Lightning checkpoint that ``GANsNRoses.load_from_checkpoint(path)`` and the predict script
    read."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams), "epoch": 0,
                "global_step": 0, "pytorch-lightning_version": pl.__version__}, path)
    return path


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description="Convert an official GANs N' Roses checkpoint into a GANsNRoses "
                                                 ".ckpt (predict script, load_from_checkpoint, fine-tuning).")
    parser.add_argument("--checkpoint", required=True, help="the official file (GNR_checkpoint.pt or a ck.pt)")
    parser.add_argument("--out", required=True, help="where to write the .ckpt")
    parser.add_argument("--image-size", type=int, default=PAPER["image_size"])
    parser.add_argument("--num-down", type=int, default=PAPER["num_down"], help="4: the released file; 3: train.py")
    parser.add_argument("--n-res", type=int, default=PAPER["n_res"])
    args = parser.parse_args(argv)
    module, found = load_official_checkpoint(args.checkpoint, image_size=args.image_size, num_down=args.num_down,
                                             n_res=args.n_res)
    print(f"lit_digest: read {', '.join(found)} from {args.checkpoint}")
    return announce(write_lightning_checkpoint(module, args.out), 1, "checkpoint")


if __name__ == "__main__":
    raise SystemExit(script(main)())
