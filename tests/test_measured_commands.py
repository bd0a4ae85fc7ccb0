"""Every option of every measured command reaches the code it names.

One test per command: the command runs with a non-default value for each option, the functions its options feed
are replaced by spies that record what they received (and return stand-in numbers, so nothing trains, except the
depth experiment, which runs for real on a tiny budget), and the test reads the settings back from the spies.
A measured number printed beside settings the run did not use (``depth.experiment`` printed "<= 384" while its
patches ran at five times the scene's size) fails here.
"""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset


class Spy:
    """Records every call's arguments, then calls ``result`` (a function of the same arguments) or returns it."""

    def __init__(self, result=None):
        self.calls: list[tuple[tuple, dict]] = []
        self.result = result

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return self.result(*args, **kwargs) if callable(self.result) else self.result


def measured_settings(parent) -> dict:
    """The settings ``MeasuredRun`` recorded in the one ``results.json`` under ``parent``."""
    found = list(parent.rglob("results.json"))
    assert len(found) == 1, found
    return json.loads(found[0].read_text())["settings"]


def policy_file(path) -> str:
    """A small exported ``policy.pt`` (``{"policy_config", "state_dict"}``) that ``load_policy`` accepts."""
    from lit_digest.lr_control.policy import ControllerPolicy

    torch.save({"policy_config": {"hidden": 4}, "state_dict": ControllerPolicy(hidden=4).state_dict()}, path)
    return str(path)


# -- depth --------------------------------------------------------------------------------------------------
@pytest.mark.timeout(120)
def test_depth_experiment_runs_the_settings_it_records(tmp_path, monkeypatch):
    import lit_digest.depth.experiment as exp

    monkeypatch.setenv("WANDB_MODE", "disabled")
    seen = {name: Spy(getattr(exp, name)) for name in ("boost", "estimate", "ProceduralRGBDDataModule",
                                                          "DepthEstimation", "DepthMerge", "_trainer")}
    for name, spy in seen.items():
        monkeypatch.setattr(exp, name, spy)
    argv = ["--train-scenes", "3", "--test-scenes", "2", "--image-size", "40", "--receptive-field", "12",
            "--width", "4", "--estimator-steps", "2", "--estimator-crop-min", "0.6", "--batch", "3",
            "--merge-steps", "1", "--merge-batch", "2", "--merge-size", "32", "--num-downs", "5", "--ngf", "4",
            "--reference", "depth", "--ablation-reference", "estimate", "--max-size", "60", "--max-resolution", "56",
            "--boost-images", "1", "--sizes", "20", "28", "--threads", "1", "--seed", "3",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out")]
    assert exp.main(argv) == 0
    results = json.loads(next((tmp_path / "out" / "depth").rglob("results.json")).read_text())
    s = results["settings"]
    assert s == {**exp.parse_settings(argv), "quick": False}  # recorded as used
    (data_args, data_kwargs), = seen["ProceduralRGBDDataModule"].calls
    assert data_args == (3, 1, 2, 40, 3) and data_kwargs == {"batch_size": 3, "cache_dir": str(tmp_path / "cache")}
    (_, est), = seen["DepthEstimation"].calls
    assert est["train_size"] == 12 and est["crop_min"] == 0.6
    assert [c[0][0] for c in seen["_trainer"].calls] == [2, 2, 2]  # estimator steps; 2 x merge batches, twice
    merges = [kw for _, kw in seen["DepthMerge"].calls]
    assert [m["reference"] for m in merges] == ["depth", "estimate"]  # the measured setting, then the ablation
    for m in merges:
        assert (m["receptive_field"], m["merge_size"], m["num_downs"], m["ngf"], m["ndf"], m["max_size"]) == (
            12, 32, 5, 4, 4, 60)
    fixed = {c[0][2] for c in seen["estimate"].calls}
    assert {20, 28} <= fixed
    boosted = seen["boost"].calls
    assert len(boosted) == 2  # --boost-images 1, for each of the two merge networks
    for args, _ in boosted:
        settings = args[3]
        assert settings.max_resolution == 56 and settings.max_size == 60 and settings.receptive_field == 12
    assert torch.get_num_threads() == 1
    table = results["tables"][0]["rows"]
    assert [r[1] for r in table if r[0].startswith("boosted")] == ["depth", "estimate"]
    assert all(r[2] == "<= 56" for r in table if r[0].startswith("boosted"))
    assert (next((tmp_path / "out" / "depth").rglob("error_maps.png"))).is_file()


def test_depth_experiment_quick_and_bad_options():
    import lit_digest.depth.experiment as exp

    quick = exp.parse_settings(["--quick"])
    assert (quick["train_scenes"], quick["test_scenes"], quick["estimator_steps"], quick["merge_steps"],
            quick["boost_images"]) == (256, 24, 800, 500, 8)
    assert exp.parse_settings([])["reference"] == "estimate"  # the paper's target; exact depth is the ablation
    with pytest.raises(ValueError, match="crop-min"):
        exp.parse_settings(["--estimator-crop-min", "0"])
    with pytest.raises(ValueError, match="merge-size"):
        exp.parse_settings(["--merge-size", "100"])


# -- lr_control.speedup ---------------------------------------------------------------------------------------
def test_speedup_options_reach_the_runs(tmp_path, monkeypatch):
    from lit_digest.lr_control import speedup

    def curve(spec, seed, lr=None, schedule="constant", callbacks=(), val_points=16):
        return 1.0, [(spec.steps * (i + 1) // val_points, 1.0 / (i + 1 + lr * 10)) for i in range(val_points)]

    run_task, learned = Spy(curve), Spy(lambda checkpoint: object())
    monkeypatch.setattr(speedup, "run_task", run_task)
    monkeypatch.setattr(speedup, "LearnedController", learned)
    monkeypatch.setattr(speedup, "HyperparameterControl", lambda controller, decisions: types.SimpleNamespace(
        controller=controller, history=[]))
    monkeypatch.setattr(speedup, "available", lambda spec: True)
    name = speedup.HELD_OUT[1].name
    out, policy = tmp_path / "r.json", policy_file(tmp_path / "p.pt")  # --policy is loaded before any run
    argv = ["--policy", policy, "--seeds", "4", "7", "--tasks", name, "--step-scale", "0.5", "--lrs", "0.01", "0.1",
            "--out", str(out), "--measured-dir", str(tmp_path / "measured")]
    results = speedup.main(argv)
    assert json.loads(out.read_text())["seeds"] == [4, 7]
    assert measured_settings(tmp_path / "measured") == {
        "policy": policy, "seeds": [4, 7], "tasks": [name], "step_scale": 0.5, "lrs": [0.01, 0.1],
        "grid_only": False, "out": str(out), "reuse": []}  # recorded as used
    expected_steps = speedup.scaled(speedup.HELD_OUT[1], 0.5, speedup.VAL_POINTS).steps
    assert {c[0][0].name for c in run_task.calls} == {name}
    assert {c[0][0].steps for c in run_task.calls} == {expected_steps}
    assert {c[0][1] for c in run_task.calls} == {4, 7}
    grid = {(c[1]["lr"], c[1]["schedule"]) for c in run_task.calls if not c[1].get("callbacks")}
    assert grid == {(lr, s) for lr in (0.01, 0.1) for s in speedup.SCHEDULES}
    assert [c[1]["checkpoint"] for c in learned.calls] == [policy, policy]  # one learned run per seed
    assert set(results["tasks"][name]["seeds"]) == {4, 7}
    run_task.calls.clear()
    speedup.main(["--seeds", "4", "--tasks", name, "--step-scale", "0.5", "--grid-only", "--reuse", str(out),
                  "--lrs", "0.01", "--out", str(tmp_path / "again.json"), "--measured-dir", str(tmp_path / "again")])
    assert run_task.calls == []  # --reuse: every grid run is in the file; --grid-only: no controllers
    pool = Spy("table")
    monkeypatch.setattr(speedup, "pool_check", pool)
    other = policy_file(tmp_path / "q.pt")
    assert speedup.main(["--pool-check", "--policy", other]) == {} and pool.calls == [((other,), {})]


# -- ssl.genrep.experiment ------------------------------------------------------------------------------------
def test_genrep_options_reach_the_runs(tmp_path, monkeypatch):
    from lit_digest.ssl.genrep import experiment as exp

    class Data:
        def __init__(self, **kwargs):
            self.kwargs = kwargs
            self.splits = types.SimpleNamespace(eval_train=TensorDataset(torch.zeros(50, 1)),
                                                test=TensorDataset(torch.zeros(1500, 1)))

        def setup(self):
            pass

    data, fit, evaluate = Spy(Data), Spy(lambda args: types.SimpleNamespace(model=types.SimpleNamespace(
        backbone=nn.Linear(2, 2)))), Spy(lambda encoder, data, probe_steps: {"knn": 0.5, "linear": 0.5})
    checked = Spy()
    for name, spy in (("FashionMNISTDataModule", data), ("_fit", fit), ("evaluate_encoder", evaluate),
                      ("check_fashion_mnist", checked)):
        monkeypatch.setattr(exp, name, spy)
    monkeypatch.chdir(tmp_path)  # the measured run's folder: runs/measured/genrep/<date>_<time>
    out = tmp_path / "out"
    exp.main(["--data-dir", "/fm", "--out", str(out), "--gan-epochs", "3", "--sigmas", "0.5", "2",
              "--latent-only", "1", "--steps", "7", "--eval-train", "20", "--probe-steps", "11", "--seed", "5"])
    assert measured_settings(tmp_path / "runs" / "measured") == {
        "data_dir": "/fm", "out": str(out), "generator": None, "gan_epochs": 3, "sigmas": [0.5, 2.0],
        "latent_only": [1.0], "steps": 7, "eval_train": 20, "probe_steps": 11, "seed": 5, "quick": False}
    # main checks --data-dir before any output folder or W&B run exists; run() checks it again, on the settings
    # as recorded
    assert checked.calls == [(("/fm",), {})] * 2 and data.calls[0][1]["data_dir"] == "/fm"
    runs = [c[0][0] for c in fit.calls]
    generator, arms = runs[0], runs[1:]
    assert generator[generator.index("--trainer.max_epochs") + 1] == "3" and "/fm" in generator
    assert len(arms) == 1 + 3 + 1  # the real baseline, sigma 0 + --sigmas, --latent-only
    for arm in arms:
        assert arm[arm.index("--trainer.max_steps") + 1] == "7" and arm[arm.index("--seed_everything") + 1] == "5"
        assert "/fm" in arm
    sigmas = [a[a.index("--data.init_args.sigma") + 1] for a in arms[1:]]
    assert sigmas == ["0.0", "0.5", "2.0", "1.0"] and arms[-1][arms[-1].index("--data.init_args.views") + 1] == "null"
    assert {c[1]["probe_steps"] for c in evaluate.calls} == {11}
    assert {len(c[0][1].splits.eval_train) for c in evaluate.calls} == {20}  # the seeded subset of --eval-train
    saved = json.loads((out / "results.json").read_text())
    assert saved["eval_train"] == 20
    fit.calls.clear()
    monkeypatch.setattr(exp, "_generator", Spy((tmp_path / "g.ckpt", None)))
    exp.main(["--data-dir", "/fm", "--out", str(out), "--generator", "g.ckpt", "--sigmas", "1", "--quick"])
    assert all(a[a.index("--trainer.max_steps") + 1] == "5" for a in (c[0][0] for c in fit.calls))
    assert {c[1]["probe_steps"] for c in evaluate.calls[-3:]} == {20}


# -- ssl.aet.compare -----------------------------------------------------------------------------------------
def test_aet_compare_options_reach_the_runs(tmp_path, monkeypatch):
    from lit_digest.ssl.aet import compare

    images = types.SimpleNamespace(images=torch.zeros(6, 3, 8, 8, dtype=torch.uint8), labels=torch.arange(6) % 2)

    class Data:
        def __init__(self, **kwargs):
            self.kwargs = kwargs
            self.splits = types.SimpleNamespace(pretrain=images, test=images)

        def setup(self):
            pass

        def prepare_images(self, x):
            return x.float()

    data = Spy(Data)
    pretrain = Spy(lambda method, dm, width, epochs, lr, seed, root, optimizer: types.SimpleNamespace(
        backbone=nn.Identity()))
    heads = Spy(lambda head, train_x, train_y, test_x, test_y, epochs, seed: 0.5)
    monkeypatch.setattr(compare, "NpzImageDataModule", data)
    monkeypatch.setattr(compare, "pretrain", pretrain)
    monkeypatch.setattr(compare, "fit_head", heads)
    monkeypatch.setattr(compare, "block_features", lambda encoder, x, prepare: torch.randn(len(x), 4, 2, 2))
    monkeypatch.chdir(tmp_path)  # the measured run's folder: runs/measured/aet-compare/<date>_<time>
    out, npz = tmp_path / "aet.json", tmp_path / "d.npz"
    npz.write_bytes(b"")  # --data must name a file (checked before the run); the DataModule is a spy
    compare.main(["--data", str(npz), "--methods", "aed", "affine", "--width", "12", "--epochs", "3",
                  "--batch-size", "9", "--optimizer", "sgd", "--lr", "0.05", "--classifier-epochs", "4",
                  "--seed", "2", "--threads", "1", "--out", str(out)])
    assert measured_settings(tmp_path / "runs" / "measured") == {
        "data": str(npz), "methods": ["aed", "affine"], "width": 12, "epochs": 3, "batch_size": 9,
        "optimizer": "sgd", "lr": 0.05, "classifier_epochs": 4, "seed": 2, "threads": 1, "out": str(out)}
    kwargs = data.calls[0][1]
    assert kwargs["path"] == str(npz) and kwargs["batch_size"] == 9 and kwargs["seed"] == 2
    assert [c[0][0] for c in pretrain.calls] == ["aed", "affine"]
    for args, _ in pretrain.calls:
        assert args[2:6] == (12, 3, 0.05, 2) and args[7] == "sgd"
    assert {c[0][5] for c in heads.calls} == {4} and {c[1]["seed"] for c in heads.calls} == {2}
    assert len(heads.calls) == 2 * 3  # two heads for the random encoder and each method
    assert json.loads(out.read_text())["args"]["width"] == 12 and torch.get_num_threads() == 1


# -- tabular.compare -----------------------------------------------------------------------------------------
def test_tabular_compare_options_reach_the_runs(tmp_path, monkeypatch):
    from lit_digest.tabular import compare

    run_one, fit, data = Spy(0.5), Spy(lambda model, data, epochs: model), Spy(compare._data)
    trainers = []

    class FakeTrainer:
        def __init__(self, **kwargs):
            trainers.append(kwargs)

        def fit(self, model, datamodule):
            pass

    monkeypatch.setattr(compare, "_run_one", run_one)
    monkeypatch.setattr(compare, "fit_neural", fit)
    monkeypatch.setattr(compare, "_data", data)
    monkeypatch.setattr(compare, "Trainer", FakeTrainer)
    monkeypatch.setattr(compare, "_neural_scores", lambda model, rows: np.zeros(1))
    monkeypatch.setattr(compare, "split_score", lambda schema, scores, rows: 0.5)
    text = compare.main(["--tables", "wine", "--models", "linear", "mlp", "--seeds", "2", "--epochs", "3",
                         "--semi-table", "wine", "--labels", "17", "--pretrain-epochs", "4", "--finetune-epochs", "6",
                         "--out", str(tmp_path / "measured")])
    assert measured_settings(tmp_path / "measured") == {
        "tables": ["wine"], "target": None, "models": ["linear", "mlp"], "seeds": 2, "epochs": 3, "semi_table": "wine",
        "labels": 17, "pretrain_epochs": 4, "finetune_epochs": 6, "quick": False}
    assert [(c[0][0], c[0][2], c[0][3]) for c in run_one.calls] == [
        ("linear", 0, 3), ("mlp", 0, 3), ("linear", 1, 3), ("mlp", 1, 3),  # the comparison, --epochs
        ("lightgbm", 0, 6), ("linear", 0, 6), ("lightgbm", 1, 6), ("linear", 1, 6)]  # few labels, --finetune-epochs
    assert {c[0][0] for c in data.calls} == {"wine"} and {c[0][1] for c in data.calls} == {0, 1}
    # every table is read once before the run (wine is both tables, read once), then per seed
    assert data.calls[0] == (("wine", 0, None), {"verbose": True})
    few = [c[1] for c in data.calls[1:] if c[1]]
    assert len(few) == 2 * 2 and all(kw["labels_count"] == 17 for kw in few)  # fine-tuning, pre-training rows
    assert [t["max_epochs"] for t in trainers] == [4, 4]  # SAINT's pre-training, per seed
    assert {c[0][2] for c in fit.calls} == {6}  # fine-tuning on the labelled rows
    assert "wine, 17 labelled training rows" in text
    run_one.calls.clear()
    trainers.clear()
    compare.main(["--tables", "wine", "--models", "linear", "--semi-table", "", "--quick",
                  "--out", str(tmp_path / "quick")])
    assert [c[0][2:] for c in run_one.calls] == [(0, 2), (1, 2)] and trainers == []


# -- text.gptj.compare ---------------------------------------------------------------------------------------
def test_gptj_compare_options_reach_the_runs(tmp_path, monkeypatch):
    from lit_digest.text.gptj import compare

    corpus = Spy(compare.CorpusDataModule)
    train = Spy(lambda config, data, steps, lr, seed, curve=None: (None, 1.0, 10))
    monkeypatch.setattr(compare, "CorpusDataModule", corpus)
    monkeypatch.setattr(compare, "train_variant", train)
    monkeypatch.setattr(compare, "evaluate_bpb", lambda lm, data: 2.0)
    compare.main(["--corpus", "jargon", "--val-fraction", "0.1", "--steps", "3", "--seq-len", "96",
                  "--batch-size", "5", "--lr", "0.01", "--seeds", "2", "--threads", "1", "--out", str(tmp_path)])
    assert measured_settings(tmp_path) == {"corpus": "jargon", "val_fraction": 0.1, "steps": 3, "seq_len": 96,
                                           "batch_size": 5, "lr": 0.01, "seeds": 2, "threads": 1}
    kwargs = corpus.calls[0][1]
    assert (kwargs["corpus"], kwargs["seq_len"], kwargs["batch_size"], kwargs["val_fraction"]) == (
        "jargon", 96, 5, 0.1)
    assert len(train.calls) == 2 * len(compare.VARIANTS)
    for args, _ in train.calls:
        config, _, steps, lr, seed, curve = args
        assert (steps, lr) == (3, 0.01) and config.n_positions >= 96 and isinstance(curve, compare.LossCurve)
    assert sorted({c[0][4] for c in train.calls}) == [0, 1] and torch.get_num_threads() == 1
