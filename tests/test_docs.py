"""Every snippet of the README and the docs runs: each ```python block as a script in a fresh folder, and each
`python -m lit_digest` command of a ```bash block, up to parsing its whole configuration (`--print_config`)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks(language: str) -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        for number, match in enumerate(m for m in BLOCK.finditer(path.read_text()) if m.group(1) == language):
            found.append((f"{path.relative_to(ROOT)}#{number}", match.group(2)))
    return found


def cli_commands() -> list[tuple[str, list[str]]]:
    found = []
    for where, text in blocks("bash"):
        for line in text.replace("\\\n", " ").splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("python -m lit_digest ") or line.startswith("lit-digest "):
                words = shlex.split(line)
                found.append((f"{where}: {' '.join(words[:6])}", words[3:] if words[0] == "python" else words[1:]))
    return found


def env(tmp_path: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1",
            "HOME": str(tmp_path)}


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize(("where", "code"), blocks("python"), ids=[w for w, _ in blocks("python")])
def test_python_snippet_runs(where, code, tmp_path):
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env(tmp_path), capture_output=True,
                          text=True, timeout=280)
    assert proc.returncode == 0, f"{where}:\n{code}\n{proc.stderr[-3000:]}"


@pytest.mark.parametrize(("where", "args"), cli_commands(), ids=[w for w, _ in cli_commands()])
def test_cli_snippet_parses(where, args, tmp_path, capsys, monkeypatch):
    from lit_digest.cli import main

    monkeypatch.chdir(ROOT)  # the docs name configs as configs/<method>/<name>.yaml
    if args and args[0] in ("fit", "validate", "test", "predict"):
        with pytest.raises(SystemExit) as exit_info:
            main([*args, "--print_config"])
        assert exit_info.value.code in (0, None), f"{where}: {capsys.readouterr().err[-2000:]}"
    elif args and args[0] == "get":  # a download: the snippet must name a data set that `get` builds
        from lit_digest.core.public_data import DATASETS

        assert all(name in DATASETS for name in args[1:] if not name.startswith("-")), f"{where}: {args}"
    else:
        assert main(args) is None


def test_the_snippet_finders_see_the_readme():
    assert any(w.startswith("README.md") for w, _ in blocks("python"))
    assert any("fit" in args for _, args in cli_commands())
