"""CausalLM's validation numbers through torchmetrics: ``val/ppl`` equals torchmetrics' ``Perplexity`` over every
validation token (batches of unequal size included), ``val/loss`` its log and ``val/bpb`` that in bits per byte."""

from __future__ import annotations

import math

import pytest
import torch
from torchmetrics.text import Perplexity

from lit_digest.text import CausalLM, CorpusDataModule, GPTJConfig


def test_validation_perplexity_is_torchmetrics_perplexity_over_every_token(quiet_trainer):
    torch.manual_seed(0)
    lm = CausalLM(model=GPTJConfig.preset("tiny"), samples=0, memory_report=False)
    data = CorpusDataModule(seq_len=32, batch_size=5, max_bytes=12_000)  # 37 windows: the last batch has 2
    trainer = quiet_trainer()
    trainer.validate(lm, data, verbose=False)
    reference = Perplexity()
    with torch.no_grad():
        for tokens, targets in data.val_dataloader():
            reference.update(lm(tokens).float(), targets)
    ppl = float(reference.compute())
    metrics = trainer.callback_metrics
    assert float(metrics["val/ppl"]) == pytest.approx(ppl, rel=1e-5)
    assert float(metrics["val/loss"]) == pytest.approx(math.log(ppl), rel=1e-5)
    assert float(metrics["val/bpb"]) == pytest.approx(math.log2(ppl) / data.bytes_per_token, rel=1e-5)
    assert len(data.val_dataloader().dataset) % 5 != 0  # the uneven batch is there
