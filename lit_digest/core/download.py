"""Missing data: one error type and one message shape for every DataModule, and a safe download.

Every DataModule that cannot find its data raises ``MissingDataError`` built by
``missing_data_error``: what is missing, the absolute path it looked at, where to get it, and the
config option that points elsewhere. ``fetch`` downloads a file when the user asked for it, to a
``.part`` file renamed when complete (an interrupted download never passes for the file), and
shows its size and rate.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["MissingDataError", "missing_data_error", "fetch"]


class MissingDataError(FileNotFoundError):
    """Data a run needs is absent (or unreadable) and was not, or could not be, downloaded."""


def missing_data_error(what: str, path: str | os.PathLike, *, url: str | None = None, fix: str = "",
                       reason: str = "") -> MissingDataError:
    """``MissingDataError`` naming ``what``, the absolute ``path``, the ``url`` to get it from and the ``fix``.

    Example: ``missing_data_error("CIFAR-10", root, url=..., fix="set data.init_args.data_dir")``.
    """
    parts = [f"{what} not found at '{Path(path).expanduser().resolve()}'" + (f" ({reason})" if reason else "") + "."]
    if url:
        parts.append(f"Get it from {url}.")
    if fix:
        parts.append(fix[0].upper() + fix[1:] + ("" if fix.endswith(".") else "."))
    return MissingDataError(" ".join(parts))


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GB"


def _copy_with_progress(response, out, total: int | None, label: str, every_s: float = 2.0) -> None:
    done, start, last = 0, time.monotonic(), 0.0
    while chunk := response.read(2**20):
        out.write(chunk)
        done += len(chunk)
        now = time.monotonic()
        if now - last >= every_s:
            last = now
            rate = done / max(now - start, 1e-6)
            size = f" of {_human(total)} ({100 * done / total:.0f}%)" if total else ""
            print(f"{label}: {_human(done)}{size} at {_human(rate)}/s", file=sys.stderr, flush=True)
    print(f"{label}: {_human(done)} in {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)


def fetch(path: str | os.PathLike, url: str, *, download: bool = False, timeout: float = 60.0,
          option: str = "data.init_args.download") -> Path:
    """``path`` if it exists; else download ``url`` there when ``download``; else ``MissingDataError``.

    ``option`` names the config switch that turns the download on, for the message.
    """
    path = Path(path)
    if path.is_file():
        return path
    manual = f"download it by hand (`curl -L -o {path} {url}`) or point the config at a local copy"
    if not download:
        raise missing_data_error(path.name, path, url=url, fix=f"pass --{option} true, or {manual}")
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, part.open("wb") as out:
            length = response.headers.get("Content-Length")
            _copy_with_progress(response, out, int(length) if length else None, f"downloading {url}")
    except (urllib.error.URLError, OSError, ValueError) as err:
        part.unlink(missing_ok=True)
        raise missing_data_error(path.name, path, url=url, reason=f"the download failed: {err}", fix=manual) from err
    part.replace(path)
    return path
