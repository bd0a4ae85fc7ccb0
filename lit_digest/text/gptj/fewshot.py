"""Few-shot evaluation by log-likelihood: k solved examples, then the question, scored the way GPT-3 (arXiv
2005.14165, Sec. 2.4) and EleutherAI's lm-evaluation-harness (which scored GPT-J) do.

A task is a JSONL file, one example a line, of either kind:

- multiple choice: ``{"context": "The sky is", "choices": [" blue", " green"], "answer": 0}``: the model picks
  the choice of highest total log-probability after the prompt (``acc``), or of highest log-probability per
  UTF-8 byte of the choice (``acc_norm``, the harness's length normalisation);
- completion, LAMBADA-style: ``{"context": "... he handed her the", "target": " key"}``: ``acc`` is 1 when greedy
  decoding gives exactly the target's tokens, ``ppl`` the perplexity of the target tokens.

The prompt is ``k`` examples of the same file (never the one asked, drawn with ``seed``) or of ``--shots``,
each written as its context and its answer, joined by ``separator``, then the asked context.

    python -m lit_digest.text.gptj.fewshot --tasks lambada.jsonl --k 0 --hf checkpoints/gpt-j-6b
    python -m lit_digest.text.gptj.fewshot --tasks mine.jsonl --k 3 --checkpoint runs/.../last.ckpt
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lit_digest.core.download import missing_data_error

__all__ = ["Example", "read_tasks", "build_prompt", "score_continuations", "evaluate", "main"]


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


@torch.no_grad()
def score_continuations(model: nn.Module, pairs: Sequence[tuple[list[int], list[int]]], batch_size: int = 8,
                        max_positions: int | None = None) -> list[tuple[float, bool]]:
    """For each ``(context ids, continuation ids)``: the continuation's total log-probability after the context,
    and whether greedy decoding would produce it token for token. Contexts too long for ``max_positions`` lose
    their oldest tokens. Sequences are right-padded in batches: causal attention never looks at the padding."""
    device = next(model.parameters()).device
    results: list[tuple[float, bool]] = []
    for start in range(0, len(pairs), batch_size):
        rows = []
        for ctx, cont in pairs[start:start + batch_size]:
            if not cont or (max_positions is not None and len(cont) > max_positions):
                raise ValueError(f"a continuation of {len(cont)} tokens: it must fit the model's context")
            seq = list(ctx) + list(cont)
            if max_positions is not None and len(seq) > max_positions + 1:
                seq = seq[len(seq) - max_positions - 1:]
            rows.append((seq, len(cont)))
        length = max(len(s) for s, _ in rows) - 1
        inputs = torch.zeros(len(rows), length, dtype=torch.long)
        for i, (seq, _) in enumerate(rows):
            inputs[i, : len(seq) - 1] = torch.tensor(seq[:-1])
        logp = F.log_softmax(model(inputs.to(device)).float(), dim=-1)  # (B, L, V)
        for i, (seq, n) in enumerate(rows):
            end = len(seq) - 1
            span = logp[i, end - n: end]  # predictions of the continuation's tokens
            wanted = torch.tensor(seq[-n:], device=device)
            total = float(span.gather(-1, wanted[:, None]).sum())
            results.append((total, bool((span.argmax(-1) == wanted).all())))
    return results


def evaluate(model: nn.Module, encode: Callable[[str], list[int]], examples: Sequence[Example], k: int = 0,
             shots: Sequence[Example] | None = None, seed: int = 0, separator: str = "\n\n", batch_size: int = 8,
             max_positions: int | None = None) -> dict[str, float]:
    """``k``-shot scores: ``acc`` over every example, ``acc_norm`` over the multiple-choice ones, ``ppl`` over the
    completion targets' tokens."""
    rng = random.Random(seed)
    pairs = []
    for index, example in enumerate(examples):
        pool = list(shots) if shots is not None else [e for j, e in enumerate(examples) if j != index]
        if k > len(pool):
            raise ValueError(f"k={k} shots asked, only {len(pool)} examples to draw them from")
        context = encode(build_prompt(example, rng.sample(pool, k), separator))
        for option in example.choices or (example.target,):
            pairs.append((context, encode(option)))
    scores = score_continuations(model, pairs, batch_size, max_positions)
    acc, acc_norm, nll, tokens = 0, 0, 0.0, 0
    cursor = 0
    for example in examples:
        options = example.choices or (example.target,)
        got = scores[cursor: cursor + len(options)]
        lengths = [len(encode(o)) for o in options]
        cursor += len(options)
        if example.choices:
            acc += max(range(len(options)), key=lambda c: got[c][0]) == example.answer
            per_byte = [got[c][0] / len(o.encode("utf-8")) for c, o in enumerate(options)]
            acc_norm += max(range(len(options)), key=lambda c: per_byte[c]) == example.answer
        else:
            acc += got[0][1]
            nll -= got[0][0]
            tokens += lengths[0]
    n = len(examples)
    out = {"examples": n, "acc": acc / n}
    n_choice = sum(1 for e in examples if e.choices)
    if n_choice:
        out["acc_norm"] = acc_norm / n_choice
    if tokens:
        out["ppl"] = math.exp(nll / tokens)
    return out


def _load(args) -> tuple[nn.Module, Callable[[str], list[int]]]:
    from lit_digest.text.data import load_tokenizer
    from lit_digest.text.gptj.hf import load_hf
    from lit_digest.text.gptj.module import CausalLM

    if args.hf:
        model = load_hf(args.hf)
        folder = Path(args.hf)
        tokenizer_path = args.tokenizer or (str(folder) if (folder / "tokenizer_config.json").is_file() else None)
    else:
        model = CausalLM.load_from_checkpoint(args.checkpoint, map_location="cpu").model
        tokenizer_path = args.tokenizer
    device = "cuda" if torch.cuda.is_available() and args.device != "cpu" else "cpu"
    return model.to(device).eval(), load_tokenizer(tokenizer_path).encode


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description="k-shot scoring of a GPT-J by log-likelihood (JSONL tasks)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a CausalLM Lightning checkpoint")
    source.add_argument("--hf", help="a Hugging Face GPT-J folder (config.json + weights)")
    parser.add_argument("--tasks", required=True, help="JSONL: context + choices + answer, or context + target")
    parser.add_argument("--shots", help="JSONL to draw the k examples from (default: the other task lines)")
    parser.add_argument("--k", type=int, default=0)
    parser.add_argument("--tokenizer", help="a saved Hugging Face tokenizer folder (default: bytes, or the --hf "
                                            "folder's own tokenizer)")
    parser.add_argument("--limit", type=int, help="the first N examples only")
    parser.add_argument("--separator", default="\n\n")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu"])
    args = parser.parse_args(argv)
    examples = read_tasks(args.tasks)[: args.limit]
    shots = read_tasks(args.shots) if args.shots else None
    model, encode = _load(args)
    result = evaluate(model, encode, examples, args.k, shots, args.seed, args.separator, args.batch_size,
                      max_positions=model.config.n_positions)
    print(f"| task | k | examples | {' | '.join(k for k in result if k != 'examples')} |")
    print("|---|---:|---:|" + "---:|" * (len(result) - 1))
    values = " | ".join(f"{v:.4f}" for k, v in result.items() if k != "examples")
    print(f"| {Path(args.tasks).name} | {args.k} | {result['examples']} | {values} |")
    return result


if __name__ == "__main__":
    main()
