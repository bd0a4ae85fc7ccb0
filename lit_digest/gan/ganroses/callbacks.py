"""GANs N' Roses' panels during training: after each validation, the same held-out images translated in a reference
style and in random styles, and back (the official ``train.py`` ``test()`` grid, fewer columns), saved in the run
folder and logged to W&B."""

from __future__ import annotations

import torch
import torchvision

from lit_digest.core.callbacks import run_dir
from lit_digest.core.lightning import Callback, LightningModule, Trainer, pl

__all__ = ["TranslationPanels", "PANEL_COLUMNS", "translation_panel"]

PANEL_COLUMNS = ("input", "reference style", "random style 1", "random style 2", "random style 3", "back")


@torch.no_grad()
def translation_panel(module: LightningModule, images: torch.Tensor, references: torch.Tensor, styles: torch.Tensor,
                      direction: str) -> torch.Tensor:
    """One row per image, the columns of ``PANEL_COLUMNS``: ``(3 or 1, H', W')`` in [0, 1]. ``references``: one
    target-domain image per row (its style is the row's reference style); ``styles``: 3 random codes; "back" is the
    first random translation returned with the input's own style."""
    there = module.generator(direction)
    back = module.generator("b2a" if direction == "a2b" else "a2b")
    content, own = there.encode(images)
    columns = [images, there.decode(content, module.reference_styles(references, direction))]
    columns += [there.decode(content, s[None].expand(len(images), -1)) for s in styles]
    columns.append(back.decode(back.encode(columns[2])[0], own))
    rows = torch.stack([c.clamp(-1, 1) for c in columns], 1)  # (B, 6, C, S, S)
    return torchvision.utils.make_grid((rows.flatten(0, 1) + 1) / 2, nrow=rows.shape[1], padding=2)


class TranslationPanels(Callback):
    """After each validation: ``panels/epoch=N_a2b.png`` and ``..._b2a.png`` in the run folder for the first
    ``num_images`` held-out images of each domain (the same images and random styles every time; the other
    domain's image of the same row gives the reference style), logged to W&B as ``val/panels_a2b`` and
    ``val/panels_b2a``."""

    def __init__(self, num_images: int = 4, seed: int = 0) -> None:
        self.num_images, self.seed = num_images, seed
        self.batch: dict[str, torch.Tensor] | None = None

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        if batch_idx == 0 and dataloader_idx == 0 and isinstance(batch, dict):
            self.batch = {k: v[: self.num_images].detach() for k, v in batch.items()}

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        folder = run_dir(trainer) / "panels"
        if trainer.sanity_checking or self.batch is None or not trainer.is_global_zero:
            return
        folder.mkdir(parents=True, exist_ok=True)
        g = torch.Generator().manual_seed(self.seed)
        styles = torch.randn(3, pl_module.hparams.latent_dim, generator=g).to(pl_module.device)
        for direction, source, target in (("a2b", "A", "B"), ("b2a", "B", "A")):
            grid = translation_panel(pl_module, self.batch[source], self.batch[target], styles, direction)
            torchvision.utils.save_image(grid, folder / f"epoch={trainer.current_epoch}_{direction}.png")
            for logger in trainer.loggers:
                if isinstance(logger, pl.loggers.WandbLogger):
                    logger.log_image(key=f"val/panels_{direction}", images=[grid],
                                     caption=[" | ".join(PANEL_COLUMNS)], step=trainer.global_step)
