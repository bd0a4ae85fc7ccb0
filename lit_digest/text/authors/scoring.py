"""Attribution by the language model's likelihood, through the few-shot scorer (``lit_digest.text.gptj.fewshot``).

A text's label is the one after whose prompt the LM finds the text most likely: ``argmax_L log p(text | prompt_L)``
(Bayes' rule with a uniform prior: a generative classifier). The prompts are those of ``ControlledLM``:

- ``"prefix"``: the label's control prefix, the conditioned LM's own way to ask for it;
- ``"in_context"``: ``shots`` real training passages of the label, the in-context alternative that needs no
  trained prefix (GPT-3's few-shot setting, arXiv 2005.14165, Sec. 2, scored by log-likelihood as in its Sec. 2.4).

The few-shot scorer's ``score_continuations`` gives each ``(prompt, text)`` pair's total log-probability; the
label is the argmax over the pairs of one text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from lit_digest.text.authors.generation import build_prompt
from lit_digest.text.gptj.fewshot import score_continuations

__all__ = ["likelihood_attribution"]


@torch.no_grad()
def likelihood_attribution(model: torch.nn.Module, data: Any, passages: Sequence[Any], conditioning: str = "prefix",
                           shots: int = 2, seed: int = 0, batch_size: int = 16) -> list[int]:
    """The label the LM gives each passage (a ``Passage`` of ``data``, a set-up ``LabelledTextDataModule``)."""
    encode = data.tokenizer.encode
    pairs, labels = [], range(len(data.labels))
    for number, passage in enumerate(passages):
        for label in labels:
            prompt = build_prompt(data, label, number, conditioning, shots, seed)
            pairs.append((encode(prompt), list(passage.ids)))
    longest = max(len(c) + len(t) for c, t in pairs) if pairs else 0
    if conditioning == "prefix" and longest > model.config.n_positions + 1:
        raise ValueError(f"a control prefix and a passage take {longest} tokens, more than the model's n_positions="
                         f"{model.config.n_positions} + 1: the prefix would be cut off; use shorter passages "
                         "(data.init_args.passage_len) or a model with more positions")
    model.eval()
    scores = score_continuations(model, pairs, batch_size, max_positions=model.config.n_positions)
    k = len(labels)
    return [max(labels, key=lambda c: scores[i * k + c][0]) for i in range(len(passages))]
