"""``python -m lit_digest get <name> [--to DIR]``: fetch a data set behind the README's numbers from its public
source and build the exact file measured (``lit_digest.core.public_data``); without a name, list them. A mistake
(an unknown name, no network, a corrupt download) is one line on stderr and exit status 1."""

from __future__ import annotations

import argparse
import sys

from lit_digest.core.console import script
from lit_digest.core.public_data import DATASETS, get, listing

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """The command on ``argv`` (default: ``sys.argv[1:]``); its exit status."""
    return script(_main)(argv)


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lit_digest get", description=__doc__.split("\n\n")[0],
                                     epilog=listing(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", help=f"one of {', '.join(DATASETS)}; none: list them")
    parser.add_argument("--to", default="data", help="the folder to build it in (default: data, where the configs "
                                                     "read)")
    args = parser.parse_args(argv)
    if args.name is None:
        print(listing())
        return 0
    path = get(args.name, args.to, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(f"lit_digest: {args.name} is ready in {path}", flush=True)
    return 0
