"""The command line as a user runs it: every shipped config (printed, and trained with its folder's smoke
overlay), bad configs, W&B offline, run folders and resuming, a 2-process run."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch
import yaml

from lit_digest.cli import configure_wandb_mode, main
from tests.helpers import ROOT, run_cli, shipped_configs, smoke_devices, smoke_overlay

CONFIGS = shipped_configs()
QUICK = ["--trainer.logger", "false", "--trainer.enable_progress_bar", "false"]


def _kept(base, printed) -> bool:
    """``printed`` (the resolved config) holds every value of ``base`` (a file's): lists (callbacks, printed
    with all their defaults) by their length, included files not at all."""
    if isinstance(base, dict):
        return isinstance(printed, dict) and all(_kept(v, printed.get(k)) for k, v in base.items())
    if isinstance(base, list):
        return isinstance(printed, list) and len(printed) == len(base)
    return (isinstance(base, str) and base.endswith(".yaml")) or printed == base


@pytest.mark.parametrize("config", CONFIGS)
def test_every_config_prints(config, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(ROOT / config), "--print_config"])
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    assert "model:" in out and "class_path:" in out and "trainer:" in out
    # a group taken from a base file keeps the base's values, but for the keys the config changes (``trainer:
    # ../_base/...yaml`` + ``trainer.max_epochs: 400`` once lost the whole base: jsonargparse alone drops it)
    printed, own = yaml.safe_load(out), yaml.safe_load((ROOT / config).read_text())
    for group, base in own.items():
        if isinstance(base, str) and base.endswith(".yaml"):
            changed = {k.split(".", 1)[1] for k in own if k.startswith(f"{group}.")}
            for key, value in yaml.safe_load(((ROOT / config).parent / base).read_text()).items():
                if key not in changed:
                    assert _kept(value, printed[group][key]), f"{config}: {group}.{key} of {base} was lost"
            for key in changed:
                assert printed[group][key] == own[f"{group}.{key}"], f"{config}: {group}.{key} not applied"


def _logging_setup(config: str) -> tuple:
    """What decides whether a run survives without a logger: the system (its ``self.log`` calls), the
    trainer's callbacks (``LearningRateMonitor`` needs a logger) and the strategy, read from the config file and
    the files it names for ``model`` and ``trainer``."""
    path = ROOT / config
    own = yaml.safe_load(path.read_text())
    model = own["model"] if isinstance(own["model"], dict) else yaml.safe_load((path.parent / own["model"]).read_text())
    trainer = own.get("trainer")
    trainer = trainer if isinstance(trainer, str) else yaml.safe_dump(
        {k: v for k, v in (trainer or {}).items() if k in ("callbacks", "strategy")}, sort_keys=True)
    overrides = sorted((k, yaml.safe_dump(v)) for k, v in own.items()
                       if k.startswith(("trainer.callbacks", "trainer.strategy")))
    return model["class_path"], trainer, tuple(overrides)


# With the logger off, the first config of each logging set-up (a second config of the same system, callbacks and
# strategy only changes data and sizes), single-process ones only (a multi-process run costs two interpreters, and
# one logging mode is enough for it). Every config trains with W&B disabled in tests/test_contract.py.
ONE_PER_SETUP = sorted({_logging_setup(c): c for c in reversed(CONFIGS)}.values())
LOGGER_OFF_RUNS = [c for c in ONE_PER_SETUP if smoke_devices(c) == 1]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("config", LOGGER_OFF_RUNS)
def test_a_config_trains_with_the_logger_off(config, tmp_path, monkeypatch):
    """The README's second way to go without W&B (``--trainer.logger false``; 0.1 crashed on 23 of 38 configs):
    the run finishes, its metrics are finite, and a method that has an optimiser took steps. The logger-off runs
    cover each logging set-up once."""
    args = ["fit", "--config", str(ROOT / config), *smoke_overlay(config), "--trainer.default_root_dir",
            str(tmp_path / "run"), "--trainer.enable_progress_bar", "false", "--trainer.logger", "false"]
    monkeypatch.chdir(ROOT)  # smoke overlays name files of the repository (e.g. README.md as a text corpus)
    cli = main(args)
    trainer = cli.trainer
    assert trainer.state.finished, trainer.state
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    assert metrics and all(math.isfinite(v) for v in metrics.values()), metrics
    if any(type(opt).__name__ != "_MockOptimizer" for opt in trainer.optimizers):
        assert trainer.global_step > 0


FOLDERS = sorted({str(Path(c).parent) for c in CONFIGS})


@pytest.mark.timeout(300)
@pytest.mark.parametrize("folder", FOLDERS)
def test_a_rerun_of_a_config_trains_from_scratch(folder, tmp_path, monkeypatch, capfd):
    """Checkpointing on (the configs' ModelCheckpoint with save_last, the crash checkpoint), the same config
    run twice: the second run starts at step 0 in a folder of its own and ends where the first ended. (0.1's
    SimCLR/SupCon/supervised/linear-eval configs had Lightning's OnExceptionCheckpoint, whose mere presence
    makes a fit without --ckpt_path resume from `last`.)"""
    config = next(c for c in CONFIGS if str(Path(c).parent) == folder)
    args = ["fit", "--config", str(ROOT / config), *smoke_overlay(config), "--trainer.enable_progress_bar", "false",
            "--trainer.logger", "false", "--trainer.callbacks+=tests.helpers.ReportStart"]
    outs = []
    for _ in range(2):
        if smoke_devices(config) > 1:
            proc = run_cli(args, cwd=tmp_path)
            assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
            outs.append(proc.stdout + proc.stderr)
        else:
            monkeypatch.chdir(tmp_path)
            main(args)
            captured = capfd.readouterr()
            outs.append(captured.out + captured.err)
    name = Path(config).stem if folder == "configs" else f"{Path(folder).name}-{Path(config).stem}"
    runs = sorted((tmp_path / "runs" / name).iterdir())
    assert len(runs) == 2, runs
    for out in outs:
        assert "training starts at step 0" in out and "Restoring states" not in out, out[-3000:]
    finals = [run / "checkpoints" / "last.ckpt" for run in runs]
    if finals[0].is_file():  # evaluation-only configs (kNN) write none
        steps = [torch.load(f, map_location="cpu", weights_only=False)["global_step"] for f in finals]
        assert steps[0] == steps[1] > 0


def test_no_shipped_config_uses_lightnings_on_exception_checkpoint():
    offenders = [p for p in (ROOT / "configs").rglob("*.yaml") if "OnExceptionCheckpoint" in p.read_text()]
    assert not offenders, offenders


def test_a_wrong_config_key_names_the_key(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(ROOT / "configs/quickstart.yaml"), "--model.init_args.learning_rate", "0.1"])
    assert exit_info.value.code != 0
    assert "learning_rate" in capsys.readouterr().err


def test_a_top_level_optimizer_is_rejected(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    text = (ROOT / "configs/quickstart.yaml").read_text().replace("logger: _base/wandb.yaml", "logger: false")
    cfg.write_text(text + "\noptimizer:\n  class_path: torch.optim.Adam\n")
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(cfg)])
    assert "optimizer" in capsys.readouterr().err


def test_a_wrong_data_path_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"\.npz file not found at .*missing\.npz"):
        main(["fit", "--config", str(ROOT / "configs/quickstart.yaml"), *QUICK, "--data",
              "lit_digest.ssl.NpzImageDataModule", "--data.init_args.path", "missing.npz"])


def test_wandb_mode_defaults_to_offline_without_a_key(tmp_path):
    def up(env):
        return True, "api.wandb.ai:443"

    env = {"NETRC": str(tmp_path / "none")}
    assert configure_wandb_mode(env, probe=up) == "offline" and env["WANDB_MODE"] == "offline"
    assert configure_wandb_mode({"WANDB_API_KEY": "x" * 40}, probe=up) == "online"
    assert configure_wandb_mode({"WANDB_MODE": "disabled"}, probe=up) == "disabled"
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    assert configure_wandb_mode({"NETRC": str(netrc)}, probe=up) == "online"


def test_a_key_without_a_network_goes_offline_at_once_or_fails_fast_when_online_was_asked(capsys):
    """0.1 let W&B wait about 90 s for the server and crash. The probe (a TCP connect to WANDB_BASE_URL,
    here a port nothing listens on) answers at once."""
    import time

    from lit_digest.cli.tracking import wandb_reachable

    env = {"WANDB_API_KEY": "x" * 40, "WANDB_BASE_URL": "http://127.0.0.1:9"}
    start = time.monotonic()
    assert wandb_reachable(env) == (False, "127.0.0.1:9") and time.monotonic() - start < 3.5
    assert configure_wandb_mode(dict(env)) == "offline"
    assert "does not answer: W&B logs offline" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="WANDB_MODE=online, but the W&B server 127.0.0.1:9 does not answer"):
        configure_wandb_mode({**env, "WANDB_MODE": "online"})


def _only_run(tmp_path: Path, name: str = "quickstart") -> Path:
    runs = sorted((tmp_path / "runs" / name).iterdir())
    assert len(runs) == 1, runs
    return runs[0]


@pytest.mark.slow
def test_offline_wandb_run_leaves_its_files_in_its_run_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB")}
    env.update(HOME=str(tmp_path), NETRC=str(tmp_path / "no-netrc"), WANDB_SILENT="true", WANDB_MODE="")
    proc = run_cli(["fit", "--config", str(ROOT / "configs/quickstart.yaml"), "--trainer.max_epochs", "1",
                    "--trainer.limit_train_batches", "2", "--trainer.enable_progress_bar", "false"],
                   cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "W&B logs offline" in proc.stderr
    run = _only_run(tmp_path)
    wandb_runs = list((run / "wandb").glob("offline-run-*"))
    assert len(wandb_runs) == 1
    files = {p.name for p in wandb_runs[0].rglob("*")}
    assert "lit_digest_config.yaml" in files and any(name.startswith("views_") for name in files)
    event_log = next(wandb_runs[0].glob("run-*.wandb")).read_bytes()  # what `wandb sync` uploads
    for logged in (b"proj_hidden_dim", b"val/knn_acc", b"report/trained/knn_acc", b"report/random/knn_acc"):
        assert logged in event_log, logged
    assert (run / "views.png").is_file() and (run / "config.yaml").is_file()
    report = json.loads((run / "report.json").read_text())
    assert set(report) >= {"trained/knn_acc", "random/knn_acc", "trained/linear_acc", "random/linear_acc"}


@pytest.mark.slow
def test_rerun_starts_afresh_and_resume_continues_the_same_run(tmp_path, monkeypatch, capfd):
    """In-process, as the console script runs it (``main``): the run folders and ``--resume`` are the CLI's.
    ``ReportStart`` prints the step each fit starts at."""
    from lit_digest import BYOL, SmallConvNet

    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", str(ROOT / "configs/quickstart.yaml"), *QUICK, "--trainer.limit_train_batches", "3",
            "--trainer.limit_val_batches", "1", "--trainer.callbacks+=tests.helpers.ReportStart"]

    def fit(*more: str) -> str:
        main([*args, *more])
        out = capfd.readouterr()
        return out.out + out.err

    assert "training starts at step 0" in fit("--trainer.max_epochs", "1")
    run = _only_run(tmp_path)
    last = run / "checkpoints/last.ckpt"
    state = torch.load(last, weights_only=False)
    assert state["global_step"] == 3 and state["epoch"] == 0
    # a plain re-run starts afresh in a folder of its own (no silent resume of an older run) ...
    assert "training starts at step 0" in fit("--trainer.max_epochs", "1")
    runs = sorted((tmp_path / "runs/quickstart").iterdir())
    assert len(runs) == 2 and torch.load(runs[1] / "checkpoints/last.ckpt", weights_only=False)["global_step"] == 3
    # ... and --resume auto continues the newest run, in its own folder
    assert "training starts at step 3" in fit("--trainer.max_epochs", "2", "--resume", "auto")
    resumed = torch.load(runs[1] / "checkpoints/last.ckpt", weights_only=False)
    assert resumed["global_step"] == 6 and resumed["epoch"] == 1
    assert resumed["optimizer_states"][0]["state"]  # the optimiser's moments came along
    # the checkpoint of a CLI run gives back its trained encoder
    encoder = BYOL.load_from_checkpoint(runs[1] / "checkpoints/last.ckpt").backbone
    assert isinstance(encoder, SmallConvNet)
    saved = resumed["state_dict"]["backbone.features.0.weight"]
    torch.testing.assert_close(encoder.state_dict()["features.0.weight"], saved)


def test_resume_without_a_previous_run_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match="nothing to resume: no run of 'quickstart'"):
        main(["fit", "--config", str(ROOT / "configs/quickstart.yaml"), *QUICK, "--resume", "auto"])


@pytest.mark.slow
def test_two_process_cpu_ddp_run_finishes(tmp_path):
    proc = run_cli(["fit", "--config", str(ROOT / "configs/quickstart.yaml"), *QUICK, "--trainer.accelerator", "cpu",
                    "--trainer.strategy", "ddp", "--trainer.devices", "2",  # SyncBatchNorm is CUDA-only in torch
                    "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3"], cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "distributed_backend=gloo" in out and "All distributed processes registered" in out
    run = _only_run(tmp_path)  # both ranks wrote into the one folder the launching process chose
    assert torch.load(run / "checkpoints/last.ckpt", weights_only=False)["global_step"] == 3
    # validation ran on both ranks (the kNN monitor all-gathers their features), and rank 0 alone
    # wrote the frozen-encoder report after the processes finished training
    report = json.loads((run / "report.json").read_text())
    assert 0.3 < report["trained/knn_acc"] <= 1.0


def test_list_help_and_config_shorthands(capsys, tmp_path, monkeypatch):
    assert main(["list"]) is None
    listed = capsys.readouterr().out.splitlines()
    assert any(line.startswith("byol/cifar10 ") for line in listed) and len(listed) == len(CONFIGS)
    assert main([]) is None
    out = capsys.readouterr().out
    assert "python -m lit_digest list" in out and "byol" in out and "muse" in out
    monkeypatch.chdir(tmp_path)  # no configs/ here: the shipped ones are found by name
    with pytest.raises(SystemExit):
        main(["fit", "--config", "simclr/cifar10", "--print_config"])
    assert "lit_digest.ssl.SimCLR" in capsys.readouterr().out


def test_a_mistyped_key_gets_a_short_message_with_the_closest_key(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(ROOT / "configs/quickstart.yaml"), "--model.init_args.learning_rate", "0.1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown option 'learning_rate' of lit_digest.ssl.BYOL" in err and "model.init_args.optim.lr" in err
    assert len(err.strip().splitlines()) <= 3  # 0.1 printed the 49-line usage


@pytest.mark.slow
def test_the_console_script_exits_0_on_success_and_not_on_failure(tmp_path):
    """0.1's `lit-digest` exited 1 after a successful run and printed the CLI object."""
    import subprocess
    import sys

    script = Path(sys.executable).with_name("lit-digest")
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    ok = subprocess.run([str(script), "fit", "--config", "quickstart", "--config", "smoke", "--trainer.logger", "false",
                         "--trainer.enable_progress_bar", "false"], cwd=tmp_path, env=env, capture_output=True,
                        text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "LitDigestCLI object" not in ok.stdout + ok.stderr
    bad = subprocess.run([str(script), "fit", "--config", "quickstart", "--model.init_args.num_classes", "3",
                          "--trainer.logger", "false"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode != 0 and "num_classes=3" in bad.stderr


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_an_installed_wheel_carries_the_configs(tmp_path):
    """`pip install lit-digest` users run `fit --config byol/cifar10` without a clone: the wheel holds the
    configs (and their _base parts) inside the package."""
    import subprocess
    import sys
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(ROOT)], check=True, capture_output=True, timeout=240)
    wheel = next((tmp_path / "dist").glob("*.whl"))
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    assert (tmp_path / "site/lit_digest/configs/_base/wandb.yaml").is_file()
    # and the data files the package reads: the embedded text corpus, the shipped controller policy
    assert (tmp_path / "site/lit_digest/text/corpus/jargon.txt.gz").is_file()
    assert (tmp_path / "site/lit_digest/lr_control/pool_policy.pt").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run([sys.executable, "-m", "lit_digest", "fit", "--config", "byol/cifar10", "--print_config"],
                          cwd=elsewhere, env={**os.environ, "PYTHONPATH": str(tmp_path / "site")}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "lit_digest.ssl.BYOL" in proc.stdout and str(tmp_path / "site") in proc.stdout + str(
        __import__("lit_digest").__file__) or "WandbLogger" in proc.stdout


def test_list_and_get_answer_without_importing_lightning():
    """0.2's `python -m lit_digest list` took 28 s: it imported every domain (and Lightning) first."""
    import subprocess
    import sys

    code = ("import sys; from lit_digest.cli import _fast; _fast(['list']); "
            "print(sorted(m for m in ('lightning', 'torch', 'lit_digest.ssl') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("max_epochs: 60", "max_epoch: 60", "Did you mean trainer.max_epochs?"),
    ("batch_size: 128", "batchsize: 128", "Did you mean data.init_args.batch_size?"),  # an argument of a base class
    ("width: 32", "widht: 32", "Did you mean model.init_args.backbone.init_args.width?"),
    ("seed_everything: 0", "seed_everythin: 0", "Did you mean seed_everything?"),
])
def test_a_typo_in_a_config_file_gets_the_closest_key(old, new, expected, tmp_path, capsys):
    """0.2 named the closest key only for keys that the file itself spelled right elsewhere, and printed the
    parser's usage for a trainer key."""
    text = (ROOT / "configs/quickstart.yaml").read_text().replace("_base/wandb.yaml", "false")
    assert old in text
    (tmp_path / "typo.yaml").write_text(text.replace(old, new))
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(tmp_path / "typo.yaml"), "--print_config"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1, err


def _fit_quickstart(tmp_path, *extra):
    base = ["--config", str(ROOT / "configs/quickstart.yaml"), "--config", str(ROOT / "configs/smoke.yaml"), *QUICK]
    return run_cli(["fit", *base, "--trainer.max_epochs", "2", *extra], cwd=tmp_path), base


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_fit_prints_its_best_checkpoint_and_test_takes_it_by_name(tmp_path):
    """`fit` ends with the best validation score and its checkpoint; `validate --ckpt_path best` (a new process)
    finds that checkpoint again, as `test --ckpt_path best` does for methods with a test step."""
    import re

    fit, base = _fit_quickstart(tmp_path)
    assert fit.returncode == 0, fit.stderr[-3000:]
    line = re.search(r"lit_digest: best val/knn_acc = ([\d.]+) at (\S+\.ckpt)", fit.stdout)
    assert line, fit.stdout[-2000:]
    best = Path(line.group(2))
    assert best.is_file() and best.name != "last.ckpt"
    again = run_cli(["validate", *base, "--ckpt_path", "best"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"using {best}, the best checkpoint of 'quickstart'" in again.stderr
    assert "dirpath has changed" not in again.stderr + again.stdout


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_resume_auto_continues_only_a_run_of_the_same_config_files(tmp_path):
    """0.2's `--resume auto` picked the newest run of another overlay combination and crashed on a size
    mismatch: a run's identity includes its overlays."""
    fit, base = _fit_quickstart(tmp_path, "--trainer.max_epochs", "1")
    assert fit.returncode == 0, fit.stderr[-3000:]
    other = run_cli(["fit", "--config", str(ROOT / "configs/quickstart.yaml"), *QUICK, "--resume", "auto"],
                    cwd=tmp_path)
    assert other.returncode == 1, other.stderr[-3000:]
    last = other.stderr.strip().splitlines()[-1]
    assert "another config combination" in last and "--config smoke.yaml" in last and "--resume" in last
    assert "Traceback" not in other.stderr


def test_a_callback_monitoring_a_metric_that_never_appears_warns_once(quiet_trainer, tmp_path):
    """0.2: `ModelCheckpoint(monitor='val/auroc')` crashed a multi-class SAINT run after its first epoch."""
    import warnings

    from lit_digest.core.callbacks import MonitoredMetricCheck
    from lit_digest.core.lightning import pl
    from tests.test_contract import Foreign

    class Logs(Foreign):
        def training_step(self, batch, batch_idx):
            return self.layer(batch).mean()

        def validation_step(self, batch, batch_idx):
            self.log("val/acc", self.layer(batch).mean())

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.DataLoader(torch.randn(8, 3), batch_size=4)
    checkpoint = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, monitor="val/auroc", mode="max")
    trainer = quiet_trainer(max_epochs=3, enable_checkpointing=True, callbacks=[MonitoredMetricCheck(), checkpoint])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(Logs(), data, data)
    said = [str(w.message) for w in caught if "does not log" in str(w.message)]
    assert len(said) == 1 and "'val/auroc'" in said[0] and "val/acc" in said[0], said
    assert trainer.state.finished and list(tmp_path.glob("*.ckpt"))


def test_the_progress_bar_names_no_negative_last_epoch():
    from lit_digest.core.callbacks import ProgressBar

    bar = ProgressBar()
    bar._trainer = type("T", (), {"max_epochs": -1})()
    assert bar._get_train_description(3).strip() == "Epoch 3"
    bar._trainer = type("T", (), {"max_epochs": 10})()
    assert bar._get_train_description(3).strip() == "Epoch 3/9"
