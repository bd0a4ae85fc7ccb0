"""One line for a user's mistake, in the command line and in every script.

A mistake lit_digest can name (a wrong value, a missing or corrupt file, a wrong checkpoint, a non-finite loss)
is raised as ``ValueError``, ``TypeError``, ``FileNotFoundError`` (``MissingDataError``) or
``FloatingPointError`` where it is found, with the thing and the fix in its message. ``user_error`` finds such
an error, raised in lit_digest's own code, also when a library (the argument parser, Lightning) wrapped it in
errors of its own; ``script`` runs a script's ``main`` and prints that error as one line instead of a
traceback. ``LIT_DIGEST_TRACEBACK=1`` shows the traceback.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

__all__ = ["USER_ERRORS", "user_error", "error_line", "script"]

USER_ERRORS = (ValueError, TypeError, FileNotFoundError, FloatingPointError)
_PACKAGE = Path(__file__).resolve().parents[1]


def _raised_by_us(err: BaseException) -> str | None:
    """``path:line`` in lit_digest where ``err`` was raised, or None when it was raised elsewhere."""
    frames = traceback.extract_tb(err.__traceback__)
    if not frames:
        return None
    last = Path(frames[-1].filename).resolve()
    if _PACKAGE not in last.parents:
        return None
    return f"{last.relative_to(_PACKAGE.parent)}:{frames[-1].lineno}"


def user_error(err: BaseException) -> tuple[BaseException, str] | None:
    """The innermost user error lit_digest raised in the chain of ``err`` (its causes and contexts, and the
    errors a parser collected in ``err.errors``), with where it was raised; None if there is none."""
    seen: set[int] = set()
    found: tuple[BaseException, str] | None = None
    todo = [err]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        where = _raised_by_us(e) if isinstance(e, USER_ERRORS) else None
        if where is not None:
            found = (e, where)  # keep going: the innermost one is the user's mistake
        todo += [e.__cause__, e.__context__]
        nested = getattr(e, "errors", None)
        if isinstance(nested, (list, tuple)):
            todo += [x for x in nested if isinstance(x, BaseException)]
        elif isinstance(nested, dict):
            todo += [x for x in nested.values() if isinstance(x, BaseException)]
    return found


def error_line(err: BaseException, where: str | None = None) -> str:
    message = " ".join(str(err).split()) or type(err).__name__
    suffix = f" (raised at {where}; LIT_DIGEST_TRACEBACK=1 shows the traceback)" if where else ""
    return f"lit_digest: {type(err).__name__}: {message}{suffix}"


def script(main: Callable[..., object]) -> Callable[..., int]:
    """Wrap a script's ``main(argv=None)``: a user error becomes one line on stderr and exit status 1; any other
    error keeps its traceback. Use as ``raise SystemExit(script(main)())`` under ``if __name__ == "__main__"``."""

    @functools.wraps(main)
    def run(*args, **kwargs) -> int:
        try:
            result = main(*args, **kwargs)
        except Exception as err:
            found = None if os.environ.get("LIT_DIGEST_TRACEBACK") else user_error(err)
            if found is None:
                raise
            print(error_line(*found), file=sys.stderr, flush=True)
            return 1
        return result if isinstance(result, int) else 0

    return run
