"""Depth files and real RGB-D layouts: 16-bit PNG round trip, PFM orientation, Middlebury's disparity-to-depth,
iBims-1's scale, clear errors when the data is absent."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lit_digest.core.download import MissingDataError
from lit_digest.depth.data import RGBDFolderDataModule
from lit_digest.depth.io import read_depth_png16, read_pfm, write_depth_png16


def write_pfm(path, array: np.ndarray) -> None:
    """Little-endian greyscale PFM, rows stored bottom first."""
    h, w = array.shape
    with open(path, "wb") as f:
        f.write(b"Pf\n" + f"{w} {h}\n".encode() + b"-1.0\n")
        f.write(np.flipud(array).astype("<f4").tobytes())


def test_png16_round_trip_keeps_order_and_full_range(tmp_path):
    depth = torch.linspace(2.0, 9.0, 12 * 7).view(1, 12, 7)
    path = write_depth_png16(tmp_path / "d", depth)
    assert path.name == "d.png"
    back = read_depth_png16(path)[0]
    assert back.min() == 0 and back.max() == 65535 and back.shape == (12, 7)
    assert torch.all(back.flatten().diff() > 0)  # monotone, no 8-bit plateaus
    assert write_depth_png16(tmp_path / "flat", torch.ones(4, 4)).is_file()


def test_pfm_rows_are_top_first(tmp_path):
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    write_pfm(tmp_path / "x.pfm", array)
    assert torch.equal(read_pfm(tmp_path / "x.pfm")[0], torch.from_numpy(array))
    (tmp_path / "bad.pfm").write_bytes(b"P6\n1 1\n255\n\x00\x00\x00")
    with pytest.raises(ValueError, match="not a PFM"):
        read_pfm(tmp_path / "bad.pfm")


def test_middlebury_layout_gives_depth_from_disparity(tmp_path):
    for i, scene in enumerate(["Adirondack", "Jadeplant", "Motorcycle"]):
        folder = tmp_path / scene
        folder.mkdir()
        Image.fromarray(np.full((6, 8, 3), 100 + i, dtype=np.uint8)).save(folder / "im0.png")
        disparity = np.full((6, 8), 50.0, dtype=np.float32)
        disparity[0, 0] = np.inf  # no data
        write_pfm(folder / "disp0.pfm", disparity)
        (folder / "calib.txt").write_text("cam0=[1000.5 0 4; 0 1000.5 3; 0 0 1]\ncam1=[1000.5 0 4; 0 1000.5 3; 0 0 1]\n"
                                          "doffs=10.0\nbaseline=200.0\nwidth=8\nheight=6\n")
    data = RGBDFolderDataModule(str(tmp_path), "middlebury2014", num_val=1, image_size=None)
    data.setup("fit")
    assert len(data.splits["train"]) == 2 and len(data.splits["val"]) == 1
    image, depth = data.splits["val"][0]
    assert image.shape == (3, 6, 8) and image[0, 0, 0].item() == pytest.approx(100 / 255)
    assert depth[0, 0, 0] == 0  # unknown
    assert depth[0, 3, 3].item() == pytest.approx(200.0 * 1000.5 / 60.0)
    small = RGBDFolderDataModule(str(tmp_path), "middlebury2014", num_val=1, image_size=4)
    small.setup("test")
    image, depth = small.splits["test"][0]  # the longer side to 4 px; depth by nearest neighbour
    assert image.shape == (3, 3, 4) and depth.shape == (1, 3, 4) and depth[0, 2, 2].item() == pytest.approx(3334.9999)


def test_ibims_layout_scales_the_16_bit_depth(tmp_path):
    (tmp_path / "rgb").mkdir()
    (tmp_path / "depth").mkdir()
    Image.fromarray(np.zeros((4, 5, 3), dtype=np.uint8)).save(tmp_path / "rgb" / "corridor_01.png")
    Image.fromarray(np.full((4, 5), 13107, dtype=np.uint16)).save(tmp_path / "depth" / "corridor_01.png")
    data = RGBDFolderDataModule(str(tmp_path), "ibims1", num_val=1, image_size=None)
    data.setup("test")
    assert data.splits["test"][0][1][0, 0, 0].item() == pytest.approx(13107 * 50 / 65535)  # 10 m


def test_absent_real_data_names_the_path_and_the_source(tmp_path):
    with pytest.raises(MissingDataError, match=r"middlebury2014 RGB-D pairs not found at .*nowhere.*"
                                               r"vision\.middlebury\.edu.*data\.init_args\.root"):
        RGBDFolderDataModule(str(tmp_path / "nowhere")).setup("fit")
    with pytest.raises(MissingDataError, match=r"ibims1 RGB-D pairs not found at .*nowhere.*"
                                               r"asg\.ed\.tum\.de/lmf/ibims1.*data\.init_args\.root"):
        RGBDFolderDataModule(str(tmp_path / "nowhere"), "ibims1").setup("fit")
    (tmp_path / "rgb").mkdir()
    with pytest.raises(MissingDataError, match="no image with its depth"):
        RGBDFolderDataModule(str(tmp_path), "ibims1").setup("fit")
