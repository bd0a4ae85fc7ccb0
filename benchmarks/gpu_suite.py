"""Every GPU number of lit_digest in one process: one Markdown table (``suite.md``) and one JSON file (``suite.json``)
in the folder given by ``--out``, written again after each row.

    python3 benchmarks/gpu_suite.py --out $OUT                             # a GPU: the full sizes, < 8 min on an H100
    python benchmarks/gpu_suite.py --device cpu --quick --out /tmp/suite   # tiny sizes, < 1 min on one core (a test)

A GPU machine without network installs the wheels of ``make gpu-wheels`` first (README, "GPU suite"). Each row calls
the function of its ``benchmarks/<method>.py``; it runs in its own ``try``, under its own time limit, so an error,
an out-of-memory or a time-out is written into that row and the next row runs. No row starts after ``--deadline``
seconds of the process, and a row's limit is cut to what is left of it, so the suite ends before 8 minutes
whatever happens (unless a kernel hangs).

Full sizes, and the time each should take on an H100: FLOPs of the work over an assumed share of the 989 TFLOP/s
bf16 peak, plus set-up. Each row's limit (``ROWS``) is a cap for a row that misbehaves; the deadline is the guarantee.

- BYOL / SimCLR, ours and lightly's (limit 60 s each): ResNet-18 with the CIFAR stem, 1.1 GFLOP a 32-px image
  forward; BYOL 8 passes an image (2 views x online forward + backward, target forward), 445 TFLOP a 50,000-image
  epoch, SimCLR 6 (333 TFLOP): 2-3 s at 15% of the peak (small convolutions), ~15 s with set-up, one epoch timed.
- MUSE CSLS induction (45 s): 2 x 200k x 200k x 300 similarities and 2 x 15k queries, 5e13 FLOP in fp32, with a
  top-k over 8e10 scores: ~10 s. Adversarial (45 s): 500 steps of batch 32, launch-bound (~5 ms a step), plus the
  200k x 300 spaces built on the CPU and the epoch's closing criterion: ~10 s.
- GPT-J small (30 s): 0.86 M parameters, launch-bound: 50 steps and 128 generated tokens in ~3 s. GPT-J 1.4B
  (45 s): 9.1 GFLOP a token x 8192 tokens x 12 steps = 0.9 PFLOP, ~2.5 s at 40% MFU; 256 generated tokens ~1 s.
- SC-FEGAN (45 s): ~1.1 TFLOP an image (generator, critic with the gradient penalty's double backward, VGG-16
  losses), batch 8 at 512 px, 6 steps in fp32/TF32: ~10 s.
- SAINT (20 s), AET (30 s), depth merge (30 s), attribution (20 s): small models, tens of steps, launch-bound:
  5-10 s each (AET: 5.4 GFLOP an image x 512 x 110 steps = 0.3 PFLOP).
- GANs N' Roses (45 s): the paper's 256-px networks, batch 4 a domain, 10 steps (~0.5 TFLOP a step with R1):
  ~10 s; inference of 8 styles and 64 video frames. VQGAN+CLIP (45 s): the notebook's 256-px VQGAN (16384 codes)
  and a ViT-B/32-sized CLIP, 32 cutouts, 10 generation steps and 10 VQGAN training steps of batch 8: ~15 s. NeRF
  stylisation (30 s): the paper's MLPs (8 x 256, 64 + 128 samples), 1024 rays and a 67 x 81 patch, 10 steps each:
  ~10 s.
- FSDP memory (90 s): the GPT-J-6B config with the blocks that fit one GPU, one step of 2.6e14 FLOP (with the
  recomputation); the model is built on the CPU first, as the config builds it (~4e9 values): ~45 s.

Expected in all about 3 minutes, with the process's start and imports.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import platform
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]
STARTED = time.perf_counter()
CIFAR10_TRAIN = 50_000

# Dense bf16 tensor-core peaks by a part of the device name: NVIDIA's data sheets (H100 SXM and H200 1,979 TFLOP/s,
# H100 NVL 1,671, H100 PCIe 1,513, L40S 733 "with sparsity", halved; A100 312 dense).
BF16_PEAKS = [("H100 PCIe", 756e12), ("H100 NVL", 835e12), ("H100", 989e12), ("H200", 989e12), ("A100", 312e12),
              ("L40S", 362e12)]


@dataclass
class Suite:
    device: str
    quick: bool
    workers: int
    numbers: dict[str, dict] = field(default_factory=dict)  # each finished row's numbers (the lightly rows read ours)

    def size(self, full, quick):
        return quick if self.quick else full

    def peak(self) -> tuple[float, str] | None:
        """The GPU's dense bf16 peak (FLOP/s) and its name, None when unknown or on the CPU."""
        return bf16_peak(torch.cuda.get_device_name()) if self.device == "cuda" else None


def bf16_peak(device_name: str) -> tuple[float, str] | None:
    """``BF16_PEAKS``' entry for a CUDA device name (the first part it contains), or None."""
    return next(((flops, label) for label, flops in BF16_PEAKS if label in device_name), None)


@dataclass
class Row:
    name: str
    limit_s: float
    run: Callable[[Suite], dict]  # -> {"setting", "result", "peak", "numbers"}


class RowTimeout(Exception):
    pass


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise ``RowTimeout`` in the main thread after ``seconds``."""
    def expire(signum, frame):
        raise RowTimeout(f"stopped after its limit of {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def gib(value: float) -> str:
    """GiB as text; NaN (not measured: the CPU) as "-"."""
    if value != value:
        return "-"
    return f"{value:.2f} GiB" if value >= 0.1 else f"{value * 1024:.1f} MiB"


def count(n: float) -> str:
    return next(f"{n / scale:,.2f} {unit}" for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K"), (1, ""))
                if n >= scale or scale == 1)


# -- rows ------------------------------------------------------------------------------------------------------------
def ssl_ours(method: str) -> Callable[[Suite], dict]:
    def run(s: Suite) -> dict:
        import lightly_peer
        import throughput

        batch, warmup, steps = s.size((256, 10, CIFAR10_TRAIN // 256 - 10), (4, 1, 2))
        crop = s.size([], ["--data.init_args.views.init_args.crop_size", "8"])
        r = throughput.measure(str(lightly_peer.CONFIGS[method]), "full", s.device, batch, steps, warmup, s.workers,
                               crop)
        setting = (f"configs/{method.lower()}/cifar10.yaml: ResNet-18 CIFAR stem, batch {batch}, "
                   f"{'bf16-mixed, channels_last' if s.device == 'cuda' else 'fp32'}, uint8 batches augmented on the "
                   f"device, {s.workers} workers{', 8-px crops' if s.quick else ''}")
        ips = r["images_per_s"]
        return {"setting": setting, "result": f"{ips:,.0f} images/s; {CIFAR10_TRAIN / ips:,.1f} s per CIFAR-10 epoch",
                "peak": gib(r["peak_gib"]), "numbers": {**r, "epoch_s": CIFAR10_TRAIN / ips, "batch": batch}}
    return run


def ssl_lightly(method: str) -> Callable[[Suite], dict]:
    def run(s: Suite) -> dict:
        import lightly
        import lightly_peer

        batch, images, size, warmup = s.size((256, CIFAR10_TRAIN, 32, 10), (4, 8, 8, 1))
        r = lightly_peer.measure(method, s.device, batch, images, size, warmup, s.workers)
        ours = s.numbers.get(f"{method}, ours", {}).get("images_per_s")
        ratio = ours / r["images_per_s"] if ours else float("nan")
        setting = (f"lightly {lightly.__version__}: {method}Transform in {r['workers']} DataLoader workers (PIL), "
                   f"its example's loop; same ResNet-18, heads, batch {batch} and precision; one epoch of {images:,} "
                   "images")
        result = (f"{r['images_per_s']:,.0f} images/s; {r['epoch_s']:,.1f} s per CIFAR-10 epoch; "
                  f"ours / lightly = {ratio:.2f}")
        return {"setting": setting, "result": result, "peak": gib(r["peak_gib"]),
                "numbers": {**r, "ours_over_lightly": ratio, "batch": batch}}
    return run


def muse_csls(s: Suite) -> dict:
    import muse_csls

    n, dim, max_rank, chunk = s.size((200_000, 300, 15_000, 256), (2000, 32, 500, 16))
    r = muse_csls.run(s.device, n, dim, 10, max_rank, "S2T&T2S", chunk)
    return {"setting": f"{n:,} x {n:,} x {dim}, CSLS k 10, S2T&T2S, max rank {max_rank:,}, fp32",
            "result": f"{r['total_s']} s ({r['csls_terms_s']} s CSLS terms + {r['induction_s']} s induction), "
                      f"{r['pairs']:,} pairs", "peak": f"{r['peak_extra_mib'] / 1024:.2f} GiB above the inputs"
            if s.device == "cuda" else "-", "numbers": r}


def muse_adversarial(s: Suite) -> dict:
    import muse_csls

    n, dim, steps, warmup, hidden = s.size((200_000, 300, 500, 20, 2048), (2000, 32, 3, 1, 64))
    r = muse_csls.adversarial_speed(s.device, n, dim, steps, warmup, dis_hidden_dim=hidden)
    return {"setting": f"MUSE() official defaults (discriminator 2 x {hidden}, 5 updates of batch 32 a step), "
                       f"{n:,} x {dim} synthetic spaces, Lightning fit, {steps} steps timed",
            "result": f"{r['steps_per_s']:,.1f} adversarial steps/s", "peak": gib(_peak_gib(s)), "numbers": r}


def gptj_row(preset: str) -> Callable[[Suite], dict]:
    def run(s: Suite) -> dict:
        import gptj

        from lit_digest.text.gptj import GPTJ, GPTJConfig

        quick = GPTJConfig.preset("tiny", **({} if preset == "small" else {"d_model": 64, "n_layer": 3}))
        config, batch, length, prompt, new, gen_batch, *_ = gptj.SETTINGS[preset]
        config, batch, length, prompt, new, gen_batch, steps = s.size(
            (config, batch, length, prompt, new, gen_batch, 50 if preset == "small" else 10),
            (quick, 2, 32, 8, 8, 2, 2))
        torch.manual_seed(0)
        with torch.device(s.device):
            model = GPTJ(config)
        tokens_s = gptj.train_speed(model, batch, length, steps, s.device)
        generated = gptj.generation_speed(model, gen_batch, prompt, new, True, s.device)
        flops = gptj.flops_per_token(config, length)
        peak = s.peak()
        mfu = tokens_s * flops / peak[0] if peak else float("nan")
        mfu_text = (f"MFU {mfu:.1%} of {peak[1]}'s {peak[0] / 1e12:.0f} TFLOP/s" if peak
                    else "MFU - (no known GPU peak)")
        setting = (f"{count(config.num_parameters())} parameters ({config.n_layer} x d {config.d_model}, "
                   f"vocabulary {config.vocab_size}), train {batch} x {length} tokens AdamW"
                   f"{', bf16 autocast' if s.device == 'cuda' else ''}; generate {new} after {prompt}, "
                   f"batch {gen_batch}")
        return {"setting": setting, "result": f"train {tokens_s:,.0f} tokens/s, {mfu_text} "
                                              f"({flops / 1e9:.3g} GFLOP a token); generate {generated:,.0f} tokens/s "
                                              f"with the KV cache",
                "peak": gib(_peak_gib(s)), "numbers": {"train_tokens_per_s": tokens_s, "mfu": mfu,
                                                       "flops_per_token": flops, "generate_tokens_per_s": generated,
                                                       "parameters": config.num_parameters()}}
    return run


def scfegan(s: Suite) -> dict:
    import scfegan

    name, steps = s.size(("paper-512", 5), ("tiny-32", 1))
    size, batch, *_ = scfegan.SETTINGS[name]
    r = scfegan.measure(name, s.device, steps, 1)
    return {"setting": f"{name}: {size} px, batch {batch}, G + D steps with the gradient penalty"
                       f"{' and VGG-16 losses' if not s.quick else ''}, fp32 (the configs')",
            "result": f"{r['images_per_s']:,.1f} images/s ({r['step_s']:.3f} s a step)",
            "peak": gib(r["peak_gib"]) if s.device == "cuda" else "-", "numbers": r}


def saint(s: Suite) -> dict:
    import saint

    batch, steps = s.size((256, 30), (32, 1))
    r = saint.bench("fair", "saint", s.device, batch, steps, 1)
    return {"setting": f"SAINT (official sizes) on the bundled fair table, batch {batch} rows, AdamW",
            "result": f"train {r['train rows/s']:,.0f} rows/s; pre-train {r['pretrain rows/s']:,.0f} rows/s",
            "peak": f"{r['train peak MiB'] / 1024:.2f} GiB" if "train peak MiB" in r else "-", "numbers": r}


def aet(s: Suite) -> dict:
    import aet

    batch, steps, warmup, size = s.size((512, 50, 5, 32), (4, 1, 1, 16))
    r = aet.measure(str(ROOT / aet.CONFIGS["AET-project"]), s.device, batch, steps, warmup, size)
    return {"setting": f"AET-project, NIN 4 x 192, {size} px, batch {batch}"
                       f"{', bf16 autocast, channels_last' if s.device == 'cuda' else ''}",
            "result": f"{r['warps']:,.0f} images/s with the warps drawn on the device ({r['model']:,.0f} without)",
            "peak": gib(r["peak_gib"]), "numbers": r}


def depth(s: Suite) -> dict:
    import depth

    name, steps = s.size(("paper", 5), ("tiny", 2))
    r = depth.bench_train_step(name, s.device, steps)
    return {"setting": f"merge network ({name}: {r['merge_size']} px, {r['G_params_M']} M parameters), batch "
                       f"{r['batch']}, D then G (pix2pix GAN + L1)",
            "result": f"{r['pairs_per_s']:,.2f} training pairs/s ({r['step_s']} s a step)",
            "peak": f"{r['peak_MiB'] / 1024:.2f} GiB" if s.device == "cuda" else "-", "numbers": r}


def authors(s: Suite) -> dict:
    import authors

    from lit_digest.text.gptj import GPTJ, GPTJConfig

    config, batch, length, *_ = authors.SETTINGS["330m"]
    config, batch, length, steps = s.size((config, batch, length, 10), (GPTJConfig.preset("tiny"), 2, 32, 2))
    torch.manual_seed(0)
    with torch.device(s.device):
        model = GPTJ(config)
    tokens_s = authors.train_speed(model, batch, length, steps, s.device, True)
    return {"setting": f"attribution head + auxiliary LM loss on a {count(config.num_parameters())} GPT-J, "
                       f"batch {batch} x {length} bytes", "result": f"{tokens_s:,.0f} training tokens/s",
            "peak": gib(_peak_gib(s)), "numbers": {"train_tokens_per_s": tokens_s}}


def ganroses(s: Suite) -> dict:
    import ganroses

    name, steps, repeats = s.size(("paper-256", 10), ("cpu-32", 1)) + (s.size(10, 1),)
    sizes, batch, *_ = ganroses.SETTINGS[name]
    r = ganroses.train(name, s.device, steps, 2 if not s.quick else 1)
    inferred = ganroses.infer(name, s.device, repeats, frames=s.size(64, 4))
    return {"setting": f"GANs N' Roses {name} (both generators, 3 discriminators, R1 every 16 steps), batch {batch} "
                       "augmentations of one image per domain, fp32 (the official code's)",
            "result": f"train {r['images_per_s']:,.1f} images/s; translate {inferred['styles_per_s']:,.1f} styles/s, "
                      f"video {inferred['frames_per_s']:,.1f} frames/s batched ({inferred['plain_frames_per_s']:,.1f} "
                      "one by one)",
            "peak": gib(_peak_gib(s)), "numbers": {**r, **inferred}}


def text2image(s: Suite) -> dict:
    import text2image

    name, steps, batch = s.size(("notebook", 10, 8), ("tiny", 1, 2))
    generation = text2image.generation(name, s.device, steps, 1)
    vqgan = text2image.vqgan_training(name, s.device, steps, 1, batch)
    side, prompts, cutouts, *_ = text2image.SETTINGS[name]
    return {"setting": f"VQGAN+CLIP {name}: {side} px, {prompts} prompt(s) x {cutouts} cutouts a step, Adam on the "
                       f"latent, fp32; VQGAN training batch {batch}",
            "result": f"generation {generation['steps_per_s']:,.2f} steps/s "
                      f"({generation['images_steps_per_s']:,.2f} image-steps/s); VQGAN training "
                      f"{vqgan['images_per_s']:,.1f} images/s",
            "peak": gib(_peak_gib(s)), "numbers": {"generation": generation, "vqgan": vqgan}}


def nerf(s: Suite) -> dict:
    import nerf

    name, steps = s.size(("paper", 10), ("tiny", 1))
    r = nerf.measure(name, s.device, steps, 1)
    h, w = nerf.SETTINGS[name]["patch"]
    return {"setting": f"NeRF {name} (NeRF++ background), {nerf.SETTINGS[name]['rays']} random rays a stage-1 step; "
                       f"stage 2: {h} x {w} ray patches, hypernetwork + VGG losses; fp32",
            "result": f"stage 1 {r['train_rays_s']:,.0f} rays/s; stage 2 {r['style_rays_s']:,.0f} rays/s; render "
                      f"{r['render_rays_s']:,.0f} rays/s",
            "peak": gib(_peak_gib(s)), "numbers": r}


def fsdp(s: Suite) -> dict:
    import gptj

    model = s.size(None, {"vocab_size": 256, "n_positions": 64, "d_model": 32, "n_layer": 2, "n_head": 4,
                          "rotary_dim": 4})
    r = gptj.fsdp_memory(str(ROOT / "configs/gptj/fsdp/gptj_6b.yaml"), s.device, model=model,
                         data=s.size(None, {"batch_size": 2, "seq_len": 32}))
    result = (f"estimate {gib(r['estimate_gib'])}, measured {gib(r['measured_gib'])} (reserved "
              f"{gib(r['reserved_gib'])}); the config's model: {gib(r['config_estimate_gib'])} on one GPU, "
              f"{gib(r['config_estimate_8_gib'])} each on 8")
    setting = (f"configs/gptj/fsdp/gptj_6b.yaml, ModelParallelStrategy (FSDP2) in 1 process (it shards nothing), "
               f"{count(r['parameters'])} parameters ({r['n_layer']} blocks), {r['batch']} x {r['seq_len']} "
               f"tokens, {r['precision']}, activation checkpointing"
               + (f"; {r['note']}" if r["note"] else ""))
    return {"setting": setting, "result": result, "peak": gib(r["measured_gib"]), "numbers": r}


def _peak_gib(s: Suite) -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if s.device == "cuda" else float("nan")


ROWS = [
    Row("BYOL, ours", 60, ssl_ours("BYOL")),
    Row("BYOL, lightly", 60, ssl_lightly("BYOL")),
    Row("SimCLR, ours", 60, ssl_ours("SimCLR")),
    Row("SimCLR, lightly", 60, ssl_lightly("SimCLR")),
    Row("MUSE CSLS induction", 45, muse_csls),
    Row("MUSE adversarial", 45, muse_adversarial),
    Row("GPT-J small", 30, gptj_row("small")),
    Row("GPT-J 1.4B", 45, gptj_row("1.4b")),
    Row("SC-FEGAN", 45, scfegan),
    Row("SAINT", 20, saint),
    Row("AET", 30, aet),
    Row("Depth merge (boosting)", 30, depth),
    Row("Writers and topics (attribution)", 20, authors),
    Row("GANs N' Roses", 45, ganroses),
    Row("VQGAN+CLIP", 45, text2image),
    Row("NeRF stylisation", 30, nerf),
    Row("FSDP memory (GPT-J-6B config)", 90, fsdp),  # last: it starts a process group
]


# -- running and writing ---------------------------------------------------------------------------------------------
def run_rows(rows: list[Row], suite: Suite, deadline_s: float, write: Callable[[list[dict]], None]) -> list[dict]:
    """Each row in turn, each in its own try and time limit; ``write`` gets the records after every row."""
    records: list[dict] = []
    for row in rows:
        record = {"row": row.name, "status": "ok", "setting": "", "result": "", "peak": "", "seconds": 0.0,
                  "numbers": {}}
        left = deadline_s - (time.perf_counter() - STARTED)
        if left < 5:
            record.update(status="skipped", result=f"not run: the suite's {deadline_s:.0f} s were spent")
        else:
            _reset(suite)
            start = time.perf_counter()
            try:
                with time_limit(min(row.limit_s, left)):
                    record.update(row.run(suite))
            except (Exception, SystemExit) as error:
                record.update(status="error", result=f"{type(error).__name__}: {error}".replace("\n", " ")[:400])
                traceback.print_exc()
            record["seconds"] = round(time.perf_counter() - start, 1)
        suite.numbers[row.name] = record["numbers"]
        records.append(record)
        print(f"gpu_suite: {row.name}: {record['status']}, {record['seconds']} s: {record['result']}", flush=True)
        write(records)
    return records


def _reset(suite: Suite) -> None:
    gc.collect()
    if suite.device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def environment(suite: Suite) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in ("torch", "lightning", "pytorch-lightning", "torchvision", "torchmetrics", "transformers", "lightly",
                 "jsonargparse", "wandb", "pydantic", "typing-extensions", "protobuf", "numpy", "pandas"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    cuda = suite.device == "cuda"
    peak = suite.peak()
    return {"device": torch.cuda.get_device_name() if cuda else platform.processor() or platform.machine(),
            "cuda": torch.version.cuda if cuda else None, "cpu_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "versions": versions,
            "bf16_peak_tflops": peak[0] / 1e12 if peak else None, "quick": suite.quick,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "command": " ".join(sys.argv)}


def plain(value):
    """``value`` with NaN and infinities as None: strict JSON."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def markdown(env: dict, records: list[dict]) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
    peak = f"; MFU over {env['bf16_peak_tflops']:.0f} TFLOP/s dense bf16" if env["bf16_peak_tflops"] else ""
    lines = [f"GPU suite on {env['device']}{' (quick mode: tiny sizes)' if env['quick'] else ''}, {env['date']}: "
             f"{versions}; CUDA {env['cuda']}{peak}; `{env['command']}`", "",
             "| row | setting | result | peak memory | s |", "| --- | --- | --- | --- | ---: |"]
    for r in records:
        result = r["result"] if r["status"] == "ok" else f"**{r['status']}**: {r['result']}"
        cells = [r["row"], r["setting"], result, r["peak"], f"{r['seconds']:.1f}"]
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "gpu_suite", help="folder for suite.md, .json")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the default on the CPU)")
    parser.add_argument("--deadline", type=float, default=None,
                        help="no row starts after this many seconds (default 465; quick mode 4 times as long)")
    parser.add_argument("--rows", nargs="+", default=None, help="only these rows (names as in the table)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("no CUDA device here: run benchmarks/gpu_suite.py --device cpu --quick")
    quick = args.quick or args.device == "cpu"
    workers = 0 if quick else max(1, (os.cpu_count() or 2) - 1)
    suite = Suite(args.device, quick, workers)
    unknown = set(args.rows or ()) - {r.name for r in ROWS}
    if unknown:
        raise ValueError(f"no row named {sorted(unknown)} in the suite: choose from {[r.name for r in ROWS]}")
    rows = [r for r in ROWS if args.rows is None or r.name in args.rows]
    if quick:  # the limits are a GPU's; a CPU, loaded by other work (the test suite), gets four times as long
        rows = [Row(r.name, 4 * r.limit_s, r.run) for r in rows]
    deadline = args.deadline if args.deadline is not None else (4 if quick else 1) * 465.0
    os.environ.setdefault("WANDB_MODE", "disabled")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    env = environment(suite)

    def write(records: list[dict]) -> None:
        env["wall_s"] = round(time.perf_counter() - STARTED, 1)
        (args.out / "suite.json").write_text(json.dumps(plain({**env, "rows": records}), indent=1, default=str))
        (args.out / "suite.md").write_text(markdown(env, records))

    records = run_rows(rows, suite, deadline, write)
    print(markdown(env, records), flush=True)
    print(f"gpu_suite: wrote {args.out / 'suite.md'} and suite.json in {env['wall_s']} s", flush=True)
    return 0


if __name__ == "__main__":
    from lit_digest.core.console import script

    raise SystemExit(script(main)())
