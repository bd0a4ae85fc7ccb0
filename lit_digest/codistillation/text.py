"""Byte-level language modelling on a plain text file, offline: the data and a small LSTM model.

Batches are ``(tokens, targets)``, both ``(B, T)`` int64, with ``targets`` the tokens shifted by one: the
next-byte prediction task. The vocabulary is the 256 byte values, so a model's output size never depends on
the file (``ByteLSTM(vocab_size=256)``, below).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from lit_digest.core.download import missing_data_error
from lit_digest.core.lightning import LightningDataModule

__all__ = ["ByteLSTM", "ByteTextDataModule", "TINY_SHAKESPEARE_URL"]

TINY_SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)


class _Windows(Dataset):
    """Non-overlapping windows of ``seq_len + 1`` bytes: ``(x, y) = (w[:-1], w[1:])``."""

    def __init__(self, data: Tensor, seq_len: int) -> None:
        self.data = data
        self.seq_len = seq_len

    def __len__(self) -> int:
        return (len(self.data) - 1) // self.seq_len

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        start = index * self.seq_len
        window = self.data[start : start + self.seq_len + 1]  # (T + 1,)
        return window[:-1], window[1:]


def _only(items: list[dict]) -> dict:
    return items[0]


class ByteTextDataModule(LightningDataModule):
    """Next-byte prediction on one text file; the last ``val_fraction`` of the file is the validation (and
    test) split.

    Args:
        path: a UTF-8 (or any) text file, e.g. tiny Shakespeare (``TINY_SHAKESPEARE_URL``, 1.1 MB).
        seq_len: T, bytes per training sequence.
        batch_size: per-device batch size.
        val_fraction: share of the file (at its end) held out.
        num_workers: DataLoader workers.
        prompts: texts ``predict`` continues (each group's model and the ensemble); ``None``: the first 32 bytes
            of the first 4 validation windows.
        predict_bytes: bytes ``predict`` adds to each prompt.
    """

    def __init__(
        self,
        path: str,
        seq_len: int = 128,
        batch_size: int = 64,
        val_fraction: float = 0.1,
        num_workers: int = 0,
        prompts: list[str] | None = None,
        predict_bytes: int = 200,
    ) -> None:
        super().__init__()
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        self.path = path
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.num_workers = num_workers
        self.prompts, self.predict_bytes = prompts, predict_bytes
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        path = Path(self.path)
        if not path.is_file():
            raise missing_data_error(
                "Text file", path, url=f"{TINY_SHAKESPEARE_URL} (tiny Shakespeare, for example)",
                fix=f"`curl -o {path} <url>`, or set data.init_args.path to any text file",
            )
        data = torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8).long()  # (L,)
        split = int(len(data) * (1.0 - self.val_fraction))
        train, val = data[:split], data[split:]
        if len(train) < 2 * self.seq_len + 1 or len(val) < self.seq_len + 1:
            raise ValueError(
                f"'{path}' has {len(data)} bytes: too short for seq_len={self.seq_len} with "
                f"val_fraction={self.val_fraction}; use a longer file or a smaller data.init_args.seq_len."
            )
        self.train_set, self.val_set = _Windows(train, self.seq_len), _Windows(val, self.seq_len)

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "call setup() first"
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=self.num_workers,
        )

    def val_dataloader(self) -> DataLoader:
        assert self.val_set is not None, "call setup() first"
        return DataLoader(
            self.val_set, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers
        )

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader:
        """One prompt a batch: ``{"prompt": [text], "tokens": (1, L), "new_bytes": n}``."""
        if self.prompts is not None:
            prompts = [p.encode("utf-8") for p in self.prompts]
        else:
            assert self.val_set is not None, "call setup() first"
            prompts = [bytes(self.val_set[i][0][:32].tolist()) for i in range(min(4, len(self.val_set)))]
        items = [{"prompt": [p.decode("utf-8", errors="replace")], "tokens": torch.tensor([list(p)], dtype=torch.long),
                  "new_bytes": self.predict_bytes} for p in prompts if p]
        if not items:
            raise ValueError("data.init_args.prompts holds no text: give at least one non-empty prompt")
        return DataLoader(items, batch_size=1, collate_fn=_only)


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

    def reset_parameters(self) -> None:
        """A new draw of the constructor's initialisation (PyTorch's defaults for every layer)."""
        for layer in (self.embed, self.lstm, self.out):
            layer.reset_parameters()
