"""TabularDataModule: bundled tables, files, fitted-on-training preprocessing, missing values, splits, labelled
subsets, and the errors for bad tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from lit_digest.core.download import MissingDataError
from lit_digest.tabular import TabularDataModule
from lit_digest.tabular.data import TablePreprocessor, TableSchema


def _frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "colour": rng.choice(["red", "green", "blue"], n),
        "size": rng.normal(10.0, 3.0, n),
        "weight": rng.permutation(n).astype(float),  # unique: identifies the row after standardising
        "label": rng.choice(["a", "b"], n, p=[0.7, 0.3]),
    })
    frame.loc[::7, "colour"] = None
    frame.loc[::5, "size"] = np.nan
    return frame


def _ids(data: TabularDataModule, split: str) -> set[int]:
    prep = data.preprocessor
    return set((data.splits[split].x_cont[:, 1].double().numpy() * prep.std[1] + prep.mean[1]).round().astype(int))


def test_bundled_tables_have_their_columns_and_tasks():
    expected = {"breast_cancer": ("binary", 0, 30, 569), "wine": ("multiclass", 0, 13, 178),
                "diabetes": ("regression", 1, 9, 442), "fair": ("binary", 5, 3, 6366)}
    for table, (task, n_cat, n_cont, n_rows) in expected.items():
        data = TabularDataModule(table)
        data.setup()
        schema = data.schema
        assert (schema.task, len(schema.categorical), len(schema.continuous)) == (task, n_cat, n_cont), table
        assert sum(len(data.splits[k].y) for k in ("train", "val", "test")) == n_rows
    fair = TabularDataModule("fair")
    fair.setup()
    assert "occupation" in fair.schema.categorical and fair.schema.classes == ("no", "yes")
    assert all(k >= 5 for k in fair.schema.cardinalities)  # real categories (+ the missing-value token)


def test_preprocessing_is_fitted_on_the_training_split_only():
    frame = _frame()
    data = TabularDataModule.from_frame(frame, target="label", split_seed=3)
    data.setup()
    schema = data.schema
    assert schema.categorical == ("colour",) and schema.continuous == ("size", "weight")
    train = frame[frame["weight"].astype(int).isin(_ids(data, "train"))]
    assert len(train) == len(data.splits["train"].y)
    np.testing.assert_allclose(data.preprocessor.mean, [train["size"].mean(), train["weight"].mean()], rtol=1e-6)
    np.testing.assert_allclose(data.preprocessor.std, [train["size"].std(ddof=0), train["weight"].std(ddof=0)],
                               rtol=1e-6)
    # standardised training columns: mean 0, deviation 1 over the observed cells
    x, mask = data.splits["train"].x_cont, data.splits["train"].cont_mask
    observed = x[:, 0][mask[:, 0] > 0]
    assert abs(float(observed.mean())) < 1e-5 and abs(float(observed.std(unbiased=False)) - 1) < 1e-4


def test_missing_and_unseen_values():
    frame = _frame()
    prep = TablePreprocessor.fit(frame.iloc[:100], "label", ["colour"], ["size", "weight"], "binary")
    rows = pd.DataFrame({"colour": ["red", None, "purple"], "size": [np.nan, 10.0, 13.0], "weight": [0.0, 0.0, 0.0],
                         "label": ["a", "b", "a"]})
    encoded = prep.encode(rows)
    vocabulary = prep.vocabularies["colour"]
    assert vocabulary == ["blue", "green", "red"]
    assert encoded.x_cat[:, 0].tolist() == [vocabulary.index("red") + 1, 0, 0]  # 0: missing, and unseen "purple"
    assert encoded.cont_mask[:, 0].tolist() == [0.0, 1.0, 1.0] and float(encoded.x_cont[0, 0]) == 0.0
    assert prep.schema.cardinalities == (4,) and encoded.y.tolist() == [0, 1, 0]


def test_splits_are_seeded_stratified_and_disjoint():
    frame = _frame(400)
    test_ids = []
    for seed in (0, 0, 1):
        data = TabularDataModule.from_frame(frame, target="label", split_seed=seed)
        data.setup()
        ids = {k: _ids(data, k) for k in ("train", "val", "test")}
        assert not (ids["train"] & ids["val"]) and not (ids["train"] & ids["test"]) and not (ids["val"] & ids["test"])
        assert (len(ids["train"]), len(ids["val"]), len(ids["test"])) == (260, 60, 80)  # 65 / 15 / 20 %
        for split in ("train", "val", "test"):
            share = float(data.splits[split].y.float().mean())  # class "b" is about 30 % of the table
            assert abs(share - (frame["label"] == "b").mean()) < 0.03, (split, share)
        test_ids.append(ids["test"])
    assert test_ids[0] == test_ids[1] and test_ids[0] != test_ids[2]  # seeded: same seed, same split


def test_labelled_subset_and_all_training_rows():
    data = TabularDataModule("breast_cancer", labels_count=40, batch_size=16)
    data.setup()
    labelled, everything = data.splits["train"], data.splits["train_all"]
    assert len(labelled.y) == 40 and len(everything.y) == 369
    assert abs(float(labelled.y.float().mean()) - float(everything.y.float().mean())) < 0.05  # stratified
    assert sum(len(b.y) for b in data.train_dataloader()) == 40  # shuffled batches, every row
    pretrain = TabularDataModule("breast_cancer", labels_count=40, train_rows="all", batch_size=16)
    assert sum(len(b.y) for b in pretrain.train_dataloader()) == 369
    fraction = TabularDataModule("breast_cancer", labels_fraction=0.1)
    fraction.setup()
    assert len(fraction.splits["train"].y) == 36


def test_eval_loaders_keep_the_table_order():
    data = TabularDataModule("wine", eval_batch_size=10)
    data.setup()
    batches = list(data.test_dataloader())
    assert [len(b.y) for b in batches] == [10, 10, 10, 6]
    torch.testing.assert_close(torch.cat([b.x_cont for b in batches]), data.splits["test"].x_cont)


def test_csv_and_parquet_read_like_the_frame(tmp_path):
    frame = _frame()
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet")
    encoded = []
    for source in (tmp_path / "t.csv", tmp_path / "t.parquet"):
        data = TabularDataModule(str(source), target="label")
        data.setup()
        encoded.append(data.splits["test"])
    reference = TabularDataModule.from_frame(frame, target="label")
    reference.setup()
    for rows in encoded:
        for got, want in zip(rows, reference.splits["test"], strict=True):
            torch.testing.assert_close(got, want)


def test_state_dict_round_trip_and_encode():
    data = TabularDataModule("fair")
    data.setup()
    restored = TabularDataModule("fair")
    restored.load_state_dict(data.state_dict())
    assert restored.preprocessor.schema == data.schema
    assert TableSchema.from_dict(data.schema.as_dict()) == data.schema
    rows = restored.encode(_fair_rows())
    assert rows.x_cat.shape == (2, 5) and rows.y.tolist() == [0, 1]


def _fair_rows() -> pd.DataFrame:
    from lit_digest.tabular.tables import read_table

    return read_table("fair").frame.iloc[[0, 5]].assign(had_affair=["no", "yes"])


@pytest.mark.parametrize("kwargs, message", [
    (dict(target="price"), r"Column\(s\) \['price'\] not in the DataFrame 'DataFrame'"),
    (dict(target="label", continuous=["colour", "size"]), r"Continuous column 'colour' .* is not numeric"),
    (dict(target="label", categorical=["nope"]), r"\['nope'\] not in"),
    (dict(target="label", task="binary", categorical=["colour"], continuous=["size", "colour"]),
     r"\['colour'\] .* both categorical and continuous"),
])
def test_bad_columns_are_named(kwargs, message):
    data = TabularDataModule.from_frame(_frame(), **kwargs)
    with pytest.raises(ValueError, match=message):
        data.setup()


def test_empty_split_and_missing_files_are_named(tmp_path):
    tiny = _frame(8)
    tiny["label"] = ["a", "b"] * 4
    with pytest.raises(ValueError, match=r"(validation|test) split"):
        TabularDataModule.from_frame(tiny, target="label", val_fraction=0.05, test_fraction=0.05).setup()
    with pytest.raises(MissingDataError, match=r"Table not found at '.*nowhere\.csv'.*data\.init_args\.table"):
        TabularDataModule(str(tmp_path / "nowhere.csv"), target="y").setup()
    with pytest.raises(ValueError, match=r"\.csv / \.parquet"):
        TabularDataModule(str(tmp_path / "table.xlsx"), target="y").setup()
    with pytest.raises(ValueError, match="labels_fraction must be in"):
        TabularDataModule(labels_fraction=0.0)
