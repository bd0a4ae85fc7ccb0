"""lit_digest's GPT-J in EleutherAI's lm-evaluation-harness (``lm_eval``): the model adapter.

The harness is how causal LMs are compared: GPT-J-6B's published zero-shot numbers (LAMBADA, HellaSwag, PIQA,
WinoGrande; mesh-transformer-jax's README) come from it. ``LitDigestLM`` is its ``LM`` interface
(``loglikelihood``, ``loglikelihood_rolling``, ``generate_until``) over our ``GPTJ``, from a ``CausalLM``
checkpoint (``checkpoint=``), a Hugging Face GPT-J folder (``pretrained=``) or a model in memory (``model=``).
Importing this module registers it as the harness model ``lit_digest``, so that
``lm_eval.simple_evaluate(model="lit_digest", model_args={"checkpoint": ...}, tasks=[...])`` finds it (or pass
``model=LitDigestLM(...)``); the command is ``python -m lit_digest.text.lm_eval`` (lm_eval's own arguments).
``write_task`` turns a JSONL file of our few-shot format into a harness task.

Scoring follows the harness's ``hf`` model: context and continuation are encoded together and split, an input
longer than the model's window loses its oldest tokens, and an empty context (and the first window of a rolling
log-likelihood) is conditioned on the end-of-text token; the byte tokenizer has none, and uses ``"\n"``, the
last byte of the separator before every document in ``TextDataModule``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

try:
    import lm_eval.models  # noqa: F401  (the harness's own models first: its registry loads them only when empty)
    from lm_eval.api.instance import Instance
    from lm_eval.api.model import TemplateLM
    from lm_eval.api.registry import register_model
    from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
except ImportError as err:  # pragma: no cover - the `eval` extra
    raise ImportError("lit_digest.text.harness needs EleutherAI's lm-evaluation-harness: "
                      "pip install 'lit-digest[eval]'") from err

from lit_digest.core.checkpoints import expect_checkpoint
from lit_digest.text.data import ByteTokenizer, load_tokenizer
from lit_digest.text.gptj.sampling import generate

__all__ = ["LitDigestLM", "write_task"]

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class _EncodeOnly:
    """A tokenizer from an ``encode`` function alone (scoring needs no decoding)."""

    eos_token_id = None

    def __init__(self, encode: Callable[[str], list[int]]) -> None:
        self.encode = encode

    def decode(self, ids: Sequence[int]) -> str:
        raise TypeError("this model was given an encode function only: generation needs a tokenizer with decode")


@register_model("lit_digest")
class LitDigestLM(TemplateLM):
    """lm-evaluation-harness model ``lit_digest``: our ``GPTJ`` behind the harness's ``LM`` interface.

    Args (``--model_args key=value,...`` on the command line):
        checkpoint: a ``CausalLM`` Lightning checkpoint (refused at once if another method wrote it).
        pretrained: a Hugging Face GPT-J folder (``config.json`` + weights, e.g. a local copy of
            ``EleutherAI/gpt-j-6b``); its own tokenizer is used when the folder has one.
        model: a ``GPTJ`` (or any module mapping tokens ``(B, T)`` to logits ``(B, T, V)``) already in memory.
        tokenizer: a saved Hugging Face tokenizer folder, a tokenizer object (``encode``/``decode``), or an
            ``encode`` function (scoring only); default: the ``pretrained`` folder's, else bytes.
        batch_size: sequences per forward pass.
        device: ``cuda``, ``cpu``, ... (default: CUDA when there is one).
        dtype: ``float32`` (default), ``bfloat16`` or ``float16`` weights; log-probabilities are taken in float32.
        max_length: the longest input (default: the model's ``n_positions``, else 2048).
        max_batch_size: accepted for the harness's interface; ``batch_size`` is used as given.
    """

    def __init__(self, checkpoint: str | None = None, pretrained: str | None = None, model: nn.Module | None = None,
                 tokenizer: Any = None, batch_size: int | str | None = 8, device: str | None = None,
                 dtype: str | torch.dtype | None = None, max_length: int | None = None,
                 max_batch_size: int | None = None, **unknown: Any) -> None:
        super().__init__()
        if unknown:
            raise TypeError(f"unknown model_args for the lit_digest model: {sorted(unknown)}; it takes checkpoint, "
                            "pretrained, tokenizer, batch_size, device, dtype, max_length")
        if sum(x is not None for x in (checkpoint, pretrained, model)) != 1:
            raise ValueError("the lit_digest model needs exactly one of checkpoint=<CausalLM .ckpt>, "
                             "pretrained=<Hugging Face GPT-J folder> or model=<GPTJ>")
        self.batch_size_per_device = _batch_size(batch_size)
        self._device = torch.device(device if device not in (None, "auto") else
                                    "cuda" if torch.cuda.is_available() else "cpu")
        if isinstance(dtype, str) and dtype not in _DTYPES and dtype != "auto":
            raise ValueError(f"dtype={dtype!r}: use one of {sorted(_DTYPES)}")
        if checkpoint is not None:
            from lit_digest.text.gptj.module import CausalLM

            expect_checkpoint(checkpoint, CausalLM)
            model = CausalLM.load_from_checkpoint(checkpoint, map_location="cpu").model
        elif pretrained is not None:
            from lit_digest.text.gptj.hf import load_hf

            model = load_hf(pretrained)
            if tokenizer is None and (Path(pretrained) / "tokenizer_config.json").is_file():
                tokenizer = str(pretrained)
        self.tokenizer = _tokenizer(tokenizer)
        vocab = getattr(getattr(model, "config", None), "vocab_size", None)
        if isinstance(self.tokenizer, ByteTokenizer) and vocab is not None and vocab > 256:
            raise ValueError(f"a model of {vocab} tokens with the byte tokenizer: pass tokenizer=<the folder of the "
                             "Hugging Face tokenizer it was trained with> (GPT-J's own for a GPT-J)")
        torch_dtype = _DTYPES.get(dtype, dtype) if isinstance(dtype, str) else dtype
        self.model = model.to(self._device, torch_dtype if torch_dtype not in (None, "auto") else None).eval()
        self._max_length = max_length or getattr(getattr(model, "config", None), "n_positions", None) or 2048

    # -- the harness's interface --------------------------------------------------------------------------------
    @property
    def eot_token_id(self) -> int:
        eos = getattr(self.tokenizer, "eos_token_id", None)
        return eos if eos is not None else self.tokenizer.encode("\n")[-1]

    @property
    def max_length(self) -> int:
        return self._max_length

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_device

    @property
    def tokenizer_name(self) -> str:
        return str(getattr(self.tokenizer, "path", type(self.tokenizer).__name__)).replace("/", "__")

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        return list(self.tokenizer.encode(string))

    def tok_decode(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode(list(tokens))

    @torch.no_grad()
    def _loglikelihood_tokens(self, requests: Sequence[tuple[Any, list[int], list[int]]], disable_tqdm: bool = False,
                              **kwargs: Any) -> list[tuple[float, bool]]:
        """``(log-probability of the continuation, whether greedy decoding gives it)`` of each
        ``(key, context ids, continuation ids)``. Longest first in right-padded batches (causal attention never
        sees the padding); an input longer than ``max_length + 1`` tokens loses its oldest ones, as the harness's
        ``hf`` model does."""
        order = sorted(range(len(requests)), key=lambda i: -len(requests[i][1]) - len(requests[i][2]))
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            rows = []
            for i in chunk:
                _, context, continuation = requests[i]
                if not continuation or len(continuation) > self.max_length:
                    raise ValueError(f"a continuation of {len(continuation)} tokens: it must have 1 to "
                                     f"max_length={self.max_length}")
                rows.append(((list(context) + list(continuation))[-(self.max_length + 1):][:-1], continuation))
            inputs = torch.zeros(len(rows), max(len(r) for r, _ in rows), dtype=torch.long)
            for b, (row, _) in enumerate(rows):
                inputs[b, :len(row)] = torch.as_tensor(row)
            logits = self.model(inputs.to(self._device))  # (B, T, V)
            for b, (row, continuation) in enumerate(rows):
                n = len(continuation)
                logp = F.log_softmax(logits[b, len(row) - n:len(row)].float(), dim=-1)  # (n, V)
                wanted = torch.as_tensor(continuation, device=logp.device)
                total = float(logp.gather(-1, wanted[:, None]).sum())
                results[chunk[b]] = (total, bool((logp.argmax(-1) == wanted).all()))
                key = requests[chunk[b]][0]
                if key is not None:
                    self.cache_hook.add_partial("loglikelihood", key, results[chunk[b]])
        return results

    def loglikelihood_rolling(self, requests: Sequence[Instance], disable_tqdm: bool = False) -> list[float]:
        """The log-probability of each whole string, in windows of ``max_length`` tokens (each token predicted
        once, with as much context as fits), the first conditioned on the end-of-text token."""
        windows, owner = [], []
        for index, (string,) in enumerate(req.args for req in requests):
            for context, continuation in map(make_disjoint_window, get_rolling_token_windows(
                    token_list=self.tok_encode(string), prefix_token=self.prefix_token_id,
                    max_seq_len=self.max_length, context_len=1)):
                windows.append((None, context, continuation))
                owner.append(index)
        totals = [0.0] * len(requests)
        for index, (logp, _) in zip(owner, self._loglikelihood_tokens(windows)):
            totals[index] += logp
        for req, total in zip(requests, totals):
            self.cache_hook.add_partial("loglikelihood_rolling", req.args, total)
        return totals

    @torch.no_grad()
    def generate_until(self, requests: Sequence[Instance], disable_tqdm: bool = False) -> list[str]:
        """Continuations (greedy unless ``do_sample``) cut before the first stop string (``until`` and the
        end-of-text text), at most ``max_gen_toks`` (default 256) tokens; requests with the same generation
        arguments share batches."""
        eos = getattr(self.tokenizer, "eos_token_id", None)
        eos_text = self.tok_decode([eos]) if eos is not None else None
        groups: dict[str, list[int]] = {}
        for i, req in enumerate(requests):
            groups.setdefault(json.dumps(req.args[1], sort_keys=True, default=str), []).append(i)
        out: list[str | None] = [None] * len(requests)
        for members in groups.values():
            kwargs = normalize_gen_kwargs(dict(requests[members[0]].args[1]), 256)
            until = handle_stop_sequences(kwargs.pop("until", None), eos=eos_text)
            new_tokens = int(kwargs.pop("max_gen_toks"))
            if new_tokens >= self.max_length:
                raise ValueError(f"max_gen_toks={new_tokens} leaves no room for a context in {self.max_length} "
                                 "positions")
            sampling = dict(temperature=float(kwargs.get("temperature", 0.0)) if kwargs.get("do_sample") else 0.0,
                            top_k=kwargs.get("top_k"), top_p=kwargs.get("top_p"))

            def stopped(ids: torch.Tensor, until: list[str] = until) -> torch.Tensor:
                return torch.tensor([any(s and s in self.tok_decode(row) for s in until) for row in ids.tolist()])

            for start in range(0, len(members), self.batch_size):
                chunk = members[start:start + self.batch_size]
                prompts = [self.tok_encode(requests[i].args[0])[-(self.max_length - new_tokens):] or
                           [self.prefix_token_id] for i in chunk]
                new = generate(self.model, prompts, new_tokens, eos_token_id=eos, stop_when=stopped,
                               use_cache=hasattr(self.model, "h"), **sampling)  # GPTJ's KV cache
                for i, ids in zip(chunk, new):
                    text = self.tok_decode(ids)
                    for stop in until:
                        if stop:
                            text = text.split(stop)[0]
                    out[i] = text
                    self.cache_hook.add_partial("generate_until", requests[i].args, text)
        return out


def _batch_size(value: int | str | None) -> int:
    if value is None:
        return 8
    if isinstance(value, str) and value.startswith("auto"):
        raise ValueError("batch_size auto: the lit_digest model takes a number (--batch_size 8)")
    size = int(value)
    if size < 1:
        raise ValueError(f"batch_size must be >= 1, got {value}")
    return size


def _tokenizer(tokenizer: Any):
    if tokenizer is None or isinstance(tokenizer, str | os.PathLike):
        return load_tokenizer(None if tokenizer is None else str(tokenizer))
    if hasattr(tokenizer, "encode"):
        return tokenizer
    if callable(tokenizer):
        return _EncodeOnly(tokenizer)
    raise TypeError(f"tokenizer={tokenizer!r}: give a tokenizer folder, a tokenizer (encode/decode) or an encode "
                    "function")


# -- our JSONL few-shot format as a harness task -----------------------------------------------------------------
def write_task(jsonl: str | os.PathLike, folder: str | os.PathLike, name: str | None = None,
               shots: str | os.PathLike | None = None) -> Path:
    """A harness task (YAML) for a JSONL file of ``lit_digest.text.gptj.fewshot``'s format, written into
    ``folder``; returns the YAML's path (``--tasks <path>``, or ``--include_path <folder> --tasks <name>``).

    Multiple choice (``context``, ``choices``, ``answer``) gives the harness's ``acc``, ``acc_norm`` (per
    character) and ``acc_bytes`` (per UTF-8 byte: our former ``acc_norm``); completion (``context``, ``target``)
    gives ``acc`` (greedy exact match) and ``perplexity`` (the harness's: per example, not per token). Shots
    (``--num_fewshot``) come from ``shots`` when given, else from the other lines of the same file, each written
    as its context and answer and joined by a blank line, as before.
    """
    from lit_digest.text.gptj.fewshot import read_tasks

    source = Path(jsonl).resolve()
    examples = read_tasks(source)
    if shots is not None:
        read_tasks(shots)  # a malformed shots file names its line now, not inside the harness
    kinds = {bool(e.choices) for e in examples}
    if len(kinds) != 1:
        raise ValueError(f"{source} mixes multiple-choice and completion lines: one kind per task file")
    name = name or source.stem.replace(".", "_")
    files = {"test": str(source)}
    if shots is not None:
        files["train"] = str(Path(shots).resolve())
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "task": name, "dataset_path": "json",
        "dataset_kwargs": {"data_files": files, "cache_dir": str(folder / ".cache")},
        "test_split": "test", "doc_to_text": "{{context}}", "target_delimiter": "", "fewshot_delimiter": "\n\n",
        "metadata": {"version": 1.0, "source": str(source)},
    }
    if shots is not None:
        config["fewshot_split"] = "train"
    if kinds == {True}:
        config.update(output_type="multiple_choice", doc_to_choice="{{choices}}", doc_to_target="answer",
                      metric_list=[{"metric": m, "aggregation": "mean", "higher_is_better": True}
                                   for m in ("acc", "acc_norm", "acc_bytes")])
    else:
        config.update(output_type="loglikelihood", doc_to_target="{{target}}",
                      metric_list=[{"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                                   {"metric": "perplexity", "aggregation": "perplexity", "higher_is_better": False}])
    path = folder / f"{name}.yaml"
    path.write_text(json.dumps(config, indent=2) + "\n")  # JSON is YAML
    return path
