"""Domain-free callbacks: stop at a non-finite loss, checkpoint on a crash, channels_last on CUDA, write what
``predict`` computes."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from lit_digest.core.lightning import Callback, LightningModule, Trainer, pl
from lit_digest.core.outputs import announce

__all__ = ["FiniteLossGuard", "CheckpointOnException", "ChannelsLast", "PredictionWriter", "run_dir", "write_columns",
           "MonitoredMetricCheck", "ProgressBar"]


def run_dir(trainer: Trainer) -> Path:
    """The run's log folder. ``trainer.log_dir`` is a broadcast under DDP: call on every rank."""
    return Path(trainer.log_dir or trainer.default_root_dir)


class FiniteLossGuard(Callback):
    """Stops the run at the first non-finite loss or gradient with a checkpoint of the last finite state, and a
    message that says how to go on.

    The weights never take a non-finite update: gradients are checked before every optimiser step (except
    under ``16-mixed``, whose gradient scaler skips overflowing steps itself). The forward pass of the bad
    batch has already written its BatchNorm statistics, so the buffers are copied at the start of every
    batch (they are small) and put back before ``nonfinite-step=N.ckpt`` is saved. Resuming from that file
    with a lower learning rate (``--ckpt_path ... --model.init_args.optim.lr ...``) trains with the new rate:
    the schedule takes its peak from the config, not from the checkpoint (``lit_digest.core.optim``).
    All ranks agree on the decision, so DDP runs stop together.
    """

    def __init__(self) -> None:
        self._buffers: list[tuple[torch.Tensor, torch.Tensor]] = []

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch, batch_idx: int) -> None:
        self._buffers = [(b, b.detach().clone()) for b in pl_module.buffers() if b.is_floating_point()]

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: torch.Tensor) -> None:
        bad = not bool(torch.isfinite(loss.detach()).all())
        if trainer.strategy.reduce_boolean_decision(bad, all=False):
            self._stop(trainer, f"The training loss became non-finite ({loss.detach().float().mean().item()})")

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer) -> None:
        if getattr(trainer.precision_plugin, "scaler", None) is not None:
            return  # 16-mixed: the scaler skips steps with overflowing gradients and lowers its scale
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if grads and not bool(torch.stack(torch._foreach_norm(grads)).isfinite().all()):  # same on every rank
            self._stop(trainer, "The gradients became non-finite")

    @torch.no_grad()
    def _stop(self, trainer: Trainer, what: str) -> None:
        for buffer, saved in self._buffers:  # undo what the bad batch's forward pass wrote
            buffer.copy_(saved)
        step = trainer.global_step
        path = run_dir(trainer) / "checkpoints" / f"nonfinite-step={step}.ckpt"
        trainer.save_checkpoint(path, weights_only=False)
        raise FloatingPointError(
            f"{what} at epoch {trainer.current_epoch}, step {step}. The last finite weights and statistics are "
            f"saved in {path}. Usual fixes: a lower learning rate, gradient clipping (--trainer.gradient_clip_val "
            "1.0), bf16-mixed rather than 16-mixed, or data without NaNs; then go on from there with "
            f"--ckpt_path {path} --model.init_args.optim.lr <a lower rate> (the new rate is used)."
        )


class CheckpointOnException(Callback):
    """Saves ``interrupted-step=N.ckpt`` beside the run's checkpoints when training stops on an
    exception (Ctrl-C, out of memory, a crash) after it has trained, so no progress is lost; resume
    with ``--resume auto`` or ``--ckpt_path <that file>``. A run that fails before its first
    optimisation step (a configuration error, missing data) writes nothing.

    Lightning's ``OnExceptionCheckpoint`` does the same, but its mere presence makes every
    ``fit`` without ``--ckpt_path`` resume from ``last`` (Lightning 2.x), which silently
    continues an older run; this one changes nothing about resuming.
    """

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if isinstance(exception, FloatingPointError):
            return  # FiniteLossGuard already saved the last good weights
        if trainer.global_step == 0:
            return  # nothing trained: nothing to keep
        ckpt = trainer.checkpoint_callback
        folder = Path(ckpt.dirpath) if ckpt is not None and ckpt.dirpath else Path(trainer.default_root_dir)
        path = folder / f"interrupted-step={trainer.global_step}.ckpt"
        trainer.save_checkpoint(path, weights_only=False)
        pl.utilities.rank_zero_info(f"Training stopped by {type(exception).__name__}; checkpoint saved to {path}")


class ChannelsLast(Callback):
    """Puts the model in ``channels_last`` memory format on CUDA (faster convolutions with
    tensor cores; the DataModules already emit channels_last batches there)."""

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if pl_module.device.type == "cuda":
            pl_module.to(memory_format=torch.channels_last)


class PredictionWriter(pl.callbacks.BasePredictionWriter):
    """Writes what ``predict`` computes to one file per run (per rank under DDP): every tensor a method's
    ``predict_step`` returns in a dict (encoder ``features``, ``labels``, ``logits``, MUSE's ``mapped``
    embeddings ...), with each sample's ``index`` in its data set and the ``split`` it came from (the
    DataModule's ``predict_split_names``, else the dataloader's number).

    Args:
        fmt: ``"npy"`` (one structured array: ``np.load(path)["features"]``, no pickle), ``"pt"`` (a dict
            of tensors, ``torch.load``), ``"csv"`` (a table, one column per value: a vector field ``probabilities``
            of K values gives ``probabilities_0`` .. ``probabilities_<K-1>``) or ``"parquet"`` (a table with one
            column per field; needs pandas and pyarrow).
        dirpath: the folder; ``None`` is the run folder.
        name: the file's name without its suffix.
    """

    def __init__(self, fmt: Literal["npy", "pt", "csv", "parquet"] = "npy", dirpath: str | None = None,
                 name: str = "predictions") -> None:
        super().__init__(write_interval="batch")
        if fmt not in ("npy", "pt", "csv", "parquet"):
            raise ValueError(f"PredictionWriter: fmt must be 'npy', 'pt', 'csv' or 'parquet', got {fmt!r}")
        self.fmt, self.dirpath, self.name = fmt, dirpath, name
        self.rows: dict[str, list] = {}
        self.path: Path | None = None

    def on_predict_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.rows = {}

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx,
                           dataloader_idx=0) -> None:
        if not isinstance(prediction, dict):
            prediction = {"output": prediction}
        names = getattr(trainer.datamodule, "predict_split_names", None)
        n = len(next(iter(prediction.values())))
        split = names[dataloader_idx] if names and dataloader_idx < len(names) else str(dataloader_idx)
        index = prediction.get("index", batch_indices)
        self.rows.setdefault("index", []).append(torch.as_tensor(list(index) if index is not None else
                                                                 range(n)).long().cpu())
        self.rows.setdefault("split", []).extend([split] * n)
        for key, value in prediction.items():
            if key != "index":
                self.rows.setdefault(key, []).append(value.detach().float().cpu() if value.is_floating_point()
                                                     else value.detach().cpu())

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.rows:
            return
        folder = Path(self.dirpath) if self.dirpath else run_dir(trainer)
        suffix = f"_rank{trainer.global_rank}" if trainer.world_size > 1 else ""
        self.path = folder / f"{self.name}{suffix}.{self.fmt}"
        columns = {k: (v if k == "split" else torch.cat(v)) for k, v in self.rows.items()}
        write_columns(columns, self.path, self.fmt)
        announce(self.path, len(columns["split"]), "predictions")


def write_columns(columns: dict, path: Path, fmt: str) -> None:
    """``columns``: equal-length tensors (one row per sample; 2-d ones are vectors per row) and ``split``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "pt":
        torch.save(columns, path)
        return
    tensors = {k: v for k, v in columns.items() if k != "split"}
    if fmt == "npy":
        splits = np.asarray(columns["split"], dtype=str)
        dtype = [("split", splits.dtype)] + [(k, v.numpy().dtype, tuple(v.shape[1:])) for k, v in tensors.items()]
        table = np.empty(len(splits), dtype=dtype)
        table["split"] = splits
        for k, v in tensors.items():
            table[k] = v.numpy()
        np.save(path, table)
        return
    import pandas as pd

    if fmt == "csv":  # one column per value: a vector field ``p`` of K values gives p_0 .. p_<K-1>
        table: dict = {}
        for k, v in tensors.items():
            values = v.reshape(len(v), -1).numpy()
            names = [k] if v.ndim == 1 else [f"{k}_{j}" for j in range(values.shape[1])]
            table.update(zip(names, values.T))
            if k == "index":
                table["split"] = columns["split"]
        pd.DataFrame(table).to_csv(path, index=False)
        return
    try:
        import pyarrow  # noqa: F401
    except ImportError as err:
        raise ImportError("PredictionWriter(fmt='parquet') needs pyarrow: pip install 'lit-digest[tabular]', or use "
                          "fmt 'csv', 'npy' or 'pt'") from err
    frame = pd.DataFrame({"split": columns["split"], **{k: (list(v.numpy()) if v.ndim > 1 else v.numpy())
                                                        for k, v in tensors.items()}})
    frame.to_parquet(path)


class MonitoredMetricCheck(Callback):
    """Warns once when a callback monitors a metric the run never logs (a ``ModelCheckpoint(monitor=
    'val/auroc')`` on a multi-class table that logs ``val/acc``), naming the closest logged keys; a
    ``ModelCheckpoint`` then keeps the newest checkpoint instead of crashing the run, and an ``EarlyStopping``
    stops being strict about it. The command line adds this callback to every run.

    Checked after each validation (not the sanity check), or after each training epoch when the run has no
    validation, so a metric logged only by validation is not reported missing before validation ran.
    """

    def __init__(self) -> None:
        self._warned: set[int] = set()

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._check(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not sum(trainer.num_val_batches or [0]):
            self._check(trainer)

    def _check(self, trainer: Trainer) -> None:
        logged = sorted(trainer.callback_metrics)
        for callback in trainer.callbacks:
            monitor = getattr(callback, "monitor", None)
            if not isinstance(monitor, str) or monitor in logged or id(callback) in self._warned:
                continue
            self._warned.add(id(callback))
            close = difflib.get_close_matches(monitor, logged, n=3, cutoff=0.3) or logged[:6]
            then = ""
            if isinstance(callback, pl.callbacks.ModelCheckpoint):
                callback.monitor, callback.save_top_k = None, 1
                then = " It keeps the newest checkpoint instead."
            elif isinstance(callback, pl.callbacks.EarlyStopping):
                callback.strict = False
                then = " It will not stop the run."
            pl.utilities.rank_zero_warn(
                f"{type(callback).__name__} monitors '{monitor}', which this run does not log (it logs "
                f"{', '.join(close) or 'nothing'}).{then} Set the callback's monitor to a logged metric.")


class ProgressBar(pl.callbacks.RichProgressBar):
    """Lightning's rich progress bar, reading "Epoch 3" rather than "Epoch 3/-2" when steps or time, not epochs,
    bound the run (``max_epochs=-1``). The command line uses it in place of the default rich bar."""

    def _get_train_description(self, current_epoch: int) -> str:
        text = super()._get_train_description(current_epoch)
        if self.trainer.max_epochs is not None and self.trainer.max_epochs < 0:
            text = text.replace(f"Epoch {current_epoch}/{self.trainer.max_epochs - 1}", f"Epoch {current_epoch}")
        return text
