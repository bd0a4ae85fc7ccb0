"""``make mutate``: mutation testing of the numeric modules, each against its own fast tests (mutmut 3).

The modules and the tests that must catch their mutants are listed once, in ``pyproject.toml`` under
``[tool.lit_digest.mutate]`` (``"lit_digest/ssl/knn.py" = ["tests/ssl/test_knn.py"]``). For every module this
script stages a folder ``.mutmut/<module>/`` (a copy of ``lit_digest/``, a link to ``tests/``, and a
``pyproject.toml`` whose ``[tool.mutmut]`` mutates that module only and selects those tests, ``-m "not slow"``),
runs ``mutmut run`` there on one core, and prints the module's catch rate and its surviving mutants (with
their diffs under ``--diffs``). Survivors that ``docs/developing.md`` names are marked so: equivalent ones (a
mutant that cannot change a result), device mutants that only a run with a GPU can catch (excused on a machine
without one only), and those mutmut's own wrapper hides; any other survivor wants a test. ``docs/developing.md``
("Mutation testing") says how to read it.

mutmut leaves decorated functions alone, and most of our numeric functions are ``@torch.no_grad()``: in the staged
copy of the module each such decorator becomes a ``with torch.no_grad():`` around the body (the same
computation), so that those functions are mutated too.

    python .ci/mutate.py                          # every listed module
    python .ci/mutate.py lit_digest/ssl/knn.py    # a subset (also: make mutate MODULES=...)
    python .ci/mutate.py --keep ...               # reuse .mutmut/<module>/ (mutmut re-runs what changed only)

Exit status 1 when a module catches less than ``--min-rate`` (0.9) or leaves an unexplained survivor.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: mutmut brings toml
    import toml as tomllib

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / ".mutmut"
DOCS = ROOT / "docs" / "developing.md"
CAUGHT = ("killed", "timeout", "caught by type check", "segfault")


def listed_modules() -> dict[str, list[str]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return dict(data["tool"]["lit_digest"]["mutate"])


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{x}"' for x in items) + "]"


_NO_GRAD = ("torch.no_grad()", "torch.inference_mode()", "torch.no_grad")


def undecorate_no_grad(source: str) -> str:
    """``@torch.no_grad()`` functions rewritten as ``with torch.no_grad():`` around their body (docstring kept)."""
    import libcst as cst

    empty = cst.Module([])

    class Rewrite(cst.CSTTransformer):
        def leave_FunctionDef(self, original, updated):
            kept = [d for d in updated.decorators if empty.code_for_node(d.decorator) not in _NO_GRAD]
            if len(kept) == len(updated.decorators) or not isinstance(updated.body, cst.IndentedBlock):
                return updated
            body = list(updated.body.body)
            head = []
            if body and isinstance(body[0], cst.SimpleStatementLine) and isinstance(body[0].body[0], cst.Expr) \
                    and isinstance(body[0].body[0].value, (cst.SimpleString, cst.ConcatenatedString)):
                head = [body.pop(0)]
            block = cst.With(items=[cst.WithItem(cst.parse_expression("torch.no_grad()"))],
                             body=cst.IndentedBlock(body=body))
            return updated.with_changes(decorators=kept, body=updated.body.with_changes(body=[*head, block]))

    return cst.parse_module(source).visit(Rewrite()).code


def stage(module: str, tests: list[str], keep: bool) -> Path:
    """``.mutmut/<module>/``: a copy of the package (the module without no_grad decorators), a link to the tests,
    and a pyproject.toml for this module."""
    folder = STAGE / module.removesuffix(".py").replace("/", "__")
    if folder.exists() and not keep:
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "lit_digest").exists():
        shutil.copytree(ROOT / "lit_digest", folder / "lit_digest",  # the configs link: copied as files
                        ignore=shutil.ignore_patterns("__pycache__"))
    target = folder / module
    target.write_text(undecorate_no_grad((ROOT / module).read_text()))
    if not (folder / "tests").exists():
        (folder / "tests").symlink_to(ROOT / "tests", target_is_directory=True)
    own = re.sub(r"(?ms)^\[tool\.lit_digest\.mutate\].*?(?=^\[|\Z)", "", (ROOT / "pyproject.toml").read_text())
    config = "\n".join([
        "[tool.mutmut]",
        'source_paths = ["lit_digest"]',
        f"only_mutate = {_toml_list([module])}",
        f"pytest_add_cli_args_test_selection = {_toml_list(tests)}",
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-p", "no:randomly", "-m", "not slow"]',
        "",
    ])
    (folder / "pyproject.toml").write_text(own.rstrip() + "\n\n" + config)
    return folder


def run_module(module: str, tests: list[str], keep: bool, log) -> tuple[dict[str, str], float]:
    """``{mutant: status}`` of one module, and the wall time of its run."""
    folder = stage(module, tests, keep)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the tests must import the mutated copy
    env.update(OMP_NUM_THREADS="1", WANDB_MODE="disabled", MKL_NUM_THREADS="1")
    mutmut = [sys.executable, "-m", "mutmut"]
    start = time.monotonic()
    proc = subprocess.run([*mutmut, "run", "--max-children", "1"], cwd=folder, env=env, capture_output=True,
                          text=True)
    log.write(proc.stdout + proc.stderr)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise SystemExit(f"mutate: mutmut failed on {module} (log in {STAGE / 'mutate.log'}):\n{tail}")
    out = subprocess.run([*mutmut, "results", "--all", "true"], cwd=folder, env=env, capture_output=True,
                         text=True, check=True).stdout
    statuses = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and "__mutmut_" in name:
            statuses[name] = status
    return statuses, seconds


def show(module: str, name: str) -> str:
    folder = STAGE / module.removesuffix(".py").replace("/", "__")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=folder, env=env,
                          capture_output=True, text=True)
    return "\n".join("        " + line for line in proc.stdout.strip().splitlines()[1:])


# docs/developing.md's tables of survivors, by the line that opens each: what a survivor listed there is called
NAMED = {
    "Equivalent mutants": "equivalent (docs/developing.md)",
    "Survivors only a GPU run can catch": "needs a second device (docs/developing.md)",
    "Survivors that mutmut itself hides": "hidden by mutmut's wrapper (docs/developing.md)",
}


def named_survivors(docs: str, gpu: bool) -> dict[str, str]:
    """``{mutant: why it survives}`` for the mutants named in the docs' three tables: equivalent ones, device
    mutants (a tensor left on another device: only a run with a GPU can catch them, so on a GPU machine they are
    not excused) and those mutmut's own trampoline hides (a warning's ``stacklevel``). A table runs from its opening
    line to the next heading."""
    named, kind = {}, None
    for line in docs.splitlines():
        if line.startswith("#"):
            kind = None
        kind = next((why for opening, why in NAMED.items() if line.startswith(opening)), kind)
        if kind and not (gpu and "second device" in kind):
            named.update(dict.fromkeys(re.findall(r"`([\w.]+__mutmut_\d+)`", line), kind))
    return named


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help="a subset of the listed modules (default: all)")
    parser.add_argument("--keep", action="store_true", help="reuse the staged folders and mutmut's cached results")
    parser.add_argument("--diffs", action="store_true", help="print every survivor's diff")
    parser.add_argument("--min-rate", type=float, default=0.9)
    args = parser.parse_args(argv)
    listed = listed_modules()
    unknown = [m for m in args.modules if m not in listed]
    if unknown:
        print(f"mutate: {unknown} not listed in pyproject.toml [tool.lit_digest.mutate]", file=sys.stderr)
        return 2
    named = named_survivors(DOCS.read_text(), gpu=_has_cuda())
    STAGE.mkdir(exist_ok=True)
    failed, summary = False, []
    with open(STAGE / "mutate.log", "w") as log:
        for module in args.modules or list(listed):
            statuses, seconds = run_module(module, listed[module], args.keep, log)
            caught = sum(s in CAUGHT for s in statuses.values())
            total = len(statuses)
            rate = caught / total if total else 1.0
            survivors = sorted((n for n, s in statuses.items() if s not in CAUGHT),
                               key=lambda n: (n.rsplit("__mutmut_", 1)[0], int(n.rsplit("_", 1)[1])))
            unexplained = [n for n in survivors if n not in named]
            failed |= rate < args.min_rate or bool(unexplained)
            summary.append((module, caught, total, rate, len(survivors) - len(unexplained), len(unexplained),
                            seconds))
            print(f"\n{module}: caught {caught} / {total} mutants ({rate:.1%}) in {seconds:.0f} s", flush=True)
            for name in survivors:
                print(f"    {name}: {named.get(name, statuses[name])}")
                if args.diffs and name not in named:
                    print(show(module, name))
    print("\n| module | caught | mutants | catch rate | named in the docs | unexplained survivors | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for module, caught, total, rate, named, unexplained, seconds in summary:
        print(f"| {module} | {caught} | {total} | {rate:.1%} | {named} | {unexplained} | {seconds:.0f} |")
    caught = sum(row[1] for row in summary)
    total = sum(row[2] for row in summary)
    print(f"| all | {caught} | {total} | {caught / max(total, 1):.1%} | | | {sum(r[6] for r in summary):.0f} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
