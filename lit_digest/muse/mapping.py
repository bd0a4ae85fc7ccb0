"""The mapping W: its two fits (adversarial, against the language discriminator, and Procrustes) and
its re-orthogonalisation. Conneau, Lample, Ranzato, Denoyer, Jegou, "Word Translation Without
Parallel Data", arXiv 1710.04087, sections 2.1, 2.2 and 3.3. Plain ``nn.Module``s, no Lightning.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lit_digest.muse.dictionary import EmptyDictionaryError

__all__ = ["LanguageDiscriminator", "LinearMapping", "orthogonalize_", "procrustes"]


@torch.no_grad()
def procrustes(src: Tensor, tgt: Tensor) -> Tensor:
    """Orthogonal ``W`` (d, d) minimising ``||src @ W.T - tgt||_F``: ``U V^T`` of ``SVD(tgt^T src)``.

    ``src``, ``tgt``: (p, d) rows of the dictionary pairs (arXiv 1710.04087, eq. 2). The SVD
    runs in float64 on the inputs' device; the result has ``src``'s dtype.
    """
    if src.shape != tgt.shape:
        raise ValueError(
            f"procrustes needs paired rows of equal shape, got {tuple(src.shape)} and {tuple(tgt.shape)}"
        )
    if src.shape[0] == 0:
        raise EmptyDictionaryError("procrustes was given an empty dictionary")
    m = tgt.double().t() @ src.double()  # (d, d)
    u, _, vh = torch.linalg.svd(m)
    return (u @ vh).to(src.dtype)


@torch.no_grad()
def orthogonalize_(weight: Tensor, beta: float) -> Tensor:
    """In place ``W <- (1 + beta) W - beta (W W^T) W`` (arXiv 1710.04087, section 3.3).

    One step of an iteration whose fixed points with singular values 1 are the orthogonal
    matrices; applied after every mapping update it keeps ``W`` close to the orthogonal
    manifold. Returns ``weight``.
    """
    if beta > 0:
        weight.copy_((1 + beta) * weight - beta * (weight @ weight.t()) @ weight)
    return weight


class LinearMapping(nn.Module):
    """``x -> W x``: a (dim, dim) linear map without bias, initialised to the identity.

    "we learn a linear mapping W between the source and the target space such that W x_s
    approximates y_t" (section 2); identity init as the official ``--map_id_init true``.
    """

    def __init__(self, dim: int = 300, identity_init: bool = True) -> None:
        super().__init__()
        self.dim = dim
        self.weight = nn.Parameter(torch.empty(dim, dim))
        if identity_init:
            nn.init.eye_(self.weight)
        else:
            nn.init.orthogonal_(self.weight)

    def forward(self, x: Tensor) -> Tensor:  # (..., d) -> (..., d)
        return x @ self.weight.t()

    @torch.no_grad()
    def orthogonalize_(self, beta: float) -> None:
        """``W <- (1 + beta) W - beta (W W^T) W`` (section 3.3); no-op for ``beta <= 0``."""
        orthogonalize_(self.weight, beta)

    @torch.no_grad()
    def set_weight_(self, weight: Tensor) -> None:
        self.weight.copy_(weight.to(self.weight))

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LanguageDiscriminator(nn.Module):
    """MLP telling mapped source embeddings (label 1) from target embeddings (label 0).

    "two hidden layers of size 2048, and Leaky-ReLU activation functions. The input to the
    discriminator is corrupted with dropout noise with a rate of 0.1" (section 3.1); the output
    is a sigmoid probability. ``logits`` gives the pre-sigmoid score, which the training loss
    uses for numerical stability (``BCEWithLogits`` equals BCE on ``forward``).
    """

    def __init__(
        self,
        dim: int = 300,
        hidden_dim: int = 2048,
        n_hidden_layers: int = 2,
        input_dropout: float = 0.1,
        dropout: float = 0.0,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Dropout(input_dropout)]
        width = dim
        for _ in range(n_hidden_layers):
            layers += [nn.Linear(width, hidden_dim), nn.LeakyReLU(negative_slope), nn.Dropout(dropout)]
            width = hidden_dim
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def logits(self, x: Tensor) -> Tensor:  # (B, d) -> (B,)
        return self.net(x).squeeze(-1)

    def forward(self, x: Tensor) -> Tensor:  # (B, d) -> (B,) probability of "source"
        return torch.sigmoid(self.logits(x))
