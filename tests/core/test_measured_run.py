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


def test_a_long_table_title_reaches_wandb(tmp_path):
    """aet.compare's measured run crashed at its table: the title (its whole setting, 150 characters) was the W&B
    key, and W&B refuses artifact names over 128 characters."""
    title = "NIN width 32, 5085 training / 1017 test images, 30 pretraining epochs, adamw lr 0.002, " * 2
    run = measured.MeasuredRun("demo", {"steps": 3}, out=tmp_path)  # W&B offline (tests/conftest.py)
    assert run._wandb is not None
    run.table(["what", "value"], [["x", 1.5]], title=title)
    run.table(["what", "value"], [["y", 2.5]], title=title)  # the same title twice: two tables
    assert run._wandb.summary["table_1_title"] == title and run._wandb.summary["table_2_title"] == title
    run.finish({"x": 1.5})
    assert [t["title"] for t in json.loads((run.folder / "results.json").read_text())["tables"]] == [title, title]
