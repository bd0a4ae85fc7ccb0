"""MUSE: word translation without parallel data (Conneau, Lample, Ranzato, Denoyer, Jegou,
arXiv 1710.04087), as two LightningModules.

- ``MUSE``: unsupervised. Adversarial training of a linear map W against a language
  discriminator (section 2.1), then iterative Procrustes refinement on dictionaries induced with
  CSLS (sections 2.2-2.3); the unsupervised criterion (section 3.5) selects W and drives the
  learning rate.
- ``MUSEProcrustes``: supervised. Procrustes on a training dictionary (or the identical-strings
  seed), then the same refinement.

Both take their data from ``lit_digest.data.embeddings.EmbeddingsDataModule`` (or any
DataModule with ``src``/``tgt`` ``Embeddings``, ``dico_train``/``dico_eval`` pairs and the
step stream of ``train_steps_in_epoch``). One Lightning epoch is one adversarial epoch
(``epoch_size / batch_size`` steps) or one refinement iteration (one step); every epoch ends
with the criterion, the best W kept in ``best_weight``, and validation logs P@1/5/10 with NN
and CSLS retrieval. At the end of ``fit`` the best W is loaded, the final numbers printed and
logged under ``final/``, and the aligned embeddings exported if asked.

Defaults are those of the official code (``unsupervised.py`` / ``supervised.py``); where the
paper says otherwise the docstring gives both.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn

from lit_digest.alignment import (
    induce_dictionary,
    mean_cosine_criterion,
    mutual_mean_topk_similarity,
    normalize_rows,
    procrustes,
    translation_precision,
)
from lit_digest.nn.muse import LanguageDiscriminator, LinearMapping

__all__ = ["MUSE", "MUSEProcrustes"]

DicoBuild = Literal["S2T", "T2S", "S2T&T2S", "S2T|T2S"]


class _EmbeddingAlignment(LightningModule):
    """What both MUSE systems share: the embeddings, cached evaluation, best-W keeping, the end.

    Subclasses build ``self.mapping`` and call ``_init_alignment``; they read these hparams:
    ``csls_knn``, ``criterion_words``, ``chunk_mib``, ``dico_*``, ``export``, ``export_dir``.
    """

    mapping: LinearMapping

    def _init_alignment(self, dim: int) -> None:
        self.mapping = LinearMapping(dim)
        self.register_buffer("best_weight", torch.eye(dim))
        self.register_buffer("best_score", torch.tensor(-math.inf))
        self.dico_train: Tensor | None = None
        self.dico_eval: Tensor | None = None
        self.final_metrics: dict[str, float] = {}
        self._w_version = 0
        self._cache: tuple | None = None

    def forward(self, x: Tensor) -> Tensor:  # (..., d) source embeddings -> target space
        return self.mapping(x)

    # data ---------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        dm = self.trainer.datamodule if self._trainer is not None else None
        if getattr(dm, "src", None) is None or getattr(dm, "tgt", None) is None:
            raise TypeError(
                f"{type(self).__name__} reads its embeddings from the DataModule's `src`/`tgt` "
                "(lit_digest.data.embeddings.EmbeddingsDataModule); fit it with one"
            )
        if dm.src.dim != self.mapping.dim:
            raise ValueError(
                f"the embeddings are {dm.src.dim}-dimensional but the model was built with "
                f"dim={self.mapping.dim}: set model.init_args.dim: {dm.src.dim}"
            )
        self.register_buffer("src_emb", dm.src.vectors, persistent=False)  # (n_src, d)
        self.register_buffer("tgt_emb", dm.tgt.vectors, persistent=False)  # (n_tgt, d)
        self.register_buffer("tgt_unit", normalize_rows(dm.tgt.vectors), persistent=False)
        self.dico_train, self.dico_eval = dm.dico_train, dm.dico_eval
        self._cache = None

    @property
    def _chunk_bytes(self) -> int:
        return int(self.hparams.chunk_mib) * 2**20

    def _weight_changed(self) -> None:
        self._w_version += 1

    @torch.no_grad()
    def _aligned(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Unit-norm mapped source (n_src, d), unit target, and the CSLS terms r_src, r_tgt."""
        if self._cache is None or self._cache[0] != self._w_version:
            self._cache = None  # free the old copy first
            src = self.mapping(self.src_emb)
            src.div_(src.norm(dim=1, keepdim=True).clamp_min(1e-12))
            r_src, r_tgt = mutual_mean_topk_similarity(
                src, self.tgt_unit, self.hparams.csls_knn, chunk_bytes=self._chunk_bytes
            )
            self._cache = (self._w_version, src, r_src, r_tgt)
        return self._cache[1], self.tgt_unit, self._cache[2], self._cache[3]

    def criterion(self) -> float:
        """Mean cosine of the CSLS S2T translations of the most frequent source words (section 3.5)."""
        src, tgt, r_src, r_tgt = self._aligned()
        n = self.hparams.criterion_words
        return mean_cosine_criterion(
            src, tgt, knn=self.hparams.csls_knn, max_rank=n, max_size=n, r_src=r_src, r_tgt=r_tgt,
            chunk_bytes=self._chunk_bytes,
        )  # fmt: skip

    def precision(self, dictionary: Tensor) -> dict[str, float]:
        """P@1/5/10 (percent) with NN and CSLS retrieval on a gold dictionary (p, 2)."""
        src, tgt, r_src, r_tgt = self._aligned()
        out = {}
        for method in ("nn", "csls"):
            scores = translation_precision(
                src, tgt, dictionary, method=method, knn=self.hparams.csls_knn, r_src=r_src, r_tgt=r_tgt,
                chunk_bytes=self._chunk_bytes,
            )  # fmt: skip
            out.update({f"p@{k}_{method}": v for k, v in scores.items()})
        return out

    def induce(self) -> Tensor:
        """A training dictionary from the current alignment (the ``dico_*`` settings)."""
        src, tgt, r_src, r_tgt = self._aligned()
        hp = self.hparams
        return induce_dictionary(
            src, tgt, method=hp.dico_method, knn=hp.csls_knn, build=hp.dico_build, max_rank=hp.dico_max_rank,
            max_size=hp.dico_max_size, min_size=hp.dico_min_size, threshold=hp.dico_threshold,
            r_src=r_src, r_tgt=r_tgt, chunk_bytes=self._chunk_bytes,
        )  # fmt: skip

    @torch.no_grad()
    def procrustes_step(self, dictionary: Tensor) -> None:
        """W <- the orthogonal Procrustes solution on the dictionary's embedding pairs (eq. 2)."""
        ids = dictionary.to(self.src_emb.device)
        self.mapping.set_weight_(procrustes(self.src_emb[ids[:, 0]], self.tgt_emb[ids[:, 1]]))
        self._weight_changed()

    @torch.no_grad()
    def _keep_best(self, score: float) -> bool:
        if score > float(self.best_score):
            self.best_weight.copy_(self.mapping.weight)
            self.best_score.fill_(score)
            return True
        return False

    # evaluation ---------------------------------------------------------------
    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        metrics = {"criterion": self.criterion()}
        if batch.numel():
            metrics.update(self.precision(batch))
        self.log_dict({f"val/{k}": v for k, v in metrics.items()}, batch_size=1)

    def test_step(self, batch: Tensor, batch_idx: int) -> None:
        metrics = {"criterion": self.criterion()}
        if batch.numel():
            metrics.update(self.precision(batch))
        self.log_dict({f"test/{k}": v for k, v in metrics.items()}, batch_size=1)

    def on_train_end(self) -> None:
        if math.isfinite(float(self.best_score)):
            self.mapping.set_weight_(self.best_weight)
            self._weight_changed()
        metrics = {"criterion": self.criterion()}
        if self.dico_eval is not None and self.dico_eval.numel():
            metrics.update(self.precision(self.dico_eval))
        self.final_metrics = metrics
        rank_zero_info(
            f"{type(self).__name__}: best W (criterion {metrics['criterion']:.4f})"
            + "".join(f", {k} {v:.1f}" for k, v in metrics.items() if k.startswith("p@"))
        )
        for logger in self.loggers:
            logger.log_metrics({f"final/{k}": v for k, v in metrics.items()}, step=self.global_step)
        if self.hparams.export:
            paths = self.trainer.datamodule.export(
                self.best_weight.cpu(), self.hparams.export_dir, self.hparams.export
            )
            rank_zero_info(f"aligned embeddings written to {paths[0]} and {paths[1]}")

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._cache = None
        self._weight_changed()


class MUSE(_EmbeddingAlignment):
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
        export: Literal["vec", "pth"] | None = None,
        export_dir: str = "runs/muse/export",
        discriminator: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if not 0 <= dis_smooth < 0.5:
            raise ValueError(f"dis_smooth must be in [0, 0.5), got {dis_smooth}")
        if dis_steps < 1 or dis_lambda <= 0 or not 0 < lr_shrink <= 1:
            raise ValueError("need dis_steps >= 1, dis_lambda > 0 and 0 < lr_shrink <= 1")
        self.save_hyperparameters(ignore=["discriminator"])
        self.automatic_optimization = False
        self._init_alignment(dim)
        self.discriminator = discriminator or LanguageDiscriminator(
            dim, dis_hidden_dim, dis_layers, input_dropout=dis_input_dropout, dropout=dis_dropout
        )
        self._adversarial_end: int | None = None  # epoch where a too small lr ended the phase
        self._decrease_lr = False

    # schedule -----------------------------------------------------------------
    def _phase(self, epoch: int) -> str:
        adv = self.hparams.n_epochs if self._adversarial_end is None else self._adversarial_end
        if epoch < adv:
            return "adversarial"
        return "refinement" if epoch < adv + self.hparams.n_refinement else "done"

    def train_steps_in_epoch(self, epoch: int) -> int:
        phase = self._phase(epoch)
        if phase == "adversarial":
            return math.ceil(self.hparams.epoch_size / self.hparams.batch_size)
        return 1 if phase == "refinement" else 0

    def on_train_epoch_start(self) -> None:
        epoch = self.current_epoch
        if self._phase(epoch) == "refinement" and self._phase(epoch - 1) == "adversarial":
            if math.isfinite(float(self.best_score)):  # MUSE: refine the best adversarial W
                self.mapping.set_weight_(self.best_weight)
                self._weight_changed()

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
            dictionary = self.induce()
            self.procrustes_step(dictionary)
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
        self._weight_changed()

        dis_acc = ((logits.detach() > 0) == (y > 0.5)).float().mean()
        stats = {"train/dis_loss": dis_loss.detach(), "train/map_loss": map_loss.detach()}
        stats["train/dis_acc"] = dis_acc
        self.log_dict(stats, on_step=True, on_epoch=True, batch_size=hp.batch_size)

    def on_train_epoch_end(self) -> None:
        epoch = self.current_epoch
        phase = self._phase(epoch)
        score = self.criterion()
        improved = self._keep_best(score)
        if phase == "adversarial":
            self._update_lr(score, improved)
            lr = self.optimizers()[0].param_groups[0]["lr"]
            self.log("train/lr", lr, batch_size=1)
            if lr < self.hparams.min_lr:
                rank_zero_info(f"MUSE: map learning rate {lr:.2e} < min_lr; adversarial training ends")
                self._adversarial_end = epoch + 1
        self.log("val/best_criterion", float(self.best_score), batch_size=1)
        if self._phase(epoch + 1) == "done":
            self.trainer.should_stop = True

    def _update_lr(self, score: float, improved: bool) -> None:
        """Official ``update_lr``: decay every epoch, and shrink on the second criterion drop."""
        hp = self.hparams
        group = self.optimizers()[0].param_groups[0]
        group["lr"] = max(hp.min_lr, group["lr"] * hp.lr_decay) if group["lr"] > hp.min_lr else group["lr"]
        if hp.lr_shrink < 1 and not improved and score < float(self.best_score):
            if self._decrease_lr:
                group["lr"] *= hp.lr_shrink
                rank_zero_info(
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

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        if self._phase(self.current_epoch) == "adversarial":
            self.log_dict({f"val/{k}": v for k, v in self.discriminator_accuracy().items()}, batch_size=1)

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
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get("muse_schedule", {})
        self._adversarial_end = state.get("adversarial_end")
        self._decrease_lr = state.get("decrease_lr", False)


class MUSEProcrustes(_EmbeddingAlignment):
    """Supervised MUSE (``supervised.py``): Procrustes on the DataModule's ``dico_train``, then
    ``n_refinement`` iterations on CSLS mutual-nearest-neighbour dictionaries (S2T&T2S, the
    10000 most frequent words), keeping the best W.

    ``select_by``: "criterion" (the unsupervised mean cosine), "precision" (CSLS P@1 on the
    evaluation dictionary, which is what the official code does for a given training
    dictionary; note that it selects on the test words), or None for the official choice:
    "criterion" with the identical-strings seed, "precision" otherwise.
    """

    def __init__(
        self,
        dim: int = 300,
        n_refinement: int = 5,
        dico_method: Literal["csls", "nn"] = "csls",
        dico_build: DicoBuild = "S2T&T2S",
        dico_max_rank: int = 10000,
        dico_max_size: int = 0,
        dico_min_size: int = 0,
        dico_threshold: float = 0.0,
        select_by: Literal["criterion", "precision"] | None = None,
        csls_knn: int = 10,
        criterion_words: int = 10000,
        chunk_mib: int = 256,
        export: Literal["vec", "pth"] | None = None,
        export_dir: str = "runs/muse/export",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self._init_alignment(dim)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage == "fit" and self.dico_train is None:
            raise ValueError(
                "MUSEProcrustes needs a training dictionary: set data.init_args.dico_train to 'default', "
                "'identical_char' or a file"
            )

    def train_steps_in_epoch(self, epoch: int) -> int:
        return 1 if epoch <= self.hparams.n_refinement else 0

    def training_step(self, batch: Any, batch_idx: int) -> None:
        dictionary = self.dico_train if self.current_epoch == 0 else self.induce()
        self.procrustes_step(dictionary)
        self.log("train/dico_size", float(len(dictionary)), on_step=False, on_epoch=True, batch_size=1)

    def _selection(self) -> str:
        if self.hparams.select_by is not None:
            choice = self.hparams.select_by
        else:
            seed = getattr(self.trainer.datamodule, "dico_train_spec", None)
            choice = "criterion" if seed == "identical_char" else "precision"
        if choice == "precision" and (self.dico_eval is None or not self.dico_eval.numel()):
            rank_zero_warn(
                "MUSEProcrustes: no evaluation dictionary to select by precision; using the criterion"
            )
            choice = "criterion"
        return choice

    def on_train_epoch_end(self) -> None:
        if self._selection() == "precision":
            src, tgt, r_src, r_tgt = self._aligned()
            score = translation_precision(
                src, tgt, self.dico_eval, method="csls", knn=self.hparams.csls_knn, ks=(1,), r_src=r_src,
                r_tgt=r_tgt, chunk_bytes=self._chunk_bytes,
            )[1]  # fmt: skip
        else:
            score = self.criterion()
        self._keep_best(score)
        self.log("val/best_score", float(self.best_score), batch_size=1)
        if self.current_epoch >= self.hparams.n_refinement:
            self.trainer.should_stop = True

    def configure_optimizers(self):
        return None  # closed-form updates only
