"""benchmarks/gpu_suite.py: the quick mode writes every row on a CPU; one failing or hanging row keeps the others;
the MFU and the FSDP row's arithmetic."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gptj  # noqa: E402
import gpu_suite  # noqa: E402

from lit_digest.text.gptj import GPTJ, GPTJConfig  # noqa: E402
from lit_digest.text.gptj.memory import estimate_memory  # noqa: E402


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_quick_mode_writes_every_row_in_markdown_and_json(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu_suite.py"), "--device", "cpu", "--quick",
                           "--out", str(tmp_path)], env=env, capture_output=True, text=True, timeout=560)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "suite.json").read_text())
    table = (tmp_path / "suite.md").read_text()
    names = [row.name for row in gpu_suite.ROWS]
    assert [r["row"] for r in report["rows"]] == names
    for record in report["rows"]:
        assert record["status"] == "ok", record
        assert f"| {record['row']} | {record['setting']} | {record['result']} |" in table
    numbers = {r["row"]: r["numbers"] for r in report["rows"]}
    for name in ("BYOL, ours", "BYOL, lightly", "SimCLR, ours", "SimCLR, lightly"):
        assert numbers[name]["images_per_s"] > 0
    for method in ("BYOL", "SimCLR"):  # the ratio is of the two rows' own numbers
        mine, theirs = numbers[f"{method}, ours"], numbers[f"{method}, lightly"]
        assert theirs["ours_over_lightly"] == pytest.approx(mine["images_per_s"] / theirs["images_per_s"])
    assert numbers["GPT-J 1.4B"]["train_tokens_per_s"] > 0 and numbers["GPT-J 1.4B"]["generate_tokens_per_s"] > 0
    assert numbers["FSDP memory (GPT-J-6B config)"]["estimate_gib"] > 0
    assert report["quick"] and report["device"]


def quiet_suite() -> gpu_suite.Suite:
    return gpu_suite.Suite(device="cpu", quick=True, workers=0)


def test_a_failing_or_hanging_row_is_written_and_the_next_rows_run():
    def fine(s):
        return {"setting": "s", "result": "fine", "peak": "-", "numbers": {"x": 1.0}}

    def broken(s):
        raise RuntimeError("CUDA out of memory\nsecond line")

    def hanging(s):
        time.sleep(30)

    written = []
    rows = [gpu_suite.Row("a", 10, fine), gpu_suite.Row("b", 10, broken), gpu_suite.Row("c", 0.5, hanging),
            gpu_suite.Row("d", 10, fine)]
    start = time.perf_counter()
    records = gpu_suite.run_rows(rows, quiet_suite(), deadline_s=1e6, write=lambda r: written.append(len(r)))
    assert time.perf_counter() - start < 10
    assert [r["status"] for r in records] == ["ok", "error", "error", "ok"]
    assert records[1]["result"] == "RuntimeError: CUDA out of memory second line"
    assert records[2]["result"].startswith("RowTimeout: stopped after its limit")
    assert records[3]["result"] == "fine" and records[3]["numbers"] == {"x": 1.0}
    assert written == [1, 2, 3, 4]  # the files are rewritten after every row
    table = gpu_suite.markdown({"device": "cpu", "quick": True, "date": "", "versions": {}, "cuda": None,
                                "bf16_peak_tflops": None, "command": ""}, records)
    line = next(line for line in table.splitlines() if line.startswith("| b |"))
    assert "| **error**: RuntimeError: CUDA out of memory second line |" in line


def test_no_row_starts_once_the_deadline_is_spent():
    ran = []
    rows = [gpu_suite.Row("a", 10, lambda s: ran.append(1) or {})]
    records = gpu_suite.run_rows(rows, quiet_suite(), deadline_s=time.perf_counter() - gpu_suite.STARTED,
                                 write=lambda r: None)
    assert ran == [] and records[0]["status"] == "skipped"


def test_the_bf16_peak_is_found_by_the_device_name():
    assert gpu_suite.bf16_peak("NVIDIA H100 80GB HBM3") == (989e12, "H100")
    assert gpu_suite.bf16_peak("NVIDIA H100 PCIe") == (756e12, "H100 PCIe")
    assert gpu_suite.bf16_peak("NVIDIA H200") == (989e12, "H200")
    assert gpu_suite.bf16_peak("NVIDIA GeForce RTX 2080") is None


def test_flops_per_token_counts_every_weight_of_a_matrix_product_and_the_attention():
    config = GPTJConfig.preset("tiny")
    model = GPTJ(config)
    lookups = {id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    matmul = sum(p.numel() for p in model.parameters() if id(p) not in lookups)
    length = 48
    attention = config.n_layer * 2 * 3 * (2 * length * config.d_model)  # QK^T and AV, forward and backward (x3)
    assert gptj.flops_per_token(config, length) == 6 * matmul + attention


def test_the_fsdp_row_keeps_the_most_blocks_that_fit():
    config = GPTJConfig()  # GPT-J-6B, as configs/gptj/fsdp/gptj_6b.yaml

    def estimate(c):
        return estimate_memory(c, 4, 2048, activation_checkpointing=True).total

    for capacity in (79.1 * 2**30, 139.8 * 2**30):
        budget = 0.85 * capacity
        layers = gptj.blocks_that_fit(config, budget, estimate)
        assert 1 <= layers <= config.n_layer
        assert estimate(GPTJConfig(n_layer=layers)) <= budget
        assert layers == config.n_layer or estimate(GPTJConfig(n_layer=layers + 1)) > budget
    assert gptj.blocks_that_fit(config, 0.85 * 139.8 * 2**30, estimate) == 28  # an H200 holds all of it
    assert gptj.blocks_that_fit(config, 1.0, estimate) == 1
    assert math.isfinite(gptj.flops_per_token(config, 2048))
