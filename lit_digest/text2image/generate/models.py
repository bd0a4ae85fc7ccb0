"""The two models VQGAN+CLIP steers with, from files: any VQGAN and any CLIP, with one clear error per mistake.

VQGAN (``load_vqgan``): a ``VQGANModule`` checkpoint of ours, or a taming / latent-diffusion VQGAN ``.ckpt`` with
its ``.yaml`` (``lit_digest.text2image.vqgan.convert``); None builds the default ``VQGANModule`` sizes untrained.

CLIP (``load_clip``): a ``CLIPModule`` checkpoint of ours, or an open_clip checkpoint file with its model name
(``open_clip.create_model(name, pretrained=path)``, e.g. ``ViT-B-32`` with ``open_clip_pytorch_model.bin``);
None builds the default ``CLIPModule`` sizes untrained. ``TextImageModel`` gives both the same two calls.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from lit_digest.text2image.clip.module import image_features

__all__ = ["TextImageModel", "load_vqgan", "load_clip"]


def _lightning_class(path: Path) -> str | None:
    """The ``_class_path`` or the hyperparameter names of a Lightning checkpoint, None for another file."""
    import pickle

    try:
        state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except pickle.UnpicklingError:
        return None  # pickles classes lit_digest's checkpoints never hold: another project's file
    except Exception as err:
        raise ValueError(f"'{path}' cannot be read as a torch checkpoint ({type(err).__name__}: "
                         f"{' '.join(str(err).split())[:160]})") from err
    if not isinstance(state, dict) or "state_dict" not in state:
        return None
    hp = state.get("hyper_parameters") or {}
    return str(hp.get("_class_path") or "") + " " + " ".join(hp)


def load_vqgan(path: str | os.PathLike | None, config: str | os.PathLike | None = None) -> nn.Module:
    """A diffusers ``VQModel`` in eval mode, frozen."""
    from lit_digest.text2image.vqgan.convert import load_taming_vqgan
    from lit_digest.text2image.vqgan.module import VQGANModule, build_vqmodel

    if path is None:
        vq = build_vqmodel()
    else:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"VQGAN checkpoint not found at '{path.resolve()}': set model.init_args.vqgan to "
                                    "a VQGANModule .ckpt (python -m lit_digest fit --config configs/vqgan/scenes.yaml "
                                    "writes one) or a taming / latent-diffusion VQGAN .ckpt with "
                                    "model.init_args.vqgan_config")
        kind = _lightning_class(path)
        if kind is not None and ("VQGANModule" in kind or "num_vq_embeddings" in kind):
            vq = VQGANModule.load_from_checkpoint(path, map_location="cpu").vqmodel
        else:
            vq = load_taming_vqgan(path, config)
    return vq.eval().requires_grad_(False)


class TextImageModel(nn.Module):
    """A CLIP and its tokenizer: ``encode_text(strings)`` and ``encode_image(images in [0, 1])``, both ``(N, D)``."""

    def __init__(self, model: nn.Module, tokenizer, image_size: int) -> None:
        super().__init__()
        self.model, self.image_size = model, image_size
        self.__dict__["tokenizer"] = tokenizer

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        return self.model.encode_text(self.tokenizer(list(texts)).to(self.model.logit_scale.device))

    def encode_image(self, images01: torch.Tensor) -> torch.Tensor:
        return image_features(self.model, images01)


def load_clip(path: str | os.PathLike | None, model_name: str | None = None) -> TextImageModel:
    """A ``TextImageModel`` in eval mode, frozen."""
    from lit_digest.text2image.clip.module import CLIPModule, build_clip

    # the image size is read from the model: under the CLI, a module built inside another one's __init__ records the
    # outer module's hyperparameters (Lightning's given-hyperparameters context), not its own
    if path is None:
        from open_clip.tokenizer import SimpleTokenizer

        model = build_clip()
        return TextImageModel(model, SimpleTokenizer(context_length=model.context_length),
                              _side(model)).eval().requires_grad_(False)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CLIP checkpoint not found at '{path.resolve()}': set model.init_args.clip to a "
                                "CLIPModule .ckpt (python -m lit_digest fit --config configs/clip/scenes.yaml writes "
                                "one) or an open_clip weights file with model.init_args.clip_model")
    kind = _lightning_class(path)
    if kind is not None and ("CLIPModule" in kind or "vision_width" in kind):
        module = CLIPModule.load_from_checkpoint(path, map_location="cpu")
        return TextImageModel(module.model, module.tokenizer, _side(module.model)).eval().requires_grad_(False)
    import open_clip

    if model_name is None:
        raise ValueError(f"'{path}' is not a CLIPModule checkpoint; for an open_clip weights file set "
                         "model.init_args.clip_model to its architecture (e.g. ViT-B-32; open_clip.list_models())")
    if model_name not in open_clip.list_models():
        raise ValueError(f"clip_model {model_name!r} is not an open_clip architecture; see open_clip.list_models()")
    try:
        model = open_clip.create_model(model_name, pretrained=str(path))
    except Exception as err:
        raise ValueError(f"'{path}' does not load into open_clip's {model_name} ({type(err).__name__}: "
                         f"{' '.join(str(err).split())[:200]})") from err
    return TextImageModel(model, open_clip.get_tokenizer(model_name), _side(model)).eval().requires_grad_(False)


def _side(model: nn.Module) -> int:
    size = model.visual.image_size
    return int(size[0] if isinstance(size, (tuple, list)) else size)
