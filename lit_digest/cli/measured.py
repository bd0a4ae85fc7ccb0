"""``python -m lit_digest measured`` (``make measured``): the README's numbers against what their commands print today.

The README's "Measured" table is written from ``docs/measured.yaml``, one row per command: the command, the data
and how to get it, the numbers it printed, the templates of the "ours" and "baseline" cells, the wall time, and
the date and commit of the run that printed them.

- Fast rows (``fast: true``, under about two minutes) are run again; the numbers their command prints on its
  ``lit_digest-measured {json}`` lines (``MeasuredRun.finish``, ``tests.helpers.print_measured``) are compared
  with the file's, within the row's ``tolerance`` (seed and thread noise, stated per row).
- Slow rows are not run: those whose ``code`` folders changed in a commit after the row's ``commit`` are listed as
  older than the code they measure.
- ``--readme`` writes the table into README.md (between its ``measured`` markers); ``--check-readme`` fails when
  README.md and the file disagree (``tests/test_measured.py`` runs it).

Exit status 1 when a fast row's numbers moved beyond its tolerance, or its command failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["ROOT", "load_rows", "render_table", "readme_with_table", "run_row", "compare", "stale", "main"]

ROOT = Path(__file__).resolve().parents[2]  # the clone (docs/ and tests/ are not in the wheel)
START, END = "<!-- measured:start (written from docs/measured.yaml by python -m lit_digest measured --readme) -->", \
    "<!-- measured:end -->"
PREFIX = "lit_digest-measured "


def load_rows(path: Path | None = None) -> list[dict[str, Any]]:
    import yaml

    path = path or ROOT / "docs" / "measured.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: `python -m lit_digest measured` works in a clone of lit_digest "
                                "(git clone ...; cd lit_digest; make measured).")
    rows = yaml.safe_load(path.read_text())["rows"]
    for row in rows:
        missing = [k for k in ("id", "method", "command", "data", "ours", "baseline", "wall", "numbers", "measured")
                   if k not in row]
        if missing:
            raise ValueError(f"{path}: row {row.get('id', '?')} lacks {', '.join(missing)}")
    return rows


def _cell(template: str, numbers: dict[str, float]) -> str:
    try:
        return template.format(**numbers)
    except (KeyError, ValueError, IndexError) as err:
        raise ValueError(f"template {template!r} does not fit the numbers {sorted(numbers)}: {err}") from err


def render_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| method | command | data (how to get it) | ours | baseline | wall time | measured |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        measured = row["measured"]
        when = f"{measured['date']}, {measured['commit']}" + (" (fast: `make measured` re-runs it)" if row.get(
            "fast") else "")
        lines.append(f"| {row['method']} | `{row['command']}` | {row['data']} | {_cell(row['ours'], row['numbers'])} "
                     f"| {_cell(row['baseline'], row['numbers'])} | {row['wall']} | {when} |")
    return "\n".join(lines)


def readme_with_table(readme: str, rows: list[dict[str, Any]]) -> str:
    if START not in readme or END not in readme:
        raise ValueError(f"README.md has no {START} ... {END} markers for the measured table")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{render_table(rows)}\n{END}{tail}"


def _argv(command: str) -> list[str]:
    words = shlex.split(command)
    if words[0] == "pytest":
        return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *words[1:]]
    if words[0] == "python":
        return [sys.executable, *words[1:]]
    return words


def run_row(row: dict[str, Any], timeout: float = 900) -> tuple[dict[str, float], str]:
    """Run a row's command in the clone; the numbers of its ``lit_digest-measured`` lines named ``row['name']``
    (every such line when the row names none), and the output's tail."""
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(_argv(row["command"]), cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    numbers: dict[str, float] = {}
    for line in out.splitlines():
        if PREFIX in line:  # pytest -s may print the test file's name before it on the same line
            record = json.loads(line[line.index(PREFIX) + len(PREFIX):])
            if row.get("name") in (None, record.get("name")):
                numbers.update(record.get("numbers", {}))
    if proc.returncode != 0:
        raise RuntimeError(f"`{row['command']}` exited {proc.returncode}:\n{out[-2000:]}")
    return numbers, out[-2000:]


def compare(row: dict[str, Any], got: dict[str, float]) -> list[str]:
    """The numbers of ``row`` that moved beyond its tolerance (a number, or one per number), as lines."""
    tolerance = row.get("tolerance", 0.0)
    moved = []
    for key, expected in row["numbers"].items():
        allowed = tolerance.get(key, 0.0) if isinstance(tolerance, dict) else tolerance
        if key not in got:
            moved.append(f"{row['id']}: {key}: the command printed no such number (it printed {sorted(got)})")
        elif abs(float(got[key]) - float(expected)) > allowed:
            moved.append(f"{row['id']}: {key}: README {expected}, now {got[key]} (tolerance {allowed})")
    return moved


def stale(row: dict[str, Any]) -> list[str]:
    """Commits after the row's measuring commit that touched the code it measures (``code`` folders)."""
    paths = row.get("code") or []
    if not paths:
        return []
    proc = subprocess.run(["git", "log", "--format=%h %ad %s", "--date=short", f"{row['measured']['commit']}..HEAD",
                           "--", *paths], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        return [f"(git log failed: {proc.stderr.strip()[:200]})"]
    return proc.stdout.strip().splitlines()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lit_digest measured", description=__doc__.split("\n\n")[0])
    parser.add_argument("ids", nargs="*", help="only these rows (ids of docs/measured.yaml)")
    parser.add_argument("--readme", action="store_true", help="write the table into README.md and stop")
    parser.add_argument("--check-readme", action="store_true", help="exit 1 when README.md's table is not the file's")
    parser.add_argument("--file", type=Path, default=None, help="another measured.yaml (default docs/measured.yaml)")
    args = parser.parse_args(argv)
    rows = load_rows(args.file)
    readme = ROOT / "README.md"
    if args.readme or args.check_readme:
        text = readme.read_text()
        wanted = readme_with_table(text, rows)
        if args.readme:
            readme.write_text(wanted)
            print(f"lit_digest: wrote the measured table of {len(rows)} rows into {readme}")
            return 0
        if wanted != text:
            print(f"lit_digest: README.md's measured table differs from {args.file or 'docs/measured.yaml'}: run "
                  "python -m lit_digest measured --readme", file=sys.stderr)
            return 1
        print("lit_digest: README.md's measured table is docs/measured.yaml's")
        return 0
    unknown = sorted(set(args.ids) - {r["id"] for r in rows})
    if unknown:
        raise ValueError(f"no rows {unknown} in docs/measured.yaml; there are {[r['id'] for r in rows]}")
    chosen = [r for r in rows if not args.ids or r["id"] in args.ids]
    failed = 0
    for row in chosen:
        if not row.get("fast"):
            continue
        start = time.monotonic()
        print(f"== {row['id']}: {row['command']}", flush=True)
        try:
            got, _ = run_row(row)
        except RuntimeError as err:
            print(f"FAILED {err}", flush=True)
            failed += 1
            continue
        moved = compare(row, got)
        failed += bool(moved)
        state = "STALE\n  " + "\n  ".join(moved) if moved else "ok"
        print(f"{state} ({time.monotonic() - start:.0f} s; printed {got})", flush=True)
    old = [(row, stale(row)) for row in chosen if not row.get("fast")]
    if old:
        print("\nSlow rows (not re-run), measured at:")
        for row, commits in old:
            note = f"{len(commits)} later commits touch {', '.join(row['code'])}" if commits else "code unchanged since"
            print(f"  {row['id']}: {row['measured']['date']}, {row['measured']['commit']}: {note}")
    return 1 if failed else 0


if __name__ == "__main__":
    from lit_digest.core.console import script

    raise SystemExit(script(main)())
