"""The small CLIP: its loss equals a plain loop, the DDP gather gives the single-process loss and gradients exactly
(2 gloo processes), the retrieval metric and the size check."""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn import functional as F

from lit_digest.text2image.clip.module import clip_loss, retrieval_scores


def _naive_clip_loss(img: torch.Tensor, txt: torch.Tensor, scale: float) -> torch.Tensor:
    n = len(img)
    total = 0.0
    for i in range(n):  # image i against every caption, and caption i against every image
        logits_i = torch.stack([scale * torch.dot(img[i], txt[j]) for j in range(n)])
        logits_t = torch.stack([scale * torch.dot(txt[i], img[j]) for j in range(n)])
        total = total - torch.log_softmax(logits_i, 0)[i] - torch.log_softmax(logits_t, 0)[i]
    return total / (2 * n)


def test_the_clip_loss_equals_a_plain_loop():
    torch.manual_seed(0)
    img, txt = F.normalize(torch.randn(6, 8), dim=-1), F.normalize(torch.randn(6, 8), dim=-1)
    got = clip_loss(img, txt, torch.tensor(1 / 0.07))
    assert got.item() == pytest.approx(_naive_clip_loss(img, txt, 1 / 0.07).item(), rel=1e-5)


def _rank(rank: int, world: int, store: str, img: torch.Tensor, txt: torch.Tensor, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    n = len(img) // world
    local_img = img[rank * n:(rank + 1) * n].clone().requires_grad_(True)
    local_txt = txt[rank * n:(rank + 1) * n].clone().requires_grad_(True)
    loss = clip_loss(local_img, local_txt, torch.tensor(10.0), rank=rank, world_size=world)
    loss.backward()
    torch.save({"loss": loss.detach(), "img": local_img.grad, "txt": local_txt.grad}, f"{out}.{rank}")
    dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_the_ddp_gather_gives_exact_negatives_and_gradients(tmp_path):
    """Each of 2 gloo ranks holds half the pairs. The mean of the ranks' losses is the loss of the whole batch on
    one process, and each rank's feature gradients are ``world_size`` times the whole-batch gradients of its rows,
    so DDP's average of the parameter gradients is the whole-batch gradient."""
    torch.manual_seed(1)
    img, txt = F.normalize(torch.randn(8, 5), dim=-1), F.normalize(torch.randn(8, 5), dim=-1)
    clip_loss(img[:2], txt[:2], torch.tensor(1.0))  # open_clip imported here: the forked ranks inherit it
    mp.start_processes(_rank, args=(2, str(tmp_path / "store"), img, txt, str(tmp_path / "out")), nprocs=2,
                       join=True, start_method="fork")
    full_img, full_txt = img.clone().requires_grad_(True), txt.clone().requires_grad_(True)
    full = clip_loss(full_img, full_txt, torch.tensor(10.0))
    full.backward()
    ranks = [torch.load(tmp_path / f"out.{r}") for r in range(2)]
    assert torch.stack([r["loss"] for r in ranks]).mean().item() == pytest.approx(full.item(), rel=1e-6)
    torch.testing.assert_close(torch.cat([r["img"] for r in ranks]), 2 * full_img.grad)
    torch.testing.assert_close(torch.cat([r["txt"] for r in ranks]), 2 * full_txt.grad)


def test_recall_at_1_counts_identical_captions_as_right():
    img = torch.eye(4)
    txt = torch.eye(4)[[0, 1, 3, 2]]  # images 2 and 3 are closest to each other's texts
    scores = retrieval_scores(img, txt, ["a", "b", "c", "c"], torch.tensor(1.0))
    assert scores["recall_at_1"].item() == pytest.approx(1.0)  # "c" is "c"
    scores = retrieval_scores(img, txt, ["a", "b", "c", "d"], torch.tensor(1.0))
    assert scores["recall_at_1"].item() == pytest.approx(0.5)
    assert scores["recall_at_1_chance"].item() == pytest.approx(0.25)
    assert math.isfinite(scores["loss"].item())


def test_clip_refuses_images_of_another_size():
    from lit_digest.text2image.clip import CLIPModule

    module = CLIPModule(embed_dim=8, vision_width=16, vision_layers=1, vision_head_width=8, text_width=16,
                        text_layers=1, text_heads=2)
    with pytest.raises(ValueError, match="built for 32 px images, the data gives 64x64"):
        module(torch.zeros(1, 3, 64, 64), ["a red circle"])
