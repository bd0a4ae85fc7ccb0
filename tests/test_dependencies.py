"""Every third-party module the code imports is declared in pyproject.toml, by its own name.

CI installs ``.[dev]`` into a fresh venv; a package that only a developer's venv has (matplotlib once, for every
measured command's plot) passes here and fails there. So each import in lit_digest/, benchmarks/ and tests/ must map
to a distribution named directly in ``dependencies`` or an extra, not only reach the venv through another package.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: mutmut brings toml
    import toml as tomllib

ROOT = Path(__file__).resolve().parents[1]
# Imported only when a user asks for them, behind a one-line error that names the package to install.
# Python 3.10's stand-ins for tomllib (the fallback branch of a try/except ModuleNotFoundError) are not needed either.
OPTIONAL = {
    "faiss": "muse.csls backend='faiss' (faiss-cpu or faiss-gpu)",
    "toml": "Python 3.10 fallback for tomllib in .ci/mutate.py (mutmut brings it)",
    "pip": "Python 3.10 fallback for tomllib in benchmarks/gpu_wheels.py (pip's vendored tomli)",
}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> set[str]:
    """Distribution names in [project] dependencies and every optional extra, canonical."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        lines += extra
    return {_canonical(re.match(r"[A-Za-z0-9_.\-]+", line).group(0)) for line in lines}


def local_names() -> set[str]:
    """Top-level names that are the repository's own modules (benchmarks import each other by file name)."""
    names = {"lit_digest", "tests", "benchmarks"}
    for folder in (ROOT / "benchmarks", ROOT / "tests", ROOT / ".ci"):
        names |= {p.stem for p in folder.rglob("*.py")}
    return names


def imported(folders: list[str]) -> dict[str, str]:
    """Absolute top-level imports under folders: {module: first file that imports it}."""
    found: dict[str, str] = {}
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_is_declared():
    owners = importlib.metadata.packages_distributions()
    known, local = declared(), local_names()
    undeclared = []
    for module, where in sorted(imported(["lit_digest", "benchmarks", "tests", ".ci"]).items()):
        if module in sys.stdlib_module_names or module in local or module in OPTIONAL:
            continue
        dists = {_canonical(d) for d in owners.get(module, [])}
        if not dists:
            undeclared.append(f"{module} ({where}): not installed here either")
        elif not dists & known:
            undeclared.append(f"{module} ({where}): from {sorted(dists)}, which pyproject.toml does not name")
    assert not undeclared, "imports that a fresh `pip install .[dev]` may lack:\n" + "\n".join(undeclared)


def test_the_check_sees_an_undeclared_import(tmp_path, monkeypatch):
    """The scan itself: a file that imports a module pyproject.toml does not name is reported."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text("import os\nfrom matplotlib import pyplot\nfrom . import sibling\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert imported(["pkg"]) == {"os": "pkg/m.py", "matplotlib": "pkg/m.py"}
