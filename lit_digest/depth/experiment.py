"""The paper's effect, measured: ``python -m lit_digest.depth.experiment`` prints one table.

On procedural scenes with exact depth (``lit_digest.depth.scenes``), at 192 px:

1. train the base estimator (``SmallDepthNet``, receptive field 45 px, on whole scenes at 48 px, MiDaS losses;
   ``--estimator-crop-min`` < 1 trains it on random crops instead);
2. train the merge network around it (``DepthMerge``: pix2pix GAN + L1, the guided-filter targets) against the
   whole-image estimate at 1.75 RF, as the paper (``--reference estimate``); the ablation row trains a second
   one against the exact depth (``--ablation-reference depth``);
3. on held-out scenes, compare the estimator fed at its receptive field ("low", 48 px), at larger sizes and at
   ``R_20`` ("high", per image), the double estimate (their merge) and the whole method with patches
   (``boosted``, target resolution capped at ``--max-resolution``), by RMSE and AbsRel after scale-shift
   alignment and by depth-edge F1; for every patch, the error of the base, of the patch's own double estimate
   and of the result on that patch (where the patch stage gains or loses).

Arxiv 2105.14021 section 3 predicts: low better in global error, high better at edges; sections 5-6:
the merge keeps the low one's structure with the high one's edges (lower RMSE than high, higher F1 than
low). The table says whether each holds. Settings are the command's options (``--help``), recorded as used in
``results.json`` (``lit_digest.core.measured.MeasuredRun``); ``--quick`` is a smaller run for a first look.
Everything runs on one CPU thread unless ``--threads`` says otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from lit_digest.core.console import script
from lit_digest.core.lightning import Trainer, pl, seed_everything
from lit_digest.core.measured import MeasuredRun
from lit_digest.core.optim import Optim
from lit_digest.depth.boost.pipeline import BoostSettings, boost, double_estimate, estimate, resize
from lit_digest.depth.boost.system import DepthMerge
from lit_digest.depth.data import ProceduralRGBDDataModule
from lit_digest.depth.estimator import DepthEstimation
from lit_digest.depth.losses import align_scale_shift
from lit_digest.depth.metrics import depth_metrics
from lit_digest.depth.nets import SmallDepthNet
from lit_digest.tools.shapes import receptive_field

__all__ = ["main", "parse_settings", "run"]

METRICS = ("rmse", "absrel", "f1", "precision", "recall")


@contextmanager
def _timer(times: dict, key: str):
    start = time.monotonic()
    yield
    times[key] = times.get(key, 0.0) + time.monotonic() - start


def _trainer(steps: int, log_dir: Path, name: str) -> Trainer:
    logger = pl.loggers.CSVLogger(log_dir, name=name, version="")  # train/* every 50 steps in <name>/metrics.csv
    return Trainer(accelerator="cpu", devices=1, max_steps=steps, max_epochs=-1, limit_val_batches=0, logger=logger,
                   log_every_n_steps=50, enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False, num_sanity_val_steps=0)


def _mean(metrics: list[dict]) -> dict[str, float]:
    return {k: float(torch.stack([m[k] for m in metrics]).mean()) for k in METRICS}


def train_estimator(s: dict, data: ProceduralRGBDDataModule, folder: Path) -> SmallDepthNet:
    net = SmallDepthNet(s["width"])
    if s["estimator_weights"]:  # a trained estimator from an earlier run (its estimator.pt)
        net.load_state_dict(torch.load(s["estimator_weights"], map_location="cpu", weights_only=True))
    else:
        estimator = DepthEstimation(net, train_size=s["receptive_field"], crop_min=s["estimator_crop_min"],
                                    eval_sizes=(s["receptive_field"],),
                                    optim=Optim(name="adam", lr=1e-3, warmup_steps=100, final_lr_ratio=0.05))
        _trainer(s["estimator_steps"], folder, "estimator").fit(estimator, train_dataloaders=data.train_dataloader())
    torch.save(net.state_dict(), folder / "estimator.pt")
    return net


def train_merge(net: SmallDepthNet, s: dict, reference: str, data: ProceduralRGBDDataModule,
                folder: Path) -> DepthMerge:
    merge = DepthMerge(net, receptive_field=s["receptive_field"], merge_size=s["merge_size"],
                       num_downs=s["num_downs"], ngf=s["ngf"], ndf=s["ngf"], reference=reference,
                       max_size=s["max_size"], multiple_of=4)
    loader = torch.utils.data.DataLoader(data.splits["train"], batch_size=s["merge_batch"], shuffle=True,
                                         drop_last=True)
    name = f"merge-{reference}"
    _trainer(2 * s["merge_steps"], folder, name).fit(merge, train_dataloaders=loader)  # D and G: 2 per batch
    torch.save(merge.generator.state_dict(), folder / f"{name}_generator.pt")
    return merge.eval()


def boost_settings(merge: DepthMerge, s: dict) -> BoostSettings:
    """The merge network's pipeline settings with the patch stage's resolution capped at ``--max-resolution``."""
    return dataclasses.replace(merge.settings, max_resolution=s["max_resolution"])


def patch_errors(merge: DepthMerge, settings: BoostSettings, image: torch.Tensor, depth: torch.Tensor,
                 result: dict) -> list[dict[str, float]]:
    """For every patch ``boost`` used on ``image`` (1, 3, H, W): the RMSE (after scale-shift alignment on the
    patch) of the base estimate, of the patch's own double estimate and of the boosted result, on that patch."""
    if not result["patches"]:
        return []
    th, tw = result["target"]
    big, truth = resize(image, (th, tw)).clamp(0, 1), resize(depth, (th, tw))
    base = resize(double_estimate(merge.estimator, merge.generator, image, settings.receptive_field,
                                  result["resolution"], settings), (th, tw))
    final = resize(result["depth"], (th, tw))
    rows = []
    for x, y, w, h in result["patches"]:
        window = (..., slice(y, y + h), slice(x, x + w))
        own = double_estimate(merge.estimator, merge.generator, big[window], settings.receptive_field,
                              2 * settings.receptive_field, settings)
        maps = {"base": base[window], "patch": resize(own, (h, w)), "boosted": final[window]}
        rows.append({k: float(depth_metrics(v, truth[window])["rmse"]) for k, v in maps.items()})
    return rows


def _abs_error(pred: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    pred = resize(pred, tuple(depth.shape[-2:]))
    return (align_scale_shift(pred, depth) - depth).abs()[0, 0]  # (H, W)


def error_figure(examples: list[dict]):
    """Per scene, two rows: the image, the true depth and every estimate aligned to it; then the absolute error
    of each estimate (one colour scale per scene)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k for k in ("low", "high", "merged", "boosted") if all(k in ex for ex in examples)]
    cols = 2 + len(names)
    fig, axes = plt.subplots(2 * len(examples), cols, figsize=(2.2 * cols, 4.4 * len(examples)), squeeze=False)
    for i, ex in enumerate(examples):
        depth = ex["depth"]
        lo, hi = float(depth.min()), float(depth.max())
        errors = {k: _abs_error(ex[k], depth) for k in names}
        top = max(float(e.max()) for e in errors.values())
        row, err_row = axes[2 * i], axes[2 * i + 1]
        row[0].imshow(ex["image"][0].permute(1, 2, 0).clamp(0, 1).numpy())
        row[1].imshow(depth[0, 0].numpy(), cmap="magma_r", vmin=lo, vmax=hi)
        row[0].set_title("image", fontsize=8)
        row[1].set_title("true depth", fontsize=8)
        for j, k in enumerate(names):
            aligned = align_scale_shift(resize(ex[k], tuple(depth.shape[-2:])), depth)[0, 0]
            row[2 + j].imshow(aligned.numpy(), cmap="magma_r", vmin=lo, vmax=hi)
            row[2 + j].set_title(k, fontsize=8)
            shown = err_row[2 + j].imshow(errors[k].numpy(), cmap="viridis", vmin=0, vmax=top)
            err_row[2 + j].set_title(f"|error|: RMSE {float(errors[k].pow(2).mean().sqrt()):.2f} m", fontsize=7)
        fig.colorbar(shown, ax=list(err_row), shrink=0.8, label="m")
        for ax in (*row, *err_row):
            ax.set_xticks([])
            ax.set_yticks([])
        err_row[0].axis("off")
        err_row[1].axis("off")
    return fig


def evaluate(merges: dict[str, DepthMerge], s: dict, test) -> dict:
    """Every row's per-image metrics and seconds, the patch errors and the figure's examples, on ``test``."""
    metrics: dict[str, list] = {}
    seconds: dict[str, float] = {}
    patches: dict[str, list] = {ref: [] for ref in merges}
    resolutions, examples = [], []
    main = next(iter(merges))
    estimator = merges[main].estimator
    for i in range(len(test)):
        image, depth = (t[None] for t in test[i])
        for size in s["sizes"]:
            with _timer(seconds, f"@{size}"):
                pred = estimate(estimator, image, size, 4)
            metrics.setdefault(f"@{size}", []).append(depth_metrics(pred, depth))
        example = {"image": image, "depth": depth}
        for ref, merge in merges.items():
            with _timer(seconds, f"merged/{ref}"):
                out = merge.estimates(image)
            if ref == main:
                resolutions.append(out["resolution"])
                for key in ("low", "high"):
                    metrics.setdefault(key, []).append(depth_metrics(out[key], depth))
                    example[key] = out[key]
                example["merged"] = out["merged"]
            metrics.setdefault(f"merged/{ref}", []).append(depth_metrics(out["merged"], depth))
            if i < s["boost_images"]:
                settings = boost_settings(merge, s)
                with _timer(seconds, f"boosted/{ref}"):
                    result = boost(merge.estimator, merge.generator, image, settings)
                metrics.setdefault(f"boosted/{ref}", []).append(depth_metrics(result["depth"], depth))
                patches[ref] += patch_errors(merge, settings, image, depth, result)
                if ref == main:
                    example["boosted"] = result["depth"]
        if i < 3:
            examples.append(example)
    return {"metrics": metrics, "seconds": seconds, "patches": patches, "resolutions": resolutions,
            "examples": examples}


def run(s: dict, measured: MeasuredRun) -> dict:
    """The experiment with the settings ``s`` (``measured.settings``); returns the measured numbers."""
    torch.set_num_threads(s["threads"])
    seed_everything(s["seed"], verbose=False)
    folder = measured.folder
    times: dict[str, float] = {}
    with _timer(times, "render"):
        data = ProceduralRGBDDataModule(s["train_scenes"], 1, s["test_scenes"], s["image_size"], s["seed"],
                                        batch_size=s["batch"], cache_dir=s["cache_dir"])
        data.prepare_data()
        data.setup("fit")
        data.setup("test")
    with _timer(times, "train_estimator"):
        net = train_estimator(s, data, folder)
    field = receptive_field(net, (3, 256, 256)).size[0]
    references = [s["reference"]] + [r for r in (s["ablation_reference"],) if r not in ("none", s["reference"])]
    merges = {}
    for ref in references:
        with _timer(times, "train_merge"):
            merges[ref] = train_merge(net, s, ref, data, folder)
    test = data.splits["test"]
    with _timer(times, "evaluate"), torch.no_grad():
        ev = evaluate(merges, s, test)
    m, secs, n = ev["metrics"], ev["seconds"], len(test)
    rf, r20 = s["receptive_field"], sum(ev["resolutions"]) / len(ev["resolutions"])
    rows = [(f"estimator at {size} px", "-", str(size), f"@{size}") for size in s["sizes"]]
    rows += [("low: estimator at RF", "-", str(rf), "low"),
             ("high: estimator at R20", "-", f"{r20:.0f} (mean)", "high")]
    for ref in references:
        rows.append(("merged: double estimate", ref, f"{s['merge_size']} merge", f"merged/{ref}"))
        if f"boosted/{ref}" in m:
            rows.append(("boosted: + patches", ref, f"<= {s['max_resolution']}", f"boosted/{ref}"))
    table = []
    for name, ref, size, key in rows:
        mean = _mean(m[key])
        per_image = secs[key] / len(m[key]) if key in secs else None
        table.append([name, ref, size, *(f"{mean[k]:.3f}" for k in METRICS),
                      f"{per_image:.3f}" if per_image is not None else "(in merged)"])
    measured.table(["input", "merge reference", "px", "RMSE (m)", "AbsRel", "edge F1", "precision", "recall",
                    "s / image"], table, title=f"{n} held-out scenes at {s['image_size']} px")
    patch_table = []
    for ref, errs in ev["patches"].items():
        if errs:
            mean = {k: sum(e[k] for e in errs) / len(errs) for k in errs[0]}
            worse = sum(e["patch"] > e["base"] for e in errs) / len(errs)
            patch_table.append([ref, len(errs), f"{mean['base']:.3f}", f"{mean['patch']:.3f}",
                                f"{mean['boosted']:.3f}", f"{worse:.0%}"])
    if patch_table:
        measured.table(["merge reference", "patches", "RMSE base", "RMSE patch's own estimate", "RMSE boosted",
                        "patches where its own estimate is worse"], patch_table,
                       title="on each patch (aligned per patch)")
    main = references[0]
    by = {"low": _mean(m["low"]), "high": _mean(m["high"]), "merged": _mean(m[f"merged/{main}"])}
    checks = {
        "low has lower RMSE than high": by["low"]["rmse"] < by["high"]["rmse"],
        "high has higher edge F1 than low": by["high"]["f1"] > by["low"]["f1"],
        "merged has lower RMSE than high": by["merged"]["rmse"] < by["high"]["rmse"],
        "merged has higher edge F1 than low": by["merged"]["f1"] > by["low"]["f1"],
    }
    for name, ok in checks.items():
        print(f"- {name}: {'yes' if ok else 'NO'}")
    print("- stages: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items())
          + f" (theoretical receptive field {field} px)")
    measured.figure(error_figure(ev["examples"]), "error_maps")
    numbers = {f"{key}/{k}": _mean(values)[k] for key, values in m.items() if not key.startswith("@")
               for k in ("rmse", "f1")}
    numbers.update({f"seconds/{k}": v for k, v in times.items()})
    numbers.update({f"check/{k}": float(v) for k, v in checks.items()})
    return numbers


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lit_digest.depth.experiment", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smaller run (fewer scenes and steps)")
    parser.add_argument("--train-scenes", type=int, default=512)
    parser.add_argument("--test-scenes", type=int, default=48)
    parser.add_argument("--image-size", type=int, default=192, help="native resolution of the scenes")
    parser.add_argument("--receptive-field", type=int, default=48, help="the estimator's training size = RF")
    parser.add_argument("--width", type=int, default=16, help="SmallDepthNet width")
    parser.add_argument("--estimator-steps", type=int, default=2000)
    parser.add_argument("--estimator-crop-min", type=float, default=1.0,
                        help="train the estimator on random square crops of this share of the scene to all of it "
                             "(1: whole scenes)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--merge-steps", type=int, default=1500, help="merge-network training batches")
    parser.add_argument("--merge-batch", type=int, default=4)
    parser.add_argument("--merge-size", type=int, default=128)
    parser.add_argument("--num-downs", type=int, default=7)
    parser.add_argument("--ngf", type=int, default=16, help="filters of the merge networks' outer layers")
    parser.add_argument("--reference", choices=["depth", "estimate"], default="estimate",
                        help="the merge network's target: the whole-image estimate at 1.75 RF (the paper) or the "
                             "exact depth")
    parser.add_argument("--ablation-reference", choices=["depth", "estimate", "none"], default="depth",
                        help="a second merge network trained against this reference (rows marked with it)")
    parser.add_argument("--max-size", type=int, default=384, help="R_max (3000 for MiDaS' 384)")
    parser.add_argument("--max-resolution", type=int, default=384, help="cap of the patch stage's resolution")
    parser.add_argument("--boost-images", type=int, default=16, help="test scenes that also run the patch stage")
    parser.add_argument("--sizes", type=int, nargs="*", default=[96, 192], help="extra fixed input sizes")
    parser.add_argument("--estimator-weights", help="estimator.pt of an earlier run: skip training the estimator")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default="data/depth")
    parser.add_argument("--out", default="runs/measured", help="parent of the run's folder (<out>/depth/<date>)")
    return parser


def parse_settings(argv: list[str] | None = None) -> dict:
    """The options as the run uses them (``--quick`` applied)."""
    s = vars(build_parser().parse_args(argv))
    if s["quick"]:
        s["train_scenes"], s["test_scenes"] = min(s["train_scenes"], 256), min(s["test_scenes"], 24)
        s["estimator_steps"], s["merge_steps"] = min(s["estimator_steps"], 800), min(s["merge_steps"], 500)
        s["boost_images"] = min(s["boost_images"], 8)
    if not 0 < s["estimator_crop_min"] <= 1:
        raise ValueError(f"--estimator-crop-min must be in (0, 1], got {s['estimator_crop_min']}")
    if s["merge_size"] % 2 ** s["num_downs"]:
        raise ValueError(f"--merge-size {s['merge_size']} must be a multiple of 2 ** --num-downs")
    return s


def main(argv: list[str] | None = None) -> int:
    s = parse_settings(argv)
    measured = MeasuredRun("depth", settings=s, out=s["out"])
    numbers = run(measured.settings, measured)
    measured.finish(numbers)
    return 0


if __name__ == "__main__":
    sys.exit(script(main)())
