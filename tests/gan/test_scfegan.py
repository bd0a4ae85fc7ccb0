"""The SC-FEGAN system: pixels outside the mask come back exactly, editing from PNGs, a short CPU run on real
faces beats the untrained generator on held-out faces, and a resumed run continues both optimisers and the
schedule at the same step."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from lit_digest.core.lightning import seed_everything
from lit_digest.core.optim import Optim
from lit_digest.gan import SCFEGAN, FaceFolderDataModule, SCFEGANGenerator, SNPatchGAN, SyntheticFaceDataModule
from lit_digest.gan.scfegan import EditingPanels, InpaintingReport, held_out_masked_l1
from lit_digest.gan.scfegan.callbacks import generator_fill
from lit_digest.gan.scfegan.predict import edit, edit_files, main, read_edit_inputs


def _tiny(**kwargs) -> SCFEGAN:
    return SCFEGAN(SCFEGANGenerator(widths=(8, 16, 16), kernels=(5, 3, 3), dilations=(2,)),
                   SNPatchGAN(in_channels=8, widths=(8, 16, 16), kernel_size=3), perceptual_style=False, **kwargs)


def _data(**kwargs) -> SyntheticFaceDataModule:
    options = dict(num_train=8, num_val=4, image_size=32, batch_size=4, bilateral_iterations=1)
    return SyntheticFaceDataModule(**{**options, **kwargs})


def test_pixels_outside_the_mask_are_returned_exactly():
    torch.manual_seed(0)
    model = _tiny().eval()
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    mask = (torch.rand(2, 1, 32, 32) > 0.6).float()
    out = model(image, mask, torch.zeros(2, 1, 32, 32), torch.zeros(2, 3, 32, 32))
    keep = (mask == 0).expand_as(image)
    assert torch.equal(out[keep], image[keep]) and not torch.equal(out[~keep], image[~keep])
    with pytest.raises(ValueError, match="'colour' must be"):
        model(image, mask, torch.zeros(2, 1, 32, 32), torch.zeros(2, 1, 32, 32))


def _write_inputs(folder, size=(40, 36)):
    w, h = size
    rng = np.random.default_rng(0)
    face = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[10:25, 8:30] = 255
    sketch = np.zeros((h, w), np.uint8)
    sketch[18, 5:35] = 255
    colour = np.zeros((h, w, 3), np.uint8)
    colour[12:20, 10:28] = (200, 120, 90)
    paths = {}
    for name, array in (("image", face), ("mask", mask), ("sketch", sketch), ("colour", colour)):
        paths[name] = folder / f"{name}.png"
        Image.fromarray(array).save(paths[name])
    return paths, face, mask


def test_edit_writes_an_image_of_the_right_size_keeping_the_rest(tmp_path, quiet_trainer):
    model = _tiny()
    trainer = quiet_trainer(max_steps=2, limit_val_batches=0)
    trainer.fit(model, _data())
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    paths, face, mask = _write_inputs(tmp_path)  # 40 x 36: not a multiple of 8, the network runs at 40 x 40
    out = edit_files(tmp_path / "model.ckpt", paths["image"], paths["mask"], tmp_path / "out" / "edited.png",
                     paths["sketch"], paths["colour"])
    edited = np.asarray(Image.open(out))
    assert edited.shape == face.shape
    assert np.array_equal(edited[mask == 0], face[mask == 0]) and not np.array_equal(edited, face)
    main(["--checkpoint", str(tmp_path / "model.ckpt"), "--image", str(paths["image"]), "--mask", str(paths["mask"]),
          "--out", str(tmp_path / "cli.png"), "--size", "32"])
    assert np.asarray(Image.open(tmp_path / "cli.png")).shape == face.shape
    batch = read_edit_inputs(paths["image"], paths["mask"])  # no sketch, no colour: nothing drawn
    assert batch["sketch"].sum() == 0 and torch.all(batch["colour"] == -1)
    assert edit(model.generator, batch, size=16).shape == (1, 3, 36, 40)


def test_edit_inputs_of_wrong_sizes_or_channels_are_clear_errors(tmp_path):
    paths, face, mask = _write_inputs(tmp_path)
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(ValueError, match=r"image's size 40x36.*mask 20x20"):
        read_edit_inputs(paths["image"], tmp_path / "small.png")
    Image.fromarray(face).save(tmp_path / "rgb_mask.png")
    with pytest.raises(ValueError, match="mask .* is a colour image"):
        read_edit_inputs(paths["image"], tmp_path / "rgb_mask.png")
    with pytest.raises(FileNotFoundError, match="sketch image not found"):
        read_edit_inputs(paths["image"], paths["mask"], tmp_path / "absent.png")
    Image.fromarray(np.stack([mask] * 3, -1)).save(tmp_path / "grey_as_rgb.png")  # equal channels are fine
    assert read_edit_inputs(paths["image"], tmp_path / "grey_as_rgb.png")["mask"].shape == (1, 1, 36, 40)
    with pytest.raises(ValueError, match="must be >= 0"):
        _tiny(style_weight=-1.0)


def test_panels_show_input_mask_sketch_colour_output_side_by_side(tmp_path, quiet_trainer):
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=1, callbacks=[EditingPanels(num_images=3)])
    trainer.fit(_tiny(), _data())
    panel = np.asarray(Image.open(tmp_path / "panels" / "epoch=0.png"))
    assert panel.shape == (2 + 3 * 34, 2 + 6 * 34, 3)  # 3 faces x 6 columns of 32 px, 2 px apart


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_short_cpu_run_lowers_the_held_out_masked_l1(att_faces, quiet_trainer, tmp_path):
    seed_everything(0)
    adam = Optim(name="adam", lr=4e-4, betas=(0.5, 0.999), schedule="constant")
    model = SCFEGAN(SCFEGANGenerator(widths=(16, 32, 32, 32), kernels=(7, 5, 3, 3), dilations=(2,)),
                    SNPatchGAN(in_channels=8, widths=(16, 32, 32), kernel_size=3), perceptual_style=False,
                    optim_g=adam, optim_d=adam)
    data = FaceFolderDataModule(root=str(att_faces), image_size=32, num_val=40, batch_size=8, num_workers=0,
                                bilateral_iterations=2)
    report = InpaintingReport()
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=45, num_sanity_val_steps=0, callbacks=[report])
    trainer.fit(model, data)
    r = report.results
    assert r["trained/masked_l1"] < 0.75 * r["untrained/masked_l1"]
    assert json.loads((tmp_path / "report.json").read_text())["trained/masked_l1"] == r["trained/masked_l1"]
    again = held_out_masked_l1(generator_fill(model.generator), data.val_dataloader())
    assert again == pytest.approx(r["trained/masked_l1"])  # the held-out masks are fixed


def _state(model: SCFEGAN, trainer) -> dict:
    return {"weights": {k: v.clone() for k, v in model.state_dict().items()},
            "optimizers": [opt.state_dict() for opt in trainer.optimizers],
            "schedules": [s.scheduler.last_epoch for s in trainer.lr_scheduler_configs],
            "lrs": [opt.param_groups[0]["lr"] for opt in trainer.optimizers], "step": trainer.global_step}


def test_a_resumed_run_continues_both_optimisers_and_the_schedule_at_the_same_step(tmp_path, quiet_trainer):
    optim = Optim(name="adam", lr=1e-3, betas=(0.5, 0.999), schedule="warmup_cosine", warmup_steps=2)

    def run(epochs: int, ckpt: str | None = None):
        seed_everything(0)
        model = _tiny(optim_g=optim, optim_d=optim)
        trainer = quiet_trainer(max_epochs=epochs, num_sanity_val_steps=0)
        trainer.fit(model, _data(), ckpt_path=ckpt, weights_only=False)  # hparams hold the pickled modules
        return model, trainer

    straight_model, straight = run(2)
    first_model, first = run(1)
    first.save_checkpoint(tmp_path / "epoch1.ckpt")
    assert _state(first_model, first)["schedules"] == [2, 2] and first.global_step == 4  # 2 batches, 2 steps each
    resumed_model, resumed = run(2, str(tmp_path / "epoch1.ckpt"))
    a, b = _state(straight_model, straight), _state(resumed_model, resumed)
    assert a["step"] == b["step"] == 8 and a["schedules"] == b["schedules"] == [4, 4]
    assert a["lrs"] == b["lrs"] and a["lrs"][0] < 1e-3  # the cosine has decayed, identically
    for key, value in a["weights"].items():
        torch.testing.assert_close(b["weights"][key], value, rtol=0, atol=1e-6, msg=key)
    for opt_a, opt_b in zip(a["optimizers"], b["optimizers"]):
        assert opt_a["state"].keys() == opt_b["state"].keys() and opt_a["state"]
        for key, sa in opt_a["state"].items():
            sb = opt_b["state"][key]
            assert float(sa["step"]) == float(sb["step"]) == 4
            torch.testing.assert_close(sb["exp_avg"], sa["exp_avg"], rtol=0, atol=1e-7)
            torch.testing.assert_close(sb["exp_avg_sq"], sa["exp_avg_sq"], rtol=0, atol=1e-9)


def test_the_defaults_train_beside_the_default_data(quiet_trainer):
    """``SCFEGAN()`` with ``SyntheticFaceDataModule()`` failed on the image size (a 7-level generator, 64-px faces)."""
    trainer = quiet_trainer(max_steps=2, limit_val_batches=0)  # one batch: a critic and a generator step
    trainer.fit(SCFEGAN(), SyntheticFaceDataModule())
    assert trainer.global_step == 2 and torch.isfinite(trainer.callback_metrics["train/g_loss"])


def test_faces_the_generator_cannot_take_stop_before_training_with_the_size_to_use(quiet_trainer):
    trainer = quiet_trainer(max_steps=2, limit_val_batches=0)
    with pytest.raises(ValueError, match=r"48-px faces .* multiple of 32 px .*image_size: 64"):
        trainer.fit(SCFEGAN(), SyntheticFaceDataModule(image_size=48, num_train=2, num_val=1))
    assert trainer.global_step == 0


def test_predict_writes_the_edited_faces_as_png_and_says_where(tmp_path, quiet_trainer, capsys):
    from lit_digest.core.images import ImageWriter
    from lit_digest.core.outputs import ANNOUNCED

    data = _data(num_val=3)
    quiet_trainer(callbacks=[ImageWriter("edited")]).predict(_tiny(), data, return_predictions=False)
    (count, unit, where), = ANNOUNCED.findall(capsys.readouterr().out)
    assert (int(count), unit, where) == (3, "images", str(tmp_path / "edited"))
    for i in range(3):
        edited = np.asarray(Image.open(tmp_path / "edited" / f"{i}.png"))
        face = ((data.val_set[i]["image"] + 1) * 127.5).round().permute(1, 2, 0).numpy()
        keep = data.val_set[i]["mask"][0].numpy() == 0
        assert edited.shape == (32, 32, 3) and np.abs(edited[keep] - face[keep]).max() <= 1  # only the hole changes


def test_the_edit_script_refuses_what_is_no_scfegan_checkpoint_in_one_line(tmp_path, quiet_trainer, capsys):
    from lit_digest.core.console import script
    from lit_digest.ssl.genrep import DCGAN

    paths, _, _ = _write_inputs(tmp_path)
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    other = quiet_trainer()
    other.strategy.connect(DCGAN())
    other.save_checkpoint(tmp_path / "dcgan.ckpt")
    for checkpoint, reason in (("notes.ckpt", "cannot be read as a torch checkpoint"),
                               ("dcgan.ckpt", "saved by|hyperparameters"), ("absent.ckpt", "No SCFEGAN checkpoint")):
        argv = ["--checkpoint", str(tmp_path / checkpoint), "--image", str(paths["image"]), "--mask",
                str(paths["mask"]), "--out", str(tmp_path / "out.png")]
        assert script(main)(argv) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "SCFEGAN checkpoint" in err and any(
            r in err for r in reason.split("|")), err
    assert not (tmp_path / "out.png").exists()
