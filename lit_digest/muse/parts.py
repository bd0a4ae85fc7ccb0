"""What both MUSE systems do the same way, as functions they call (no base class): take the embeddings
from the DataModule, evaluate and log a mapping, and finish a fit with the best W."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lit_digest.core.lightning import LightningModule, pl
from lit_digest.muse.csls import topk_similarity
from lit_digest.muse.evaluator import AlignmentEvaluator

__all__ = ["attach_embeddings", "closed_form_step", "evaluate", "format_metrics", "keep_best", "finish_fit",
           "predict_translations", "TRANSLATIONS"]

TRANSLATIONS = 5  # target words per source word that predict writes


def closed_form_step(module: LightningModule) -> None:
    """After a closed-form update of W (Procrustes): step the optimiser over W with no gradient. It changes
    nothing, but counts a training step, so that checkpoints (``last.ckpt``) and ``--resume`` work for
    refinement epochs as for the others."""
    optimizer = module.optimizers()
    optimizer = optimizer[0] if isinstance(optimizer, list) else optimizer
    optimizer.zero_grad(set_to_none=True)
    optimizer.step()


def attach_embeddings(module: LightningModule, dim: int, knn: int, criterion_words: int,
                      chunk_mib: int) -> AlignmentEvaluator:
    """Registers the DataModule's spaces as (non-persistent) buffers of ``module``, with its dictionaries as
    ``module.dico_train`` / ``module.dico_eval``, and returns an evaluator over them."""
    dm = module.trainer.datamodule if module._trainer is not None else None
    if getattr(dm, "src", None) is None or getattr(dm, "tgt", None) is None:
        raise TypeError(
            f"{type(module).__name__} reads its embeddings from the DataModule's `src`/`tgt` "
            "(lit_digest.muse.EmbeddingsDataModule); fit it with one"
        )
    if dm.src.dim != dim:
        raise ValueError(
            f"the embeddings are {dm.src.dim}-dimensional but the model was built with "
            f"dim={dim}: set model.init_args.dim: {dm.src.dim}"
        )
    module.register_buffer("src_emb", dm.src.vectors.to(module.device), persistent=False)  # (n_src, d)
    module.register_buffer("tgt_emb", dm.tgt.vectors.to(module.device), persistent=False)  # (n_tgt, d)
    module.dico_train, module.dico_eval = dm.dico_train, dm.dico_eval
    return AlignmentEvaluator(module.src_emb, module.tgt_emb, knn, criterion_words, int(chunk_mib) * 2**20)


@torch.no_grad()
def predict_translations(module: LightningModule, ids: Tensor, vectors: Tensor) -> dict[str, Tensor]:
    """For a chunk of the source vocabulary (row ``ids``, ``vectors``): the words ``mapped`` by W, and their
    ``TRANSLATIONS`` best target words by CSLS (``translations``, target row ids) with their ``csls`` scores, the
    neighbourhood terms taken over both whole vocabularies as in training (arXiv 1710.04087, eq. 6)."""
    src, tgt, r_src, r_tgt = module.evaluator.aligned(module.mapping.weight)
    rows = ids.to(src.device)
    csls, translations = topk_similarity(src[rows], tgt, TRANSLATIONS, query_bias=r_src[rows], key_bias=r_tgt,
                                         scale=2.0, chunk_bytes=module.evaluator.chunk_bytes)
    return {"index": ids, "mapped": module.mapping(vectors), "translations": translations, "csls": csls}


def evaluate(evaluator: AlignmentEvaluator, weight: Tensor, dictionary: Tensor | None) -> dict[str, float]:
    """The criterion, and P@1/5/10 (NN and CSLS) when there is a gold dictionary."""
    metrics = {"criterion": evaluator.criterion(weight)}
    if dictionary is not None and dictionary.numel():
        metrics.update(evaluator.precision(weight, dictionary))
    return metrics


def format_metrics(metrics: dict[str, float]) -> str:
    """One console line, as the official code's log: criterion, then P@k with NN and CSLS."""
    parts = [f"criterion {metrics['criterion']:.4f}"] if "criterion" in metrics else []
    for k in (1, 5, 10):
        if f"p@{k}_nn" in metrics:
            parts.append(f"P@{k} NN {metrics[f'p@{k}_nn']:.1f} CSLS {metrics[f'p@{k}_csls']:.1f}")
    parts += [f"{k} {v:g}" for k, v in metrics.items() if k not in ("criterion",) and not k.startswith("p@")]
    return ", ".join(parts)


@torch.no_grad()
def keep_best(module: LightningModule, score: float) -> bool:
    """Copies W into ``module.best_weight`` when ``score`` beats ``module.best_score``."""
    if score > float(module.best_score):
        module.best_weight.copy_(module.mapping.weight)
        module.best_score.fill_(score)
        return True
    return False


def finish_fit(module: LightningModule, evaluator: AlignmentEvaluator, rule: str) -> dict[str, float]:
    """Loads the best W (best by ``rule``, which the summary names) and writes it into ``last.ckpt`` (so the file
    loads as the model fit ends with), evaluates it, prints and logs the numbers under ``final/`` at the run's last
    step, on the same axis as the rest."""
    if math.isfinite(float(module.best_score)):
        module.mapping.set_weight_(module.best_weight)
        trainer = module.trainer
        for callback in trainer.checkpoint_callbacks:  # last.ckpt: the W that fit ends with, as the module holds it
            if callback.save_last and callback.last_model_path:
                trainer.save_checkpoint(callback.last_model_path)
    metrics = evaluate(evaluator, module.mapping.weight, module.dico_eval)
    pl.utilities.rank_zero_info(f"{type(module).__name__} final, the W with the best {rule}: {format_metrics(metrics)}")
    for logger in module.loggers:
        logger.log_metrics({f"final/{k}": v for k, v in metrics.items()}, step=module.global_step)
    return metrics
