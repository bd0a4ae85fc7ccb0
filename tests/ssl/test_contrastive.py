"""Contrastive losses against naive loops, SupCon vs SimCLR, gradient direction, and the
2-process DDP all-gather (loss and gradients equal the single-process ones)."""

from __future__ import annotations

import math
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

from lit_digest.core.dist import gather_with_grad
from lit_digest.core.lightning import Trainer, seed_everything
from lit_digest.core.optim import Optim
from lit_digest.ssl import SimCLR, SimCLRViews, SmallConvNet, SupCon, Supervised, SyntheticImageDataModule
from lit_digest.ssl.losses import nt_xent_loss, supcon_loss


def naive_nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> float:
    """SimCLR eq. 1 written out pair by pair, in float64 Python arithmetic."""
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).double(), dim=1).tolist()  # 2N rows: views 1 then views 2

    def sim(a, b):
        return sum(x * y for x, y in zip(z[a], z[b], strict=True))

    def ell(i, j):
        denom = sum(math.exp(sim(i, k) / temperature) for k in range(2 * n) if k != i)
        return -math.log(math.exp(sim(i, j) / temperature) / denom)

    return sum(ell(k, k + n) + ell(k + n, k) for k in range(n)) / (2 * n)


def naive_supcon(z: torch.Tensor, labels: list[int], temperature: float, variant: str = "out") -> float:
    """SupCon written out anchor by anchor; z is (B, V, D). ``out``: eq. 2, the mean over positives of
    -log p_ip; ``in``: eq. 3, -log of the mean over positives of p_ip (arXiv 2004.11362)."""
    b, v, _ = z.shape
    flat = F.normalize(z.reshape(b * v, -1).double(), dim=1).tolist()
    ids = [labels[i // v] for i in range(b * v)]

    def sim(a, c):
        return sum(x * y for x, y in zip(flat[a], flat[c], strict=True))

    total = 0.0
    for i in range(b * v):
        denom = sum(math.exp(sim(i, a) / temperature) for a in range(b * v) if a != i)
        positives = [p for p in range(b * v) if p != i and ids[p] == ids[i]]
        probs = [math.exp(sim(i, p) / temperature) / denom for p in positives]
        if variant == "out":
            total += -sum(math.log(q) for q in probs) / len(probs)
        else:
            total += -math.log(sum(probs) / len(probs))
    return total / (b * v)


@pytest.mark.parametrize("batch", [1, 2, 5, 16])
@pytest.mark.parametrize("temperature", [0.07, 0.2, 0.5, 1.0])
def test_nt_xent_equals_the_naive_pair_loop(batch, temperature):
    g = torch.Generator().manual_seed(batch * 100 + int(temperature * 100))
    z1, z2 = torch.randn(batch, 8, generator=g), torch.randn(batch, 8, generator=g)
    loss = nt_xent_loss(torch.stack([z1, z2], dim=1), temperature)
    assert loss.item() == pytest.approx(naive_nt_xent(z1, z2, temperature), rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("variant", ["out", "in"])
def test_contrastive_losses_keep_float64_and_lift_16_bit_inputs_to_float32(variant):
    g = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(5, 8, generator=g, dtype=torch.float64), torch.randn(5, 8, generator=g, dtype=torch.float64)
    z = torch.stack([z1, z2], dim=1).requires_grad_()
    loss = nt_xent_loss(z, 0.07)
    assert loss.dtype == torch.float64
    assert loss.item() == pytest.approx(naive_nt_xent(z1, z2, 0.07), rel=1e-12)  # float32 would miss by ~1e-7
    loss.backward()
    assert z.grad.dtype == torch.float64
    assert supcon_loss(z.detach(), torch.tensor([0, 1, 0, 2, 1]), 0.2, variant=variant).dtype == torch.float64
    assert nt_xent_loss(z.detach().half(), 0.07).dtype == torch.float32


def test_nt_xent_is_low_for_matching_views_and_high_for_random_ones():
    z = torch.randn(32, 16)
    matched = nt_xent_loss(torch.stack([z, z + 0.01 * torch.randn_like(z)], dim=1), 0.1)
    shuffled = nt_xent_loss(torch.stack([z, torch.randn_like(z)], dim=1), 0.1)
    assert matched < 0.1 < math.log(63) - 1 < shuffled  # chance level is about log(2N - 1)


@pytest.mark.parametrize("variant", ["out", "in"])
@pytest.mark.parametrize("views", [2, 3])
@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_supcon_equals_the_naive_anchor_loop(views, temperature, variant):
    g = torch.Generator().manual_seed(views)
    z = torch.randn(6, views, 5, generator=g)
    labels = [0, 1, 0, 2, 1, 0]
    loss = supcon_loss(z, torch.tensor(labels), temperature, variant=variant)
    assert loss.item() == pytest.approx(naive_supcon(z, labels, temperature, variant), rel=1e-5)


def test_the_two_supcon_variants_differ_where_a_class_has_several_positives():
    z = torch.randn(6, 2, 5)
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    assert supcon_loss(z, labels, 0.2, variant="in") < supcon_loss(z, labels, 0.2, variant="out")  # Jensen


@pytest.mark.parametrize("views", [2, 4])
def test_supcon_with_distinct_labels_is_the_simclr_loss(views):
    z = torch.randn(10, views, 12)
    labels = torch.randperm(10) * 3  # all distinct, not in order
    torch.testing.assert_close(supcon_loss(z, labels, 0.2), nt_xent_loss(z, 0.2))
    # unlabeled samples (-1) are their own class: all-unlabeled is SimCLR too
    torch.testing.assert_close(supcon_loss(z, torch.full((10,), -1), 0.2), nt_xent_loss(z, 0.2))


def _mean_cos(z: torch.Tensor, pairs: list[tuple[int, int]]) -> float:
    flat = F.normalize(z, dim=-1)
    return sum(float(flat[a] @ flat[b]) for a, b in pairs) / len(pairs)


def test_supcon_gradient_pulls_same_class_images_together_and_simclr_does_not():
    torch.manual_seed(0)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    z0 = torch.randn(8, 2, 16)
    # pairs of *different images* (view 0 of each) with the same / a different class
    same = [(i, j) for i in range(8) for j in range(i + 1, 8) if labels[i] == labels[j]]
    diff = [(i, j) for i in range(8) for j in range(i + 1, 8) if labels[i] != labels[j]]

    def step(loss_fn) -> torch.Tensor:
        z = z0.clone().requires_grad_(True)
        loss_fn(z).backward()
        return (z - 0.5 * z.grad).detach()[:, 0]  # one gradient step, view 0: (B, D)

    before = z0[:, 0]
    sup = step(lambda z: supcon_loss(z, labels, 0.2))
    simclr = step(lambda z: nt_xent_loss(z, 0.2))
    assert _mean_cos(sup, same) > _mean_cos(before, same) + 0.01
    assert _mean_cos(sup, diff) < _mean_cos(before, diff)
    # without labels, the same pairs are negatives and drift apart
    assert _mean_cos(simclr, same) < _mean_cos(before, same)


def test_loss_gradients_are_finite_and_gather_is_identity_on_one_process():
    z = torch.randn(4, 2, 8, requires_grad=True)
    assert gather_with_grad(z) is z
    (nt_xent_loss(z, 0.1) + supcon_loss(z, torch.tensor([0, 0, 1, -1]), 0.1)).backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="temperature"):
        nt_xent_loss(torch.randn(4, 2, 8), 0.0)
    with pytest.raises(ValueError, match=r"\(B, V, D\)"):
        nt_xent_loss(torch.randn(4, 8), 0.1)
    with pytest.raises(ValueError, match="labels"):
        supcon_loss(torch.randn(4, 2, 8), torch.zeros(3, dtype=torch.long))


# -- two CPU processes (gloo) -------------------------------------------------------------------

GLOBAL_B, VIEWS, D_IN, D_OUT, TEMP = 8, 3, 6, 4, 0.3


def _global_problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(GLOBAL_B, VIEWS, D_IN, generator=g)
    labels = torch.tensor([0, 1, 2, 0, 1, 0, 3, -1])  # classes span both ranks; one unlabeled sample
    encoder = torch.nn.Linear(D_IN, D_OUT)
    with torch.no_grad():
        encoder.weight.copy_(torch.randn(D_OUT, D_IN, generator=g))
        encoder.bias.copy_(torch.randn(D_OUT, generator=g))
    return x, labels, encoder


# With one view, an anchor whose class has no other sample in the global batch has no positive: rank 0 then
# scores 3 anchors (class 2 is alone), rank 1 only 2 (class 3 and the unlabeled sample are alone).
CASES = ("nt_xent", "supcon", "supcon_one_view", "supcon_in")


def _loss(name: str, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if name == "nt_xent":
        return nt_xent_loss(z, TEMP)
    return supcon_loss(z, labels, TEMP, variant="in" if name == "supcon_in" else "out")


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    x, labels, encoder = _global_problem()
    per = GLOBAL_B // world
    x_local, labels_local = x[rank * per:(rank + 1) * per], labels[rank * per:(rank + 1) * per]
    model = DistributedDataParallel(encoder)
    results = {}
    for name in CASES:
        model.zero_grad()
        z = model(x_local[:, :1] if name == "supcon_one_view" else x_local)  # (B/W, V, D_OUT)
        loss = _loss(name, z, labels_local)
        loss.backward()  # DDP averages the parameter gradients over the ranks
        mean_loss = loss.detach().clone()
        dist.all_reduce(mean_loss)
        results[name] = {"loss": float(mean_loss) / world, "local_loss": float(loss),
                         "grads": [p.grad.clone() for p in encoder.parameters()]}
    if rank == 0:
        torch.save(results, out)
    dist.barrier()
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two spawned interpreters importing torch + Lightning: about 25 s on 2 busy cores
def test_two_process_gathered_loss_and_gradients_equal_the_single_process_ones(tmp_path):
    out = str(tmp_path / "ddp.pt")
    mp.start_processes(_ddp_worker, args=(2, _free_port(), out), nprocs=2, join=True, start_method="spawn")
    ddp = torch.load(out)
    x, labels, encoder = _global_problem()
    for name in CASES:
        encoder.zero_grad()
        z = encoder(x[:, :1] if name == "supcon_one_view" else x)
        loss = _loss(name, z, labels)
        loss.backward()
        assert ddp[name]["loss"] == pytest.approx(loss.item(), rel=1e-5), name
        # the rank's own loss is a different number (its anchors only), so the agreement is not trivial
        assert ddp[name]["local_loss"] != pytest.approx(loss.item(), rel=1e-3), name
        for got, want in zip(ddp[name]["grads"], [p.grad for p in encoder.parameters()], strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


# -- the systems train --------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [SimCLR, SupCon, Supervised])
def test_each_system_takes_optimizer_steps_and_logs(cls, tmp_path):
    seed_everything(0)
    kw = {} if cls is Supervised else dict(proj_hidden_dim=32, proj_dim=16)
    model = cls(backbone=SmallConvNet(in_channels=3, width=4), num_classes=4,
                optim=Optim(name="sgd", lr=0.1, scale_lr_by_batch=True), **kw)
    data = SyntheticImageDataModule(num_train=32, num_test=16, image_size=16, classes=4, batch_size=16,
                                    num_workers=0, views=SimCLRViews(crop_size=16, n_views=3))
    before = [p.detach().clone() for p in model.backbone.parameters()]
    trainer = Trainer(accelerator="cpu", max_steps=2, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                      num_sanity_val_steps=0)
    trainer.fit(model, data)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert "val/probe_acc" in trainer.callback_metrics or "val/acc" in trainer.callback_metrics
    assert any((a - b).abs().max() > 0 for a, b in zip(before, model.backbone.parameters(), strict=True))


def test_loss_is_computed_in_float32_under_bf16_autocast():
    z = torch.randn(16, 2, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = nt_xent_loss(z.bfloat16(), 0.1)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, nt_xent_loss(z.bfloat16().float(), 0.1))
