"""The measured command of text2image: a small VQGAN, a small CLIP and an attribute judge trained here on procedural
scenes, then VQGAN+CLIP judged on what it generates.

    python -m lit_digest.text2image.experiment            # about 20-30 minutes of one CPU core

1. scenes: ``--train`` captioned 32-px scenes (and ``--val`` held out), rendered from a seed;
2. the judge (``SceneAttributeClassifier``), trained on the scenes only, never on generated images;
3. the VQGAN: held-out PSNR beside a bicubic-downsampled baseline of at most the same bits;
4. the CLIP: held-out image -> caption recall@1 beside chance;
5. generation for ``--prompts`` attribute prompts (``scenes.prompt_for``, no style word): the judge's agreement
   with each prompted attribute for VQGAN+CLIP, for random latents (the loop's start) and for the same loop
   without cutouts and augmentations (one whole-image view); then the "unreal engine" test: the same prompts with
   ", unreal engine" appended, the judge's mean probability of "shaded" beside the plain prompts', and the other
   attributes' agreement.

Writes results.json, the tables, a figure of the images, and the two checkpoints (``--export``, default
checkpoints/text2image/) that ``configs/vqgan_clip/scenes.yaml`` reads.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lit_digest.core.console import script
from lit_digest.core.lightning import Trainer, seed_everything
from lit_digest.core.measured import MeasuredRun
from lit_digest.core.optim import Optim
from lit_digest.text2image.classifier import SceneAttributeClassifier
from lit_digest.text2image.clip import CLIPModule
from lit_digest.text2image.data import SceneDataModule
from lit_digest.text2image.generate import VQGANCLIP
from lit_digest.text2image.scenes import ATTRIBUTES, prompt_for, sample_attributes
from lit_digest.text2image.vqgan import VQGANModule

__all__ = ["main", "judge"]

PROMPTED = ("shape", "colour", "position", "size", "background")


def _trainer(steps: int, folder: Path) -> Trainer:
    return Trainer(accelerator="cpu", devices=1, max_steps=steps, max_epochs=-1, logger=False,
                   enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                   num_sanity_val_steps=0, limit_val_batches=0, default_root_dir=folder)


def _fit(module, data: SceneDataModule, steps: int, folder: Path, name: str, reuse: str | None
         ) -> tuple[Any, Trainer, float]:
    """Train ``module`` (or load ``<reuse>/<name>.ckpt``), validate it, save ``<folder>/<name>.ckpt``."""
    start = time.monotonic()
    trainer = _trainer(steps, folder / name)
    if reuse and (Path(reuse) / f"{name}.ckpt").is_file():
        module = type(module).load_from_checkpoint(Path(reuse) / f"{name}.ckpt", map_location="cpu")
    else:
        trainer.fit(module, data)
    trainer.limit_val_batches = 1.0
    trainer.validate(module, data, verbose=False)
    trainer.save_checkpoint(folder / f"{name}.ckpt")
    return module, trainer, time.monotonic() - start


@torch.no_grad()
def judge(classifier: SceneAttributeClassifier, images01: torch.Tensor) -> dict[str, torch.Tensor]:
    """The judge's probabilities per attribute of images in [0, 1]."""
    classifier.eval()
    return {k: torch.cat([v for v in [classifier(images01[i:i + 256] * 2 - 1)[k] for i in
                                      range(0, len(images01), 256)]]) for k in ATTRIBUTES}


def _agreement(probs: dict[str, torch.Tensor], rows: np.ndarray) -> dict[str, float]:
    target = torch.as_tensor(rows)
    return {k: float((probs[k].argmax(-1) == target[:, j]).float().mean()) for j, k in enumerate(ATTRIBUTES)
            if k in PROMPTED}


def _generate(module: VQGANCLIP, prompts: list[str], seeds: list[int], batch: int, steps: int | None = None
              ) -> torch.Tensor:
    out = [module.generate(prompts[i:i + batch], seeds[i:i + batch], steps)[0] for i in range(0, len(prompts), batch)]
    return torch.cat(out)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=20000, help="training scenes")
    parser.add_argument("--val", type=int, default=1000, help="held-out scenes")
    parser.add_argument("--size", type=int, default=32, help="image side")
    parser.add_argument("--judge-steps", type=int, default=400)
    parser.add_argument("--vqgan-steps", type=int, default=400, help="batches of 32")
    parser.add_argument("--clip-steps", type=int, default=1000, help="batches of 128")
    parser.add_argument("--clip-width", type=int, default=64, help="of both CLIP towers")
    parser.add_argument("--clip-layers", type=int, default=2, help="of both CLIP towers")
    parser.add_argument("--prompts", type=int, default=16, help="attribute prompts generated")
    parser.add_argument("--steps", type=int, default=60, help="Adam steps per prompt")
    parser.add_argument("--cutn", type=int, default=16)
    parser.add_argument("--step-size", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", default="runs/measured")
    parser.add_argument("--reuse", default=None, help="a folder: load the judge.ckpt, vqgan.ckpt, clip.ckpt found "
                                                      "there instead of training those models")
    parser.add_argument("--restart-dead-codes", type=int, default=0, help="VQGAN codes unused for this many batches "
                                                                           "move to encoder outputs (0: taming's)")
    parser.add_argument("--stop-after", choices=["vqgan", "clip", "all"], default="all")
    parser.add_argument("--export", default="checkpoints/text2image", help="copy the VQGAN and CLIP checkpoints here "
                                                                         "(configs/vqgan_clip/scenes.yaml reads them)")
    args = parser.parse_args(argv)
    if min(args.train, args.val, args.prompts, args.judge_steps, args.vqgan_steps, args.clip_steps) < 1:
        raise ValueError("every count of the experiment must be >= 1")
    torch.set_num_threads(args.threads)
    run = MeasuredRun("text2image", settings=vars(args), out=args.out)
    s = run.settings
    folder = run.folder
    seed_everything(s["seed"], verbose=False)

    data = SceneDataModule(num_train=s["train"], num_val=s["val"], size=s["size"], seed=s["seed"], batch_size=64)
    data.setup("fit")
    val_images = torch.stack([data.val_set[i]["image"] for i in range(len(data.val_set))])
    val_rows = data.val_set.attributes.numpy()

    judge_model = SceneAttributeClassifier(width=16)
    judge_model, _, judge_s = _fit(judge_model, data, s["judge_steps"], folder, "judge", s["reuse"])
    judge_acc = _agreement(judge(judge_model, (val_images + 1) / 2), val_rows)
    judge_acc["style"] = float((judge(judge_model, (val_images + 1) / 2)["style"].argmax(-1)
                                == torch.as_tensor(val_rows[:, 5])).float().mean())
    run.table(["attribute", "judge accuracy (held-out scenes)", "chance"],
              [[k, v, 1 / len(ATTRIBUTES[k])] for k, v in judge_acc.items()], title="The judge")

    data.batch_size = 32
    vqgan = VQGANModule(block_out_channels=(16, 32, 64), latent_channels=32, vq_embed_dim=32, num_vq_embeddings=256,
                        norm_num_groups=8, disc_start=s["vqgan_steps"] // 2, disc_channels=32,
                        restart_dead_codes=s["restart_dead_codes"],
                        optim_ae=Optim(name="adam", lr=1e-3, betas=(0.5, 0.9), schedule="constant"),
                        optim_d=Optim(name="adam", lr=1e-3, betas=(0.5, 0.9), schedule="constant"))
    vqgan, vq_trainer, vq_s = _fit(vqgan, data, 2 * s["vqgan_steps"], folder, "vqgan", s["reuse"])
    psnr, psnr_bicubic = float(vq_trainer.callback_metrics["val/psnr"]), float(vq_trainer.callback_metrics[
        "val/psnr_bicubic"])
    vqgan.eval()
    with torch.no_grad():  # what any latent can show at best: the judge on the VQGAN's reconstructions
        recs = torch.cat([vqgan(val_images[i:i + 250]).clamp(-1, 1) for i in range(0, len(val_images), 250)])
        codes = vqgan.vqmodel.quantize(vqgan.vqmodel.encode(val_images[:250]).latents)[2][2].unique().numel()
    ceiling = _agreement(judge(judge_model, (recs + 1) / 2), val_rows)
    run.table(["model", "held-out PSNR (dB)", "bits per image", "codes used (of 256)"],
              [["VQGAN (8x8 tokens, 256 codes)", psnr, 512, codes], ["bicubic 4x4 RGB, 8 bits", psnr_bicubic, 384, ""]],
              title="Reconstruction of held-out scenes")
    run.table(["images", *PROMPTED], [["VQGAN reconstructions of held-out scenes", *[ceiling[k] for k in PROMPTED]]],
              title="The judge on reconstructions: the most any VQGAN latent can show")
    vq_numbers = {"vqgan/psnr": psnr, "vqgan/psnr_bicubic": psnr_bicubic, "vqgan/codes_used": codes,
                  "vqgan/judge_on_reconstructions": float(np.mean([ceiling[k] for k in PROMPTED]))}
    if s["stop_after"] == "vqgan":
        return run.finish({**vq_numbers, "time/vqgan_s": vq_s})

    data.batch_size = 128
    clip = CLIPModule(embed_dim=64, patch_size=8, vision_width=s["clip_width"], vision_layers=s["clip_layers"],
                      text_width=s["clip_width"], text_layers=s["clip_layers"],
                      optim=Optim(name="adamw", lr=5e-4, betas=(0.9, 0.98), weight_decay=0.2, warmup_steps=100))
    _, clip_trainer, clip_s = _fit(clip, data, s["clip_steps"], folder, "clip", s["reuse"])
    recall = float(clip_trainer.callback_metrics["val/recall_at_1"])
    chance = float(clip_trainer.callback_metrics["val/recall_at_1_chance"])
    run.table(["model", "held-out recall@1 (image -> caption)", "chance"], [["CLIP", recall, chance]],
              title=f"Retrieval among the {s['val']} held-out captions")

    if s["stop_after"] == "clip":
        return run.finish({**vq_numbers, "clip/recall_at_1": recall, "clip/recall_at_1_chance": chance})
    export = Path(s["export"]) if s["export"] else None
    if export is not None:
        export.mkdir(parents=True, exist_ok=True)
        shutil.copy(folder / "vqgan.ckpt", export / "vqgan_scenes.ckpt")
        shutil.copy(folder / "clip.ckpt", export / "clip_scenes.ckpt")

    # -- generation ----------------------------------------------------------------------------------------------
    rows = sample_attributes(s["prompts"], s["seed"] + 7)
    rows[:, 5] = 0  # the prompts say nothing about the style; the judge's target for style is unused
    prompts = [prompt_for(r) for r in rows]
    seeds = [s["seed"] * 1000 + i for i in range(len(prompts))]
    start = time.monotonic()
    kwargs = dict(vqgan=str(folder / "vqgan.ckpt"), clip=str(folder / "clip.ckpt"), height=s["size"],
                  width=s["size"], steps=s["steps"], step_size=s["step_size"])
    full = VQGANCLIP(cutn=s["cutn"], **kwargs)
    plain = VQGANCLIP(cutn=1, cut_pow=0.0, augment=None, **kwargs)
    images = {"random latents (start)": _generate(full, prompts, seeds, 16, steps=0),
              "VQGAN+CLIP": _generate(full, prompts, seeds, 16),
              "without cutouts and augmentations": _generate(plain, prompts, seeds, 16),
              "VQGAN+CLIP, + 'unreal engine'": _generate(full, [p + ", unreal engine" for p in prompts], seeds, 16)}
    gen_s = time.monotonic() - start
    probs = {name: judge(judge_model, x) for name, x in images.items()}
    agree = {name: _agreement(p, rows) for name, p in probs.items()}
    table = [[name] + [a[k] for k in PROMPTED] + [float(np.mean([a[k] for k in PROMPTED]))]
             for name, a in agree.items()]
    table.append(["chance"] + [1 / len(ATTRIBUTES[k]) for k in PROMPTED]
                 + [float(np.mean([1 / len(ATTRIBUTES[k]) for k in PROMPTED]))])
    run.table(["images", *PROMPTED, "mean"], table,
              title=f"Prompt adherence judged by the attribute classifier ({len(prompts)} prompts)")
    shaded = {name: float(p["style"][:, 1].mean()) for name, p in probs.items()}
    run.table(["prompt", "P(shaded) by the judge", "adherence, other attributes (mean)"],
              [["attributes only", shaded["VQGAN+CLIP"], table[1][-1]],
               ["attributes + ', unreal engine'", shaded["VQGAN+CLIP, + 'unreal engine'"], table[3][-1]]],
              title="The 'unreal engine' test")
    run.figure(_figure(images, prompts), "generated")
    numbers = {**vq_numbers, "clip/recall_at_1": recall,
               "clip/recall_at_1_chance": chance, "judge/acc_mean": float(np.mean(list(judge_acc.values()))),
               "adherence/vqgan_clip": table[1][-1], "adherence/random": table[0][-1],
               "adherence/no_cutouts": table[2][-1], "adherence/unreal_engine": table[3][-1],
               "unreal/p_shaded_plain": shaded["VQGAN+CLIP"],
               "unreal/p_shaded_with_word": shaded["VQGAN+CLIP, + 'unreal engine'"],
               "time/judge_s": judge_s, "time/vqgan_s": vq_s, "time/clip_s": clip_s, "time/generation_s": gen_s}
    return run.finish(numbers)


def _figure(images: dict[str, torch.Tensor], prompts: list[str]):
    import matplotlib.pyplot as plt

    n = min(8, len(prompts))
    fig, axes = plt.subplots(len(images), n, figsize=(1.4 * n, 1.5 * len(images)), squeeze=False)
    for r, (name, x) in enumerate(images.items()):
        for c in range(n):
            ax = axes[r][c]
            ax.imshow(x[c].permute(1, 2, 0).clamp(0, 1).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name.replace(", ", ",\n"), fontsize=6)
            if r == 0:
                ax.set_title(prompts[c].replace(", ", ",\n"), fontsize=5)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    raise SystemExit(script(main)())
