"""The lm-evaluation-harness adapter: a local task through ``lm_eval.simple_evaluate`` gives the accuracy of a naive
scorer written here (and of the few-shot front), the same log-likelihoods, rolling log-likelihoods and greedy
generations as the harness's own ``hf`` model on a random Hugging Face GPT-J, generation stops at the stop string,
and the command takes lm_eval's arguments, reads our JSONL tasks and refuses a wrong checkpoint at once."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

pytest.importorskip("lm_eval")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from lm_eval.api.instance import Instance  # noqa: E402

from lit_digest.core.console import script  # noqa: E402
from lit_digest.text.data import ByteTokenizer  # noqa: E402
from lit_digest.text.gptj import GPTJ, GPTJConfig, save_hf  # noqa: E402
from lit_digest.text.gptj.fewshot import Example, evaluate, score_choices  # noqa: E402
from lit_digest.text.harness import LitDigestLM, write_task  # noqa: E402
from lit_digest.text.lm_eval import main  # noqa: E402

TEXT = ("The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with a single step. "
        "All that glitters is not gold. Actions speak louder than words. ") * 8


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def naive_logprob(model: nn.Module, context: list[int], continuation: list[int]) -> float:
    """One full forward pass per continuation, no batching, no truncation."""
    with torch.no_grad():
        logp = model(torch.tensor([context + continuation[:-1]]))[0].log_softmax(-1)  # (T, V)
    return sum(float(logp[len(context) - 1 + j, t]) for j, t in enumerate(continuation))


def harness(tmp_path, lm: LitDigestLM, jsonl, **kwargs) -> dict:
    import lm_eval
    from lm_eval.tasks import TaskManager

    write_task(jsonl, tmp_path / "tasks", name="mine")
    manager = TaskManager(include_path=str(tmp_path / "tasks"), include_defaults=False)
    out = lm_eval.simple_evaluate(model=lm, tasks=["mine"], task_manager=manager, verbosity="ERROR", **kwargs)
    return out["results"]["mine"]


def test_a_local_task_in_the_harness_scores_as_a_naive_loop_and_as_the_few_shot_front(tmp_path):
    torch.manual_seed(0)
    model = GPTJ(GPTJConfig.preset("tiny")).eval()
    encode = ByteTokenizer().encode
    rows = [{"context": f"Q{i}: {'ab' * i}?", "choices": [" yes", " no", " maybe so"], "answer": i % 3}
            for i in range(9)]
    path = tmp_path / "mc.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = harness(tmp_path, LitDigestLM(model=model, device="cpu", batch_size=4), path, num_fewshot=0)
    acc = acc_bytes = 0
    for r in rows:
        scores = [naive_logprob(model, encode(r["context"]), encode(c)) for c in r["choices"]]
        acc += max(range(3), key=lambda c: scores[c]) == r["answer"]
        acc_bytes += max(range(3), key=lambda c: scores[c] / len(r["choices"][c].encode())) == r["answer"]
    assert got["acc,none"] == pytest.approx(acc / 9) and got["acc_bytes,none"] == pytest.approx(acc_bytes / 9)
    ours = evaluate(model, encode, [Example(r["context"], tuple(r["choices"]), r["answer"]) for r in rows])
    assert ours["acc"] == pytest.approx(acc / 9) and ours["acc_norm"] == pytest.approx(acc_bytes / 9)
    r = rows[4]
    expected = [naive_logprob(model, encode(r["context"]), encode(c)) for c in r["choices"]]
    assert score_choices(model, encode, r["context"], r["choices"]) == pytest.approx(expected, abs=1e-4)

    # completion lines: acc is greedy exact match; a model that knows the target gets it
    completions = tmp_path / "completion.jsonl"
    completions.write_text("".join(json.dumps({"context": f"x{i}", "target": "aaa" if i % 2 else "aab"}) + "\n"
                                   for i in range(4)))
    got = harness(tmp_path, LitDigestLM(model=PrefersA(), tokenizer=ByteTokenizer(), device="cpu"), completions)
    assert got["acc,none"] == pytest.approx(0.5) and got["perplexity,none"] > 1.0


class PrefersA(nn.Module):
    """Logit 5 for byte 'a' and, every third position, for byte '\\n'; 0 for the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))
        self.calls = 0

    def forward(self, tokens, **kwargs):
        self.calls += 1
        logits = torch.zeros(*tokens.shape, 256)
        logits[..., ord("a")] = 5.0
        logits[..., ord("\n")] = 4.0
        return logits + self.anchor


def test_generation_stops_at_the_stop_string_and_respects_max_gen_toks():
    model = PrefersA()
    lm = LitDigestLM(model=model, tokenizer=ByteTokenizer(), device="cpu", max_length=64)
    requests = [Instance("generate_until", {}, ("go", {"until": ["aaa"], "max_gen_toks": 20}), 0),
                Instance("generate_until", {}, ("go", {"until": ["\n\n"], "max_gen_toks": 5}), 1)]
    first, second = lm.generate_until(requests)
    assert first == "" and second == "aaaaa"  # cut before the stop string; five tokens at most
    model.calls = 0
    lm.generate_until(requests[:1])
    assert model.calls == 3  # stopped once "aaa" was there, not after 20 steps


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A random Hugging Face GPT-J (small config) with a BPE tokenizer trained here, saved as one folder."""
    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>"], show_progress=False,
                                             initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([TEXT], trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")
    torch.manual_seed(0)
    config = GPTJConfig(vocab_size=len(tokenizer), n_positions=32, d_model=48, n_layer=2, n_head=4, rotary_dim=6)
    model = GPTJ(config)
    with torch.no_grad():  # larger weights than the default init, so that attention and logits vary
        for name, p in model.named_parameters():
            if name.endswith(("ln_1.weight", "ln_f.weight")):
                p.uniform_(0.5, 1.5)
            else:
                p.normal_(0, 0.15 if p.dim() > 1 else 0.1)
    folder = save_hf(model, tmp_path_factory.mktemp("gptj"))
    tokenizer.save_pretrained(folder)
    return folder


def test_the_same_loglikelihoods_and_generations_as_the_harness_hf_model(hf_folder):
    from lm_eval.models.huggingface import HFLM

    theirs = HFLM(pretrained=str(hf_folder), device="cpu", batch_size=3, dtype="float32")
    ours = LitDigestLM(pretrained=str(hf_folder), device="cpu", batch_size=2)
    assert ours.eot_token_id == theirs.eot_token_id
    pairs = [("The quick brown", " fox jumps"), ("", "All that glitters"), ("A journey of a", " thousand miles"),
             (TEXT[:150], " is not gold."),  # longer than the 32 positions: cut from the left
             ("Actions speak ", "louder than words")]  # a trailing space moves to the continuation
    requests = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]
    for (a, greedy_a), (b, greedy_b) in zip(ours.loglikelihood(requests), theirs.loglikelihood(requests)):
        assert abs(a - b) < 1e-4 and greedy_a == greedy_b and a < 0
    rolling = [Instance("loglikelihood_rolling", {}, (text,), i) for i, text in enumerate([TEXT[:300], "Gold."])]
    for a, b in zip(ours.loglikelihood_rolling(rolling), theirs.loglikelihood_rolling(rolling)):
        assert abs(a - b) < 1e-4 and a < 0  # several windows for the first: every token scored once
    generate = [Instance("generate_until", {}, (c, {"until": ["."], "max_gen_toks": 12, "do_sample": False}), i)
                for i, c in enumerate(["The quick", "A journey of"])]
    assert ours.generate_until(generate) == theirs.generate_until(generate)


def test_wrong_model_args_are_refused_before_the_harness_starts(tmp_path, capsys, monkeypatch):
    import lm_eval.tasks

    def never(*args, **kwargs):
        raise AssertionError("the harness indexed its tasks before the checkpoint was checked")

    monkeypatch.setattr(lm_eval.tasks, "TaskManager", never)
    other = tmp_path / "byol.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"_class_path": "lit_digest.ssl.BYOL"}}, other)
    assert script(main)(["--model_args", f"checkpoint={other}", "--tasks", "lambada_openai"]) == 1
    err = capsys.readouterr().err
    assert "not a CausalLM checkpoint" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert script(main)(["--model_args", f"pretrained={tmp_path / 'nothing'}", "--tasks", "piqa"]) == 1
    assert "GPT-J folder (config.json) not found" in capsys.readouterr().err
    with pytest.raises(TypeError, match="unknown model_args"):
        LitDigestLM(model=PrefersA(), revision="main")
    with pytest.raises(ValueError, match="exactly one of"):
        LitDigestLM()


def test_the_command_takes_lm_evals_arguments_and_our_jsonl_tasks(tmp_path, capsys, monkeypatch):
    import lm_eval.tasks

    class LocalTasksOnly(lm_eval.tasks.TaskManager):  # indexing the harness's ~10k built-in tasks takes ~15 s
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "include_defaults": False})

    monkeypatch.setattr(lm_eval.tasks, "TaskManager", LocalTasksOnly)
    folder = save_hf(GPTJ(GPTJConfig.preset("tiny")), tmp_path / "tiny")
    tasks = tmp_path / "quiz.jsonl"
    tasks.write_text("".join(json.dumps({"context": f"Q{i}", "choices": [" a", " bc"], "answer": i % 2}) + "\n"
                             for i in range(6)))
    out = tmp_path / "results"
    assert script(main)(["--model_args", f"pretrained={folder}", "--device", "cpu", "--batch_size", "4",
                         "--tasks", str(tasks), "--num_fewshot", "2", "--output_path", str(out)]) == 0
    table = capsys.readouterr().out
    assert "lit_digest" in table and "quiz" in table and "acc_bytes" in table
    (result_file,) = out.rglob("results_*.json")
    results = json.loads(result_file.read_text())["results"]["quiz"]
    assert results["acc,none"] in {i / 6 for i in range(7)} and not math.isnan(results["acc_bytes,none"])
