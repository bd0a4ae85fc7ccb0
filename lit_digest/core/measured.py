"""One run of a method's measured command: its folder, settings, table, plot, numbers and wall time.

Every method ends with one command that prints a measured number beside a baseline (README, "Measured").
Those commands share this shape::

    run = MeasuredRun("depth", settings=vars(args))        # runs/measured/depth/<date>_<time>/
    ...                                                    # pass run.settings on to the code, not args
    run.table(["input", "RMSE"], [["low", 0.856], ...])    # printed as Markdown, kept in results.json
    run.figure(fig)                                        # PNG in the folder, and an image in W&B
    run.finish({"merged/rmse": 0.885, "low/rmse": 0.856})  # results.json + one machine-readable line

``finish`` prints ``lit_digest-measured {json}``: ``python -m lit_digest.measured`` reads that line to compare
a fresh run with the README's table. W&B follows ``lit_digest.core.tracking`` (offline without a key,
``WANDB_MODE=disabled`` for none).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lit_digest.core.outputs import announce

__all__ = ["MEASURED_PREFIX", "MeasuredRun", "git_commit"]

MEASURED_PREFIX = "lit_digest-measured "


def git_commit(path: Path | None = None) -> str | None:
    """The commit of the checkout holding ``path`` (this package by default), ``None`` outside a clone."""
    where = path or Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=where, capture_output=True, text=True,
                             timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    return str(value)


class MeasuredRun:
    """A measured command's run. ``settings`` are the options it runs with: the code must read them from
    ``run.settings`` (tests read them back from ``results.json`` to check that every option reached the code).

    Args:
        name: the command's short name (``depth``, ``ganroses``): the folder ``<out>/<name>/<date>_<time>``.
        settings: every option of the run, as used.
        out: the parent folder (default ``runs/measured``).
        wandb: log the table, the numbers and the figures to a W&B run in the folder.
    """

    def __init__(self, name: str, settings: dict[str, Any], out: str | os.PathLike | None = None,
                 wandb: bool = True) -> None:
        self.name, self.settings = name, dict(settings)
        self.start = time.monotonic()
        self.commit = git_commit()  # the code that runs: taken at the start (a long run may outlive a commit)
        stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
        self.folder = Path(out or "runs/measured") / name / stamp
        n = 1
        while self.folder.exists():
            n += 1
            self.folder = self.folder.with_name(f"{stamp}_{n}")
        self.folder.mkdir(parents=True)
        self.tables: list[dict[str, Any]] = []
        self._wandb = None
        if wandb:
            from lit_digest.core.tracking import configure_wandb_mode

            if configure_wandb_mode() != "disabled":
                import wandb as wandb_lib

                self._wandb = wandb_lib.init(project="lit_digest", name=f"measured-{name}", dir=str(self.folder),
                                             config=_plain(self.settings), job_type="measured")
        shown = ", ".join(f"{k}={v}" for k, v in self.settings.items())
        print(f"lit_digest: measuring {name} ({shown}); outputs in {self.folder}", file=sys.stderr, flush=True)

    def table(self, header: list[str], rows: list[list[Any]], title: str = "") -> str:
        """Print ``rows`` as a Markdown table (floats to 4 significant digits) and keep it for results.json."""

        def cell(v: Any) -> str:
            return f"{v:.4g}" if isinstance(v, float) else str(v)

        lines = ([f"\n{title}"] if title else []) + ["| " + " | ".join(header) + " |",
                                                    "| " + " | ".join("---" for _ in header) + " |"]
        lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
        text = "\n".join(lines)
        print(text, flush=True)
        self.tables.append({"title": title, "header": header, "rows": _plain(rows)})
        if self._wandb is not None:
            import wandb as wandb_lib

            key = f"table_{len(self.tables)}"  # not the title: W&B refuses artifact names over 128 characters
            self._wandb.log({key: wandb_lib.Table(columns=header, data=[[cell(v) for v in r] for r in rows])})
            if title:
                self._wandb.summary[f"{key}_title"] = title
        return text

    def figure(self, fig, name: str = "plot") -> Path:
        """Save a matplotlib figure as ``<folder>/<name>.png`` and log it to W&B; closes the figure."""
        import matplotlib.pyplot as plt

        path = self.folder / f"{name}.png"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        if self._wandb is not None:
            import wandb as wandb_lib

            self._wandb.log({name: wandb_lib.Image(str(path))})
        announce(path, 1, "plot")
        return path

    def finish(self, numbers: dict[str, float]) -> dict[str, Any]:
        """Write ``results.json`` (settings, tables, numbers, wall time, commit, date) and print the numbers as
        one ``lit_digest-measured {json}`` line; returns what was written."""
        result = {"name": self.name, "settings": _plain(self.settings), "numbers": _plain(numbers),
                  "tables": self.tables, "wall_s": round(time.monotonic() - self.start, 1),
                  "commit": self.commit, "date": time.strftime("%Y-%m-%d")}
        path = self.folder / "results.json"
        path.write_text(json.dumps(result, indent=1))
        if self._wandb is not None:
            self._wandb.summary.update({**result["numbers"], "wall_s": result["wall_s"]})
            self._wandb.finish()
        print(f"lit_digest: {self.name} measured in {result['wall_s']:.0f} s; results in {path}", flush=True)
        print(MEASURED_PREFIX + json.dumps({"name": self.name, "numbers": result["numbers"],
                                            "wall_s": result["wall_s"]}), flush=True)
        return result
