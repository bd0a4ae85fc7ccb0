"""GPT-J against Hugging Face's GPTJForCausalLM (tiny random configs, no download): same logits, with and without
the KV cache, same generation; the weight map both ways; the architecture's defining properties."""

from __future__ import annotations

import math

import pytest
import torch

from lit_digest.text.gptj import GPTJ, GPTJConfig, KVCache, generate, load_hf, save_hf, state_dict_to_hf
from lit_digest.text.gptj.model import apply_rotary, rotary_angles
from lit_digest.text.gptj.sampling import filter_logits, sample_next

transformers = pytest.importorskip("transformers")

SIZES = dict(vocab_size=101, n_positions=64, d_model=48, n_layer=3, n_head=4, rotary_dim=6)


def hf_model(seed: int = 0, **overrides):
    """A random HF GPT-J with weights larger than its 0.02 default, so that attention is far from uniform."""
    sizes = {**SIZES, **overrides}
    config = transformers.GPTJConfig(vocab_size=sizes["vocab_size"], n_positions=sizes["n_positions"],
                                     n_embd=sizes["d_model"], n_layer=sizes["n_layer"], n_head=sizes["n_head"],
                                     rotary_dim=sizes["rotary_dim"], initializer_range=0.15, bos_token_id=None,
                                     eos_token_id=None, attn_implementation="eager")
    torch.manual_seed(seed)
    model = transformers.GPTJForCausalLM(config).eval()
    with torch.no_grad():  # LayerNorms and biases off their (1, 0) init too
        for name, p in model.named_parameters():
            if name.endswith(("ln_1.weight", "ln_f.weight")):
                p.uniform_(0.5, 1.5)
            elif name.endswith("bias"):
                p.normal_(0, 0.1)
    return model, GPTJConfig(**sizes)


@pytest.fixture(scope="module")
def pair():
    hf, config = hf_model()
    return hf, load_hf(hf.state_dict(), config).eval()


def tokens(batch: int = 3, length: int = 40, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, SIZES["vocab_size"], (batch, length), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def test_logits_equal_hugging_face(pair):
    hf, ours = pair
    x = tokens()
    expected = hf(x).logits
    assert expected.std() > 1.0  # far from a constant output
    assert (ours(x) - expected).abs().max() < 1e-5


@torch.no_grad()
def test_kv_cache_equals_no_cache_and_hugging_face(pair):
    hf, ours = pair
    x = tokens()
    full = hf(x).logits
    cache = KVCache(SIZES["n_layer"])
    pieces = [ours(x[:, :17], cache=cache)]  # a prompt, then one token at a time
    pieces += [ours(x[:, t:t + 1], cache=cache) for t in range(17, x.shape[1])]
    assert cache.length == x.shape[1]
    assert (torch.cat(pieces, dim=1) - full).abs().max() < 1e-5


@torch.no_grad()
def test_cached_generation_equals_uncached_and_hugging_face_greedy(pair):
    hf, ours = pair
    prompt = tokens(1, 9)[0].tolist()
    cached = generate(ours, [prompt], 24, temperature=0.0, use_cache=True)[0]
    uncached = generate(ours, [prompt], 24, temperature=0.0, use_cache=False)[0]
    assert cached == uncached and len(cached) == 24
    theirs = hf.generate(torch.tensor([prompt]), max_new_tokens=24, do_sample=False, pad_token_id=0)
    assert cached == theirs[0, len(prompt):].tolist()


@torch.no_grad()
def test_sampled_generation_is_the_same_with_and_without_cache(pair):
    _, ours = pair
    prompts = [tokens(1, 5, seed=s)[0].tolist() for s in range(3)]
    kw = dict(max_new_tokens=20, temperature=1.3, top_k=40, top_p=0.95)
    cached = generate(ours, prompts, use_cache=True, generator=torch.Generator().manual_seed(7), **kw)
    uncached = generate(ours, prompts, use_cache=False, generator=torch.Generator().manual_seed(7), **kw)
    assert cached == uncached


@torch.no_grad()
def test_left_padded_batch_generates_what_each_prompt_generates_alone(pair):
    _, ours = pair
    prompts = [tokens(1, n, seed=n)[0].tolist() for n in (3, 11, 7)]
    batched = generate(ours, prompts, 12, temperature=0.0)
    alone = [generate(ours, [p], 12, temperature=0.0)[0] for p in prompts]
    assert batched == alone


def test_export_loads_in_hugging_face_and_back(pair, tmp_path):
    hf, ours = pair
    folder = save_hf(ours, tmp_path / "gptj")
    reloaded = transformers.GPTJForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    x = tokens()
    with torch.no_grad():
        assert (reloaded(x).logits - hf(x).logits).abs().max() < 1e-6
    again = load_hf(folder)
    assert again.config == ours.config
    for name, value in ours.state_dict().items():
        assert torch.equal(again.state_dict()[name], value), name


def test_six_billion_model_has_hugging_faces_names_shapes_and_count():
    with torch.device("meta"):
        ours = GPTJ(GPTJConfig())
        theirs = transformers.GPTJForCausalLM(transformers.GPTJConfig())
    ours_shapes = {k: tuple(v.shape) for k, v in state_dict_to_hf(ours.state_dict()).items()}
    theirs_shapes = {k: tuple(v.shape) for k, v in theirs.state_dict().items() if not k.endswith("attn.bias")}
    assert ours_shapes == theirs_shapes
    count = sum(p.numel() for p in ours.parameters())
    assert count == GPTJConfig().num_parameters() == 6_050_882_784
    assert len(ours.h) == 28 and ours.h[0].attn.q_proj.weight.shape == (4096, 4096) and ours.config.rotary == 64


def test_block_structure_is_gptj():
    model = GPTJ(GPTJConfig.preset("tiny"))
    block = model.h[0]
    assert block.ln_2 is None  # one LayerNorm: attention and MLP read the same normalised input
    assert all(getattr(block.attn, n).bias is None for n in ("q_proj", "k_proj", "v_proj", "out_proj"))
    assert model.lm_head.bias is not None and model.lm_head.weight.data_ptr() != model.wte.weight.data_ptr()
    x = torch.randn(2, 5, 32)
    sin, cos = rotary_angles(torch.arange(5).expand(2, 5), model.config.rotary)
    with torch.no_grad():
        h = block.ln_1(x)
        expected = x + block.attn(h, sin, cos, None, None) + block.mlp(h)
        torch.testing.assert_close(block(x, sin, cos, None, None), expected)
    sequential = GPTJ(GPTJConfig.preset("tiny", block="sequential"))
    assert sequential.h[0].ln_2 is not None
    assert sum(p.numel() for p in sequential.parameters()) == sequential.config.num_parameters()


def test_rotary_pairs_are_interleaved_and_depend_on_relative_position():
    R = 8
    sin, cos = rotary_angles(torch.tensor([[3]]), R)
    e0 = torch.zeros(1, 1, 1, R)
    e0[..., 0] = 1.0
    rotated = apply_rotary(e0, sin, cos)[0, 0, 0]
    assert rotated[1].abs() > 0.1 and torch.all(rotated[2:] == 0)  # (x0, x1) is a pair, not NeoX's (x0, x4)
    assert math.isclose(float(rotated.norm()), 1.0, rel_tol=1e-6)
    q, k = torch.randn(1, 1, 1, R), torch.randn(1, 1, 1, R)

    def score(m: int, n: int) -> float:
        sm, cm = rotary_angles(torch.tensor([[m]]), R)
        sn, cn = rotary_angles(torch.tensor([[n]]), R)
        return float((apply_rotary(q, sm, cm) * apply_rotary(k, sn, cn)).sum())

    assert math.isclose(score(7, 2), score(15, 10), rel_tol=1e-5) and not math.isclose(score(7, 2), score(7, 5))


def test_only_the_first_rotary_dims_of_a_head_see_position():
    config = GPTJConfig.preset("tiny", rotary_dim=2)
    model = GPTJ(config).eval()
    attn = model.h[0].attn
    x = torch.randn(1, 1, config.d_model)
    q = []
    with torch.no_grad():
        for pos in (0, 5):
            sin, cos = rotary_angles(torch.tensor([[pos]]), config.rotary)
            raw = attn.q_proj(x).view(1, 1, config.n_head, config.head_dim)
            q.append(torch.cat([apply_rotary(raw[..., :2], sin, cos), raw[..., 2:]], -1))
    assert not torch.allclose(q[0][..., :2], q[1][..., :2]) and torch.equal(q[0][..., 2:], q[1][..., 2:])


def test_initialisation_follows_mesh_transformer_jax():
    torch.manual_seed(0)
    config = GPTJConfig(vocab_size=512, n_positions=16, d_model=256, n_layer=4, n_head=4, rotary_dim=16)
    model = GPTJ(config).requires_grad_(False)
    d = config.d_model
    for weight, std in ((model.h[0].attn.q_proj.weight, d**-0.5), (model.h[0].mlp.fc_in.weight, d**-0.5),
                        (model.h[0].attn.out_proj.weight, 2 / config.n_layer / d**0.5),
                        (model.wte.weight, config.vocab_size**-0.5), (model.lm_head.weight, d**-0.5)):
        assert math.isclose(float(weight.std()), std, rel_tol=0.05), (weight.shape, float(weight.std()), std)
        assert float(weight.abs().max()) <= 2 * std / 0.8796 + 1e-6  # truncated at 2 sigma of the raw normal
    assert torch.all(model.h[0].mlp.fc_in.bias == 0) and torch.all(model.lm_head.bias == 0)


def test_bad_sizes_and_inputs_raise_clearly():
    with pytest.raises(ValueError, match="not divisible by n_head"):
        GPTJConfig(d_model=30, n_head=4)
    with pytest.raises(ValueError, match="rotary_dim must be even"):
        GPTJConfig.preset("tiny", rotary_dim=3)
    with pytest.raises(ValueError, match="unknown GPT-J preset"):
        GPTJConfig.preset("7b")
    model = GPTJ(GPTJConfig.preset("tiny"))
    with pytest.raises(ValueError, match="n_positions=64"):
        model(torch.zeros(1, 65, dtype=torch.long))
    wrong = {**model.state_dict(), "lm_head.weight": torch.zeros(3, 3)}
    with pytest.raises(ValueError, match="lm_head.weight"):
        load_hf(state_dict_to_hf(wrong), model.config)
    with pytest.raises(ValueError, match="unexpected names"):
        load_hf({"encoder.weight": torch.zeros(1)}, model.config)


def test_sampling_filters():
    logits = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0]])
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [[False, False, True, True, True]]
    p = logits.softmax(-1)[0]  # 0.636, 0.234, 0.086, ...
    kept = ~torch.isinf(filter_logits(logits, top_p=float(p[0] + p[1]) - 1e-4))
    assert kept.tolist() == [[True, True, False, False, False]]  # the smallest set reaching p
    assert (~torch.isinf(filter_logits(logits, top_p=0.01))).sum() == 1  # the top token always stays
    assert sample_next(logits, temperature=0.0).item() == 0
    draws = torch.stack([sample_next(logits, top_k=2, generator=torch.Generator().manual_seed(s)) for s in range(200)])
    assert set(draws.flatten().tolist()) == {0, 1}
