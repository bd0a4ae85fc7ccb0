"""The few-shot front (now scored by the lm-evaluation-harness adapter): scores equal a naive per-token loop,
batching changes nothing, a model that knows the answers gets them, prompts hold k other examples, bad task files
name their line. The command is ``python -m lit_digest.text.lm_eval`` (tests/text/test_lm_eval.py)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from lit_digest.text.data import ByteTokenizer
from lit_digest.text.gptj import GPTJ, GPTJConfig
from lit_digest.text.gptj.fewshot import Example, build_prompt, evaluate, read_tasks, score_continuations

pytest.importorskip("lm_eval")

encode = ByteTokenizer().encode


class Prefers(nn.Module):
    """A 'language model' that gives byte ``favourite`` logit 5 after every position, 0 to every other byte."""

    def __init__(self, favourite: int) -> None:
        super().__init__()
        self.favourite = favourite
        self.anchor = nn.Parameter(torch.zeros(1))

    def forward(self, tokens):
        logits = torch.zeros(*tokens.shape, 256)
        logits[..., self.favourite] = 5.0
        return logits + self.anchor


def test_scores_equal_a_naive_loop_and_do_not_depend_on_batching():
    torch.manual_seed(0)
    model = GPTJ(GPTJConfig.preset("tiny")).eval()
    pairs = [(encode("The cat sat on the"), encode(" mat")), (encode("A"), encode("n apple a day")),
             (encode("x" * 70), encode("yz"))]  # longer than the 64 positions: cut from the left
    batched = score_continuations(model, pairs, batch_size=3, max_positions=64)
    alone = [score_continuations(model, [p], batch_size=1, max_positions=64)[0] for p in pairs]
    for (a, ga), (b, gb) in zip(batched, alone):
        assert abs(a - b) < 1e-4 and ga == gb
    ctx, cont = pairs[0]
    naive = 0.0
    with torch.no_grad():
        for j, token in enumerate(cont):
            seq = torch.tensor([ctx + cont[:j]])
            naive += float(model(seq)[0, -1].log_softmax(-1)[token])
    assert abs(batched[0][0] - naive) < 1e-4


def test_a_model_that_prefers_the_answer_gets_it():
    examples = [Example("Q1", (" bbb", " aaa"), 1), Example("Q2", (" aaa", " bbb"), 0),
                Example("Q3", (" ccc", " aaaa", " "), 1)]
    result = evaluate(Prefers(ord("a")), encode, examples, k=1)
    assert result["acc_norm"] == 1.0 and result["examples"] == 3
    # raw totals favour short choices: the bare " " (-6 nats) beats " aaaa" (-10), the reason for acc_norm
    assert result["acc"] == pytest.approx(2 / 3)
    completion = evaluate(Prefers(ord("a")), encode, [Example("x", target="aaa"), Example("y", target="aab")])
    assert completion["acc"] == 0.5 and completion["ppl"] > 1.0 and "acc_norm" not in completion
    mixed = evaluate(Prefers(ord("a")), encode, [*examples[:2], Example("x", target="aab")])
    assert mixed["acc_norm"] == 1.0 and mixed["acc"] == pytest.approx(2 / 3)  # acc_norm: multiple choice only


def test_prompts_hold_k_other_solved_examples():
    examples = [Example(f"q{i}:", (" no", " yes"), i % 2) for i in range(5)]
    shots = [examples[3], examples[0]]
    assert build_prompt(examples[1], shots, "|") == "q3: yes|q0: no|q1:"
    seen = []

    class Spy(Prefers):
        def forward(self, tokens):
            seen.append(ByteTokenizer().decode(tokens[0].tolist()))
            return super().forward(tokens)

    evaluate(Spy(ord("a")), encode, examples[:1], k=2, shots=examples[1:], batch_size=1)
    assert seen[0].count("q") == 3 and "q0:" in seen[0] and seen[0].index("q0:") > seen[0].rindex("\n\n")
    with pytest.raises(ValueError, match="k=5 shots"):
        evaluate(Prefers(0), encode, examples, k=5)


def test_bad_task_lines_name_their_line(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"context": "a", "choices": ["b", "c"], "answer": 1}) + "\n" +
                    json.dumps({"context": "a", "choices": ["b", "c"], "answer": 2}) + "\n")
    with pytest.raises(ValueError, match=r"t\.jsonl:2"):
        read_tasks(path)
    path.write_text('{"context": "a"}\n')
    with pytest.raises(ValueError, match="needs 'choices'"):
        read_tasks(path)
    with pytest.raises(FileNotFoundError, match="Task file not found"):
        read_tasks(tmp_path / "missing.jsonl")
