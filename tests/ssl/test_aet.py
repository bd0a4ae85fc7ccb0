"""AET, AED, the NIN encoder and the paper's classifiers: architecture as the official code, gradients reach only
what they should, the official schedule, checkpoints of AET feed the classifiers, clear errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lit_digest.core.optim import lr_factor
from lit_digest.ssl import ResNet, SyntheticImageDataModule
from lit_digest.ssl.aet import (
    AED,
    AET,
    OFFICIAL_OPTIM,
    AffineTransformation,
    BlockClassifier,
    ConvBlockHead,
    NetworkInNetwork,
    NonLinearHead,
    PadCropViews,
    ProjectiveTransformation,
)


def official_nin_parameter_count(blocks: int = 4) -> int:
    """The official NIN (cifar/*/NetworkInNetwork.py, 4 stages, no pooling after block 3) counted by hand:
    bias-free convolutions and BatchNorms (2 parameters per channel)."""
    def conv_bn(c_in, c_out, k):
        return c_in * c_out * k * k + 2 * c_out

    count = conv_bn(3, 192, 5) + conv_bn(192, 160, 1) + conv_bn(160, 96, 1)
    count += conv_bn(96, 192, 5) + 2 * conv_bn(192, 192, 1)
    count += (blocks - 2) * (conv_bn(192, 192, 3) + 2 * conv_bn(192, 192, 1))
    return count


def test_nin_is_the_official_architecture():
    nin = NetworkInNetwork()
    assert sum(p.numel() for p in nin.parameters()) == official_nin_parameter_count()
    x = torch.randn(2, 3, 32, 32)
    for block, shape in [(1, (96, 16, 16)), (2, (192, 8, 8)), (3, (192, 8, 8)), (4, (192, 8, 8))]:
        assert nin.feature_maps(x, block).shape[1:] == shape == nin.block_shape(block, 32)
    assert nin(x).shape == (2, 192) and nin.num_features == 192
    pooled = NetworkInNetwork(feature_block=2)
    pooled.load_state_dict(nin.state_dict())  # same weights, features pooled from block 2
    torch.testing.assert_close(pooled.eval()(x), nin.eval().feature_maps(x, 2).mean((2, 3)))
    assert NetworkInNetwork(pool_after_block3=True).block_shape(4, 32) == (192, 4, 4)
    with pytest.raises(ValueError, match="num_blocks >= 3"):
        NetworkInNetwork(num_blocks=2)


def test_the_default_schedule_is_the_official_multi_step():
    # cifar/*/main.py: lr 0.1, x0.2 at epochs 240, 480, 640 and 800 (0.02, 0.004, 8e-4, 1.6e-4)
    assert OFFICIAL_OPTIM.nesterov and OFFICIAL_OPTIM.momentum == 0.9 and OFFICIAL_OPTIM.weight_decay == 5e-4
    steps = 10
    factors = [lr_factor(epoch * steps, OFFICIAL_OPTIM, 0.1, 1500 * steps, steps)
               for epoch in (0, 239, 240, 479, 480, 640, 800, 1499)]
    expected = [1, 1, 0.2, 0.2, 0.04, 0.008, 0.0016, 0.0016]
    assert factors == pytest.approx(expected)


@pytest.mark.parametrize("transformation", [AffineTransformation(), ProjectiveTransformation()],
                         ids=["affine", "projective"])
def test_aet_decodes_the_parameters_from_both_feature_vectors(transformation):
    torch.manual_seed(0)
    model = AET(NetworkInNetwork(num_blocks=3, width=16), transformation)
    assert model.decoder.in_features == 2 * 16 and model.decoder.out_features == transformation.num_params
    assert model.tanh == (transformation.num_params == 6)  # official: tanh for the affine targets only
    x = torch.randn(6, 3, 32, 32)
    t = model.transform(x, torch.Generator().manual_seed(0))
    prediction = model.predict_transformation(x, t.images)
    assert prediction.shape == t.target.shape == (6, transformation.num_params)
    if model.tanh:
        assert prediction.abs().max() <= 1
    torch.nn.functional.mse_loss(prediction, t.target).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    # the prediction depends on the transformed image: swapping the pair changes it
    assert not torch.allclose(model.predict_transformation(t.images, x), prediction)


def test_aet_and_aed_train_and_validate_on_one_view(quiet_trainer):
    data = SyntheticImageDataModule(num_train=32, num_test=16, batch_size=8, num_workers=0,
                                    views=PadCropViews(), knn_bank_size=0)
    for model in (AET(NetworkInNetwork(num_blocks=3, width=16), ProjectiveTransformation()),
                  AED(NetworkInNetwork(num_blocks=3, width=16), decoder_width=32)):
        trainer = quiet_trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=2)
        trainer.fit(model, data)
        metrics = trainer.callback_metrics
        key = "val/param_mse" if isinstance(model, AET) else "val/recon_mse"
        assert torch.isfinite(metrics["train/loss"]) and torch.isfinite(metrics[key]) and trainer.global_step == 3
    assert float(metrics["val/recon_mse"]) > 0


def test_aed_reconstructs_the_view_and_names_a_size_mismatch():
    model = AED(NetworkInNetwork(num_blocks=3, width=16), decoder_width=32)
    x = torch.randn(4, 3, 32, 32)
    assert model.reconstruct(x).shape == x.shape
    with pytest.raises(ValueError, match="image_size"):
        model._loss(torch.randn(4, 3, 16, 16))
    with pytest.raises(ValueError, match="PadCropViews"):
        model.training_step(([x, x], torch.zeros(4)), 0)


def test_the_paper_heads_have_the_official_shapes():
    head = NonLinearHead((192, 8, 8), num_classes=10)
    linears = [m for m in head if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(12288, 200), (200, 10)]  # MultLayerFC2
    assert linears[0].bias is None and isinstance(head[2], nn.BatchNorm1d)
    conv = ConvBlockHead(192, 10)
    assert conv(torch.randn(2, 192, 8, 8)).shape == (2, 10)
    assert [m.kernel_size for m in conv.modules() if isinstance(m, nn.Conv2d)] == [(3, 3), (1, 1), (1, 1)]


@pytest.mark.parametrize("head", ["nonlinear", "conv"])
def test_the_classifier_trains_its_head_only_on_an_aet_encoder(head, tmp_path, quiet_trainer):
    torch.manual_seed(0)
    aet = AET(NetworkInNetwork(num_blocks=3, width=16), AffineTransformation())
    path = tmp_path / "aet.ckpt"
    torch.save({"state_dict": aet.state_dict()}, path)
    model = BlockClassifier(NetworkInNetwork(num_blocks=3, width=16), head=head, checkpoint=str(path))
    for name, value in aet.backbone.state_dict().items():  # loaded strictly from the AET's backbone.* keys
        torch.testing.assert_close(model.backbone.state_dict()[name], value)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}  # weights and BN statistics
    head_before = [p.clone() for p in model.head.parameters()]
    data = SyntheticImageDataModule(num_train=32, num_test=16, batch_size=8, num_workers=0, views=PadCropViews(),
                                    knn_bank_size=0)
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=1)
    trainer.fit(model, data)
    assert all(torch.equal(before[k], v) for k, v in model.backbone.state_dict().items())
    assert any(not torch.equal(a, b) for a, b in zip(head_before, model.head.parameters()))
    assert 0 <= float(trainer.callback_metrics["val/acc"]) <= 1


def test_the_classifier_needs_an_encoder_with_blocks():
    with pytest.raises(TypeError, match="feature_maps"):
        BlockClassifier(ResNet(depth=18, cifar_stem=True))
    with pytest.raises(ValueError, match="blocks 1 to 3"):
        BlockClassifier(NetworkInNetwork(num_blocks=3, width=16), block=4)
    with pytest.raises(TypeError, match="Transformation"):
        AET(NetworkInNetwork(num_blocks=3, width=16), nn.Identity())  # type: ignore[arg-type]


def test_the_compare_command_records_its_settings_table_and_plot(tmp_path, monkeypatch, capsys):
    import json

    import numpy as np

    from lit_digest.core.download import MissingDataError
    from lit_digest.ssl.aet.compare import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    with pytest.raises(MissingDataError, match=r"cifar10_subset\.npz'.*python -m lit_digest get cifar10_subset"):
        main([])  # the default, data/cifar10_subset.npz, where `get` builds it
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "tiny.npz", train_images=rng.integers(0, 256, (20, 3, 32, 32), dtype=np.uint8),
             train_labels=np.arange(20) % 2, test_images=rng.integers(0, 256, (8, 3, 32, 32), dtype=np.uint8),
             test_labels=np.arange(8) % 2)
    options = ["--data", "tiny.npz", "--methods", "affine", "--width", "12", "--epochs", "1", "--batch-size", "10",
               "--classifier-epochs", "1", "--seed", "3"]
    summary = main(options)
    folder = next((tmp_path / "runs" / "measured" / "aet-compare").iterdir())
    result = json.loads((folder / "results.json").read_text())
    assert result["settings"] == {**summary["args"], "methods": ["affine"]} and result["settings"]["width"] == 12
    assert result["settings"]["epochs"] == 1 and result["settings"]["seed"] == 3
    assert [row[0] for row in result["tables"][0]["rows"]] == ["random", "affine"]
    numbers = result["numbers"]
    assert (folder / "errors.png").stat().st_size > 0 and "affine_param_mse" in numbers
    assert numbers["affine_knn_error"] == pytest.approx(100 * (1 - summary["results"]["affine"]["knn_acc"]))
    assert "lit_digest: wrote 1 plot to" in capsys.readouterr().out
