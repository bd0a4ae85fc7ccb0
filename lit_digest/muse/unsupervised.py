"""Unsupervised MUSE: word translation without parallel data (Conneau, Lample, Ranzato, Denoyer, Jegou,
arXiv 1710.04087).

Adversarial training of a linear map W against a language discriminator (section 2.1), then iterative
Procrustes refinement on dictionaries induced with CSLS (sections 2.2-2.3); the unsupervised criterion
(section 3.5) selects W and drives the learning rate. One Lightning epoch is one adversarial epoch
(``epoch_size / batch_size`` steps) or one refinement iteration (one step); the module ends each epoch
itself (the DataModule's training stream is endless). Every epoch ends with the criterion, the best W
kept in ``best_weight``; validation logs and prints P@1/5/10 with NN and CSLS retrieval. At the end of
``fit`` the best W is loaded, and the final numbers are printed and logged under ``final/``.

Defaults are those of the official code (``unsupervised.py``); where the paper says otherwise the
docstring gives both.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lit_digest.core.lightning import LightningModule, pl
from lit_digest.muse.callbacks import TranslationWriter
from lit_digest.muse.dictionary import DICTIONARY_BUILDS
from lit_digest.muse.evaluator import AlignmentEvaluator, InductionSettings
from lit_digest.muse.mapping import LanguageDiscriminator, LinearMapping
from lit_digest.muse.parts import (
    attach_embeddings,
    closed_form_step,
    evaluate,
    finish_fit,
    format_metrics,
    keep_best,
    predict_translations,
)

__all__ = ["MUSE", "DicoBuild"]

DicoBuild = Literal["S2T", "T2S", "S2T&T2S", "S2T|T2S"]
assert set(DicoBuild.__args__) == set(DICTIONARY_BUILDS)


class MUSE(LightningModule):
    """Unsupervised MUSE: adversarial training, then Procrustes refinement with CSLS dictionaries.

    Defaults are the official ``unsupervised.py``; the paper (section 3.1) differs on: ``map_beta``
    0.01 (code 0.001), ``dis_smooth`` 0.2 (code 0.1), ``lr_decay`` 0.95 (code 0.98),
    ``dis_most_frequent`` 50000 (code 75000). Schedule: ``n_epochs`` adversarial epochs of
    ``epoch_size / batch_size`` steps, each step ``dis_steps`` discriminator updates then one
    mapping update followed by ``W <- (1+b)W - b(WW^T)W``; after each epoch the map learning rate
    decays, and shrinks when the criterion drops for the second time; the adversarial phase
    ends early below ``min_lr``. Then the best W so far is reloaded and ``n_refinement``
    Procrustes iterations run on dictionaries induced by ``dico_method`` / ``dico_build``.
    Set ``trainer.max_epochs`` to at least ``n_epochs + n_refinement``: the module stops the
    Trainer itself when its schedule is done.
    """

    def __init__(
        self,
        dim: int = 300,
        map_beta: float = 0.001,
        map_lr: float = 0.1,
        dis_hidden_dim: int = 2048,
        dis_layers: int = 2,
        dis_input_dropout: float = 0.1,
        dis_dropout: float = 0.0,
        dis_steps: int = 5,
        dis_lambda: float = 1.0,
        dis_most_frequent: int = 75000,
        dis_smooth: float = 0.1,
        dis_clip_weights: float = 0.0,
        dis_lr: float = 0.1,
        n_epochs: int = 5,
        epoch_size: int = 1_000_000,
        batch_size: int = 32,
        lr_decay: float = 0.98,
        min_lr: float = 1e-6,
        lr_shrink: float = 0.5,
        n_refinement: int = 5,
        dico_method: Literal["csls", "nn"] = "csls",
        dico_build: DicoBuild = "S2T",
        dico_max_rank: int = 15000,
        dico_max_size: int = 0,
        dico_min_size: int = 0,
        dico_threshold: float = 0.0,
        csls_knn: int = 10,
        criterion_words: int = 10000,
        chunk_mib: int = 256,
        discriminator: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if not 0 <= dis_smooth < 0.5:
            raise ValueError(f"dis_smooth must be in [0, 0.5), got {dis_smooth}")
        if dis_steps < 1 or dis_lambda <= 0 or not 0 < lr_shrink <= 1:
            raise ValueError("need dis_steps >= 1, dis_lambda > 0 and 0 < lr_shrink <= 1")
        self.save_hyperparameters(ignore=["discriminator"])
        self.automatic_optimization = False
        self.mapping = LinearMapping(dim)
        self.register_buffer("best_weight", torch.eye(dim))
        self.register_buffer("best_score", torch.tensor(-math.inf))
        self.induction = InductionSettings(dico_method, dico_build, dico_max_rank, dico_max_size, dico_min_size,
                                           dico_threshold)
        self.evaluator: AlignmentEvaluator | None = None
        self.dico_train: Tensor | None = None
        self.dico_eval: Tensor | None = None
        self.final_metrics: dict[str, float] = {}
        self.discriminator = discriminator or LanguageDiscriminator(
            dim, dis_hidden_dim, dis_layers, input_dropout=dis_input_dropout, dropout=dis_dropout
        )
        self._adversarial_end: int | None = None  # epoch where a too small lr ended the phase
        self._decrease_lr = False
        self._dico_size = 0

    # schedule -----------------------------------------------------------------
    def _phase(self, epoch: int) -> str:
        adv = self.hparams.n_epochs if self._adversarial_end is None else self._adversarial_end
        if epoch < adv:
            return "adversarial"
        return "refinement" if epoch < adv + self.hparams.n_refinement else "done"

    def steps_in_epoch(self, epoch: int) -> int:
        """Training steps of ``epoch``: ``epoch_size / batch_size`` adversarial, 1 refinement, 0 when done."""
        phase = self._phase(epoch)
        if phase == "adversarial":
            return math.ceil(self.hparams.epoch_size / self.hparams.batch_size)
        return 1 if phase == "refinement" else 0

    def forward(self, x: Tensor) -> Tensor:  # (..., d) source embeddings -> target space
        return self.mapping(x)

    def setup(self, stage: str) -> None:
        hp = self.hparams
        self.evaluator = attach_embeddings(self, hp.dim, hp.csls_knn, hp.criterion_words, hp.chunk_mib)
        vocab = min(len(self.src_emb), len(self.tgt_emb))
        if hp.dis_most_frequent and hp.dis_most_frequent > vocab:
            pl.utilities.rank_zero_warn(
                f"MUSE: dis_most_frequent={hp.dis_most_frequent} but the vocabularies have {len(self.src_emb)} and "
                f"{len(self.tgt_emb)} words: the discriminator samples all of them (set model.init_args."
                f"dis_most_frequent: {vocab} or lower, or load more words with data.init_args.max_vocab).")

    def on_train_epoch_start(self) -> None:
        epoch = self.current_epoch
        if self._phase(epoch) == "refinement" and self._phase(epoch - 1) == "adversarial":
            if math.isfinite(float(self.best_score)):  # MUSE: refine the best adversarial W
                self.mapping.set_weight_(self.best_weight)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> int | None:
        return -1 if batch_idx >= self.steps_in_epoch(self.current_epoch) else None  # -1 ends the epoch

    # training -----------------------------------------------------------------
    def _discriminator_batch(self, src_ids: Tensor, tgt_ids: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.cat([self.mapping(self.src_emb[src_ids]), self.tgt_emb[tgt_ids]])  # (2B, d)
        s = self.hparams.dis_smooth
        y = torch.cat(
            [torch.full_like(src_ids, 1, dtype=x.dtype) - s, torch.full_like(tgt_ids, s, dtype=x.dtype)]
        )
        return x, y  # label 1 - s for mapped source, s for target

    def training_step(self, batch: Any, batch_idx: int) -> None:
        if self._phase(self.current_epoch) == "refinement":
            dictionary = self.evaluator.induce(self.mapping.weight, self.induction)
            self.mapping.set_weight_(self.evaluator.procrustes(dictionary))
            self._dico_size = len(dictionary)
            closed_form_step(self)
            self.log("train/dico_size", float(len(dictionary)), on_step=False, on_epoch=True, batch_size=1)
            return
        hp = self.hparams
        opt_map, opt_dis = self.optimizers()
        n_src = min(hp.dis_most_frequent or len(self.src_emb), len(self.src_emb))
        n_tgt = min(hp.dis_most_frequent or len(self.tgt_emb), len(self.tgt_emb))
        src_ids = torch.randint(n_src, (hp.dis_steps + 1, hp.batch_size), device=self.device)
        tgt_ids = torch.randint(n_tgt, (hp.dis_steps + 1, hp.batch_size), device=self.device)

        self.discriminator.train()
        for step in range(hp.dis_steps):
            with torch.no_grad():
                x, y = self._discriminator_batch(src_ids[step], tgt_ids[step])
            dis_loss = F.binary_cross_entropy_with_logits(self.discriminator.logits(x), y)
            opt_dis.zero_grad(set_to_none=True)
            self.manual_backward(dis_loss)
            opt_dis.step()
            if hp.dis_clip_weights > 0:
                with torch.no_grad():
                    for p in self.discriminator.parameters():
                        p.clamp_(-hp.dis_clip_weights, hp.dis_clip_weights)

        # mapping step: fool the discriminator (flipped labels), then re-orthogonalise W
        self.discriminator.eval()
        self.discriminator.requires_grad_(False)
        x, y = self._discriminator_batch(src_ids[-1], tgt_ids[-1])
        logits = self.discriminator.logits(x)
        map_loss = hp.dis_lambda * F.binary_cross_entropy_with_logits(logits, 1 - y)
        opt_map.zero_grad(set_to_none=True)
        self.manual_backward(map_loss)
        opt_map.step()
        self.discriminator.requires_grad_(True)
        self.mapping.orthogonalize_(hp.map_beta)

        dis_acc = ((logits.detach() > 0) == (y > 0.5)).float().mean()
        stats = {"train/dis_loss": dis_loss.detach(), "train/map_loss": map_loss.detach()}
        stats["train/dis_acc"] = dis_acc
        self.log_dict(stats, on_step=True, on_epoch=True, batch_size=hp.batch_size)

    def on_train_epoch_end(self) -> None:
        """The official end of an epoch: evaluate W (logged under ``val/`` and printed), keep the best by the
        criterion, update the learning rate. The training stream is endless, so Lightning's validation loop
        does not run during ``fit``; ``validate`` / ``test`` run it on the evaluation dictionary."""
        epoch = self.current_epoch
        phase = self._phase(epoch)
        metrics = evaluate(self.evaluator, self.mapping.weight, self.dico_eval)
        if phase == "adversarial":
            metrics.update(self.discriminator_accuracy())
        else:
            metrics["dico_size"] = float(self._dico_size)
        improved = keep_best(self, metrics["criterion"])
        label = f"adversarial epoch {epoch}" if phase == "adversarial" else f"refinement {epoch - self._refine_start}"
        if phase == "adversarial":
            self._update_lr(metrics["criterion"], improved)
            lr = self.optimizers()[0].param_groups[0]["lr"]
            metrics["map_lr"] = lr
            if lr < self.hparams.min_lr:
                pl.utilities.rank_zero_info(f"MUSE: map learning rate {lr:.2e} < min_lr; adversarial training ends")
                self._adversarial_end = epoch + 1
        pl.utilities.rank_zero_info(f"MUSE {label}: {format_metrics(metrics)}" + (" (best)" if improved else ""))
        self.log_dict({f"val/{k}": v for k, v in metrics.items()}, batch_size=1)
        self.log("val/best_criterion", float(self.best_score), batch_size=1)
        if self._phase(epoch + 1) == "done":
            self.trainer.should_stop = True

    @property
    def _refine_start(self) -> int:
        return self.hparams.n_epochs if self._adversarial_end is None else self._adversarial_end

    def _update_lr(self, score: float, improved: bool) -> None:
        """Official ``update_lr``: decay every epoch, and shrink on the second criterion drop."""
        hp = self.hparams
        group = self.optimizers()[0].param_groups[0]
        group["lr"] = max(hp.min_lr, group["lr"] * hp.lr_decay) if group["lr"] > hp.min_lr else group["lr"]
        if hp.lr_shrink < 1 and not improved and score < float(self.best_score):
            if self._decrease_lr:
                group["lr"] *= hp.lr_shrink
                pl.utilities.rank_zero_info(
                    f"MUSE: criterion dropped again; map learning rate shrunk to {group['lr']:.2e}"
                )
            self._decrease_lr = True

    @torch.no_grad()
    def discriminator_accuracy(self, chunk: int = 4096) -> dict[str, float]:
        """Official ``eval_dis``: mean prediction and accuracy on every mapped source / target word."""
        self.discriminator.eval()
        src = torch.cat([self.discriminator(self.mapping(x)) for x in self.src_emb.split(chunk)])
        tgt = torch.cat([self.discriminator(x) for x in self.tgt_emb.split(chunk)])
        correct = (src >= 0.5).sum() + (tgt < 0.5).sum()
        return {
            "dis_acc": (correct / (len(src) + len(tgt))).item(),
            "dis_src_pred": src.mean().item(),
            "dis_tgt_pred": tgt.mean().item(),
        }

    # evaluation ---------------------------------------------------------------
    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        metrics = evaluate(self.evaluator, self.mapping.weight, batch)
        if self._phase(self.current_epoch) == "adversarial":
            metrics.update(self.discriminator_accuracy())
        self.log_dict({f"val/{k}": v for k, v in metrics.items()}, batch_size=1)

    def predict_step(self, batch: tuple[Tensor, Tensor], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Tensor]:
        """The source vocabulary (row ``index``, vectors) mapped into the target space by W, and each word's best
        translations by CSLS; ``TranslationWriter`` writes them (``translations.tsv``, ``vectors-<src>.txt``)."""
        return predict_translations(self, *batch)

    def configure_callbacks(self) -> list:
        return [TranslationWriter()]

    def test_step(self, batch: Tensor, batch_idx: int) -> None:
        metrics = evaluate(self.evaluator, self.mapping.weight, batch)
        self.log_dict({f"test/{k}": v for k, v in metrics.items()}, batch_size=1)

    def on_train_end(self) -> None:
        self.final_metrics = finish_fit(self, self.evaluator, "unsupervised criterion")

    def configure_optimizers(self):
        return (
            torch.optim.SGD(self.mapping.parameters(), lr=self.hparams.map_lr),
            torch.optim.SGD(self.discriminator.parameters(), lr=self.hparams.dis_lr),
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["muse_schedule"] = {
            "adversarial_end": self._adversarial_end,
            "decrease_lr": self._decrease_lr,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("muse_schedule", {})
        self._adversarial_end = state.get("adversarial_end")
        self._decrease_lr = state.get("decrease_lr", False)
