"""Offline evaluation: checkpoint loading (and its errors), the frozen linear probe, kNN, and the
ranking of briefly trained SimCLR / SupCon / supervised encoders on the CIFAR-10 subset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lit_digest.core.checkpoints import CheckpointMismatchError, load_encoder_weights
from lit_digest.core.lightning import Trainer, seed_everything
from lit_digest.core.optim import Optim
from lit_digest.ssl import (
    KNNEval,
    LinearEval,
    NpzImageDataModule,
    ResNet,
    SimCLR,
    SimCLRViews,
    SmallConvNet,
    SupCon,
    Supervised,
    SupervisedViews,
    SyntheticImageDataModule,
)
from lit_digest.ssl.knn import extract_features, knn_accuracy
from tests.helpers import CIFAR_SUBSET, print_measured


def quiet_trainer(tmp_path, **kw) -> Trainer:
    args = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                num_sanity_val_steps=0)
    args.update(kw)
    return Trainer(**args)


# -- checkpoint loading ---------------------------------------------------------------------------


def test_plain_state_dict_and_lightning_checkpoint_both_load(tmp_path):
    seed_everything(0)
    source = SimCLR(backbone=SmallConvNet(width=4), num_classes=4, proj_hidden_dim=16, proj_dim=8)
    x = torch.randn(3, 3, 16, 16)
    source.eval()
    want = source(x)
    plain = tmp_path / "encoder.pt"
    torch.save(source.backbone.state_dict(), plain)
    trainer = quiet_trainer(tmp_path, max_steps=0)
    trainer.strategy.connect(source)
    ckpt = tmp_path / "simclr.ckpt"
    trainer.save_checkpoint(ckpt)
    for path in (plain, ckpt):
        encoder = SmallConvNet(width=4).eval()
        names = load_encoder_weights(encoder, path)
        assert not any("projector" in n or "probe" in n for n in names)
        torch.testing.assert_close(encoder(x), want)


def test_bad_checkpoints_are_clear_errors_naming_the_keys(tmp_path):
    good = SmallConvNet(width=4).state_dict()
    partial = {k: v for k, v in good.items() if k != "features.3.weight"}
    torch.save(partial, tmp_path / "partial.pt")
    with pytest.raises(CheckpointMismatchError, match=r"missing keys: features\.3\.weight"):
        load_encoder_weights(SmallConvNet(width=4), tmp_path / "partial.pt")
    torch.save(SmallConvNet(width=8).state_dict(), tmp_path / "wider.pt")
    shape = r"shape mismatches: features\.0\.weight: checkpoint \(8, 3, 3, 3\) vs encoder \(4, 3, 3, 3\)"
    with pytest.raises(CheckpointMismatchError, match=shape):
        load_encoder_weights(SmallConvNet(width=4), tmp_path / "wider.pt")
    # an encoder of another architecture: LinearEval fails at construction, before any data
    keys = r"missing keys: net\.bn1\.bias.*unexpected keys: features\."
    with pytest.raises(CheckpointMismatchError, match=keys):
        LinearEval(backbone=ResNet(depth=18, cifar_stem=True), checkpoint=str(tmp_path / "wider.pt"))
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="Could not read checkpoint .*junk.ckpt"):
        KNNEval(backbone=SmallConvNet(width=4), checkpoint=str(tmp_path / "junk.ckpt"))
    with pytest.raises(FileNotFoundError, match="No checkpoint at .*missing.ckpt"):
        KNNEval(backbone=SmallConvNet(width=4), checkpoint=str(tmp_path / "missing.ckpt"))


def test_linear_eval_trains_only_the_classifier_and_keeps_batchnorm_frozen(tmp_path):
    seed_everything(0)
    model = LinearEval(backbone=SmallConvNet(width=4), num_classes=4, optim=Optim(lr=0.5, schedule="step",
                                                                                      milestones=(60, 80)))
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    head = model.classifier.weight.detach().clone()
    data = SyntheticImageDataModule(num_train=32, num_test=16, image_size=16, classes=4, batch_size=8,
                                    num_workers=0, views=SupervisedViews(crop_size=16), knn_bank_size=0)
    quiet_trainer(tmp_path, max_epochs=2).fit(model, data)
    for k, v in model.backbone.state_dict().items():  # weights *and* BatchNorm running statistics
        torch.testing.assert_close(v, before[k], atol=0, rtol=0, msg=k)
    assert not torch.equal(model.classifier.weight, head)
    assert model.backbone.training is False


@pytest.mark.parametrize("entry", ["fit", "validate"])
def test_knn_eval_equals_the_direct_knn_vote_under_fit_and_validate(entry, tmp_path):
    seed_everything(0)
    data = SyntheticImageDataModule(num_train=48, num_test=24, image_size=16, classes=4, batch_size=16,
                                    num_workers=0)
    model = KNNEval(backbone=SmallConvNet(width=4), ks=(3, 20))
    trainer = quiet_trainer(tmp_path, max_epochs=1, limit_train_batches=1)
    getattr(trainer, entry)(model, data)
    assert set(trainer.callback_metrics) >= {"val/knn_acc_k3", "val/knn_acc_k20"}
    bank, bank_y = extract_features(model.backbone, data.val_dataloader()[1], "cpu", data.prepare_images)
    query, query_y = extract_features(model.backbone, data.val_dataloader()[0], "cpu", data.prepare_images)
    for k in (3, 20):
        want = knn_accuracy(query, query_y, bank, bank_y, 4, k=k, temperature=0.1)
        assert model.results[f"val/knn_acc_k{k}"] == pytest.approx(want)
        assert float(trainer.callback_metrics[f"val/knn_acc_k{k}"]) == pytest.approx(want)


# -- the three methods on real images ------------------------------------------------------------

EPOCHS = 8  # pretraining, at 16 px: about 25 s per method on one CPU core
LINEAR_EPOCHS = 10


@pytest.fixture(scope="module")
def small_cifar(tmp_path_factory) -> Path:
    """2000 training / 1000 test images of the CIFAR-10 subset, average-pooled to 16x16 (4x cheaper)."""
    src = CIFAR_SUBSET
    if not src.is_file():
        pytest.skip(f"real-data test: {src} is absent on this machine")

    def shrink(images: np.ndarray) -> np.ndarray:
        x = torch.nn.functional.avg_pool2d(torch.as_tensor(images).float(), 2)  # (N, 3, 16, 16)
        return x.round().to(torch.uint8).numpy()

    with np.load(src) as npz:
        arrays = {"train_images": shrink(npz["train_images"][:2000]),
                  "train_labels": npz["train_labels"][:2000],
                  "test_images": shrink(npz["test_images"][:1000]),
                  "test_labels": npz["test_labels"][:1000]}
    path = tmp_path_factory.mktemp("cifar") / "cifar10_small16.npz"
    np.savez(path, **arrays)
    return path


def _pretrain(cls, path: Path, tmp_path: Path) -> Path:
    """A brief run of ``cls`` with the same encoder, views, optimiser and schedule for every method."""
    seed_everything(0)
    kw = {} if cls is Supervised else dict(proj_hidden_dim=256, proj_dim=64, temperature=0.2)
    model = cls(backbone=SmallConvNet(in_channels=3, width=16), num_classes=10,
                optim=Optim(name="adamw", lr=2e-3, weight_decay=1e-4), **kw)
    # colour jitter of strength 0.5 and no blur: weaker views learn faster on 16 px images in a few epochs
    views = SimCLRViews(crop_size=16, n_views=2, min_scale=0.2, brightness=0.4, contrast=0.4, saturation=0.4,
                        hue=0.1, blur_p=0.0)
    data = NpzImageDataModule(path=str(path), batch_size=64, num_workers=0, knn_bank_size=0, views=views)
    trainer = quiet_trainer(tmp_path, max_epochs=EPOCHS, limit_val_batches=0)
    trainer.fit(model, data)
    ckpt = tmp_path / f"{cls.__name__}.ckpt"
    trainer.save_checkpoint(ckpt)
    return ckpt


def _evaluate(checkpoint: Path | None, path: Path, tmp_path: Path) -> dict[str, float]:
    """kNN (k=20) and linear accuracy on the test images, through KNNEval / LinearEval."""
    seed_everything(0)
    ckpt = str(checkpoint) if checkpoint is not None else None
    knn = KNNEval(backbone=SmallConvNet(in_channels=3, width=16), checkpoint=ckpt, ks=(20,))
    quiet_trainer(tmp_path).validate(knn, NpzImageDataModule(path=str(path), batch_size=500, num_workers=0))
    linear = LinearEval(backbone=SmallConvNet(in_channels=3, width=16), checkpoint=ckpt, num_classes=10,
                        optim=Optim(lr=0.1), batchnorm_features=True)
    data = NpzImageDataModule(path=str(path), batch_size=64, num_workers=0, knn_bank_size=0,
                              views=SupervisedViews(crop_size=16, min_scale=0.5))
    trainer = quiet_trainer(tmp_path, max_epochs=LINEAR_EPOCHS, limit_val_batches=0)
    trainer.fit(linear, data)
    (val,) = quiet_trainer(tmp_path).validate(linear, data)
    return {"knn": knn.results["val/knn_acc_k20"], "linear": val["val/acc"]}


@pytest.mark.slow
@pytest.mark.measured  # a README row: `make measured` runs it and compares its numbers
def test_trained_encoders_beat_a_random_one_and_supervised_is_best(small_cifar, tmp_path):
    torch.set_num_threads(1)
    scores = {"random": _evaluate(None, small_cifar, tmp_path)}
    for cls in (SimCLR, SupCon, Supervised):
        scores[cls.__name__] = _evaluate(_pretrain(cls, small_cifar, tmp_path), small_cifar, tmp_path)
    print_measured("ssl-eval-cifar-subset", {f"{name.lower()}_{m}": 100 * v for name, s in scores.items()
                                             for m, v in s.items()})
    for metric in ("knn", "linear"):
        for name in ("SimCLR", "SupCon", "Supervised"):
            assert scores[name][metric] > scores["random"][metric] + 0.02, (name, metric, scores)
        best = max(scores, key=lambda name: scores[name][metric])
        assert best == "Supervised", (metric, scores)
