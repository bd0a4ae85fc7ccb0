"""Text: causal language models and their data.

- ``gptj/``: GPT-J (``GPTJ``, ``GPTJConfig``, ``CausalLM``, Hugging Face weights, sampling, few-shot scoring);
- ``harness``: ``LitDigestLM``, the model ``lit_digest`` of EleutherAI's lm-evaluation-harness, and ``lm_eval``,
  its command (``python -m lit_digest.text.lm_eval``); they need the ``eval`` extra and are imported on demand;
- ``data``: byte-level or Hugging Face tokenizers, packed sequences, ``TextDataModule`` (text files) and
  ``CorpusDataModule`` (the shipped Jargon File excerpt, or Debian's fortunes).

The codistillation byte LM and its data stay in ``lit_digest.codistillation`` for now.
"""

from lit_digest.text.data import (
    ByteTokenizer,
    CorpusDataModule,
    HFTokenizer,
    TextDataModule,
    load_tokenizer,
    unigram_bits_per_byte,
)
from lit_digest.text.gptj import GPTJ, PRESETS, CausalLM, GPTJBlock, GPTJConfig, KVCache, generate, load_hf, save_hf

__all__ = ["GPTJ", "GPTJBlock", "GPTJConfig", "PRESETS", "KVCache", "CausalLM", "generate", "load_hf", "save_hf",
           "ByteTokenizer", "HFTokenizer", "load_tokenizer", "TextDataModule", "CorpusDataModule",
           "unigram_bits_per_byte"]
