"""The comparison command and its baselines, at toy scale."""

from __future__ import annotations

import re

import numpy as np

from lit_digest.tabular import TabularDataModule, fit_lightgbm, fit_linear
from lit_digest.tabular.compare import main, split_score


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


def test_one_command_prints_every_model_with_mean_and_spread(capsys):
    out = main(["--quick", "--tables", "wine", "--models", "lightgbm", "linear", "mlp", "saint_s", "saint",
                "--semi-table", "wine", "--labels", "30"])
    assert out == capsys.readouterr().out.strip()
    for label in ("LightGBM", "logistic / linear regression", "MLP", "SAINT-s", "SAINT",
                  "SAINT, pre-trained + fine-tuned", "SAINT, from scratch"):
        assert f"| {label}" in out
    cells = re.findall(r"(\d\.\d{4}) ± (\d\.\d{4})", out)
    assert len(cells) == 5 + 4 and all(0.0 <= float(m) <= 1.0 for m, _ in cells)
    assert np.isfinite([float(s) for _, s in cells]).all()
    assert "seeds [0, 1]" in out and "wall time" in out
