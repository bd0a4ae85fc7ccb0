"""GenRep's two findings at small scale, on real Fashion-MNIST test images: one command, a Markdown table.

    python -m lit_digest.ssl.genrep.experiment                 # the table of docs/genrep.md (about 30 min, 1 core)
    python -m lit_digest get fashion_mnist                     # first, where Debian's package is not installed
    python -m lit_digest.ssl.genrep.experiment --sigmas 0.25 0.5 1 --steps 500 --eval-train 60000
    python -m lit_digest.ssl.genrep.experiment --quick         # about a minute: a smoke run of the whole pipeline

1. The generator: ``configs/genrep/dcgan/fashion_mnist.yaml`` (an unconditional DCGAN) trained ``--gan-epochs``
   on the 60k real training images, or ``--generator`` (a checkpoint; the command's own is reused when it is
   there).
2. The encoders, every one from ``configs/genrep/sigma_sweep.yaml`` (SimCLR, the same small ConvNet, views,
   optimiser, seed and ``--steps`` of batch 256): on fresh views ``G(z)``, ``G(z + w)`` rendered every step at
   every sigma of ``--sigmas`` and at sigma 0 (the pixel augmentations alone, the paper's "Tx" row), with the
   latent walk alone at ``--latent-only`` (no pixel augmentation, the paper's "Tz" row), and the real-data
   baseline of ``configs/genrep/real_baseline.yaml`` (the real training images, the same budget).
3. Frozen features of every encoder (and of a random initialisation of the same network) on the real images: a
   weighted kNN (k = 20, T = 0.07) and a logistic-regression probe fitted on ``--eval-train`` labeled training
   images (a fixed random subset; 60000: all), accuracy on the 10k test images.

The paper's findings (arXiv 2106.05258, section 4 and figure 5): latent views plus pixel augmentations beat pixel
augmentations alone on generated data, and accuracy against sigma rises then falls (an inverse U). The command
prints its table, says whether each finding holds in it, and writes ``results.json`` in ``--out``; the table, the
plot of accuracy against sigma (``sigma_sweep.png``, also logged to W&B) and the settings as used go to
``runs/measured/genrep/<date>_<time>/`` (``lit_digest.core.measured.MeasuredRun``).

Fashion-MNIST is read from ``--data-dir``: by default Debian's ``/usr/share/datasets/fashion-mnist`` (``apt install
dataset-fashion-mnist``) when it is there, else ``data`` (``python -m lit_digest get fashion_mnist`` puts the four
original files in ``data/FashionMNIST/raw``).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from lit_digest.core.checkpoints import expect_checkpoint
from lit_digest.core.console import script
from lit_digest.core.download import missing_data_error
from lit_digest.core.measured import MeasuredRun
from lit_digest.ssl.knn import extract_features, knn_accuracy, linear_probe_accuracy
from lit_digest.ssl.mnist import FashionMNISTDataModule

__all__ = ["main", "check_fashion_mnist", "default_data_dir", "evaluate_encoder", "findings", "format_table",
           "sweep_figure"]

DEBIAN = "/usr/share/datasets/fashion-mnist"
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def check_fashion_mnist(data_dir: str | os.PathLike) -> None:
    """Fails at once, naming the folder and the fix, when ``data_dir`` lacks Fashion-MNIST's four IDX files
    (plain or ``.gz``, in the folder itself or in torchvision's ``FashionMNIST/raw/``)."""
    root = Path(data_dir)
    missing = [name for name in FILES if not any((folder / f"{name}{ext}").is_file()
                                                 for folder in (root, root / "FashionMNIST" / "raw")
                                                 for ext in ("", ".gz"))]
    if missing:
        raise missing_data_error(
            "Fashion-MNIST", root, reason=f"missing {', '.join(missing)}",
            fix=f"install Debian's package, which puts the files in {DEBIAN}: apt install dataset-fashion-mnist; "
                "or run `python -m lit_digest get fashion_mnist` (it puts them in data/FashionMNIST/raw) and pass "
                "--data-dir data; or pass --data-dir a folder holding the four IDX files (plain or .gz)")


def _configs() -> Path:
    from lit_digest.cli.console import configs_dir

    return configs_dir() / "genrep"


def _fit(args: list[str]) -> Any:
    """``python -m lit_digest fit ARGS`` in this process, quietly; returns the LightningCLI."""
    from lit_digest.cli import main as cli_main

    argv, sys.argv = sys.argv, sys.argv[:1]  # LightningCLI warns when it sees this command's own arguments
    try:
        return cli_main(["fit", *args, "--trainer.logger", "false", "--trainer.enable_progress_bar", "false"])
    finally:
        sys.argv = argv


@torch.no_grad()
def evaluate_encoder(encoder: torch.nn.Module, data: FashionMNISTDataModule, k: int = 20,
                     temperature: float = 0.07, probe_steps: int = 300) -> dict[str, float]:
    """kNN and linear-probe test accuracy of frozen ``encoder`` features (the DataModule's normalisation), the
    bank and the probe's training set being the DataModule's labeled training images."""
    device = next(encoder.parameters()).device
    train_x, train_y = extract_features(encoder, data.eval_train_dataloader(), device, data.prepare_images)
    test_x, test_y = extract_features(encoder, data.test_dataloader(), device, data.prepare_images)
    classes = int(max(train_y.max(), test_y.max())) + 1
    return {"knn": knn_accuracy(test_x, test_y, train_x, train_y, classes, k, temperature),
            "linear": linear_probe_accuracy(train_x, train_y, test_x, test_y, classes, probe_steps)}


def findings(rows: list[dict[str, Any]], metric: str = "linear") -> dict[str, Any]:
    """Whether the table shows the paper's two findings, on ``metric``, over the arms with pixel augmentations:
    (1) the best latent-walk arm (sigma > 0) beats sigma 0 (pixel augmentations alone); (2) an inverse U: over
    the whole sweep, sigma 0 included (the walk of length 0), the peak lies strictly inside, above both ends."""
    sweep = sorted((r for r in rows if r["kind"] == "generated" and r.get("pixel", True)), key=lambda r: r["sigma"])
    pixel_only = next((r for r in sweep if r["sigma"] == 0), None)
    walks = [r for r in sweep if r["sigma"] > 0]
    out: dict[str, Any] = {"metric": metric}
    if pixel_only is not None and walks:
        best = max(walks, key=lambda r: r[metric])
        out.update(best_sigma=best["sigma"], gain_over_pixel_only=best[metric] - pixel_only[metric],
                   latent_beats_pixel=best[metric] > pixel_only[metric])
    if len(sweep) >= 3:
        values = [r[metric] for r in sweep]
        peak = max(range(len(values)), key=values.__getitem__)
        out["inverse_u"] = 0 < peak < len(values) - 1
        out["peak_sigma"] = sweep[peak]["sigma"]
        out["fall_after_peak"] = values[peak] - values[-1]
    return out


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| encoder trained on | views | sigma | kNN (k=20) | linear probe | training time |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        sigma = "-" if r.get("sigma") is None else f"{r['sigma']:g}"
        time_s = "-" if r.get("seconds") is None else f"{r['seconds']:.0f} s"
        lines.append(f"| {r['name']} | {r['views']} | {sigma} | {100 * r['knn']:.1f} | {100 * r['linear']:.1f} | "
                     f"{time_s} |")
    return "\n".join(lines)


def _quiet() -> None:
    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (".*does not have many workers.*", ".*number of training batches.*", ".*LeafSpec.*",
                    ".*exists and is not empty.*", ".*val_dataloader.*validation_step.*"):
        warnings.filterwarnings("ignore", pattern)


def _generator(args: argparse.Namespace, out: Path, log) -> tuple[Path, float | None]:
    if args.generator:
        from lit_digest.ssl.genrep.dcgan import DCGAN

        expect_checkpoint(args.generator, DCGAN)  # at once, not after the baseline's training
        return Path(args.generator), None
    ckpt = out / "generator" / "checkpoints" / "last.ckpt"
    if ckpt.is_file():
        log(f"generator: reusing {ckpt} (delete it to train a new one)")
        return ckpt, None
    log(f"generator: training configs/genrep/dcgan/fashion_mnist.yaml for {args.gan_epochs} epoch(s)")
    start = time.perf_counter()
    extra = ["--trainer.limit_train_batches", "20"] if args.quick else []
    shutil.rmtree(out / "generator", ignore_errors=True)
    _fit(["--config", str(_configs() / "dcgan" / "fashion_mnist.yaml"), "--trainer.max_epochs", str(args.gan_epochs),
          "--trainer.default_root_dir", str(out / "generator"), "--data.init_args.data_dir", args.data_dir, *extra])
    return ckpt, time.perf_counter() - start


def _arm(name: str, config: str, overrides: list[str], args: argparse.Namespace, out: Path) -> tuple[Any, float]:
    folder = out / name
    shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    cli = _fit(["--config", str(_configs() / config), "--trainer.default_root_dir", str(folder),
                "--trainer.max_steps", str(args.steps), "--trainer.limit_val_batches", "0",
                "--trainer.num_sanity_val_steps", "0", "--seed_everything", str(args.seed), *overrides])
    return cli.model, time.perf_counter() - start


def run(args: argparse.Namespace, log=print) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    check_fashion_mnist(args.data_dir)
    data = FashionMNISTDataModule(data_dir=args.data_dir, download=False, batch_size=1024, num_workers=0)
    data.setup()
    if args.eval_train < len(data.splits.eval_train):  # a fixed, seeded subset: the same for every encoder
        keep = torch.randperm(len(data.splits.eval_train), generator=torch.Generator().manual_seed(0))
        data.splits.eval_train = torch.utils.data.Subset(data.splits.eval_train, keep[: args.eval_train].tolist())
    if args.quick:
        data.splits.test = torch.utils.data.Subset(data.splits.test, range(1000))
    ckpt, gan_seconds = _generator(args, out, log)
    data_dir = ["--data.init_args.eval_data.init_args.data_dir", args.data_dir]
    rows: list[dict[str, Any]] = []

    def record(name: str, model: Any, seconds: float | None, **info: Any) -> None:
        scores = evaluate_encoder(model.backbone.eval(), data, probe_steps=args.probe_steps)
        rows.append({"name": name, **info, **scores, "seconds": seconds})
        log(f"  {name} {info}: kNN {100 * scores['knn']:.1f}, linear {100 * scores['linear']:.1f}"
            + (f" ({seconds:.0f} s)" if seconds is not None else ""))

    model, seconds = _arm("real", "real_baseline.yaml", ["--data.init_args.data_dir", args.data_dir], args, out)
    record("real Fashion-MNIST (baseline)", model, seconds, kind="real", views="pixel", sigma=None)
    random_encoder = copy.deepcopy(model.backbone)  # the same architecture, a fresh draw of its initialisation
    torch.manual_seed(0)
    random_encoder.reset_parameters()
    rows.insert(0, {"name": "nothing (random initialisation)", "kind": "random", "views": "-", "sigma": None,
                    **evaluate_encoder(random_encoder.eval(), data, probe_steps=args.probe_steps), "seconds": None})
    arms = [(sigma, True) for sigma in [0.0, *args.sigmas]]
    arms += [(sigma, False) for sigma in args.latent_only]
    for sigma, pixel in arms:
        name = f"sigma{sigma:g}" + ("" if pixel else "_latent_only")
        overrides = ["--data.init_args.checkpoint", str(ckpt), "--data.init_args.sigma", str(sigma), *data_dir]
        if not pixel:
            overrides += ["--data.init_args.views", "null"]
        if args.quick:
            overrides += ["--data.init_args.num_samples", "2048"]
        model, seconds = _arm(name, "sigma_sweep.yaml", overrides, args, out)
        views = ("pixel only" if sigma == 0 else "latent + pixel") if pixel else "latent only"
        record("generated (DCGAN)", model, seconds, kind="generated", views=views, sigma=sigma, pixel=pixel)
    return rows, {"generator": str(ckpt), "generator_seconds": gan_seconds, "eval_train": len(data.splits.eval_train)}


def default_data_dir() -> str:
    """Debian's folder when its four files are there, else ``data`` (where ``lit_digest get fashion_mnist`` puts
    them)."""
    try:
        check_fashion_mnist(DEBIAN)
        return DEBIAN
    except FileNotFoundError:
        return "data"


def arm_name(row: dict[str, Any]) -> str:
    """The row's name in the numbers the command prints: ``random``, ``real``, ``pixel`` (sigma 0), ``sigma05``
    (sigma 0.5, with pixel augmentations), ``latent_sigma05`` (the walk alone)."""
    if row["kind"] != "generated":
        return row["kind"]
    name = "pixel" if row["sigma"] == 0 else "sigma" + format(row["sigma"], "g").replace(".", "")
    return name if row.get("pixel", True) else f"latent_{name}"


def sweep_figure(rows: list[dict[str, Any]]):
    """Accuracy (kNN and linear probe) against sigma for the encoders trained on generated views (sigma 0: pixel
    augmentations alone), the latent-only arms as crosses, and the real-data and random encoders as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    sweep = sorted((r for r in rows if r["kind"] == "generated" and r.get("pixel", True)), key=lambda r: r["sigma"])
    latent = [r for r in rows if r["kind"] == "generated" and not r.get("pixel", True)]
    for ax, (metric, label) in zip(axes, (("linear", "linear probe"), ("knn", "kNN (k=20)"))):
        ax.plot([r["sigma"] for r in sweep], [100 * r[metric] for r in sweep], "o-", label="latent + pixel views")
        if latent:
            ax.plot([r["sigma"] for r in latent], [100 * r[metric] for r in latent], "x", ms=9, label="latent only")
        for kind, style in (("real", "--"), ("random", ":")):
            for r in (r for r in rows if r["kind"] == kind):
                ax.axhline(100 * r[metric], ls=style, c="grey", label=r["name"])
        ax.set_xlabel("sigma of the latent walk (0: pixel augmentations alone)")
        ax.set_title(f"{label}, real Fashion-MNIST test images")
    axes[0].set_ylabel("accuracy (%)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="python -m lit_digest.ssl.genrep.experiment", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None,
                        help=f"Fashion-MNIST's IDX files (default: {DEBIAN}, Debian's dataset-fashion-mnist, when "
                             "installed, else data: python -m lit_digest get fashion_mnist)")
    parser.add_argument("--out", default="runs/genrep-experiment", help="run folders, the generator, results.json")
    parser.add_argument("--generator", default=None, help="a DCGAN checkpoint to use instead of training one")
    parser.add_argument("--gan-epochs", type=int, default=2, help="epochs of the DCGAN on the 60k real images")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.25, 0.5, 1.0, 2.0],
                        help="walk scales of the sweep (sigma 0, pixel augmentations alone, is always run)")
    parser.add_argument("--latent-only", type=float, nargs="*", default=[],
                        help="sigmas to also train with the latent walk alone, no pixel augmentation")
    parser.add_argument("--steps", type=int, default=200, help="training steps of batch 256, every encoder")
    parser.add_argument("--eval-train", type=int, default=10_000,
                        help="labeled training images of the kNN bank and the linear probe (60000: all)")
    parser.add_argument("--probe-steps", type=int, default=300, help="full-batch steps of the linear probe")
    parser.add_argument("--seed", type=int, default=0, help="seed_everything of every encoder's run")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 20 generator batches, 5 steps per encoder, 2k/1k evaluation images")
    parsed = parser.parse_args(argv)
    if parsed.data_dir is None:
        parsed.data_dir = default_data_dir()
    if parsed.quick:
        parsed.gan_epochs, parsed.steps, parsed.probe_steps = 1, min(parsed.steps, 5), 20
        parsed.eval_train = min(parsed.eval_train, 2000)
    check_fashion_mnist(parsed.data_dir)  # before any folder, W&B run or training
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    _quiet()
    measured = MeasuredRun("genrep", settings=vars(parsed))
    args = argparse.Namespace(**measured.settings)  # the code reads the settings as recorded
    start = time.perf_counter()
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    rows, info = run(args, log)
    result = {metric: findings(rows, metric) for metric in ("linear", "knn")}
    command = "python -m lit_digest.ssl.genrep.experiment " + " ".join(argv if argv is not None else sys.argv[1:])
    wall = time.perf_counter() - start
    lines = []
    for metric, label in (("linear", "linear probe"), ("knn", "kNN")):
        found = result[metric]
        if "latent_beats_pixel" in found:
            lines.append(f"Latent views + pixel augmentations beat pixel augmentations alone ({label}): "
                         f"{'yes' if found['latent_beats_pixel'] else 'no'} (best sigma {found['best_sigma']:g}, "
                         f"{100 * found['gain_over_pixel_only']:+.1f} points over sigma 0).")
        if "inverse_u" in found:
            lines.append(f"Accuracy against sigma rises then falls ({label}): "
                         f"{'yes' if found['inverse_u'] else 'no'} (peak at sigma {found['peak_sigma']:g}).")
    gan = "" if info["generator_seconds"] is None else f", the generator's training {info['generator_seconds']:.0f} s"
    lines.append(f"\n`{command.strip()}`: {args.steps} steps of batch 256 per encoder, seed {args.seed}, kNN bank "
                 f"and probe on {info['eval_train']} labeled training images; "
                 f"{wall:.0f} s wall time{gan}, on {torch.get_num_threads()} CPU thread(s).")
    measured.table(["encoder trained on", "views", "sigma", "kNN (k=20)", "linear probe", "training time"],
                   [[r["name"], r["views"], "-" if r.get("sigma") is None else f"{r['sigma']:g}",
                     f"{100 * r['knn']:.1f}", f"{100 * r['linear']:.1f}",
                     "-" if r.get("seconds") is None else f"{r['seconds']:.0f} s"] for r in rows])
    print("\n" + "\n".join(lines), flush=True)
    text = "\n".join([format_table(rows), "", *lines])
    (Path(args.out) / "results.json").write_text(json.dumps({"rows": rows, "findings": result, **info,
                                                             "command": command.strip(), "wall_seconds": wall},
                                                            indent=2))
    measured.figure(sweep_figure(rows), "sigma_sweep")
    measured.finish({**{f"{arm_name(r)}_{metric}": 100 * r[metric] for r in rows for metric in ("knn", "linear")},
                     **{f"{m}_{k}": float(v) for m, f in result.items() for k, v in f.items()
                        if isinstance(v, (bool, int, float))}})
    return text


if __name__ == "__main__":
    raise SystemExit(script(main)())
