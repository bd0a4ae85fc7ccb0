"""Meta-training: PPO's loss and GAE equal naive loops, the reward is the log speedup, the tasks train, and a
stopped meta-training resumes to exactly the policy of an uninterrupted one."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lit_digest.core.lightning import Trainer, pl
from lit_digest.lr_control import HELD_OUT, POOL, LearnedController, MetaTraining, TaskPool, load_policy
from lit_digest.lr_control.ppo import gae, ppo_loss
from lit_digest.lr_control.reward import BaselineCurve, log_speedup, shaped_rewards
from lit_digest.lr_control.tasks import (
    SCHEDULES,
    TaskModule,
    available,
    load_arrays,
    run_task,
    scaled,
    schedule_factor,
)


def _episodes(E=3, K=5, sizes=(7, 3, 3), seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(E, K)
    mask[1, 3:] = 0  # a shorter episode
    mask[2, 1:] = 0
    logits = [torch.randn(E, K, n, generator=g) for n in sizes]
    actions = torch.stack([torch.randint(n, (E, K), generator=g) for n in sizes], dim=-1)
    return dict(logits=logits, values=torch.randn(E, K, generator=g), actions=actions,
                old_logprob=torch.randn(E, K, generator=g) - 3, advantages=torch.randn(E, K, generator=g),
                returns=torch.randn(E, K, generator=g), mask=mask, rewards=torch.randn(E, K, generator=g))


def test_gae_equals_the_naive_backward_recursion():
    ep = _episodes()
    gamma, lam = 0.9, 0.8
    adv, ret = gae(ep["rewards"], ep["values"], ep["mask"], gamma, lam)
    for e in range(3):
        n = int(ep["mask"][e].sum())
        r, v = ep["rewards"][e].tolist(), ep["values"][e].tolist()
        expected, running = [0.0] * 5, 0.0
        for k in reversed(range(n)):
            next_v = v[k + 1] if k + 1 < n else 0.0
            running = r[k] + gamma * next_v - v[k] + gamma * lam * (running if k + 1 < n else 0.0)
            expected[k] = running
        assert adv[e].tolist() == pytest.approx(expected, abs=1e-5)
        assert ret[e, :n].tolist() == pytest.approx([a + b for a, b in zip(expected[:n], v[:n])], abs=1e-5)


def test_ppo_loss_equals_a_naive_loop():
    ep = _episodes()
    clip, vc, ec = 0.2, 0.5, 0.01
    loss, stats = ppo_loss(ep["logits"], ep["values"], ep["actions"], ep["old_logprob"], ep["advantages"],
                           ep["returns"], ep["mask"], clip, vc, ec)
    policy, value, entropy, count = 0.0, 0.0, 0.0, 0
    for e in range(3):
        for k in range(5):
            if not ep["mask"][e, k]:
                continue
            count += 1
            logp, ent = 0.0, 0.0
            for head, lg in enumerate(ep["logits"]):
                probs = [math.exp(x) for x in lg[e, k].tolist()]
                probs = [p / sum(probs) for p in probs]
                logp += math.log(probs[int(ep["actions"][e, k, head])])
                ent -= sum(p * math.log(p) for p in probs)
            ratio = math.exp(logp - float(ep["old_logprob"][e, k]))
            a = float(ep["advantages"][e, k])
            policy -= min(ratio * a, min(max(ratio, 1 - clip), 1 + clip) * a)
            value += 0.5 * (float(ep["values"][e, k]) - float(ep["returns"][e, k])) ** 2
            entropy += ent
    naive = policy / count + vc * value / count - ec * entropy / count
    assert float(loss) == pytest.approx(naive, rel=1e-5)
    assert float(stats["entropy"]) == pytest.approx(entropy / count, rel=1e-5)


def test_the_reward_is_the_clipped_log_speedup_and_telescopes():
    steps = list(range(10, 170, 10))  # 16 points
    losses = [2.0 * (s / 10) ** -0.5 + 0.1 for s in steps]
    curve = BaselineCurve(steps, losses, initial=2.5)
    assert curve.steps_to_reach(losses[7]) == pytest.approx(80)  # a measured point
    assert curve.steps_to_reach((losses[3] + losses[4]) / 2) == pytest.approx(45)  # interpolated
    beyond = 2.0 * (240 / 10) ** -0.5 + 0.1  # on the power law, past the end
    assert curve.steps_to_reach(beyond) == pytest.approx(240, rel=0.02)
    assert curve.steps_to_reach(0.11) == pytest.approx(320)  # capped at twice the run
    assert log_speedup(curve, losses[7], 40) == pytest.approx(math.log(2))
    assert log_speedup(curve, 3.0, 40) == -3 and log_speedup(curve, float("nan"), 40) == -3
    assert log_speedup(curve, 0.11, 1) == 3
    speedups = [0.1, -0.3, 0.5]
    assert sum(shaped_rewards(speedups)) == pytest.approx(0.5)


def test_schedules_and_tasks():
    assert [schedule_factor(s, 0.0) for s in SCHEDULES] == [1.0] * 7
    assert [round(schedule_factor(s, 1.0), 6) for s in SCHEDULES] == [1.0, 0.01, 0.0, 0.0, 0.01, 0.0, 0.1]
    assert not {s.name for s in POOL} & {s.name for s in HELD_OUT}
    assert not {(s.data, s.model) for s in POOL} & {(s.data, s.model) for s in HELD_OUT}
    for spec in [s for s in POOL + HELD_OUT if available(s)]:  # every model builds and its loss starts near log(C)
        module = TaskModule(spec)
        x, _, _, _ = load_arrays(spec.data)
        with torch.no_grad():
            loss = module._loss((x[:4], x[:4]) if spec.data == "bytes" else (x[:4], torch.zeros(4, dtype=torch.long)))
        assert math.isfinite(float(loss)) and float(loss) < 3 * math.log(256)
    spec = scaled(next(s for s in POOL if s.name == "cancer-mlp"), 0.4, 8)
    initial, curve = run_task(spec, seed=0, val_points=8)
    assert [s for s, _ in curve] == list(range(spec.steps // 8, spec.steps + 1, spec.steps // 8))
    assert curve[-1][1] < 0.5 * initial  # it learns


def _meta_trainer(tmp_path, epochs, **kwargs):
    return Trainer(accelerator="cpu", devices=1, max_epochs=epochs, logger=False, enable_progress_bar=False,
                   enable_model_summary=False, default_root_dir=tmp_path, **kwargs)


def _pool():
    return TaskPool(tasks=["cancer-mlp", "digits-mlp-wide"], step_scale=0.1, iterations_per_epoch=1)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_meta_training_resumes_to_the_same_policy(tmp_path):
    """Three iterations in one go, or two then a resume from the checkpoint: the same policy, bit for bit; and the
    exported policy.pt drives a LearnedController."""
    meta_args = dict(episodes_per_iteration=2, decisions=4, hidden=16, seed=3)
    whole = MetaTraining(**meta_args)
    _meta_trainer(tmp_path / "whole", 3).fit(whole, datamodule=_pool())
    assert int(whole.iteration) == 3

    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, every_n_epochs=1)
    _meta_trainer(tmp_path / "first", 2, callbacks=[ckpt]).fit(MetaTraining(**meta_args), datamodule=_pool())
    resumed = MetaTraining(**meta_args)
    _meta_trainer(tmp_path / "second", 3).fit(resumed, datamodule=_pool(), ckpt_path=str(tmp_path / "ckpt/last.ckpt"))
    assert int(resumed.iteration) == 3
    assert set(resumed.baselines) == set(whole.baselines)
    for a, b in zip(whole.policy.state_dict().values(), resumed.policy.state_dict().values()):
        assert torch.equal(a, b)
    assert any(not torch.equal(a, b) for a, b in zip(whole.policy.state_dict().values(),
                                                      MetaTraining(**meta_args).policy.state_dict().values()))

    policy = load_policy(tmp_path / "whole" / "policy.pt")
    for a, b in zip(whole.policy.state_dict().values(), policy.state_dict().values()):
        assert torch.equal(a, b)
    from_ckpt = load_policy(tmp_path / "ckpt/last.ckpt")
    assert from_ckpt.hidden == 16
    controller = LearnedController(checkpoint=str(tmp_path / "whole" / "policy.pt"))
    assert isinstance(controller.policy, type(policy)) and np.isfinite(
        float(controller.policy(torch.zeros(1, policy.num_features))[1].detach()))
