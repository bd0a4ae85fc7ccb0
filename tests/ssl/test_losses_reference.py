"""The contrastive losses' bookkeeping against plain references: anchors that are a middle slice of the keys,
anchors without a positive, unlabeled samples beside labeled ones, an emulated 3-rank world (threads standing in
for DDP ranks), the documented defaults, and the device of every tensor the losses make (``make mutate`` on
``lit_digest/ssl/losses.py``)."""

from __future__ import annotations

import math
import threading

import pytest
import torch
import torch.nn.functional as F

import lit_digest.ssl.losses as losses
from lit_digest.ssl.losses import (
    contrastive_loss_by_ids,
    masked_cross_entropy,
    nt_xent_loss,
    per_anchor_contrastive_losses,
    supcon_loss,
)


def naive_per_anchor(keys: torch.Tensor, ids: list[int], rows: range, temperature: float) -> list[float]:
    """SupCon's L_out (arXiv 2004.11362, eq. 2) of each anchor row of ``keys`` that has a positive, as a loop."""
    flat = F.normalize(keys.double(), dim=1).tolist()

    def sim(a, c):
        return sum(x * y for x, y in zip(flat[a], flat[c], strict=True))

    out = []
    for i in rows:
        others = [a for a in range(len(flat)) if a != i]
        positives = [p for p in others if ids[p] == ids[i]]
        if not positives:
            continue
        denom = sum(math.exp(sim(i, a) / temperature) for a in others)
        out.append(-sum(sim(i, p) / temperature - math.log(denom) for p in positives) / len(positives))
    return out


def test_anchors_in_the_middle_of_the_keys_and_anchors_without_a_positive():
    g = torch.Generator().manual_seed(0)
    keys = torch.randn(9, 4, generator=g)
    ids = [0, 1, 2, 0, 5, 2, 1, 1, 7]  # rows 4 and 8 have no positive
    rows = range(3, 7)  # anchors: keys 3..6, one of them (4) without a positive
    got = per_anchor_contrastive_losses(keys[3:7], torch.tensor(ids[3:7]), keys, torch.tensor(ids), 3, 0.3)
    expected = naive_per_anchor(keys, ids, rows, 0.3)
    assert got.shape == (3,)  # the default variant is "out", and anchor 4 is left out
    torch.testing.assert_close(got.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-5, atol=1e-5)
    mean = contrastive_loss_by_ids(keys[3:7], torch.tensor(ids[3:7]), keys, torch.tensor(ids), 3, 0.3)
    assert mean.item() == pytest.approx(sum(expected) / len(expected), rel=1e-5)
    args = (keys[3:7], torch.tensor(ids[3:7]), keys, torch.tensor(ids))
    torch.testing.assert_close(contrastive_loss_by_ids(*args, anchor_offset=3, temperature=0.3, variant="in"),
                               per_anchor_contrastive_losses(*args, 3, 0.3, "in").mean())


def test_no_anchor_with_a_positive_gives_an_exact_zero_with_a_graph():
    z = torch.randn(5, 1, 6, requires_grad=True)  # one view, every label seen once: no positive anywhere
    loss = supcon_loss(z, torch.tensor([0, 1, 2, 3, 4]), 0.2)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(z.grad, torch.zeros_like(z))
    by_ids = contrastive_loss_by_ids(z[:, 0], torch.arange(5), z[:, 0], torch.arange(5), 0, 0.2)
    assert by_ids.item() == 0.0
    by_ids.backward()  # still a graph


def test_unlabeled_samples_are_their_own_class_beside_labeled_ones():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(6, 1, 5, generator=g)  # one view: an unlabeled sample has no positive at all
    labels = [-1, 0, -1, 1, 0, 1]  # unlabeled samples must not join class 0 or 1, nor each other
    ids = [100 + i if label < 0 else label for i, label in enumerate(labels)]
    expected = naive_per_anchor(z[:, 0], ids, range(6), 0.2)
    assert supcon_loss(z, torch.tensor(labels), 0.2).item() == pytest.approx(sum(expected) / len(expected), rel=1e-5)


def test_documented_defaults():
    z, labels = torch.randn(4, 2, 6), torch.tensor([0, 1, 0, -1])
    torch.testing.assert_close(nt_xent_loss(z), nt_xent_loss(z, 0.2))  # solo-learn's CIFAR temperature
    torch.testing.assert_close(supcon_loss(z, labels), supcon_loss(z, labels, 0.2, "out"))
    flat, ids = z.reshape(8, 6), labels.repeat_interleave(2)
    torch.testing.assert_close(per_anchor_contrastive_losses(flat, ids, flat, ids, 0, 0.5),
                               per_anchor_contrastive_losses(flat, ids, flat, ids, 0, 0.5, "out"))
    with pytest.raises(ValueError, match="variant must be 'out' or 'in'"):
        per_anchor_contrastive_losses(flat, ids, flat, ids, 0, 0.5, "mean")


def test_masked_cross_entropy_with_a_single_labeled_sample():
    logits = torch.randn(4, 3)
    labels = torch.tensor([-1, 2, -1, -1])
    torch.testing.assert_close(masked_cross_entropy(logits, labels), F.cross_entropy(logits[1:2], labels[1:2]))


class _Ranks:
    """``world``, ``gather_with_grad`` and ``gather_no_grad`` of ``size`` ranks played by threads of one process."""

    def __init__(self, size: int) -> None:
        self.size, self.local = size, threading.local()
        self.slots: list[torch.Tensor | None] = [None] * size
        self.barrier = threading.Barrier(size)

    def world(self) -> tuple[int, int]:
        return self.local.rank, self.size

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        self.slots[self.local.rank] = x
        self.barrier.wait()
        out = torch.cat(self.slots, dim=0)
        self.barrier.wait()  # nobody writes the next gather's slot before everybody has read this one
        return out

    def run(self, fn, inputs: list) -> list:
        results: list = [None] * self.size

        def rank_main(rank):
            self.local.rank = rank
            try:
                results[rank] = fn(*inputs[rank])
            except BaseException as err:  # noqa: BLE001 - re-raised in the main thread
                results[rank] = err
                self.barrier.abort()

        threads = [threading.Thread(target=rank_main, args=(r,)) for r in range(self.size)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return results


@pytest.mark.parametrize("loss", ["nt_xent", "supcon"])
def test_three_emulated_ranks_average_to_the_single_process_loss(monkeypatch, loss):
    """Each rank scores its own anchors against the gathered keys; the mean of the ranks' losses is the loss of the
    concatenated batch (DDP averages gradients the same way). 3 ranks of 2 images: ids must stay unique across
    ranks, and each rank's anchors must be found at their own offset among the keys."""
    ranks = _Ranks(3)
    monkeypatch.setattr(losses, "world", ranks.world)
    monkeypatch.setattr(losses, "gather_with_grad", ranks.gather)
    monkeypatch.setattr(losses, "gather_no_grad", ranks.gather)
    g = torch.Generator().manual_seed(2)
    z = torch.randn(6, 2, 5, generator=g)
    labels = torch.tensor([0, -1, -1, 1, -1, 0])  # supcon: unlabeled images on every rank, at different places
    if loss == "nt_xent":
        per_rank = ranks.run(lambda zr: nt_xent_loss(zr, 0.3), [(z[2 * r:2 * r + 2],) for r in range(3)])
        flat, ids = z.reshape(12, 5), [i // 2 for i in range(12)]
    else:
        per_rank = ranks.run(lambda zr, lr: supcon_loss(zr, lr, 0.3), [(z[2 * r:2 * r + 2], labels[2 * r:2 * r + 2])
                                                                       for r in range(3)])
        flat = z.reshape(12, 5)
        ids = [100 + i // 2 if labels[i // 2] < 0 else int(labels[i // 2]) for i in range(12)]
    expected = naive_per_anchor(flat, ids, range(12), 0.3)
    assert sum(x.item() for x in per_rank) / 3 == pytest.approx(sum(expected) / len(expected), rel=1e-5)


def test_every_tensor_stays_on_the_inputs_device():
    """Under another default device (meta here; CUDA inputs with a CPU default in practice), every tensor the
    losses make follows the inputs: a helper tensor on the default device would fail to mix with them."""
    z = torch.randn(4, 2, 6, requires_grad=True)
    labels = torch.tensor([0, -1, 1, 0])
    one_view, distinct = torch.randn(3, 1, 6), torch.arange(3)
    with torch.device("meta"):
        assert nt_xent_loss(z, 0.2).device.type == "cpu"
        assert supcon_loss(z, labels, 0.2).device.type == "cpu"
        assert supcon_loss(one_view, distinct, 0.2).item() == 0.0  # no positive: the zero branch
