"""GPT-J (Wang and Komatsuzaki, 2021; mesh-transformer-jax; Hugging Face ``GPTJForCausalLM``).

- ``model``: ``GPTJConfig`` (sizes and presets), ``GPTJ`` (parallel block, interleaved rotary, KV cache);
- ``sampling``: temperature / top-k / top-p, ``generate`` with or without the cache;
- ``hf``: weights to and from a Hugging Face GPT-J state dict or folder;
- ``module``: ``CausalLM``, the LightningModule (AdamW + warmup + cosine to 10%, z-loss, bits per byte, samples);
- ``memory``: the per-device memory estimate printed at the start of training;
- ``fewshot``: k-shot multiple-choice / completion scoring of our JSONL format from Python, a thin front of the
  lm-evaluation-harness adapter (``lit_digest.text.harness``; the command is ``python -m lit_digest.text.lm_eval``);
- ``compare``: the docs' measurement (``python -m lit_digest.text.gptj.compare``).
"""

from lit_digest.text.gptj.hf import load_hf, save_hf, state_dict_from_hf, state_dict_to_hf
from lit_digest.text.gptj.memory import estimate_memory
from lit_digest.text.gptj.model import GPTJ, PRESETS, GPTJBlock, GPTJConfig, KVCache
from lit_digest.text.gptj.module import CausalLM, lm_loss
from lit_digest.text.gptj.sampling import filter_logits, generate

__all__ = ["GPTJ", "GPTJBlock", "GPTJConfig", "PRESETS", "KVCache", "CausalLM", "lm_loss", "generate",
           "filter_logits", "load_hf", "save_hf", "state_dict_from_hf", "state_dict_to_hf", "estimate_memory"]
