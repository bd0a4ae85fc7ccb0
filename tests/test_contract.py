"""The contract of a method (docs/developing.md), over every shipped config and every method: each config trains
with its smoke overlay, then ``predict`` writes a file into the run folder and says where, and the checkpoint
loads with ``load_from_checkpoint(path)`` alone; each method with its defaults trains on a CPU; a checkpoint of
something else is refused at once; a user's mistake deep inside the configuration reaches them as one line."""

from __future__ import annotations

import inspect
import math
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import lit_digest
from lit_digest.cli import main
from lit_digest.core.lightning import LightningModule, Trainer, pl
from lit_digest.core.outputs import ANNOUNCED
from tests.contract_cases import CASES
from tests.helpers import ROOT, run_cli, shipped_configs, smoke_devices, smoke_overlay

CONFIGS = shipped_configs()


def _announced(out: str, folder: Path) -> list[Path]:
    """The files ``predict`` announced (``lit_digest: wrote N <unit> to <path>``), each checked: inside the run
    folder, there, not empty, N > 0."""
    found = []
    for count, unit, path in ANNOUNCED.findall(out):
        file = Path(path)
        file = file if file.is_absolute() else Path.cwd() / file
        assert int(count) > 0, f"announced {count} {unit}"
        assert file.exists(), f"announced {file}, which is not there"
        assert folder.resolve() in file.resolve().parents, f"{file} is outside the run folder {folder}"
        size = sum(f.stat().st_size for f in file.rglob("*")) if file.is_dir() else file.stat().st_size
        assert size > 0, f"{file} is empty"
        found.append(file)
    return found


@pytest.mark.timeout(300)
@pytest.mark.parametrize("config", CONFIGS)
def test_every_config_trains_predicts_and_reloads(config, tmp_path, monkeypatch, capfd):
    """As shipped (its strategy included), on its folder's tiny data, W&B disabled: ``fit`` finishes with finite
    metrics and steps taken; ``predict`` from its checkpoint writes the method's output into its run folder and
    announces it (0.2's SAINT, SC-FEGAN and GPT-J configs wrote nothing and said nothing; codistillation's
    crashed); the checkpoint loads with ``Method.load_from_checkpoint(path)`` alone (DepthMerge's needed
    ``weights_only=False``)."""
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.chdir(ROOT)  # smoke overlays name files of the repository (e.g. README.md as a text corpus)
    common = ["--config", str(ROOT / config), *smoke_overlay(config), "--trainer.enable_progress_bar", "false"]
    fit = ["fit", *common, "--trainer.default_root_dir", str(tmp_path / "run")]
    predict_dir = tmp_path / "predict"
    predict = ["predict", *common, "--trainer.default_root_dir", str(predict_dir)]
    last = tmp_path / "run/checkpoints/last.ckpt"
    if smoke_devices(config) > 1:  # several processes: Lightning's launcher re-runs the command: run it as a user does
        env = {"WANDB_MODE": "disabled"}
        proc = run_cli(fit, cwd=ROOT, env=env)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        state = torch.load(last, map_location="cpu", weights_only=False)
        assert state["global_step"] > 0
        proc = run_cli([*predict, "--ckpt_path", str(last)], cwd=ROOT, env=env)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        assert _announced(proc.stdout + proc.stderr, predict_dir), (proc.stdout + proc.stderr)[-3000:]
        return
    cli = main(fit)
    trainer = cli.trainer
    assert trainer.state.finished, trainer.state
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    assert metrics and all(math.isfinite(v) for v in metrics.values()), metrics
    if any(type(opt).__name__ != "_MockOptimizer" for opt in trainer.optimizers):
        assert trainer.global_step > 0
    checkpoint = last if last.is_file() else tmp_path / "final.ckpt"
    if not last.is_file():  # evaluation-only configs (kNN) keep no checkpoint of their own
        trainer.save_checkpoint(checkpoint)
    reloaded = type(cli.model).load_from_checkpoint(checkpoint)  # nothing else: no weights_only=False
    trained = cli.model.state_dict()
    assert reloaded.state_dict().keys() == trained.keys()
    for key, value in reloaded.state_dict().items():
        expected = trained[key].full_tensor() if hasattr(trained[key], "full_tensor") else trained[key]  # FSDP2
        torch.testing.assert_close(value, expected.cpu(), msg=key)
    capfd.readouterr()
    main([*predict, "--ckpt_path", str(checkpoint)])
    captured = capfd.readouterr()
    assert _announced(captured.out + captured.err, predict_dir), (captured.out + captured.err)[-3000:]


def _own_init(cls: type) -> bool:
    """A method, not a shared base (``TabularSystem``, core's ``LightningModule``): it has an ``__init__`` of its
    own below Lightning's."""
    return next(k for k in cls.__mro__ if "__init__" in k.__dict__).__module__.startswith("lit_digest.") and \
        cls is not LightningModule


def lit_digest_modules() -> list[type]:
    """Every LightningModule class lit_digest defines (its public, importable ones)."""
    skip = ("lit_digest._legacy", "lit_digest.configs", "lit_digest.cli")
    found: dict[str, type] = {}
    for info in pkgutil.walk_packages(lit_digest.__path__, "lit_digest."):
        if info.name.startswith(skip) or info.name.rsplit(".", 1)[-1].startswith(("_", "experiment", "compare")):
            continue
        try:
            module = __import__(info.name, fromlist=["_"])
        except ImportError as err:  # an optional extra that is not installed
            pytest.skip(f"{info.name}: {err}")
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, pl.LightningModule) and obj.__module__ == module.__name__
                    and not name.startswith("_") and _own_init(obj)):
                found[name] = obj
    return [found[k] for k in sorted(found)]


def test_every_method_has_a_contract_case():
    """A new LightningModule is added to tests/contract_cases.py, so the defaults test covers it."""
    missing = [cls.__name__ for cls in lit_digest_modules() if cls.__name__ not in CASES]
    assert not missing, f"add (Method(), DataModule()) pairs to tests/contract_cases.py for: {missing}"


def test_every_method_builds_on_lit_digests_lightning_module():
    """Core's LightningModule makes load_from_checkpoint(path) work alone and refuses a foreign checkpoint."""
    plain = [cls.__name__ for cls in lit_digest_modules() if not issubclass(cls, LightningModule)]
    assert not plain, f"build these on lit_digest.core.lightning.LightningModule: {plain}"


@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", sorted(CASES))
def test_defaults_train_on_a_cpu_and_the_checkpoint_loads_alone(name, tmp_path):
    """``Method()`` beside its DataModule with defaults trains a few steps on a CPU (0.2's ``CausalLM()`` built
    GPT-J-6B and hung; ``SCFEGAN()`` failed on ``SyntheticFaceDataModule()``'s image size), and its checkpoint
    loads back with ``load_from_checkpoint(path)`` alone, with the same weights."""
    model, data = CASES[name]()
    trainer = Trainer(accelerator="cpu", devices=1, max_steps=2, limit_train_batches=2, limit_val_batches=1,
                      num_sanity_val_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, data)
    assert trainer.state.finished
    if any(type(opt).__name__ != "_MockOptimizer" for opt in trainer.optimizers):
        assert trainer.global_step > 0
    path = tmp_path / "defaults.ckpt"
    trainer.save_checkpoint(path)
    reloaded = type(model).load_from_checkpoint(path)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(reloaded.state_dict()[key], value, msg=key)


class Foreign(pl.LightningModule):
    """Stands for another method: hyperparameters no lit_digest method takes."""

    def __init__(self, foreign_width: int = 3, foreign_rate: float = 0.5) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(foreign_width, 1)


@pytest.fixture(scope="module")
def foreign_checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("foreign")
    state = {"state_dict": Foreign().state_dict(), "hyper_parameters": dict(Foreign().hparams),
             "pytorch-lightning_version": pl.__version__}
    torch.save(state, folder / "foreign.ckpt")
    torch.save({**state, "hyper_parameters": {"_class_path": "tests.test_contract.Foreign"}}, folder / "cli.ckpt")
    (folder / "notes.ckpt").write_text("not a checkpoint")
    torch.save({"weight": torch.zeros(2)}, folder / "weights.pt")
    return folder


@pytest.mark.parametrize("cls", lit_digest_modules(), ids=lambda c: c.__name__)
def test_a_checkpoint_of_something_else_is_refused_at_once(cls, foreign_checkpoints):
    """0.2's few-shot scorer spent 8 minutes and 11 GB on a SAINT checkpoint before failing."""
    for file in ("foreign.ckpt", "cli.ckpt", "notes.ckpt", "weights.pt"):
        with pytest.raises(ValueError, match=rf"is not a {cls.__name__} checkpoint"):
            cls.load_from_checkpoint(foreign_checkpoints / file)


NESTED_MISTAKES = [  # (config, extra arguments, what the one line says)
    ("configs/genrep/simclr.yaml", [], "MissingDataError: A checkpoint of the runs 'dcgan-fashion_mnist' not found"),
    ("configs/gptj/text_files.yaml", [], "gpt-j-tokenizer"),
    ("configs/saint/wine.yaml", ["--data.init_args.table", "no-such.csv"], "no-such.csv"),
]


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize(("config", "extra", "expected"), NESTED_MISTAKES, ids=[c for c, _, _ in NESTED_MISTAKES])
def test_a_mistake_deep_in_the_configuration_is_one_line(config, extra, expected, tmp_path):
    """0.2 buried the message of a class built inside another (GenRep's generator checkpoint, GPT-J's tokenizer)
    in 80 lines of parser traceback ending in "Does not validate against any of the Union subtypes"."""
    proc = run_cli(["fit", "--config", str(ROOT / config), "--trainer.logger", "false", *extra], cwd=tmp_path,
                   env={"WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1"})
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Union subtypes" not in proc.stderr, proc.stderr[-3000:]
    assert err[-1].startswith("lit_digest: ") and expected in err[-1], err[-3:]


def test_every_script_reports_a_users_mistake_in_one_line():
    """Every ``python -m lit_digest.<...>`` script runs its ``main`` through ``lit_digest.core.console.script``."""
    offenders = []
    for path in (ROOT / "lit_digest").rglob("*.py"):
        text = path.read_text()
        if path == ROOT / "lit_digest/__main__.py":  # the command line: lit_digest.cli.run wraps it
            continue
        if '__name__ == "__main__"' in text and "script(" not in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"wrap main with lit_digest.core.console.script: {offenders}"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sigterm_stops_a_fit_within_seconds_with_a_checkpoint(tmp_path):
    """A scheduler's SIGTERM stops the run at the end of the batch with interrupted-step=N.ckpt, exit status 143
    (0.2: a SAINT run ignored it for 10 s and needed SIGKILL)."""
    import signal
    import time

    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT),
           "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "lit_digest", "fit", "--config", "quickstart", "--trainer.logger",
                             "false", "--trainer.enable_progress_bar", "false", "--trainer.callbacks+=tests.helpers."
                             "ReportStart"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    for line in proc.stdout:
        if "training starts at step" in line:
            break
    time.sleep(1.0)
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=60)[0]
    assert time.monotonic() - start < 15, out[-2000:]
    assert proc.returncode == 143, out[-2000:]
    assert "stopped by SIGTERM" in out
    assert list(tmp_path.glob("runs/quickstart/*/checkpoints/interrupted-step=*.ckpt")), out[-2000:]
