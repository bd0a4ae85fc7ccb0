"""The comparison command and its baselines, at toy scale."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from lit_digest.core.console import script
from lit_digest.tabular import TabularDataModule, fit_lightgbm, fit_linear
from lit_digest.tabular.compare import main, split_score
from lit_digest.tabular.tables import read_table


def test_tree_and_linear_baselines_beat_chance_on_every_task():
    for table, floor in (("fair", 0.7), ("wine", 0.85)):
        data = TabularDataModule(table)
        data.setup()
        train, val, test, schema = data.splits["train"], data.splits["val"], data.splits["test"], data.schema
        for fitted in (fit_lightgbm(train, val, schema), fit_linear(train, schema)):
            assert split_score(schema, fitted.scores(test), test) > floor, (table, fitted.model)
    data = TabularDataModule("diabetes")
    data.setup()
    rows = data.splits["test"]
    spread = float(rows.y.std()) * data.schema.target_std  # RMSE of predicting the mean, in the target's units
    rmse = split_score(data.schema, fit_linear(data.splits["train"], data.schema).scores(rows), rows)
    assert 30 < rmse < 0.9 * spread


def test_one_command_on_a_users_csv_prints_every_model_and_plots(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    read_table("wine").frame.rename(columns={"target": "cultivar"}).to_csv(tmp_path / "wine.csv")
    table = str(tmp_path / "wine.csv")
    out = main(["--quick", "--tables", table, "--target", "cultivar", "--models", "lightgbm", "linear", "mlp",
                "saint_s", "saint", "--semi-table", table, "--labels", "30", "--out", str(tmp_path / "measured")])
    printed = capsys.readouterr()
    assert out.split("\n\n`python")[0] in printed.out
    for label in ("LightGBM", "logistic / linear regression", "MLP", "SAINT-s", "SAINT",
                  "SAINT, pre-trained + fine-tuned", "SAINT, from scratch"):
        assert f"| {label}" in out
    cells = re.findall(r"(\d\.\d{4}) ± (\d\.\d{4})", out)
    assert len(cells) == 5 + 4 and all(0.0 <= float(m) <= 1.0 for m, _ in cells)
    assert np.isfinite([float(s) for _, s in cells]).all()
    assert "seeds [0, 1]" in out and "wall time" in out
    assert "target 'cultivar' (multiclass, classes 0, 1, 2)" in printed.err  # the roles, once per table
    assert "dropped as id-like (1): Unnamed: 0" in printed.err  # the CSV's index column
    folder = next((tmp_path / "measured" / "saint").iterdir())
    result = json.loads((folder / "results.json").read_text())
    assert result["settings"]["target"] == "cultivar" and result["settings"]["epochs"] == 2
    assert set(result["numbers"]) == {f"{m}_wine" for m in ("lightgbm", "linear", "mlp", "saint_s", "saint")} | {
        f"{m}_wine_30_labels" for m in ("lightgbm", "linear", "scratch", "pretrained")}
    assert (folder / "plot.png").stat().st_size > 10_000


def test_a_users_mistake_is_one_line(tmp_path, capsys):
    status = script(main)(["--tables", str(tmp_path / "nowhere.csv"), "--target", "y", "--semi-table", "",
                           "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert status == 1 and len(err.splitlines()) == 1 and "Table not found" in err and "nowhere.csv" in err
    with pytest.raises(SystemExit):
        main(["--tables", str(tmp_path / "t.csv"), "--semi-table", ""])  # no --target for a file
    assert "name its target column with --target" in capsys.readouterr().err
