"""AET on real images: a short run on the CIFAR-10 subset regresses the transformations far better than the best
constant guess, and its frozen block-2 features beat a random encoder's under the paper's non-linear classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lit_digest.core.lightning import Trainer, seed_everything
from lit_digest.core.optim import Optim
from lit_digest.ssl import NpzImageDataModule
from lit_digest.ssl.aet import AET, AffineTransformation, NetworkInNetwork, NonLinearHead, PadCropViews
from lit_digest.ssl.aet.compare import block_features, fit_head


def pooled_copy(path, out, size: int = 16) -> str:
    """The subset average-pooled to ``size`` px (4x less compute per image than 32 px), as an .npz."""
    with np.load(path) as data:
        arrays = dict(data)
    for key in ("train_images", "test_images"):
        x = torch.as_tensor(arrays[key]).float()
        arrays[key] = F.adaptive_avg_pool2d(x, size).round().to(torch.uint8).numpy()
    np.savez(out, **arrays)
    return str(out)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_short_aet_run_beats_the_mean_guess_and_a_random_encoder(cifar_subset, tmp_path):
    path = pooled_copy(cifar_subset, tmp_path / "cifar16.npz")
    data = NpzImageDataModule(path=path, batch_size=128, num_workers=0, views=PadCropViews(crop_size=16, padding=2),
                              knn_bank_size=0)
    data.setup()
    seed_everything(0)
    random_encoder = NetworkInNetwork(width=32)
    # the official ranges and targets; a short-budget optimiser (AdamW learnt more than SGD in a few CPU epochs)
    model = AET(NetworkInNetwork(width=32), AffineTransformation(),
                optim=Optim(name="adamw", lr=2e-3, weight_decay=1e-4, schedule="warmup_cosine"))
    model = model.to(memory_format=torch.channels_last)  # faster oneDNN convolutions on a CPU
    trainer = Trainer(accelerator="cpu", max_epochs=8, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                      default_root_dir=tmp_path)
    trainer.fit(model, data)

    test, train = data.splits.test, data.splits.pretrain
    model.eval()
    with torch.no_grad():  # one fixed transformation per held-out image
        x = data.prepare_images(test.images)
        t = model.transform(x, torch.Generator().manual_seed(0))
        squared = (model.predict_transformation(x, t.images) - t.target) ** 2  # (N, 6)
    mean_guess = t.target.var(dim=0, correction=0)  # the best constant prediction, per parameter
    # measured here: MSE 0.271 vs 0.393 (translations 0.096 / 0.076 vs 0.353 / 0.350)
    assert squared.mean() < 0.8 * mean_guess.mean(), (squared.mean(0), mean_guess)
    assert (squared.mean(0)[2:4] < 0.5 * mean_guess[2:4]).all(), (squared.mean(0), mean_guess)

    scores = {}
    for name, encoder in [("aet", model.backbone), ("random", random_encoder)]:
        maps_train = block_features(encoder, train.images, data.prepare_images)
        maps_test = block_features(encoder, test.images, data.prepare_images)
        torch.manual_seed(0)
        scores[name] = fit_head(NonLinearHead(tuple(maps_train.shape[1:]), 10), maps_train, train.labels, maps_test,
                                test.labels, epochs=10)
    # measured here: 0.448 vs 0.404 (5085 training / 1017 test images at 16 px)
    assert scores["aet"] > scores["random"] + 0.02, scores
