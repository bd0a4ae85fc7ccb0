"""CausalLM: the loss, GPT-J's optimiser and schedule, a short run beats the unigram baseline, pretrained Hugging
Face weights in and Lightning checkpoints out, activation checkpointing, samples and predictions."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from lit_digest.core.lightning import Callback, pl, seed_everything
from lit_digest.core.optim import Optim
from lit_digest.text import PRESETS, CausalLM, CorpusDataModule, GPTJConfig, save_hf
from lit_digest.text.gptj import GPTJ, estimate_memory, lm_loss

TINY = GPTJConfig.preset("tiny")
FAST = Optim(name="adamw", lr=3e-3, weight_decay=0.1, warmup_steps=5, final_lr_ratio=0.1)


def small_data(**kwargs) -> CorpusDataModule:
    return CorpusDataModule(**{"seq_len": 48, "batch_size": 8, "max_bytes": 60_000, **kwargs})


def test_loss_is_cross_entropy_and_the_z_term_is_mesh_transformer_jaxs():
    logits = torch.randn(2, 5, 11, requires_grad=True)
    targets = torch.randint(0, 11, (2, 5))
    loss, z = lm_loss(logits, targets)
    torch.testing.assert_close(loss, F.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1)))
    # ProjectionShard.loss: logits -= stop_gradient(max); 1e-4 * square(log(sum(exp(logits))))
    shifted = logits - logits.detach().amax(-1, keepdim=True)
    expected = torch.log(torch.exp(shifted).sum(-1)).square().mean()
    torch.testing.assert_close(z, expected)
    (grad,) = torch.autograd.grad(z, logits)
    (expected_grad,) = torch.autograd.grad(expected, logits)
    torch.testing.assert_close(grad, expected_grad)  # the maximum carries no gradient
    _, z_shifted = lm_loss(logits.detach() + 7.0, targets)
    torch.testing.assert_close(z_shifted, z.detach())  # unchanged by a constant shift of the logits


def test_defaults_are_the_small_preset_with_gptjs_optimiser_and_6b_is_explicit(capsys):
    lm = CausalLM()
    assert lm.config == PRESETS["small"] and lm.model is None  # nothing allocated before configure_model
    assert capsys.readouterr().err == ""
    six_b = CausalLM(preset="6b")
    assert six_b.config == GPTJConfig() and six_b.model is None
    err = capsys.readouterr().err
    assert "large GPT-J (the 6b preset)" in err and "6.05 B parameters" in err and "GiB" in err
    with pytest.raises(ValueError, match="preset must be one of"):
        CausalLM(preset="7b")
    o = lm.optim
    assert (o.name, o.lr, o.weight_decay, o.betas, o.warmup_steps, o.final_lr_ratio) == (
        "adamw", 1.2e-4, 0.1, (0.9, 0.999), 3000, 0.1)
    assert lm.hparams.z_loss == 1e-4


def test_short_run_beats_the_unigram_baseline_with_gptj_schedule(quiet_trainer):
    seed_everything(0)
    data = small_data()
    lm = CausalLM(model=TINY, optim=FAST, samples=1, max_new_tokens=16, memory_report=False)
    lrs = []

    class LR(Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            lrs.append([g["lr"] for g in trainer.optimizers[0].param_groups])

    trainer = quiet_trainer(max_steps=120, val_check_interval=120, limit_val_batches=8, gradient_clip_val=1.0,
                            callbacks=[LR()])
    trainer.fit(lm, data)
    bpb, unigram = float(trainer.callback_metrics["val/bpb"]), data.unigram_bits_per_byte()
    assert bpb < unigram - 0.4, (bpb, unigram)
    assert float(trainer.callback_metrics["val/ppl"]) == pytest.approx(
        math.exp(float(trainer.callback_metrics["val/loss"])), rel=1e-4)
    opt = trainer.optimizers[0]
    assert isinstance(opt, torch.optim.AdamW)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    peak = FAST.lr
    assert lrs[0][0] == 0.0 and lrs[5][0] == pytest.approx(peak)  # linear warmup over 5 steps
    assert lrs[-1][0] == pytest.approx(0.1 * peak, rel=0.02)  # cosine down to 10%
    assert len(lm.last_samples) == 1 and lm.last_samples[0].startswith("The ")


def test_samples_go_to_wandb_as_text(quiet_trainer, monkeypatch, tmp_path):
    logged = []
    monkeypatch.setattr(pl.loggers.WandbLogger, "log_text", lambda self, key, **kw: logged.append((key, kw)))
    logger = pl.loggers.WandbLogger(mode="disabled", save_dir=str(tmp_path))
    lm = CausalLM(model=TINY, optim=FAST, samples=2, max_new_tokens=4, memory_report=False)
    trainer = quiet_trainer(max_steps=2, limit_train_batches=2, limit_val_batches=1, logger=logger)
    trainer.fit(lm, small_data(prompts=["hacker: "]))
    key, kw = logged[-1]
    assert key == "samples" and kw["columns"] == ["step", "text"] and len(kw["data"]) == 2
    assert all(text.startswith("hacker: ") for _, text in kw["data"])


def test_predict_continues_the_prompts_and_writes_them(quiet_trainer, tmp_path, capsys):
    lm = CausalLM(model=TINY, samples=0, max_new_tokens=5, top_k=3, memory_report=False)
    out = quiet_trainer().predict(lm, small_data(prompts=["a", "bc", "def"], batch_size=2))
    rows = [r for batch in out for r in batch]
    assert [r["prompt"] for r in rows] == ["a", "bc", "def"]
    assert all(len(r["tokens"]) == 5 and isinstance(r["completion"], str) for r in rows)
    written = tmp_path / "completions.jsonl"
    assert f"lit_digest: wrote 3 completions to {written}" in capsys.readouterr().out
    lines = [json.loads(line) for line in written.read_text().splitlines()]
    assert lines == rows
    quiet_trainer().predict(lm, small_data(prompts=["a", "bc", "def"], batch_size=2))
    assert [json.loads(line) for line in written.read_text().splitlines()] == lines  # seeded: a rerun agrees


def test_pretrained_weights_are_loaded_then_checkpoints_need_no_folder(quiet_trainer, tmp_path):
    torch.manual_seed(3)
    source = GPTJ(TINY)
    folder = save_hf(source, tmp_path / "hf")
    seen = {}

    class AtStart(Callback):
        def on_fit_start(self, trainer, module):
            seen.update({k: v.clone() for k, v in module.model.state_dict().items()})

    lm = CausalLM(model=TINY, pretrained=str(folder), optim=FAST, samples=0, memory_report=False)
    trainer = quiet_trainer(max_steps=3, limit_val_batches=1, callbacks=[AtStart()])
    trainer.fit(lm, small_data())
    assert all(torch.equal(seen[k], v) for k, v in source.state_dict().items())
    trainer.save_checkpoint(tmp_path / "lm.ckpt")
    (folder / "model.safetensors").unlink()  # a finished run's checkpoint stands alone
    loaded = CausalLM.load_from_checkpoint(tmp_path / "lm.ckpt")  # weights_only: the hparams are safe globals
    for name, value in lm.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], value), name
    other = CausalLM(model=GPTJConfig.preset("tiny", n_layer=3), pretrained=str(folder), samples=0)
    save_hf(source, folder)
    with pytest.raises(ValueError, match="does not match the sizes"):
        quiet_trainer(max_steps=1).fit(other, small_data())


def test_a_tokenizer_larger_than_the_vocabulary_is_refused(quiet_trainer):
    lm = CausalLM(model=GPTJConfig.preset("tiny", vocab_size=100), samples=0)
    with pytest.raises(ValueError, match="vocab_size >= 256"):
        quiet_trainer(max_steps=1).fit(lm, small_data())


def test_activation_checkpointing_changes_memory_not_maths():
    torch.manual_seed(0)
    plain = GPTJ(TINY).train()
    ckpt = GPTJ(TINY).train()
    ckpt.load_state_dict(plain.state_dict())
    ckpt.activation_checkpointing = True
    x = torch.randint(0, 256, (2, 16))
    grads = []
    for model in (plain, ckpt):
        loss, _ = lm_loss(model(x[:, :-1]), x[:, 1:])
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(grads[0], grads[1])


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="top_p"):
        CausalLM(model=TINY, top_p=1.5)
    with pytest.raises(ValueError, match="z_loss"):
        CausalLM(model=TINY, z_loss=-1.0)


def test_memory_estimate_is_printed_when_training_starts(quiet_trainer, capsys):
    six_b = GPTJConfig()
    alone = estimate_memory(six_b, batch_size=1, seq_len=2048)
    assert alone.weights + alone.gradients + alone.optimizer == 16 * six_b.num_parameters()  # ZeRO's 16 B/param
    eight = estimate_memory(six_b, batch_size=4, seq_len=2048, shards=8, activation_checkpointing=True)
    assert eight.optimizer == alone.optimizer / 8 and eight.gathered > 0 and 15 * 2**30 < eight.total < 25 * 2**30
    lm = CausalLM(model=TINY, optim=FAST, samples=0)
    quiet_trainer(max_steps=1, limit_val_batches=0).fit(lm, small_data())
    out = capsys.readouterr().out
    assert "GPT-J memory estimate per device" in out and "SingleDeviceStrategy over 1 process(es)" in out


def test_half_precision_weights_train_in_float32(quiet_trainer, tmp_path):
    folder = save_hf(GPTJ(TINY), tmp_path / "hf16", dtype=torch.float16)  # as EleutherAI's float16 branch
    lm = CausalLM(model=TINY, pretrained=str(folder), optim=FAST, samples=0, memory_report=False)
    quiet_trainer(max_steps=1, limit_val_batches=0).fit(lm, small_data())
    assert {p.dtype for p in lm.model.parameters()} == {torch.float32}  # AdamW on fp32 master weights


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_docs_comparison_runs_end_to_end(capsys, tmp_path, monkeypatch):
    from lit_digest.text.gptj.compare import main

    monkeypatch.setenv("WANDB_MODE", "disabled")
    rows = main(["--corpus", "jargon", "--steps", "3", "--batch-size", "2", "--seq-len", "32",
                 "--val-fraction", "0.01", "--out", str(tmp_path)])
    assert [r["model"].split(" ")[0] for r in rows] == ["unigram", "GPT-J,", "GPT-J", "sequential", "full"]
    assert len({r["params"] for r in rows[2:]}) == 2  # the sequential block adds one LayerNorm a layer, no more
    assert "| full rotary | 856,064 |" in capsys.readouterr().out
    folder = next((tmp_path / "gptj").iterdir())
    result = json.loads((folder / "results.json").read_text())
    assert set(result["numbers"]) == {"unigram_bpb", "untrained_bpb", "gptj_bpb", "sequential_bpb", "full_rotary_bpb",
                                      "gptj_bpb_std", "sequential_bpb_std", "full_rotary_bpb_std"}
    assert result["settings"]["steps"] == 3 and (folder / "plot.png").stat().st_size > 10_000
