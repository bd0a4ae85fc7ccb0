"""GANs N' Roses: diverse image-to-image translation from a content code and a random style code (Chong &
Forsyth, arXiv 2106.06561). Every number below is the official code's (mchong6/GANsNRoses ``train.py``, main
branch; where the paper and the code differ, the code is followed).

Per batch (``lit_digest.gan.ganroses.data``): ``A`` holds N augmentations of one photo, ``A_real`` N different
augmented photos, and the same for ``B``. With ``E_X`` / ``F_X`` the encoder / decoder of domain X::

    c_A, s_A = E_A(A)                          content and style of the augmentations
    s_B~ = mix(N(0, I) codes, E_B(B_real))     target styles: half random, half of real B images (shuffled)
    B^ = F_B(c_A, s_B~)                        the translations (and A^ the same way)
    D:  logistic(D_B(B_real), D_B(B^)) + logistic(D_L(N(0, I)), D_L(E_B(B_real)))  (+ the A terms)
        + gamma / 2 * R1 * r1_every, every r1_every batches (lazy R1: gamma 10, every 16)
    G:  NS(D_B(B^)) (mean of its 3 heads) + 2 NS(D_L(E_B(B_real)))             adversarial, latent
        + 50 sum_d Var_b(s_A)                                                   style consistency
        + 20 mse(F_A(E_B(B^)_content, shuffle(s_A)), A) + 10 perceptual(...)   cycle (pixel, perceptual)
        + 5 mse(E_B(B^)_style, s_B~)                                            style reconstruction

The official perceptual term is LPIPS (VGG); here it is the L1 distance of VGG-16 pool1-3 features
(``lit_digest.core.vgg``, off by default: its weights are a 528 MB download). Optimisers: Adam, lr 2e-3, betas
(0, 0.99) for the generators and (0, 0.99^(16/17)) for the discriminators (StyleGAN2's lazy-regularisation
correction of the betas; the official code does not scale the learning rate), halved every 100k batches;
generators averaged with decay 0.999 (``accumulate``), the averages used for validation and predict.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torchvision

from lit_digest.core.callbacks import run_dir
from lit_digest.core.lightning import LightningModule
from lit_digest.core.optim import Optim
from lit_digest.core.outputs import announce
from lit_digest.core.vgg import VGG16Features, load_vgg16_features
from lit_digest.gan.ganroses.losses import (
    cycle_loss,
    mix_styles,
    shuffle_within_groups,
    style_consistency_loss,
    style_reconstruction_loss,
)
from lit_digest.gan.ganroses.networks import Discriminator, Generator, LatentDiscriminator
from lit_digest.gan.losses import logistic_d_loss, nonsaturating_g_loss, perceptual_loss, r1_penalty
from lit_digest.gan.optim import player_optimizers

__all__ = ["GANsNRoses", "ADAM_G", "ADAM_D"]

ADAM_G = Optim(name="adam", lr=2e-3, betas=(0.0, 0.99), schedule="constant")
ADAM_D = Optim(name="adam", lr=2e-3, betas=(0.0, 0.99 ** (16 / 17)), schedule="constant")


class GANsNRoses(LightningModule):
    """Two generators (A to B, B to A), two image discriminators, one style-code discriminator and their losses,
    trained with Lightning's manual optimisation (one discriminator step, then one generator step, per batch).

    Args:
        image_size, image_channels: of both domains (official: 256, 3).
        latent_dim: style code size (8). num_down: downsamplings to the content code (the released checkpoint:
            4; ``train.py``: 3). n_res, n_mlp, style_dim, lr_mlp: as ``Generator`` (1, 5, 512, 0.01).
        channel_base, channel_max: widths ``min(max, base // resolution)`` (official: 16384, 512).
        d_local_size, d_global_size, d_std_dim: the image discriminators' branches (official: 32, 8, 128).
        latent_d_width: of the style-code discriminator (256).
        adversarial_weight: on the image discriminators' non-saturating loss (1).
        latent_weight: on the style-code discriminator's (2).
        consistency_weight: on the style spread across augmentations of one image (50).
        cycle_weight: on the cycle's pixel MSE (20). perceptual_weight: on its perceptual distance (10, "for anime").
        style_weight: on the style reconstruction MSE (5).
        r1_gamma, r1_every: R1 weight and lazy interval (10, 16).
        ema_decay: of the generators' running average (0.999); 0: no average (the trained weights are used).
        perceptual: compute the perceptual cycle term (VGG-16 ImageNet weights needed; 3-channel images).
        vgg_weights, download_vgg: where the VGG-16 weights are (None: torchvision's cache), download if absent.
        optim_g, optim_d: ``ADAM_G``, ``ADAM_D``.
        predict_styles, predict_seed: random style codes per input in ``predict`` (the same codes for every input).
    """

    def __init__(
        self,
        image_size: int = 32,
        image_channels: int = 3,
        latent_dim: int = 8,
        num_down: int = 2,
        n_res: int = 1,
        n_mlp: int = 5,
        style_dim: int = 64,
        lr_mlp: float = 0.01,
        channel_base: int = 512,
        channel_max: int = 32,
        d_local_size: int = 8,
        d_global_size: int = 4,
        d_std_dim: int = 128,
        latent_d_width: int = 256,
        adversarial_weight: float = 1.0,
        latent_weight: float = 2.0,
        consistency_weight: float = 50.0,
        cycle_weight: float = 20.0,
        perceptual_weight: float = 10.0,
        style_weight: float = 5.0,
        r1_gamma: float = 10.0,
        r1_every: int = 16,
        ema_decay: float = 0.999,
        perceptual: bool = False,
        vgg_weights: str | None = None,
        download_vgg: bool = False,
        optim_g: Optim = ADAM_G,
        optim_d: Optim = ADAM_D,
        predict_styles: int = 8,
        predict_seed: int = 0,
    ) -> None:
        super().__init__()
        weights = dict(adversarial_weight=adversarial_weight, latent_weight=latent_weight,
                       consistency_weight=consistency_weight, cycle_weight=cycle_weight,
                       perceptual_weight=perceptual_weight, style_weight=style_weight, r1_gamma=r1_gamma)
        negative = [f"{k}={v}" for k, v in weights.items() if v < 0]
        if negative:
            raise ValueError(f"GANsNRoses loss weights must be >= 0, got {', '.join(negative)}")
        if r1_every < 1 or not 0 <= ema_decay < 1 or predict_styles < 1:
            raise ValueError(f"need r1_every >= 1, 0 <= ema_decay < 1 and predict_styles >= 1, got {r1_every}, "
                             f"{ema_decay} and {predict_styles}")
        if image_channels not in (1, 3):
            raise ValueError(f"image_channels must be 1 or 3, got {image_channels}")
        if perceptual and image_channels != 3:
            raise ValueError("the perceptual term needs RGB images (VGG-16): set model.init_args.perceptual false "
                             "or use 3-channel data")
        self.save_hyperparameters()
        self.optim_g, self.optim_d = optim_g, optim_d
        self.automatic_optimization = False
        g = dict(size=image_size, latent_dim=latent_dim, num_down=num_down, n_res=n_res, n_mlp=n_mlp,
                 style_dim=style_dim, lr_mlp=lr_mlp, channel_base=channel_base, channel_max=channel_max,
                 image_channels=image_channels)
        d = dict(size=image_size, local_size=d_local_size, global_size=d_global_size, std_dim=d_std_dim,
                 channel_base=channel_base, channel_max=channel_max, image_channels=image_channels)
        self.g_a2b, self.g_b2a = Generator(**g), Generator(**g)
        self.d_a, self.d_b = Discriminator(**d), Discriminator(**d)
        self.d_latent = LatentDiscriminator(latent_dim, latent_d_width)
        # running averages (no layer here behaves differently in eval mode, so they keep the trainer's mode)
        self.g_a2b_ema = copy.deepcopy(self.g_a2b).requires_grad_(False)
        self.g_b2a_ema = copy.deepcopy(self.g_b2a).requires_grad_(False)
        # the frozen loss network is no part of the model: built for fit only, kept out of checkpoints
        self.__dict__["vgg"] = None

    # -- inference ---------------------------------------------------------------------------------------
    def generator(self, direction: str = "a2b", ema: bool = True) -> Generator:
        """The generator of ``direction`` ("a2b" or "b2a"): its running average when ``ema`` (and one is kept)."""
        if direction not in ("a2b", "b2a"):
            raise ValueError(f"direction must be 'a2b' or 'b2a', got {direction!r}")
        average = ema and self.hparams.ema_decay > 0
        return getattr(self, f"g_{direction}{'_ema' if average else ''}")

    @torch.no_grad()
    def translate(self, images: torch.Tensor, styles: torch.Tensor, direction: str = "a2b", ema: bool = True
                  ) -> torch.Tensor:
        """Every image in every style: ``(B, C, S, S), (N, latent_dim) -> (B, N, C, S, S)`` in [-1, 1]."""
        g = self.generator(direction, ema)
        content, _ = g.encode(images)  # (B, ch, S', S')
        b, n = images.shape[0], styles.shape[0]
        content = content[:, None].expand(b, n, *content.shape[1:]).flatten(0, 1)
        out = g.decode(content, styles.to(content)[None].expand(b, n, -1).flatten(0, 1))
        return out.clamp(-1, 1).view(b, n, *images.shape[1:])

    @torch.no_grad()
    def reference_styles(self, references: torch.Tensor, direction: str = "a2b", ema: bool = True) -> torch.Tensor:
        """Style codes of target-domain ``references`` ``(N, C, S, S) -> (N, latent_dim)`` (read by the other
        direction's encoder, as the official ``G_B2A.style_encode(B)`` gives the styles for A to B)."""
        return self.generator("b2a" if direction == "a2b" else "a2b", ema).style_encode(references)

    def forward(self, images: torch.Tensor, styles: torch.Tensor | None = None, direction: str = "a2b"
                ) -> torch.Tensor:
        """Translations ``(B, C, S, S)`` with one style code per image (default: drawn from N(0, I))."""
        if styles is None:
            styles = torch.randn(images.shape[0], self.hparams.latent_dim, device=images.device)
        g = self.generator(direction)
        return g.decode(g.encode(images)[0], styles).clamp(-1, 1)

    # -- losses ------------------------------------------------------------------------------------------
    def translate_batch(self, batch: dict[str, torch.Tensor], regularise: bool = False) -> dict[str, Any]:
        """The translations of a training batch and what the losses need, per domain X: ``real`` (``X_real``,
        requiring grad when ``regularise``), ``style`` (X's codes of the augmentations), ``codes`` (N(0, I) codes,
        codes of X's real images: the targets' two sources), ``target`` (the mixed target codes), ``fake``
        (translations into X)."""
        real = {x: batch[f"{x}_real"].requires_grad_(regularise) for x in ("A", "B")}
        n, dim = batch["A"].shape[0], self.hparams.latent_dim
        content, style = {}, {}
        content["A"], style["A"] = self.g_a2b.encode(batch["A"])  # A's content and A's style
        content["B"], style["B"] = self.g_b2a.encode(batch["B"])
        codes = {"B": (torch.randn(n, dim, device=self.device).requires_grad_(regularise),  # targets for A -> B
                       self.g_b2a.style_encode(real["B"])),
                 "A": (torch.randn(n, dim, device=self.device).requires_grad_(regularise),
                       self.g_a2b.style_encode(real["A"]))}
        target = {x: mix_styles(*codes[x]) for x in ("A", "B")}
        fake = {"B": self.g_a2b.decode(content["A"], target["B"]), "A": self.g_b2a.decode(content["B"], target["A"])}
        return {"real": real, "style": style, "codes": codes, "target": target, "fake": fake}

    def discriminator_loss(self, reals: dict[str, torch.Tensor], fakes: dict[str, torch.Tensor],
                           codes: dict[str, tuple[torch.Tensor, torch.Tensor]], regularise: bool
                           ) -> dict[str, torch.Tensor]:
        """``reals``/``fakes``: images per domain; ``codes``: per domain (N(0, I) codes, encoded codes)."""
        hp = self.hparams
        scores = {x: (getattr(self, f"d_{x.lower()}")(reals[x]), getattr(self, f"d_{x.lower()}")(fakes[x].detach()))
                  for x in ("A", "B")}
        latent = {x: (self.d_latent(codes[x][0]), self.d_latent(codes[x][1].detach())) for x in ("A", "B")}
        terms = {"adversarial": logistic_d_loss(*scores["A"]) + logistic_d_loss(*scores["B"]),
                 "latent": logistic_d_loss(*latent["A"]) + logistic_d_loss(*latent["B"])}
        loss = terms["adversarial"] + terms["latent"]
        if regularise and hp.r1_gamma > 0:
            terms["r1"] = sum(r1_penalty(scores[x][0], reals[x]) + r1_penalty(latent[x][0], codes[x][0])
                              for x in ("A", "B"))
            loss = loss + hp.r1_gamma / 2 * hp.r1_every * terms["r1"]
        terms["loss"] = loss
        return terms

    def generator_loss(self, batch: dict[str, torch.Tensor], state: dict[str, Any]) -> dict[str, torch.Tensor]:
        """``state``: ``translate_batch``'s."""
        hp = self.hparams
        terms: dict[str, torch.Tensor] = {}
        terms["adversarial"] = (nonsaturating_g_loss(self.d_a(state["fake"]["A"]))
                                + nonsaturating_g_loss(self.d_b(state["fake"]["B"])))
        terms["latent"] = (nonsaturating_g_loss(self.d_latent(state["codes"]["A"][1]))
                           + nonsaturating_g_loss(self.d_latent(state["codes"]["B"][1])))
        terms["consistency"] = (style_consistency_loss(state["style"]["A"], batch["A_group"])
                                + style_consistency_loss(state["style"]["B"], batch["B_group"]))
        cycle, recovered, rebuilt = {}, {}, {}
        for x, y, back in (("A", "B", self.g_b2a), ("B", "A", self.g_a2b)):  # x -> y -> x
            content, recovered[y] = back.encode(state["fake"][y])
            rebuilt[x] = back.decode(content, shuffle_within_groups(state["style"][x], batch[f"{x}_group"]))
            cycle[x] = cycle_loss(rebuilt[x], batch[x])
        terms["cycle"] = cycle["A"] + cycle["B"]
        terms["style"] = (style_reconstruction_loss(recovered["B"], state["target"]["B"])
                          + style_reconstruction_loss(recovered["A"], state["target"]["A"]))
        loss = (hp.adversarial_weight * terms["adversarial"] + hp.latent_weight * terms["latent"]
                + hp.consistency_weight * terms["consistency"] + hp.cycle_weight * terms["cycle"]
                + hp.style_weight * terms["style"])
        if self.vgg is not None:
            terms["perceptual"] = sum(perceptual_loss(self.vgg(rebuilt[x]), [f.detach() for f in self.vgg(batch[x])])
                                      for x in ("A", "B"))
            loss = loss + hp.perceptual_weight * terms["perceptual"]
        terms["loss"] = loss
        return terms

    # -- training ----------------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        hp = self.hparams
        size, channels = getattr(dm, "image_size", None), getattr(dm, "image_channels", None)
        if size is not None and size != hp.image_size:
            raise ValueError(f"the data's image_size is {size} but the model's is {hp.image_size}: set "
                             f"model.init_args.image_size {size} (or data.init_args.image_size {hp.image_size})")
        if channels is not None and channels != hp.image_channels:
            raise ValueError(f"the data has {channels}-channel images but the model takes {hp.image_channels}: set "
                             f"model.init_args.image_channels {channels} (or data.init_args.channels)")
        if stage == "fit" and hp.perceptual and self.vgg is None:
            self.__dict__["vgg"] = load_vgg16_features(hp.vgg_weights, hp.download_vgg, options=(
                "model.init_args.vgg_weights", "model.init_args.download_vgg", "model.init_args.perceptual false"))

    def set_vgg(self, vgg: VGG16Features | None) -> None:
        """Use ``vgg`` (or none) for the perceptual cycle term instead of loading the weights at ``fit``."""
        self.__dict__["vgg"] = vgg

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        sched_g, sched_d = self.lr_schedulers()
        step = sched_g.last_epoch  # batches trained so far, restored with the schedule on resume
        regularise = step % self.hparams.r1_every == 0
        if self.vgg is not None:
            self.vgg.to(self.device)
        state = self.translate_batch(batch, regularise)

        self.toggle_optimizer(opt_d)
        d_terms = self.discriminator_loss(state["real"], state["fake"], state["codes"], regularise)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_terms["loss"])
        opt_d.step()
        self.untoggle_optimizer(opt_d)

        self.toggle_optimizer(opt_g)
        g_terms = self.generator_loss(batch, state)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_terms["loss"])
        opt_g.step()
        self.untoggle_optimizer(opt_g)
        self.update_averages()
        lrs = {"train/lr_g": opt_g.param_groups[0]["lr"], "train/lr_d": opt_d.param_groups[0]["lr"]}
        sched_g.step()
        sched_d.step()

        logs = {f"train/d_{k}": v.detach() for k, v in d_terms.items() if k != "loss"}
        logs.update({f"train/g_{k}": v.detach() for k, v in g_terms.items() if k != "loss"})
        logs.update(lrs)
        n = batch["A"].shape[0]
        self.log_dict(logs, batch_size=n)
        self.log_dict({"train/d_loss": d_terms["loss"].detach(), "train/g_loss": g_terms["loss"].detach()},
                      prog_bar=True, batch_size=n)

    @torch.no_grad()
    def update_averages(self) -> None:
        """``ema <- decay * ema + (1 - decay) * weights`` for both generators (official ``accumulate``)."""
        decay = self.hparams.ema_decay
        if decay <= 0:
            return
        for net in ("g_a2b", "g_b2a"):
            averaged = list(getattr(self, f"{net}_ema").parameters())
            torch._foreach_lerp_(averaged, list(getattr(self, net).parameters()), 1 - decay)

    # -- evaluation --------------------------------------------------------------------------------------
    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """``val/cycle_l1``: mean |x - x''| of x to the other domain (a random style) and back with x's own style."""
        g = torch.Generator().manual_seed(batch_idx)
        errors = []
        for x, there, back in (("A", "a2b", "b2a"), ("B", "b2a", "a2b")):
            images = batch[x]
            styles = torch.randn(images.shape[0], self.hparams.latent_dim, generator=g).to(images)
            gen, ret = self.generator(there), self.generator(back)
            content, own = gen.encode(images)
            translated = gen.decode(content, styles)
            errors.append((ret.decode(ret.encode(translated)[0], own).clamp(-1, 1) - images).abs().mean())
        self.log("val/cycle_l1", torch.stack(errors).mean(), prog_bar=True, batch_size=batch["A"].shape[0])

    def prediction_styles(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """The codes ``predict`` uses: ``(predict_styles, latent_dim)`` from N(0, I), seeded by ``predict_seed``."""
        g = torch.Generator().manual_seed(self.hparams.predict_seed)
        return torch.randn(self.hparams.predict_styles, self.hparams.latent_dim, generator=g).to(device)

    def on_predict_start(self) -> None:
        self._rows: dict[str, list[torch.Tensor]] = {"a2b": [], "b2a": []}

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """Loader 0: test images of A, translated to B; loader 1: of B, to A. Each input in every style:
        ``(B, 1 + N, C, S, S)``, the input first."""
        direction = ("a2b", "b2a")[dataloader_idx]
        images = batch["image"]
        outputs = self.translate(images, self.prediction_styles(images.device), direction)
        rows = torch.cat([images[:, None], outputs], 1)
        self._rows[direction].append(rows.cpu())
        return rows

    def on_predict_end(self) -> None:
        """Write ``translations_a2b.png`` / ``translations_b2a.png`` into the run folder: one row per input, the
        input then its ``predict_styles`` translations (the same style codes in every row)."""
        folder = run_dir(self.trainer)
        if not self.trainer.is_global_zero:
            return
        folder.mkdir(parents=True, exist_ok=True)
        for direction, rows in self._rows.items():
            if not rows:
                continue
            grid = torch.cat(rows)  # (R, 1 + N, C, S, S)
            path = folder / f"translations_{direction}.png"
            torchvision.utils.save_image((grid.flatten(0, 1) + 1) / 2, path, nrow=grid.shape[1], padding=2)
            announce(path, grid.shape[0], f"{direction} translation rows")

    # -- optimisation ------------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        generators = [*self.g_a2b.parameters(), *self.g_b2a.parameters()]
        discriminators = [*self.d_latent.parameters(), *self.d_a.parameters(), *self.d_b.parameters()]
        return player_optimizers(self, [(self.optim_g, generators), (self.optim_d, discriminators)])
