"""``Progress``: one line every few seconds for long loops that are not training (CSLS over 200k words, data
preparation), so that no minute passes in silence; quiet for anything shorter."""

from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


class Progress:
    """``update(done)`` inside a loop of ``total`` units prints ``label: 40% (80000/200000 unit), 12 s`` at most
    every ``every`` seconds, the first time only after ``every`` seconds (short loops print nothing); ``close()``
    prints the total time if anything was printed."""

    def __init__(self, total: int, label: str, unit: str = "", every: float = 10.0) -> None:
        self.total, self.label, self.unit, self.every = total, label, unit, every
        self.start = self.last = time.monotonic()
        self.printed = False

    def update(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last, self.printed = now, True
            share = f"{100 * done / self.total:.0f}% " if self.total else ""
            print(f"{self.label}: {share}({done}/{self.total} {self.unit}), {now - self.start:.0f} s",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.printed:
            print(f"{self.label}: done in {time.monotonic() - self.start:.0f} s", file=sys.stderr, flush=True)
