"""A small DCGAN (Radford et al., arXiv 1511.06434) to draw GenRep's views from when no pretrained BigGAN or
StyleGAN can be had: generator and discriminator as plain modules, and the two-player system that trains them.

GenRep (arXiv 2106.05258) takes an off-the-shelf generator as its data source; this one is trained here on
real images (Fashion-MNIST or CIFAR-10) and then frozen (``lit_digest.ssl.genrep.GeneratedViewsDataModule``).
DCGAN's guidelines (section 3): strided (transposed) convolutions and no pooling, BatchNorm in both networks
(not on the generator's output nor the discriminator's input), ReLU in the generator with a Tanh output,
LeakyReLU(0.2) in the discriminator; weights from N(0, 0.02), Adam with lr 2e-4 and beta1 0.5 (section 4).
A class-conditional variant takes the class as a one-hot vector beside ``z`` (Mirza & Osindero, arXiv
1411.1784) and scores it in the discriminator by projection (Miyato & Koyama, arXiv 1802.05637).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from lit_digest.core.callbacks import run_dir
from lit_digest.core.lightning import Callback, LightningModule, Trainer, modules_in_hparams, pl
from lit_digest.core.optim import Optim, lr_factor, make_optimizer, steps_per_epoch

__all__ = ["DCGANGenerator", "DCGANDiscriminator", "DCGAN", "GeneratorSamples", "discriminator_loss",
           "generator_loss"]

ADAM = Optim(name="adam", lr=2e-4, betas=(0.5, 0.999), schedule="constant")


def _levels(image_size: int) -> tuple[int, int]:
    """(side of the first feature map, number of x2 up-samplings): 28 -> (7, 2), 32 -> (4, 3), 64 -> (4, 4)."""
    side, ups = image_size, 0
    while side % 2 == 0 and side > 7:
        side, ups = side // 2, ups + 1
    if ups == 0 or side > 7:
        raise ValueError(f"DCGAN: image_size must be 7 or 4 (or less) times a power of 2, got {image_size}")
    return side, ups


def dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation (section 4): convolution and linear weights from N(0, 0.02), BatchNorm scales
    from N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class DCGANGenerator(nn.Module):
    """``z`` (B, latent_dim) [and classes ``y`` (B,)] -> images (B, out_channels, image_size, image_size) in
    [-1, 1]: ``Linear -> BN -> ReLU`` to a ``side x side`` map of ``width * 2^(ups-1)`` channels, then per level
    ``ConvTranspose(4, stride 2) -> BN -> ReLU`` halving the channels, the last one to ``out_channels`` with Tanh.

    At 28 px with ``width=64``: 128 x 7 x 7 -> 64 x 14 x 14 -> 1 x 28 x 28 (about 0.9 M parameters with
    ``latent_dim=100``, DCGAN's ``z`` size). Sample in ``eval()`` mode: BatchNorm then uses its running
    statistics, so an image depends on its own ``z`` only (GenRep's positives need that).

    Args:
        latent_dim: size of ``z``.
        width: channels of the last hidden map (doubled at each level towards ``z``).
        out_channels: 1 (grey) or 3 (colour).
        image_size: side of the images (28, 32, 64 ...).
        num_classes: classes of a class-conditional generator (a one-hot beside ``z``); 0: unconditional.
    """

    def __init__(self, latent_dim: int = 100, width: int = 64, out_channels: int = 1, image_size: int = 28,
                 num_classes: int = 0) -> None:
        super().__init__()
        self.latent_dim, self.num_classes, self.out_channels, self.image_size = latent_dim, num_classes, \
            out_channels, image_size
        side, ups = _levels(image_size)
        channels = [width * 2 ** (ups - 1 - i) for i in range(ups)] + [out_channels]  # 28 px: [128, 64, 1]
        self.side, self.top = side, channels[0]
        self.project = nn.Linear(latent_dim + num_classes, channels[0] * side * side, bias=False)
        self.project_act = nn.Sequential(nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:])):
            last = i == ups - 1
            layers.append(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=last))
            layers += [nn.Tanh()] if last else [nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        self.upsample = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:
            if y is None:
                raise ValueError(f"this DCGANGenerator is class-conditional ({self.num_classes} classes): pass y")
            z = torch.cat([z, F.one_hot(y.long(), self.num_classes).to(z.dtype)], dim=1)  # (B, D + K)
        h = self.project_act(self.project(z).view(-1, self.top, self.side, self.side))  # (B, C0, s, s)
        return self.upsample(h)  # (B, C, H, W) in [-1, 1]


class DCGANDiscriminator(nn.Module):
    """Images (B, in_channels, H, W) in [-1, 1] [and classes ``y``] -> real/fake logits (B,): per level
    ``Conv(4, stride 2) -> [BN] -> LeakyReLU(0.2)`` doubling the channels from ``width`` (no BN on the first,
    DCGAN section 3), then a linear score of the flattened ``side x side`` map, plus ``<embed(y), h>`` for a
    class-conditional one (the projection discriminator, arXiv 1802.05637 eq. 3).
    """

    def __init__(self, width: int = 64, in_channels: int = 1, image_size: int = 28, num_classes: int = 0) -> None:
        super().__init__()
        side, ups = _levels(image_size)
        self.num_classes = num_classes
        layers: list[nn.Module] = []
        c_in = in_channels
        for i in range(ups):
            c_out = width * 2 ** i
            layers.append(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=i == 0))
            layers += ([] if i == 0 else [nn.BatchNorm2d(c_out)]) + [nn.LeakyReLU(0.2, inplace=True)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        features = c_in * side * side
        self.score = nn.Linear(features, 1)
        self.embed = nn.Embedding(num_classes, features) if num_classes else None
        dcgan_init(self)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x).flatten(1)  # (B, F)
        out = self.score(h).squeeze(1)  # (B,)
        if self.embed is not None:
            if y is None:
                raise ValueError(f"this DCGANDiscriminator is class-conditional ({self.num_classes} classes): pass y")
            out = out + (self.embed(y.long()) * h).sum(dim=1)
        return out


def discriminator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """``-log D(x) - log(1 - D(G(z)))`` on logits (B,) (Goodfellow et al., arXiv 1406.2661, eq. 1)."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def generator_loss(fake: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss ``-log D(G(z))`` on logits (B,) (arXiv 1406.2661, section 3)."""
    return F.softplus(-fake).mean()


class DCGAN(LightningModule):
    """Trains a generator against a discriminator on real images, one discriminator step then one generator
    step per batch (Lightning's manual optimisation), with DCGAN's Adam (lr 2e-4, betas (0.5, 0.999)) for both.

    Batches are the image DataModules' ``(views, labels)`` with ``views=None`` (one un-augmented view):
    images are taken back to [0, 1] with the DataModule's ``denormalize`` and scaled to [-1, 1], the Tanh
    range. A class-conditional generator trains on the labels. ``forward(z, y)`` renders images in [-1, 1];
    ``self.generator`` is the network to keep (``GeneratedViewsDataModule`` reads it from this checkpoint).
    ``predict`` renders one sample per image of the DataModule's predict split (of its class, when conditional).

    The defaults are DCGAN's at 28 px grey (Fashion-MNIST): ``DCGAN()`` trains beside ``FashionMNISTDataModule``
    or, offline, ``SyntheticImageDataModule(image_size=28, channels=1, views=None)``.

    Args:
        generator, discriminator: the two networks (``DCGANGenerator``, ``DCGANDiscriminator`` by default).
        optim_g, optim_d: their optimisers.
    """

    def __init__(self, generator: nn.Module | None = None, discriminator: nn.Module | None = None,
                 optim_g: Optim = ADAM, optim_d: Optim = ADAM) -> None:
        super().__init__()
        with modules_in_hparams():
            self.save_hyperparameters()
        self.optim_g, self.optim_d = optim_g, optim_d
        self.generator = generator if generator is not None else DCGANGenerator()
        self.discriminator = discriminator if discriminator is not None else DCGANDiscriminator()
        self.automatic_optimization = False
        self.latent_dim = int(self.generator.latent_dim)
        self.num_classes = int(getattr(self.generator, "num_classes", 0))
        if getattr(self.discriminator, "num_classes", 0) != self.num_classes:
            raise ValueError(f"DCGAN: the generator has num_classes={self.num_classes} but the discriminator "
                             f"{getattr(self.discriminator, 'num_classes', 0)}: give both the same")

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(z, y) if self.num_classes else self.generator(z)

    def _real(self, batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        views, labels = batch
        x = views[0] if isinstance(views, (list, tuple)) else views
        dm = self.trainer.datamodule if self._trainer is not None else None
        x = dm.denormalize(x) if hasattr(dm, "denormalize") else x  # [0, 1]
        if not self.num_classes:
            return x * 2 - 1, None
        if bool((labels < 0).any()):
            raise ValueError("DCGAN: a class-conditional generator needs labeled images (got label -1)")
        return x * 2 - 1, labels

    def training_step(self, batch, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        sched_g, sched_d = self.lr_schedulers()
        real, y = self._real(batch)
        n = real.shape[0]
        z = torch.randn(n, self.latent_dim, device=real.device)
        fake = self(z, y)

        self.toggle_optimizer(opt_d)
        real_logits, fake_logits = self.discriminator(real, y), self.discriminator(fake.detach(), y)
        d_loss = discriminator_loss(real_logits, fake_logits)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        opt_d.step()
        self.untoggle_optimizer(opt_d)

        self.toggle_optimizer(opt_g)
        g_loss = generator_loss(self.discriminator(fake, y))
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        opt_g.step()
        self.untoggle_optimizer(opt_g)
        sched_g.step()
        sched_d.step()

        self.log_dict({"train/d_loss": d_loss.detach(), "train/g_loss": g_loss.detach()}, prog_bar=True,
                      batch_size=n)
        self.log_dict({"train/d_real": torch.sigmoid(real_logits.detach()).mean(),
                       "train/d_fake": torch.sigmoid(fake_logits.detach()).mean()}, batch_size=n)

    def validation_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        """The discriminator's mean belief that held-out real images (``val/d_real``) and fresh samples
        (``val/d_fake``) are real: a discriminator that memorised the training images scores the held-out ones
        low; a generator that fools it brings ``val/d_fake`` up."""
        if dataloader_idx != 0:
            return
        x, labels = batch
        real, y = self._real(([x], labels))
        fake = self(torch.randn(real.shape[0], self.latent_dim, device=real.device), y)
        n = real.shape[0]
        self.log("val/d_real", torch.sigmoid(self.discriminator(real, y)).mean(), batch_size=n,
                 add_dataloader_idx=False)
        self.log("val/d_fake", torch.sigmoid(self.discriminator(fake, y)).mean(), batch_size=n,
                 add_dataloader_idx=False)

    def predict_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        """``{"images": (B, C, H, W)}`` in [0, 1]: one sample per image of the predict batch, from codes seeded by
        the batch's number (the same images at every run), of the batch's classes for a class-conditional
        generator; ``lit_digest.core.images.ImageWriter`` writes them as PNG files."""
        x, labels = (batch[0], batch[1]) if isinstance(batch, (list, tuple)) else (batch, None)
        n = len(x[0]) if isinstance(x, (list, tuple)) else len(x)
        g = torch.Generator().manual_seed(1_000_003 * dataloader_idx + batch_idx)
        z = torch.randn(n, self.latent_dim, generator=g).to(self.device)
        if self.num_classes and (labels is None or bool((labels < 0).any())):
            raise ValueError("DCGAN: a class-conditional generator draws one sample per labeled predict image; the "
                             "predict split has no labels")
        return {"images": (self(z, labels if self.num_classes else None) + 1) / 2}

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` images in [0, 1] from fixed codes (the generator in eval mode), classes cycling for a
        class-conditional one: the panel ``GeneratorSamples`` saves."""
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.latent_dim, generator=g).to(self.device)
        y = (torch.arange(n) % self.num_classes).to(self.device) if self.num_classes else None
        was_training = self.generator.training
        self.generator.eval()
        x = self(z, y)
        self.generator.train(was_training)
        return (x + 1) / 2

    def configure_optimizers(self) -> Any:
        trainer = self.trainer
        total = trainer.estimated_stepping_batches
        if trainer.max_steps is not None and trainer.max_steps > 0:  # each batch steps both optimisers
            epochs = trainer.max_epochs if trainer.max_epochs not in (None, -1) else math.inf
            total = min(math.ceil(trainer.max_steps / 2), epochs * trainer.num_training_batches)
        epoch_steps = steps_per_epoch(trainer)
        configs = []
        for optim, module in ((self.optim_g, self.generator), (self.optim_d, self.discriminator)):
            optimizer = make_optimizer(optim, [{"params": [p for p in module.parameters() if p.requires_grad]}])
            peak = optimizer.param_groups[0]["lr"]
            schedule = LambdaLR(optimizer, lambda step, o=optim, p=peak: lr_factor(step, o, p, total, epoch_steps))
            configs.append({"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}})
        return configs


class GeneratorSamples(Callback):
    """Saves ``samples.png`` (and logs it to W&B) in the run folder at the end of every training epoch: the
    generator's images for the same ``num_images`` codes, one class per column for a class-conditional one."""

    def __init__(self, num_images: int = 64, seed: int = 0) -> None:
        self.num_images, self.seed = num_images, seed
        self.path: Path | None = None

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        folder = run_dir(trainer)
        if not trainer.is_global_zero or not hasattr(pl_module, "sample"):
            return
        images = pl_module.sample(self.num_images, self.seed).float().cpu()
        nrow = getattr(pl_module, "num_classes", 0) or int(math.sqrt(self.num_images))
        grid = torchvision.utils.make_grid(images, nrow=nrow, padding=1)
        self.path = folder / "samples.png"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        torchvision.utils.save_image(grid, self.path)
        for logger in trainer.loggers:
            if isinstance(logger, pl.loggers.WandbLogger):
                logger.log_image(key="train/samples", images=[grid], caption=[f"epoch {trainer.current_epoch}"])
