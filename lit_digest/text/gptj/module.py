"""``CausalLM``: GPT-J pre-training and fine-tuning as a LightningModule.

The model is built in ``configure_model`` (from its sizes, or from a Hugging Face GPT-J folder), so a sharded
strategy builds it in its own context: DeepSpeed ZeRO-3 partitions it as it is created, and under Lightning's
``ModelParallelStrategy`` each block is sharded with FSDP2's ``fully_shard``. ``FSDPStrategy`` (FSDP1) wraps it
after. Training follows mesh-transformer-jax (``device_train.py`` and ``configs/6B_roto_256.json``): AdamW
(betas 0.9 / 0.999, decoupled weight decay 0.1 on matrices only), linear warmup then cosine decay to 10% of the
peak, gradients clipped to global norm 1 (``trainer.gradient_clip_val: 1.0`` in the configs), and the z-loss
``1e-4 (log Z - max logit)^2`` added to the cross-entropy (``ProjectionShard.loss`` in ``layers.py``, called with
``z_loss=True`` in training; the logits there are shifted by their stop-gradient maximum first).
"""

from __future__ import annotations

import math
import sys
from typing import Any

import torch
from torch import Tensor
from torchmetrics.aggregation import MeanMetric

from lit_digest.core.lightning import LightningModule, pl
from lit_digest.core.optim import Optim, configure_optim, split_decay_groups
from lit_digest.text.gptj.hf import config_from_hf, load_hf, read_hf_folder
from lit_digest.text.gptj.memory import estimate_memory
from lit_digest.text.gptj.model import GPTJ, PRESETS, GPTJConfig
from lit_digest.text.gptj.sampling import generate
from lit_digest.text.gptj.writer import CompletionWriter

__all__ = ["CausalLM", "lm_loss", "shard_model", "LARGE_PARAMETERS"]

LARGE_PARAMETERS = 100_000_000  # a model this size or larger prints its memory estimate when it is constructed

# Checkpoints keep the model's sizes in their hyperparameters: let torch.load(weights_only=True) read them.
torch.serialization.add_safe_globals([GPTJConfig])


def lm_loss(logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """Mean next-token cross-entropy (nats) and mesh-transformer-jax's z-loss term over every position.

    The z term is ``mean((log Z - max logit)^2)`` with the maximum taken without gradient: mesh-transformer-jax
    shifts the logits by their ``stop_gradient`` maximum before ``log(sum(exp))``, so its "log Z" is that of the
    shifted logits (between 0 and ``log V``), not PaLM's ``log(Z)^2`` of the raw ones.

    logits: ``(B, T, V)``; targets: ``(B, T)``.
    """
    logits = logits.float().flatten(0, 1)  # (B T, V)
    log_z = torch.logsumexp(logits, dim=-1)  # (B T,)
    nll = log_z - logits.gather(-1, targets.reshape(-1, 1)).squeeze(-1)
    shifted_log_z = log_z - logits.detach().amax(dim=-1)  # (B T,), in [0, log V]
    return nll.mean(), shifted_log_z.square().mean()


def shard_model(model: GPTJ, mesh: Any) -> GPTJ:
    """FSDP2: each block its own shard group (gathered for its forward and backward only), then the rest."""
    from torch.distributed.fsdp import fully_shard

    for block in model.h:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


class CausalLM(LightningModule):
    """Next-token prediction with GPT-J: ``train/loss`` (nats per token), ``val/loss``, ``val/bpb`` (bits per
    UTF-8 byte, from the DataModule's ``bytes_per_token``), ``val/ppl`` (per token); samples to W&B after each
    validation; ``predict`` continues the DataModule's prompts and writes ``completions.jsonl`` in the run folder
    (``CompletionWriter``).

    The validation numbers come from one torchmetrics ``MeanMetric`` of the per-token loss (weighted by tokens),
    which sums and counts across processes: ``val/ppl`` equals torchmetrics' ``Perplexity`` on the same logits
    (the tests check it), which is not used itself because it takes a softmax of a second copy of the logits
    ``(B T, V)`` in their own dtype (bf16 under mixed precision). Bits per byte has no torchmetrics metric.

    Args:
        model: the sizes (``GPTJConfig``); ``None`` takes ``preset``'s.
        preset: a named size of ``lit_digest.text.gptj.PRESETS`` when ``model`` is ``None``: ``small`` (the
            default: byte-level, 4 layers, d_model 128, 0.86 M parameters, trains on a CPU), ``tiny`` (tests) or
            ``6b`` (GPT-J-6B, for sharded GPUs: configs/gptj/fsdp). A model of 100 M parameters or more prints its
            memory estimate when it is constructed.
        pretrained: a Hugging Face GPT-J folder (``config.json`` + weights) to start from; its sizes must equal
            ``model``'s. Read when training starts fresh, not when resuming or loading a Lightning checkpoint.
        optim: AdamW, peak lr 1.2e-4, 3000 warmup steps, cosine to 10%, weight decay 0.1 (GPT-J-6B's run; the
            run's own length from the Trainer replaces its 350k steps).
        z_loss: weight of ``mean((log Z - max logit)^2)`` (mesh-transformer-jax: 1e-4; see ``lm_loss``).
        activation_checkpointing: recompute each block in the backward pass instead of storing its activations.
        samples: texts generated after each validation (from the DataModule's first prompt) and logged to W&B.
        max_new_tokens, temperature, top_k, top_p: generation for the samples and ``predict`` (top-p 0.9 at
            temperature 1: mesh-transformer-jax's sampler).
        memory_report: print the per-device memory estimate when training starts.
    """

    def __init__(self, model: GPTJConfig | None = None, preset: str = "small", pretrained: str | None = None,
                 optim: Optim = Optim(name="adamw", lr=1.2e-4, weight_decay=0.1, betas=(0.9, 0.999),
                                      warmup_steps=3000, final_lr_ratio=0.1),
                 z_loss: float = 1e-4, activation_checkpointing: bool = False, samples: int = 1,
                 max_new_tokens: int = 64, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = 0.9, memory_report: bool = True) -> None:
        super().__init__()
        if z_loss < 0 or samples < 0 or max_new_tokens < 0:
            raise ValueError(f"z_loss, samples and max_new_tokens must be >= 0, got {z_loss}, {samples}, "
                             f"{max_new_tokens}")
        if top_p is not None and not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        if model is None and preset not in PRESETS:
            raise ValueError(f"model.init_args.preset must be one of {sorted(PRESETS)}, got {preset!r} (or give the "
                             "sizes in model.init_args.model)")
        self.save_hyperparameters()
        self.config, self.optim = model if model is not None else PRESETS[preset], optim
        if self.config.num_parameters() >= LARGE_PARAMETERS:
            self._announce_size(preset if model is None else None)
        self.model: GPTJ | None = None
        self.val_nll = MeanMetric()  # nats per token, synchronised across processes; no state in checkpoints
        self.last_samples: list[str] = []

    def _announce_size(self, preset: str | None) -> None:
        """One line before anything is built: the model's size and what training it on one device takes."""
        if getattr(pl.utilities.rank_zero_only, "rank", 0) != 0:
            return
        seq = self.config.n_positions
        estimate = estimate_memory(self.config, 1, seq, shards=1, half_activations=True,
                                   activation_checkpointing=self.hparams.activation_checkpointing)
        name = f"the {preset} preset" if preset else "model.init_args.model"
        print(f"lit_digest: CausalLM builds a large GPT-J ({name}). "
              + estimate.describe(f"one device, 1 sequence of {seq} tokens, 16-bit activations")
              + "; a CPU cannot train it: shard it over GPUs (configs/gptj/fsdp) or choose preset small",
              file=sys.stderr, flush=True)

    # -- the model ---------------------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        vocab = getattr(getattr(self.trainer, "datamodule", None), "vocab_size", None)
        if vocab is not None and vocab > self.config.vocab_size:
            raise ValueError(f"the tokenizer has {vocab} tokens, the model's vocabulary {self.config.vocab_size}: set "
                             f"model.init_args.model.vocab_size >= {vocab} (256 for bytes, 50400 for GPT-J's)")

    def configure_model(self) -> None:
        if self.model is not None:
            return
        trainer = self._trainer
        fresh = trainer is not None and trainer.ckpt_path is None and trainer.state.fn == "fit"
        if self.hparams.pretrained and fresh:
            if _is_deepspeed(trainer.strategy):
                raise NotImplementedError("pretrained weights under DeepSpeed ZeRO-3: load them with "
                                          "ModelParallelStrategy (FSDP2), or start the ZeRO-3 run from scratch")
            hf_config, weights = read_hf_folder(self.hparams.pretrained)
            theirs = config_from_hf(hf_config)
            mine = GPTJConfig(**{**vars(self.config), "dropout": theirs.dropout})
            if theirs != mine:
                raise ValueError(f"model.init_args.model {self.config} does not match the sizes of "
                                 f"{self.hparams.pretrained}: {theirs}")
            model = load_hf(weights, self.config, dtype=torch.float32)  # fp32 master weights, whatever the file
        else:
            model = GPTJ(self.config)
        model.activation_checkpointing = self.hparams.activation_checkpointing
        mesh = self.device_mesh
        if mesh is not None:  # ModelParallelStrategy
            if mesh["tensor_parallel"].size() != 1:
                raise ValueError("GPT-J here shards with FSDP only: give ModelParallelStrategy tensor_parallel_size: 1 "
                                 "and data_parallel_size: <number of processes>")
            shard_model(model, mesh["data_parallel"])
        self.model = model

    def _require_model(self) -> GPTJ:
        if self.model is None:
            self.configure_model()
        return self.model

    def forward(self, tokens: Tensor) -> Tensor:
        """Next-token logits ``(B, T, V)`` of ``tokens`` ``(B, T)``."""
        return self._require_model()(tokens)

    # -- steps ----------------------------------------------------------------------------------------------------
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        tokens, targets = batch
        loss, z = lm_loss(self.model(tokens), targets)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(tokens))
        self.log("train/z_loss", z, batch_size=len(tokens))
        return loss + self.hparams.z_loss * z

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        tokens, targets = batch
        loss, _ = lm_loss(self.model(tokens), targets)
        self.val_nll.update(loss.detach(), weight=targets.numel())
        self.log("val/loss", self.val_nll, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        if self.val_nll.update_count:
            nll = self.val_nll.compute()  # the mean over every process's tokens
            # the values are already the same on every process: sync_dist only keeps Lightning from warning
            self.log("val/ppl", torch.exp(nll.clamp(max=80.0)), sync_dist=True)
            bytes_per_token = getattr(self.trainer.datamodule, "bytes_per_token", None)
            if bytes_per_token:
                self.log("val/bpb", nll / math.log(2) / bytes_per_token, prog_bar=True, sync_dist=True)
        if self.hparams.samples and not self.trainer.sanity_checking:
            self._log_samples()

    def _log_samples(self) -> None:
        tokenizer = getattr(self.trainer.datamodule, "tokenizer", None)
        prompts = getattr(self.trainer.datamodule, "prompts", None)
        if tokenizer is None or not prompts:
            return
        seed = torch.Generator(device=self.device).manual_seed(self.global_step)  # the same draw on every rank
        ids = [tokenizer.encode(prompts[0])] * self.hparams.samples
        new = self._generate(ids, seed)
        self.last_samples = [prompts[0] + tokenizer.decode(n) for n in new]
        for logger in self.loggers:
            if isinstance(logger, pl.loggers.WandbLogger):
                logger.log_text("samples", columns=["step", "text"],
                                data=[[self.global_step, s] for s in self.last_samples])

    def _generate(self, ids: list[list[int]], generator: torch.Generator | None = None) -> list[list[int]]:
        h = self.hparams
        tokenizer = getattr(getattr(self._trainer, "datamodule", None), "tokenizer", None)
        limit = self.config.n_positions - max(len(i) for i in ids)
        return generate(self.model, ids, min(h.max_new_tokens, limit), temperature=h.temperature, top_k=h.top_k,
                        top_p=h.top_p, eos_token_id=getattr(tokenizer, "eos_token_id", None), generator=generator)

    def predict_step(self, batch: dict, batch_idx: int) -> list[dict[str, Any]]:
        """Continuations of a batch of prompts: ``{"prompt", "completion", "tokens"}`` each (``completion`` needs the
        DataModule's tokenizer), drawn with a generator seeded by the batch's number: a rerun writes the same."""
        seed = torch.Generator(device=self.device).manual_seed(batch_idx)
        new = self._generate(batch["ids"], seed)
        tokenizer = getattr(self.trainer.datamodule, "tokenizer", None)
        return [{"prompt": p, "tokens": n, "completion": tokenizer.decode(n) if tokenizer else None}
                for p, n in zip(batch["text"], new)]

    def configure_callbacks(self) -> list:
        return [CompletionWriter()]

    # -- set-up ---------------------------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        if not self.hparams.memory_report or self.global_rank != 0:
            return
        trainer, data = self.trainer, self.trainer.datamodule
        strategy = trainer.strategy
        sharded = isinstance(strategy, pl.strategies.ModelParallelStrategy | pl.strategies.FSDPStrategy) or (
            _is_deepspeed(strategy) and strategy.config.get("zero_optimization", {}).get("stage") == 3)
        shards = trainer.world_size if sharded else 1
        precision = str(trainer.precision)
        estimate = estimate_memory(self.config, getattr(data, "batch_size", 1), getattr(data, "seq_len", 2048),
                                   shards=shards, half_activations=not precision.startswith("32"),
                                   activation_checkpointing=self.hparams.activation_checkpointing)
        setting = (f"{type(strategy).__name__} over {trainer.world_size} process(es), {precision}, batch "
                   f"{getattr(data, 'batch_size', '?')} x {getattr(data, 'seq_len', '?')} tokens"
                   f"{', activation checkpointing' if self.hparams.activation_checkpointing else ''}")
        print(estimate.describe(setting), flush=True)

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        # FSDP1 needs its own norm (Lightning's FSDP precision refuses 'norm'); everything else clips as usual
        if gradient_clip_val and isinstance(self.trainer.strategy, pl.strategies.FSDPStrategy) and (
                gradient_clip_algorithm in (None, "norm")):
            self.trainer.model.clip_grad_norm_(gradient_clip_val)
            return
        self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def configure_optimizers(self):
        # decay on matrices only, as mesh-transformer-jax's additive_weight_decay (ndim > 1)
        return configure_optim(self, split_decay_groups([self.model]), self.optim)


def _is_deepspeed(strategy: Any) -> bool:
    return type(strategy).__name__ == "DeepSpeedStrategy"
