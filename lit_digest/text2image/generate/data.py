"""Prompts for VQGAN+CLIP as a DataModule: a batch of prompts is generated at once, each with its own seed."""

from __future__ import annotations

from torch.utils.data import DataLoader, Dataset

from lit_digest.core.lightning import LightningDataModule
from lit_digest.text2image.generate.prompts import parse_prompts

__all__ = ["PromptDataModule"]


class _Prompts(Dataset):
    def __init__(self, prompts: list[str], seeds: list[int]) -> None:
        self.prompts, self.seeds = prompts, seeds

    def __len__(self) -> int:
        return len(self.prompts)

    def __getitem__(self, i: int) -> dict:
        return {"prompt": self.prompts[i], "seed": self.seeds[i], "index": i}


class PromptDataModule(LightningDataModule):
    """The prompts to generate (the notebooks' syntax, ``"a red circle | blue background:0.5 | text:-1"``), checked
    when the DataModule is built. The same prompt and seed give the same image, whatever else is in its batch.

    Args:
        prompts: one string per image.
        seeds: one per prompt; None: ``seed + i`` for the i-th prompt.
        seed: the first seed when ``seeds`` is None.
        batch_size: prompts optimised together.
    """

    def __init__(self, prompts: list[str] = ("a large red circle in the centre, black background",),
                 seeds: list[int] | None = None, seed: int = 0, batch_size: int = 4) -> None:
        super().__init__()
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts:
            raise ValueError("PromptDataModule needs at least one prompt (data.init_args.prompts)")
        for p in prompts:
            parse_prompts(p)
        if seeds is not None and len(seeds) != len(prompts):
            raise ValueError(f"PromptDataModule got {len(seeds)} seeds for {len(prompts)} prompts: give one seed per "
                             "prompt, or none (data.init_args.seed counts up from there)")
        if batch_size < 1:
            raise ValueError(f"PromptDataModule batch_size must be >= 1, got {batch_size}")
        self.prompts = prompts
        self.seeds = list(seeds) if seeds is not None else [seed + i for i in range(len(prompts))]
        self.batch_size = batch_size

    def _loader(self) -> DataLoader:
        return DataLoader(_Prompts(self.prompts, self.seeds), batch_size=self.batch_size, shuffle=False)

    def train_dataloader(self) -> DataLoader:
        return self._loader()

    def val_dataloader(self) -> DataLoader:
        return self._loader()

    def predict_dataloader(self) -> DataLoader:
        return self._loader()
