"""CSLS dictionary induction throughput and peak memory (MUSE refinement step, arXiv 1710.04087), and the speed of
MUSE's adversarial steps.

Synthetic unit vectors stand in for two aligned 200k x 300 vocabularies (the official setting);
the work does not depend on the values. One induction = the CSLS neighbourhood terms of every
source and target word (one chunked pass over the 200k x 200k similarities) plus the best
target of the ``max_rank`` most frequent words in each direction, then the S2T&T2S intersection.

    python benchmarks/muse_csls.py                      # 200k x 300, CPU, and the GPU when there is one
    python benchmarks/muse_csls.py --n-words 50000 --device cpu

Peak memory is what the induction adds on top of its two inputs: on CPU, the growth of the
process's peak resident set (ru_maxrss) during the run; on GPU, torch.cuda.max_memory_allocated.

``--adversarial STEPS`` also times MUSE's adversarial training (``adversarial_speed``): ``MUSE()`` with the official
defaults (discriminator 2 x 2048, 5 discriminator updates of batch 32 per mapping update, the 75,000 most frequent
words) fitted by a Lightning Trainer on synthetic ``--n-words`` x ``--dim`` spaces, steps per second after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lit_digest.muse.csls import mutual_mean_topk_similarity  # noqa: E402
from lit_digest.muse.dictionary import induce_dictionary  # noqa: E402


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def unit_rows(n: int, dim: int, device: str, seed: int) -> torch.Tensor:
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn(n, dim, generator=g)
    x.div_(x.norm(dim=1, keepdim=True))
    return x.to(device)


def run(device: str, n_words: int, dim: int, knn: int, max_rank: int, build: str, chunk_mib: int) -> dict:
    src = unit_rows(n_words, dim, device, 0)
    tgt = unit_rows(n_words, dim, device, 1)
    chunk_bytes = chunk_mib * 2**20
    inputs_mib = 2 * src.numel() * src.element_size() / 2**20
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    rss_before = _rss_mib()

    t0 = time.perf_counter()
    r_src, r_tgt = mutual_mean_topk_similarity(src, tgt, knn, chunk_bytes=chunk_bytes)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t_terms = time.perf_counter() - t0
    t1 = time.perf_counter()
    pairs = induce_dictionary(
        src, tgt, method="csls", knn=knn, build=build, max_rank=max_rank, r_src=r_src, r_tgt=r_tgt,
        chunk_bytes=chunk_bytes,
    )  # fmt: skip
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t_induce = time.perf_counter() - t1
    total = t_terms + t_induce

    if device.startswith("cuda"):
        peak_extra = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak_extra = max(0.0, _rss_mib() - rss_before)
    queries = max_rank * (2 if "T2S" in build else 1)
    return {
        "device": torch.cuda.get_device_name()
        if device.startswith("cuda")
        else platform.processor() or "cpu",
        "threads": torch.get_num_threads(),
        "n_words": n_words,
        "dim": dim,
        "build": build,
        "max_rank": max_rank,
        "chunk_mib": chunk_mib,
        "csls_terms_s": round(t_terms, 2),
        "induction_s": round(t_induce, 2),
        "total_s": round(total, 2),
        "similarities_per_s": f"{(n_words * n_words + queries * n_words) / total:.3g}",
        "pairs": int(len(pairs)),
        "inputs_mib": round(inputs_mib, 1),
        "peak_extra_mib": round(peak_extra, 1),
    }


def adversarial_speed(device: str, n_words: int, dim: int, steps: int, warmup: int = 10,
                      criterion_words: int = 10000, dis_hidden_dim: int = 2048) -> dict:
    """Adversarial steps per second (each: ``dis_steps`` discriminator updates, one mapping update and the
    orthogonalisation) of ``MUSE`` in a Lightning fit on synthetic embeddings; one epoch of ``warmup + steps``
    steps, timed from the end of the warm-up to the last step (the epoch's closing evaluation is not timed)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from timing import StepTimer

    from lit_digest.core.lightning import Trainer
    from lit_digest.muse import MUSE, SyntheticEmbeddingsDataModule

    data = SyntheticEmbeddingsDataModule(n_words=n_words, dim=dim, n_eval=min(500, n_words // 4))
    model = MUSE(dim=dim, dis_hidden_dim=dis_hidden_dim, n_epochs=1, epoch_size=32 * (warmup + steps), n_refinement=0,
                 dis_most_frequent=min(75000, n_words), criterion_words=min(criterion_words, n_words))
    timer = StepTimer(warmup)
    trainer = Trainer(accelerator="gpu" if device.startswith("cuda") else "cpu", devices=1, max_epochs=1,
                      precision="32-true", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, callbacks=[timer])
    trainer.fit(model, data)
    return {"steps_per_s": timer.steps / (timer.end - timer.start), "steps": timer.steps, "n_words": n_words,
            "dim": dim}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-words", type=int, default=200000)
    parser.add_argument("--dim", type=int, default=300)
    parser.add_argument("--knn", type=int, default=10)
    parser.add_argument("--max-rank", type=int, default=15000)
    parser.add_argument("--build", default="S2T&T2S", choices=["S2T", "T2S", "S2T&T2S", "S2T|T2S"])
    parser.add_argument("--chunk-mib", type=int, default=256)
    parser.add_argument("--device", default="auto", help="cpu, cuda, or auto (CPU, then the GPU if any)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--adversarial", type=int, default=0, metavar="STEPS", help="also time STEPS adversarial steps")
    args = parser.parse_args()
    devices = ["cpu", "cuda"] if args.device == "auto" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        if args.device == "cuda":
            sys.exit("no CUDA device")
        devices.remove("cuda")
        print("no GPU here: CPU only")
    results = []
    for device in devices:
        head = f"CSLS induction, {args.n_words} x {args.dim} per side, {args.build}, max rank {args.max_rank}"
        print(f"{head}, on {device} ...", flush=True)
        res = run(device, args.n_words, args.dim, args.knn, args.max_rank, args.build, args.chunk_mib)
        results.append(res)
        print("  " + "  ".join(f"{k}={v}" for k, v in res.items()), flush=True)
        if args.adversarial:
            res = adversarial_speed(device, args.n_words, args.dim, args.adversarial)
            print(f"  adversarial: {res['steps_per_s']:.1f} steps/s", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
