"""The two stages as a user runs them: stage 1 fits a scene (trained beats untrained); stage 2 trains only the
hypernetwork, leaves the geometry exactly as stage 1 left it, and lowers the style loss; predict writes frames,
an animation and 16-bit depth and says where; features, checkpoints and mistakes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lit_digest.core.download import MissingDataError
from lit_digest.core.lightning import Trainer
from lit_digest.core.optim import Optim
from lit_digest.core.outputs import ANNOUNCED
from lit_digest.nerf import NeRF, ProceduralSceneDataModule, RadianceField, RenderWriter, StyleNeRF
from lit_digest.nerf.data import view_batch
from lit_digest.nerf.features import load_style_features


def _field() -> RadianceField:
    return RadianceField(depth=2, width=32, skips=(0,), color_widths=(16,), coarse_samples=8, fine_samples=8,
                         background_samples=(4, 4))


def _data(**options) -> ProceduralSceneDataModule:
    options = {"num_train": 6, "num_val": 1, "num_test": 2, "image_size": 12, "supersample": 1,
               "rays_per_batch": 256, "batches_per_epoch": 50, "patch_size": 8, "style_size": 16,
               "path_frames": 3, **options}
    return ProceduralSceneDataModule(**options)


def _trainer(tmp_path, steps: int, **kwargs) -> Trainer:
    return Trainer(accelerator="cpu", max_steps=steps, max_epochs=-1, logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                   limit_val_batches=0, default_root_dir=tmp_path, **kwargs)


@pytest.fixture(scope="module")
def stage1(tmp_path_factory):
    """A tiny NeRF fitted for 80 steps, its checkpoint and its data."""
    folder = tmp_path_factory.mktemp("stage1")
    torch.manual_seed(0)
    data = _data()
    data.setup("fit")
    nerf = NeRF(_field(), optim=Optim(name="adam", lr=1e-2, schedule="constant"))
    untrained = _val_psnr(nerf, data)
    trainer = _trainer(folder, 80)
    trainer.fit(nerf, datamodule=data)
    trainer.save_checkpoint(folder / "nerf.ckpt")
    return nerf, folder / "nerf.ckpt", data, untrained


def _val_psnr(model, data) -> float:
    view = data.views.splits["val"][0]
    with torch.no_grad():
        out = model(view_batch(data.views, data.views.poses[view]))
    mse = (out["rgb"].view_as(data.views.images[view]) - data.views.images[view]).pow(2).mean()
    return float(-10 * torch.log10(mse))


def test_stage1_fits_the_scene_better_than_the_untrained_field(stage1):
    nerf, _, data, untrained = stage1
    assert _val_psnr(nerf, data) > untrained + 2


@pytest.mark.timeout(120)
def test_stage2_trains_the_hypernetwork_only_keeps_the_geometry_and_lowers_the_style_loss(stage1, tmp_path):
    nerf, checkpoint, _, _ = stage1
    from lit_digest.nerf.images import bundled_photos

    one_style = [str(p) for p in bundled_photos() if p.stem == "chelsea"]  # every step on the style evaluated
    data = _data(batches="patches", batches_per_epoch=40, eval_styles=1, style_images=one_style)
    data.setup("fit")
    torch.manual_seed(0)
    model = StyleNeRF(_field(), nerf_checkpoint=str(checkpoint), style_start_step=0)
    hyper_before = [p.detach().clone() for p in model.hyper.parameters()]
    style = data._eval_styles()[0][0]
    view = data.views.splits["val"][0]
    batch = view_batch(data.views, data.views.poses[view])

    def style_of_render() -> float:
        with torch.no_grad():
            image = model(batch, style)["rgb"].view(12, 12, 3).permute(2, 0, 1)[None]
            return float(model.losses(image, image, style[None])["style_loss"])

    before = style_of_render()
    _trainer(tmp_path, 40).fit(model, datamodule=data)
    for name, value in model.field.state_dict().items():  # the geometry (and every stage-1 weight) as it was
        assert torch.equal(value, nerf.field.state_dict()[name]), name
    assert any(not torch.equal(a, b) for a, b in zip(hyper_before, model.hyper.parameters()))
    with torch.no_grad():
        plain, stylised = model(batch), model(batch, style)
    torch.testing.assert_close(stylised["depth"], plain["depth"], atol=0, rtol=0)  # geometry untouched
    torch.testing.assert_close(plain["depth"], nerf(batch)["depth"], atol=0, rtol=0)
    assert style_of_render() < before


def test_the_style_term_waits_for_style_start_step(stage1):
    """Before ``style_start_step`` the loss is content + colour only (official: the first 2000 steps)."""
    _, checkpoint, _, _ = stage1
    data = _data(batches="patches")
    data.setup("fit")
    model = StyleNeRF(_field(), style_start_step=5)
    batch = next(iter(data.train_dataloader()))
    torch.manual_seed(1)
    loss = model.training_step(batch, 0)
    torch.manual_seed(1)
    params = model.style_params(batch["style"])
    out = model.field.render(batch["rays_o"], batch["rays_d"], batch["near"], batch["far"], perturb=True,
                             color_params=params, coarse_color=False)
    image = out["rgb"].view(1, 8, 8, 3).permute(0, 3, 1, 2)
    terms = model.losses(image, batch["rgb"].view(1, 8, 8, 3).permute(0, 3, 1, 2), batch["style"][None])
    torch.testing.assert_close(loss, terms["content_loss"] + terms["rgb_loss"])


def test_stage2_refuses_a_stage1_checkpoint_of_another_size_and_patchless_batches(stage1, tmp_path):
    _, checkpoint, _, _ = stage1
    wide = RadianceField(depth=2, width=48, skips=(0,), color_widths=(16,), coarse_samples=8, fine_samples=8,
                         background_samples=(4, 4))
    with pytest.raises(ValueError, match="another field than this StyleNeRF's"):
        _trainer(tmp_path, 1).fit(StyleNeRF(wide, nerf_checkpoint=str(checkpoint)), datamodule=_data(
            batches="patches"))
    with pytest.raises(ValueError, match="set data.init_args.batches patches"):
        _trainer(tmp_path, 1).fit(StyleNeRF(_field()), datamodule=_data())


def test_predict_writes_frames_an_animation_and_depth_and_says_where(stage1, tmp_path, capsys):
    nerf, _, _, _ = stage1
    data = _data(predict_views="path", path_frames=3)
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                      callbacks=[RenderWriter(output_dir=str(tmp_path / "render"))], default_root_dir=tmp_path)
    trainer.predict(nerf, datamodule=data, return_predictions=False)
    import imageio.v3 as iio

    announced = ANNOUNCED.search(capsys.readouterr().out)
    assert announced and announced.group(1) == "3" and announced.group(3).endswith("render.gif")
    frames = iio.imread(announced.group(3), index=None)
    assert frames.shape[0] == 3 and frames.shape[1:3] == (12, 12)
    depth = iio.imread(tmp_path / "render/depth/0000.png")
    assert depth.dtype == np.uint16 and depth.shape == (12, 12) and depth.max() > 0
    assert sorted(p.name for p in (tmp_path / "render/scene").iterdir()) == ["0000.png", "0001.png", "0002.png"]


def test_a_stylenerf_checkpoint_loads_alone_and_renders_the_same(stage1, tmp_path):
    _, checkpoint, data, _ = stage1
    model = StyleNeRF(_field(), nerf_checkpoint=str(checkpoint))
    trainer = _trainer(tmp_path, 1)
    trainer.fit(model, datamodule=_data(batches="patches"))
    trainer.save_checkpoint(tmp_path / "style.ckpt")
    loaded = StyleNeRF.load_from_checkpoint(tmp_path / "style.ckpt")
    batch = view_batch(data.views, data.views.poses[0])
    style = torch.rand(3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch, style)["rgb"], model(batch, style)["rgb"])
    with pytest.raises(ValueError, match="not a NeRF checkpoint"):  # stage 2's file given for stage 1
        NeRF.load_from_checkpoint(tmp_path / "style.ckpt")
    with pytest.raises(ValueError, match="not a NeRF checkpoint"):
        _trainer(tmp_path, 1).fit(StyleNeRF(_field(), nerf_checkpoint=str(tmp_path / "style.ckpt")),
                                  datamodule=_data(batches="patches"))


def test_the_shipped_feature_network_and_the_vgg16_path(tmp_path):
    net = load_style_features("trained")
    maps = net(torch.rand(2, 3, 32, 32))
    assert [m.shape[1] for m in maps] == list(net.channels) and [m.shape[-1] for m in maps] == [32, 16, 8, 4]
    shipped = torch.load(net_path(), weights_only=True)
    assert shipped["accuracy"] > 3 / len(shipped["photos"])  # it tells the photos apart far above chance
    with pytest.raises(MissingDataError, match="model.init_args.feature_weights.*download_vgg true.*features trained"):
        load_style_features("vgg16", tmp_path / "missing.pth")


def net_path():
    from lit_digest.nerf.features import SHIPPED_WEIGHTS

    return SHIPPED_WEIGHTS
