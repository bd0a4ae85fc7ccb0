"""HyperparameterControl benchmark: what the callback costs per optimisation step.

Step time of the same run without the callback, with the reduce-on-plateau controller and with a learned policy
(random weights: the cost does not depend on them), 16 decisions per run and 8 sampled steps per interval (a
sampled step clones the weights and takes four norms: runs shorter than 128 steps sample every step):

1. an MLP on scikit-learn's digits (``lit_digest.lr_control.tasks``), on the CPU;
2. BYOL with a small ConvNet on synthetic images, on CUDA when available (else the CPU).

    python benchmarks/lr_control.py            # about two minutes on a 2-core CPU
    python benchmarks/lr_control.py --steps 640 --repeats 3

The speedup table (the controllers against a tuned AdamW grid) is not a benchmark of speed: it is
``python -m lit_digest.lr_control.speedup``, see docs/lr_control.md.
"""

from __future__ import annotations

import argparse
import time

import torch

from lit_digest.core.lightning import Trainer
from lit_digest.core.optim import Optim
from lit_digest.lr_control import NUM_FEATURES, ControllerPolicy, HyperparameterControl, LearnedController
from lit_digest.lr_control.policy import PlateauController
from lit_digest.lr_control.tasks import POOL, TaskModule, quiet_inner_runs, task_loaders


def controllers() -> dict:
    return {"none": None, "plateau": lambda: PlateauController(),
            "learned": lambda: LearnedController(policy=ControllerPolicy(NUM_FEATURES, 64))}


def fit_seconds(make_module, make_data, steps: int, control, accelerator: str) -> float:
    callbacks = [] if control is None else [HyperparameterControl(control(), decisions=16)]
    module, data = make_module(), make_data()
    with quiet_inner_runs():
        trainer = Trainer(accelerator=accelerator, devices=1, max_steps=steps, logger=False,
                          enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                          num_sanity_val_steps=0, limit_val_batches=0, callbacks=callbacks)
        start = time.perf_counter()
        trainer.fit(module, *data) if isinstance(data, tuple) else trainer.fit(module, datamodule=data)
    if accelerator == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def report(title: str, make_module, make_data, steps: int, repeats: int, accelerator: str) -> None:
    print(f"\n{title} ({accelerator}, {steps} steps, best of {repeats})")
    base = None
    for name, control in controllers().items():
        seconds = min(fit_seconds(make_module, make_data, steps, control, accelerator) for _ in range(repeats))
        ms = 1000 * seconds / steps
        base = base or ms
        print(f"  {name:8s} {ms:7.2f} ms/step  ({100 * (ms / base - 1):+5.1f}% vs none)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=320)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    spec = next(s for s in POOL if s.name == "digits-mlp")
    report("MLP on digits", lambda: TaskModule(spec), lambda: task_loaders(spec, 0)[:1], args.steps, args.repeats,
           "cpu")

    from lit_digest.ssl import BYOL, BYOLViews, SmallConvNet, SyntheticImageDataModule

    accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    width, size = (32, 32) if accelerator == "cuda" else (8, 16)
    report("BYOL, SmallConvNet", lambda: BYOL(SmallConvNet(3, width), num_classes=10, proj_hidden_dim=256,
                                               proj_dim=64, pred_hidden_dim=256,
                                               optim=Optim(name="lars", lr=1.0, scale_lr_by_batch=True)),
           lambda: SyntheticImageDataModule(num_train=512, image_size=size, batch_size=64, num_workers=0,
                                            knn_bank_size=0, views=BYOLViews(crop_size=size)),
           args.steps // 2, args.repeats, accelerator)


if __name__ == "__main__":
    main()
