"""The import paths of lit_digest 0.1, kept for one release: ``lit_digest.methods``, ``lit_digest.nn``,
``lit_digest.data``, ``lit_digest.losses``, ``lit_digest.transforms``, ... and their submodules.

They are not files any more. An import finder serves each old module as a thin proxy whose names
come from the new domain modules, so that YAML ``class_path``s, pickled objects and checkpoints written by
0.1 still load. The methods' old optimiser keywords (``optimizer: lars, lr: 1.0, warmup_epochs: 10 ...``)
are translated into the new ``optim`` block when a method is built through an old path
(``lit_digest.methods.BYOL``) or through the top-level names 0.1 had (``lit_digest.BYOL(backbone,
optimizer="adamw", lr=1e-3)``, positional arguments included), and the checkpoint records the translated
block, so that ``load_from_checkpoint`` rebuilds the optimiser the run trained with.

Each old path and each 0.1 keyword warns once per process with a ``FutureWarning`` naming the new class
path: a ``DeprecationWarning`` is hidden by Python's default filters unless ``__main__`` triggers it, and
here the argument parser does (a CLI run would show nothing).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.abc
import importlib.util
import inspect
import sys
import types
import warnings
from typing import Any

__all__ = ["install", "LEGACY_MODULES"]

_SSL = ("lit_digest.ssl",)
_NN = ("lit_digest.ssl.backbones", "lit_digest.core.layers", "lit_digest.core.ema", "lit_digest.codistillation.text",
       "lit_digest.muse.mapping")
_DATA = ("lit_digest.ssl.data", "lit_digest.ssl.datasets", "lit_digest.ssl.mnist", "lit_digest.ssl.arrays",
         "lit_digest.muse.data",
         "lit_digest.muse.vec_io", "lit_digest.muse.dictionary", "lit_digest.muse.export", "lit_digest.muse.synthetic",
         "lit_digest.codistillation.text", "lit_digest.core.download")
_ALIGNMENT = ("lit_digest.muse.csls", "lit_digest.muse.dictionary", "lit_digest.muse.mapping",
              "lit_digest.muse.metrics")
_LOSSES = ("lit_digest.ssl.losses", "lit_digest.core.dist")

# old module -> the new modules its names now live in (searched in order)
LEGACY_MODULES: dict[str, tuple[str, ...]] = {
    "lit_digest.callbacks": ("lit_digest.core.callbacks", "lit_digest.ssl.callbacks"),
    "lit_digest.optim": ("lit_digest.core.optim",),
    "lit_digest.transforms": ("lit_digest.ssl.views",),
    "lit_digest.evaluation": ("lit_digest.ssl.knn", "lit_digest.core.checkpoints"),
    "lit_digest.alignment": _ALIGNMENT,
    "lit_digest.distill": ("lit_digest.codistillation.losses",),
    "lit_digest.nn": _NN,
    "lit_digest.nn.backbones": ("lit_digest.ssl.backbones", "lit_digest.core.layers"),
    "lit_digest.nn.ema": ("lit_digest.core.ema",),
    "lit_digest.nn.heads": ("lit_digest.core.layers",),
    "lit_digest.nn.language": ("lit_digest.codistillation.text",),
    "lit_digest.nn.muse": ("lit_digest.muse.mapping",),
    "lit_digest.losses": _LOSSES,
    "lit_digest.losses.byol": _LOSSES,
    "lit_digest.losses.contrastive": _LOSSES,
    "lit_digest.methods": ("lit_digest.ssl", "lit_digest.muse", "lit_digest.codistillation"),
    "lit_digest.methods.byol": _SSL,
    "lit_digest.methods.simclr": _SSL,
    "lit_digest.methods.supcon": _SSL,
    "lit_digest.methods.supervised": _SSL,
    "lit_digest.methods.linear_eval": ("lit_digest.ssl.linear_eval",),
    "lit_digest.methods.knn_eval": ("lit_digest.ssl.knn_eval",),
    "lit_digest.methods.common": ("lit_digest.ssl.probe", "lit_digest.core.optim"),
    "lit_digest.methods.muse": ("lit_digest.muse",),
    "lit_digest.methods.codistillation": ("lit_digest.codistillation.module",),
    "lit_digest.data": _DATA,
    "lit_digest.data.images": _DATA,
    "lit_digest.data.embeddings": _DATA,
    "lit_digest.data.text": ("lit_digest.codistillation.text",),
    "lit_digest.strategies": ("lit_digest.codistillation.strategy",),
    "lit_digest.strategies.codistillation": ("lit_digest.codistillation.strategy",),
}
_PACKAGES = {"lit_digest.nn", "lit_digest.losses", "lit_digest.methods", "lit_digest.data", "lit_digest.strategies"}

# the keywords of 0.1's optimiser arguments -> the field of ``Optim`` that replaces each
_OPTIM_FIELDS = {"optimizer": "name", "lr": "lr", "weight_decay": "weight_decay", "momentum": "momentum",
                 "lars_eta": "lars_eta", "lars_clip_lr": "lars_clip_lr", "warmup_epochs": "warmup_epochs",
                 "warmup_steps": "warmup_steps", "scale_lr_by_batch": "scale_lr_by_batch", "scheduler": "schedule",
                 "milestones": "milestones", "gamma": "gamma"}
_DROPPED = ("export", "export_dir")  # MUSE 0.1: now the ExportAlignment callback
_METHODS = {"BYOL", "SimCLR", "SupCon", "Supervised", "LinearEval", "Codistillation", "MUSE", "MUSEProcrustes"}
_adapters: dict[tuple[type, str], type] = {}
_warned: set[str] = set()


def warn_once(message: str, stacklevel: int = 3, key: str | None = None) -> None:
    """A ``FutureWarning`` (shown by default, wherever it is attributed), once per process and ``key`` (default:
    the message)."""
    key = key or message
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, FutureWarning, stacklevel=stacklevel)


def _new_path(cls: type) -> str:
    return f"{cls.__module__.rsplit('.', 1)[0] if cls.__module__.count('.') > 1 else cls.__module__}.{cls.__name__}"


def _translate(cls: type, kwargs: dict[str, Any]) -> dict[str, Any]:
    old = {k: kwargs.pop(k) for k in list(kwargs) if k in _OPTIM_FIELDS}
    if "optim" in kwargs and kwargs["optim"] is None:
        del kwargs["optim"]  # the method's own default (the adapters' signature default)
    for key in _DROPPED:
        if kwargs.pop(key, None):
            warn_once(f"{cls.__name__}({key}=...) is gone: add the lit_digest.muse.ExportAlignment callback", 4)
    old = {k: v for k, v in old.items() if v is not None}
    if old:
        shown = ", ".join(f"{k}=..." for k in old)
        warn_once(f"{cls.__name__}({shown}): lit_digest 0.1 keywords, kept for one release: pass "
                  f"optim=Optim(...) to {_new_path(cls)} (YAML: model.init_args.optim)", 4, key=f"{cls} keywords")
        default = inspect.signature(cls).parameters["optim"].default
        base = kwargs.get("optim") or default
        if isinstance(base, dict):
            base = type(default)(**base)
        fields = {_OPTIM_FIELDS[k]: v for k, v in old.items()}
        if fields.get("schedule") == "cosine":
            fields["schedule"] = "warmup_cosine"
        if "milestones" in fields:
            fields["milestones"] = tuple(fields["milestones"])
        kwargs["optim"] = dataclasses.replace(base, **fields)
    return kwargs


class _TransparentMeta(type):
    """The adapters' metaclass: ``isinstance(x, adapter)`` holds for every instance of the adapted class."""

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, cls.__mro__[1])

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, cls.__mro__[1])


def _adapter(cls: type, module: str) -> type:
    """``cls`` accepting 0.1's keywords too (as keyword-only arguments that default to None) and its positional
    arguments, named ``<module>.<name>`` (the old path, or ``lit_digest`` for the top-level names) so that a
    config, a checkpoint or a pickle that names it finds it again."""
    if (cls, module) not in _adapters:
        signature = inspect.signature(cls.__init__)
        positional = [name for name, p in list(signature.parameters.items())[1:]
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if len(args) > len(positional):
                raise TypeError(f"{cls.__name__} takes at most {len(positional)} positional arguments "
                                f"({', '.join(positional)}), got {len(args)}")
            kwargs.update(zip(positional, args))
            cls.__init__(self, **_translate(cls, kwargs))
            initial = getattr(self, "_hparams_initial", {})
            for key in (*_OPTIM_FIELDS, *_DROPPED):
                self.hparams.pop(key, None)
                initial.pop(key, None)
            if "optim" in self.hparams and hasattr(self, "optim"):
                # the block it trains with: the CLI hands save_hyperparameters its config (optim None or the
                # default beside the old keywords), and rebuilds from it through its instantiator (a mapping)
                used = dataclasses.asdict(self.optim) if "_instantiator" in self.hparams else self.optim
                self.hparams["optim"] = used
                if "optim" in initial:
                    initial["optim"] = used

        params = list(signature.parameters.values())
        if "optim" in signature.parameters:  # None: the method's default, or the translated 0.1 keywords
            params = [p.replace(default=None) if p.name == "optim" else p for p in params]
        extra = [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Any)
                 for k in (*_OPTIM_FIELDS, *_DROPPED) if k not in signature.parameters]
        variadic = [p for p in params if p.kind is p.VAR_KEYWORD]  # **kwargs stays last (SupCon has one)
        params = [p for p in params if p.kind is not p.VAR_KEYWORD]
        __init__.__signature__ = inspect.Signature(params + extra + variadic)  # what jsonargparse and Lightning read
        meta = type("_Adapter", (_TransparentMeta, type(cls)), {})
        _adapters[cls, module] = meta(cls.__name__, (cls,), {"__init__": __init__, "__module__": module,
                                                             "__qualname__": cls.__qualname__,
                                                             "__doc__": cls.__doc__})
    return _adapters[cls, module]


def top_level(cls: type) -> type:
    """What ``lit_digest.<Method>`` gives for a method 0.1 exported at the top level: the class, accepting 0.1's
    optimiser keywords and positional arguments for one release."""
    return _adapter(cls, "lit_digest") if cls.__name__ in _METHODS else cls


class _LegacyModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        for target in LEGACY_MODULES[self.__name__]:
            module = importlib.import_module(target)
            if hasattr(module, name):
                value = getattr(module, name)
                new = f"{target}.{name}"
                warn_once(f"{self.__name__}.{name} is a lit_digest 0.1 path, kept for one release: use {new}"
                          f"{' (class_path: ' + new + ')' if isinstance(value, type) else ''}")
                return _adapter(value, self.__name__) if name in _METHODS and isinstance(value, type) else value
        raise AttributeError(f"module {self.__name__!r} (lit_digest 0.1) has no attribute {name!r}")


class _LegacyFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in LEGACY_MODULES:
            return None
        return importlib.util.spec_from_loader(fullname, self, is_package=fullname in _PACKAGES)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _LegacyModule(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        warn_once(f"{module.__name__} is a lit_digest 0.1 path, kept for one release: import from "
                  f"{' / '.join(LEGACY_MODULES[module.__name__])} instead", stacklevel=2)


def install() -> None:
    """Serve the old paths (once per process). Called by ``import lit_digest``."""
    if not any(isinstance(f, _LegacyFinder) for f in sys.meta_path):
        sys.meta_path.append(_LegacyFinder())
