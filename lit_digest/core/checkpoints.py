"""Checkpoints: loading an encoder's weights strictly, refusing another method's checkpoint at once, and loading
injected modules without ``weights_only=False``."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import importlib
import inspect
import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

__all__ = ["CheckpointMismatchError", "read_state_dict", "load_encoder_weights", "expect_checkpoint",
           "trusted_classes", "init_arguments"]


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


_CLI_KEYS = ("_class_path", "_instantiator")


def init_arguments(cls: type) -> dict[str, object] | None:
    """A class's init arguments and their defaults, following ``**kwargs`` to the base classes' ``__init__`` (as
    jsonargparse does: ``SupCon(**kwargs)`` takes SimCLR's); None when ``**kwargs`` reaches a class that takes
    anything (Lightning's own ``__init__(*args, **kwargs)``)."""
    out: dict[str, object] = {}
    for klass in getattr(cls, "__mro__", ()):
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters
        except (ValueError, TypeError):
            return None
        for name, p in params.items():
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                out.setdefault(name, p.default)
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return out
    return None


def _importable(name: str):
    module, _, attr = name.rpartition(".")
    while module:
        try:
            obj = importlib.import_module(module)
        except ImportError:
            module, _, head = module.rpartition(".")
            attr = f"{head}.{attr}"
            continue
        for part in attr.split("."):
            obj = getattr(obj, part, None)
        return obj
    return None


def _trusted(obj) -> bool:
    """A class whose instances a checkpoint may rebuild: an ``nn.Module`` (an injected backbone), or a
    dataclass / enum of lit_digest or torch (plain settings such as ``Optim``)."""
    if not inspect.isclass(obj):
        return False
    if issubclass(obj, nn.Module):
        return True
    home = obj.__module__.split(".")[0]
    return home in ("lit_digest", "torch") and (dataclasses.is_dataclass(obj) or issubclass(obj, enum.Enum))


@contextlib.contextmanager
def trusted_classes(path: str | os.PathLike) -> Iterator[None]:
    """Let ``torch.load(path, weights_only=True)`` rebuild the ``nn.Module`` classes (and lit_digest's settings
    dataclasses) that the checkpoint names in its hyperparameters, and nothing else: any other class or
    function it needs is refused with its name."""
    names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    objects, refused = [], []
    for name in names:
        obj = _importable(name)
        (objects if _trusted(obj) else refused).append(obj if _trusted(obj) else name)
    if refused:
        raise ValueError(f"Checkpoint '{path}' needs {', '.join(refused)} to load, which lit_digest does not trust "
                         "(only nn.Module classes and settings dataclasses are). If you trust the file, load it "
                         "with load_from_checkpoint(path, weights_only=False).")
    with torch.serialization.safe_globals(objects):
        yield


def expect_checkpoint(path: str | os.PathLike, cls: type) -> dict:
    """The Lightning checkpoint at ``path`` if it was saved by ``cls`` (or a subclass); else an error at once.

    Cheap on any size: the tensors are memory-mapped, not read. Raises ``FileNotFoundError`` for no file,
    ``ValueError`` for a file that is not a Lightning checkpoint, or one whose hyperparameters belong to another
    method ("not a <Method> checkpoint": their names are not ``cls``'s arguments, or the CLI recorded another
    class path).
    """
    path = Path(path)
    name = cls.__name__
    if not path.is_file():
        raise FileNotFoundError(f"No {name} checkpoint at '{path.resolve()}': give the path of a .ckpt that a "
                                f"{name} run wrote (runs/<config>/<date>_<time>/checkpoints/last.ckpt).")
    try:
        torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception as err:
        raise ValueError(f"'{path}' is not a {name} checkpoint: it cannot be read as a torch checkpoint "
                         f"({type(err).__name__}: {' '.join(str(err).split())[:200]}).") from err
    with trusted_classes(path):
        state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    if not isinstance(state, dict) or "state_dict" not in state:
        raise ValueError(f"'{path}' is not a {name} checkpoint: it holds no Lightning state_dict (a plain weights "
                         "file? load it into the model with load_state_dict).")
    hparams = dict(state.get("hyper_parameters") or {})
    saved_class = hparams.get("_class_path")
    saved = _importable(saved_class) if isinstance(saved_class, str) else None
    if inspect.isclass(saved):  # the CLI recorded the class (also an old path that lit_digest still maps)
        if not issubclass(saved, cls):
            raise ValueError(f"'{path}' is not a {name} checkpoint: it was saved by {saved_class}.")
        return state
    params = init_arguments(cls)
    if params is not None:
        names = [k for k in hparams if k not in _CLI_KEYS]
        foreign = sorted(k for k in names if k not in params)
        if names and len(foreign) * 2 > len(names):  # a renamed argument or two is not another method
            raise ValueError(f"'{path}' is not a {name} checkpoint: its hyperparameters "
                             f"({', '.join(foreign[:6])}{' ...' if len(foreign) > 6 else ''}) are not {name}'s "
                             "arguments. Give the checkpoint of a run of this method.")
    return state
