"""BYOL on real images: a short run on the CIFAR-10 subset beats the same encoder at random init."""

import pytest
from lightning.pytorch import Trainer, seed_everything

from lit_digest import BYOL, BYOLViews, NpzImageDataModule, SmallConvNet
from lit_digest.callbacks import EncoderReport


@pytest.mark.slow
def test_short_byol_run_beats_a_random_encoder_on_knn(cifar_subset, tmp_path):
    seed_everything(0)
    data = NpzImageDataModule(path=str(cifar_subset), batch_size=128, num_workers=0,
                              views=BYOLViews(crop_size=32, min_scale=0.2), knn_bank_size=0)
    model = BYOL(backbone=SmallConvNet(in_channels=3, width=16), num_classes=10, proj_hidden_dim=512, proj_dim=128,
                 pred_hidden_dim=512, optimizer="adamw", lr=2e-3, weight_decay=1e-4, warmup_epochs=0)
    report = EncoderReport(k=20, probe_steps=200)
    trainer = Trainer(accelerator="cpu", max_epochs=8, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, callbacks=[report],
                      default_root_dir=tmp_path)
    trainer.fit(model, data)
    r = report.results
    # measured on this machine: kNN 0.342 vs 0.307, linear 0.417 vs 0.393 (5085 train / 1017 test images)
    assert r["trained/knn_acc"] > r["random/knn_acc"] + 0.02, r
    assert r["trained/linear_acc"] > r["random/linear_acc"], r
