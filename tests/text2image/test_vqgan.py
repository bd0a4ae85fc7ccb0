"""VQGAN: taming's adaptive weight and hinge loss, the discriminator starting late, the equal-bits baseline, and a
taming-layout checkpoint (written here) converted into diffusers' VQModel."""

from __future__ import annotations

import re

import pytest
import torch
import yaml

from lit_digest.text2image.data import SceneDataModule
from lit_digest.text2image.generate.models import load_vqgan
from lit_digest.text2image.vqgan import VQGANModule, adaptive_weight, bicubic_baseline, build_vqmodel, hinge_d_loss


def test_the_adaptive_weight_is_the_ratio_of_gradient_norms_at_the_last_layer():
    torch.manual_seed(0)
    last = torch.randn(4, 3, requires_grad=True)
    x = torch.randn(5, 3)
    out = x @ last.T  # (5, 4)
    nll, g_loss = out.abs().mean(), -(out**3).mean()
    got = adaptive_weight(nll, g_loss, last, disc_weight=0.8)
    grad_nll = torch.sign(out).T @ x / out.numel()  # d mean|out| / d last
    grad_g = -(3 * out**2).T @ x / out.numel()
    want = 0.8 * grad_nll.norm() / (grad_g.norm() + 1e-4)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    assert not got.requires_grad


def test_the_hinge_loss_is_taming_s():
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-3.0, 0.0, 1.0])
    want = 0.5 * (sum(max(0, 1 - r) for r in real.tolist()) / 3 + sum(max(0, 1 + f) for f in fake.tolist()) / 3)
    assert hinge_d_loss(real, fake).item() == pytest.approx(want)


def test_the_equal_bits_baseline_fits_its_budget():
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    rec, side = bicubic_baseline(images, bits=8 * 8 * 8)  # 64 tokens of a 256-entry codebook
    assert side == 4 and 24 * side**2 <= 512 < 24 * (side + 1) ** 2
    assert rec.shape == images.shape


def _tiny(**kwargs) -> VQGANModule:
    return VQGANModule(block_out_channels=(8, 8), latent_channels=8, vq_embed_dim=8, num_vq_embeddings=16,
                       norm_num_groups=4, disc_channels=4, mid_attention=False, **kwargs)


@pytest.mark.timeout(120)
def test_the_discriminator_starts_late_and_the_autoencoder_trains_from_the_start(quiet_trainer):
    data = SceneDataModule(num_train=16, num_val=4, batch_size=4)
    module = _tiny(disc_start=2)
    start = {k: v.clone() for k, v in module.state_dict().items()}
    quiet_trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=0).fit(module, data)
    changed = {k for k, v in module.state_dict().items() if not torch.equal(v, start[k])}
    assert any(k.startswith("vqmodel.decoder") for k in changed)
    assert not any(k.startswith("discriminator") for k in changed)  # steps 0 and 1 are before disc_start
    module = _tiny(disc_start=1)
    start = {k: v.clone() for k, v in module.state_dict().items()}
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=0)
    trainer.fit(module, data)
    assert not torch.equal(module.discriminator.main[0].weight, start["discriminator.main.0.weight"])
    assert trainer.callback_metrics["train/d_weight"] > 0


# -- taming-layout checkpoints -------------------------------------------------------------------------------------
def _to_taming(name: str, levels: int) -> str:
    """diffusers' VQModel key -> taming's (the inverse of what the converter does, written as plain rules)."""
    rules = [(r"mid_block\.resnets\.0\.", "mid.block_1."), (r"mid_block\.resnets\.1\.", "mid.block_2."),
             (r"mid_block\.attentions\.0\.", "mid.attn_1."), (r"down_blocks\.(\d+)\.resnets\.", r"down.\1.block."),
             (r"down_blocks\.(\d+)\.attentions\.", r"down.\1.attn."),
             (r"down_blocks\.(\d+)\.downsamplers\.0\.", r"down.\1.downsample."), (r"conv_norm_out\.", "norm_out."),
             (r"\.conv_shortcut\.", ".nin_shortcut."), (r"\.group_norm\.", ".norm."), (r"\.to_q\.", ".q."),
             (r"\.to_k\.", ".k."), (r"\.to_v\.", ".v."), (r"\.to_out\.0\.", ".proj_out.")]
    for pattern, repl in rules:
        name = re.sub(pattern, repl, name)
    m = re.search(r"up_blocks\.(\d+)\.(resnets|attentions|upsamplers\.0)\.", name)
    if m:
        kind = {"resnets": "block", "attentions": "attn", "upsamplers.0": "upsample"}[m.group(2)]
        name = name.replace(m.group(0), f"up.{levels - 1 - int(m.group(1))}.{kind}.")
    return name


def test_a_taming_checkpoint_converts_to_the_same_vqgan(tmp_path):
    torch.manual_seed(0)
    sizes = dict(block_out_channels=(32, 32, 64), layers_per_block=1, latent_channels=32, num_vq_embeddings=64,
                 vq_embed_dim=16, norm_num_groups=32, attention_levels=(2,))
    original = build_vqmodel(**sizes).eval()
    state = {}
    for k, v in original.state_dict().items():
        if any(f".{n}.weight" in f".{k}" for n in ("to_q", "to_k", "to_v", "to_out.0")) and v.ndim == 2:
            v = v[:, :, None, None]  # taming's attention is 1x1 convolutions
        state[_to_taming(k, 3)] = v
    assert "decoder.up.0.upsample.conv.weight" not in state and "decoder.up.2.upsample.conv.weight" in state
    assert "encoder.down.2.attn.0.q.weight" in state and "decoder.up.2.attn.1.proj_out.weight" in state
    state["loss.discriminator.main.0.weight"] = torch.zeros(1)  # taming keeps its loss in the checkpoint
    torch.save({"state_dict": state, "global_step": 7}, tmp_path / "last.ckpt")
    config = {"model": {"target": "taming.models.vqgan.VQModel", "params": {
        "embed_dim": 16, "n_embed": 64, "ddconfig": {"double_z": False, "z_channels": 32, "resolution": 32,
                                                     "in_channels": 3, "out_ch": 3, "ch": 32, "ch_mult": [1, 1, 2],
                                                     "num_res_blocks": 1, "attn_resolutions": [8], "dropout": 0.0}}}}
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(config))
    converted = load_vqgan(tmp_path / "last.ckpt", tmp_path / "model.yaml")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(converted(x).sample, original(x).sample)


def test_vqgan_files_that_do_not_load_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"VQGAN checkpoint not found at .*nothing\.ckpt.*vqgan_config"):
        load_vqgan(tmp_path / "nothing.ckpt")
    torch.save({"state_dict": {"decoder.conv_in.weight": torch.zeros(1)}}, tmp_path / "taming.ckpt")
    with pytest.raises(ValueError, match="set model.init_args.vqgan_config"):
        load_vqgan(tmp_path / "taming.ckpt")
    (tmp_path / "gumbel.yaml").write_text(yaml.safe_dump({"model": {"target": "taming.models.vqgan.GumbelVQ",
                                                                    "params": {}}}))
    with pytest.raises(ValueError, match="only plain VQ quantisers"):
        load_vqgan(tmp_path / "taming.ckpt", tmp_path / "gumbel.yaml")


def test_dead_codes_restart_at_encoder_outputs():
    torch.manual_seed(0)
    module = _tiny(restart_dead_codes=5)
    images = torch.rand(4, 3, 16, 16) * 2 - 1
    assert module.restart_codes(images, first=True) == 16  # the first batch draws every code
    with torch.no_grad():
        h = module.vqmodel.encode(images).latents.permute(0, 2, 3, 1).reshape(-1, 8)
    codebook = module.vqmodel.quantize.embedding.weight
    assert (codebook[:, None] - h[None]).pow(2).sum(-1).min(1).values.max() < 1e-10  # each code is a batch vector
    assert module.restart_codes(images, first=False) == 0  # global step 0: counted, not restarted
