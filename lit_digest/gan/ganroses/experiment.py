"""The measured command of GANs N' Roses: a short CPU run on the offline pair (AT&T face photos to drawn faces),
its claims measured beside baselines.

    python -m lit_digest.gan.ganroses.experiment                      # about 25 minutes on one CPU core
    python -m lit_digest.gan.ganroses.experiment --steps 40 --ablation-steps 20 --classifier-steps 20   # a minute

Trains GANs N' Roses (``configs/ganroses/att_faces.yaml``'s model and data: 32 px, batch 8 of one photo's
augmentations) for ``--steps`` batches, and two ablations for ``--ablation-steps`` batches each (style
consistency weight 0; latent adversarial weight 0) beside the full model's own snapshot at that step. Then, on the
held-out photos and drawings:

(a) style spread across augmentations of one image vs across images (encoders of A and B);
(b) the encoded target styles against N(0, I): norm of the mean, covariance error (beside a sample of N(0, I));
(c) a domain classifier, trained here on real images of both domains only, on the translations (random styles);
(d) KID between translations and real target images, on that classifier's features;
(e) diversity: mean pairwise feature distance of one input's translations in random styles, per model;
(f) video: a smoothly moving photo in one fixed style, the output's frame-to-frame change against the input's.

Each number is printed beside the untrained model (the same initialisation) and the references named in the
tables. Results, settings, a figure and the wall time go to ``runs/measured/ganroses/<date>_<time>/``.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from lit_digest.core.console import script
from lit_digest.core.lightning import Callback, Trainer, seed_everything
from lit_digest.core.measured import MeasuredRun
from lit_digest.gan.ganroses import metrics as M
from lit_digest.gan.ganroses.data import PhotosToDrawingsDataModule
from lit_digest.gan.ganroses.module import GANsNRoses

__all__ = ["main", "train"]

MODEL = dict(ema_decay=0.995)  # the module's CPU defaults (32 px, 16-32 channels); the average's horizon shortened


class Snapshot(Callback):
    """Keeps a copy of the module's weights after batch ``at`` (the full model at the ablations' length)."""

    def __init__(self, at: int) -> None:
        self.at, self.state = at, None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.fit_loop.epoch_loop.batch_progress.total.completed == self.at:
            self.state = copy.deepcopy(module.state_dict())


def train(settings: dict, steps: int, snapshot_at: int = 0, **overrides) -> tuple[GANsNRoses, GANsNRoses, dict]:
    """(trained module, the same module untrained, snapshot state_dict or None) after ``steps`` batches."""
    seed_everything(settings["seed"], verbose=False)
    module = GANsNRoses(**{**MODEL, "image_size": settings["image_size"], **overrides})
    untrained = copy.deepcopy(module)
    snap = Snapshot(snapshot_at)
    trainer = Trainer(accelerator="cpu", devices=1, max_steps=2 * steps, limit_val_batches=0, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      callbacks=[snap], num_sanity_val_steps=0)
    trainer.fit(module, datamodule(settings))
    return module.eval(), untrained.eval(), snap.state


def datamodule(settings: dict) -> PhotosToDrawingsDataModule:
    return PhotosToDrawingsDataModule(photos=settings["photos"], image_size=settings["image_size"],
                                      batch_size=settings["batch_size"], seed=settings["seed"])


def _stack(images) -> torch.Tensor:
    return torch.stack([images[i] for i in range(len(images))])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", default="data/att_faces",
                        help="domain A: a folder of face photos (python -m lit_digest get att_faces)")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=1200, help="batches of the full model")
    parser.add_argument("--ablation-steps", type=int, default=500, help="batches of each ablation")
    parser.add_argument("--classifier-steps", type=int, default=300)
    parser.add_argument("--styles", type=int, default=8, help="random styles per held-out input")
    parser.add_argument("--frames", type=int, default=24, help="frames of the moving-photo video")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="parent folder of the run (default runs/measured)")
    args = parser.parse_args(argv)
    if args.steps < 1 or not 0 < args.ablation_steps <= args.steps or args.styles < 2 or args.frames < 3:
        raise ValueError("need steps >= 1, 0 < ablation-steps <= steps, styles >= 2 and frames >= 3")
    torch.set_num_threads(args.threads)
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    settings["model"] = MODEL
    run = MeasuredRun("ganroses", settings, out=args.out)
    s = run.settings
    dm = datamodule(s)
    dm.setup("fit")  # the data's errors before any training
    timings = {}
    start = time.monotonic()
    full, untrained, snapshot = train(s, s["steps"], snapshot_at=s["ablation_steps"])
    timings["full"] = time.monotonic() - start
    at_ablation = copy.deepcopy(untrained)
    at_ablation.load_state_dict(snapshot if snapshot is not None else full.state_dict())
    models = {"full": full, f"full @{s['ablation_steps']}": at_ablation}
    for name, overrides in (("no consistency", {"consistency_weight": 0.0}), ("no latent D", {"latent_weight": 0.0})):
        start = time.monotonic()
        models[f"{name} @{s['ablation_steps']}"] = train(s, s["ablation_steps"], **overrides)[0]
        timings[name] = time.monotonic() - start
    models["untrained"] = untrained

    splits = dm.splits
    test_a, test_b = _stack(splits["testA"]), _stack(splits["testB"])
    aug = dm.augmentation
    start = time.monotonic()
    classifier = M.train_domain_classifier(_stack(splits["trainA"]), _stack(splits["trainB"]), aug,
                                           steps=s["classifier_steps"], seed=s["seed"])
    timings["classifier"] = time.monotonic() - start
    accuracy = (M.target_rate(classifier, test_a, 0) + M.target_rate(classifier, test_b, 1)) / 2
    g = torch.Generator().manual_seed(s["seed"])
    styles = torch.randn(s["styles"], 8, generator=g)
    numbers: dict[str, float] = {"classifier/real_test_accuracy": accuracy}

    # (a), (b): the encoders of the full model and the untrained one
    rows_a, rows_b = [], []
    for name in ("full", "untrained"):
        m = models[name]
        for domain, images, direction in (("A", test_a, "a2b"), ("B", test_b, "b2a")):
            spread = M.style_spread(m.generator(direction).style_encode, images, aug, seed=s["seed"])
            numbers.update({f"{name}/{domain}/style_{k}": v for k, v in spread.items()})
            rows_a.append([name, domain, spread["within"], spread["across"], spread["ratio"]])
        target_codes = m.reference_styles(test_b, "a2b")  # B's styles, the codes A -> B takes
        fit = M.gaussian_fit(target_codes)
        numbers.update({f"{name}/B_styles/{k}": v for k, v in fit.items()})
        rows_b.append([f"{name}: encoded styles of the held-out drawings", fit["mean_norm"], fit["cov_error"]])
    sample = M.gaussian_fit(torch.randn(len(test_b), 8, generator=g))
    rows_b.append([f"a sample of {len(test_b)} codes from N(0, I) (the floor)", sample["mean_norm"],
                   sample["cov_error"]])
    run.table(["model", "domain", "spread across augmentations of one image", "spread across images", "ratio"], rows_a,
              title="(a) style codes: sum of variances over augmentations of one held-out image vs over images")
    run.table(["codes", "norm of the mean", "||Cov - I||_F / sqrt(d)"], rows_b,
              title="(b) encoded target styles against N(0, I)")

    # (c), (d), (e): translations of the held-out photos in random styles
    rows_c, rows_e = [], []
    reference = M.pairwise_distance(classifier.features(test_b)[None]) if len(test_b) > 1 else float("nan")
    for name, m in models.items():
        a2b = m.translate(test_a, styles, "a2b")  # (M, N, C, S, S)
        b2a = m.translate(test_b, styles, "b2a")
        rate_b = M.target_rate(classifier, a2b.flatten(0, 1), 1)
        rate_a = M.target_rate(classifier, b2a.flatten(0, 1), 0)
        score = M.kid(classifier.features, test_b, a2b.flatten(0, 1), seed=s["seed"])
        features = classifier.features(a2b.flatten(0, 1)).view(*a2b.shape[:2], -1)
        diversity = M.pairwise_distance(features)
        pixels = M.pairwise_distance(a2b.flatten(2) / a2b[0, 0].numel() ** 0.5)  # RMS difference per pixel
        numbers.update({f"{name}/a2b_in_B": rate_b, f"{name}/b2a_in_A": rate_a, f"{name}/kid": score,
                        f"{name}/diversity": diversity, f"{name}/pixel_diversity": pixels})
        rows_c.append([name, rate_b, rate_a, score])
        rows_e.append([name, diversity, pixels])
    identity_kid = M.kid(classifier.features, test_b, test_a, seed=s["seed"])
    floor_kid = M.kid(classifier.features, test_b, _stack(splits["trainB"])[: 8 * len(test_b)], seed=s["seed"])
    rows_c.append(["the photos themselves (no translation)", M.target_rate(classifier, test_a, 1),
                   M.target_rate(classifier, test_b, 0), identity_kid])
    rows_c.append(["real drawings of the training set (KID floor)", float("nan"), float("nan"), floor_kid])
    numbers.update({"identity/kid": identity_kid, "real_train_B/kid": floor_kid})
    run.table(["model", "A->B judged B", "B->A judged A", "KID to held-out drawings"], rows_c,
              title=f"(c, d) translations of the held-out images in {s['styles']} random styles; chance 0.5; "
                    f"the classifier's accuracy on real held-out images {accuracy:.3f}")
    rows_e.append(["real held-out drawings (different drawings)", reference, float("nan")])
    run.table(["model", "mean pairwise feature distance", "mean pairwise RMS pixel difference"], rows_e,
              title=f"(e) diversity of one photo's translations in {s['styles']} random styles")

    # (f): video
    rows_f = []
    for name in ("full", "untrained"):
        m = models[name]
        per_photo = [M.flicker(torch.no_grad()(m), M.moving_frames(photo, s["frames"]), 8, seed=s["seed"] + i)
                     for i, photo in enumerate(test_a[:8])]
        mean = {k: sum(p[k] for p in per_photo) / len(per_photo) for k in per_photo[0]}
        numbers.update({f"{name}/video/{k}": v for k, v in mean.items()})
        rows_f.append([name, mean["input_change"], mean["output_change"], mean["correlation"], mean["redrawn_change"]])
    run.table(["model", "input change per frame", "output change, fixed style", "correlation",
               "output change, style redrawn per frame"], rows_f,
              title=f"(f) video: {s['frames']} frames of a held-out photo sliding and turning along a sine, 8 photos")

    numbers.update({f"wall_s/{k}": round(v, 1) for k, v in timings.items()})
    run.figure(_figure(models["full"], models["untrained"], test_a[:6], styles))
    return run.finish(numbers)


def _figure(full: GANsNRoses, untrained: GANsNRoses, photos: torch.Tensor, styles: torch.Tensor):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torchvision

    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    for ax, (name, m) in zip(axes, (("trained", full), ("untrained", untrained))):
        rows = torch.cat([photos[:, None], m.translate(photos, styles, "a2b")], 1)
        grid = torchvision.utils.make_grid((rows.flatten(0, 1) + 1) / 2, nrow=rows.shape[1], padding=1)
        ax.imshow(grid.permute(1, 2, 0).clamp(0, 1).numpy())
        ax.set_title(f"{name}: held-out photo, then {styles.shape[0]} random styles")
        ax.axis("off")
    return fig


if __name__ == "__main__":
    raise SystemExit(script(main)())
