"""Worker of tests/ssl/test_distributed.py: one short BYOL run under 2-process DDP on the CPU (gloo).

Run as ``python tests/ssl/ddp_worker.py OUT_DIR SEED``; Lightning's launcher re-runs the same command for
rank 1. Every rank saves the views of its first training batch; rank 0 also saves the kNN accuracy the
monitor logged, the encoder after training and the validation data, for the test to recompute it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from lit_digest.core.lightning import Callback, Trainer, seed_everything
from lit_digest.core.optim import Optim
from lit_digest.ssl import BYOL, BYOLViews, KNNMonitor, SmallConvNet, SyntheticImageDataModule


class OneImage(SyntheticImageDataModule):
    """Every training image is the same image: views of it differ only by the augmentation's draws."""

    def arrays(self):
        train_x, train_y, test_x, test_y = super().arrays()
        return train_x[:1].repeat(len(train_x), 1, 1, 1), train_y, test_x, test_y


class Record(Callback):
    def __init__(self, out: Path) -> None:
        self.out, self.saved = out, False

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if not self.saved:
            torch.save([v.cpu() for v in batch[0]], self.out / f"views_rank{trainer.global_rank}.pt")
            self.saved = True

    def on_validation_end(self, trainer, module) -> None:
        if trainer.global_rank == 0 and not trainer.sanity_checking:
            dm = trainer.datamodule
            torch.save({"knn_acc": float(trainer.callback_metrics["val/knn_acc"]),
                        "encoder": module.backbone.state_dict(), "val": dm.splits.val, "bank": dm.knn_bank(),
                        "mean": dm.mean, "std": dm.std}, self.out / "knn.pt")


def main(out: Path, seed: int) -> None:
    torch.set_num_threads(1)
    seed_everything(seed, workers=True)
    # 7 validation images over 2 ranks: the DistributedSampler repeats one to give each rank 4
    data = OneImage(num_train=16, num_test=7, image_size=16, classes=3, batch_size=4, num_workers=0,
                    views=BYOLViews(crop_size=12))
    model = BYOL(SmallConvNet(width=4), num_classes=3, proj_hidden_dim=16, proj_dim=8, pred_hidden_dim=16,
                 optim=Optim(name="sgd", lr=0.05))
    trainer = Trainer(accelerator="cpu", strategy="ddp", devices=2, max_steps=2, num_sanity_val_steps=0,
                      logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      callbacks=[KNNMonitor(k=3), Record(out)], default_root_dir=out)
    trainer.fit(model, data)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
