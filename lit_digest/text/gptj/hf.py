"""GPT-J weights to and from Hugging Face's ``GPTJForCausalLM`` layout, so that a user with the real weights on disk
(e.g. ``EleutherAI/gpt-j-6b`` downloaded once) can fine-tune them here and hand them back.

The names differ only by the ``transformer.`` prefix of everything but ``lm_head``. A checkpoint folder is the
one ``save_pretrained`` writes: ``config.json`` and ``model.safetensors`` or ``pytorch_model.bin``, or their
sharded form with a ``*.index.json``. Nothing here needs ``transformers`` installed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from lit_digest.core.download import missing_data_error
from lit_digest.text.gptj.model import GPTJ, GPTJConfig

__all__ = ["config_from_hf", "config_to_hf", "state_dict_from_hf", "state_dict_to_hf", "read_hf_folder",
           "load_hf", "save_hf"]

# Buffers that some transformers versions saved with the weights: the causal mask and the rotary table.
_HF_BUFFERS = (".attn.bias", ".attn.masked_bias", ".attn.embed_positions")


def config_from_hf(hf: Mapping) -> GPTJConfig:
    """Our ``GPTJConfig`` from a GPT-J ``config.json`` (a dict)."""
    if hf.get("model_type", "gptj") != "gptj":
        raise ValueError(f"not a GPT-J config: model_type={hf.get('model_type')!r}")
    activation = hf.get("activation_function", "gelu_new")
    if activation not in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        raise ValueError(f"GPT-J here uses the tanh GELU; this config asks for activation_function={activation!r}")
    return GPTJConfig(vocab_size=hf.get("vocab_size", 50400), n_positions=hf.get("n_positions", 2048),
                      d_model=hf.get("n_embd", 4096), n_layer=hf.get("n_layer", 28), n_head=hf.get("n_head", 16),
                      rotary_dim=hf.get("rotary_dim", 64), d_ff=hf.get("n_inner"),
                      layer_norm_eps=hf.get("layer_norm_epsilon", 1e-5))


def config_to_hf(cfg: GPTJConfig) -> dict:
    """A ``config.json`` dict that ``transformers.GPTJConfig`` reads."""
    if cfg.block != "parallel":
        raise ValueError("only the parallel block is GPT-J: a 'sequential' model has no Hugging Face GPT-J form")
    eos = 50256 if cfg.vocab_size > 50256 else None  # GPT-2's <|endoftext|>; a byte-level model has none
    return {"architectures": ["GPTJForCausalLM"], "model_type": "gptj", "vocab_size": cfg.vocab_size,
            "n_positions": cfg.n_positions, "n_embd": cfg.d_model, "n_layer": cfg.n_layer, "n_head": cfg.n_head,
            "rotary_dim": cfg.rotary, "n_inner": cfg.d_ff, "activation_function": "gelu_new",
            "layer_norm_epsilon": cfg.layer_norm_eps, "resid_pdrop": cfg.dropout, "embd_pdrop": cfg.dropout,
            "attn_pdrop": 0.0, "tie_word_embeddings": False, "bos_token_id": eos, "eos_token_id": eos}


def state_dict_from_hf(hf: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Hugging Face GPT-J names to ours (``transformer.h.0.attn.q_proj.weight`` -> ``h.0.attn.q_proj.weight``);
    saved buffers dropped; an unknown name raises."""
    out, unknown = {}, []
    for name, tensor in hf.items():
        if name.endswith(_HF_BUFFERS):
            continue
        if name.startswith("transformer."):
            out[name[len("transformer."):]] = tensor
        elif name.startswith("lm_head."):
            out[name] = tensor
        else:
            unknown.append(name)
    if unknown:
        raise ValueError(f"not GPT-J weights: unexpected names {unknown[:5]}{' ...' if len(unknown) > 5 else ''}")
    return out


def state_dict_to_hf(ours: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Our names to Hugging Face's (the inverse of ``state_dict_from_hf``)."""
    return {(k if k.startswith("lm_head.") else f"transformer.{k}"): v for k, v in ours.items()}


def _read_weights(file: Path) -> dict[str, Tensor]:
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(file))
    return torch.load(file, map_location="cpu", weights_only=True)


def read_hf_folder(path: str | os.PathLike) -> tuple[dict, dict[str, Tensor]]:
    """``(config.json as a dict, Hugging Face state dict)`` of a ``save_pretrained`` folder."""
    folder = Path(path).expanduser()
    fix = ("point model.init_args.pretrained at a folder holding config.json and model.safetensors / "
           "pytorch_model.bin (e.g. a local copy of EleutherAI/gpt-j-6b)")
    if not (folder / "config.json").is_file():
        raise missing_data_error("GPT-J checkpoint (config.json)", folder, fix=fix)
    config = json.loads((folder / "config.json").read_text())
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return config, _read_weights(folder / name)
        index = folder / f"{name}.index.json"
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            weights: dict[str, Tensor] = {}
            for shard in shards:
                weights.update(_read_weights(folder / shard))
            return config, weights
    raise missing_data_error("GPT-J weights (model.safetensors or pytorch_model.bin)", folder, fix=fix)


def load_hf(source: str | os.PathLike | Mapping[str, Tensor], config: GPTJConfig | None = None,
            dtype: torch.dtype | None = None) -> GPTJ:
    """Our ``GPTJ`` with the weights of a Hugging Face folder (its config.json gives the sizes) or state dict
    (``config`` then gives them). Shapes are checked name by name; every weight must be there."""
    if isinstance(source, Mapping):
        if config is None:
            raise ValueError("load_hf(state_dict) needs the model's GPTJConfig")
        weights = dict(source)
    else:
        hf_config, weights = read_hf_folder(source)
        config = config_from_hf(hf_config) if config is None else config
    with torch.device("meta"):
        model = GPTJ(config)
    model.load_state_dict(checked_state_dict(model, state_dict_from_hf(weights)), assign=True)
    return model if dtype is None else model.to(dtype)


def checked_state_dict(model: GPTJ, weights: dict[str, Tensor]) -> dict[str, Tensor]:
    """``weights`` if they have exactly ``model``'s names and shapes; otherwise a ValueError naming the first
    differences."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    shapes = [f"{k}: {tuple(weights[k].shape)} vs {expected[k]}" for k in expected
              if k in weights and tuple(weights[k].shape) != expected[k]]
    if missing or extra or shapes:
        raise ValueError(f"the weights do not fit {model.config}: missing {missing[:4]}, unexpected {extra[:4]}, "
                         f"shapes (weights vs model) {shapes[:4]}")
    return weights


def save_hf(model: GPTJ, path: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
    """Write ``model`` as a Hugging Face GPT-J folder (config.json + model.safetensors) that
    ``GPTJForCausalLM.from_pretrained(path)`` loads."""
    from safetensors.torch import save_file

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    config = config_to_hf(model.config)
    weights = state_dict_to_hf(model.state_dict())
    weights = {k: (v if dtype is None else v.to(dtype)).detach().cpu().contiguous() for k, v in weights.items()}
    if dtype is not None:
        config["torch_dtype"] = str(dtype).removeprefix("torch.")
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder
