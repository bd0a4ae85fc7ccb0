"""lit_digest.core.measured.MeasuredRun: what results.json records."""

import json

from lit_digest.core import measured


def test_results_name_the_commit_the_run_started_on(tmp_path, monkeypatch):
    """A 50-minute run outlived a commit made meanwhile and recorded the later one: the commit is taken at the
    start."""
    monkeypatch.setattr(measured, "git_commit", lambda path=None: "aaaaaaa")
    run = measured.MeasuredRun("demo", {"steps": 3}, out=tmp_path, wandb=False)
    monkeypatch.setattr(measured, "git_commit", lambda path=None: "bbbbbbb")  # a commit during the run
    run.table(["what", "value"], [["x", 1.5]])
    run.finish({"x": 1.5})
    saved = json.loads((run.folder / "results.json").read_text())
    assert saved["commit"] == "aaaaaaa" and saved["settings"] == {"steps": 3} and saved["numbers"] == {"x": 1.5}
