"""Loading an encoder's weights from a lit_digest checkpoint or a plain state_dict file, strictly."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

__all__ = ["CheckpointMismatchError", "read_state_dict", "load_encoder_weights"]


class CheckpointMismatchError(ValueError):
    """A checkpoint's weights do not fit the encoder they are loaded into."""


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(
            f"No checkpoint at '{path.resolve()}': set model.init_args.checkpoint to a lit_digest .ckpt "
            "(e.g. runs/<method>/checkpoints/last.ckpt) or a file saved with "
            "torch.save(encoder.state_dict())."
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # Lightning checkpoints of modules built outside the CLI pickle the backbone in their
        # hyperparameters; only the tensors are used here. Load only files you trust.
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:
            raise ValueError(f"Could not read checkpoint '{path}': {err}") from err
    except Exception as err:  # not a torch file, truncated download ...
        raise ValueError(
            f"Could not read checkpoint '{path}' ({type(err).__name__}: {err}). Expected a lit_digest "
            ".ckpt or a torch.save'd state_dict."
        ) from err
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]  # a Lightning checkpoint
    tensors_by_name = isinstance(obj, dict) and all(isinstance(k, str) and torch.is_tensor(v)
                                                    for k, v in obj.items())
    if not tensors_by_name:
        raise ValueError(
            f"Checkpoint '{path}' holds a {type(obj).__name__}, not a state_dict: expected a lit_digest "
            ".ckpt or a dict of parameter name -> tensor."
        )
    return obj


def load_encoder_weights(encoder: nn.Module, path: str | Path, prefix: str | None = None) -> list[str]:
    """Load an encoder's weights from a lit_digest checkpoint or a plain state_dict file, strictly.

    ``prefix`` selects the encoder's entries and is stripped from their names: ``None`` picks
    ``"backbone."`` when the file has such keys (every lit_digest method keeps its encoder in
    ``self.backbone``; the EMA ``target_backbone.`` of BYOL is not taken), else uses the names as
    they are (a ``torch.save(encoder.state_dict())`` file). Other entries (projector, probe ...)
    are ignored.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a checkpoint.
        CheckpointMismatchError: keys missing from (or unexpected in) the selected weights, or
            shapes that differ; the message names them.
    Returns:
        the names of the loaded tensors.
    """
    path = Path(path)
    state = read_state_dict(path)
    if prefix is None:
        prefix = "backbone." if any(k.startswith("backbone.") for k in state) else ""
    selected = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    expected = encoder.state_dict()
    missing = sorted(set(expected) - set(selected))
    unexpected = sorted(set(selected) - set(expected))
    shapes = sorted(f"{k}: checkpoint {tuple(selected[k].shape)} vs encoder {tuple(expected[k].shape)}"
                    for k in set(expected) & set(selected) if selected[k].shape != expected[k].shape)
    if missing or unexpected or shapes:

        def show(names: list[str]) -> str:
            return ", ".join(names[:12]) + (f" ... ({len(names)} in all)" if len(names) > 12 else "")

        problems = []
        if missing:
            problems.append(f"missing keys: {show(missing)}")
        if unexpected:
            problems.append(f"unexpected keys: {show(unexpected)}")
        if shapes:
            problems.append(f"shape mismatches: {show(shapes)}")
        raise CheckpointMismatchError(
            f"Checkpoint '{path}' does not fit the encoder {type(encoder).__name__} "
            f"(key prefix {prefix!r}): " + "; ".join(problems) + ". Check that model.init_args.backbone is "
            "built as in the run that saved the checkpoint (same class, depth, width, stem, channels), or "
            "set model.init_args.checkpoint_prefix."
        )
    encoder.load_state_dict(selected, strict=True)
    return sorted(selected)
