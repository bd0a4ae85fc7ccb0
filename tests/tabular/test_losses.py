"""SAINT's pre-training losses and views against naive per-sample computations."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lit_digest.tabular.data import TableBatch, TableSchema
from lit_digest.tabular.saint import SAINTPretrain, cutmix_rows, denoising_losses, info_nce, mixup_embeddings
from lit_digest.tabular.saint.losses import pretraining_loss


def test_info_nce_equals_a_per_sample_loop():
    g = torch.Generator().manual_seed(0)
    z1, z2, t = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g), 0.7
    total = 0.0
    for a, b in ((z1, z2), (z2, z1)):
        for i in range(6):
            scores = [float(a[i] @ b[k]) / t for k in range(6)]
            total += -scores[i] + math.log(sum(math.exp(s) for s in scores))
    assert abs(float(info_nce(z1, z2, t)) - total / 12) < 1e-5
    # matching views score lower than unrelated ones
    assert info_nce(z1, z1 * 3, t) < info_nce(z1, z2, t)


def test_info_nce_defaults_to_the_official_temperature_and_stays_on_its_device():
    g = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    total = 0.0
    for a, b in ((z1, z2), (z2, z1)):
        for i in range(5):
            scores = [float(a[i] @ b[k]) / 0.7 for k in range(5)]  # official nce_temp 0.7
            total += -scores[i] + math.log(sum(math.exp(s) for s in scores))
    assert abs(float(info_nce(z1, z2)) - total / 10) < 1e-5
    # the targets are made on the inputs' device (a CPU target beside CUDA or meta logits is an error)
    assert info_nce(z1.to("meta"), z2.to("meta")).device.type == "meta"


def test_denoising_losses_equal_a_per_sample_loop():
    g = torch.Generator().manual_seed(1)
    cards = [3, 5]
    logits = [torch.randn(4, k, generator=g) for k in cards]
    x_cat = torch.stack([torch.randint(0, k, (4,), generator=g) for k in cards], dim=1)
    pred, x_cont = torch.randn(4, 2, generator=g), torch.randn(4, 2, generator=g)
    mask = torch.tensor([[1.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    cat, cont = denoising_losses(logits, pred, x_cat, x_cont, mask)
    naive_cat = sum(sum(-F.log_softmax(logits[j][i], -1)[x_cat[i, j]] for i in range(4)) / 4 for j in range(2))
    cells = [(i, j) for i in range(4) for j in range(2) if mask[i, j] > 0]
    naive_cont = sum((pred[i, j] - x_cont[i, j]) ** 2 for i, j in cells) / len(cells)
    torch.testing.assert_close(cat, naive_cat)
    torch.testing.assert_close(cont, naive_cont)


def test_denoising_losses_of_a_table_without_categories_and_of_one_observed_cell():
    pred, x_cont = torch.tensor([[1.0, 5.0], [2.0, 7.0]]), torch.tensor([[4.0, 0.0], [0.0, 0.0]])
    one = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # only cell (0, 0) observed: (1 - 4)^2 over 1 cell
    cat, cont = denoising_losses([], pred, torch.zeros(2, 0, dtype=torch.long), x_cont, one)
    assert torch.is_tensor(cat) and cat.item() == 0.0  # a tensor even with no categorical column
    assert cont.item() == 9.0


def test_pretraining_loss_defaults_are_the_official_weights():
    # lam0 0.5, lam2 1, lam3 10 (official train.py): 0.5 * 1 + 1 * 10 + 10 * 100
    assert pretraining_loss(torch.tensor(1.0), torch.tensor(10.0), torch.tensor(100.0)).item() == 1010.5


def test_cutmix_takes_each_cell_from_the_row_or_its_partner():
    g = torch.Generator().manual_seed(2)
    x_cat, x_cont = torch.randint(0, 100, (64, 4), generator=g), torch.randn(64, 6, generator=g)
    mask = (torch.rand(64, 6, generator=g) > 0.5).float()
    new_cat, new_cont, new_mask, perm = cutmix_rows(x_cat, x_cont, mask, 0.3, torch.Generator().manual_seed(3))
    own_cont = new_cont == x_cont
    assert torch.all(own_cont | (new_cont == x_cont[perm]))
    assert torch.all((new_cat == x_cat) | (new_cat == x_cat[perm]))
    assert torch.equal(new_mask[~own_cont], mask[perm][~own_cont])  # a missing flag moves with its cell
    swapped = float((~own_cont).float().mean())
    assert 0.2 < swapped < 0.4  # about cutmix_prob of the cells
    same, _, _, _ = cutmix_rows(x_cat, x_cont, mask, 0.0)
    assert torch.equal(same, x_cat)


def test_mixup_mixes_every_token_with_one_partner():
    tokens = torch.randn(5, 3, 4)
    mixed, perm = mixup_embeddings(tokens, 0.3, torch.Generator().manual_seed(0))
    torch.testing.assert_close(mixed, 0.3 * tokens + 0.7 * tokens[perm])


def test_pretraining_loss_is_the_weighted_sum_and_reaches_the_embeddings():
    schema = TableSchema("y", "binary", ("a",), (4,), ("u", "v"), ("0", "1"))
    torch.manual_seed(0)
    model = SAINTPretrain(variant="saint", dim=8, depth=1, heads=2, dim_head=4, row_dim_head=8, cont_hidden=8,
                          schema=schema.as_dict())
    g = torch.Generator().manual_seed(0)
    rows = TableBatch(torch.randint(0, 4, (16, 1), generator=g), torch.randn(16, 2, generator=g), torch.ones(16, 2),
                      torch.zeros(16))
    terms = model.losses(rows, torch.Generator().manual_seed(5))
    again = model.losses(rows, torch.Generator().manual_seed(5))
    expected = 0.5 * terms["contrastive"] + terms["denoise_cat"] + 10 * terms["denoise_cont"]
    torch.testing.assert_close(terms["loss"], expected)
    model.eval()
    torch.testing.assert_close(model.losses(rows, torch.Generator().manual_seed(5))["loss"],
                               model.losses(rows, torch.Generator().manual_seed(5))["loss"])
    assert torch.isfinite(again["loss"])
    terms["loss"].backward()
    for name in ("embedding.categories.weight", "embedding.w2", "embedding.cls"):
        assert model.net.get_parameter(name).grad.abs().sum() > 0, name
    assert model.projector1 is not model.projector2
