"""The paper's effect, measured: ``python -m lit_digest.depth.experiment`` prints one table.

On procedural scenes with exact depth (``lit_digest.depth.scenes``), at 192 px:

1. train the base estimator (``SmallDepthNet``, receptive field 45 px, on whole scenes at 48 px, MiDaS losses);
2. train the merge network around it (``DepthMerge``: pix2pix GAN + L1, the guided-filter targets);
3. on held-out scenes, compare the estimator fed at its receptive field ("low", 48 px), at larger sizes and at
   ``R_20`` ("high", per image), the double estimate (their merge) and the whole method with patches
   (``boost``), by RMSE and AbsRel after scale-shift alignment and by depth-edge F1.

Arxiv 2105.14021 section 3 predicts: low better in global error, high better at edges; sections 5-6:
the merge keeps the low one's structure with the high one's edges (lower RMSE than high, higher F1 than
low). The table says whether each holds. Settings are the command's options (``--help``); ``--quick``
is a smaller run for a first look. Everything runs on one CPU thread unless ``--threads`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torchvision

from lit_digest.core.lightning import Trainer, pl, seed_everything
from lit_digest.core.optim import Optim
from lit_digest.depth.boost.pipeline import boost, estimate
from lit_digest.depth.boost.system import DepthMerge
from lit_digest.depth.callbacks import panel_grid
from lit_digest.depth.data import ProceduralRGBDDataModule
from lit_digest.depth.estimator import DepthEstimation
from lit_digest.depth.metrics import depth_metrics
from lit_digest.depth.nets import SmallDepthNet
from lit_digest.tools.shapes import receptive_field

__all__ = ["main", "run"]


@contextmanager
def _timer(times: dict, key: str):
    start = time.monotonic()
    yield
    times[key] = time.monotonic() - start


def _trainer(steps: int, log_dir: Path, name: str) -> Trainer:
    logger = pl.loggers.CSVLogger(log_dir, name=name, version="")  # train/* every 50 steps: the loss curves
    return Trainer(accelerator="cpu", devices=1, max_steps=steps, max_epochs=-1, limit_val_batches=0, logger=logger,
                   log_every_n_steps=50, enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False, num_sanity_val_steps=0)


def _row(name: str, size: str, metrics: list[dict], seconds: float) -> dict:
    mean = {k: float(torch.stack([m[k] for m in metrics]).mean()) for k in metrics[0]}
    return {"input": name, "size": size, **mean, "seconds_per_image": seconds / len(metrics)}


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    seed_everything(args.seed, verbose=False)
    times: dict[str, float] = {}
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    with _timer(times, "render"):
        data = ProceduralRGBDDataModule(args.train_scenes, 1, args.test_scenes, args.image_size, args.seed,
                                        batch_size=args.batch, cache_dir=args.cache_dir)
        data.prepare_data()
        data.setup("fit")
        data.setup("test")
    net = SmallDepthNet(args.width)
    field = receptive_field(net, (3, 256, 256)).size[0]
    with _timer(times, "train_estimator"):
        if args.estimator_weights:  # a trained estimator from an earlier run (its estimator.pt)
            net.load_state_dict(torch.load(args.estimator_weights, map_location="cpu", weights_only=True))
        else:
            estimator = DepthEstimation(net, train_size=args.receptive_field, eval_sizes=(args.receptive_field,),
                                        optim=Optim(name="adam", lr=1e-3, warmup_steps=100, final_lr_ratio=0.05))
            trainer = _trainer(args.estimator_steps, out_dir, "estimator")
            trainer.fit(estimator, train_dataloaders=data.train_dataloader())
        torch.save(net.state_dict(), out_dir / "estimator.pt")
    with _timer(times, "train_merge"):
        merge = DepthMerge(net, receptive_field=args.receptive_field, merge_size=args.merge_size,
                           num_downs=args.num_downs, ngf=args.ngf, ndf=args.ngf, reference=args.reference,
                           max_size=args.max_size, multiple_of=4)
        loader = torch.utils.data.DataLoader(data.splits["train"], batch_size=args.merge_batch, shuffle=True,
                                             drop_last=True)
        _trainer(2 * args.merge_steps, out_dir, "merge").fit(merge, train_dataloaders=loader)  # D and G: 2 per batch
        torch.save(merge.generator.state_dict(), out_dir / "merge_generator.pt")
    merge.eval()
    rows: dict[str, list] = {}
    seconds: dict[str, float] = {}
    resolutions, panels = [], []
    test = data.splits["test"]
    with _timer(times, "evaluate"), torch.no_grad():
        for i in range(len(test)):
            image, depth = (t[None] for t in test[i])
            for size in args.sizes:
                start = time.monotonic()
                pred = estimate(merge.estimator, image, size, 4)
                seconds[f"@{size}"] = seconds.get(f"@{size}", 0.0) + time.monotonic() - start
                rows.setdefault(f"@{size}", []).append(depth_metrics(pred, depth))
            start = time.monotonic()
            out = merge.estimates(image)
            seconds["double"] = seconds.get("double", 0.0) + time.monotonic() - start
            resolutions.append(out["resolution"])
            for key in ("low", "high", "merged"):
                rows.setdefault(key, []).append(depth_metrics(out[key], depth))
            if i < args.boost_images:
                start = time.monotonic()
                boosted = boost(merge.estimator, merge.generator, image, merge.settings)["depth"]
                seconds["boosted"] = seconds.get("boosted", 0.0) + time.monotonic() - start
                rows.setdefault("boosted", []).append(depth_metrics(boosted, depth))
                out["boosted"] = boosted
            if i < 4:
                panels.append(panel_grid({"image": image, "depth": depth, **{k: v for k, v in out.items()
                                                                              if k != "resolution"}})[0])
    width = max(p.shape[-1] for p in panels)  # rows without the patch stage are shorter
    panels = [torch.nn.functional.pad(p, (0, width - p.shape[-1])) for p in panels]
    torchvision.utils.save_image(torch.stack(panels), out_dir / "panels.png", nrow=1)
    rf = args.receptive_field
    r20 = sum(resolutions) / len(resolutions)
    table = [_row(f"estimator at {s} px", str(s), rows[f"@{s}"], seconds[f"@{s}"]) for s in args.sizes]
    table += [_row("low: estimator at RF", str(rf), rows["low"], 0.0),
              _row("high: estimator at R20", f"{r20:.0f} (mean)", rows["high"], 0.0),
              _row("merged: double estimate", f"{args.merge_size} merge", rows["merged"], seconds["double"])]
    if "boosted" in rows:
        table.append(_row("boosted: + patches", f"<= {args.max_resolution}", rows["boosted"], seconds["boosted"]))
    by = {r["input"].split(":")[0]: r for r in table}
    checks = {
        "low has lower RMSE than high": by["low"]["rmse"] < by["high"]["rmse"],
        "high has higher edge F1 than low": by["high"]["f1"] > by["low"]["f1"],
        "merged has lower RMSE than high": by["merged"]["rmse"] < by["high"]["rmse"],
        "merged has higher edge F1 than low": by["merged"]["f1"] > by["low"]["f1"],
    }
    result = {"settings": vars(args), "theoretical_receptive_field": field, "times_s": times, "table": table,
              "checks": checks, "test_scenes": len(test)}
    (out_dir / "results.json").write_text(json.dumps(result, indent=2))
    return result


def format_table(result: dict) -> str:
    lines = ["| input | px | RMSE (m) | AbsRel | edge F1 | precision | recall | s / image |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["table"]:
        secs = f"{r['seconds_per_image']:.3f}" if r["seconds_per_image"] else "(in merged)"
        lines.append(f"| {r['input']} | {r['size']} | {r['rmse']:.3f} | {r['absrel']:.3f} | {r['f1']:.3f} | "
                     f"{r['precision']:.3f} | {r['recall']:.3f} | {secs} |")
    lines.append("")
    lines += [f"- {name}: {'yes' if ok else 'NO'}" for name, ok in result["checks"].items()]
    t = result["times_s"]
    lines.append(f"- wall time: render {t['render']:.0f} s, estimator {t['train_estimator']:.0f} s, merge network "
                 f"{t['train_merge']:.0f} s, evaluation {t['evaluate']:.0f} s; total {sum(t.values()):.0f} s "
                 f"({result['test_scenes']} test scenes; theoretical receptive field "
                 f"{result['theoretical_receptive_field']:.0f} px)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lit_digest.depth.experiment", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smaller run (fewer scenes and steps)")
    parser.add_argument("--train-scenes", type=int, default=512)
    parser.add_argument("--test-scenes", type=int, default=48)
    parser.add_argument("--image-size", type=int, default=192, help="native resolution of the scenes")
    parser.add_argument("--receptive-field", type=int, default=48, help="the estimator's training size = RF")
    parser.add_argument("--width", type=int, default=16, help="SmallDepthNet width")
    parser.add_argument("--estimator-steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--merge-steps", type=int, default=1500, help="merge-network training batches")
    parser.add_argument("--merge-batch", type=int, default=4)
    parser.add_argument("--merge-size", type=int, default=128)
    parser.add_argument("--num-downs", type=int, default=7)
    parser.add_argument("--ngf", type=int, default=16, help="filters of the merge networks' outer layers")
    parser.add_argument("--reference", choices=["depth", "estimate"], default="depth")
    parser.add_argument("--max-size", type=int, default=384, help="R_max (3000 for MiDaS' 384)")
    parser.add_argument("--max-resolution", type=int, default=384, help="cap of the patch stage's resolution")
    parser.add_argument("--boost-images", type=int, default=16, help="test scenes that also run the patch stage")
    parser.add_argument("--sizes", type=int, nargs="*", default=[96, 192], help="extra fixed input sizes")
    parser.add_argument("--estimator-weights", help="estimator.pt of an earlier run: skip training the estimator")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default="data/depth")
    parser.add_argument("--out", default="runs/depth-experiment")
    args = parser.parse_args(argv)
    if args.quick:
        args.train_scenes, args.test_scenes = min(args.train_scenes, 256), min(args.test_scenes, 24)
        args.estimator_steps, args.merge_steps = min(args.estimator_steps, 800), min(args.merge_steps, 500)
        args.boost_images = min(args.boost_images, 8)
    start = time.monotonic()
    result = run(args)
    print(format_table(result))
    print(f"(command wall time {time.monotonic() - start:.0f} s; results.json and panels.png in {args.out})",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
