"""Language models as plain nn.Modules."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["ByteLSTM"]


class ByteLSTM(nn.Module):
    """A small LSTM language model: ``(B, T)`` token ids to ``(B, T, vocab_size)`` next-token logits.

    The paper's Common Crawl language models are LSTMs (arXiv 1804.03235, Sec. 3); this is one at toy scale.

    Args:
        vocab_size: number of token values (256 for bytes).
        embed_dim: embedding size.
        hidden_dim: LSTM state size.
        num_layers: stacked LSTM layers.
    """

    def __init__(
        self, vocab_size: int = 256, embed_dim: int = 64, hidden_dim: int = 256, num_layers: int = 2
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_dim, num_layers=num_layers, batch_first=True)
        self.out = nn.Linear(hidden_dim, vocab_size)

    def forward(self, tokens: Tensor) -> Tensor:
        h, _ = self.lstm(self.embed(tokens))  # (B, T, hidden_dim)
        return self.out(h)  # (B, T, vocab_size)
