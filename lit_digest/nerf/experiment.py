"""The paper's claims, measured on a procedural scene: ``python -m lit_digest.nerf.experiment`` prints two tables.

1. Stage 1 (``NeRF``, NeRF++'s background) fitted to ``--train-views`` views: PSNR on held-out views beside the
   nearest training view (the view whose camera is closest, shown as it is), and the depth error against the
   exact depth over the surface pixels.
2. Stage 2 (``StyleNeRF``) trained on the training style photos; on consecutive test views, in held-out styles:
   the depth of the stylised renderings against stage 1's (geometry untouched), the warping error between
   adjacent stylised views (``lit_digest.nerf.consistency``, exact depth and poses) beside per-frame AdaIN
   (``lit_digest.nerf.adain``, the same feature network, a decoder trained here) of the same stage-1 renderings,
   and the style and content losses of both (how stylised, how faithful). The paper's claim (2105.13016
   section 4.3): the stylised field is more consistent across views than per-frame 2D stylisation.

Perceptual features: the ``StyleFeatureNet`` shipped with lit_digest (``python -m lit_digest.nerf.features``
rebuilds it), not the paper's ImageNet VGG-19, which cannot be downloaded here. Every option is in
``--help``; ``--quick`` is a smaller run for a first look. One CPU thread unless ``--threads`` says otherwise.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import torch

from lit_digest.core.console import script
from lit_digest.core.lightning import Callback, Trainer, seed_everything
from lit_digest.core.measured import MeasuredRun
from lit_digest.core.optim import Optim
from lit_digest.nerf.adain import stylise, train_adain_decoder
from lit_digest.nerf.consistency import correspondence_error, warping_error
from lit_digest.nerf.data import view_batch
from lit_digest.nerf.field import RadianceField
from lit_digest.nerf.images import bundled_photos, center_crop, fit_short_side, read_rgb
from lit_digest.nerf.loaders import ProceduralSceneDataModule
from lit_digest.nerf.losses import content_loss, depth_errors, psnr, style_loss
from lit_digest.nerf.stylize import StyleNeRF
from lit_digest.nerf.system import NeRF, image_of, render_rays

__all__ = ["main", "run"]

HELD_OUT_STYLES = ("coffee", "rocket", "flower")


class _Progress(Callback):
    """Keeps ``train/loss`` every ``every`` steps and prints it with the time so far."""

    def __init__(self, name: str, every: int = 100) -> None:
        self.name, self.every, self.losses, self.start = name, every, [], time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step % self.every == 0 or step == trainer.max_steps:
            loss = float(trainer.callback_metrics["train/loss"])
            self.losses.append((step, loss))
            print(f"{self.name} step {step}: loss {loss:.4f} ({time.monotonic() - self.start:.0f} s)",
                  file=sys.stderr, flush=True)


def _fit(model, loader, steps: int, name: str) -> _Progress:
    progress = _Progress(name)
    Trainer(accelerator="cpu", devices=1, max_steps=steps, max_epochs=-1, limit_val_batches=0, logger=False,
            callbacks=[progress], enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            num_sanity_val_steps=0).fit(model, train_dataloaders=loader)
    return progress


def _field(s: dict) -> RadianceField:
    skips = (min(s["depth"] // 2, s["depth"] - 2),) if s["depth"] > 1 else ()  # NeRF: after layer 4 of 8
    return RadianceField(depth=s["depth"], width=s["width"], skips=skips, color_widths=(s["width"] // 2,),
                         coarse_samples=s["coarse_samples"], fine_samples=s["fine_samples"],
                         background_samples=(s["coarse_samples"] // 2, s["fine_samples"] // 2))


def _consistency(frames: list[torch.Tensor], views, test: list[int]) -> tuple[float, float]:
    """Over the pairs of adjacent test views (frames ``(3, H, W)``): the mean warping error (bilinear) and the mean
    squared difference at pixel-exact correspondences, weighted by their counts."""
    warps, squared, pairs = [], 0.0, 0
    for k in range(len(test) - 1):
        a, b = test[k], test[k + 1]
        geometry = (views.depth[a], views.depth[b], views.poses[a], views.poses[b], views.focal)
        warps.append(warping_error(frames[k], frames[k + 1], *geometry)[0])
        error, count = correspondence_error(frames[k], frames[k + 1], *geometry)
        if count:
            squared, pairs = squared + error * count, pairs + count
    return sum(warps) / len(warps), squared / max(pairs, 1)


def run(s: dict, measured: MeasuredRun) -> dict[str, float]:
    torch.set_num_threads(s["threads"])
    seed_everything(s["seed"], verbose=False)
    folder = measured.folder
    curves: dict[str, list[tuple[int, float]]] = {}
    data = ProceduralSceneDataModule(seed=s["seed"], num_train=s["train_views"], num_val=1, num_test=s["test_views"],
                                     image_size=s["image_size"], test_step_deg=s["test_step_deg"],
                                     rays_per_batch=s["rays"], batches_per_epoch=100)
    data.setup("fit")
    views = data.views
    test, train = views.splits["test"], views.splits["train"]

    # stage 1
    nerf = NeRF(_field(s), optim=Optim(name="adam", lr=5e-4, schedule="exponential", final_lr_ratio=0.1))
    curves["stage 1"] = _fit(nerf, data.train_dataloader(), s["nerf_steps"], "stage 1").losses
    checkpoint = folder / "nerf.ckpt"
    nerf.trainer.save_checkpoint(checkpoint)
    nerf.eval()
    rows, renders, depths = [], [], []
    with torch.no_grad():
        for v in test:
            out = nerf(view_batch(views, views.poses[v]))
            rgb, depth = image_of(out["rgb"], views.size).clamp(0, 1), image_of(out["depth"], views.size)
            nearest = min(train, key=lambda t: float((views.poses[t][:, 3] - views.poses[v][:, 3]).norm()))
            truth = views.images[v].permute(2, 0, 1)
            errors = depth_errors(depth, views.depth[v])
            rows.append([float(psnr(rgb, truth)), float(psnr(views.images[nearest].permute(2, 0, 1), truth)),
                         float(errors["depth_mae"]), float(errors["depth_absrel"])])
            renders.append(rgb)
            depths.append(depth)
    mean = [sum(r[k] for r in rows) / len(rows) for k in range(4)]
    true_depth = views.depth[test][torch.isfinite(views.depth[test])]
    print(f"stage 1: {len(test)} held-out views at {s['image_size']} px, surface depth "
          f"{float(true_depth.min()):.2f}-{float(true_depth.max()):.2f}", flush=True)
    measured.table(["held-out views", "PSNR (dB)", "depth MAE", "depth AbsRel"],
                   [["NeRF (stage 1)", mean[0], mean[2], mean[3]], ["nearest training view", mean[1], "-", "-"]],
                   title="Stage 1: held-out views")

    # stage 2: styles are the bundled photos; the held-out ones are never trained on
    photos = bundled_photos()
    train_styles = [str(p) for p in photos if p.stem not in HELD_OUT_STYLES]
    eval_styles = [p for p in photos if p.stem in HELD_OUT_STYLES]
    data2 = ProceduralSceneDataModule(seed=s["seed"], num_train=s["train_views"], num_val=1,
                                      num_test=s["test_views"], image_size=s["image_size"],
                                      test_step_deg=s["test_step_deg"], batches="patches", patch_size=s["patch"],
                                      style_images=train_styles, style_size=s["style_size"], batches_per_epoch=100)
    data2.views = views  # the same scene, not rendered twice
    data2.setup("fit")
    style = StyleNeRF(_field(s), nerf_checkpoint=str(checkpoint), style_weight=s["style_weight"],
                      content_weight=s["content_weight"], rgb_weight=s["rgb_weight"],
                      style_start_step=s["style_start"])
    curves["stage 2"] = _fit(style, data2.train_dataloader(), s["style_steps"], "stage 2").losses
    style.eval()

    # the per-frame 2D baseline, with the same features
    encoder = style.features
    contents = views.images[train].permute(0, 3, 1, 2)
    decoder = train_adain_decoder(encoder, contents, data2.styles, s["adain_steps"], size=s["image_size"],
                                  seed=s["seed"])

    gt_frames = [views.images[v].permute(2, 0, 1) for v in test]
    names = ["ground truth", "NeRF (stage 1)", "stylised NeRF (ours)", "stylised NeRF, one view direction",
             "per-frame AdaIN"]
    middle = -views.poses[test[len(test) // 2]][:, 2]  # the middle test camera's viewing direction
    scores: dict[str, list[list[float]]] = {name: [] for name in names}  # per style: warp, same points, style, content
    panels, change = [gt_frames, renders], 0.0
    with torch.no_grad():
        content_features = encoder(torch.stack(renders))
        for path in eval_styles:
            image = center_crop(fit_short_side(read_rgb(path), 2 * s["style_size"]), s["style_size"])
            params, style_features = style.style_params(image), encoder(image[None])
            ours, fixed = [], []
            for k, v in enumerate(test):
                batch = view_batch(views, views.poses[v])
                out = render_rays(style.field, batch, style.hparams.chunk, params)
                ours.append(image_of(out["rgb"], views.size).clamp(0, 1))
                change = max(change, float((image_of(out["depth"], views.size) - depths[k]).abs().max()))
                out = render_rays(style.field, batch, style.hparams.chunk, params, viewdirs=middle)
                fixed.append(image_of(out["rgb"], views.size).clamp(0, 1))
            theirs = list(stylise(encoder, decoder, torch.stack(renders), image[None]))
            for name, frames in zip(names, (gt_frames, renders, ours, fixed, theirs)):
                warp, same = _consistency(frames, views, test)
                features = encoder(torch.stack(frames))
                scores[name].append([warp, same, float(style_loss(features, style_features)),
                                     float(content_loss(features, content_features))])
            panels += [ours, theirs]
    averaged = {name: [sum(r[k] for r in rows_) / len(rows_) for k in range(4)] for name, rows_ in scores.items()}
    print(f"stage 2: {len(test)} test views {s['test_step_deg']} degrees apart, {len(eval_styles)} held-out styles "
          f"({', '.join(p.stem for p in eval_styles)}), averaged over the styles; largest depth change of a stylised "
          f"rendering: {change:.2e}", flush=True)
    measured.table(["test views", "warping error (bilinear)", "error at same points", "style loss",
                    "content loss (to stage 1)"], [[name, *values] for name, values in averaged.items()],
                   title="Stage 2: consistency across adjacent views")
    measured.figure(_figure(panels, [p.stem for p in eval_styles]), "views")
    measured.figure(_curves(curves), "losses")
    ours, theirs, plain = averaged["stylised NeRF (ours)"], averaged["per-frame AdaIN"], averaged["NeRF (stage 1)"]
    fixed = averaged["stylised NeRF, one view direction"]
    return {"stage1/psnr": mean[0], "nearest_view/psnr": mean[1], "stage1/depth_mae": mean[2],
            "stage1/depth_absrel": mean[3], "stage2/depth_change": change,
            "warp/ground_truth": averaged["ground truth"][0], "warp/stage1": plain[0], "warp/stylised_nerf": ours[0],
            "warp/adain": theirs[0], "same_points/ground_truth": averaged["ground truth"][1],
            "same_points/stage1": plain[1], "same_points/stylised_nerf": ours[1], "same_points/adain": theirs[1],
            "warp/stylised_one_direction": fixed[0], "same_points/stylised_one_direction": fixed[1],
            "style_loss/stage1": plain[2], "style_loss/stylised_nerf": ours[2], "style_loss/adain": theirs[2],
            "content_loss/stylised_nerf": ours[3], "content_loss/adain": theirs[3]}


def _curves(curves: dict[str, list[tuple[int, float]]]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4 * len(curves), 3), squeeze=False)
    for ax, (name, points) in zip(axes[0], curves.items()):
        ax.plot([p[0] for p in points], [p[1] for p in points])
        ax.set_title(f"{name}: training loss")
        ax.set_xlabel("step")
        ax.set_yscale("log")
    fig.tight_layout()
    return fig


def _figure(panels: list[list[torch.Tensor]], styles: list[str]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["ground truth", "NeRF"] + [f"{who} ({s})" for s in styles for who in ("ours", "AdaIN")]
    columns = min(len(panels[0]), 6)
    fig, axes = plt.subplots(len(panels), columns, figsize=(1.3 * columns, 1.3 * len(panels)), squeeze=False)
    for r, frames in enumerate(panels):
        for c in range(columns):
            axes[r, c].imshow(frames[c].permute(1, 2, 0).numpy())
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(names[r], fontsize=6)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lit_digest.nerf.experiment", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smaller run (fewer views and steps)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--train-views", type=int, default=40)
    parser.add_argument("--test-views", type=int, default=8)
    parser.add_argument("--test-step-deg", type=float, default=6.0, help="azimuth between consecutive test views")
    parser.add_argument("--width", type=int, default=64, help="MLP width (paper 256)")
    parser.add_argument("--depth", type=int, default=4, help="MLP depth (paper 8)")
    parser.add_argument("--coarse-samples", type=int, default=24, help="paper 64 (the background gets half)")
    parser.add_argument("--fine-samples", type=int, default=24, help="paper 128 (the background gets half)")
    parser.add_argument("--rays", type=int, default=512, help="rays per stage-1 batch (NeRF++: 1024)")
    parser.add_argument("--nerf-steps", type=int, default=2000)
    parser.add_argument("--patch", type=int, default=24, help="side of a stage-2 patch of rays")
    parser.add_argument("--style-size", type=int, default=64)
    parser.add_argument("--style-steps", type=int, default=1000)
    parser.add_argument("--style-start", type=int, default=100, help="steps before the style term (official 2000)")
    parser.add_argument("--content-weight", type=float, default=1.0)
    parser.add_argument("--style-weight", type=float, default=15.0)
    parser.add_argument("--rgb-weight", type=float, default=1.0)
    parser.add_argument("--adain-steps", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="runs/measured")
    args = parser.parse_args(argv)
    if args.quick:
        args.train_views, args.nerf_steps, args.style_steps, args.adain_steps = 24, 400, 200, 200
        args.image_size, args.style_start, args.patch = min(args.image_size, 24), 50, min(args.patch, 16)
    settings = {k: v for k, v in vars(args).items() if k not in ("quick", "out")}
    if min(settings["nerf_steps"], settings["style_steps"], settings["adain_steps"]) < 1 or args.test_views < 2:
        raise ValueError("--nerf-steps, --style-steps and --adain-steps must be >= 1 and --test-views >= 2")
    measured = MeasuredRun("nerf", settings, out=args.out)
    numbers = run(measured.settings, measured)
    measured.finish({k: (v if math.isfinite(v) else None) for k, v in numbers.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(script(main)())
