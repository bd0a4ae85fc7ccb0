"""The speedup command: steps to a target, and one tiny end-to-end table with a learned policy."""

from __future__ import annotations

import json
import math

import pytest
import torch

from lit_digest.lr_control import NUM_FEATURES, ControllerPolicy, speedup


def test_steps_to_reach_is_the_first_step_at_or_below_the_target():
    curve = [(10, 2.0), (20, 1.0), (30, 1.2), (40, 0.9)]
    assert speedup.steps_to_reach(curve, 1.0) == 20
    assert speedup.steps_to_reach(curve, 0.9) == 40
    assert speedup.steps_to_reach(curve, 0.5) == math.inf


def test_one_command_gives_the_table(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    measured = ["--measured-dir", str(tmp_path / "measured")]
    monkeypatch.setattr(speedup, "GRID_LRS", (1e-3, 1e-2))  # a 2 x 2 grid, to keep the test short
    monkeypatch.setattr(speedup, "SCHEDULES", ("constant", "cosine"))
    policy = tmp_path / "policy.pt"
    torch.save({"policy_config": {"num_features": NUM_FEATURES, "hidden": 8},
                "state_dict": ControllerPolicy(NUM_FEATURES, 8).state_dict()}, policy)
    results = speedup.main(["--policy", str(policy), "--seeds", "0", "--tasks", "wine-mlp", "--step-scale", "0.2",
                            "--out", str(tmp_path / "results.json"), *measured])
    runs = results["tasks"]["wine-mlp"]["seeds"][0]
    assert sum(k.startswith("adamw") for k in runs) == 4
    for method in ("heuristic", "learned"):
        assert len(runs[method]) == speedup.VAL_POINTS and len(runs[method + " decisions"]) == 16
    out = capsys.readouterr().out
    assert "| wine-mlp | 64 |" in out and "seeds [0]" in out and (tmp_path / "results.json").is_file()
    grid_finals = {k: v[-1][1] for k, v in runs.items() if k.startswith("adamw")}
    best = min(grid_finals, key=grid_finals.get)
    assert speedup.steps_to_reach(runs[best], grid_finals[best]) <= 64  # the best grid point reaches its own target
    folder = next((tmp_path / "measured" / "lr_control").iterdir())
    result = json.loads((folder / "results.json").read_text())
    assert result["settings"]["policy"] == str(policy) and result["settings"]["step_scale"] == 0.2
    assert {"plateau_wine_reached", "learned_wine_reached"} <= set(result["numbers"])
    assert (folder / "plot.png").stat().st_size > 10_000

    # --reuse: saved runs are taken as they are (the learned one only for the same policy file), and a run that is
    # repeated gives the very same curve (seeded runs)
    saved = json.loads((tmp_path / "results.json").read_text())
    del saved["tasks"]["wine-mlp"]["seeds"]["0"]["heuristic"]
    (tmp_path / "partial.json").write_text(json.dumps(saved))
    again = speedup.main(["--policy", str(policy), "--seeds", "0", "1", "--tasks", "wine-mlp", "--step-scale", "0.2",
                          "--reuse", str(tmp_path / "partial.json"), "--out", str(tmp_path / "again.json"), *measured])
    rerun = again["tasks"]["wine-mlp"]["seeds"]
    assert list(rerun) == [0]  # seed 1 is in no --reuse file: not run
    assert rerun[0] == {k: [tuple(p) for p in v] if not k.endswith("decisions") else v for k, v in runs.items()}
    assert again["wall_s"]["grid"] == pytest.approx(results["wall_s"]["grid"], abs=0.01)  # the saved runs' time
    assert again["wall_s"]["learned"] == pytest.approx(results["wall_s"]["learned"])
    subset = speedup.main(["--policy", str(policy), "--seeds", "0", "--tasks", "wine-mlp", "--step-scale", "0.2",
                           "--lrs", "0.001", "--reuse", str(tmp_path / "results.json"),
                           "--out", str(tmp_path / "s.json"), *measured])
    assert sorted(k for k in subset["tasks"]["wine-mlp"]["seeds"][0] if k.startswith("adamw")) == [
        "adamw lr=0.001 constant", "adamw lr=0.001 cosine"]  # --lrs picks the grid, also from reused files


@pytest.mark.parametrize("content", [b"not a checkpoint", None])
def test_a_wrong_policy_file_is_refused_before_any_run(tmp_path, capsys, content):
    from lit_digest.core.console import script
    from lit_digest.tabular import SAINT

    path = tmp_path / "policy.pt"
    if content is None:  # another method's Lightning checkpoint
        torch.save({"state_dict": {}, "hyper_parameters": dict(SAINT().hparams)}, path)
    else:
        path.write_bytes(content)
    status = script(speedup.main)(["--policy", str(path), "--tasks", "wine-mlp", "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err.strip()
    assert status == 1 and len(err.splitlines()) == 1 and "not a MetaTraining checkpoint" in err
    assert not (tmp_path / "r.json").exists()
