"""Speed and memory of the boosting method (arXiv 2105.14021): the merge network's training step (D then G, pix2pix
GAN + L1) and the inference pipeline (resolution search, double estimate, the whole method with patches).

    python benchmarks/depth.py                       # CPU (the experiment's sizes), and CUDA when present
    python benchmarks/depth.py --device cpu --steps 3

Settings: ``small`` = the experiment's CPU networks (merge input 128 px, 7 down-samplings, 16 filters, estimator
``SmallDepthNet(16)`` with a 48-px field, 192-px scenes); ``paper`` (CUDA only) = the official sizes (1024 px,
10 down-samplings, 64 filters, batch 1, a 384-px field, 1024-px images). Untrained weights: the work does not
depend on them, except the number of patches, which depends on the image (a procedural scene here).
Peak memory: CUDA ``max_memory_allocated``; CPU the growth of the process's peak resident set.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import rss_mib, sync  # noqa: E402

from lit_digest.depth.boost.guided import merge_training_pair  # noqa: E402
from lit_digest.depth.boost.losses import discriminator_loss, generator_loss  # noqa: E402
from lit_digest.depth.boost.nets import MergeUNet, PatchDiscriminator  # noqa: E402
from lit_digest.depth.boost.pipeline import BoostSettings, boost, double_estimate, resolution_search  # noqa: E402
from lit_digest.depth.nets import SmallDepthNet  # noqa: E402
from lit_digest.depth.scenes import render_scene  # noqa: E402

SETTINGS = {
    # the GPU suite's quick mode
    "tiny": dict(merge_size=32, num_downs=5, ngf=8, batch=2, rf=16, image=48, max_size=96, max_resolution=96),
    "small": dict(merge_size=128, num_downs=7, ngf=16, batch=4, rf=48, image=192, max_size=384, max_resolution=384),
    "paper": dict(merge_size=1024, num_downs=10, ngf=64, batch=1, rf=384, image=1024, max_size=3000,
                  max_resolution=2000),
}



def _peak(device: str, rss_before: float) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return max(0.0, rss_mib() - rss_before)


def bench_train_step(name: str, device: str, steps: int) -> dict:
    s = SETTINGS[name]
    g = MergeUNet(2, 1, s["num_downs"], s["ngf"]).to(device)
    d = PatchDiscriminator(3, s["ngf"], 3).to(device)
    opt_g = torch.optim.Adam(g.parameters(), 1e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), 2e-6, betas=(0.5, 0.999))
    size, batch = s["merge_size"], s["batch"]
    maps = [torch.rand(batch, 1, size, size, device=device) for _ in range(3)]
    x, y = merge_training_pair(*maps, radius=max(1, round(64 * size / 672)))
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    rss = rss_mib()
    times = []
    for _ in range(steps + 1):  # the first is a warm-up
        sync(device)
        start = time.perf_counter()
        fake = g(x)
        loss_d = discriminator_loss(d(torch.cat([x, y], 1)), d(torch.cat([x, fake.detach()], 1)))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        gan, l1 = generator_loss(d(torch.cat([x, fake], 1)), fake, y, 1000.0)
        opt_g.zero_grad()
        (gan + l1).backward()
        opt_g.step()
        sync(device)
        times.append(time.perf_counter() - start)
    step = sorted(times[1:])[len(times[1:]) // 2]
    return {"bench": "merge train step", "setting": name, "device": device, "batch": batch,
            "merge_size": size, "G_params_M": round(sum(p.numel() for p in g.parameters()) / 1e6, 2),
            "step_s": round(step, 4), "pairs_per_s": round(batch / step, 2), "peak_MiB": round(_peak(device, rss))}


@torch.no_grad()
def bench_pipeline(name: str, device: str, repeats: int) -> list[dict]:
    s = SETTINGS[name]
    estimator = SmallDepthNet(16).to(device).eval()
    g = MergeUNet(2, 1, s["num_downs"], s["ngf"]).to(device).eval()
    settings = BoostSettings(s["rf"], s["merge_size"], max_size=s["max_size"], max_resolution=s["max_resolution"],
                             multiple_of=4)
    image = render_scene(7, 0, 192, 1)[0][None].float().div(255)
    image = F.interpolate(image, size=(s["image"], s["image"]), mode="bilinear", align_corners=False).to(device)
    r_x, _ = resolution_search(image, settings)
    rows = []
    for what, fn in [("resolution search", lambda: resolution_search(image, settings)),
                     ("double estimate (R20)", lambda: double_estimate(estimator, g, image, s["rf"], r_x, settings)),
                     ("boost (double + patches)", lambda: boost(estimator, g, image, settings))]:
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        rss = rss_mib()
        fn()  # warm-up
        times, result = [], None
        for _ in range(repeats):
            sync(device)
            start = time.perf_counter()
            result = fn()
            sync(device)
            times.append(time.perf_counter() - start)
        row = {"bench": what, "setting": name, "device": device, "image_px": s["image"], "R20": r_x,
               "s_per_image": round(sorted(times)[len(times) // 2], 4), "peak_MiB": round(_peak(device, rss))}
        if isinstance(result, dict):
            row["patches"] = len(result["patches"])
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    runs = []
    if args.device in ("cpu", "all"):
        runs.append(("small", "cpu"))
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        runs += [("small", "cuda"), ("paper", "cuda")]
    print(f"# {platform.processor() or 'cpu'}, torch {torch.__version__}, {args.threads} CPU thread(s)")
    for name, device in runs:
        print(json.dumps(bench_train_step(name, device, args.steps)))
        for row in bench_pipeline(name, device, args.repeats):
            print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
