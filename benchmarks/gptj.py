"""GPT-J throughput: training tokens per second (forward + backward + AdamW step) and generation tokens per second
(with the KV cache and without it), on the CPU and, when there is one, on the GPU; peak GPU memory.

Settings (random tokens; the work does not depend on the values):

- ``small``: the byte-level model of configs/gptj/jargon.yaml (4 layers, d_model 128, 0.86 M parameters), batch
  16 x 128 tokens; generation of 128 tokens after a 32-token prompt, batch 4;
- ``350m``: a GPT-J of 24 layers, d_model 1024, 16 heads of 64 with rotary 16, GPT-J's vocabulary (405 M
  parameters), batch 4 x 2048 tokens in bf16 autocast; generation of 256 tokens after 512, batch 8 (CUDA only);
- ``6b``: GPT-J-6B's forward and generation in bf16 weights, batch 1 (CUDA with >= 24 GB only; no training:
  one GPU cannot hold its AdamW state, see the FSDP configs).

    python benchmarks/gptj.py                   # small on the CPU; small, 350m and 6b on the GPU if any
    python benchmarks/gptj.py --settings small --steps 20 --threads 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lit_digest.text.gptj import GPTJ, GPTJConfig, generate, lm_loss  # noqa: E402

SETTINGS = {
    # name: (config, train batch, train length, prompt length, new tokens, generation batch, devices, train?)
    "small": (GPTJConfig.preset("small"), 16, 128, 32, 128, 4, ("cpu", "cuda"), True),
    "350m": (GPTJConfig(d_model=1024, n_layer=24, n_head=16, rotary_dim=16), 4, 2048, 512, 256, 8, ("cuda",), True),
    "6b": (GPTJConfig(), 1, 2048, 512, 128, 1, ("cuda",), False),
}


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def train_speed(model: GPTJ, batch: int, length: int, steps: int, device: str) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)
    x = torch.randint(0, model.config.vocab_size, (batch, length + 1), device=device)
    model.train()
    for step in range(steps + 2):  # two warm-up steps
        if step == 2:
            sync(device)
            start = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss, z = lm_loss(model(x[:, :-1]), x[:, 1:])
        (loss + 1e-4 * z).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    sync(device)
    return steps * batch * length / (time.perf_counter() - start)


@torch.no_grad()
def generation_speed(model: GPTJ, batch: int, prompt: int, new: int, use_cache: bool, device: str) -> float:
    model.eval()
    prompts = torch.randint(0, model.config.vocab_size, (batch, prompt)).tolist()
    with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
        generate(model, prompts, 4, temperature=0.0, use_cache=use_cache)  # warm-up
        sync(device)
        start = time.perf_counter()
        generate(model, prompts, new, temperature=0.0, use_cache=use_cache)
        sync(device)
    return batch * new / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s)"
          + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no CUDA"))
    print("| setting | device | parameters | train tokens/s | generate tokens/s (KV cache) | generate tokens/s "
          "(no cache) | peak GPU memory |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in args.settings:
        config, batch, length, prompt, new, gen_batch, devices, train = SETTINGS[name]
        for device in devices:
            if device == "cuda" and not torch.cuda.is_available():
                continue
            if name == "6b" and torch.cuda.get_device_properties(0).total_memory < 24 * 2**30:
                continue
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            torch.manual_seed(0)
            with torch.device(device):
                model = GPTJ(config)
            if not train:
                model = model.to(torch.bfloat16)
            params = sum(p.numel() for p in model.parameters())
            tokens_train = f"{train_speed(model, batch, length, args.steps, device):,.0f}" if train else "-"
            cached = generation_speed(model, gen_batch, prompt, new, True, device)
            uncached = generation_speed(model, gen_batch, prompt, min(new, 32), False, device)
            peak = f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if device == "cuda" else "-"
            print(f"| {name} | {device} | {params:,} | {tokens_train} | {cached:,.0f} | {uncached:,.0f} | {peak} |",
                  flush=True)
            del model
            if device == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
