"""GPT-J's pieces against plain references: the config's checks at their boundaries, the parameter count, rotary
angles and the pair rotation as loops, the KV cache, the causal/padding mask as a loop, dropout and activation
checkpointing."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from lit_digest.text.gptj import GPTJ, GPTJConfig, KVCache
from lit_digest.text.gptj.model import apply_rotary, causal_mask, rotary_angles

TINY = dict(vocab_size=11, n_positions=8, d_model=8, n_layer=2, n_head=2, rotary_dim=2)


@pytest.mark.parametrize("name", ["vocab_size", "n_positions", "d_model", "n_layer", "n_head"])
def test_each_size_must_be_at_least_one(name):
    with pytest.raises(ValueError, match=f"GPTJConfig.{name} must be >= 1, got 0"):
        GPTJConfig(**{**TINY, name: 0})


def test_the_config_accepts_its_boundaries_and_names_what_is_wrong():
    smallest = GPTJConfig(vocab_size=1, n_positions=1, d_model=2, n_layer=1, n_head=1, rotary_dim=2, d_ff=1)
    assert (smallest.head_dim, smallest.rotary, smallest.ff_dim) == (2, 2, 1)
    assert GPTJConfig(**{**TINY, "rotary_dim": 4}).rotary == 4  # the whole head of 4
    assert GPTJConfig(**{**TINY, "rotary_dim": None}).rotary == 4
    assert GPTJConfig(**{**TINY, "d_model": 6, "n_head": 2, "rotary_dim": 2}).head_dim == 3  # odd head, 2 rotated
    assert GPTJConfig(**{**TINY, "d_ff": None}).ff_dim == 32 and GPTJConfig(**{**TINY, "d_ff": 5}).ff_dim == 5
    for rotary in (0, 6, -2):
        with pytest.raises(ValueError, match=r"rotary_dim must be even and in \(0, head_dim=4\]"):
            GPTJConfig(**{**TINY, "rotary_dim": rotary})
    with pytest.raises(ValueError, match="full rotary needs an even head_dim, got 3"):
        GPTJConfig(**{**TINY, "d_model": 6, "n_head": 2, "rotary_dim": None})
    with pytest.raises(ValueError, match="block must be 'parallel' or 'sequential', got 'serial'"):
        GPTJConfig(**{**TINY, "block": "serial"})
    assert GPTJConfig(**{**TINY, "block": "sequential"}).block == "sequential"
    for dropout in (-0.1, 1.0):
        with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
            GPTJConfig(**{**TINY, "dropout": dropout})
    assert GPTJConfig(**{**TINY, "dropout": 0.0}).dropout == 0.0
    with pytest.raises(ValueError, match="d_model=9 is not divisible by n_head=2"):
        GPTJConfig(**{**TINY, "d_model": 9})


@pytest.mark.parametrize("overrides", [{}, {"d_ff": 5}, {"block": "sequential", "d_ff": 7}])
def test_the_parameter_count_is_the_built_models(overrides):
    config = GPTJConfig(**{**TINY, **overrides})
    model = GPTJ(config)
    assert config.num_parameters() == sum(p.numel() for p in model.parameters())
    assert model.h[0].mlp.fc_in.weight.shape == (config.ff_dim, 8)
    # by hand for the default: embedding 11*8; per block ln 16, attention 4*64, MLP 8*32+32 + 32*8+8; ln_f 16;
    # head 8*11+11
    if not overrides:
        assert config.num_parameters() == 88 + 2 * (16 + 256 + 288 + 264) + 16 + 99


def test_rotary_angles_and_the_pair_rotation_are_plain_loops():
    positions = torch.tensor([[0, 3, 1000], [7, 2, 5]])
    dim = 6
    sin, cos = rotary_angles(positions, dim)
    assert sin.dtype == torch.float32 and sin.shape == (2, 3, 3)
    for b in range(2):
        for t in range(3):
            for i in range(3):
                angle = positions[b, t].item() * 10000.0 ** (-2 * i / dim)
                assert sin[b, t, i].item() == pytest.approx(math.sin(angle), abs=2e-4)
                assert cos[b, t, i].item() == pytest.approx(math.cos(angle), abs=2e-4)
    s2, c2 = rotary_angles(positions, dim, base=100.0)
    assert c2[0, 1, 1].item() == pytest.approx(math.cos(3 * 100.0 ** (-2 / 6)), abs=1e-5)
    x = torch.randn(2, 3, 2, dim, dtype=torch.float64)
    got = apply_rotary(x, sin, cos)
    assert got.dtype == torch.float64
    for b in range(2):
        for t in range(3):
            for h in range(2):
                for i in range(3):
                    x0, x1 = x[b, t, h, 2 * i].item(), x[b, t, h, 2 * i + 1].item()
                    s, c = sin[b, t, i].item(), cos[b, t, i].item()
                    assert got[b, t, h, 2 * i].item() == pytest.approx(x0 * c - x1 * s, abs=1e-6)
                    assert got[b, t, h, 2 * i + 1].item() == pytest.approx(x1 * c + x0 * s, abs=1e-6)


def test_the_kv_cache_appends_along_time_and_keeps_rows():
    cache = KVCache(2)
    assert cache.length == 0
    k1, v1 = torch.randn(3, 2, 4, 5), torch.randn(3, 2, 4, 5)
    k2, v2 = torch.randn(3, 2, 1, 5), torch.randn(3, 2, 1, 5)
    cache.update(0, k1, v1)
    k, v = cache.update(0, k2, v2)
    assert cache.length == 5
    assert torch.equal(k, torch.cat([k1, k2], 2)) and torch.equal(v, torch.cat([v1, v2], 2))
    cache.update(1, k1, v1)
    cache.reorder(torch.tensor([2, 0]))
    assert torch.equal(cache.keys[0], torch.cat([k1, k2], 2)[[2, 0]])
    assert torch.equal(cache.values[0], torch.cat([v1, v2], 2)[[2, 0]])
    assert torch.equal(cache.keys[1], k1[[2, 0]]) and torch.equal(cache.values[1], v1[[2, 0]])


def test_the_mask_is_causal_hides_padding_and_always_shows_the_query_itself():
    assert causal_mask(4, 0, None, torch.device("cpu")) is None
    padding = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [1, 0, 1, 0, 1]])
    for past, T, attention in ((0, 5, padding), (2, 3, padding), (3, 2, None)):
        mask = causal_mask(T, past, attention, torch.device("cpu"))
        assert mask.dtype == torch.bool and mask.shape == (1 if attention is None else 3, 1, T, past + T)
        for b in range(mask.shape[0]):
            for t in range(T):
                for j in range(past + T):
                    visible = j <= past + t and (attention is None or bool(attention[b, j]))
                    assert mask[b, 0, t, j].item() == (visible or j == past + t), (past, b, t, j)
    with pytest.raises(ValueError, match="attention_mask covers 5 positions, not past \\+ new = 4"):
        causal_mask(2, 2, padding, torch.device("cpu"))


def test_the_context_holds_exactly_n_positions():
    model = GPTJ(GPTJConfig(**TINY)).eval()
    assert model(torch.zeros(1, 8, dtype=torch.long)).shape == (1, 8, 11)
    cache = KVCache(2)
    model(torch.zeros(1, 6, dtype=torch.long), cache)
    with pytest.raises(ValueError, match="9 positions, more than the model's n_positions=8"):
        model(torch.zeros(1, 3, dtype=torch.long), cache)


def test_dropout_acts_in_training_only_and_checkpointing_keeps_the_gradients():
    torch.manual_seed(0)
    tokens = torch.randint(0, 11, (2, 6))
    model = GPTJ(GPTJConfig(**TINY, dropout=0.5))
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(tokens), model(tokens))
        model.train()
        assert not torch.allclose(model(tokens), model(tokens))
    plain = GPTJ(GPTJConfig(**TINY)).train()
    plain.h[0].mlp.fc_out.bias.data.normal_()  # away from the zero init, so that every path carries a gradient
    plain(tokens).sum().backward()
    grads = [p.grad.clone() for p in plain.parameters()]
    plain.zero_grad()
    plain.activation_checkpointing = True
    plain(tokens).sum().backward()
    for g, p in zip(grads, plain.parameters()):
        torch.testing.assert_close(p.grad, g)


def test_the_sequential_block_is_gpt2_s_and_a_partial_cache_reorders():
    torch.manual_seed(0)
    block = GPTJ(GPTJConfig(**TINY, block="sequential")).h[0].eval()
    with torch.no_grad():
        block.ln_2.weight.uniform_(0.5, 1.5)  # ln_2 apart from ln_1
        x = torch.randn(2, 5, 8)
        sin, cos = rotary_angles(torch.arange(5).expand(2, 5), 2)
        mid = x + block.attn(block.ln_1(x), sin, cos, None, None)
        torch.testing.assert_close(block(x, sin, cos, None, None), mid + block.mlp(block.ln_2(mid)))
    cache = KVCache(2)  # only layer 0 filled so far
    k = torch.randn(3, 2, 4, 5)
    cache.update(0, k, k + 1)
    cache.reorder(torch.tensor([1]))
    assert cache.keys[1] is None and cache.values[1] is None
    assert torch.equal(cache.keys[0], k[[1]]) and torch.equal(cache.values[0], k[[1]] + 1)


def test_reset_parameters_draws_every_layer_anew():
    torch.manual_seed(0)
    model = GPTJ(GPTJConfig(vocab_size=64, n_positions=8, d_model=64, n_layer=2, n_head=2, rotary_dim=2))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(3.0)
    model.reset_parameters()
    for name, p in model.named_parameters():
        if name.endswith("bias") or ".ln" in f".{name}":
            want = 1.0 if name.endswith("weight") else 0.0  # LayerNorm gains 1, every bias 0
            assert torch.all(p == want), name
        else:
            assert p.std().item() < 0.2 and p.abs().max().item() < 1.0, name  # a fresh truncated normal


def test_layer_norm_eps_position_ids_and_the_defaults_reach_the_layers():
    config = GPTJConfig(**TINY, block="sequential", layer_norm_eps=0.25)
    model = GPTJ(config).eval()
    assert model.h[0].ln_1.eps == model.h[0].ln_2.eps == model.ln_f.eps == 0.25
    assert model.activation_checkpointing is False  # recomputation is opt-in
    tokens = torch.randint(0, 11, (2, 4), generator=torch.Generator().manual_seed(0))
    later = torch.tensor([0, 2, 5, 6]).expand(2, 4)  # gaps: relative positions change (a shift would not)
    with torch.no_grad():
        torch.testing.assert_close(model(tokens, position_ids=later), model.lm_head(model.hidden_states(
            tokens, position_ids=later)))
        assert not torch.allclose(model(tokens, position_ids=later), model(tokens))
    torch.manual_seed(0)
    wide = GPTJ(GPTJConfig(vocab_size=11, n_positions=8, d_model=256, n_layer=4, n_head=2, rotary_dim=2))
    std = 2 / 4 / 256**0.5  # fc_out: init_scale 2 / layers, as out_proj
    assert math.isclose(float(wide.h[0].mlp.fc_out.weight.std()), std, rel_tol=0.05)


def test_the_rotation_keeps_a_low_precision_input_s_dtype():
    sin, cos = rotary_angles(torch.tensor([[1, 4]]), 4)  # float32
    x = torch.randn(1, 2, 3, 4, dtype=torch.float64)
    for dtype in (torch.bfloat16, torch.float16):
        got = apply_rotary(x.to(dtype), sin, cos)
        assert got.dtype == dtype
        torch.testing.assert_close(got.double(), apply_rotary(x, sin, cos), atol=0.05, rtol=0.05)


def test_rotary_angles_are_float32_whatever_the_default_dtype():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        sin, cos = rotary_angles(torch.tensor([[0, 3, 1000]]), 6)
    finally:
        torch.set_default_dtype(previous)
    assert sin.dtype == cos.dtype == torch.float32


@pytest.mark.parametrize("block", ["parallel", "sequential"])
def test_left_padding_and_a_cache_give_the_unpadded_uncached_logits(block):
    torch.manual_seed(0)
    model = GPTJ(GPTJConfig(**TINY, block=block)).eval()
    tokens = torch.randint(0, 11, (2, 6))
    with torch.no_grad():
        full = model(tokens)  # (2, 6, V), no padding, no cache
        # row 0 left-padded by 2 arbitrary tokens, positions counting real tokens only
        padded = torch.stack([torch.cat([torch.tensor([7, 3]), tokens[0, :4]]), tokens[1]])
        mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
        positions = (mask.cumsum(1) - 1).clamp_min(0)
        got = model(padded, attention_mask=mask, position_ids=positions)
        torch.testing.assert_close(got[0, 2:], model(tokens[:1, :4])[0])
        torch.testing.assert_close(got[1], full[1])
        # the first 4 tokens, then 2 more through the cache (with and without a padding mask)
        cache = KVCache(2)
        model(tokens[:, :4], cache)
        assert cache.length == 4
        torch.testing.assert_close(model(tokens[:, 4:], cache), full[:, 4:])
        assert cache.length == 6
        cache = KVCache(2)
        model(padded[:, :4], cache, attention_mask=mask[:, :4], position_ids=positions[:, :4])
        later = model(padded[:, 4:], cache, attention_mask=mask, position_ids=positions[:, 4:])
        torch.testing.assert_close(later, got[:, 4:])


def _block_calls(model: GPTJ, run) -> int:
    calls = []
    hooks = [b.register_forward_pre_hook(lambda *_: calls.append(1)) for b in model.h]
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    return len(calls)


def test_checkpointing_recomputes_only_when_asked_in_training_and_keeps_mask_cache_and_gradients():
    torch.manual_seed(0)
    model = GPTJ(GPTJConfig(**TINY))
    model.h[0].mlp.fc_out.bias.data.normal_()  # away from the zero init, so that every path carries a gradient
    tokens = torch.randint(0, 11, (2, 5))
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    params = list(model.parameters())

    def loss_and_grads(cache=None):
        out = model(tokens, cache, attention_mask=mask)
        return out, torch.autograd.grad(out.square().sum(), params)  # a reentrant checkpoint refuses autograd.grad

    def backward():
        model(tokens, attention_mask=mask).sum().backward()

    # each block runs once per step, twice (forward and recomputation) only with checkpointing in training
    for checkpointing, training, calls in ((False, True, 2), (True, False, 2), (True, True, 4)):
        model.activation_checkpointing = checkpointing
        model.train(training)
        assert _block_calls(model, backward) == calls, (checkpointing, training)
    model.train()
    model.activation_checkpointing = False
    want, want_grads = loss_and_grads()
    model.activation_checkpointing = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. checkpoint's warning without an explicit use_reentrant
        got, grads = loss_and_grads()
        torch.testing.assert_close(got, want)  # the padding mask reaches the checkpointed blocks
        for g, w in zip(grads, want_grads):
            torch.testing.assert_close(g, w)
        # with a cache: filled once, the same outputs and gradients (the recomputation used to append again)
        cache = KVCache(2)
        got, grads = loss_and_grads(cache)
    assert cache.length == 5 and all(k.shape[2] == 5 for k in cache.keys)
    torch.testing.assert_close(got, want)
    for g, w in zip(grads, want_grads):
        torch.testing.assert_close(g, w)
