"""VQGAN+CLIP generation on small untrained models: seeds reproduce, the loop lowers the prompt loss, predict writes
and announces its PNGs, and each mistake is one clear error."""

from __future__ import annotations

import pytest
import torch

from lit_digest.core.console import user_error
from lit_digest.core.outputs import ANNOUNCED
from lit_digest.text2image.generate import VQGANCLIP, PromptDataModule
from lit_digest.text2image.generate.module import save_png


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return VQGANCLIP(steps=3, cutn=4, snapshots=2)


def test_a_prompt_and_seed_give_the_same_image_in_any_batch(small):
    images, snaps, _ = small.generate(["a red circle", "a blue square | text:-1"], [5, 6])
    again, _, _ = small.generate(["a red circle", "a blue square | text:-1"], [5, 6])
    torch.testing.assert_close(images, again, rtol=0, atol=0)
    alone, _, _ = small.generate(["a blue square | text:-1"], [6])
    torch.testing.assert_close(alone[0], images[1], rtol=0, atol=1e-5)
    other, _, _ = small.generate(["a red circle"], [7])
    assert not torch.allclose(other[0], images[0])
    assert len(snaps) == 2 and snaps[0].shape == images.shape


def test_the_loop_lowers_the_prompt_loss():
    torch.manual_seed(1)
    plain = VQGANCLIP(steps=12, cutn=1, cut_pow=0.0, augment=None)  # one whole-image cutout: a deterministic loss
    _, _, before = plain.generate(["a red circle", "a green triangle"], [0, 1], steps=0)
    _, _, after = plain.generate(["a red circle", "a green triangle"], [0, 1])
    assert (after < before).all(), (before, after)


def test_predict_writes_pngs_and_a_progress_strip_and_announces_them(quiet_trainer, tmp_path, capsys, small):
    data = PromptDataModule(["a red circle", "a small blue square:2 | unreal engine:0.5", "x:-1 | y"], batch_size=2)
    quiet_trainer().predict(small, data)
    (line,) = ANNOUNCED.findall(capsys.readouterr().out)
    count, _, path = line
    assert count == "3" and path.endswith("generated.png")
    from PIL import Image

    assert Image.open(path).size == (3 * 32, 32)  # one row of the final images
    assert len(list((tmp_path / "generated").glob("*.png"))) == 3
    assert Image.open(tmp_path / "progress.png").size == (2 * 32, 3 * 32)


def test_init_image_and_image_prompts(tmp_path):
    torch.manual_seed(2)
    save_png(torch.rand(3, 32, 32), tmp_path / "init.png")
    module = VQGANCLIP(steps=2, cutn=2, init_image=str(tmp_path / "init.png"),
                       image_prompts=(f"{tmp_path / 'init.png'}:0.5",), init_weight=1.0)
    start = module.initial_latents([0, 1])
    torch.testing.assert_close(start[0], start[1])  # the init image's encoding, whatever the seed
    embeds, weights, _ = module.prompt_targets(["a red circle"])
    assert weights.tolist() == [[1.0, 0.5]] and embeds.shape[1] == 2
    images, _, losses = module.generate(["a red circle"], [0])
    assert images.shape == (1, 3, 32, 32) and torch.isfinite(losses).all()


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    (dict(height=30), ValueError, "not a multiple of the VQGAN's token side 4"),
    (dict(height=16, width=16), ValueError, r"smaller than CLIP's input \(32 px\)"),
    (dict(vqgan="missing/vqgan.ckpt"), FileNotFoundError, r"VQGAN checkpoint not found at .*missing/vqgan\.ckpt"),
    (dict(clip="missing/clip.bin"), FileNotFoundError, r"CLIP checkpoint not found at .*missing/clip\.bin"),
    (dict(image_prompts=("a.png:heavy",)), ValueError, "'heavy' is not a number"),
])
def test_each_mistake_is_one_clear_line(kwargs, error, message):
    with pytest.raises(error, match=message) as info:
        VQGANCLIP(**{"steps": 1, "cutn": 1, **kwargs})
    assert user_error(info.value) is not None and "\n" not in str(info.value)


@pytest.mark.parametrize(("prompts", "message"), [([""], "the prompt is empty"), (["a red circle:0.x"], "is not a")])
def test_bad_prompts_fail_before_any_work(prompts, message):
    with pytest.raises(ValueError, match=message):
        PromptDataModule(prompts)


def test_half_precision_on_a_cpu_is_refused_with_the_fix(quiet_trainer, small):
    trainer = quiet_trainer(precision="16-true")
    with pytest.raises(ValueError, match="use --trainer.precision 32-true"):
        trainer.predict(small, PromptDataModule(["a red circle"]))


def test_an_open_clip_file_needs_its_architecture(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read as a torch checkpoint"):
        VQGANCLIP(clip=str(tmp_path / "weights.bin"))
    torch.save({"visual.proj": torch.zeros(1)}, tmp_path / "open_clip.bin")
    with pytest.raises(ValueError, match="set model.init_args.clip_model"):
        VQGANCLIP(clip=str(tmp_path / "open_clip.bin"))
