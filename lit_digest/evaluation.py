"""Frozen-encoder evaluation: feature extraction, weighted kNN, a linear probe fit."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

__all__ = ["extract_features", "knn_predict", "knn_accuracy", "linear_probe_accuracy"]


@torch.no_grad()
def extract_features(encoder: nn.Module, loader: DataLoader, device: torch.device | str,
                     transform=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Features ``(N, D)`` and labels ``(N,)`` of every batch of ``loader``, encoder in eval mode.

    ``transform`` maps a raw batch image tensor to the encoder's input (e.g. a DataModule's
    uint8 -> normalised float conversion)."""
    was_training = encoder.training
    encoder.eval()
    feats, labels = [], []
    for x, y in loader:
        x = x.to(device)
        if transform is not None:
            x = transform(x)
        feats.append(encoder(x).float())
        labels.append(y.to(device))
    encoder.train(was_training)
    return torch.cat(feats), torch.cat(labels)


@torch.no_grad()
def knn_predict(query: torch.Tensor, bank: torch.Tensor, bank_labels: torch.Tensor, num_classes: int,
                k: int = 200, temperature: float = 0.1, chunk_size: int = 1024) -> torch.Tensor:
    """Class scores ``(Q, C)`` of a temperature-weighted kNN vote (Wu et al. 1805.01978, eq. 7).

    Each query takes its ``k`` most cosine-similar bank entries; neighbour ``i`` votes for its
    class with weight ``exp(s_i / temperature)``. Queries are processed in chunks, so memory
    stays ``O(chunk_size * N)``.

    Args:
        query: ``(Q, D)``; bank: ``(N, D)``; bank_labels: ``(N,)`` in ``[0, C)``.
    """
    query = F.normalize(query.float(), dim=1)
    bank = F.normalize(bank.float(), dim=1)
    k = min(k, bank.shape[0])
    scores = []
    for start in range(0, query.shape[0], chunk_size):
        sim = query[start:start + chunk_size] @ bank.T  # (q, N)
        top_sim, top_idx = sim.topk(k, dim=1)  # (q, k)
        weights = (top_sim / temperature).exp()
        votes = torch.zeros(sim.shape[0], num_classes, device=sim.device)
        votes.scatter_add_(1, bank_labels[top_idx], weights)  # (q, C)
        scores.append(votes)
    return torch.cat(scores)


def knn_accuracy(query: torch.Tensor, query_labels: torch.Tensor, bank: torch.Tensor, bank_labels: torch.Tensor,
                 num_classes: int, k: int = 200, temperature: float = 0.1) -> float:
    pred = knn_predict(query, bank, bank_labels, num_classes, k, temperature).argmax(dim=1)
    return (pred == query_labels).float().mean().item()


def linear_probe_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
                          test_y: torch.Tensor, num_classes: int, steps: int = 300, lr: float = 0.1,
                          weight_decay: float = 1e-4, seed: int = 0) -> float:
    """Test accuracy of a logistic-regression classifier fitted full-batch (Adam) on frozen,
    standardised features: a quick, deterministic linear probe for small data sets."""
    mean, std = train_x.mean(0, keepdim=True), train_x.std(0, keepdim=True).clamp_min(1e-6)
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    g = torch.Generator(device="cpu").manual_seed(seed)
    weight = (torch.randn(train_x.shape[1], num_classes, generator=g) * 0.01).to(train_x.device)
    weight.requires_grad_(True)
    bias = torch.zeros(num_classes, device=train_x.device, requires_grad=True)
    opt = torch.optim.Adam([weight, bias], lr=lr, weight_decay=weight_decay)
    with torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad()
            F.cross_entropy(train_x @ weight + bias, train_y).backward()
            opt.step()
    with torch.no_grad():
        return ((test_x @ weight + bias).argmax(1) == test_y).float().mean().item()
