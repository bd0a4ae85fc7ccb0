"""Codistillation (arXiv 1804.03235): losses, sampler, single-process maths, the 4-process gloo strategy run,
bad settings, and (with the shared CIFAR-10 subset) churn against independently trained models.

Run as a script (``python tests/test_codistillation.py OUT_DIR``) this file is the worker of the distributed
test: Lightning's launcher re-runs the same command once per rank.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lit_digest.codistillation.losses import (
    distillation_loss,
    kl_to_targets,
    mean_pairwise_churn,
    prediction_churn,
    soft_cross_entropy,
    teacher_mean_probs,
)
from lit_digest.codistillation.module import Codistillation
from lit_digest.codistillation.sharding import GroupShardSampler
from lit_digest.codistillation.strategy import CodistillationStrategy, check_world_size
from lit_digest.core.lightning import Callback, Trainer, seed_everything
from lit_digest.core.optim import Optim
from tests.helpers import CIFAR_SUBSET, ROOT, print_measured

REPO = ROOT

# the distributed run: 2 groups x 2 ranks, 4 samples per rank and step, 6 steps over 64 samples
GROUPS, RANKS, PER_RANK, STEPS, NUM_SAMPLES = 2, 2, 4, 6, 64
BURN_IN, EXCHANGE = 2, 3


# -- helpers -------------------------------------------------------------------------------------------------
def tiny_mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3)
    )  # no BatchNorm: per-rank stats would differ


def tiny_data() -> TensorDataset:
    """Column 0 carries the sample index (``i / NUM_SAMPLES``) so that tests can tell which samples a rank "
    "read."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(NUM_SAMPLES, 8, generator=g)
    x[:, 0] = torch.arange(NUM_SAMPLES) / NUM_SAMPLES
    y = torch.randint(0, 3, (NUM_SAMPLES,), generator=g)
    return TensorDataset(x, y)


def tiny_module(**overrides) -> Codistillation:
    kwargs = dict(
        model=tiny_mlp,  # a factory: every replica from the constructor, under its own seed
        num_groups=GROUPS,
        burn_in_steps=BURN_IN,
        exchange_every=EXCHANGE,
        optim=Optim(name="sgd", lr=0.1, momentum=0.9, weight_decay=0.0),
    )
    kwargs.update(overrides)
    return Codistillation(**kwargs)


def flat_params(module: nn.Module) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1).clone().float() for t in module.state_dict().values()])


class Recorder(Callback):
    """Per step: losses, weights of every replica / teacher, which samples were read, whether teachers had "
    "grads."""

    def __init__(self, out_dir: str | None = None) -> None:
        self.steps: list[dict] = []
        self.out_dir = out_dir  # a forked rank writes its record there when training ends

    def on_train_end(self, trainer, module):
        if self.out_dir is not None:
            record = {"rank": trainer.global_rank, "group": module.group_index, "steps": self.steps}
            torch.save(record, Path(self.out_dir) / f"rank{trainer.global_rank}.pt")

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.steps.append(
            {
                "indices": torch.round(batch[0][:, 0] * NUM_SAMPLES).long().tolist(),
                "live_before": [flat_params(r) for r in module.replicas],
            }
        )

    def on_after_backward(self, trainer, module):
        self.steps[-1]["teacher_grads"] = any(p.grad is not None for p in module.teachers.parameters())
        self.steps[-1]["teachers_require_grad"] = any(p.requires_grad for p in module.teachers.parameters())

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.steps[-1].update(
            task=outputs["task_loss"].clone(),
            distill=outputs["distill_loss"].clone(),
            teachers=[flat_params(t) for t in module.teachers],
            live_after=[flat_params(r) for r in module.replicas],
        )


def run_distributed_worker(out_dir: str, ranks: int = RANKS, steps: int = STEPS, start_method: str = "popen") -> None:
    """The gloo run of ``GROUPS x ranks`` processes. ``popen``: one rank (Lightning's launcher re-runs this file
    with the same arguments), which also checkpoints and validates; ``fork``: the launcher forks the ranks from
    this process (one import of Lightning in all) and each writes its training record."""
    from tests.codistillation import test_codistillation as this  # not __main__: the checkpoint pickles the factory

    seed_everything(0, workers=True)
    module = this.tiny_module()
    recorder = Recorder(out_dir if start_method != "popen" else None)
    trainer = Trainer(
        accelerator="cpu",
        devices=GROUPS * ranks,
        strategy=CodistillationStrategy(num_groups=GROUPS, shuffle=True, process_group_backend="gloo",
                                        start_method=start_method),
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        callbacks=[recorder],
    )
    data = tiny_data()
    trainer.fit(
        module,
        DataLoader(data, batch_size=PER_RANK, shuffle=False),
        DataLoader(data, batch_size=PER_RANK, shuffle=False),
    )
    if start_method != "popen":
        return
    trainer.save_checkpoint(Path(out_dir) / "last.ckpt")  # collective: every rank takes part
    val = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    after_fit = [flat_params(r) for r in module.replicas]
    trainer.validate(module, DataLoader(data, batch_size=PER_RANK, shuffle=False), verbose=False)
    after_validate = [flat_params(r) for r in module.replicas]
    torch.save(
        {"rank": trainer.global_rank, "group": module.group_index, "steps": recorder.steps, "val": val,
         "after_fit": after_fit, "after_validate": after_validate},
        Path(out_dir) / f"rank{trainer.global_rank}.pt",
    )


def run_single_process(steps: int = STEPS, ranks: int = RANKS, **overrides) -> tuple[Codistillation, Recorder]:
    seed_everything(0, workers=True)
    module = tiny_module(**overrides)
    recorder = Recorder()
    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[recorder],
    )
    trainer.fit(module, DataLoader(tiny_data(), batch_size=PER_RANK * GROUPS * ranks, shuffle=True))
    return module, recorder


# -- pure functions ------------------------------------------------------------------------------------------
def test_distillation_losses_match_naive_loops():
    torch.manual_seed(0)
    student, teachers, temperature = torch.randn(5, 4), torch.randn(3, 5, 4), 2.0
    target = teacher_mean_probs(teachers, temperature)
    naive_target = torch.zeros(5, 4)
    for k in range(3):
        for n in range(5):
            e = torch.exp(teachers[k, n] / temperature)
            naive_target[n] += e / e.sum() / 3
    torch.testing.assert_close(target, naive_target)
    ce = 0.0
    kl = 0.0
    for n in range(5):
        e = torch.exp(student[n] / temperature)
        q = e / e.sum()
        ce += -(naive_target[n] * q.log()).sum() / 5
        kl += (naive_target[n] * (naive_target[n].log() - q.log())).sum() / 5
    torch.testing.assert_close(soft_cross_entropy(student, target, temperature), ce * temperature**2)
    torch.testing.assert_close(kl_to_targets(student, target, temperature), kl * temperature**2)
    # same gradient for the student (they differ by the teachers' entropy only)
    s1, s2 = student.clone().requires_grad_(), student.clone().requires_grad_()
    soft_cross_entropy(s1, target, temperature).backward()
    kl_to_targets(s2, target, temperature).backward()
    torch.testing.assert_close(s1.grad, s2.grad)
    # KL is zero at agreement
    assert kl_to_targets(teachers[0], teacher_mean_probs(teachers[:1]), 1.0).abs() < 1e-6


def test_distillation_gradient_reaches_student_only():
    student = torch.randn(6, 5, requires_grad=True)
    teachers = torch.randn(2, 6, 5, requires_grad=True)
    distillation_loss(student, teachers, temperature=1.5, kind="kl").backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teachers.grad is None


def test_churn():
    a = torch.tensor([0, 1, 2, 3])
    assert prediction_churn(a, torch.tensor([0, 1, 0, 0])) == 0.5
    preds = torch.stack([a, a, torch.tensor([1, 1, 2, 3])])  # pairs: 0, 1/4, 1/4
    torch.testing.assert_close(mean_pairwise_churn(preds), torch.tensor(1 / 6))


def test_group_shard_sampler_is_disjoint_and_matches_strided_slices():
    n, groups, ranks, per_rank = 50, 2, 3, 3
    samplers = {
        (g, r): GroupShardSampler(n, groups, g, ranks, r, shuffle=True, seed=1)
        for g in range(groups)
        for r in range(ranks)
    }
    shards = {g: set() for g in range(groups)}
    for (g, _), sampler in samplers.items():
        for epoch in range(3):
            sampler.set_epoch(epoch)
            indices = list(sampler)
            assert (
                len(indices) == len(sampler) == 9
            )  # ceil(50 / 6): every rank takes the same number of steps
            shards[g] |= set(indices)
    assert shards[0].isdisjoint(shards[1])
    assert shards[0] | shards[1] == set(range(n))
    # unshuffled, batch i of rank r of group g is the g-th strided slice of single-process batch i
    n = 48
    batch = groups * ranks * per_rank
    for g in range(groups):
        per_group = [list(GroupShardSampler(n, groups, g, ranks, r, shuffle=False)) for r in range(ranks)]
        for i in range(n // batch):
            single = list(range(i * batch, (i + 1) * batch))[g::groups]
            distributed = sorted(sum((idx[i * per_rank : (i + 1) * per_rank] for idx in per_group), []))
            assert distributed == sorted(single)


# -- single-process mode -------------------------------------------------------------------------------------
def test_single_process_burn_in_exchange_and_no_teacher_gradients():
    module, rec = run_single_process()
    for t, step in enumerate(rec.steps):
        if t < BURN_IN:
            assert torch.all(step["distill"] == 0.0), f"distillation term not exactly zero at step {t}"
        else:
            assert torch.all(step["distill"] > 0.0)
        assert not step["teacher_grads"] and not step["teachers_require_grad"]
        exchange_step = (t // EXCHANGE) * EXCHANGE
        for g in range(GROUPS):  # teachers equal the replicas' weights at the last exchange step, bit for bit
            assert torch.equal(step["teachers"][g], rec.steps[exchange_step]["live_before"][g])
        # replica g reads slice g of the batch, drawn from group g's fixed shard {i : i % G == g}
        for g in range(GROUPS):
            assert all(i % GROUPS == g for i in step["indices"][g::GROUPS]), (t, g, step["indices"])
    assert not torch.equal(rec.steps[-1]["live_after"][0], rec.steps[-1]["live_after"][1])
    with torch.no_grad():  # forward is replica 0
        x = tiny_data().tensors[0][:4]
        torch.testing.assert_close(module(x), module.replicas[0](x))


class Noisy(nn.Module):
    """BatchNorm and dropout: what 0.1's teachers left in training mode."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))

    def forward(self, x):
        return self.net(x)


def test_teachers_give_inference_mode_predictions_and_keep_their_statistics():
    """Stale copies predicting as a checkpoint does: no dropout, BatchNorm on its running statistics, which
    only an exchange changes (Lightning >= 2.2 never calls .train() during fit, so 0.1's override did not run)."""
    seed_everything(0)
    module = tiny_module(model=Noisy, burn_in_steps=0)
    probe = tiny_data().tensors[0][:8]
    seen = []

    class Watch(Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            assert not any(m.training for m in module.teachers.modules())
            with torch.no_grad():
                twice = [module.teachers[0](probe) for _ in range(2)]
            assert torch.equal(*twice), "teacher predictions are random: dropout is on"
            seen.append((trainer.global_step, module.teachers[0].net[1].running_mean.clone()))

    trainer = Trainer(accelerator="cpu", max_steps=STEPS, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, callbacks=[Watch()])
    trainer.fit(module, DataLoader(tiny_data(), batch_size=16, shuffle=True))
    for (step, stats), (_, previous) in zip(seen[1:], seen[:-1], strict=True):
        if (step - 1) % EXCHANGE:  # no exchange at the start of this step: the teacher's statistics stand still
            assert torch.equal(stats, previous), step


def test_independent_replicas_are_new_draws_of_the_models_own_initialisation():
    """torchvision's ResNet initialises its convolutions Kaiming-normal (fan-out); the layers' own resets
    (what 0.1 used) draw them about 2.4x smaller."""
    import functools

    from lit_digest.codistillation.replicas import replica_builder
    from lit_digest.ssl import ResNet

    def conv_std(model):
        return torch.stack([m.weight.std() for m in model.modules()
                            if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and m.in_channels > 3])

    torch.manual_seed(0)
    reference = ResNet(depth=18, cifar_stem=True)
    config = {"class_path": "lit_digest.ssl.ResNet", "init_args": {"depth": 18, "cifar_stem": True}}
    for build in (replica_builder(functools.partial(ResNet, depth=18, cifar_stem=True)),  # a factory
                  replica_builder(reference, config),  # built by the CLI from a config
                  replica_builder(reference)):  # an instance whose class can redraw its own initialisation
        replica = build(1)
        ratio = conv_std(replica) / conv_std(reference)
        assert ((ratio > 0.9) & (ratio < 1.1)).all(), ratio
        assert not torch.equal(replica.net.layer1[0].conv1.weight, reference.net.layer1[0].conv1.weight)
        torch.testing.assert_close(replica.state_dict()["net.layer1.0.conv1.weight"],
                                   build(1).state_dict()["net.layer1.0.conv1.weight"])  # its own seed reproduces
    module = Codistillation(functools.partial(ResNet, depth=18, cifar_stem=True), num_classes=10, num_groups=2)
    ratio = conv_std(module.replicas[1][0]) / conv_std(module.replicas[0][0])
    assert ((ratio > 0.9) & (ratio < 1.1)).all(), ratio


def test_single_process_task_loss_is_per_replica_cross_entropy():
    seed_everything(0)
    module = tiny_module(burn_in_steps=0, alpha=0.5, temperature=2.0, distill_loss="kl")
    module.exchange()  # teachers = replicas (outside a Trainer: nothing is logged)
    for p in module.teachers[1].parameters():
        p.data.add_(0.1)  # make the teacher differ from its replica
    x, y = tiny_data().tensors
    x, y = x[:8], y[:8]
    manual = []
    for g in range(GROUPS):
        logits = module.replicas[g](x[g::GROUPS])
        teacher = torch.stack([module.teachers[h](x[g::GROUPS]) for h in range(GROUPS) if h != g])
        manual.append(
            F.cross_entropy(logits, y[g::GROUPS]) + 0.5 * distillation_loss(logits, teacher, 2.0, "kl")
        )
    module._log_groups = lambda *a: None  # no trainer attached
    out = module.training_step((x, y), 0)
    torch.testing.assert_close(out["loss"], manual[0] + manual[1])


# -- bad settings --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"exchange_every": 0}, "exchange_every"),
        ({"num_groups": 0}, "num_groups"),
        ({"burn_in_steps": -1}, "burn_in_steps"),
        ({"temperature": 0.0}, "temperature"),
        ({"alpha": -1.0}, "alpha"),
    ],
)
def test_bad_settings_raise_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny_module(**kwargs)


def test_burn_in_longer_than_training_raises_before_training():
    with pytest.raises(ValueError, match="burn_in_steps=100"):
        run_single_process(steps=5, burn_in_steps=100)


def test_world_size_not_divisible_raises_before_launch():
    with pytest.raises(ValueError, match="world size"):
        Trainer(accelerator="cpu", devices=3, strategy=CodistillationStrategy(num_groups=2), logger=False)
    with pytest.raises(ValueError, match="does not divide"):
        check_world_size(6, 4)
    assert check_world_size(8, 2) == 4


def test_strategy_rejects_mismatched_num_groups():
    strategy = CodistillationStrategy(num_groups=2)
    module = tiny_module(num_groups=3)
    strategy._lightning_module = module
    strategy.parallel_devices = [torch.device("cpu")] * 6
    with pytest.raises(ValueError, match="num_groups=3"):
        strategy.setup_environment()


# -- the distributed run -------------------------------------------------------------------------------------
def launch_distributed(out: Path, ranks: int = RANKS, steps: int = STEPS,
                       start_method: str = "popen") -> dict[int, dict]:
    """The gloo run of ``GROUPS x ranks`` processes, in a subprocess; every rank's record."""
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "WANDB_MODE": "offline",
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), str(out), str(ranks), str(steps), start_method],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return {r: torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(GROUPS * ranks)}


@pytest.mark.timeout(120)
def test_two_process_teachers_are_the_broadcast_weights_of_the_exchange_step(tmp_path):
    """One rank per group, 5 steps, exchanges at steps 0 and 3: every teacher is the other process's live weights
    at the last exchange, bit for bit (a teacher refreshed from this process's own stale copy of the other
    group lags one exchange), and the losses are the single-process oracle's."""
    runs = launch_distributed(tmp_path, ranks=1, steps=5, start_method="fork")
    _, oracle = run_single_process(steps=5, ranks=1)
    for t in range(5):
        exchange_step = (t // EXCHANGE) * EXCHANGE
        for rank, other in ((0, 1), (1, 0)):
            teacher = runs[rank]["steps"][t]["teachers"][other]
            live_at_exchange = runs[other]["steps"][exchange_step]["live_before"][other]
            assert torch.equal(teacher, live_at_exchange), (t, rank)
            torch.testing.assert_close(runs[rank]["steps"][t]["distill"][rank], oracle.steps[t]["distill"][rank],
                                       rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(runs[rank]["steps"][t]["task"][rank], oracle.steps[t]["task"][rank],
                                       rtol=1e-5, atol=1e-6)
    assert not torch.equal(runs[0]["steps"][3]["teachers"][1], runs[0]["steps"][0]["teachers"][1])


@pytest.fixture(scope="module")
def distributed_run(tmp_path_factory) -> dict[int, dict]:
    out = tmp_path_factory.mktemp("codistill_ddp")
    runs = launch_distributed(out)
    runs[0]["out_dir"] = str(out)
    return runs


@pytest.mark.slow
def test_distributed_groups_sync_exchange_burn_in_and_shards(distributed_run):
    runs = distributed_run
    group_of = {r: runs[r]["group"] for r in runs}
    assert group_of == {0: 0, 1: 0, 2: 1, 3: 1}
    for t in range(STEPS):
        # the ranks of one group hold identical weights after every step; the groups differ
        for g, ranks in ((0, (0, 1)), (1, (2, 3))):
            a, b = (runs[r]["steps"][t]["live_after"][g] for r in ranks)
            assert torch.equal(a, b), f"group {g} replicas differ after step {t}"
        assert not torch.equal(runs[0]["steps"][t]["live_after"][0], runs[2]["steps"][t]["live_after"][1])
        exchange_step = (t // EXCHANGE) * EXCHANGE
        for r in runs:
            step = runs[r]["steps"][t]
            g = group_of[r]
            other = 1 - g
            # teacher == the other group's weights at the exchange step, bit for bit
            sender = 0 if other == 0 else 2
            assert torch.equal(
                step["teachers"][other], runs[sender]["steps"][exchange_step]["live_before"][other]
            )
            # burn-in: exactly zero, then positive
            if t < BURN_IN:
                assert step["distill"][g] == 0.0
            else:
                assert step["distill"][g] > 0.0
            assert not step["teacher_grads"] and not step["teachers_require_grad"]
    # the groups read disjoint samples (over the whole run, which covers more than an epoch)
    seen = {g: set() for g in range(GROUPS)}
    for r in runs:
        for step in runs[r]["steps"]:
            seen[group_of[r]] |= set(step["indices"])
    assert seen[0].isdisjoint(seen[1]) and seen[0] and seen[1]
    # validation ran, with per-group accuracy and churn gathered over the groups (same on every rank)
    assert {"val/acc_group0", "val/acc_group1", "val/churn"} <= set(runs[0]["val"])
    assert runs[0]["val"] == runs[3]["val"]


@pytest.mark.slow
def test_distributed_checkpoint_holds_every_groups_live_weights_and_optimiser(distributed_run):
    out = Path(distributed_run[0]["out_dir"])
    ckpt = torch.load(out / "last.ckpt", weights_only=False)
    for g, rank in ((0, 0), (1, 2)):  # written by rank 0, yet group 1's weights are its live ones
        state = {
            k[len(f"replicas.{g}.") :]: v
            for k, v in ckpt["state_dict"].items()
            if k.startswith(f"replicas.{g}.")
        }
        saved = torch.cat([t.reshape(-1).float() for t in state.values()])
        assert torch.equal(saved, distributed_run[rank]["steps"][-1]["live_after"][g])
    # e.g. for inference in one process (the model object sits in the hyperparameters: weights_only=False)
    loaded = Codistillation.load_from_checkpoint(out / "last.ckpt", weights_only=False)
    assert torch.equal(flat_params(loaded.replicas[1]), distributed_run[2]["steps"][-1]["live_after"][1])
    groups = ckpt["optimizer_states"][0]["codistillation_group_states"]
    assert len(groups) == GROUPS
    momentum = [torch.cat([s["momentum_buffer"].reshape(-1) for s in g["state"].values()]) for g in groups]
    assert not torch.equal(momentum[0], momentum[1])


@pytest.mark.slow
def test_validate_after_fit_keeps_every_groups_live_weights(distributed_run):
    """Lightning syncs modules from rank 0 over the world before an evaluation outside fit: that must not
    hand group 1 the stale mirror of its replica that rank 0 holds."""
    live = {0: distributed_run[0]["after_fit"][0], 1: distributed_run[2]["after_fit"][1]}  # each group's leader
    assert not torch.equal(distributed_run[0]["after_fit"][1], live[1])  # rank 0's mirror of group 1 is stale
    for rank, run in distributed_run.items():
        for g in range(GROUPS):
            assert torch.equal(run["after_validate"][g], live[g]), (rank, g)


@pytest.mark.slow
def test_single_process_and_distributed_give_the_same_losses(distributed_run):
    """Both with shuffling on: the single-process loader reads the groups' shards as the strategy does."""
    _, rec = run_single_process()
    for t in range(STEPS):
        for g, ranks in ((0, (0, 1)), (1, (2, 3))):
            task = sum(distributed_run[r]["steps"][t]["task"][g] for r in ranks) / RANKS
            distill = sum(distributed_run[r]["steps"][t]["distill"][g] for r in ranks) / RANKS
            torch.testing.assert_close(task, rec.steps[t]["task"][g], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(distill, rec.steps[t]["distill"][g], rtol=1e-5, atol=1e-6)


# -- text ----------------------------------------------------------------------------------------------------
def write_tiny_text(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.txt"
    path.write_text(
        "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer. " * 20
    )
    return path


def test_text_data_missing_file_names_path_and_url(tmp_path):
    from lit_digest.codistillation.text import TINY_SHAKESPEARE_URL, ByteTextDataModule

    missing = tmp_path / "nope.txt"
    with pytest.raises(FileNotFoundError) as err:
        ByteTextDataModule(path=str(missing)).setup()
    assert str(missing) in str(err.value) and TINY_SHAKESPEARE_URL in str(err.value)


def test_byte_language_model_codistills_in_one_process(tmp_path):
    from lit_digest.codistillation.text import ByteLSTM, ByteTextDataModule

    path = write_tiny_text(tmp_path)
    data = ByteTextDataModule(path=str(path), seq_len=16, batch_size=8)
    data.setup()
    x, y = data.train_set[3]
    raw = path.read_bytes()
    assert bytes(x.tolist()) == raw[48:64] and bytes(y.tolist()) == raw[49:65]  # next-byte targets
    seed_everything(0)
    module = Codistillation(
        ByteLSTM(embed_dim=8, hidden_dim=16, num_layers=1),
        burn_in_steps=1,
        exchange_every=2,
        optim=Optim(name="adamw", lr=1e-2, weight_decay=0.0),
    )
    losses = []

    class Losses(Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            losses.append((outputs["task_loss"].clone(), outputs["distill_loss"].clone()))

    trainer = Trainer(
        accelerator="cpu",
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Losses()],
        limit_val_batches=1,
        val_check_interval=3,
    )
    trainer.fit(module, data)
    assert torch.all(losses[0][1] == 0.0) and torch.all(losses[1][1] > 0.0) and torch.all(losses[2][1] > 0.0)
    assert abs(losses[0][0][0].item() - torch.log(torch.tensor(256.0)).item()) < 0.5  # starts near uniform
    assert 0.0 <= trainer.callback_metrics["val/churn"] <= 1.0


# -- CIFAR-10 subset: churn and accuracy against independently trained models --------------------------------
def small_cifar_net() -> nn.Module:
    layers: list[nn.Module] = []
    c_in = 3
    for width in (16, 32, 64):
        layers += [nn.Conv2d(c_in, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        c_in = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, 10))


@pytest.mark.slow
@pytest.mark.measured  # a README row: `make measured` runs it and compares its numbers
def test_cifar_subset_codistillation_lowers_churn_without_losing_accuracy():
    path = CIFAR_SUBSET
    if not path.is_file():
        pytest.skip(f"{path} not found")
    import numpy as np

    with np.load(path) as npz:
        arrays = {k: torch.from_numpy(npz[k]) for k in npz.files}
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    std = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)

    def images(
        key: str,
    ) -> torch.Tensor:  # (N, 3, 32, 32) uint8 -> (N, 3, 16, 16) normalised, to keep the test fast
        return F.avg_pool2d((arrays[key].float() / 255 - mean) / std, 2)

    train = TensorDataset(images("train_images"), arrays["train_labels"].long())
    test = TensorDataset(images("test_images"), arrays["test_labels"].long())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the box is shared; oversubscribed threads are 10x slower here
    try:
        results = {}
        for name, alpha in (("independent", 0.0), ("codistilled", 1.0)):
            seed_everything(0)
            module = Codistillation(
                small_cifar_net,
                num_groups=2,
                alpha=alpha,
                burn_in_steps=40,
                exchange_every=20,
                optim=Optim(name="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4),
            )
            trainer = Trainer(
                accelerator="cpu",
                max_epochs=15,
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
            )
            trainer.fit(module, DataLoader(train, batch_size=128, shuffle=True, drop_last=True))
            results[name] = trainer.test(module, DataLoader(test, batch_size=512), verbose=False)[0]
    finally:
        torch.set_num_threads(threads)
    independent, codistilled = results["independent"], results["codistilled"]
    print_measured("codistillation-cifar-subset", {f"{k}_{m.split('/')[-1]}": 100 * v for k, r in results.items()
                                                   for m, v in r.items() if m in ("test/churn", "test/acc")})
    # alpha=0: two models on disjoint halves that never talk, i.e. two independently trained models
    assert codistilled["test/churn"] < independent["test/churn"] - 0.03
    assert codistilled["test/acc"] >= independent["test/acc"] - 0.01


if __name__ == "__main__":
    out_dir, *sizes = sys.argv[1:4]
    run_distributed_worker(out_dir, *map(int, sizes), *sys.argv[4:])
