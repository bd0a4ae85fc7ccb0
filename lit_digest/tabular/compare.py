"""SAINT beside its baselines on the same splits and seeds, and pre-training against training from scratch with
few labels: one command, a Markdown table.

    python -m lit_digest.tabular.compare                       # the docs' table (docs/tabular.md): ~35 min
                                                               # on 2 shared CPU cores
    python -m lit_digest.tabular.compare --tables wine diabetes --seeds 3 --epochs 50
    python -m lit_digest.tabular.compare --quick               # a minute: 2 seeds, few epochs (a smoke run)
    python -m lit_digest.tabular.compare --tables data/churn.csv --target Churn --semi-table ''   # your table

For every table and seed s: the splits of ``TabularDataModule(split_seed=s)`` (so the spread covers the
split as well as the initialisation), then each model trained on the training split, selected on the
validation split, scored once on the test split. Neural models train ``--epochs`` epochs and keep the epoch
with the best validation score (the official code keeps the best of its evaluations, every 5 epochs);
LightGBM stops early on the validation loss. Scores: test AUROC (binary), accuracy (multi-class), RMSE
(regression), as mean +- standard deviation over the seeds; the time column is the total wall time of the
model over all seeds.

The semi-supervised part keeps ``--labels`` labelled training rows of ``--semi-table``: SAINT from scratch on
them, against SAINT pre-trained (``SAINTPretrain``, ``--pretrain-epochs``) on every training row and then
fine-tuned on them; LightGBM and logistic regression on the same labelled rows for reference.

A ``.csv`` / ``.parquet`` path in ``--tables`` (or ``--semi-table``) is read like a bundled table, its target
column named by ``--target``; the roles found for its columns are printed first. The run goes through
``lit_digest.core.measured.MeasuredRun``: the options as used, the Markdown tables, a plot of every model's
score per table (``plot.png``, also logged to W&B), ``results.json`` and the machine-readable line, in
``runs/measured/saint/<date>_<time>/`` (``--out`` for another parent folder).
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import os
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lit_digest.core.console import script
from lit_digest.core.lightning import Callback, LightningModule, Trainer, seed_everything
from lit_digest.core.measured import MeasuredRun
from lit_digest.tabular.baselines import TabularMLP, fit_lightgbm, fit_linear
from lit_digest.tabular.data import TableBatch, TableSchema, TabularDataModule
from lit_digest.tabular.saint import SAINT, SAINTPretrain
from lit_digest.tabular.tables import BUNDLED
from lit_digest.tabular.tasks import SCORE, predictions

__all__ = ["KeepBest", "split_score", "run_comparison", "run_semi_supervised", "plot_comparison", "main"]

MODELS = ("lightgbm", "linear", "mlp", "saint_s", "saint", "saint_i")
LABELS = {"lightgbm": "LightGBM", "linear": "logistic / linear regression", "mlp": "MLP", "saint_s": "SAINT-s",
          "saint": "SAINT", "saint_i": "SAINT-i", "scratch": "SAINT, from scratch",
          "pretrained": "SAINT, pre-trained + fine-tuned"}


class KeepBest(Callback):
    """Keeps the weights of the epoch with the best ``monitor`` and puts them back when training ends."""

    def __init__(self, monitor: str, higher_is_better: bool) -> None:
        self.monitor, self.sign = monitor, 1.0 if higher_is_better else -1.0
        self.best, self.state = -math.inf, None

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is not None and math.isfinite(float(value)) and self.sign * float(value) > self.best:
            self.best, self.state = self.sign * float(value), copy.deepcopy(pl_module.state_dict())

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.state is not None:
            pl_module.load_state_dict(self.state)


def split_score(schema: TableSchema, scores: np.ndarray, rows: TableBatch) -> float:
    """AUROC (binary), accuracy (multi-class) or RMSE in the target's units (regression) of ``scores``: class
    probabilities, or standardised regression outputs."""
    from sklearn.metrics import accuracy_score, roc_auc_score

    y = rows.y.numpy()
    if schema.task == "binary":
        return float(roc_auc_score(y, scores[:, 1]))
    if schema.task == "multiclass":
        return float(accuracy_score(y, scores.argmax(1)))
    return float(np.sqrt(np.mean((scores - y) ** 2)) * schema.target_std)


def _trainer(epochs: int, monitor: str, higher: bool) -> tuple[Trainer, KeepBest]:
    keep = KeepBest(monitor, higher)
    trainer = Trainer(accelerator="cpu", devices=1, max_epochs=epochs, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                      callbacks=[keep])
    return trainer, keep


@torch.no_grad()
def _neural_scores(model: LightningModule, rows: TableBatch, batch: int = 256) -> np.ndarray:
    model.eval()
    outs = [model(*(t[i:i + batch] for t in rows[:3])) for i in range(0, len(rows.y), batch)]
    out = torch.cat(outs)
    if model.schema.task == "regression":
        return out.squeeze(-1).double().numpy()  # standardised, as split_score expects
    return predictions(out, model.schema).double().numpy()


def fit_neural(model: LightningModule, data: TabularDataModule, epochs: int) -> LightningModule:
    name, higher = SCORE[data.schema.task]
    trainer, _ = _trainer(epochs, f"val/{name}", higher)
    trainer.fit(model, datamodule=data)
    return model


def _model(name: str, pretrained: str | None = None) -> LightningModule:
    if name == "mlp":
        return TabularMLP()
    return SAINT(variant=name, pretrained=pretrained)


def _run_one(name: str, data: TabularDataModule, seed: int, epochs: int) -> float:
    schema, test = data.schema, data.splits["test"]
    if name == "lightgbm":
        fitted = fit_lightgbm(data.splits["train"], data.splits["val"], schema, seed)
        return split_score(schema, fitted.scores(test), test)
    if name == "linear":
        return split_score(schema, fit_linear(data.splits["train"], schema, seed).scores(test), test)
    seed_everything(seed, verbose=False)
    return split_score(schema, _neural_scores(fit_neural(_model(name), data, epochs), test), test)


def _data(table: str, seed: int, target: str | None = None, verbose: bool = False, **kwargs: Any) -> TabularDataModule:
    """The splits of ``table`` for ``seed``; a file's target column is ``target`` (bundled tables know theirs)."""
    if table not in BUNDLED and not target:
        raise ValueError(f"'{table}' is not a bundled table ({', '.join(BUNDLED)}): name its target column with "
                         "--target.")
    data = TabularDataModule(table, target=None if table in BUNDLED else target, split_seed=seed, verbose=verbose,
                             **kwargs)
    data.setup()
    return data


def run_comparison(tables: list[str], models: list[str], seeds: list[int], epochs: int,
                   log: Any = print, target: str | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(table, model): {"scores": [...], "seconds": total}}`` over the seeds (``target``: see ``_data``)."""
    results: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: {"scores": [], "seconds": 0.0})
    for table in tables:
        for seed in seeds:
            data = _data(table, seed, target)
            for name in models:
                start = time.perf_counter()
                score = _run_one(name, data, seed, epochs)
                entry = results[(table, name)]
                entry["scores"].append(score)
                entry["seconds"] += time.perf_counter() - start
                log(f"  {table} seed {seed} {LABELS[name]}: {score:.4f} ({time.perf_counter() - start:.1f} s)")
    return dict(results)


def run_semi_supervised(table: str, labels: int, seeds: list[int], epochs: int, pretrain_epochs: int,
                        log: Any = print, target: str | None = None) -> dict[str, dict[str, Any]]:
    """``{model: {"scores": [...], "seconds": total}}`` with ``labels`` labelled training rows."""
    results: dict[str, dict[str, Any]] = defaultdict(lambda: {"scores": [], "seconds": 0.0})
    for seed in seeds:
        data = _data(table, seed, target, labels_count=labels)
        schema, test = data.schema, data.splits["test"]
        for name in ("lightgbm", "linear", "scratch", "pretrained"):
            start = time.perf_counter()
            if name in ("lightgbm", "linear"):
                score = _run_one(name, data, seed, epochs)
            else:
                ckpt = None
                with tempfile.TemporaryDirectory() as tmp:
                    if name == "pretrained":
                        seed_everything(seed, verbose=False)
                        unlabelled = _data(table, seed, target, labels_count=labels, train_rows="all")
                        pre = SAINTPretrain(variant="saint")
                        trainer = Trainer(accelerator="cpu", devices=1, max_epochs=pretrain_epochs, logger=False,
                                          enable_checkpointing=False, enable_progress_bar=False,
                                          enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0)
                        trainer.fit(pre, datamodule=unlabelled)
                        ckpt = str(Path(tmp) / "pretrained.ckpt")
                        torch.save({"state_dict": pre.state_dict()}, ckpt)
                    seed_everything(seed, verbose=False)
                    model = fit_neural(_model("saint", pretrained=ckpt), data, epochs)
                    score = split_score(schema, _neural_scores(model, test), test)
            results[name]["scores"].append(score)
            results[name]["seconds"] += time.perf_counter() - start
            log(f"  {table} {labels} labels seed {seed} {LABELS[name]}: {score:.4f} "
                f"({time.perf_counter() - start:.1f} s)")
    return dict(results)


def _cell(scores: list[float]) -> str:
    spread = np.std(scores, ddof=1) if len(scores) > 1 else 0.0
    return f"{np.mean(scores):.4f} ± {spread:.4f}"


def _key(table: str) -> str:
    """A table's name in the measured numbers (``saint_fair``, ``lightgbm_churn`` for ``data/churn.csv``)."""
    return Path(table).stem if table not in BUNDLED else table


def _metric(task: str) -> str:
    return SCORE[task][0].upper().replace("ACC", "accuracy")


def _rows(results: dict, tables: list[str], models: list[str]) -> list[list[str]]:
    rows = []
    for name in models:
        seconds = sum(results[(t, name)]["seconds"] for t in tables)
        rows.append([LABELS[name], *(_cell(results[(t, name)]["scores"]) for t in tables), f"{seconds:.0f} s"])
    return rows


def plot_comparison(results: dict, semi: dict | None, tables: list[str], models: list[str], metrics: dict[str, str],
                    semi_title: str = ""):
    """One panel per table (and one for the few-labels run): every model's mean test score over the seeds, the
    bar's whisker one standard deviation, each seed a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(f"{t} ({metrics[t]})", {LABELS[m]: results[(t, m)]["scores"] for m in models}) for t in tables]
    if semi:
        panels.append((semi_title, {LABELS[m]: r["scores"] for m, r in semi.items()}))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (title, scores) in zip(axes[0], panels):
        names = list(scores)
        means = [np.mean(scores[n]) for n in names]
        spreads = [np.std(scores[n], ddof=1) if len(scores[n]) > 1 else 0.0 for n in names]
        ax.barh(range(len(names)), means, xerr=spreads, color="#9ab", capsize=3)
        for i, n in enumerate(names):
            ax.plot(scores[n], [i] * len(scores[n]), "k.", markersize=4)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        low = min(min(v) for v in scores.values())
        high = max(max(v) for v in scores.values())
        ax.set_xlim(low - 0.15 * (high - low + 1e-9), high + 0.1 * (high - low + 1e-9))
        ax.invert_yaxis()
        ax.set_title(title, fontsize=9)
    fig.suptitle("test score per model, mean and spread over the seeds", fontsize=10)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="python -m lit_digest.tabular.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", nargs="+", default=["breast_cancer", "wine", "diabetes", "fair"],
                        help=f"bundled tables ({', '.join(BUNDLED)}) or .csv / .parquet files (with --target)")
    parser.add_argument("--target", default=None, help="the target column of the .csv / .parquet tables")
    parser.add_argument("--models", nargs="+", default=["lightgbm", "linear", "mlp", "saint_s", "saint"],
                        choices=MODELS)
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1 (splits and initialisation)")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs of the neural models (official: 100)")
    parser.add_argument("--semi-table", default="fair", help="table of the few-labels comparison ('' skips it)")
    parser.add_argument("--labels", type=int, default=100, help="labelled training rows in the few-labels comparison")
    parser.add_argument("--pretrain-epochs", type=int, default=20, help="official: 50")
    parser.add_argument("--finetune-epochs", type=int, default=100, help="epochs on the labelled rows")
    parser.add_argument("--quick", action="store_true", help="2 seeds, 2 epochs, 2 pre-training epochs: a smoke run")
    parser.add_argument("--out", default=None, help="parent folder of the run's folder (default runs/measured)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs, args.pretrain_epochs, args.finetune_epochs = 2, 2, 2, 2
    for table in [*args.tables, *([args.semi_table] if args.semi_table else [])]:
        if table not in BUNDLED and not args.target:
            parser.error(f"'{table}' is not a bundled table ({', '.join(BUNDLED)}): name its target column with "
                         "--target")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)  # no per-run banners: one line per run, then the table
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*number of training batches.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    # every table read once before the run starts: a missing file or a bad column stops here, in one line, and the
    # roles found for each table's columns are printed
    tasks = {t: _data(t, 0, args.target, verbose=True).schema.task for t in dict.fromkeys([*args.tables,
                                                                                         args.semi_table]) if t}
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    run = MeasuredRun("saint", settings=settings, out=args.out)
    s = run.settings
    seeds = list(range(s["seeds"]))
    start = time.perf_counter()
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    results = run_comparison(s["tables"], s["models"], seeds, s["epochs"], log, s["target"])
    metrics = {t: _metric(tasks[t]) for t in s["tables"]}
    semi, title = None, ""
    if s["semi_table"]:
        semi = run_semi_supervised(s["semi_table"], s["labels"], seeds, s["finetune_epochs"], s["pretrain_epochs"],
                                   log, s["target"])
        metric = _metric(tasks[s["semi_table"]])
        title = f"{s['semi_table']}, {s['labels']} labelled training rows ({metric})"
    header = ["model", *(f"{t} ({metrics[t]})" for t in s["tables"]), "time (all tables, all seeds)"]
    text = run.table(header, _rows(results, s["tables"], s["models"]))
    if semi:
        text += "\n" + run.table(["model", "test score", "time (all seeds)"],
                                 [[LABELS[n], _cell(r["scores"]), f"{r['seconds']:.0f} s"] for n, r in semi.items()],
                                 title=title)
    command = "python -m lit_digest.tabular.compare " + " ".join(argv if argv is not None else sys.argv[1:])
    footer = (f"\n\n`{command.strip()}`: seeds {seeds}, {s['epochs']} epochs (neural models), "
              f"{s['pretrain_epochs']} pre-training + {s['finetune_epochs']} fine-tuning epochs; "
              f"{time.perf_counter() - start:.0f} s wall time on {torch.get_num_threads()} CPU thread(s).")
    print(footer.strip())
    run.figure(plot_comparison(results, semi, s["tables"], s["models"], metrics, title))
    numbers = {f"{m}_{_key(t)}": float(np.mean(results[(t, m)]["scores"])) for t in s["tables"] for m in s["models"]}
    numbers.update({f"{n}_{_key(s['semi_table'])}_{s['labels']}_labels": float(np.mean(r["scores"]))
                    for n, r in (semi or {}).items()})
    run.finish(numbers)
    return text + footer


if __name__ == "__main__":
    raise SystemExit(script(main)())
