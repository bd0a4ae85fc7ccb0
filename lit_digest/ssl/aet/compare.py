"""AET-affine, AET-project and AED beside a random encoder, on an ``.npz`` of images, end to end on a CPU::

    python -m lit_digest get cifar10_subset          # once: data/cifar10_subset.npz, from the CIFAR-10 archive
    python -m lit_digest.ssl.aet.compare --data data/cifar10_subset.npz

Each method pretrains the same NIN on the training images (no labels), then the paper's two classifiers
(``NonLinearHead`` and ``ConvBlockHead``) are trained on its frozen block-2 feature maps and scored on the test
images; the same classifiers on a randomly initialised NIN give the baseline (the paper's "random init. + conv"
row). AET's parameter MSE on the test images is printed beside the predict-the-mean baseline. The budget is small
(``--epochs``, ``--width``): the numbers show the ordering, not the paper's values. Prints a table and the wall
time, and writes them with a plot (``errors.png``, also logged to W&B) and ``results.json`` in
``runs/measured/aet-compare/<date>_<time>/`` (``lit_digest.core.measured.MeasuredRun``); ``--out`` also writes
the numbers as JSON there.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from torch import nn

from lit_digest.core.console import script
from lit_digest.core.download import missing_data_error
from lit_digest.core.lightning import Trainer, seed_everything
from lit_digest.core.measured import MeasuredRun
from lit_digest.core.optim import Optim
from lit_digest.core.public_data import CIFAR10_URL
from lit_digest.ssl.aet.aed import AED
from lit_digest.ssl.aet.aet import AET, parameter_mse
from lit_digest.ssl.aet.classifiers import ConvBlockHead, NonLinearHead
from lit_digest.ssl.aet.nin import NetworkInNetwork
from lit_digest.ssl.aet.transforms import AffineTransformation, ProjectiveTransformation
from lit_digest.ssl.aet.views import PadCropViews
from lit_digest.ssl.arrays import NpzImageDataModule
from lit_digest.ssl.knn import knn_accuracy

__all__ = ["block_features", "fit_head", "heldout_parameter_mse", "pretrain", "figure", "main"]

METHODS = ("affine", "projective", "aed")


@torch.no_grad()
def block_features(encoder: NetworkInNetwork, images: torch.Tensor, prepare, block: int = 2,
                   batch_size: int = 256) -> torch.Tensor:
    """The frozen feature maps of ``block`` ``(N, C, h, w)`` of uint8 ``images`` (N, C, H, W), encoder in eval
    mode; ``prepare`` is the DataModule's uint8 -> normalised float conversion."""
    was_training = encoder.training
    encoder.eval()
    maps = [encoder.feature_maps(prepare(images[i:i + batch_size]), block) for i in range(0, len(images), batch_size)]
    encoder.train(was_training)
    return torch.cat(maps)


def fit_head(head: nn.Module, train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
             test_y: torch.Tensor, epochs: int = 30, batch_size: int = 128, lr: float = 0.1, seed: int = 0) -> float:
    """Trains ``head`` on precomputed frozen features with the official classifier's optimiser (SGD, Nesterov
    momentum 0.9, weight decay 5e-4, lr / 10 at 50% and 75% of the epochs: 100 and 150 of 200) and returns its
    test accuracy. No augmentation: the features are computed once."""
    optimizer = torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    milestones = [round(epochs * 0.5), round(epochs * 0.75)]
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=0.1)
    g = torch.Generator().manual_seed(seed)
    head.train()
    with torch.enable_grad():
        for _ in range(epochs):
            order = torch.randperm(len(train_x), generator=g)
            for start in range(0, len(order) - 1, batch_size):  # a last batch of 1 would break BatchNorm
                idx = order[start:start + batch_size]
                if len(idx) < 2:
                    continue
                loss = nn.functional.cross_entropy(head(train_x[idx]), train_y[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            schedule.step()
    head.eval()
    with torch.no_grad():
        pred = torch.cat([head(test_x[i:i + 512]).argmax(1) for i in range(0, len(test_x), 512)])
    return (pred == test_y).float().mean().item()


@torch.no_grad()
def heldout_parameter_mse(model: AET, images: torch.Tensor, prepare, seed: int = 0,
                          batch_size: int = 256) -> tuple[float, float]:
    """AET's parameter MSE on ``images`` (one fixed-seed transformation each) and the MSE of the best constant
    guess, the mean target of the same draws: ``(model_mse, mean_mse)``."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    preds, targets = [], []
    for i in range(0, len(images), batch_size):
        x = prepare(images[i:i + batch_size])
        t = model.transform(x, g)
        preds.append(model.predict_transformation(x, t.images).float())
        targets.append(t.target)
    pred, target = torch.cat(preds), torch.cat(targets)
    return parameter_mse(pred, target).item(), target.var(dim=0, correction=0).mean().item()


def pretrain(method: str, dm: NpzImageDataModule, width: int, epochs: int, lr: float, seed: int,
             root: Path, optimizer: str = "adamw") -> AET | AED:
    """One short pretraining run of ``method`` (``affine``, ``projective`` or ``aed``) on ``dm``'s training
    images, with a cosine from ``lr`` to 0: ``optimizer="sgd"`` is the official SGD (Nesterov momentum 0.9,
    weight decay 5e-4; the official schedule is multi-step over 1500 epochs), ``"adamw"`` (weight decay 1e-4) our
    short-budget choice, which learnt more than SGD in a few CPU epochs here."""
    seed_everything(seed)
    backbone = NetworkInNetwork(width=width)
    if optimizer == "sgd":
        optim = Optim(name="sgd", lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="warmup_cosine")
    else:
        optim = Optim(name="adamw", lr=lr, weight_decay=1e-4, schedule="warmup_cosine")
    if method == "aed":
        model: AET | AED = AED(backbone, optim=optim)
    else:
        transformation = AffineTransformation() if method == "affine" else ProjectiveTransformation()
        model = AET(backbone, transformation, optim=optim)
    trainer = Trainer(accelerator="cpu", devices=1, max_epochs=epochs, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                      default_root_dir=root)
    model = model.to(memory_format=torch.channels_last)  # 1.5-2x faster convolutions on a CPU (oneDNN)
    trainer.fit(model, dm)
    return model


def figure(results: dict[str, dict], encoders: list[str]):
    """Error rates per encoder under each evaluation (bars), and AET's held-out parameter MSE beside the mean
    guess: the plot of the measured table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evaluations = [("nonlinear_acc", "non-linear head"), ("conv_acc", "conv head"), ("knn_acc", "kNN (k=20)")]
    fig, (bars, mse) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [2, 1]})
    width = 0.8 / len(encoders)
    for i, name in enumerate(encoders):
        errors = [100 * (1 - results[name][key]) for key, _ in evaluations]
        bars.bar([j + (i - (len(encoders) - 1) / 2) * width for j in range(len(evaluations))], errors, width,
                 label=name)
    bars.set_xticks(range(len(evaluations)), [label for _, label in evaluations])
    bars.set_ylabel("test error (%)")
    bars.set_title("frozen block-2 features")
    bars.legend(fontsize=8)
    aet = [name for name in encoders if "param_mse" in results[name]]
    mse.bar([j - 0.2 for j in range(len(aet))], [results[n]["param_mse"] for n in aet], 0.4, label="AET")
    mse.bar([j + 0.2 for j in range(len(aet))], [results[n]["mean_mse"] for n in aet], 0.4, label="mean guess")
    mse.set_xticks(range(len(aet)), aet)
    mse.set_title("held-out parameter MSE")
    mse.legend(fontsize=8)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/cifar10_subset.npz",
                        help="an .npz of uint8 images (python -m lit_digest get cifar10_subset builds the default)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--width", type=int, default=64, help="NIN channels (192 in the paper)")
    parser.add_argument("--epochs", type=int, default=10, help="pretraining epochs (1500 in the paper)")
    parser.add_argument("--batch-size", type=int, default=128, help="pretraining batch (512 in the paper)")
    parser.add_argument("--optimizer", choices=["adamw", "sgd"], default="adamw",
                        help="pretraining optimiser (the paper: SGD, lr 0.1 at batch 512)")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--classifier-epochs", type=int, default=30, help="head epochs (200 in the paper)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1: on a shared 2-core machine more threads ran 4x slower)")
    parser.add_argument("--out", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    if not Path(args.data).is_file():
        raise missing_data_error("The image set", args.data, url=CIFAR10_URL,
                                 fix="run `python -m lit_digest get cifar10_subset` (it builds data/cifar10_subset"
                                     ".npz, the README's CIFAR-10 subset), or pass --data an .npz of uint8 images")
    run = MeasuredRun("aet-compare", settings=vars(args))
    s = run.settings
    if s["threads"]:
        torch.set_num_threads(s["threads"])
    start = time.perf_counter()
    dm = NpzImageDataModule(path=s["data"], batch_size=s["batch_size"], num_workers=0, views=PadCropViews(),
                            knn_bank_size=0, seed=s["seed"])
    dm.setup()
    train, test = dm.splits.pretrain, dm.splits.test
    train_x, train_y, test_x, test_y = train.images, train.labels, test.images, test.labels

    def prepare(x: torch.Tensor) -> torch.Tensor:
        return dm.prepare_images(x)

    results: dict[str, dict] = {}
    encoders: dict[str, NetworkInNetwork] = {}
    seed_everything(s["seed"])
    encoders["random"] = NetworkInNetwork(width=s["width"])
    for method in s["methods"]:
        t0 = time.perf_counter()
        model = pretrain(method, dm, s["width"], s["epochs"], s["lr"], s["seed"], run.folder, s["optimizer"])
        encoders[method] = model.backbone
        results[method] = {"pretrain_s": time.perf_counter() - t0}
        if isinstance(model, AET):
            mse, mean_mse = heldout_parameter_mse(model, test_x, prepare, s["seed"])
            results[method].update(param_mse=mse, mean_mse=mean_mse)
        print(f"{method}: pretrained in {results[method]['pretrain_s']:.0f} s", flush=True)
    for name, encoder in encoders.items():
        row = results.setdefault(name, {})
        maps_train, maps_test = block_features(encoder, train_x, prepare), block_features(encoder, test_x, prepare)
        classes = int(max(train_y.max(), test_y.max())) + 1
        torch.manual_seed(s["seed"])
        row["nonlinear_acc"] = fit_head(NonLinearHead(tuple(maps_train.shape[1:]), classes), maps_train, train_y,
                                        maps_test, test_y, s["classifier_epochs"], seed=s["seed"])
        torch.manual_seed(s["seed"])
        row["conv_acc"] = fit_head(ConvBlockHead(maps_train.shape[1], classes, s["width"]), maps_train, train_y,
                                   maps_test, test_y, s["classifier_epochs"], seed=s["seed"])
        row["knn_acc"] = knn_accuracy(maps_test.mean((2, 3)), test_y, maps_train.mean((2, 3)), train_y, classes,
                                      k=20, temperature=0.07)
        print(f"{name}: evaluated", flush=True)
    wall = time.perf_counter() - start
    names = ["random", *s["methods"]]
    rows = [[name, *([results[name]["param_mse"], results[name]["mean_mse"]] if "param_mse" in results[name]
                     else ["-", "-"]),
             *(100 * (1 - results[name][k]) for k in ("nonlinear_acc", "conv_acc", "knn_acc"))] for name in names]
    run.table(["encoder", "param MSE", "mean-guess MSE", "non-linear error %", "conv error %", "kNN error %"], rows,
              title=f"NIN width {s['width']}, {len(train_x)} training / {len(test_x)} test images, {s['epochs']} "
                    f"pretraining epochs ({s['optimizer']}, lr {s['lr']}, batch {s['batch_size']}), "
                    f"{s['classifier_epochs']} classifier epochs on frozen block-2 maps")
    print(f"wall time {wall:.0f} s ({math.ceil(wall / 60)} min), {torch.get_num_threads()} CPU threads")
    run.figure(figure(results, names), "errors")
    summary = {"args": dict(s), "results": results, "wall_s": wall}
    if s["out"]:
        Path(s["out"]).write_text(json.dumps(summary, indent=2))
    numbers = {f"{name}_{key[:-4]}_error": 100 * (1 - row[key]) for name, row in results.items()
               for key in ("nonlinear_acc", "conv_acc", "knn_acc")}  # error rates in %, as the paper's table
    numbers.update({f"{name}_{key.replace('mean_mse', 'mean_guess_mse')}": row[key] for name, row in results.items()
                    for key in ("param_mse", "mean_mse") if key in row})
    run.finish(numbers)
    return summary


if __name__ == "__main__":
    raise SystemExit(script(main)())
