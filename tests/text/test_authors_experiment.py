"""The measured command: every option reaches the run (results.json), every number is there, and a bad corpus is
one line before anything trains."""

from __future__ import annotations

import json

import pytest

from lit_digest.core.console import script
from lit_digest.text.authors.experiment import ROWS, main


def test_a_bad_corpus_is_one_line_before_anything_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    root = tmp_path / "corpus"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for d in range(3):
            (root / label / f"{d}.txt").write_text(f"text {label} {d} " * 20)
    (root / "b" / "1.txt").write_bytes(b"fine until \xff here")
    assert script(main)(["--path", str(root), "--out", str(tmp_path / "runs")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1.txt: byte offset 11 is not UTF-8" in err[0]
    assert not (tmp_path / "runs").exists()  # nothing was started


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_measured_command_records_its_settings_and_every_number(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    argv = ["--corpus", "dictionaries", "--seeds", "3", "--max-documents", "12", "--lm-steps", "2", "--cls-steps", "2",
            "--samples-per-label", "2", "--scored-passages", "4", "--new-tokens", "16", "--n-positions", "128",
            "--passage-len", "48", "--seq-len", "48", "--copy-words", "5", "--out", str(tmp_path)]
    result = main(argv)
    written = json.loads(next(tmp_path.glob("authors/*/results.json")).read_text())
    settings = written["settings"]
    assert (settings["seeds"], settings["max_documents"], settings["lm_steps"], settings["copy_words"],
            settings["n_positions"], settings["corpus"]) == ([3], 12, 2, 5, 128, "dictionaries")
    keys = [key for rows in ROWS.values() for _, key in rows]
    assert all(0.0 <= written["numbers"][k] <= 1.0 for k in keys) and result["numbers"] == written["numbers"]
    assert 0.3 < written["numbers"]["attr/chance"] <= 0.5  # two writers: at most 1/2, less when unbalanced
    out = capsys.readouterr().out
    assert "lit_digest-measured" in out and "TF-IDF" in out
