"""The two LightningModules in a Trainer: the estimator learns, the merge system trains only its own networks with
the paper's optimisers, loads a trained estimator, evaluates low / high / merged / boosted, and writes 16-bit PNGs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lit_digest.core.download import MissingDataError
from lit_digest.core.lightning import seed_everything
from lit_digest.depth import DepthEstimation, DepthMerge, DepthPanels, DepthPNGWriter, ProceduralRGBDDataModule
from lit_digest.depth.losses import ssi_trimmed_mae
from lit_digest.depth.nets import SmallDepthNet


def tiny_data(tmp_path, **kwargs) -> ProceduralRGBDDataModule:
    options = dict(num_train=8, num_val=2, num_test=2, image_size=32, antialias=1, batch_size=4, cache_dir=None)
    return ProceduralRGBDDataModule(**{**options, **kwargs})


def tiny_merge(estimator=None, **kwargs) -> DepthMerge:
    options = dict(receptive_field=16, merge_size=32, num_downs=5, ngf=4, ndf=4, max_size=64, multiple_of=4)
    return DepthMerge(estimator or SmallDepthNet(4), **{**options, **kwargs})


def test_the_estimator_learns_on_procedural_scenes(quiet_trainer, tmp_path):
    seed_everything(0)
    data = tiny_data(tmp_path)
    data.setup("fit")
    images, depths = next(iter(torch.utils.data.DataLoader(data.splits["train"], batch_size=8)))
    system = DepthEstimation(SmallDepthNet(8), train_size=32, eval_sizes=(16, 32))

    def loss() -> float:
        with torch.no_grad():
            return float(ssi_trimmed_mae(system.net(images), depths))

    before = loss()
    trainer = quiet_trainer(max_steps=60, limit_val_batches=1)
    trainer.fit(system, datamodule=data)
    assert loss() < 0.75 * before
    assert {"val/rmse@16", "val/f1@32", "train/loss"} <= set(trainer.callback_metrics)


def test_receptive_field_comes_from_the_shapes_tool_and_bad_sizes_are_refused():
    assert DepthMerge(SmallDepthNet(4), merge_size=32, num_downs=5, multiple_of=4).settings.receptive_field == 48
    with pytest.raises(ValueError, match="multiple of 2 \\*\\* num_downs"):
        tiny_merge(merge_size=40)
    with pytest.raises(ValueError, match="receptive_field"):
        DepthMerge(torch.nn.Sequential(torch.nn.Conv2d(3, 1, 3), torch.nn.Flatten()), merge_size=32, num_downs=5)


def test_training_pairs_and_a_gan_step_touch_only_the_merge_networks(quiet_trainer, tmp_path):
    seed_everything(1)
    system = tiny_merge(reference="depth")
    data = tiny_data(tmp_path)
    data.setup("fit")
    image, depth = next(iter(data.train_dataloader()))
    x, y = system.training_pairs(image, depth)
    assert x.shape == (4, 2, 32, 32) and y.shape == (4, 1, 32, 32)
    assert x.amin((2, 3)).eq(-1).all() and x.amax((2, 3)).eq(1).all() and y.amin((2, 3)).eq(-1).all()
    before = {k: v.clone() for k, v in system.state_dict().items()}
    trainer = quiet_trainer(max_steps=4, limit_val_batches=0)
    trainer.fit(system, datamodule=data)
    after = system.state_dict()
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"generator", "discriminator"}  # the estimator is frozen
    opt_g, opt_d = trainer.optimizers
    assert opt_g.defaults["betas"] == (0.5, 0.999) and opt_d.defaults["betas"] == (0.5, 0.999)
    assert opt_g.param_groups[0]["initial_lr"] == 1e-4 and opt_d.param_groups[0]["initial_lr"] == 2e-6
    # max_steps 4 = 2 batches of a D and a G step; the second half decays linearly: 1 - 1 / 2 after batch 2
    assert trainer.global_step == 4
    assert opt_g.param_groups[0]["lr"] == pytest.approx(0.5e-4) and opt_d.param_groups[0]["lr"] == pytest.approx(1e-6)
    assert {"train/loss_d", "train/loss_g_gan", "train/loss_g_l1"} <= set(trainer.callback_metrics)


def test_a_trained_estimator_is_loaded_from_its_checkpoint(quiet_trainer, tmp_path):
    seed_everything(2)
    estimator = DepthEstimation(SmallDepthNet(4), train_size=32, eval_sizes=(32,))
    trainer = quiet_trainer(max_steps=2, limit_val_batches=0)
    trainer.fit(estimator, datamodule=tiny_data(tmp_path))
    trainer.save_checkpoint(tmp_path / "estimator.ckpt")
    system = tiny_merge(estimator_checkpoint=str(tmp_path / "estimator.ckpt"))
    system.setup("fit")
    for name, value in estimator.net.state_dict().items():
        assert torch.equal(system.estimator.state_dict()[name], value)
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        tiny_merge(estimator_checkpoint=str(tmp_path / "missing.ckpt")).setup("fit")


def test_validation_test_and_predict(quiet_trainer, tmp_path):
    seed_everything(3)
    system = tiny_merge()
    data = tiny_data(tmp_path, predict_dir=str(tmp_path / "photos"))
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=1, callbacks=[DepthPanels()])
    trainer.fit(system, datamodule=data)
    metrics = set(trainer.callback_metrics)
    assert {f"val/{m}_{k}" for m in ("rmse", "f1") for k in ("low", "high", "merged")} <= metrics
    trainer.test(system, datamodule=data)
    assert "test/rmse_boosted" in trainer.callback_metrics
    assert list((tmp_path / "depth_panels").glob("test_epoch*.png"))
    (tmp_path / "photos" / "sub").mkdir(parents=True)
    for name, (h, w) in {"a.png": (40, 56), "sub/b.jpg": (48, 36)}.items():
        pixels = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / "photos" / name)
    writer = DepthPNGWriter(str(tmp_path / "out"))
    quiet_trainer(callbacks=[writer]).predict(system, datamodule=data, return_predictions=False)
    for name, (h, w) in {"a.png": (40, 56), "sub/b.png": (48, 36)}.items():
        with Image.open(tmp_path / "out" / name) as img:
            array = np.array(img)
        assert img.mode == "I;16" and array.shape == (h, w) and array.min() == 0 and array.max() == 65535


def test_missing_data_is_a_clear_error(tmp_path):
    data = tiny_data(tmp_path, predict_dir=str(tmp_path / "nowhere"))
    with pytest.raises(MissingDataError, match="nowhere.*predict_dir"):
        data.predict_dataloader()
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingDataError, match="has none"):
        tiny_data(tmp_path, predict_dir=str(tmp_path / "empty")).predict_dataloader()


def test_predict_without_a_folder_writes_the_test_scenes_depth_and_says_where(quiet_trainer, tmp_path, capsys):
    """Before: ``predict`` needed ``predict_dir`` and wrote its PNGs without saying where."""
    from lit_digest.core.outputs import ANNOUNCED

    data = tiny_data(tmp_path, num_test=3)
    estimator = DepthEstimation(SmallDepthNet(4), train_size=32, eval_sizes=(32,))
    quiet_trainer(callbacks=[DepthPNGWriter()]).predict(estimator, datamodule=data, return_predictions=False)
    (count, unit, where), = ANNOUNCED.findall(capsys.readouterr().out)
    assert (int(count), unit, where) == (3, "depth maps", str(tmp_path / "depth"))
    for i in range(3):
        with Image.open(tmp_path / "depth" / "test" / f"{i:04d}.png") as img:
            assert img.mode == "I;16" and img.size == (32, 32)


def test_a_corrupt_image_to_predict_is_named_at_once(tmp_path):
    (tmp_path / "photos").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "photos" / "a.png")
    (tmp_path / "photos" / "b.jpg").write_bytes(b"\xff\xd8 cut short")
    with pytest.raises(ValueError, match=r"b\.jpg' is not a readable image"):
        tiny_data(tmp_path, predict_dir=str(tmp_path / "photos")).predict_dataloader()
    from lit_digest.depth.io import read_image

    with pytest.raises(ValueError, match=r"b\.jpg' is not a readable image .*remove or replace"):
        read_image(tmp_path / "photos" / "b.jpg")


@pytest.mark.parametrize("name", ["DepthMerge", "DepthEstimation"])
def test_checkpoints_with_an_injected_network_load_with_load_from_checkpoint_alone(name, tmp_path, quiet_trainer):
    """Before: a ``DepthMerge`` built in Python needed ``load_from_checkpoint(path, weights_only=False)``."""
    model = tiny_merge() if name == "DepthMerge" else DepthEstimation(SmallDepthNet(4), train_size=32)
    trainer = quiet_trainer()
    trainer.strategy.connect(model)
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    loaded = type(model).load_from_checkpoint(tmp_path / "model.ckpt")
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
