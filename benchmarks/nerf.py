"""Speed and memory of the stylised NeRF (arXiv 2105.13016): rays per second for stage-1 training (coarse + fine
+ NeRF++ background, forward, backward, Adam), stage-2 training (a patch of rays, the frozen density, the
hypernetwork's colour layers, the feature network's losses) and rendering (no gradients), and peak memory.

    python benchmarks/nerf.py                      # CPU (the experiment's field), and CUDA when present
    python benchmarks/nerf.py --devices cpu --steps 3

Settings: ``small`` = the measured command's field (width 64, depth 4, 32 + 32 samples, 16 + 16 in the
background), 1024 rays per stage-1 step, a 24 x 24 patch; ``paper`` (CUDA only) = NeRF's sizes (width 256, depth
8, 64 + 128 samples, NeRF++'s 64 + 128 in the background), 1024 rays, the official 67 x 81 patch. Untrained
weights (the work does not depend on them). Peak memory: CUDA ``max_memory_allocated``; CPU the growth of the
process's peak resident set.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import add_threads, apply_threads, machine, peak_gib, rss_mib, seconds_per_call  # noqa: E402

from lit_digest.nerf.field import RadianceField  # noqa: E402
from lit_digest.nerf.stylize import StyleNeRF  # noqa: E402

SETTINGS = {
    "small": dict(field=dict(depth=4, width=64, skips=(2,), color_widths=(32,), coarse_samples=32, fine_samples=32,
                             background_samples=(16, 16)), rays=1024, patch=(24, 24)),
    "tiny": dict(field=dict(depth=3, width=16, skips=(1,), color_widths=(8,), coarse_samples=4, fine_samples=4,
                            background_samples=(4, 4)), rays=16, patch=(8, 8)),  # the GPU suite's quick mode
    "paper": dict(field=dict(depth=8, width=256, skips=(4,), color_widths=(128,), coarse_samples=64,
                             fine_samples=128, background_samples=(64, 128)), rays=1024, patch=(67, 81)),
}


def _rays(n: int, device: str) -> tuple[torch.Tensor, ...]:
    origins = torch.nn.functional.normalize(torch.randn(n, 3, device=device), dim=-1) * 0.9
    dirs = -origins + 0.3 * torch.randn(n, 3, device=device)
    return origins, dirs, torch.full((n,), 1e-4, device=device), torch.full((n,), 2.0, device=device)


def measure(setting: str, device: str, steps: int, warmup: int) -> dict[str, float]:
    s = SETTINGS[setting]
    torch.manual_seed(0)
    field = RadianceField(**s["field"]).to(device)
    optimizer = torch.optim.Adam(field.parameters(), lr=5e-4)
    rays = _rays(s["rays"], device)
    target = torch.rand(s["rays"], 3, device=device)

    def stage1() -> None:
        out = field.render(*rays, perturb=True)
        loss = (out["rgb"] - target).pow(2).mean() + (out["rgb_coarse"] - target).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    out = {"train_rays_s": s["rays"] / seconds_per_call(stage1, steps, warmup, device)}
    style = StyleNeRF(RadianceField(**s["field"])).to(device)
    style_optimizer = torch.optim.Adam(style.hyper.parameters(), lr=1e-3)
    h, w = s["patch"]
    patch = _rays(h * w, device)
    content, style_image = torch.rand(1, 3, h, w, device=device), torch.rand(3, 64, 64, device=device)

    def stage2() -> None:
        params = style.style_params(style_image)
        rendered = style.field.render(*patch, perturb=True, color_params=params, coarse_color=False)["rgb"]
        terms = style.losses(rendered.view(1, h, w, 3).permute(0, 3, 1, 2), content, style_image[None])
        style_optimizer.zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        style_optimizer.step()

    out["style_rays_s"] = h * w / seconds_per_call(stage2, steps, warmup, device)
    render_rays = 4 * s["rays"]
    many = _rays(render_rays, device)

    @torch.no_grad()
    def render() -> None:
        field.render(*many)

    out["render_rays_s"] = render_rays / seconds_per_call(render, steps, warmup, device)
    out["peak_mib"] = 1024 * peak_gib(device)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 3 on CPU, 20 on CUDA)")
    add_threads(parser)
    parser.add_argument("--devices", nargs="+", default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    args = parser.parse_args()
    apply_threads(args)
    print(f"{machine('NeRF stylisation')}; load average {os.getloadavg()[0]:.1f}")
    print(f"{'setting':9s}{'device':8s}{'train rays/s':>14s}{'stage-2 rays/s':>16s}{'render rays/s':>15s}"
          f"{'peak MiB':>10s}")
    for device in args.devices:
        for setting in ("small", "paper") if device == "cuda" else ("small",):
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            start_rss = rss_mib()
            steps = args.steps or (20 if device == "cuda" else 3)
            r = measure(setting, device, steps, 1 if device == "cpu" else 3)
            peak = r["peak_mib"] if device == "cuda" else r["peak_mib"] - start_rss
            print(f"{setting:9s}{device:8s}{r['train_rays_s']:14.0f}{r['style_rays_s']:16.0f}"
                  f"{r['render_rays_s']:15.0f}{peak:10.0f}", flush=True)


if __name__ == "__main__":
    main()
