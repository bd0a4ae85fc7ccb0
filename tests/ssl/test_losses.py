import torch

from lit_digest.ssl.losses import byol_loss, masked_cross_entropy, symmetric_byol_loss


def test_byol_loss_equals_paper_formula():
    # arXiv 2006.07733 eq. 2: || p/||p|| - z/||z|| ||_2^2, averaged over the batch.
    g = torch.Generator().manual_seed(0)
    p, z = torch.randn(16, 32, generator=g), torch.randn(16, 32, generator=g)
    naive = torch.stack([((pi / pi.norm() - zi / zi.norm()) ** 2).sum() for pi, zi in zip(p, z)]).mean()
    torch.testing.assert_close(byol_loss(p, z), naive)


def test_byol_loss_bounds_and_scale_invariance():
    p = torch.randn(8, 4)
    assert byol_loss(p, p).abs().max() < 1e-6  # identical directions: 0
    torch.testing.assert_close(byol_loss(p, -p), torch.tensor(4.0))  # opposite directions: 4
    torch.testing.assert_close(byol_loss(3 * p, 0.5 * p.roll(1, 0)), byol_loss(p, p.roll(1, 0)))


def test_symmetric_loss_pairs_each_prediction_with_the_other_views_target():
    p1, p2, z1, z2 = (torch.randn(5, 8) for _ in range(4))
    torch.testing.assert_close(symmetric_byol_loss(p1, p2, z1, z2), byol_loss(p1, z2) + byol_loss(p2, z1))


def test_byol_loss_stops_gradient_on_target():
    p = torch.randn(4, 8, requires_grad=True)
    z = torch.randn(4, 8, requires_grad=True)
    byol_loss(p, z).backward()
    assert p.grad is not None and p.grad.abs().sum() > 0
    assert z.grad is None


def test_masked_cross_entropy_ignores_unlabeled_samples():
    logits = torch.randn(6, 3, requires_grad=True)
    labels = torch.tensor([0, -1, 2, -1, 1, 1])
    keep = labels >= 0
    expected = torch.nn.functional.cross_entropy(logits[keep], labels[keep])
    torch.testing.assert_close(masked_cross_entropy(logits, labels), expected)
    none = masked_cross_entropy(logits, torch.full((6,), -1))
    assert none.item() == 0.0
    none.backward()  # still differentiable: a batch of STL-10 unlabeled images does not crash
