"""``predict`` writes what the methods compute: the demo's encoder features reproduce the demo's kNN number."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from lit_digest.ssl.knn import knn_accuracy
from tests.helpers import ROOT, run_cli


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_predict_on_the_demo_checkpoint_writes_features_that_give_the_demos_knn_accuracy(tmp_path):
    """As a user: train the quickstart (4 steps: any encoder will do), then `predict` its checkpoint on the test and
    train splits, then compute the kNN accuracy (k=20, T=0.1, as the demo's EncoderReport) from the file alone."""
    short = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "4", "--trainer.enable_progress_bar",
             "false"]
    fit = run_cli(["fit", "--config", str(ROOT / "configs/quickstart.yaml"), *short], cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr[-3000:]
    run = next((tmp_path / "runs/quickstart").iterdir())
    printed = json.loads((run / "report.json").read_text())["trained/knn_acc"]
    predict = run_cli(["predict", "--config", str(ROOT / "configs/quickstart.yaml"), "--ckpt_path",
                       str(run / "checkpoints/last.ckpt"), "--data.init_args.predict_splits", "[test, train]"],
                      cwd=tmp_path)
    assert predict.returncode == 0, predict.stderr[-3000:]
    written = sorted((tmp_path / "runs/quickstart").glob("*/predictions.npy"))
    assert len(written) == 1
    table = np.load(written[0])  # no pickle needed
    assert set(table.dtype.names) == {"split", "index", "features", "labels"}
    test, train = table[table["split"] == "test"], table[table["split"] == "train"]
    assert len(test) == 360 and len(train) == 1437 and sorted(test["index"]) == list(range(360))
    def column(rows, name):
        return torch.from_numpy(np.ascontiguousarray(rows[name]))

    acc = knn_accuracy(column(test, "features"), column(test, "labels"), column(train, "features"),
                       column(train, "labels"), 10, k=20, temperature=0.1)
    assert acc == pytest.approx(printed, abs=1e-6)


def test_the_writer_formats_hold_the_same_rows(tmp_path):
    from lit_digest.core.callbacks import write_columns

    columns = {"index": torch.arange(4), "split": ["test"] * 4, "features": torch.randn(4, 3),
               "labels": torch.tensor([1, 0, 1, 2])}
    for fmt in ("npy", "pt", "parquet"):
        write_columns(columns, tmp_path / f"p.{fmt}", fmt)
    npy = np.load(tmp_path / "p.npy")
    pt = torch.load(tmp_path / "p.pt")
    pq = pd.read_parquet(tmp_path / "p.parquet")
    for got in (torch.from_numpy(np.ascontiguousarray(npy["features"])), pt["features"],
                torch.tensor(np.stack(pq["features"]))):
        torch.testing.assert_close(got, columns["features"])
    assert list(npy["labels"]) == list(pt["labels"].tolist()) == list(pq["labels"]) == [1, 0, 1, 2]
