"""A table as a user brings it: what is printed and refused before training, every row in every epoch, a
checkpoint monitor that exists for every task, and what ``predict`` writes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from lit_digest.core.lightning import pl
from lit_digest.tabular import SAINT, SAINTPretrain, TabularDataModule, TabularMLP
from lit_digest.tabular.data import EvenBatchSampler
from lit_digest.tabular.tables import read_table
from tests.helpers import ROOT

SMALL = dict(dim=8, depth=1, heads=2, dim_head=4, row_dim_head=8, cont_hidden=8, head_hidden=16, context_size=16)


def _table(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "customerID": [f"c{i:04d}" for i in range(n)],  # text, every value distinct: id-like
        "row_number": np.arange(n) + 100,  # consecutive integers: a row counter
        "plan": rng.choice(["basic", "pro", "max"], n),
        "charges": rng.normal(50.0, 10.0, n),
        "tenure": rng.integers(0, 60, n),
        "churn": rng.choice(["no", "yes"], n),
    })


def test_roles_task_and_dropped_rows_are_printed(capsys):
    frame = _table()
    frame.loc[[3, 8], "churn"] = None
    data = TabularDataModule.from_frame(frame, target="churn", table="churn.csv")
    data.setup()
    err = capsys.readouterr().err
    assert "58 rows, target 'churn' (binary, classes no, yes)" in err
    assert "2 row(s) without a target value dropped" in err
    assert "categorical (1): plan" in err and "continuous (2): charges, tenure" in err
    assert "dropped as id-like (2): customerID, row_number" in err
    assert data.schema.categorical == ("plan",) and data.schema.continuous == ("charges", "tenure")
    every = np.concatenate([data.row_index[k] for k in ("train", "val", "test")])
    assert sorted(every) == sorted(set(range(60)) - {3, 8})  # the input's index, the unlabelled rows gone
    named = TabularDataModule.from_frame(frame, target="churn", continuous=["charges", "tenure", "row_number"],
                                         categorical=["plan"], verbose=False)
    named.setup()
    assert "row_number" in named.schema.continuous and capsys.readouterr().err == ""


@pytest.mark.parametrize("column, values, message", [
    ("charges", np.nan, r"\['charges'\] .* have no value at all .*data\.init_args\.drop"),
    ("plan", None, r"\['plan'\] .* have no value at all"),
    ("tenure", np.inf, r"'tenure' \(60 infinite values\) .* replace them by NaN"),
])
def test_an_empty_or_infinite_column_is_named_before_training(column, values, message):
    frame = _table()
    frame[column] = values
    with pytest.raises(ValueError, match=message):
        TabularDataModule.from_frame(frame, target="churn", verbose=False).setup()


def test_every_training_row_is_in_a_batch_every_epoch():
    data = TabularDataModule.from_frame(_table(300), target="churn", batch_size=64, verbose=False)
    data.setup()
    n = len(data.splits["train"].y)  # 195 rows: batches of 49, 49, 49, 48 (no batch of 3 dropped, none of 3 kept)
    for _ in range(2):
        batches = list(data.train_dataloader())
        sizes = [len(b.y) for b in batches]
        assert sum(sizes) == n and max(sizes) - min(sizes) <= 1 and len(batches) == 4
        charges = torch.cat([b.x_cont[:, 0] for b in batches]).sort().values
        torch.testing.assert_close(charges, data.splits["train"].x_cont[:, 0].sort().values)
    assert [len(b) for b in EvenBatchSampler(range(10), 4)] == [4, 3, 3]
    assert [len(b) for b in EvenBatchSampler(range(3), 256)] == [3]


def _fit(model, data, tmp_path, **kwargs) -> pl.Trainer:
    torch.manual_seed(0)
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path, **kwargs)
    trainer.fit(model, datamodule=data)
    return trainer


@pytest.mark.parametrize("table", ["wine", "diabetes"])
def test_the_shipped_checkpoint_monitor_exists_for_every_task(table, tmp_path):
    monitors = set()
    for path in (ROOT / "configs/saint").glob("*.yaml"):
        for callback in (yaml.safe_load(path.read_text()).get("trainer") or {}).get("callbacks") or []:
            if callback["class_path"] == "ModelCheckpoint" and "monitor" in callback["init_args"]:
                monitors.add((callback["init_args"]["monitor"], callback["init_args"]["mode"]))
    assert monitors == {("val/score", "max")}
    data = TabularDataModule(table, batch_size=64, verbose=False)
    checkpoint = pl.callbacks.ModelCheckpoint(monitor="val/score", mode="max")
    trainer = _fit(SAINT(**SMALL), data, tmp_path, callbacks=[checkpoint])
    score = trainer.callback_metrics["val/score"]
    if table == "diabetes":  # minus the RMSE, in the target's units
        torch.testing.assert_close(score, -trainer.callback_metrics["val/rmse"])
    else:
        torch.testing.assert_close(score, trainer.callback_metrics["val/acc"])
    assert checkpoint.best_model_path


def test_predict_writes_each_rows_probabilities_class_and_index(tmp_path, capsys):
    data = TabularDataModule("wine", batch_size=64, verbose=False)
    model = TabularMLP(hidden=(16,))
    trainer = _fit(model, data, tmp_path, enable_checkpointing=False)
    trainer.predict(model, datamodule=data)
    written = tmp_path / "predictions.csv"
    assert f"lit_digest: wrote 36 row predictions to {written}" in capsys.readouterr().out
    frame = pd.read_csv(written)
    assert list(frame.columns) == ["row", "target", "predicted", "p_0", "p_1", "p_2"]
    wine = read_table("wine").frame
    assert (frame["target"].to_numpy() == wine["target"].to_numpy()[frame["row"]]).all()  # the input's rows
    probabilities = frame[["p_0", "p_1", "p_2"]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-5)
    assert (frame["predicted"].to_numpy() == probabilities.argmax(1)).all()
    new_rows = wine.drop(columns="target").iloc[[5, 70, 150]].set_axis([10, 20, 30])
    new_rows.to_csv(tmp_path / "new.csv")
    unseen = TabularDataModule("wine", predict_table=str(tmp_path / "new.csv"), verbose=False)
    trainer.predict(model, datamodule=unseen)
    frame = pd.read_csv(written)
    assert frame["row"].tolist() == [0, 1, 2] and frame["target"].isna().all()  # the file's own line order


def test_regression_predictions_and_pretraining_embeddings(tmp_path, capsys):
    data = TabularDataModule("diabetes", batch_size=64, verbose=False)
    model = SAINT(variant="saint_s", **{k: v for k, v in SMALL.items() if k != "context_size"})
    trainer = _fit(model, data, tmp_path, enable_checkpointing=False)
    trainer.predict(model, datamodule=data)
    frame = pd.read_csv(tmp_path / "predictions.csv")
    diabetes = read_table("diabetes").frame
    np.testing.assert_allclose(frame["target"], diabetes["target"].to_numpy()[frame["row"]], rtol=1e-5)
    assert list(frame.columns) == ["row", "target", "predicted"] and 25 < frame["predicted"].mean() < 350
    sizes = {k: v for k, v in SMALL.items() if k not in ("context_size", "head_hidden")}
    pre = SAINTPretrain(variant="saint_s", **sizes)
    trainer = _fit(pre, TabularDataModule("wine", train_rows="all", batch_size=64, verbose=False), tmp_path,
                   enable_checkpointing=False)
    trainer.predict(pre, datamodule=TabularDataModule("wine", verbose=False))
    assert "wrote 36 row embeddings" in capsys.readouterr().out
    embeddings = pd.read_csv(tmp_path / "embeddings.csv")
    assert list(embeddings.columns) == ["row", *(f"e{j}" for j in range(8))] and len(embeddings) == 36
