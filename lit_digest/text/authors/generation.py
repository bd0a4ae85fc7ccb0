"""``ControlledLM``: one causal LM for every label, steered by a control prefix, and its report.

Training is ``CausalLM``'s, on ``LabelledTextDataModule(batches="lm")``'s windows, each opened by its label's
control prefix (CTRL, Keskar et al., arXiv 1909.05858, Sec. 3; the notebook's approach). Sampling: temperature and
nucleus (top-p, Holtzman et al., arXiv 1904.09751), as ``CausalLM``. Two ways to ask for a label:

- ``conditioning="prefix"``: the prompt is the label's control prefix (``"[computers]\\n"``) and the separator;
- ``conditioning="in_context"``: no trained prefix, the prompt is ``shots`` real training passages of the label,
  each followed by the separator (the few-shot prompt of GPT-3, arXiv 2005.14165, Sec. 2, without a question);
  ``lit_digest.text.gptj.fewshot``'s scorer ranks the labels of a text by the same prompts (see ``scoring``).

``predict`` writes ``samples.jsonl`` and ``report.html`` (or ``.md``): per label, the samples, real held-out
passages, each one's verdict by the TF-IDF baseline (fitted on the training passages when predict starts) and by
an ``AuthorAttribution`` checkpoint when ``classifier`` names one, and the nearest real training passage
(``overlap.NgramIndex``).
"""

from __future__ import annotations

import json
import random
from typing import Any

import torch

from lit_digest.core.callbacks import run_dir
from lit_digest.core.optim import Optim
from lit_digest.core.outputs import announce
from lit_digest.text.authors.module import TINY
from lit_digest.text.gptj.model import GPTJConfig
from lit_digest.text.gptj.module import CausalLM
from lit_digest.text.gptj.sampling import generate

__all__ = ["ControlledLM", "build_prompt", "sample_texts", "cut_at_separator"]


def build_prompt(data: Any, label: int, sample: int, conditioning: str = "prefix", shots: int = 2,
                 seed: int = 0) -> str:
    """The prompt asking ``data`` (a set-up ``LabelledTextDataModule``) for label ``label`` (-1: none): its control
    prefix, or ``shots`` of its training passages (drawn with ``seed`` and ``sample``), then the separator."""
    if conditioning == "prefix" or label < 0:
        return data.control_prefix(label) + data.separator
    pool = [p.text for p in data.passages["train"] if p.label == label]
    chosen = random.Random(seed * 100_003 + sample * 101 + label).sample(pool, min(shots, len(pool)))
    return "".join(text + data.separator for text in chosen)


def cut_at_separator(text: str, separator: str) -> str:
    """The generated text up to the first separator (the end of one document), without surrounding blanks."""
    text = text.lstrip()
    return (text.split(separator)[0] if separator else text).strip()


@torch.no_grad()
def sample_texts(model: torch.nn.Module, tokenizer: Any, prompts: list[str], max_new_tokens: int, separator: str,
                 temperature: float = 1.0, top_p: float | None = 0.9, top_k: int | None = None,
                 batch_size: int = 32, generator: torch.Generator | None = None) -> list[str]:
    """One sample per prompt: the continuation (at most ``max_new_tokens``, and at most half the model's context),
    cut at the first separator."""
    out = []
    new_tokens = min(max_new_tokens, model.config.n_positions // 2)  # leave the prompt half the context at least
    keep = model.config.n_positions - new_tokens  # a longer prompt keeps its end
    for start in range(0, len(prompts), batch_size):
        ids = [tokenizer.encode(p)[-keep:] for p in prompts[start:start + batch_size]]
        new = generate(model, ids, new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                       eos_token_id=getattr(tokenizer, "eos_token_id", None), generator=generator)
        out += [cut_at_separator(tokenizer.decode(n), separator) for n in new]
    return out


class ControlledLM(CausalLM):
    """``CausalLM`` on control-prefixed windows; ``predict`` writes the samples and the report.

    Args: ``CausalLM``'s, here with a tiny byte-level model and a small model's learning rate. What ``predict`` asks
    for and how it reports it are the DataModule's options (``samples_per_label``, ``conditioning``, ``shots``,
    ``classifier``, ``copy_words``, ``real_texts``, ``report``): Lightning's CLI takes a module's options from the
    checkpoint that ``predict`` reads, the DataModule's from the command line.
    """

    def __init__(self, model: GPTJConfig = TINY, pretrained: str | None = None,
                 optim: Optim = Optim(name="adamw", lr=2e-3, weight_decay=0.1, betas=(0.9, 0.999), warmup_steps=10,
                                      final_lr_ratio=0.1),
                 z_loss: float = 1e-4, activation_checkpointing: bool = False, samples: int = 1,
                 max_new_tokens: int = 96, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = 0.9, memory_report: bool = False) -> None:
        super().__init__(model=model, pretrained=pretrained, optim=optim, z_loss=z_loss,
                         activation_checkpointing=activation_checkpointing, samples=samples,
                         max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                         memory_report=memory_report)
        self._rows: list[dict[str, Any]] = []

    def setup(self, stage: str) -> None:
        super().setup(stage)
        data = getattr(self.trainer, "datamodule", None)
        if data is None or not hasattr(data, "control_prefix"):
            return
        if data.batches != "lm":
            raise ValueError("ControlledLM trains on control-prefixed windows: set data.init_args.batches: lm")
        if data.seq_len > self.config.n_positions:
            raise ValueError(f"sequences of {data.seq_len} tokens do not fit the model's n_positions="
                             f"{self.config.n_positions}: lower data.init_args.seq_len")

    def on_predict_epoch_start(self) -> None:
        self._rows = []

    def predict_step(self, batch: dict, batch_idx: int) -> list[dict[str, Any]]:
        data, h = self.trainer.datamodule, self.hparams
        prompts = [build_prompt(data, int(label), int(k), data.conditioning, data.shots)
                   for label, k in zip(batch["label"], batch["sample"])]
        texts = sample_texts(self.model, data.tokenizer, prompts, h.max_new_tokens, data.separator, h.temperature,
                             h.top_p, h.top_k, batch_size=len(prompts))
        rows = [{"label": data.labels[int(label)] if label >= 0 else None, "prompt": p, "sample": t}
                for label, p, t in zip(batch["label"].tolist(), prompts, texts)]
        self._rows += rows
        return rows

    def on_predict_epoch_end(self) -> None:
        if not self._rows or self.global_rank != 0:
            return
        from lit_digest.text.authors.report import build_report

        folder = run_dir(self.trainer)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "samples.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for row in self._rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        announce(path, len(self._rows), "samples")
        data = self.trainer.datamodule
        report = build_report(data, self._rows, data.classifier, data.copy_words, data.real_texts,
                              folder / ("report.html" if data.report == "html" else "report.md"))
        announce(report, 1, "report")
        self._rows = []
