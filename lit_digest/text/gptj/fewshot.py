"""Few-shot scoring by log-likelihood from Python, on lit_digest's JSONL task format: a thin front of the
lm-evaluation-harness adapter ``lit_digest.text.lm_eval.LitDigestLM``, which does the scoring.

A task is a JSONL file, one example a line, of either kind:

- multiple choice: ``{"context": "The sky is", "choices": [" blue", " green"], "answer": 0}``: the model picks
  the choice of highest total log-probability after the prompt (``acc``), or of highest log-probability per
  UTF-8 byte of the choice (``acc_norm``; the harness calls it ``acc_bytes``);
- completion, LAMBADA-style: ``{"context": "... he handed her the", "target": " key"}``: ``acc`` is 1 when greedy
  decoding gives exactly the target's tokens, ``ppl`` the perplexity of the target tokens.

The prompt is ``k`` examples of the same file (never the one asked, drawn with ``seed``) or of ``shots``, each
written as its context and its answer, joined by ``separator``, then the asked context (GPT-3, arXiv 2005.14165,
Sec. 2.4). From the shell, evaluate with the harness itself, which reads these files too::

    python -m lit_digest.text.lm_eval --model_args checkpoint=runs/.../last.ckpt --tasks mine.jsonl --num_fewshot 3
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from lit_digest.core.download import missing_data_error

__all__ = ["Example", "read_tasks", "build_prompt", "score_continuations", "score_choices", "evaluate"]


@dataclass(frozen=True)
class Example:
    """One task line: ``choices`` + ``answer`` (multiple choice) or ``target`` (completion)."""

    context: str
    choices: tuple[str, ...] = ()
    answer: int = -1
    target: str | None = None

    @property
    def solution(self) -> str:
        return self.choices[self.answer] if self.choices else self.target


def read_tasks(path: str | os.PathLike) -> list[Example]:
    """The examples of a JSONL file; a malformed line raises with its number."""
    file = Path(path)
    if not file.is_file():
        raise missing_data_error("Task file", file, fix="pass --tasks a JSONL file (see lit_digest.text.gptj.fewshot)")
    examples = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if "choices" in row:
                choices, answer = tuple(row["choices"]), int(row["answer"])
                if len(choices) < 2 or not 0 <= answer < len(choices):
                    raise ValueError(f"needs >= 2 choices and 0 <= answer < {len(choices)}")
                examples.append(Example(row["context"], choices, answer))
            elif "target" in row:
                if not row["target"]:
                    raise ValueError("an empty target")
                examples.append(Example(row["context"], target=row["target"]))
            else:
                raise ValueError("needs 'choices' and 'answer', or 'target'")
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{file}:{number}: not a task line ({err}): {line[:80]!r}") from err
    if not examples:
        raise ValueError(f"{file} has no examples")
    return examples


def build_prompt(example: Example, shots: Sequence[Example], separator: str = "\n\n") -> str:
    """The solved ``shots`` and the asked context."""
    return "".join(s.context + s.solution + separator for s in shots) + example.context


def _adapter(model: nn.Module, tokenizer: Any = None, batch_size: int = 8, max_positions: int | None = None):
    from lit_digest.text.harness import LitDigestLM

    device = str(next(model.parameters()).device)
    return LitDigestLM(model=model, tokenizer=tokenizer, batch_size=batch_size, device=device,
                       max_length=max_positions)


def _ids_only(text: str) -> list[int]:
    raise TypeError("score_continuations scores token ids: use score_choices or evaluate for texts")


def score_continuations(model: nn.Module, pairs: Sequence[tuple[list[int], list[int]]], batch_size: int = 8,
                        max_positions: int | None = None) -> list[tuple[float, bool]]:
    """For each ``(context ids, continuation ids)``: the continuation's total log-probability after the context,
    and whether greedy decoding would produce it token for token (the adapter's ``_loglikelihood_tokens``).
    Contexts too long for ``max_positions`` (default: the model's) lose their oldest tokens."""
    return _adapter(model, _ids_only, batch_size, max_positions)._loglikelihood_tokens(
        [(None, list(c), list(x)) for c, x in pairs])


def score_choices(model: nn.Module, tokenizer: Any, context: str, choices: Sequence[str], batch_size: int = 8,
                  max_positions: int | None = None) -> list[float]:
    """The log-probability of each choice after ``context`` (texts; ``tokenizer``: an object with ``encode``, an
    ``encode`` function or a tokenizer folder), as the harness's ``loglikelihood`` requests compute it."""
    from lm_eval.api.instance import Instance

    lm = _adapter(model, tokenizer, batch_size, max_positions)
    requests = [Instance("loglikelihood", {}, (context, choice), i) for i, choice in enumerate(choices)]
    return [logp for logp, _ in lm.loglikelihood(requests, disable_tqdm=True)]


def evaluate(model: nn.Module, encode: Callable[[str], list[int]] | Any, examples: Sequence[Example], k: int = 0,
             shots: Sequence[Example] | None = None, seed: int = 0, separator: str = "\n\n", batch_size: int = 8,
             max_positions: int | None = None) -> dict[str, float]:
    """``k``-shot scores: ``acc`` over every example, ``acc_norm`` (per UTF-8 byte) over the multiple-choice ones,
    ``ppl`` over the completion targets' tokens. ``encode``: an encode function or a tokenizer."""
    from lm_eval.api.instance import Instance

    rng = random.Random(seed)
    lm = _adapter(model, encode, batch_size, max_positions)
    requests = []
    for index, example in enumerate(examples):
        pool = list(shots) if shots is not None else [e for j, e in enumerate(examples) if j != index]
        if k > len(pool):
            raise ValueError(f"k={k} shots asked, only {len(pool)} examples to draw them from")
        prompt = build_prompt(example, rng.sample(pool, k), separator)
        requests += [Instance("loglikelihood", {}, (prompt, option), len(requests))
                     for option in example.choices or (example.target,)]
    scores = lm.loglikelihood(requests, disable_tqdm=True)
    acc, acc_norm, nll, tokens, cursor = 0, 0, 0.0, 0, 0
    for example in examples:
        options = example.choices or (example.target,)
        got = scores[cursor: cursor + len(options)]
        cursor += len(options)
        if example.choices:
            acc += max(range(len(options)), key=lambda c: got[c][0]) == example.answer
            per_byte = [got[c][0] / len(o.encode("utf-8")) for c, o in enumerate(options)]
            acc_norm += max(range(len(options)), key=lambda c: per_byte[c]) == example.answer
        else:
            acc += got[0][1]
            nll -= got[0][0]
            tokens += len(lm.tok_encode(example.target))
    n = len(examples)
    out = {"examples": n, "acc": acc / n}
    n_choice = sum(1 for e in examples if e.choices)
    if n_choice:
        out["acc_norm"] = acc_norm / n_choice
    if tokens:
        out["ppl"] = math.exp(nll / tokens)
    return out
