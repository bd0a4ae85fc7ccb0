"""VGG-16 for the perceptual and style losses: torchvision's weights when present, a clear stop when absent,
and a switch that turns both terms off."""

from __future__ import annotations

import pytest
import torch
import torchvision

from lit_digest.core.download import MissingDataError
from lit_digest.core.vgg import VGG16_URL, default_vgg16_path, load_vgg16_features
from lit_digest.gan import SCFEGAN, SCFEGANGenerator, SNPatchGAN, SyntheticFaceDataModule


def _random_vgg16_features_file(path):
    """A randomly initialised torchvision VGG-16's feature weights, under torchvision's key names."""
    torch.manual_seed(0)
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    return features


def test_absent_weights_stop_with_path_url_and_fixes(tmp_path):
    missing = tmp_path / "nowhere" / "vgg16-397923af.pth"
    with pytest.raises(MissingDataError) as err:
        load_vgg16_features(missing)
    message = str(err.value)
    assert str(missing) in message and VGG16_URL in message
    assert "perceptual_style false" in message and "download_vgg true" in message and "vgg_weights" in message


def test_weights_in_torchvisions_cache_are_found_and_give_vgg16_pool_features(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert default_vgg16_path() == tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth"
    reference = _random_vgg16_features_file(default_vgg16_path()).eval()
    # the file is where torchvision's own loader looks (no download happens)
    state = torchvision.models.VGG16_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
    assert torch.equal(state["features.0.weight"], reference[0].weight)
    vgg = load_vgg16_features()  # torchvision's cache by default
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    feats = vgg(images)
    x = ((images + 1) / 2 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = [reference[:5](x), reference[:10](x), reference[:17](x)]  # pool1, pool2, pool3
    assert [f.shape for f in feats] == [(2, 64, 16, 16), (2, 128, 8, 8), (2, 256, 4, 4)]
    for f, e in zip(feats, expected):
        torch.testing.assert_close(f, e)
    assert not any(p.requires_grad for p in vgg.parameters())


def _small_scfegan(**kwargs) -> SCFEGAN:
    return SCFEGAN(SCFEGANGenerator(widths=(8, 16, 16), kernels=(5, 3, 3), dilations=(2,)),
                   SNPatchGAN(in_channels=8, widths=(8, 16), kernel_size=3), **kwargs)


def test_fit_stops_clearly_without_weights_unless_the_terms_are_off(tmp_path, quiet_trainer):
    data = SyntheticFaceDataModule(num_train=4, num_val=2, image_size=32, batch_size=2, bilateral_iterations=1)
    model = _small_scfegan(vgg_weights=str(tmp_path / "absent.pth"))
    with pytest.raises(MissingDataError, match="perceptual_style false"):
        quiet_trainer(max_steps=2, limit_val_batches=0).fit(model, data)
    off = _small_scfegan(perceptual_style=False, vgg_weights=str(tmp_path / "absent.pth"))
    trainer = quiet_trainer(max_steps=2, limit_val_batches=0)
    trainer.fit(off, data)
    assert trainer.global_step == 2 and "train/g_perceptual" not in trainer.callback_metrics


def test_fit_with_weights_trains_on_perceptual_and_style_and_keeps_vgg_out_of_checkpoints(tmp_path, quiet_trainer):
    path = tmp_path / "vgg16.pth"
    _random_vgg16_features_file(path)
    data = SyntheticFaceDataModule(num_train=4, num_val=2, image_size=32, batch_size=2, bilateral_iterations=1)
    model = _small_scfegan(vgg_weights=str(path))
    trainer = quiet_trainer(max_steps=2, limit_val_batches=0)
    trainer.fit(model, data)
    metrics = trainer.callback_metrics
    assert metrics["train/g_perceptual"] > 0 and metrics["train/g_style"] > 0
    assert torch.isfinite(metrics["train/g_loss"])
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    state = torch.load(tmp_path / "last.ckpt", weights_only=False)["state_dict"]
    assert state and not any("vgg" in k or k.startswith("features") for k in state)
    restored = SCFEGAN.load_from_checkpoint(tmp_path / "last.ckpt", weights_only=False)  # editing needs no VGG
    assert restored.vgg is None
