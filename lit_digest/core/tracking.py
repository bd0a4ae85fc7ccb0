"""Weights & Biases without surprises, for the command line and the measured commands alike.

- No API key (``WANDB_API_KEY`` or ``~/.netrc``): W&B logs offline (``wandb sync`` uploads later).
- A key but no network: W&B would wait about 90 s and crash; the server is probed first (3 s) and the
  run goes offline with one line, or, when ``WANDB_MODE=online`` was asked for explicitly, stops at once
  with the fix.
- ``WANDB_MODE=disabled``: no run, no files.
W&B's own banner is silenced (``WANDB_SILENT``) unless the user set it; one line says where the run is.
"""

from __future__ import annotations

import netrc
import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

__all__ = ["configure_wandb_mode", "wandb_reachable"]



def _has_wandb_key(environ: os._Environ | dict) -> bool:
    if environ.get("WANDB_API_KEY"):
        return True
    try:
        auth = netrc.netrc(environ.get("NETRC", str(Path.home() / ".netrc"))).authenticators("api.wandb.ai")
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    return bool(auth and auth[2])


def wandb_reachable(environ: os._Environ | dict = os.environ, timeout: float = 3.0) -> tuple[bool, str]:
    """(whether the W&B server answers a TCP connection within ``timeout`` s, its host:port)."""
    url = urlparse(environ.get("WANDB_BASE_URL") or "https://api.wandb.ai")
    host, port = url.hostname or "api.wandb.ai", url.port or (80 if url.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, f"{host}:{port}"
    except OSError:
        return False, f"{host}:{port}"


def configure_wandb_mode(environ: os._Environ | dict = os.environ, probe=wandb_reachable) -> str:
    """Set ``WANDB_MODE`` so that a run never stops at a login prompt or hangs without a network (see the
    module docstring). Returns the mode in force."""
    environ.setdefault("WANDB_SILENT", "true")
    mode = environ.get("WANDB_MODE")
    if mode and mode != "online":
        return mode
    if not mode and not _has_wandb_key(environ):
        environ["WANDB_MODE"] = "offline"
        print("lit_digest: no W&B API key found (WANDB_API_KEY or ~/.netrc): W&B logs offline into the run "
              "folder; upload later with `wandb sync <run folder>/wandb/offline-run-*`.", file=sys.stderr)
        return "offline"
    reachable, server = probe(environ)
    if reachable:
        return "online"
    if mode == "online":
        raise SystemExit(f"lit_digest: WANDB_MODE=online, but the W&B server {server} does not answer. Check the "
                         "network (or WANDB_BASE_URL), or run with WANDB_MODE=offline and `wandb sync` later.")
    environ["WANDB_MODE"] = "offline"
    print(f"lit_digest: the W&B server {server} does not answer: W&B logs offline; upload later with "
          "`wandb sync <run folder>/wandb/offline-run-*` (WANDB_MODE=online makes this an error).", file=sys.stderr)
    return "offline"
