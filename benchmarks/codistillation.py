"""Codistillation benchmark: communication volume and step time.

1. Bytes per rank: a weight exchange every E steps (each rank receives the other G-1 models once) against the
   ring all-reduce of gradients that synchronous SGD over the whole world does every step, and against the
   in-group all-reduce that codistillation still does.
2. Measured collective time (gloo, local processes, CPU): broadcasting one model's weights vs all-reducing one
   gradient of the same size.
3. Step time of the single-process mode (G replicas + G-1 teacher forwards each) against one plain model on
   the same total batch, on CUDA when available.

    python benchmarks/codistillation.py                       # short default, < 2 minutes on CPU
    python benchmarks/codistillation.py --model resnet18 --batch-size 256 --steps 50   # on a GPU
"""

from __future__ import annotations

import argparse
import os
import socket
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from lit_digest.codistillation import ByteLSTM, Codistillation
from lit_digest.codistillation.losses import distillation_loss
from lit_digest.core.dist import ring_allreduce_bytes
from lit_digest.ssl import ResNet, SmallConvNet


def build(name: str) -> tuple[nn.Module, int | None, tuple[int, ...], int]:
    """model, num_classes for the appended head, input shape without batch, classes."""
    if name == "resnet18":
        return ResNet(depth=18, cifar_stem=True), 10, (3, 32, 32), 10
    if name == "smallconv":
        return SmallConvNet(width=16), 10, (3, 32, 32), 10
    if name == "lstm":
        return ByteLSTM(), None, (128,), 256
    raise ValueError(f"unknown model {name!r}")


def model_bytes(module: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _collective_worker(rank: int, world: int, port: int, numel: int, repeats: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    buf = torch.randn(numel)
    for op in ("broadcast", "all_reduce"):
        dist.barrier()
        start = time.perf_counter()
        for _ in range(repeats):
            dist.broadcast(buf, src=0) if op == "broadcast" else dist.all_reduce(buf)
        dist.barrier()
        if rank == 0:
            out[op] = (time.perf_counter() - start) / repeats
    dist.destroy_process_group()


def collective_times(numel: int, world: int, repeats: int) -> dict[str, float]:
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_collective_worker, args=(world, _free_port(), numel, repeats, out), nprocs=world, join=True)
        return dict(out)


def step_time(
    model: nn.Module,
    num_classes: int | None,
    shape: tuple[int, ...],
    classes: int,
    groups: int,
    batch: int,
    steps: int,
    device: torch.device,
) -> float:
    """Seconds per optimisation step of the single-process mode with ``groups`` replicas (1: plain "
    "training)."""
    module = Codistillation(model, num_classes=num_classes, num_groups=groups, burn_in_steps=0).to(device)
    module.train()
    opt = torch.optim.SGD([p for p in module.replicas.parameters()], lr=0.01, momentum=0.9)
    if len(shape) == 1:
        x = torch.randint(0, classes, (batch, *shape), device=device)
        y = torch.randint(0, classes, (batch, *shape), device=device)
    else:
        x = torch.randn(batch, *shape, device=device)
        y = torch.randint(0, classes, (batch,), device=device)

    def one_step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = x.new_zeros((), dtype=torch.float)
        for g in range(groups):
            logits = module.replicas[g](x[g::groups])
            flat = logits.reshape(-1, logits.shape[-1])  # (N, C)
            loss = loss + nn.functional.cross_entropy(flat, y[g::groups].reshape(-1))
            if groups > 1:
                teachers = module._teacher_logits(g, x[g::groups])  # (G-1, N, C)
                loss = loss + distillation_loss(flat, teachers)
        loss.backward()
        opt.step()

    for _ in range(2):
        one_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        one_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=["resnet18", "smallconv", "lstm"], default="smallconv")
    parser.add_argument("--groups", type=int, default=2)
    parser.add_argument("--world", type=int, default=128, help="world size for the byte count (paper: 128+)")
    parser.add_argument("--exchange-every", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=64, help="total batch of the step-time test")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--comm-world", type=int, default=2, help="local gloo processes for timing; 0 skips")
    parser.add_argument("--comm-repeats", type=int, default=5)
    args = parser.parse_args()

    model, num_classes, shape, classes = build(args.model)
    full = nn.Sequential(model, nn.Linear(model.num_features, num_classes)) if num_classes else model
    size = model_bytes(full)
    grad = sum(p.numel() * p.element_size() for p in full.parameters())
    world, groups, every = args.world, args.groups, args.exchange_every
    exchange = (groups - 1) * size
    print(
        f"model {args.model}: {size / 2**20:.1f} MiB of weights+buffers, {grad / 2**20:.1f} MiB of gradients"
    )
    print(f"per rank, per {every} steps, world {world}, {groups} groups:")
    print(f"  codistillation weight exchange      {exchange / 2**20:10.1f} MiB")
    in_group = every * ring_allreduce_bytes(grad, world // groups)
    print(f"  codistillation in-group all-reduce  {in_group / 2**20:10.1f} MiB")
    print(
        f"  sync SGD all-reduce over the world  {every * ring_allreduce_bytes(grad, world) / 2**20:10.1f} MiB"
    )
    print(f"  exchange / world all-reduce: {exchange / (every * ring_allreduce_bytes(grad, world)):.4f}")

    if args.comm_world > 1:
        times = collective_times(grad // 4, args.comm_world, args.comm_repeats)
        print(
            f"gloo, {args.comm_world} local processes, {grad / 2**20:.1f} MiB fp32: broadcast "
            f"{times['broadcast'] * 1e3:.1f} ms, all-reduce {times['all_reduce'] * 1e3:.1f} ms "
            f"(one exchange costs about {times['broadcast'] / times['all_reduce']:.2f} all-reduces; "
            f"codistillation pays it every {every} steps)"
        )

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    plain = step_time(
        build(args.model)[0], num_classes, shape, classes, 1, args.batch_size, args.steps, device
    )
    codist = step_time(
        build(args.model)[0], num_classes, shape, classes, groups, args.batch_size, args.steps, device
    )
    print(
        f"step time on {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}), "
        "total batch "
        f"{args.batch_size}: plain {plain * 1e3:.1f} ms, single-process codistillation ({groups} replicas) "
        f"{codist * 1e3:.1f} ms (x{codist / plain:.2f}: the teachers' forward passes)"
    )


if __name__ == "__main__":
    main()
