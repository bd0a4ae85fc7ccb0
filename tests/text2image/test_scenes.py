"""The procedural scenes: seeded, captioned from their attributes, the style visible in the pixels; the folder data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lit_digest.text2image.data import CaptionedFolderDataModule, SceneDataModule, write_scene_folder
from lit_digest.text2image.scenes import ATTRIBUTES, STYLE_WORD, render_scenes, sample_attributes, scene_batch


def test_scenes_are_seeded():
    a, b = scene_batch(32, 32, seed=3), scene_batch(32, 32, seed=3)
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    assert not torch.equal(a[0], scene_batch(32, 32, seed=4)[0])


def test_captions_name_every_attribute_and_the_style_word_only_for_shaded_scenes():
    _, rows, captions = scene_batch(200, 32, seed=0)
    for row, text in zip(rows, captions):
        names = {k: ATTRIBUTES[k][i] for k, i in zip(ATTRIBUTES, row)}
        for key in ("shape", "colour", "size", "background"):
            assert names[key] in text, (names, text)
        assert (STYLE_WORD in text) == (names["style"] == "shaded")


def test_the_pixels_carry_the_attributes():
    row = np.array([[0, 0, 0, 1, 0, 0]])  # a large red circle on the left, black background, flat
    flat = render_scenes(row, 32, jitter=False)[0].float()
    assert flat[:, 16, 8].tolist() == pytest.approx([219, 31, 31], abs=2)  # red, where the shape is
    assert flat[:, 16, 28].max() < 20  # black background on the right
    shaded = render_scenes(np.array([[0, 0, 0, 1, 0, 1]]), 32, jitter=False)[0].float()
    inside = shaded[:, 12:20, 5:12]  # well inside the circle (centre 8.6, 16; radius 7)
    assert inside.std(dim=(1, 2)).mean() > 5 and flat[:, 12:20, 5:12].std(dim=(1, 2)).max() < 1  # lit vs one colour
    right = render_scenes(np.array([[0, 0, 1, 1, 0, 0]]), 32, jitter=False)[0].float()
    assert right[0, :, 20:].sum() > right[0, :, :12].sum()  # "right" is on the right


def test_sampled_attributes_cover_every_value():
    rows = sample_attributes(2000, seed=0)
    for j, values in enumerate(ATTRIBUTES.values()):
        assert set(rows[:, j]) == set(range(len(values)))


def test_the_scene_datamodule_gives_dicts_in_minus_one_one():
    data = SceneDataModule(num_train=8, num_val=4, batch_size=4)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32) and -1 <= batch["image"].min() and batch["image"].max() <= 1
    assert len(batch["caption"]) == 4 and batch["attributes"].shape == (4, 6)


def test_a_caption_folder_reads_images_and_captions_and_names_what_is_missing(tmp_path):
    write_scene_folder(tmp_path / "scenes", 6, size=40)
    data = CaptionedFolderDataModule(root=str(tmp_path / "scenes"), size=32, val_fraction=0.3, batch_size=2)
    data.setup("fit")
    batch = next(iter(data.val_dataloader()))
    assert batch["image"].shape == (2, 3, 32, 32) and all(batch["caption"])
    (tmp_path / "scenes" / "00000.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"no caption for .*00000\.png.*captions false"):
        CaptionedFolderDataModule(root=str(tmp_path / "scenes"), size=32).setup("fit")
    with pytest.raises(FileNotFoundError, match="image folder not found at"):
        CaptionedFolderDataModule(root=str(tmp_path / "none")).setup("fit")
