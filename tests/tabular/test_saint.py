"""SAINT's network and systems: batch (in)dependence, row permutation equivariance, the evaluation context,
missing values, training, checkpoints and fine-tuning from pre-trained weights."""

from __future__ import annotations

import pytest
import torch

from lit_digest.tabular import SAINT, SAINTPretrain, TabularDataModule, TabularMLP
from lit_digest.tabular.data import TableBatch, TableSchema
from lit_digest.tabular.saint import SAINTNet, official_sizes

SCHEMA = TableSchema("y", "binary", ("a", "b"), (4, 3), ("u", "v", "w"), ("no", "yes"))
SMALL = dict(dim=8, depth=2, heads=2, attn_dropout=0.0, ff_dropout=0.0, dim_head=4, row_dim_head=8,
             cont_hidden=8, head_hidden=16)


def _rows(n: int, seed: int = 0) -> TableBatch:
    g = torch.Generator().manual_seed(seed)
    x_cat = torch.stack([torch.randint(0, k, (n,), generator=g) for k in SCHEMA.cardinalities], dim=1)
    x_cont = torch.randn(n, 3, generator=g)
    mask = (torch.rand(n, 3, generator=g) > 0.2).float()
    return TableBatch(x_cat, x_cont * mask, mask, torch.randint(0, 2, (n,), generator=g))


def _model(variant: str, eval_rows: str = "batch", **kwargs) -> SAINT:
    torch.manual_seed(0)
    model = SAINT(variant=variant, eval_rows=eval_rows, schema=SCHEMA.as_dict(), **{**SMALL, **kwargs})
    return model.eval()


@torch.no_grad()
def _out(model: SAINT, rows: TableBatch, **kwargs) -> torch.Tensor:
    return model(rows.x_cat, rows.x_cont, rows.cont_mask, **kwargs)


def _part(rows: TableBatch, index) -> TableBatch:
    return TableBatch(*(t[index] for t in rows))


def _cat(*parts: TableBatch) -> TableBatch:
    return TableBatch(*(torch.cat(ts) for ts in zip(*parts, strict=True)))


@pytest.mark.parametrize("variant", ["saint", "saint_s", "saint_i"])
def test_every_variant_is_equivariant_to_permuting_the_rows(variant):
    model, rows = _model(variant), _rows(12)
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(_out(model, rows)[perm], _out(model, _part(rows, perm)), atol=1e-5, rtol=1e-5)


def test_column_only_predictions_do_not_depend_on_the_batch():
    model = _model("saint_s")
    rows, others = _rows(8), _rows(20, seed=1)
    row = _part(rows, slice(0, 1))
    alone = _out(model, row)[0]
    torch.testing.assert_close(_out(model, rows)[0], alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(_out(model, _cat(row, others))[0], alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(_out(model, _cat(others, row))[-1], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", ["saint", "saint_i"])
def test_row_attention_predictions_depend_on_the_batch_unless_a_fixed_context(variant):
    model, rows, others = _model(variant), _rows(8), _rows(8, seed=1)
    model.set_context(_rows(30, seed=2))
    with_rows, with_others = _cat(rows, others), _cat(rows, _rows(8, seed=3))
    # the rows beside a row change its prediction when the batch is its context ...
    first, second = _out(model, with_rows, eval_rows="batch"), _out(model, with_others, eval_rows="batch")
    assert (first[:8] - second[:8]).abs().max() > 1e-4
    # ... but not with the fixed training context, nor attending to itself only
    for mode in ("context", "self"):
        alone = _out(model, _part(rows, slice(0, 3)), eval_rows=mode)
        torch.testing.assert_close(_out(model, with_rows, eval_rows=mode)[:3], alone, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(_out(model, with_others, eval_rows=mode)[:3], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", ["saint", "saint_i"])
def test_the_context_and_self_modes_equal_a_naive_batch(variant):
    """One stage: a row attending to the context and itself is that row in the batch [context; row]; attending
    to itself only is the row in a batch of one."""
    model, rows, context = _model(variant, depth=1), _rows(5), _rows(7, seed=4)
    model.set_context(context)
    got = _out(model, rows, eval_rows="context")
    naive = torch.cat([_out(model, _cat(context, _part(rows, slice(i, i + 1))), eval_rows="batch")[-1:]
                       for i in range(5)])
    torch.testing.assert_close(got, naive, atol=1e-5, rtol=1e-5)
    alone = torch.cat([_out(model, _part(rows, slice(i, i + 1)), eval_rows="batch") for i in range(5)])
    torch.testing.assert_close(_out(model, rows, eval_rows="self"), alone, atol=1e-5, rtol=1e-5)


def test_context_is_required_and_drawn_from_the_seed():
    model = _model("saint", eval_rows="context")
    with pytest.raises(RuntimeError, match="no evaluation context"):
        _out(model, _rows(4))
    model.set_context(_rows(40))
    kept = model.context_cont.clone()
    model.set_context(_rows(40))
    assert int(model.context_rows) == 40 and torch.equal(kept, model.context_cont)


def test_missing_continuous_cells_use_their_columns_embedding():
    net = SAINTNet([4, 3], 3, dim=8, depth=1, heads=2, variant="saint_s", dim_head=4)
    rows = _rows(6)
    mask = torch.ones(6, 3)
    mask[:, 1] = 0.0
    tokens = net.embedding(rows.x_cat, rows.x_cont, mask)  # (B, T, d); column v is token 1 + 2 + 1
    noisy = net.embedding(rows.x_cat, rows.x_cont + 5.0, mask)
    torch.testing.assert_close(tokens[:, 4], net.embedding.missing[1].expand(6, -1))
    torch.testing.assert_close(tokens[:, 4], noisy[:, 4])
    assert not torch.allclose(tokens[:, 3], noisy[:, 3])


def test_official_sizes():
    assert official_sizes("saint_s", 30) == {"dim": 32, "depth": 6, "heads": 8, "attn_dropout": 0.1,
                                             "ff_dropout": 0.1}
    assert official_sizes("saint", 30) == {"dim": 32, "depth": 1, "heads": 4, "attn_dropout": 0.8,
                                           "ff_dropout": 0.8}
    assert official_sizes("saint_i", 150)["dim"] == 4
    model = SAINT(variant="saint", schema=SCHEMA.as_dict(), heads=2)
    assert model.sizes == {"dim": 32, "depth": 1, "heads": 2, "attn_dropout": 0.8, "ff_dropout": 0.8}


def test_saint_learns_and_its_checkpoint_predicts_the_same(quiet_trainer, tmp_path):
    torch.manual_seed(0)
    data = TabularDataModule("breast_cancer", batch_size=64)
    model = SAINT(variant="saint", **{**SMALL, "depth": 1}, context_size=32)
    trainer = quiet_trainer(max_epochs=8)
    before = quiet_trainer().validate(SAINT(variant="saint", schema=data.schema.as_dict(), eval_rows="self", **SMALL),
                                      datamodule=data, verbose=False)[0]["val/auroc"]
    trainer.fit(model, datamodule=data)
    after = trainer.validate(model, datamodule=data, verbose=False)[0]["val/auroc"]
    assert after > 0.95 and after > before + 0.05, (before, after)
    path = tmp_path / "saint.ckpt"
    trainer.save_checkpoint(path)
    loaded = SAINT.load_from_checkpoint(path).eval()
    assert int(loaded.context_rows) == 32
    test = data.splits["test"]
    torch.testing.assert_close(_out(loaded, test), _out(model.eval(), test))
    probabilities = torch.cat(quiet_trainer().predict(loaded, datamodule=data))
    assert probabilities.shape == (114, 2) and torch.allclose(probabilities.sum(1), torch.ones(114))


def test_mlp_baseline_learns_wine(quiet_trainer):
    torch.manual_seed(0)
    data = TabularDataModule("wine", batch_size=32)
    trainer = quiet_trainer(max_epochs=15)
    model = TabularMLP()
    trainer.fit(model, datamodule=data)
    assert trainer.test(model, datamodule=data, verbose=False)[0]["test/acc"] > 0.9


def test_fine_tuning_starts_from_the_pretrained_weights(quiet_trainer, tmp_path):
    torch.manual_seed(0)
    sizes = {k: v for k, v in SMALL.items() if k != "head_hidden"}
    data = TabularDataModule("fair", train_rows="all", batch_size=128)
    pre = SAINTPretrain(variant="saint", **sizes)
    quiet_trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=1).fit(pre, datamodule=data)
    path = tmp_path / "pre.ckpt"
    torch.save({"state_dict": pre.state_dict()}, path)
    model = SAINT(variant="saint", eval_rows="self", pretrained=str(path), schema=pre.schema.as_dict(), **SMALL)
    model.setup("fit")
    for name, value in pre.net.state_dict().items():
        torch.testing.assert_close(model.net.state_dict()[name], value)
    wrong = SAINT(variant="saint_s", eval_rows="self", pretrained=str(path), schema=pre.schema.as_dict(), **SMALL)
    with pytest.raises(ValueError, match="col_attn|row_attn|missing|unexpected"):
        wrong.setup("fit")


def test_a_module_without_a_table_says_so(quiet_trainer):
    with pytest.raises(RuntimeError, match="built from its table's schema"):
        SAINT()(torch.zeros(1, 0, dtype=torch.long), torch.zeros(1, 1), torch.ones(1, 1))
    with pytest.raises(ValueError, match="variant must be one of"):
        SAINT(variant="saint_x")
    with pytest.raises(ValueError, match="eval_rows must be"):
        SAINT(eval_rows="window")
