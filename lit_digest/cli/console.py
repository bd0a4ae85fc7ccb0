"""What the command line shows: the shipped configs (``list``, ``--help``, ``--config byol/cifar10``), short
errors for mistyped keys, and no set-up noise."""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.resources
import logging
import re
import warnings
from pathlib import Path
from typing import Any

__all__ = ["configs_dir", "shipped_configs", "describe", "listing", "overview", "resolve_config_paths", "quiet",
           "readable_help", "short_error"]

_NOISE = re.compile(r"^(Seed set to|GPU available|TPU available|HPU available|💡 Tip|Loading `\w+` to estimate|"
                    r"`Trainer\(limit_\w+_batches=.*\)` was configured|LOCAL_RANK: |You are using a CUDA device)")


def configs_dir() -> Path:
    """The shipped configs: ``lit_digest/configs`` in the installed package (in a clone, a link to the
    repository's ``configs/``; a wheel holds the files)."""
    return Path(str(importlib.resources.files("lit_digest") / "configs"))


def shipped_configs() -> list[Path]:
    root = configs_dir()
    return sorted(p for p in root.rglob("*.yaml")
                  if "_base" not in p.relative_to(root).parts and p.name != "smoke.yaml")


def describe(path: Path) -> str:
    """The first comment line of a config."""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def listing() -> str:
    root = configs_dir()
    rows = [(p.relative_to(root).with_suffix("").as_posix(), describe(p)) for p in shipped_configs()]
    rows = [(name, text if len(text) <= 100 else text[:97].rstrip(" ,;:") + "...") for name, text in rows]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {text}" for name, text in rows)


def overview() -> str:
    methods: dict[str, list[str]] = {}
    for path in shipped_configs():
        folder = path.parent.name if path.parent != configs_dir() else "(top level)"
        methods.setdefault(folder, []).append(path.stem)
    lines = ["lit_digest: Lightning implementations of the methods reviewed in two ML paper-digest channels.",
             "", "  python -m lit_digest fit|validate|test|predict --config <config> [--key value ...]",
             "  python -m lit_digest list        every shipped config, one line each",
             "  python -m lit_digest fit --config byol/cifar10 --print_config   the resolved config",
             "  python -m lit_digest fit --config ... --resume auto             continue the newest run", "",
             "Shipped configs (--config <folder>/<name>):"]
    lines += [f"  {folder:<16} {', '.join(names)}" for folder, names in sorted(methods.items())]
    return "\n".join(lines) + "\n"


def resolve_config_paths(args: list[str]) -> list[str]:
    """``--config byol/cifar10`` (or ``byol/cifar10.yaml``) names a shipped config when no such file exists;
    each config's group overrides are expanded (``group_overrides``)."""
    out = list(args)
    for i, arg in enumerate(out[:-1]):
        if arg == "--config" and not Path(out[i + 1]).exists():
            for candidate in (configs_dir() / out[i + 1], configs_dir() / f"{out[i + 1]}.yaml"):
                if candidate.is_file():
                    out[i + 1] = str(candidate)
                    break
    expanded: list[str] = []
    for i, arg in enumerate(out):
        expanded.append(arg)
        if i > 0 and out[i - 1] == "--config":
            expanded += group_overrides(Path(arg))
    return expanded


def group_overrides(config: Path) -> list[str]:
    """A config may take a group from a base file and change some of its keys::

        trainer: ../_base/trainer/pretrain.yaml
        trainer.max_epochs: 400

    jsonargparse alone reads such a file as ``trainer: {max_epochs: 400}``: the dotted key replaces the
    included file, which is lost. The file stays valid for it; these arguments, placed right after its
    ``--config``, load the base again and re-apply the dotted keys on top of it (and before anything
    later on the command line): ``--trainer <base> --trainer.max_epochs 400``."""
    import yaml

    try:
        cfg = yaml.safe_load(config.read_text())
    except (OSError, yaml.YAMLError):
        return []  # jsonargparse reports it
    if not isinstance(cfg, dict):
        return []
    args: list[str] = []
    for group, base in cfg.items():
        dotted = {k: v for k, v in cfg.items() if isinstance(k, str) and k.startswith(f"{group}.")}
        if not (isinstance(base, str) and base.endswith((".yaml", ".yml")) and dotted):
            continue
        args += [f"--{group}", str((config.parent / base).resolve())]
        for key, value in dotted.items():
            text = value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip()
            args += [f"--{key}", text.removesuffix("\n...").strip()]
    return args


def readable_help() -> None:
    """``--model.help BYOL`` lists the backbone's known subclasses: every ``nn.Module`` in torch, hundreds of
    lines that bury the method's own options. Keep lit_digest's and count the others (jsonargparse's
    ``ActionTypeHint.extra_help``, patched for this process; left alone if jsonargparse changes it)."""
    try:
        from jsonargparse import _typehints
    except ImportError:  # pragma: no cover - depends on the jsonargparse version
        return
    action = getattr(_typehints, "ActionTypeHint", None)
    if action is None or getattr(action, "_lit_digest_help", False):
        return
    if not hasattr(_typehints, "get_all_subclass_paths"):
        return

    def building_block(path: str) -> bool:  # a LightningModule is an nn.Module too, but no one's backbone
        module, _, name = path.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError):
            return True
        return not any(c.__name__ == "LightningModule" for c in getattr(cls, "__mro__", ()))

    def extra_help(self) -> str:
        paths = _typehints.get_all_subclass_paths(self._typehint, closed_types=False)
        ours = [p for p in paths if p.startswith("lit_digest.") and building_block(p)]
        if len(paths) <= 12:
            ours = paths
        others = len(paths) - len(ours)
        if not paths:
            return ""
        more = f" (and {others} others: any importable class path)" if others else ""
        return ", known subclasses: " + ", ".join(ours) + more

    action.extra_help = extra_help
    action._lit_digest_help = True


class _Quiet(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _NOISE.match(record.getMessage())


def quiet() -> None:
    """Drop Lightning's set-up chatter (accelerator availability, tips, the seed line) and two warnings that say
    nothing to a user of the shipped configs. Called by the command line only: importing lit_digest changes no
    logging or warning settings."""
    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric"):
        for handler in logging.getLogger(name).handlers:
            handler.addFilter(_Quiet())
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    warnings.filterwarnings("ignore", message=r"The number of training batches .* is smaller than the logging")


_ALIASES = {"learning_rate": "lr", "lr_rate": "lr", "wd": "weight_decay", "decay": "weight_decay",
            "optimizer": "name", "epochs": "max_epochs", "bs": "batch_size", "batch": "batch_size",
            "workers": "num_workers", "temp": "temperature"}


def _params(cls: Any) -> dict[str, Any]:
    """A class's init arguments with their defaults (through ``**kwargs`` to its bases, as jsonargparse reads them)."""
    from lit_digest.core.checkpoints import init_arguments

    return init_arguments(cls) or {}


def _class_keys(config: Any, prefix: str = "") -> set[str]:
    """Every init argument of every class named by ``class_path`` in a (parsed YAML) config, as dotted keys,
    with the fields of dataclass arguments (``model.init_args.optim.lr``)."""
    keys: set[str] = set()
    if isinstance(config, dict):
        path = config.get("class_path")
        if isinstance(path, str) and "." in path:
            module, _, name = path.rpartition(".")
            try:
                cls = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError, ValueError):
                cls = None
            for param, default in _params(cls).items():
                keys.add(f"{prefix}init_args.{param}")
                if dataclasses.is_dataclass(default):
                    keys |= {f"{prefix}init_args.{param}.{f.name}" for f in dataclasses.fields(default)}
        for key, value in config.items():
            keys |= _class_keys(value, f"{prefix}{key}.")
    return keys


_TOP_LEVEL = ("seed_everything", "trainer", "model", "data", "ckpt_path", "resume", "config")


def short_error(message: str, config_files: list[str]) -> str | None:
    """A few lines for a mistyped option (on the command line or in a config file, at any depth), with the
    closest valid key; None for any other parser error."""
    import yaml

    bad = re.search(r"(?:Option|Key) ['\"]([\w.]+)['\"] is not (?:accepted|expected)", message)
    group = re.search(r"Group ['\"](\w+)['\"] does not accept option ['\"]([\w.]+)['\"]", message)
    if not (bad or group):
        return None
    wrong = bad.group(1) if bad else f"{group.group(1)}.{group.group(2)}"
    owner = re.findall(r"class_path ['\"]([\w.]+)['\"]", message)
    keys: set[str] = set()
    for file in config_files:
        try:
            keys |= _class_keys(yaml.safe_load(Path(file).read_text()) or {})
        except (OSError, yaml.YAMLError):
            continue
    if group and group.group(1) == "trainer":
        from lit_digest.core.lightning import Trainer

        keys |= {f"trainer.{name}" for name in _params(Trainer)}
    elif owner:  # the class the key was given to: its own arguments, wherever the files name it
        module, _, name = owner[-1].rpartition(".")
        try:
            params = _params(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError, ValueError):
            params = {}
        leaf_path = next((k.rsplit(".", 1)[0] for k in sorted(keys, key=len) if k.rsplit(".", 1)[-1] in params), "")
        keys |= {f"{leaf_path}.{p}" if leaf_path else p for p in params}
    elif "." not in wrong:
        keys |= set(_TOP_LEVEL)
    leaf = wrong.rsplit(".", 1)[-1]
    by_leaf: dict[str, str] = {}
    for key in sorted(keys, key=len):
        by_leaf.setdefault(key.rsplit(".", 1)[-1], key)
    close = difflib.get_close_matches(_ALIASES.get(leaf, leaf), list(by_leaf), n=1, cutoff=0.6)
    where = f" of {owner[-1]}" if owner else (f" of {group.group(1)}" if group else "")
    lines = [f"lit_digest: unknown option '{leaf}'{where}."]
    if close:
        lines.append(f"Did you mean {by_leaf[close[0]]}?")
    lines.append("Every option and its value: add --print_config; a class's own: --model.help <class>.")
    return " ".join(lines)
