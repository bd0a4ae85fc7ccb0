"""Writers and topics: training tokens per second of the attribution model (head + auxiliary LM loss, forward,
backward, AdamW) and of the conditioned LM, and generation tokens per second of control-prefixed samples, on the CPU
and, when there is one, on the GPU; peak GPU memory.

Settings (random bytes; the work does not depend on the values): the byte-level ``small`` GPT-J of
configs/authors/*.yaml (4 layers, d_model 128, 0.86 M parameters) with 512 positions; attribution batches of 16
passages of 128 bytes, LM batches of 16 windows of 128 bytes; generation of 128 bytes after a 12-byte control
prefix for 60 samples at once (6 labels x 10, the measured command's setting). On CUDA also a 24-layer,
d_model 1024 GPT-J (~330 M parameters with a byte vocabulary), batch 16 x 512, bf16 autocast.

    python benchmarks/authors.py
    python benchmarks/authors.py --steps 20 --threads 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import sync  # noqa: E402

from lit_digest.text.authors.module import masked_lm_loss, pool  # noqa: E402
from lit_digest.text.gptj import GPTJ, GPTJConfig, generate, lm_loss  # noqa: E402

SETTINGS = {
    # name: (config, batch, length, generation batch, devices)
    "small": (GPTJConfig.preset("small", n_positions=512), 16, 128, 60, ("cpu", "cuda")),
    "330m": (GPTJConfig(vocab_size=256, n_positions=1024, d_model=1024, n_layer=24, n_head=16, rotary_dim=16), 16,
             512, 60, ("cuda",)),
}



def train_speed(model: GPTJ, batch: int, length: int, steps: int, device: str, attribution: bool) -> float:
    head = torch.nn.Linear(model.config.d_model, 6).to(device)
    optimizer = torch.optim.AdamW([*model.parameters(), *head.parameters()], lr=1e-4, weight_decay=0.01)
    x = torch.randint(0, model.config.vocab_size, (batch, length + 1), device=device)
    lengths = torch.full((batch,), length, device=device)
    labels = torch.randint(0, 6, (batch,), device=device)
    model.train()
    for step in range(steps + 2):  # two warm-up steps
        if step == 2:
            sync(device)
            start = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            if attribution:
                h = model.hidden_states(x[:, :-1])
                loss = F.cross_entropy(head(pool(h, lengths, "mean")).float(), labels)
                loss = loss + 0.5 * masked_lm_loss(model.lm_head(h), x[:, :-1], lengths)
            else:
                loss, z = lm_loss(model(x[:, :-1]), x[:, 1:])
                loss = loss + 1e-4 * z
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    sync(device)
    return steps * batch * length / (time.perf_counter() - start)


@torch.no_grad()
def generation_speed(model: GPTJ, batch: int, new: int, device: str) -> float:
    model.eval()
    prompts = [list(b"[computers]\n\n\n") for _ in range(batch)]
    with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
        generate(model, prompts, 4, top_p=0.9)  # warm-up
        sync(device)
        start = time.perf_counter()
        generate(model, prompts, new, top_p=0.9)
        sync(device)
    return batch * new / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s), "
          f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA'}")
    print("| setting | device | parameters | attribution train tokens/s | LM train tokens/s | generation tokens/s "
          "(60 samples) | peak GPU memory |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in args.settings:
        config, batch, length, gen_batch, allowed = SETTINGS[name]
        for device in devices:
            if device not in allowed:
                continue
            torch.manual_seed(0)
            model = GPTJ(config).to(device)
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            attribution = train_speed(model, batch, length, args.steps, device, attribution=True)
            lm = train_speed(model, batch, length, args.steps, device, attribution=False)
            gen = generation_speed(model, gen_batch, 128, device)
            memory = f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if device == "cuda" else "-"
            params = sum(p.numel() for p in model.parameters())
            print(f"| {name} | {device} | {params:,} | {attribution:,.0f} | {lm:,.0f} | {gen:,.0f} | {memory} |",
                  flush=True)


if __name__ == "__main__":
    main()
