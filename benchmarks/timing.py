"""What every benchmark measures the same way: wall time per call, peak memory, the machine line, ``--threads``.

    from timing import StepTimer, add_threads, machine, peak_gib, seconds_per_call, sync

GPU work is asynchronous: a timer read before ``torch.cuda.synchronize()`` measures the launch, not the work, so
every timed region starts and ends with :func:`sync`. Peak memory is ``torch.cuda.max_memory_allocated`` on CUDA
(``seconds_per_call(..., reset_peak=True)`` resets it after the warm-up) and the process's peak resident set
(``ru_maxrss``, which never goes down) on the CPU.
"""

from __future__ import annotations

import argparse
import platform
import resource
import time
from collections.abc import Callable

import torch

from lit_digest.core.lightning import Callback


def sync(device: str | torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing on the CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def seconds_per_call(fn: Callable[[], object], steps: int, warmup: int, device: str | torch.device,
                     reset_peak: bool = False) -> float:
    """Mean wall seconds of ``fn()`` over ``steps`` calls after ``warmup`` untimed ones. ``reset_peak``: reset CUDA's
    peak-memory counter after the warm-up, so that :func:`peak_gib` then reads the timed calls' peak alone."""
    for _ in range(warmup):
        fn()
    sync(device)
    if reset_peak and torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return (time.perf_counter() - start) / steps


class StepTimer(Callback):
    """Times a ``Trainer.fit``'s training batches after ``warmup`` of them (``end - start`` over ``steps``), synced
    with the device; CUDA's peak-memory counter is reset when the timing starts."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end, self.steps = warmup, 0.0, 0.0, 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if batch_idx == self.warmup:
            sync(module.device)
            if module.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if batch_idx >= self.warmup:
            sync(module.device)
            self.end = time.perf_counter()
            self.steps = batch_idx - self.warmup + 1


def rss_mib() -> float:
    """The process's peak resident set so far, MiB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_gib(device: str | torch.device) -> float:
    """CUDA: the peak allocated since the last reset; CPU: the process's peak resident set."""
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return rss_mib() / 1024


def machine(title: str) -> str:
    """One line that says what ran where: torch's version, CPU threads, processor and GPU."""
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    return (f"{title}; torch {torch.__version__}; CPU threads {torch.get_num_threads()}; "
            f"{platform.processor() or platform.machine()}; GPU: {gpu}")


def add_threads(parser: argparse.ArgumentParser, default: int | None = None) -> None:
    """``--threads N``: torch's CPU threads for the run (default: ``default``, or torch's own when None)."""
    shown = default if default else "torch's"
    parser.add_argument("--threads", type=int, default=default, help=f"torch CPU threads (default: {shown})")


def apply_threads(args: argparse.Namespace) -> None:
    """Set torch's CPU threads from ``--threads`` when it was given."""
    if args.threads:
        torch.set_num_threads(args.threads)
