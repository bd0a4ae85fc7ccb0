"""Frozen-encoder evaluation: feature extraction, weighted kNN, a linear probe fit."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

__all__ = ["extract_features", "knn_predict", "knn_accuracy", "linear_probe_accuracy", "load_encoder_weights",
           "CheckpointMismatchError"]


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


class CheckpointMismatchError(ValueError):
    """A checkpoint's weights do not fit the encoder they are loaded into."""


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(
            f"No checkpoint at '{path.resolve()}': set model.init_args.checkpoint to a lit_digest .ckpt "
            "(e.g. runs/<method>/checkpoints/last.ckpt) or a file saved with "
            "torch.save(encoder.state_dict())."
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # Lightning checkpoints of modules built outside the CLI pickle the backbone in their
        # hyperparameters; only the tensors are used here. Load only files you trust.
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:
            raise ValueError(f"Could not read checkpoint '{path}': {err}") from err
    except Exception as err:  # not a torch file, truncated download ...
        raise ValueError(
            f"Could not read checkpoint '{path}' ({type(err).__name__}: {err}). Expected a lit_digest "
            ".ckpt or a torch.save'd state_dict."
        ) from err
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]  # a Lightning checkpoint
    tensors_by_name = isinstance(obj, dict) and all(isinstance(k, str) and torch.is_tensor(v)
                                                    for k, v in obj.items())
    if not tensors_by_name:
        raise ValueError(
            f"Checkpoint '{path}' holds a {type(obj).__name__}, not a state_dict: expected a lit_digest "
            ".ckpt or a dict of parameter name -> tensor."
        )
    return obj


def load_encoder_weights(encoder: nn.Module, path: str | Path, prefix: str | None = None) -> list[str]:
    """Load an encoder's weights from a lit_digest checkpoint or a plain state_dict file, strictly.

    ``prefix`` selects the encoder's entries and is stripped from their names: ``None`` picks
    ``"backbone."`` when the file has such keys (every lit_digest method keeps its encoder in
    ``self.backbone``; the EMA ``target_backbone.`` of BYOL is not taken), else uses the names as
    they are (a ``torch.save(encoder.state_dict())`` file). Other entries (projector, probe ...)
    are ignored.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a checkpoint.
        CheckpointMismatchError: keys missing from (or unexpected in) the selected weights, or
            shapes that differ; the message names them.
    Returns:
        the names of the loaded tensors.
    """
    path = Path(path)
    state = _read_state_dict(path)
    if prefix is None:
        prefix = "backbone." if any(k.startswith("backbone.") for k in state) else ""
    selected = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    expected = encoder.state_dict()
    missing = sorted(set(expected) - set(selected))
    unexpected = sorted(set(selected) - set(expected))
    shapes = sorted(f"{k}: checkpoint {tuple(selected[k].shape)} vs encoder {tuple(expected[k].shape)}"
                    for k in set(expected) & set(selected) if selected[k].shape != expected[k].shape)
    if missing or unexpected or shapes:

        def show(names: list[str]) -> str:
            return ", ".join(names[:12]) + (f" ... ({len(names)} in all)" if len(names) > 12 else "")

        problems = []
        if missing:
            problems.append(f"missing keys: {show(missing)}")
        if unexpected:
            problems.append(f"unexpected keys: {show(unexpected)}")
        if shapes:
            problems.append(f"shape mismatches: {show(shapes)}")
        raise CheckpointMismatchError(
            f"Checkpoint '{path}' does not fit the encoder {type(encoder).__name__} "
            f"(key prefix {prefix!r}): " + "; ".join(problems) + ". Check that model.init_args.backbone is "
            "built as in the run that saved the checkpoint (same class, depth, width, stem, channels), or "
            "set model.init_args.checkpoint_prefix."
        )
    encoder.load_state_dict(selected, strict=True)
    return sorted(selected)
