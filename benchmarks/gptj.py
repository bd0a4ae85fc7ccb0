"""GPT-J throughput: training tokens per second (forward + backward + AdamW step) and generation tokens per second
(with the KV cache and without it), on the CPU and, when there is one, on the GPU; peak GPU memory.

Settings (random tokens; the work does not depend on the values):

- ``small``: the byte-level model of configs/gptj/jargon.yaml (4 layers, d_model 128, 0.86 M parameters), batch
  16 x 128 tokens; generation of 128 tokens after a 32-token prompt, batch 4;
- ``350m``: a GPT-J of 24 layers, d_model 1024, 16 heads of 64 with rotary 16, GPT-J's vocabulary (405 M
  parameters), batch 4 x 2048 tokens in bf16 autocast; generation of 256 tokens after 512, batch 8 (CUDA only);
- ``1.4b``: GPT-3 XL's shape as a GPT-J (Brown et al., arXiv 2005.14165, table 2.1: 24 layers, d_model 2048; 16
  heads of 128 with rotary 32, GPT-J's quarter of the head), GPT-J's vocabulary (1.41 B parameters), batch 4 x 2048
  tokens in bf16 autocast; generation of 256 tokens after 512, batch 8 (CUDA only);
- ``6b``: GPT-J-6B's forward and generation in bf16 weights, batch 1 (CUDA with >= 24 GB only; no training:
  one GPU cannot hold its AdamW state, see the FSDP configs).

``flops_per_token`` counts a training token's model FLOPs (for MFU), and ``fsdp_memory`` sets the memory estimate of
an FSDP config beside the measured peak of one training step (both used by ``benchmarks/gpu_suite.py``).

    python benchmarks/gptj.py                   # small on the CPU; small, 350m and 6b on the GPU if any
    python benchmarks/gptj.py --settings small --steps 20 --threads 2
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import sync  # noqa: E402

from lit_digest.text.gptj import GPTJ, GPTJConfig, generate, lm_loss  # noqa: E402

SETTINGS = {
    # name: (config, train batch, train length, prompt length, new tokens, generation batch, devices, train?)
    "small": (GPTJConfig.preset("small"), 16, 128, 32, 128, 4, ("cpu", "cuda"), True),
    "350m": (GPTJConfig(d_model=1024, n_layer=24, n_head=16, rotary_dim=16), 4, 2048, 512, 256, 8, ("cuda",), True),
    "1.4b": (GPTJConfig(d_model=2048, n_layer=24, n_head=16, rotary_dim=32), 4, 2048, 512, 256, 8, ("cuda",), True),
    "6b": (GPTJConfig(), 1, 2048, 512, 128, 1, ("cuda",), False),
}



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


def flops_per_token(config: GPTJConfig, seq_len: int) -> float:
    """Model FLOPs of one training token, forward and backward, as PaLM counts them for MFU (Chowdhery et al., arXiv
    2204.02311, appendix B): ``6 N + 12 L H Q T``. ``N``: the parameters that take part in a matrix product, all but
    the input embedding table (a lookup); ``L`` layers, ``H Q`` = d_model, ``T`` the sequence length. The attention
    term counts the whole ``T x T`` score matrix although it is causal, as PaLM does; recomputation (activation
    checkpointing) is not counted: model FLOPs, not hardware FLOPs."""
    matmul_params = config.num_parameters() - config.vocab_size * config.d_model
    return 6 * matmul_params + 12 * config.n_layer * config.d_model * seq_len


def blocks_that_fit(config: GPTJConfig, budget: float, estimate: Callable[[GPTJConfig], float]) -> int:
    """The most blocks (at least 1, at most ``config.n_layer``) whose ``estimate`` in bytes stays within ``budget``."""
    layers = config.n_layer
    while layers > 1 and estimate(replace(config, n_layer=layers)) > budget:
        layers -= 1
    return layers


def fsdp_memory(config: str, device: str, max_fraction: float = 0.85, model: dict | None = None,
                data: dict | None = None) -> dict:
    """Peak memory of one training step of an FSDP config's model (``lit_digest.text.CausalLM`` under the config's
    ``ModelParallelStrategy``: FSDP2 ``fully_shard`` per block) in one process, beside the estimate of
    ``lit_digest.text.gptj.memory`` for one process. The batch, length, precision and activation checkpointing are the
    config's; ``model`` / ``data`` replace its sizes (the suite's quick mode). Random tokens.

    One process shards nothing: each "shard" is the whole model, so this checks the unsharded terms of the estimate
    (weights, gradients, AdamW, activations, logits), not its division by the world size. When the estimate exceeds
    ``max_fraction`` of the GPU, the model keeps the config's widths with the most blocks that fit, and says so."""
    from torch.utils.data import DataLoader, TensorDataset

    from lit_digest.core.lightning import Trainer, pl
    from lit_digest.core.optim import Optim
    from lit_digest.text import CausalLM
    from lit_digest.text.gptj.memory import estimate_memory

    spec = yaml.safe_load(Path(config).read_text())
    init = spec["model"]["init_args"]
    sizes = {**init["model"], **(model or {})}
    loader = {**spec["data"]["init_args"], **(data or {})}
    batch, length = loader["batch_size"], loader["seq_len"]
    precision = spec["trainer"]["precision"] if device == "cuda" else "32-true"
    checkpointing = bool(init.get("activation_checkpointing", False))
    cfg = GPTJConfig(**sizes)

    def estimate(c: GPTJConfig, shards: int = 1):
        return estimate_memory(c, batch, length, shards=shards, half_activations=not precision.startswith("32"),
                               activation_checkpointing=checkpointing)

    full = estimate(cfg)
    note = ""
    if device == "cuda":
        capacity = torch.cuda.get_device_properties(0).total_memory
        layers = blocks_that_fit(cfg, max_fraction * capacity, lambda c: estimate(c).total)
        if layers < cfg.n_layer:
            note = (f"estimate {full.total / 2**30:.1f} GiB > {max_fraction:.0%} of this GPU's "
                    f"{capacity / 2**30:.0f} GiB: measured with {layers} of {cfg.n_layer} blocks")
            cfg = GPTJConfig(**{**sizes, "n_layer": layers})
    tokens = torch.randint(0, cfg.vocab_size, (batch, length + 1), generator=torch.Generator().manual_seed(0))
    train = DataLoader(TensorDataset(tokens[:, :-1], tokens[:, 1:]), batch_size=batch)
    lm = CausalLM(model=cfg, optim=Optim(**{**init.get("optim", {}), "warmup_steps": 0}),
                  activation_checkpointing=checkpointing, samples=0, memory_report=False)
    strategy = pl.strategies.ModelParallelStrategy(data_parallel_size=1, tensor_parallel_size=1)
    trainer = Trainer(accelerator="gpu" if device == "cuda" else "cpu", devices=1, strategy=strategy,
                      precision=precision, max_steps=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                      gradient_clip_val=spec["trainer"].get("gradient_clip_val"))
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    try:
        trainer.fit(lm, train)
        measured = torch.cuda.max_memory_allocated() if device == "cuda" else float("nan")
        reserved = torch.cuda.max_memory_reserved() if device == "cuda" else float("nan")
    finally:
        if torch.distributed.is_initialized():  # the strategy's one-process group
            torch.distributed.destroy_process_group()
    predicted = estimate(cfg)
    return {"parameters": cfg.num_parameters(), "n_layer": cfg.n_layer, "batch": batch, "seq_len": length,
            "precision": precision, "activation_checkpointing": checkpointing,
            "estimate_gib": predicted.total / 2**30, "measured_gib": measured / 2**30, "reserved_gib": reserved / 2**30,
            "config_estimate_gib": full.total / 2**30,
            "config_estimate_8_gib": estimate(GPTJConfig(**sizes), shards=8).total / 2**30, "note": note}


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
