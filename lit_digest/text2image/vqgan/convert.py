"""Pretrained VQGANs from files: taming-transformers and latent-diffusion checkpoints into diffusers' ``VQModel``.

A taming VQGAN (CompVis/taming-transformers, e.g. ``vqgan_imagenet_f16_16384.ckpt`` with its ``.yaml``) or a
latent-diffusion first stage (CompVis/latent-diffusion ``vq-f4``/``vq-f8``, ``ldm.models.autoencoder.VQModel``)
is a Lightning checkpoint whose ``state_dict`` holds ``encoder.*``, ``decoder.*``, ``quant_conv``,
``post_quant_conv``, ``quantize.embedding.weight`` (and the loss's ``loss.*``, dropped), in the layout of
``taming/modules/diffusionmodules/model.py``; its yaml gives ``model.params.{embed_dim, n_embed, ddconfig}``.
``taming_config`` reads the sizes, ``convert_taming_state_dict`` renames the weights for diffusers: ``down.i.block.j``
-> ``down_blocks.i.resnets.j``, ``up.i`` -> ``up_blocks.(L-1-i)`` (diffusers' decoder runs from the coarsest
level), ``mid.block_1/attn_1/block_2`` -> ``mid_block.resnets.0/attentions.0/resnets.1``, ``nin_shortcut`` ->
``conv_shortcut``, and the attention's 1x1 convolutions ``q, k, v, proj_out`` -> linear ``to_q, to_k, to_v,
to_out.0``. Gumbel and remapped quantisers are refused.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

__all__ = ["taming_config", "convert_taming_state_dict", "load_taming_vqgan"]

_ATTN = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}
_RESNET = {"nin_shortcut": "conv_shortcut"}


def taming_config(config: dict[str, Any], path: str | os.PathLike = "<config>") -> dict[str, Any]:
    """``build_vqmodel`` keyword arguments from a taming / latent-diffusion yaml (a dict)."""
    model = config.get("model", config)
    target = str(model.get("target", ""))
    params = model.get("params", {})
    if "Gumbel" in target or params.get("remap") is not None:
        raise ValueError(f"'{path}' is a {target or 'remapped'} model: only plain VQ quantisers (taming's VQModel, "
                         "latent-diffusion's VQModel) convert to diffusers' VQModel")
    dd = params.get("ddconfig")
    if not dd or "n_embed" not in params or "embed_dim" not in params:
        raise ValueError(f"'{path}' is not a taming / latent-diffusion VQGAN config: expected model.params with "
                         "embed_dim, n_embed and ddconfig (the .yaml published beside the .ckpt)")
    if dd.get("double_z", False):
        raise ValueError(f"'{path}' describes a KL autoencoder (double_z: true), not a VQGAN")
    levels = len(dd["ch_mult"])
    resolution = int(dd.get("resolution", 256))
    attention = tuple(i for i in range(levels) if resolution // 2**i in set(dd.get("attn_resolutions", [])))
    return dict(block_out_channels=tuple(int(dd["ch"]) * int(m) for m in dd["ch_mult"]),
                layers_per_block=int(dd["num_res_blocks"]), latent_channels=int(dd["z_channels"]),
                num_vq_embeddings=int(params["n_embed"]), vq_embed_dim=int(params["embed_dim"]), norm_num_groups=32,
                attention_levels=attention, mid_attention=True, in_channels=int(dd.get("in_channels", 3)))


def _rename(key: str, levels: int) -> str:
    part, _, rest = key.partition(".")
    if part not in ("encoder", "decoder"):
        return key
    rest = re.sub(r"^mid\.block_1\.", "mid_block.resnets.0.", rest)
    rest = re.sub(r"^mid\.block_2\.", "mid_block.resnets.1.", rest)
    rest = re.sub(r"^mid\.attn_1\.", "mid_block.attentions.0.", rest)
    rest = re.sub(r"^down\.(\d+)\.block\.", r"down_blocks.\1.resnets.", rest)
    rest = re.sub(r"^down\.(\d+)\.attn\.", r"down_blocks.\1.attentions.", rest)
    rest = re.sub(r"^down\.(\d+)\.downsample\.", r"down_blocks.\1.downsamplers.0.", rest)
    m = re.match(r"^up\.(\d+)\.(block|attn|upsample)\.(.*)$", rest)
    if m:
        block = {"block": "resnets.", "attn": "attentions.", "upsample": "upsamplers.0."}[m.group(2)]
        rest = f"up_blocks.{levels - 1 - int(m.group(1))}.{block}{m.group(3)}"
    rest = re.sub(r"^norm_out\.", "conv_norm_out.", rest)
    if "attentions." in rest:
        head, _, leaf = rest.rpartition(".")  # ...attentions.J.<q|k|v|proj_out|norm>.<weight|bias>
        head, _, layer = head.rpartition(".")
        rest = f"{head}.{_ATTN.get(layer, layer)}.{leaf}"
    else:
        for old, new in _RESNET.items():
            rest = rest.replace(f".{old}.", f".{new}.")
    return f"{part}.{rest}"


def convert_taming_state_dict(state: dict[str, torch.Tensor], levels: int) -> dict[str, torch.Tensor]:
    """The weights of a taming-layout VQGAN renamed for diffusers' ``VQModel`` with ``levels`` resolutions."""
    out = {}
    for key, value in state.items():
        if key.startswith(("loss.", "quantize.used")) or key.endswith("num_batches_tracked"):
            continue
        new = _rename(key, levels)
        if any(new.endswith(f".{n}.weight") for n in ("to_q", "to_k", "to_v", "to_out.0")) and value.ndim == 4:
            value = value[:, :, 0, 0]  # 1x1 convolution -> linear
        out[new] = value
    return out


def load_taming_vqgan(checkpoint: str | os.PathLike, config: str | os.PathLike | None):
    """A diffusers ``VQModel`` with the weights of a taming / latent-diffusion VQGAN checkpoint and its yaml."""
    import yaml

    from lit_digest.text2image.vqgan.module import build_vqmodel

    checkpoint = Path(checkpoint)
    if config is None:
        raise ValueError(f"'{checkpoint}' is a taming / latent-diffusion VQGAN checkpoint: its sizes are in the .yaml "
                         "published with it; set model.init_args.vqgan_config to that file")
    config = Path(config)
    if not config.is_file():
        raise FileNotFoundError(f"VQGAN config not found at '{config.resolve()}': set model.init_args.vqgan_config "
                                "to the .yaml published beside the checkpoint")
    sizes = taming_config(yaml.safe_load(config.read_text()), config)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)  # taming's checkpoints pickle settings
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if isinstance(state, dict) and any(k.startswith("first_stage_model.") for k in state):  # a whole LDM
        state = {k[len("first_stage_model."):]: v for k, v in state.items() if k.startswith("first_stage_model.")}
    if not isinstance(state, dict) or not any(k.startswith("decoder.") for k in state):
        raise ValueError(f"'{checkpoint}' holds no VQGAN weights (no decoder.* keys in its state_dict)")
    vq = build_vqmodel(**sizes)
    converted = convert_taming_state_dict(state, len(sizes["block_out_channels"]))
    missing, unexpected = vq.load_state_dict(converted, strict=False)
    if missing or unexpected:
        raise ValueError(f"'{checkpoint}' does not fit the VQGAN of '{config}': missing {sorted(missing)[:4]}, "
                         f"unexpected {sorted(unexpected)[:4]} ({len(missing)} and {len(unexpected)} in all)")
    return vq
