"""The command line as a user runs it: fit the merge network (smoke sizes), then ``predict`` a folder of images
into 16-bit depth PNGs from the checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lit_digest.cli import main
from tests.helpers import ROOT

CONFIG = ["--config", str(ROOT / "configs/depth/boost/procedural.yaml"),
          "--config", str(ROOT / "configs/depth/boost/smoke.yaml")]
QUIET = ["--trainer.logger", "false", "--trainer.enable_progress_bar", "false"]


@pytest.mark.timeout(300)
def test_fit_then_predict_writes_16_bit_pngs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main(["fit", *CONFIG, *QUIET, "--trainer.default_root_dir", str(tmp_path / "fit")])
    checkpoint = tmp_path / "fit" / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file()
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for name, (h, w) in {"wide.png": (30, 52), "tall.jpg": (44, 28)}.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(photos / name)
    main(["predict", *CONFIG, *QUIET, "--ckpt_path", str(checkpoint), "--data.init_args.predict_dir", str(photos),
          "--trainer.default_root_dir", str(tmp_path / "predict")])
    for name, shape in {"wide.png": (30, 52), "tall.png": (44, 28)}.items():
        with Image.open(tmp_path / "predict" / "depth" / name) as img:
            assert img.mode == "I;16" and np.array(img).shape == shape and np.array(img).max() == 65535
