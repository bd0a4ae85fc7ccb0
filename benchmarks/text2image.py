"""text2image speed and memory: VQGAN+CLIP generation steps per second, VQGAN and CLIP training images per second.

Settings (random weights and inputs; the work does not depend on the values):

- ``scenes``: the models of the measured command (VQGAN 16-32-64 ch, 8x8 tokens; CLIP ViT 3 x 128, 8-px patches)
  at 32 px; generation of 16 prompts at once with 16 cutouts each;
- ``notebook``: the 2021 notebooks' sizes (taming's ImageNet f16 VQGAN: 128-128-256-256-512 ch, two ResNet blocks a
  level, attention at 16 px, 256-d codes; CLIP ViT-B/32 at 224 px) at 256 px, one prompt, 32 cutouts; CUDA only.

    python benchmarks/text2image.py                    # scenes on the CPU (and CUDA), notebook on CUDA
    python benchmarks/text2image.py --settings scenes --steps 5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import add_threads, apply_threads, machine, peak_gib, seconds_per_call  # noqa: E402

from lit_digest.text2image.clip.module import build_clip, clip_loss  # noqa: E402
from lit_digest.text2image.generate.cutouts import MakeCutouts  # noqa: E402
from lit_digest.text2image.generate.models import TextImageModel  # noqa: E402
from lit_digest.text2image.generate.module import VQGANCLIP  # noqa: E402
from lit_digest.text2image.vqgan.module import VQGANModule, build_vqmodel  # noqa: E402

SETTINGS = {
    # name: (image side, prompts, cutouts, VQGAN sizes, CLIP sizes, devices)
    "scenes": (32, 16, 16, dict(block_out_channels=(16, 32, 64), latent_channels=32, vq_embed_dim=32,
                                num_vq_embeddings=256, norm_num_groups=8),
               dict(embed_dim=64, image_size=32, patch_size=8, vision_width=128, vision_layers=3, text_width=128,
                    text_layers=3), ("cpu", "cuda")),
    "tiny": (32, 2, 4, dict(block_out_channels=(8, 16), latent_channels=8, vq_embed_dim=8, num_vq_embeddings=32,
                            norm_num_groups=4),
             dict(embed_dim=16, image_size=32, patch_size=16, vision_width=32, vision_layers=1, text_width=32,
                  text_layers=1), ()),  # the GPU suite's quick mode: the same code paths in seconds
    "notebook": (256, 1, 32, dict(block_out_channels=(128, 128, 256, 256, 512), layers_per_block=2,
                                  latent_channels=256, vq_embed_dim=256, num_vq_embeddings=16384, norm_num_groups=32,
                                  attention_levels=(4,)),
                 dict(embed_dim=512, image_size=224, patch_size=32, vision_width=768, vision_layers=12,
                      vision_head_width=64, text_width=512, text_layers=12, text_heads=8, context_length=77),
                 ("cuda",)),
}


def generation(name: str, device: str, steps: int, warmup: int) -> dict[str, float]:
    size, prompts, cutn, vq_sizes, clip_sizes, _ = SETTINGS[name]
    torch.manual_seed(0)
    module = VQGANCLIP(height=size, width=size, cutn=cutn)
    from open_clip.tokenizer import SimpleTokenizer

    module.vqgan = build_vqmodel(**vq_sizes).eval().requires_grad_(False)
    tokenizer = SimpleTokenizer(context_length=clip_sizes.get("context_length", 32))
    module.clip = TextImageModel(build_clip(**clip_sizes), tokenizer, clip_sizes["image_size"]).eval()
    module.clip.requires_grad_(False)
    module.cutouts = MakeCutouts(module.clip.image_size, cutn)
    module.to(device)
    texts = [f"a red circle number {i}" for i in range(prompts)]
    step_s = seconds_per_call(lambda: module.generate(texts, list(range(prompts)), steps=1), steps, warmup, device,
                              reset_peak=True)
    return {"steps_per_s": 1 / step_s, "images_steps_per_s": prompts / step_s, "peak_gib": peak_gib(device)}


def vqgan_training(name: str, device: str, steps: int, warmup: int, batch: int) -> dict[str, float]:
    size, *_ , vq_sizes, _, _ = SETTINGS[name]
    module = VQGANModule(**vq_sizes, disc_start=0, disc_channels=32 if size <= 64 else 64).to(device)
    images = torch.rand(batch, 3, size, size, device=device) * 2 - 1
    opt_ae = torch.optim.Adam(module.vqmodel.parameters(), 1e-4)
    opt_d = torch.optim.Adam(module.discriminator.parameters(), 1e-4)

    def step() -> None:
        rec, codebook = module.reconstruct(images)
        opt_ae.zero_grad(set_to_none=True)
        module.generator_loss(images, rec, codebook, step=1)["loss"].backward()
        opt_ae.step()
        opt_d.zero_grad(set_to_none=True)
        real, fake = module.discriminator(images), module.discriminator(rec.detach())
        (torch.relu(1 - real).mean() + torch.relu(1 + fake).mean()).backward()
        opt_d.step()

    step_s = seconds_per_call(step, steps, warmup, device, reset_peak=True)
    return {"images_per_s": batch / step_s, "peak_gib": peak_gib(device)}


def clip_training(name: str, device: str, steps: int, warmup: int, batch: int) -> dict[str, float]:
    size, *_, clip_sizes, _ = SETTINGS[name]
    model = build_clip(**clip_sizes).to(device)
    images = torch.rand(batch, 3, clip_sizes["image_size"], clip_sizes["image_size"], device=device)
    tokens = torch.randint(1, 49000, (batch, clip_sizes.get("context_length", 32)), device=device)
    opt = torch.optim.AdamW(model.parameters(), 5e-4)

    def step() -> None:
        img = torch.nn.functional.normalize(model.encode_image(images), dim=-1)
        txt = torch.nn.functional.normalize(model.encode_text(tokens), dim=-1)
        opt.zero_grad(set_to_none=True)
        clip_loss(img, txt, model.logit_scale.exp()).backward()
        opt.step()

    step_s = seconds_per_call(step, steps, warmup, device, reset_peak=True)
    return {"images_per_s": batch / step_s, "peak_gib": peak_gib(device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    add_threads(parser)
    args = parser.parse_args()
    apply_threads(args)
    cuda = torch.cuda.is_available()
    print(machine("text2image"))
    print(f"{'setting':10s}{'device':8s}{'what':34s}{'rate':>12s}{'peak GiB':>10s}")
    for name in args.settings:
        *_, devices = SETTINGS[name]
        for device in devices:
            if device == "cuda" and not cuda:
                continue
            big = name == "notebook"
            rows = [("generation (steps/s)", generation(name, device, args.steps, args.warmup), "steps_per_s"),
                    (f"VQGAN training, batch {4 if big else 32} (img/s)",
                     vqgan_training(name, device, args.steps, args.warmup, 4 if big else 32), "images_per_s"),
                    (f"CLIP training, batch {64 if big else 128} (img/s)",
                     clip_training(name, device, args.steps, args.warmup, 64 if big else 128), "images_per_s")]
            for what, r, key in rows:
                peak = f"{r['peak_gib']:10.2f}" if device == "cuda" else f"{r['peak_gib']:9.2f}*"
                print(f"{name:10s}{device:8s}{what:34s}{r[key]:12.2f}{peak}", flush=True)
    print("* CPU: the process's peak resident memory (ru_maxrss); CUDA: torch.cuda.max_memory_allocated")


if __name__ == "__main__":
    main()
