"""Frozen-encoder evaluation: feature extraction, one weighted kNN (used by ``KNNMonitor``, ``KNNEval``
and ``EncoderReport``), a quick linear probe fit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchmetrics.functional.classification import multiclass_accuracy

__all__ = ["FeatureBank", "dataset_lengths", "extract_features", "knn_predict", "knn_accuracy", "linear_probe_accuracy"]


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


class FeatureBank:
    """The features and labels of one validation epoch, per dataloader: loader 0 holds the queries (the
    validation split), loader 1 the kNN bank (labeled training images). ``KNNMonitor`` and ``KNNEval``
    fill one and ``score`` it: the only kNN evaluation of the package."""

    def __init__(self) -> None:
        self.feats: dict[int, list[torch.Tensor]] = {}
        self.labels: dict[int, list[torch.Tensor]] = {}

    def clear(self) -> None:
        self.feats, self.labels = {}, {}

    def add(self, dataloader_idx: int, feats: torch.Tensor, labels: torch.Tensor) -> None:
        self.feats.setdefault(dataloader_idx, []).append(feats.detach().float())
        self.labels.setdefault(dataloader_idx, []).append(labels.detach())

    @property
    def ready(self) -> bool:
        return 0 in self.feats and 1 in self.feats

    def _gathered(self, module: Any, idx: int, total: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Every rank's features and labels of loader ``idx`` in the data set's order, without the samples a
        DistributedSampler repeats to give every rank as many: rank r's j-th sample is the data set's
        sample ``j * W + r``, and the positions from ``total`` (the data set's length) on are repeats."""
        feats, labels = torch.cat(self.feats[idx]), torch.cat(self.labels[idx])  # (n, D), (n,)
        all_feats, all_labels = module.all_gather(feats), module.all_gather(labels)
        if all_feats.ndim == feats.ndim + 1:  # (W, n, D): several ranks
            all_feats = all_feats.transpose(0, 1).flatten(0, 1)  # (n * W, D)
            all_labels = all_labels.transpose(0, 1).flatten()  # (n * W,)
            if total is not None:
                all_feats, all_labels = all_feats[:total], all_labels[:total]
        return all_feats, all_labels

    def score(self, module: Any, ks: Sequence[int], temperature: float,
              totals: Sequence[int | None] = (None, None)) -> dict[int, torch.Tensor]:
        """``{k: accuracy}`` of the weighted kNN vote, on features all-gathered across ranks (identical on
        every rank); ``totals``: the lengths of the query and bank data sets (to drop the DistributedSampler's
        padding; ``dataset_lengths(trainer)`` gives them); unlabeled bank entries (label -1) are left out."""
        query, query_labels = self._gathered(module, 0, totals[0])
        bank, bank_labels = self._gathered(module, 1, totals[1])
        labeled = bank_labels >= 0
        bank, bank_labels = bank[labeled], bank_labels[labeled]
        num_classes = int(max(bank_labels.max(), query_labels.max())) + 1
        out = {}
        for k in ks:
            scores = knn_predict(query, bank, bank_labels, num_classes, k, temperature)
            out[k] = multiclass_accuracy(scores, query_labels, num_classes=num_classes, average="micro")
        return out


def dataset_lengths(trainer: Any) -> tuple[int | None, ...]:
    """The lengths of the validation loaders' data sets (None where a data set has no length)."""
    loaders = trainer.val_dataloaders
    loaders = loaders if isinstance(loaders, (list, tuple)) else [loaders]
    return tuple(len(dl.dataset) if hasattr(getattr(dl, "dataset", None), "__len__") else None for dl in loaders)
