"""SAINT benchmark: training and inference speed (rows/s) of SAINT, SAINT-s and SAINT-i, and the cost of
intersample attention as the table widens.

1. Training step (forward, backward, AdamW) and pre-training step (two views, contrastive + denoising) on a
   batch of the bundled ``fair`` table (8 columns) and of ``breast_cancer`` (30 columns), with the official
   sizes for each variant (``official_sizes``).
2. Inference with each ``eval_rows`` mode: ``batch`` (the rows of the batch attend to each other), ``context``
   (each row attends to 255 fixed training rows and itself: the context rows are encoded at every call) and
   ``self``.
3. On CUDA (when present): the same, with the peak memory of a training step.

    python benchmarks/saint.py                     # CPU (and CUDA if present), < 2 minutes on CPU
    python benchmarks/saint.py --batch-size 1024 --steps 50 --devices cuda
"""

from __future__ import annotations

import argparse

import torch
from timing import seconds_per_call

from lit_digest.tabular import SAINT, SAINTPretrain, TabularDataModule
from lit_digest.tabular.data import TableBatch
from lit_digest.tabular.tasks import task_loss


def _batch(table: str, size: int, device: str) -> tuple[TableBatch, dict]:
    data = TabularDataModule(table, batch_size=size)
    data.setup()
    rows = data.splits["train_all"]
    index = torch.arange(size) % len(rows.y)
    return TableBatch(*(t[index].to(device) for t in rows)), data.schema.as_dict()


def bench(table: str, variant: str, device: str, batch_size: int, steps: int, warmup: int) -> dict[str, float]:
    rows, schema = _batch(table, batch_size, device)
    torch.manual_seed(0)
    model = SAINT(variant=variant, schema=schema).to(device)
    model.set_context(TableBatch(*(t.cpu() for t in rows)))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def train_step() -> None:
        model.train()
        loss = task_loss(model(rows.x_cat, rows.x_cont, rows.cont_mask), rows.y, model.schema.task)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    result = {"train rows/s": batch_size / seconds_per_call(train_step, steps, warmup, device, reset_peak=True)}
    if device == "cuda":
        result["train peak MiB"] = torch.cuda.max_memory_allocated() / 2**20
    pre = SAINTPretrain(variant=variant, schema=schema).to(device)
    pre_opt = torch.optim.AdamW(pre.parameters(), lr=1e-4)

    def pretrain_step() -> None:
        pre.losses(rows)["loss"].backward()
        pre_opt.step()
        pre_opt.zero_grad(set_to_none=True)

    result["pretrain rows/s"] = batch_size / seconds_per_call(pretrain_step, steps, warmup, device)
    model.eval()
    modes = ("batch", "context", "self") if model.net.encoder.rows else ("batch",)
    for mode in modes:
        with torch.no_grad():
            seconds = seconds_per_call(lambda m=mode: model(rows.x_cat, rows.x_cont, rows.cont_mask, eval_rows=m),
                                       steps, warmup, device)
        result[f"eval {mode} rows/s"] = batch_size / seconds
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", nargs="+", default=["fair", "breast_cancer"])
    parser.add_argument("--variants", nargs="+", default=["saint_s", "saint", "saint_i"])
    parser.add_argument("--batch-size", type=int, default=256, help="official: 256")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 3 on CPU, 30 on CUDA)")
    parser.add_argument("--warmup", type=int, default=1)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    parser.add_argument("--devices", nargs="+", default=devices)
    args = parser.parse_args()
    for device in args.devices:
        steps = args.steps or (3 if device == "cpu" else 30)
        threads = f", {torch.get_num_threads()} threads" if device == "cpu" else f", {torch.cuda.get_device_name()}"
        print(f"\n## {device}{threads}, batch {args.batch_size}, {steps} timed steps\n")
        header = None
        for table in args.tables:
            for variant in args.variants:
                result = bench(table, variant, device, args.batch_size, steps, args.warmup)
                if header is None:
                    keys = ["train rows/s", "pretrain rows/s", "eval batch rows/s", "eval context rows/s",
                            "eval self rows/s"] + (["train peak MiB"] if device == "cuda" else [])
                    header = keys
                    print("| table | variant | " + " | ".join(keys) + " |")
                    print("|" + " --- |" * (len(keys) + 2))
                cells = [f"{result[k]:.0f}" if k in result else "-" for k in header]
                print(f"| {table} | {variant} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
