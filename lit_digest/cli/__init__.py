"""``python -m lit_digest fit|validate|test|predict|list|get`` and the ``lit-digest`` console script.

This package's top is light on purpose: ``list``, ``get`` and the overview answer at once, without importing
Lightning or any domain; ``fit``/``validate``/``test``/``predict`` load ``lit_digest.cli.app`` (LightningCLI in
subclass mode, every domain imported so that short class names resolve).

- ``app``: ``LitDigestCLI`` and ``main``; ``runs``: a folder per run, ``--resume auto``, ``--ckpt_path best``;
  ``tracking``: W&B in the run; ``console``: the shipped configs, short errors, no set-up noise.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["LitDigestCLI", "main", "run", "configure_wandb_mode"]


def _fast(argv: list[str]) -> int | None:
    """Answer ``list``, ``get``, ``measured`` and the bare overview without Lightning; None for everything else."""
    if argv[:1] in (["list"], ["configs"]):
        from lit_digest.cli.console import listing

        print(listing())
        return 0
    if argv[:1] == ["get"]:
        from lit_digest.cli.get import main as get

        return get(argv[1:])
    if argv[:1] == ["measured"]:
        from lit_digest.cli.measured import main as measured
        from lit_digest.core.console import script

        return script(measured)(argv[1:])
    if not argv:
        from lit_digest.cli.console import overview

        print(overview())
        return 0
    return None


def run() -> int:
    """The ``lit-digest`` console script (and ``python -m lit_digest``): exit status 0 after a successful run.
    An error lit_digest raised about the user's settings or data (a wrong value, a missing file, a non-finite
    loss), also deep inside the building of a nested class (where the argument parser wraps it in its own
    errors), is printed as its one-line message with where it came from, status 1 (``lit_digest.core.console``);
    ``LIT_DIGEST_TRACEBACK=1`` shows the whole traceback, as does any other error."""
    from lit_digest.core.console import script

    fast = _fast(sys.argv[1:])
    if fast is not None:
        return fast
    from lit_digest.cli.app import main

    try:
        return script(main)()
    except SystemExit as stop:
        if type(stop).__name__ != "SIGTERMException":
            raise
        # Lightning stopped at the end of the batch; CheckpointOnException saved interrupted-step=N.ckpt
        print("lit_digest: stopped by SIGTERM; continue the run with --resume auto", file=sys.stderr, flush=True)
        return 128 + 15


def __getattr__(name: str) -> Any:
    if name in ("LitDigestCLI", "main"):
        from lit_digest.cli import app

        return getattr(app, name)
    if name == "configure_wandb_mode":
        from lit_digest.core.tracking import configure_wandb_mode

        return configure_wandb_mode
    raise AttributeError(f"module 'lit_digest.cli' has no attribute {name!r}")
