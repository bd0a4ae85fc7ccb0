"""The speedup command: steps to a target, and one tiny end-to-end table with a learned policy."""

from __future__ import annotations

import math

import torch

from lit_digest.lr_control import NUM_FEATURES, ControllerPolicy, speedup


def test_steps_to_reach_is_the_first_step_at_or_below_the_target():
    curve = [(10, 2.0), (20, 1.0), (30, 1.2), (40, 0.9)]
    assert speedup.steps_to_reach(curve, 1.0) == 20
    assert speedup.steps_to_reach(curve, 0.9) == 40
    assert speedup.steps_to_reach(curve, 0.5) == math.inf


def test_one_command_gives_the_table(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(speedup, "GRID_LRS", (1e-3, 1e-2))  # a 2 x 2 grid, to keep the test short
    monkeypatch.setattr(speedup, "SCHEDULES", ("constant", "cosine"))
    policy = tmp_path / "policy.pt"
    torch.save({"policy_config": {"num_features": NUM_FEATURES, "hidden": 8},
                "state_dict": ControllerPolicy(NUM_FEATURES, 8).state_dict()}, policy)
    results = speedup.main(["--policy", str(policy), "--seeds", "0", "--tasks", "wine-mlp", "--step-scale", "0.2",
                            "--out", str(tmp_path / "results.json")])
    runs = results["tasks"]["wine-mlp"]["seeds"][0]
    assert sum(k.startswith("adamw") for k in runs) == 4
    for method in ("heuristic", "learned"):
        assert len(runs[method]) == speedup.VAL_POINTS and len(runs[method + " decisions"]) == 16
    out = capsys.readouterr().out
    assert "| wine-mlp | 64 |" in out and "seeds [0]" in out and (tmp_path / "results.json").is_file()
    grid_finals = {k: v[-1][1] for k, v in runs.items() if k.startswith("adamw")}
    best = min(grid_finals, key=grid_finals.get)
    assert speedup.steps_to_reach(runs[best], grid_finals[best]) <= 64  # the best grid point reaches its own target
