"""GPT-J's block beside its ablations on an offline corpus, same budget: one command, a Markdown table.

    python -m lit_digest.text.gptj.compare                    # the docs' table (docs/text.md): Debian's fortunes
    python -m lit_digest.text.gptj.compare --corpus jargon    # the excerpt shipped with lit_digest, no package
    python -m lit_digest.text.gptj.compare --steps 100        # a quick look

Every model is the ``small`` preset (byte-level, 4 layers, d_model 128, 4 heads of 32) trained for ``--steps``
AdamW steps (GPT-J's schedule: warmup, cosine to 10%, weight decay 0.1, clipping at 1) on ``--batch-size``
windows of ``--seq-len`` bytes of the corpus (``CorpusDataModule``: Debian's English fortunes, one document per
fortune, by default), from the same seed and the same batches:

- GPT-J: parallel attention + MLP on one LayerNorm, rotary on the first 8 of the 32 dims of each head (as GPT-J:
  64 of 256);
- sequential: GPT-2's block (``x + attn(ln_1 x)``, then ``x + mlp(ln_2 x)``), same rotary;
- full rotary: GPT-J's block, rotary on every dimension of each head.

The score is bits per byte on the whole validation split (the last ``--val-fraction`` of the text), beside the
unigram baseline (byte frequencies of the training split) and the untrained model. Times are wall-clock training
times on this machine (``--threads`` CPU threads, or the GPU when there is one): on a shared machine they measure
the load as much as the model.

The run goes through ``lit_digest.core.measured.MeasuredRun`` (``runs/measured/gptj/<date>_<time>/``, ``--out``
for another parent folder): the options as used, the Markdown table, ``plot.png`` with every variant's training
curve (bits per byte of each training batch, averaged over the seeds, beside the unigram baseline; also logged to
W&B), ``results.json`` and the machine-readable line.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
import warnings
from dataclasses import replace

import torch

from lit_digest.core.console import script
from lit_digest.core.lightning import Callback, Trainer, seed_everything
from lit_digest.core.measured import MeasuredRun
from lit_digest.core.optim import Optim
from lit_digest.text.data import CorpusDataModule
from lit_digest.text.gptj.model import GPTJConfig
from lit_digest.text.gptj.module import CausalLM, lm_loss

__all__ = ["VARIANTS", "KEYS", "LossCurve", "evaluate_bpb", "train_variant", "plot_curves", "main"]

VARIANTS = {
    "GPT-J (parallel block, partial rotary)": {},
    "sequential block (GPT-2 style)": {"block": "sequential"},
    "full rotary": {"rotary_dim": None},
}
KEYS = dict(zip(VARIANTS, ("gptj", "sequential", "full_rotary")))  # the names of the measured numbers


class LossCurve(Callback):
    """``points``: ``(step, training loss in nats per token)`` after every optimisation step."""

    def __init__(self) -> None:
        self.points: list[tuple[int, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        loss = trainer.callback_metrics.get("train/loss")
        if loss is not None:
            self.points.append((trainer.global_step, float(loss)))


@torch.no_grad()
def evaluate_bpb(lm: CausalLM, data: CorpusDataModule) -> float:
    """Bits per byte of ``lm`` on every validation window."""
    lm.eval()
    device = next(lm.model.parameters()).device
    total, count = 0.0, 0
    for tokens, targets in data.val_dataloader():
        loss, _ = lm_loss(lm.model(tokens.to(device)), targets.to(device))
        total += float(loss) * tokens.numel()
        count += tokens.numel()
    return total / count / math.log(2) / data.bytes_per_token


def train_variant(config: GPTJConfig, data: CorpusDataModule, steps: int, lr: float, seed: int = 0,
                  curve: LossCurve | None = None) -> tuple[CausalLM, float, int]:
    """``(trained module, training wall seconds, parameters)``; the process's CPU seconds are printed beside;
    ``curve`` records the training loss of every step."""
    seed_everything(seed, verbose=False)
    optim = Optim(name="adamw", lr=lr, weight_decay=0.1, betas=(0.9, 0.999), warmup_steps=max(1, steps // 20),
                  final_lr_ratio=0.1)
    lm = CausalLM(model=config, optim=optim, samples=0, memory_report=False)
    trainer = Trainer(accelerator="auto", devices=1, max_steps=steps, gradient_clip_val=1.0, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      limit_val_batches=0, num_sanity_val_steps=0, callbacks=[curve] if curve is not None else None)
    start, cpu = time.perf_counter(), time.process_time()
    trainer.fit(lm, datamodule=data)
    seconds = time.perf_counter() - start
    print(f"  ({time.process_time() - cpu:.0f} s of CPU time in {seconds:.0f} s of wall time)", flush=True)
    return lm, seconds, sum(p.numel() for p in lm.model.parameters())


def plot_curves(curves: dict[str, list[list[tuple[int, float]]]], bytes_per_token: float, unigram: float):
    """Every variant's training bits per byte against the step (mean over seeds, smoothed over 1/20 of the run),
    and the unigram baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, runs in curves.items():
        length = min(len(r) for r in runs)
        if not length:
            continue
        steps = np.array([step for step, _ in runs[0][:length]])
        bpb = np.mean([[loss for _, loss in r[:length]] for r in runs], axis=0) / math.log(2) / bytes_per_token
        width = max(1, length // 20)
        smooth = np.convolve(bpb, np.ones(width) / width, mode="valid")
        ax.plot(steps[width - 1:], smooth, label=name)
    ax.axhline(unigram, color="gray", linestyle="--", label="unigram baseline")
    ax.set_xlabel("optimisation step")
    ax.set_ylabel("training bits per byte")
    ax.set_ylim(top=unigram + 1.0)
    ax.legend(fontsize=8)
    ax.set_title("GPT-J block ablations: training curves", fontsize=10)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="fortunes", choices=["fortunes", "fortunes-ru", "jargon"],
                        help="fortunes: apt-get install fortunes; jargon: shipped with lit_digest")
    parser.add_argument("--val-fraction", type=float, default=0.05)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="more than the free cores slows it down")
    parser.add_argument("--out", default=None, help="parent folder of the run's folder (default runs/measured)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*(num_workers|does not have many workers|LeafSpec).*")
    run = MeasuredRun("gptj", settings={k: v for k, v in vars(args).items() if k != "out"}, out=args.out)
    s = run.settings
    separator = "\n\n" if s["corpus"] == "jargon" else "\n%\n"
    data = CorpusDataModule(corpus=s["corpus"], seq_len=s["seq_len"], batch_size=s["batch_size"],
                            val_fraction=s["val_fraction"], separator=separator)
    data.setup()
    base = GPTJConfig.preset("small", n_positions=max(s["seq_len"], 64))
    tokens = s["steps"] * s["batch_size"] * s["seq_len"]
    print(f"{s['corpus']}: {len(data.train_tokens):,} training / {len(data.val_tokens):,} validation bytes; "
          f"{s['steps']} steps x {s['batch_size']} x {s['seq_len']} bytes = {tokens:,} training tokens per model, "
          f"{s['seeds']} seed(s), {torch.get_num_threads()} CPU thread(s), "
          f"{'CUDA' if torch.cuda.is_available() else 'CPU'}", flush=True)
    unigram = data.unigram_bits_per_byte()
    rows = [{"model": "unigram (byte frequencies of the training split)", "bpb": [unigram], "params": 255,
             "seconds": [0.0]}]
    seed_everything(0, verbose=False)
    untrained = CausalLM(model=base, samples=0, memory_report=False)
    untrained.configure_model()
    rows.append({"model": "GPT-J, untrained", "bpb": [evaluate_bpb(untrained, data)],
                 "params": sum(p.numel() for p in untrained.model.parameters()), "seconds": [0.0]})
    curves: dict[str, list] = {}
    for name, change in VARIANTS.items():
        row = {"model": name, "bpb": [], "seconds": [], "params": 0}
        for seed in range(s["seeds"]):
            curve = LossCurve()
            lm, seconds, params = train_variant(replace(base, **change), data, s["steps"], s["lr"], seed, curve)
            curves.setdefault(name, []).append(curve.points)
            row["bpb"].append(evaluate_bpb(lm, data))
            row["seconds"].append(seconds)
            row["params"] = params
            print(f"  {name}, seed {seed}: {row['bpb'][-1]:.3f} bits/byte in {seconds:.0f} s", flush=True)
        rows.append(row)
    cells = []
    for row in rows:
        bpb = torch.tensor(row["bpb"])
        spread = f" +- {float(bpb.std()):.3f}" if len(bpb) > 1 else ""
        secs = sum(row["seconds"]) / len(row["seconds"])
        speed = f"{tokens / secs:,.0f}" if secs else "-"
        cells.append([row["model"], f"{row['params']:,}", f"{float(bpb.mean()):.3f}{spread}",
                      f"{secs:.0f}" if secs else "-", speed])
    print()
    run.table(["model", "parameters", "validation bits/byte", "training wall time (s)", "training tokens/s"], cells)
    print(f"\nwall time of the whole command: {time.perf_counter() - start:.0f} s "
          f"(CPU time of the process: {time.process_time():.0f} s)")
    run.figure(plot_curves(curves, data.bytes_per_token, unigram))
    numbers = {"unigram_bpb": unigram, "untrained_bpb": rows[1]["bpb"][0]}
    for r in rows[2:]:
        bpb = torch.tensor(r["bpb"], dtype=torch.float64)
        numbers[f"{KEYS[r['model']]}_bpb"] = float(bpb.mean())
        numbers[f"{KEYS[r['model']]}_bpb_std"] = float(bpb.std()) if len(bpb) > 1 else 0.0
    run.finish(numbers)
    return rows


if __name__ == "__main__":
    raise SystemExit(script(main)())
