"""``AuthorAttribution``: a classification head on the GPT-J-style causal LM, fine-tuned to name a text's label.

GPT-1's recipe (Radford et al., 2018, "Improving Language Understanding by Generative Pre-Training", Sec. 3.2):
the LM's final hidden state goes through a linear layer to the labels, the whole model is fine-tuned, with the
language-model loss kept as an auxiliary objective of weight 0.5 ("improving generalization of the supervised
model, and accelerating convergence"), dropout 0.1 before the head, Adam at 6.25e-5 with a warmup over 0.2% of
training. GPT-1 reads the last token's state (``pooling="last"``, also what Hugging Face's
``GPTJForSequenceClassification`` does); ``"mean"`` averages the passage's states instead, the steadier choice for
a small byte-level LM whose last byte may fall mid-word.

The LM comes from ``pretrained``: a ``CausalLM`` / ``ControlledLM`` Lightning checkpoint trained on the corpus, or a
Hugging Face GPT-J folder; without it, from a fresh initialisation.
"""

from __future__ import annotations

import csv
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lit_digest.core.callbacks import run_dir
from lit_digest.core.lightning import LightningModule
from lit_digest.core.optim import Optim, configure_optim, split_decay_groups
from lit_digest.core.outputs import announce
from lit_digest.text.gptj.model import GPTJ, GPTJConfig

__all__ = ["AuthorAttribution", "load_pretrained_lm", "pool", "masked_lm_loss", "TINY"]

# the tiny test preset with room for a default passage (128 tokens)
TINY = GPTJConfig.preset("tiny", n_positions=128)


def load_pretrained_lm(path: str) -> GPTJ:
    """A GPT-J with the weights of a ``CausalLM`` checkpoint (a ``.ckpt`` file) or of a Hugging Face GPT-J folder."""
    from lit_digest.core.checkpoints import expect_checkpoint
    from lit_digest.text.gptj.hf import load_hf
    from lit_digest.text.gptj.module import CausalLM

    source = Path(path).expanduser()
    if source.is_dir():
        return load_hf(source, dtype=torch.float32)
    state = expect_checkpoint(source, CausalLM)
    config = (state.get("hyper_parameters") or {}).get("model")
    if isinstance(config, dict):
        config = GPTJConfig(**config)
    if not isinstance(config, GPTJConfig):
        raise ValueError(f"{source}: the checkpoint records no GPTJConfig under hyper_parameters['model']")
    model = GPTJ(config)
    weights = {k.removeprefix("model."): v for k, v in state["state_dict"].items() if k.startswith("model.")}
    model.load_state_dict(weights)
    return model


def pool(h: Tensor, lengths: Tensor, how: Literal["mean", "last"]) -> Tensor:
    """One vector per passage from the hidden states ``h`` ``(B, L, D)`` of right-padded passages of ``lengths``:
    the mean over the real positions, or the last real one. Returns ``(B, D)``."""
    if how == "last":
        return h[torch.arange(len(h), device=h.device), lengths - 1]
    real = (torch.arange(h.shape[1], device=h.device)[None] < lengths[:, None]).to(h.dtype)  # (B, L)
    return (h * real[..., None]).sum(1) / real.sum(1, keepdim=True)


def masked_lm_loss(logits: Tensor, tokens: Tensor, lengths: Tensor) -> Tensor:
    """Mean next-token cross-entropy over the real positions of right-padded passages.

    logits: ``(B, L, V)``; tokens: ``(B, L)``; lengths: ``(B,)``."""
    targets = tokens[:, 1:]  # (B, L-1)
    real = torch.arange(targets.shape[1], device=tokens.device)[None] < (lengths[:, None] - 1)  # (B, L-1)
    nll = F.cross_entropy(logits[:, :-1].float().flatten(0, 1), targets.flatten(), reduction="none")
    return (nll * real.flatten()).sum() / real.sum().clamp(min=1)


class AuthorAttribution(LightningModule):
    """Which writer or topic a passage comes from: ``train/loss``, ``val/macro_f1``, ``val/acc``; ``predict`` writes
    each test passage's probabilities and verdict to ``attributions.csv``.

    Args:
        model: the LM's sizes (a tiny byte-level GPT-J by default); replaced by the checkpoint's when
            ``pretrained`` is given.
        pretrained: a ``CausalLM``/``ControlledLM`` checkpoint or a Hugging Face GPT-J folder, read when training
            starts fresh.
        labels: the label names, in the DataModule's order; ``None`` takes them from the DataModule (and the
            checkpoint keeps them).
        pooling: ``"mean"`` or ``"last"`` (GPT-1).
        lm_weight: weight of the auxiliary LM loss (GPT-1: 0.5).
        head_dropout: dropout before the head (GPT-1: 0.1).
        optim: AdamW, lr 6.25e-5, weight decay 0.01 (GPT-1); a short warmup, then a cosine to 0 (GPT-1: warmup
            over 0.2% of the steps, linear decay; core has the cosine). A byte LM trained here wants ~1e-3.
    """

    def __init__(self, model: GPTJConfig = TINY, pretrained: str | None = None,
                 labels: list[str] | None = None, pooling: Literal["mean", "last"] = "mean", lm_weight: float = 0.5,
                 head_dropout: float = 0.1,
                 optim: Optim = Optim(name="adamw", lr=6.25e-5, weight_decay=0.01, warmup_steps=10,
                                      final_lr_ratio=0.0)) -> None:
        super().__init__()
        if pooling not in ("mean", "last"):
            raise ValueError(f"pooling must be 'mean' or 'last', got {pooling!r}")
        if lm_weight < 0 or not 0 <= head_dropout < 1:
            raise ValueError(f"lm_weight must be >= 0 and head_dropout in [0, 1), got {lm_weight}, {head_dropout}")
        if labels is not None and len(labels) < 2:
            raise ValueError(f"labels must name at least two labels, got {labels}")
        self.save_hyperparameters()
        self.config, self.optim = model, optim
        self.model: GPTJ | None = None
        self.head: nn.Module | None = None
        self._outputs: list[dict[str, Tensor]] = []

    @property
    def labels(self) -> list[str] | None:
        return self.hparams.labels

    def setup(self, stage: str) -> None:
        data = getattr(self.trainer, "datamodule", None)
        if data is None or not hasattr(data, "labels"):
            return
        if getattr(data, "batches", "passages") != "passages":
            raise ValueError("AuthorAttribution reads passages: set data.init_args.batches: passages")
        data.setup(stage)
        if self.labels is None:
            self.hparams.labels = list(data.labels)
        elif list(self.labels) != list(data.labels):
            raise ValueError(f"the model knows the labels {self.labels}, the data has {data.labels}: use the same "
                             "labels (data.init_args.labels) or train a new model")

    def configure_model(self) -> None:
        if self.model is not None:
            return
        if self.labels is None:
            raise ValueError("AuthorAttribution needs its labels: give model.init_args.labels or train it with a "
                             "LabelledTextDataModule")
        trainer = self._trainer
        fresh = trainer is not None and trainer.ckpt_path is None and trainer.state.fn == "fit"
        if self.hparams.pretrained and fresh:
            model = load_pretrained_lm(self.hparams.pretrained)
            self.config = model.config  # the checkpoint records the sizes it was built with, in the form given
            self.hparams.model = asdict(model.config) if isinstance(self.hparams.model, dict) else model.config
        else:
            model = GPTJ(self.config)
        data = getattr(trainer, "datamodule", None)
        vocab, length = getattr(data, "vocab_size", None), getattr(data, "passage_len", 0)
        if vocab is not None and vocab > self.config.vocab_size:
            raise ValueError(f"the tokenizer has {vocab} tokens, the model's vocabulary {self.config.vocab_size}")
        if length > self.config.n_positions:
            raise ValueError(f"passages of {length} tokens do not fit the model's n_positions="
                             f"{self.config.n_positions}: lower data.init_args.passage_len")
        self.model = model
        self.head = nn.Sequential(nn.Dropout(self.hparams.head_dropout),
                                  nn.Linear(self.config.d_model, len(self.labels)))

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """Label logits ``(B, K)`` of right-padded passages ``(B, L)`` of ``lengths`` ``(B,)``."""
        self.configure_model()
        return self.head(pool(self.model.hidden_states(tokens), lengths, self.hparams.pooling))

    def _step(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        tokens, lengths = batch["tokens"], batch["lengths"]
        h = self.model.hidden_states(tokens)  # (B, L, D)
        logits = self.head(pool(h, lengths, self.hparams.pooling))  # (B, K)
        ce = F.cross_entropy(logits, batch["label"])
        lm = masked_lm_loss(self.model.lm_head(h), tokens, lengths) if self.hparams.lm_weight else ce.new_zeros(())
        return logits, ce, lm

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        _, ce, lm = self._step(batch)
        n = len(batch["label"])
        self.log("train/ce", ce, prog_bar=True, batch_size=n)
        self.log("train/lm", lm, batch_size=n)
        loss = ce + self.hparams.lm_weight * lm
        self.log("train/loss", loss, batch_size=n)
        return loss

    def _evaluate(self, batch: dict[str, Tensor]) -> None:
        logits, ce, _ = self._step(batch)
        self._outputs.append({"pred": logits.argmax(-1).cpu(), "label": batch["label"].cpu(), "ce": ce.detach().cpu()
                              * len(logits)})

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch)

    def _log_scores(self, stage: str) -> None:
        if not self._outputs:
            return
        from lit_digest.text.authors.baseline import macro_f1

        pred = torch.cat([o["pred"] for o in self._outputs])
        label = torch.cat([o["label"] for o in self._outputs])
        ce = sum(float(o["ce"]) for o in self._outputs) / len(label)
        self._outputs = []
        self.log(f"{stage}/macro_f1", macro_f1(label.numpy(), pred.numpy(), len(self.labels)), prog_bar=True)
        self.log(f"{stage}/acc", float((pred == label).float().mean()))
        self.log(f"{stage}/loss", ce)

    def on_validation_epoch_end(self) -> None:
        self._log_scores("val")

    def on_test_epoch_end(self) -> None:
        self._log_scores("test")

    # -- predict: one row per test passage -------------------------------------------------------------------------
    def on_predict_epoch_start(self) -> None:
        self._outputs = []

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        probs = self(batch["tokens"], batch["lengths"]).float().softmax(-1)
        out = {"index": batch["index"].cpu(), "label": batch["label"].cpu(), "probs": probs.cpu()}
        self._outputs.append(out)
        return out

    def on_predict_epoch_end(self) -> None:
        if not self._outputs or self.global_rank != 0:
            return
        rows = self._outputs
        self._outputs = []
        path = run_dir(self.trainer) / "attributions.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        passages = getattr(self.trainer.datamodule, "passages", {}).get("test")
        count = write_attributions(path, rows, self.labels, passages)
        announce(path, count, "attributions")

    def configure_optimizers(self) -> Any:
        return configure_optim(self, split_decay_groups([self.model, self.head]), self.optim)


def write_attributions(path: Path, rows: list[dict[str, Tensor]], labels: list[str], passages=None) -> int:
    """``index, label, predicted, p_<label>..., text`` (the passage's text when the DataModule has it)."""
    count = 0
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "label", "predicted", *[f"p_{name}" for name in labels], "text"])
        for out in rows:
            for i, label, probs in zip(out["index"].tolist(), out["label"].tolist(), out["probs"]):
                text = passages[i].text if passages is not None and i < len(passages) else ""
                writer.writerow([i, labels[label], labels[int(probs.argmax())], *[f"{p:.4f}" for p in probs.tolist()],
                                 text])
                count += 1
    return count
