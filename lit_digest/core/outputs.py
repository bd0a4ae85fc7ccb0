"""What a method's ``predict`` (or any command) writes for the user, and the one line that says where.

Every method's ``predict`` writes its natural output into the run folder (``run_dir(trainer)``): features as
``.npy``/``.parquet``, per-row probabilities as CSV/parquet with the input's row index, images as PNG, text as
JSONL, depth as 16-bit PNG. It then calls ``announce(path, count, unit)``, which prints one line::

    lit_digest: wrote 24 completions to runs/gptj-jargon/2026-12-05_16-00-00/completions.jsonl

``tests/test_contract.py`` runs ``predict`` on every shipped config and reads this line back (``ANNOUNCED``).
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["ANNOUNCED", "announce"]

ANNOUNCED = re.compile(r"^lit_digest: wrote (\d+) (.+?) to (\S+)$", re.MULTILINE)


def announce(path: str | Path, count: int, unit: str) -> Path:
    """Print ``lit_digest: wrote <count> <unit> to <path>`` (call it on rank 0 only, after the file is written)."""
    path = Path(path)
    print(f"lit_digest: wrote {count} {unit} to {path}", flush=True)
    return path
