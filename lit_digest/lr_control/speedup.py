"""The speedup table on held-out tasks: the learned controller, the heuristic one and the best AdamW grid point.

    python -m lit_digest.lr_control.speedup --policy runs/lr_control-pool/<run>/policy.pt --seeds 0 1 2

For every held-out task (``tasks.HELD_OUT``) and seed it runs the paper's baseline grid, AdamW at learning rates
1e-4, 3e-4, 1e-3, 3e-3, 1e-2 under its seven schedules (arXiv 2106.00958, Sec. 4), and both controllers started from
AdamW's default 1e-3 with a constant schedule (what a user gets without tuning). The target is the grid's best
final validation loss at that seed; each method's number is the first step at which its validation loss (measured
32 times per run) reaches it, and the speedup is the best grid point's steps over the method's. ``--grid-only``
runs the baselines alone; ``--reuse`` takes the runs of earlier ``--out`` files instead of repeating them (every
run is seeded: a saved curve is the curve a rerun gives), e.g. to add a newly meta-trained policy to a saved
grid, or to merge task/seed pairs run in separate processes; only the pairs those files hold are reported;
``--lrs`` changes the grid's learning rates; ``--pool-check`` instead compares the controllers on the
meta-training pool itself. Prints a Markdown table and writes every curve to ``--out`` (JSON).

The run goes through ``lit_digest.core.measured.MeasuredRun`` (``runs/measured/lr_control/<date>_<time>/``,
``--measured-dir`` for another parent folder): the options as used, the table, ``plot.png`` with the validation
curves of every task (the best grid point, AdamW untuned, the heuristic and the learned controller, averaged over
the seeds, and the target; also logged to W&B), ``results.json`` and the machine-readable line. ``--policy`` is
checked before anything runs: a file that is no ``MetaTraining`` checkpoint nor ``policy.pt`` is refused at once.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from lit_digest.core.console import script
from lit_digest.core.measured import MeasuredRun
from lit_digest.lr_control.callback import HyperparameterControl
from lit_digest.lr_control.policy import LearnedController, PlateauController, load_policy
from lit_digest.lr_control.tasks import HELD_OUT, SCHEDULES, available, run_task, scaled

__all__ = ["GRID_LRS", "steps_to_reach", "table", "table_rows", "plot_curves", "numbers", "main"]

GRID_LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
START_LR = 1e-3
VAL_POINTS = 32


def steps_to_reach(curve: list[tuple[int, float]], target: float) -> float:
    """The first step whose validation loss is at or below ``target`` (``inf`` if none)."""
    return next((float(step) for step, loss in curve if loss <= target * (1 + 1e-9)), math.inf)


def _fmt_steps(values: list[float]) -> str:
    reached = [v for v in values if math.isfinite(v)]
    if not reached:
        return f"not reached (0/{len(values)})"
    mean = f"{np.mean(reached):.0f}"
    return mean if len(reached) == len(values) else f"{mean} ({len(reached)}/{len(values)} seeds)"


def _speedup(grid: list[float], method: list[float]) -> str:
    ratios = [g / m for g, m in zip(grid, method) if math.isfinite(m)]
    if not ratios:
        return "-"
    text = f"{math.exp(np.mean(np.log(ratios))):.2f}x"
    return text if len(ratios) == len(grid) else f"{text} ({len(ratios)}/{len(grid)})"


METHODS = ("grid", "heuristic", "learned")


def _method(key: str) -> str:
    return "grid" if key.startswith("adamw") else key.split()[0]


def _saved_runs(paths: list[str], policy: str | None) -> dict:
    """Runs of earlier ``--out`` files that this command would repeat: ``{(task, steps, seed): (runs, wall)}``,
    the AdamW grid and the heuristic always, the learned controller's only when it was the same ``policy`` file."""
    found: dict = {}
    for path in paths:
        saved = json.loads(Path(path).read_text())
        reuse = {"grid", "heuristic"} | ({"learned"} if policy and saved.get("policy") == policy else set())
        pairs = [(name, task, seed) for name, task in saved["tasks"].items() for seed in task["seeds"]]
        for name, task, seed in pairs:
            runs, wall = found.setdefault((name, task["steps"], int(seed)), ({}, {}))
            kept = {k: v for k, v in task["seeds"][seed].items() if _method(k) in reuse}
            runs.update({k: v if k.endswith("decisions") else [tuple(p) for p in v] for k, v in kept.items()})
            seed_wall = task.get("wall_s", {}).get(seed) or (saved["wall_s"] if len(pairs) == 1 else {})
            wall.update({m: seed_wall.get(m, 0.0) for m in {_method(k) for k in kept}})
    return found


def run(policy: str | None, seeds: list[int], task_names: list[str], step_scale: float, grid_only: bool,
        reuse: list[str] = (), lrs: tuple[float, ...] | None = None) -> dict:
    specs = [scaled(s, step_scale, VAL_POINTS) for s in HELD_OUT if (not task_names or s.name in task_names)]
    grid_keys = [(f"adamw lr={lr:g} {schedule}", lr, schedule) for lr in (lrs or GRID_LRS) for schedule in SCHEDULES]
    results: dict = {"seeds": seeds, "policy": policy, "lrs": [lr for _, lr, _ in grid_keys[::len(SCHEDULES)]],
                     "tasks": {}, "reused": list(reuse)}
    saved = _saved_runs(list(reuse), policy)
    for spec in specs:
        if not available(spec):
            print(f"skipping {spec.name}: its data are not on this machine")
            continue
        task: dict = {"steps": spec.steps, "seeds": {}, "wall_s": {}}
        for seed in seeds:
            runs, saved_wall = saved.get((spec.name, spec.steps, seed), ({}, {}))
            if reuse and not runs:
                print(f"{spec.name} seed {seed}: not in the --reuse files, skipped", flush=True)
                continue
            wanted = {key for key, _, _ in grid_keys}
            runs = {k: v for k, v in runs.items() if k in wanted or _method(k) != "grid"}
            wall = {m: saved_wall.get(m, 0.0) for m in METHODS}
            start = time.perf_counter()
            for key, lr, schedule in grid_keys:
                if key not in runs:  # every run is seeded: a saved curve is the one a rerun gives
                    runs[key] = run_task(spec, seed, lr=lr, schedule=schedule, val_points=VAL_POINTS)[1]
            wall["grid"] += time.perf_counter() - start
            controllers = {} if grid_only else {"heuristic": lambda: PlateauController()}
            if policy and not grid_only:
                controllers["learned"] = lambda: LearnedController(checkpoint=policy)
            for name, make in controllers.items():
                if name in runs:
                    continue
                start = time.perf_counter()
                control = HyperparameterControl(make(), decisions=16)
                runs[name] = run_task(spec, seed, lr=START_LR, callbacks=[control], val_points=VAL_POINTS)[1]
                runs[name + " decisions"] = control.history
                wall[name] += time.perf_counter() - start
            task["seeds"][seed], task["wall_s"][seed] = runs, wall
            print(f"{spec.name} seed {seed}: done ({sum(wall.values()):.0f}s)", flush=True)
        if task["seeds"]:
            results["tasks"][spec.name] = task
    results["wall_s"] = {m: sum(t["wall_s"][s][m] for t in results["tasks"].values() for s in t["seeds"])
                         for m in METHODS}
    return results


def table_rows(results: dict) -> tuple[list[str], list[list[str]]]:
    """One row per task: the best grid point's own steps to its final loss, then those of AdamW at the controllers'
    start (1e-3, constant: no tuning, no controller), of the heuristic and of the learned controller."""
    start = f"adamw lr={START_LR:g} constant"
    header = ["task", "steps", "seeds", "best grid point (per seed)", "target: best final val loss",
              "steps to target: best grid point / untuned start / heuristic / learned",
              "speedup over the best grid point: untuned start / heuristic / learned",
              "final val loss: untuned start / heuristic / learned"]
    rows = []
    for name, task in results["tasks"].items():
        grid_steps, targets, best = [], [], []
        steps: dict[str, list[float]] = {start: [], "heuristic": [], "learned": []}
        finals: dict[str, list[float]] = {}
        for runs in task["seeds"].values():
            grid = {k: v for k, v in runs.items() if k.startswith("adamw")}
            finals_grid = {k: v[-1][1] for k, v in grid.items() if v and math.isfinite(v[-1][1])}
            point = min(finals_grid, key=finals_grid.get)
            target = finals_grid[point]
            targets.append(target)
            best.append(point.removeprefix("adamw "))
            grid_steps.append(steps_to_reach(grid[point], target))
            for method in steps:
                if method in runs:
                    steps[method].append(steps_to_reach(runs[method], target))
                    finals.setdefault(method, []).append(runs[method][-1][1] if runs[method] else math.nan)
        cell = " / ".join(_fmt_steps(steps[m]) if steps[m] else "-" for m in steps)
        speed = " / ".join(_speedup(grid_steps, steps[m]) if steps[m] else "-" for m in steps)
        final = " / ".join(f"{np.mean(finals[m]):.3f}" if m in finals else "-" for m in steps)
        seeds = " ".join(map(str, task["seeds"]))
        rows.append([name, str(task["steps"]), seeds, ", ".join(sorted(set(best))), f"{np.mean(targets):.3f}",
                     f"{_fmt_steps(grid_steps)} / {cell}", speed, final])
    return header, rows


def table(results: dict) -> str:
    """``table_rows`` as Markdown."""
    header, rows = table_rows(results)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def pool_check(policy: str | None, seed: int = 0) -> str:
    """In-distribution check: on every pool task, started at its nominal AdamW lr times 0.1, 1 and 10 (constant
    schedule), the final log speedup over the task's meta-training baseline (the reward's ``s``), without a
    controller, with the heuristic and with the learned one; means over the tasks."""
    from lit_digest.lr_control.meta import TaskPool
    from lit_digest.lr_control.reward import BaselineCurve, log_speedup

    rows: dict[str, dict[float, list[float]]] = {}
    for spec in TaskPool().specs(16):
        initial, points = run_task(spec, seed=0)
        curve = BaselineCurve([p for p, _ in points], [v for _, v in points], initial)
        makers = {"no controller": None, "heuristic": lambda: PlateauController()}
        if policy:
            makers["learned"] = lambda: LearnedController(checkpoint=policy)
        for start in (0.1, 1.0, 10.0):
            for name, make in makers.items():
                callbacks = [] if make is None else [HyperparameterControl(make(), decisions=16)]
                _, points = run_task(spec, seed + 1, lr=spec.lr * start, callbacks=callbacks)
                final = log_speedup(curve, points[-1][1] if points else math.nan, spec.steps)
                rows.setdefault(name, {}).setdefault(start, []).append(final)
    lines = ["| pool tasks, mean final log speedup | start lr x0.1 | x1 | x10 |", "|---|---|---|---|"]
    for name, by_start in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{np.mean(v):+.3f}" for v in by_start.values()) + " |")
    return "\n".join(lines)


def _mean_curve(curves: list[list]) -> tuple[np.ndarray, np.ndarray]:
    length = min(len(c) for c in curves)
    steps = np.array([step for step, _ in curves[0][:length]])
    return steps, np.mean([[loss for _, loss in c[:length]] for c in curves], axis=0)


def plot_curves(results: dict):
    """One panel per task: validation loss against the step, averaged over the seeds, for the best grid point (of
    each seed), AdamW at the controllers' start, the heuristic and the learned controller; the dashed line is the
    target (the best grid point's final loss)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = f"adamw lr={START_LR:g} constant"
    names = list(results["tasks"])
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(4.4 * max(1, len(names)), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        seeds = list(results["tasks"][name]["seeds"].values())
        best, targets = [], []
        for runs in seeds:
            finals = {k: v[-1][1] for k, v in runs.items() if k.startswith("adamw") and v and math.isfinite(v[-1][1])}
            point = min(finals, key=finals.get)
            best.append(runs[point])
            targets.append(finals[point])
        lines = {"best grid point": best}
        for method, label in ((start, "AdamW 1e-3 constant (untuned)"), ("heuristic", "plateau heuristic"),
                              ("learned", "learned controller")):
            if all(method in runs for runs in seeds):
                lines[label] = [runs[method] for runs in seeds]
        for label, curves in lines.items():
            steps, losses = _mean_curve(curves)
            ax.plot(steps, losses, label=label)
        ax.axhline(float(np.mean(targets)), color="gray", linestyle="--", linewidth=1, label="target")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(f"{name} ({len(seeds)} seed(s))", fontsize=9)
    axes[0][0].set_ylabel("validation loss")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


NUMBER_KEYS = {"wine-mlp": "wine", "fashion-cnn": "fashion_cnn", "bytes-gru": "gru", "heuristic": "plateau",
               "learned": "learned"}  # names in the measured numbers: learned_gru, plateau_wine, ...


def numbers(results: dict) -> dict[str, float]:
    """Per task: the geometric-mean speedup of each controller over the best grid point (seeds where the target
    was reached; ``learned_gru``, ``plateau_wine``), and the fraction of seeds that reached it (``..._reached``)."""
    out: dict[str, float] = {}
    for name, task in results["tasks"].items():
        for method in ("heuristic", "learned"):
            key = f"{NUMBER_KEYS[method]}_{NUMBER_KEYS.get(name, name.replace('-', '_'))}"
            ratios, reached = [], 0
            for runs in task["seeds"].values():
                if method not in runs:
                    continue
                finals = {k: v[-1][1] for k, v in runs.items() if k.startswith("adamw") and v}
                point = min(finals, key=finals.get)
                grid, mine = steps_to_reach(runs[point], finals[point]), steps_to_reach(runs[method], finals[point])
                if math.isfinite(mine):
                    ratios.append(grid / mine)
                    reached += 1
            if ratios:
                out[key] = float(math.exp(np.mean(np.log(ratios))))
            if any(method in runs for runs in task["seeds"].values()):
                out[f"{key}_reached"] = reached / len(task["seeds"])
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", help="policy.pt or a MetaTraining checkpoint (without it: no learned row)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tasks", nargs="*", default=[], help=f"held-out task names: {[s.name for s in HELD_OUT]}")
    parser.add_argument("--step-scale", type=float, default=1.0, help="every task's budget times this")
    parser.add_argument("--lrs", type=float, nargs="+", default=list(GRID_LRS), help="the grid's learning rates")
    parser.add_argument("--grid-only", action="store_true", help="only the AdamW baselines")
    parser.add_argument("--out", default="runs/lr_control-speedup/results.json", help="every curve, as JSON")
    parser.add_argument("--reuse", nargs="*", default=[],
                        help="runs of earlier --out files (grid, heuristic; learned if the same --policy); "
                             "only the task/seed pairs they hold are reported")
    parser.add_argument("--pool-check", action="store_true", help="instead: the in-distribution check on the pool")
    parser.add_argument("--measured-dir", default=None,
                        help="parent folder of the measured run's folder (default runs/measured)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.tasks) - {s.name for s in HELD_OUT})
    if unknown:
        parser.error(f"unknown held-out task(s) {unknown}; choose from {[s.name for s in HELD_OUT]}")
    for path in args.reuse:
        if not Path(path).is_file():
            raise FileNotFoundError(f"--reuse {path}: no such file (give the --out JSON of an earlier run)")
    if args.policy:
        load_policy(args.policy)  # a wrong file is refused now, not after the grid's runs
    torch.set_num_threads(1)
    start = time.perf_counter()
    if args.pool_check:
        print(pool_check(args.policy))
        print(f"\nwall time {time.perf_counter() - start:.0f}s")
        return {}
    settings = {k: v for k, v in vars(args).items() if k not in ("measured_dir", "pool_check")}
    measured = MeasuredRun("lr_control", settings=settings, out=args.measured_dir)
    s = measured.settings
    results = run(s["policy"], s["seeds"], s["tasks"], s["step_scale"], s["grid_only"], s["reuse"], tuple(s["lrs"]))
    results["total_wall_s"] = time.perf_counter() - start
    out = Path(s["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=float))
    measured.table(*table_rows(results))
    wall = ", ".join(f"{k} {v:.0f}s" for k, v in results["wall_s"].items())
    print(f"\nseeds {s['seeds']}; wall time {results['total_wall_s']:.0f}s ({wall}); curves in {out}")
    if results["tasks"]:
        measured.figure(plot_curves(results))
    measured.finish({**numbers(results), **{f"wall_s_{k}": v for k, v in results["wall_s"].items()}})
    return results


if __name__ == "__main__":
    raise SystemExit(script(main)())
