"""The command line as a user runs it: every config, bad configs, W&B offline, resume."""

import glob
import json
import os
from pathlib import Path

import pytest
import torch
from conftest import ROOT, run_cli

from lit_digest import BYOL, SmallConvNet
from lit_digest.cli import configure_wandb_mode, main

CONFIGS = sorted(Path(p).relative_to(ROOT).as_posix() for p in glob.glob(str(ROOT / "configs" / "**" / "*.yaml"),
                                                                            recursive=True))
QUICK = ["--trainer.logger", "false", "--trainer.enable_progress_bar", "false"]

_SYNTHETIC = ["--data", "lit_digest.data.SyntheticImageDataModule", "--data.init_args.num_train", "8",
              "--data.init_args.num_test", "8", "--data.init_args.batch_size", "4", "--data.init_args.num_workers",
              "0", "--data.init_args.image_size", "32"]


def smoke_overrides(config: str, tmp_path: Path) -> list[str]:
    """Arguments that make a config run on tiny offline data. A new config folder must add its entry."""
    folder = Path(config).parent.name
    if config == "configs/quickstart.yaml":
        return []
    if folder == "byol":
        classes = "100" if any(k in config for k in ("cifar100", "imagefolder")) else "10"
        return [*_SYNTHETIC, "--data.init_args.classes", classes]
    extra = _extra_overrides(folder, config, tmp_path)
    if extra is None:
        raise AssertionError(f"no smoke-test overrides for {config}: add them to tests/test_cli.py")
    return extra


def _extra_overrides(folder: str, config: str, tmp_path: Path) -> list[str] | None:
    if folder in ("simclr", "supcon", "supervised", "eval"):
        from test_eval import contrastive_smoke_overrides

        return [*_SYNTHETIC, *contrastive_smoke_overrides(config, tmp_path)]
    if folder == "codistillation":
        from test_codistillation import smoke_args

        return smoke_args(config, tmp_path)
    if folder == "muse":
        from test_muse import muse_smoke_overrides

        return muse_smoke_overrides(config)
    return None


@pytest.mark.parametrize("config", CONFIGS)
def test_every_config_prints(config, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(ROOT / config), "--print_config"])
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    assert "model:" in out and "class_path:" in out and "trainer:" in out


@pytest.mark.parametrize("config", CONFIGS)
def test_every_config_runs_a_fast_dev_run(config, tmp_path, monkeypatch):
    # fast_dev_run swaps the config's loggers for a dummy, so W&B is built but never started
    monkeypatch.chdir(tmp_path)
    main(["fit", "--config", str(ROOT / config), "--trainer.fast_dev_run", "true", "--trainer.accelerator", "cpu",
          "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false",
          *smoke_overrides(config, tmp_path)])


def test_a_wrong_config_key_names_the_key(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(ROOT / "configs/quickstart.yaml"), "--model.init_args.learning_rate", "0.1"])
    assert exit_info.value.code != 0
    assert "learning_rate" in capsys.readouterr().err


def test_a_top_level_optimizer_is_rejected(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text((ROOT / "configs/quickstart.yaml").read_text() + "\noptimizer:\n  class_path: torch.optim.Adam\n")
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(cfg)])
    assert "optimizer" in capsys.readouterr().err


def test_a_wrong_data_path_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="No .npz file at .*missing.npz"):
        main(["fit", "--config", str(ROOT / "configs/quickstart.yaml"), *QUICK, "--data",
              "lit_digest.data.NpzImageDataModule", "--data.init_args.path", "missing.npz"])


def test_wandb_mode_defaults_to_offline_without_a_key(tmp_path):
    env = {"NETRC": str(tmp_path / "none")}
    assert configure_wandb_mode(env) == "offline" and env["WANDB_MODE"] == "offline"
    assert configure_wandb_mode({"WANDB_API_KEY": "x" * 40}) == "online"
    assert configure_wandb_mode({"WANDB_MODE": "disabled"}) == "disabled"
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    assert configure_wandb_mode({"NETRC": str(netrc)}) == "online"


@pytest.mark.slow
def test_offline_wandb_run_leaves_its_files(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB")}
    env.update(HOME=str(tmp_path), NETRC=str(tmp_path / "no-netrc"), WANDB_SILENT="true")
    os.environ.pop("WANDB_MODE", None)
    try:
        proc = run_cli(["fit", "--config", str(ROOT / "configs/quickstart.yaml"), "--trainer.max_epochs", "1",
                        "--trainer.limit_train_batches", "2", "--trainer.enable_progress_bar", "false"],
                       cwd=tmp_path, env={**env, "WANDB_MODE": ""})
    finally:
        os.environ["WANDB_MODE"] = "offline"
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "W&B logs offline" in proc.stderr
    runs = list((tmp_path / "runs/quickstart/wandb").glob("offline-run-*"))
    assert len(runs) == 1
    files = {p.name for p in runs[0].rglob("*")}
    assert "lit_digest_config.yaml" in files and any(name.startswith("views_") for name in files)
    event_log = next(runs[0].glob("run-*.wandb")).read_bytes()  # what `wandb sync` uploads
    for logged in (b"proj_hidden_dim", b"val/knn_acc", b"report/trained/knn_acc", b"report/random/knn_acc"):
        assert logged in event_log, logged
    assert (tmp_path / "runs/quickstart/views.png").is_file()
    report = json.loads((tmp_path / "runs/quickstart/report.json").read_text())
    assert set(report) >= {"trained/knn_acc", "random/knn_acc", "trained/linear_acc", "random/linear_acc"}


@pytest.mark.slow
def test_resume_continues_the_same_run(tmp_path):
    args = ["fit", "--config", str(ROOT / "configs/quickstart.yaml"), *QUICK, "--trainer.limit_train_batches", "3",
            "--trainer.limit_val_batches", "1"]
    first = run_cli([*args, "--trainer.max_epochs", "1"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    last = tmp_path / "runs/quickstart/checkpoints/last.ckpt"  # no logger: <default_root_dir>/checkpoints
    state = torch.load(last, weights_only=False)
    assert state["global_step"] == 3 and state["epoch"] == 0
    # a plain re-run starts afresh (no silent resume of an older run) ...
    fresh = run_cli([*args, "--trainer.max_epochs", "1", "--trainer.default_root_dir", "again"], cwd=tmp_path)
    assert fresh.returncode == 0 and "Restoring states" not in fresh.stderr + fresh.stdout
    # ... and --ckpt_path continues the same run
    second = run_cli([*args, "--trainer.max_epochs", "2", "--ckpt_path", str(last)], cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Restoring states from the checkpoint" in second.stderr + second.stdout
    resumed = torch.load(last, weights_only=False)
    assert resumed["global_step"] == 6 and resumed["epoch"] == 1
    # the optimiser's momentum buffers came along (LARS state is not re-initialised)
    assert resumed["optimizer_states"][0]["state"]
    # and the checkpoint of a CLI run gives back its trained encoder, as the issue words it
    encoder = BYOL.load_from_checkpoint(last).backbone
    assert isinstance(encoder, SmallConvNet)
    saved = resumed["state_dict"]["backbone.features.0.weight"]
    torch.testing.assert_close(encoder.state_dict()["features.0.weight"], saved)


@pytest.mark.slow
def test_two_process_cpu_ddp_run_finishes(tmp_path):
    proc = run_cli(["fit", "--config", str(ROOT / "configs/quickstart.yaml"), *QUICK, "--trainer.accelerator", "cpu",
                    "--trainer.strategy", "ddp", "--trainer.devices", "2",  # SyncBatchNorm is CUDA-only in torch
                    "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3"], cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "distributed_backend=gloo" in out and "All distributed processes registered" in out
    state = torch.load(tmp_path / "runs/quickstart/checkpoints/last.ckpt", weights_only=False)
    assert state["global_step"] == 3
    # validation ran on both ranks (the kNN monitor all-gathers their features), and rank 0 alone
    # wrote the frozen-encoder report after the processes finished training
    report = json.loads((tmp_path / "runs/quickstart/report.json").read_text())
    assert 0.3 < report["trained/knn_acc"] <= 1.0
