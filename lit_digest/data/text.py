"""Byte-level language modelling on a plain text file, offline.

Batches are ``(tokens, targets)``, both ``(B, T)`` int64, with ``targets`` the tokens shifted by one: the
next-byte prediction task. The vocabulary is the 256 byte values, so a model's output size never depends on
the file (``lit_digest.nn.ByteLSTM(vocab_size=256)``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

__all__ = ["ByteTextDataModule", "TINY_SHAKESPEARE_URL"]

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


class ByteTextDataModule(LightningDataModule):
    """Next-byte prediction on one text file; the last ``val_fraction`` of the file is the validation (and
    test) split.

    Args:
        path: a UTF-8 (or any) text file, e.g. tiny Shakespeare (``TINY_SHAKESPEARE_URL``, 1.1 MB).
        seq_len: T, bytes per training sequence.
        batch_size: per-device batch size.
        val_fraction: share of the file (at its end) held out.
        num_workers: DataLoader workers.
    """

    def __init__(
        self,
        path: str,
        seq_len: int = 128,
        batch_size: int = 64,
        val_fraction: float = 0.1,
        num_workers: int = 0,
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
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        path = Path(self.path)
        if not path.is_file():
            raise FileNotFoundError(
                f"No text file at '{path.resolve()}'. Download one, e.g. tiny Shakespeare: "
                f"`curl -o {path} {TINY_SHAKESPEARE_URL}`, or set data.init_args.path to any text file."
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
