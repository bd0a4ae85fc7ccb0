"""Training views drawn from a frozen generator (GenRep, Jahanian et al., arXiv 2106.05258), evaluation on real
images.

``GeneratedViewsDataModule`` serves the SSL methods' batches, ``(views, labels)`` for training and ``(images,
labels)`` for evaluation, like every image DataModule here, so ``SimCLR`` and ``SupCon`` train on it unchanged:

* training: ``V`` images per sample, ``G(z)`` and ``V - 1`` walks ``G(z + w_j)`` (``LatentWalk``), each then
  augmented by its own pipeline of ``views`` (view 0 on the anchor, view j on walk j) and normalised; labels
  are the generator's classes for a class-conditional generator (so ``SupCon`` takes same-class samples as
  positives, the paper's section 3.2) and -1 otherwise;
* evaluation (validation, test, predict, the kNN bank, ``EncoderReport``): the real images of ``eval_data``
  (e.g. ``FashionMNISTDataModule``), normalised with its statistics, which the generated views share.

Views are rendered on the training device in batches, from the per-rank random stream (``generator(device)``)
in ``on_after_batch_transfer``: a fresh set every step. ``pregenerate`` instead renders a fixed data set once to
an ``.npz`` file, ``num_samples`` anchors with ``num_neighbors`` walks each, as the paper does (1300 anchors per
ImageNet class with 20 neighbours, official ``utils/generate_dataset_*_Nsamples.py``); each training sample then
takes random neighbours of its anchor (official ``util.GansetDataset``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from lit_digest.core.checkpoints import read_state_dict
from lit_digest.core.download import missing_data_error
from lit_digest.ssl.data import ImageDataModule, Splits, TensorImageDataset
from lit_digest.ssl.genrep.walk import LatentWalk
from lit_digest.ssl.views import to_unit_float

__all__ = ["GeneratedViewsDataModule", "load_generator", "resolve_checkpoint"]

RUNS = Path("runs")


def resolve_checkpoint(spec: str) -> Path:
    """``run:<name>`` -> the newest ``last.ckpt`` of ``runs/<name>/*/checkpoints/`` (the run folders of the
    command line: ``configs/genrep/dcgan/fashion_mnist.yaml`` runs as ``dcgan-fashion_mnist``); any other string
    is a path."""
    if not spec.startswith("run:"):
        return Path(spec)
    name = spec[4:]
    found = sorted((RUNS / name).glob("*/checkpoints/last.ckpt"))
    if not found:
        raise missing_data_error(
            f"A checkpoint of the runs '{name}'", RUNS / name,
            fix=f"train the generator first (python -m lit_digest fit --config configs/genrep/"
                f"{name.replace('-', '/', 1)}.yaml), or set data.init_args.checkpoint to a generator checkpoint")
    return found[-1]  # run folders are named by date and time


def load_generator(module: nn.Module | None, checkpoint: str | None, prefix: str | None = None) -> nn.Module:
    """The frozen generator: ``module`` as built (``checkpoint`` None: weights it loads itself, or random ones in
    a smoke test), with the weights of ``checkpoint`` (a lit_digest ``.ckpt`` whose generator is
    ``generator.*``, e.g. ``DCGAN``'s, or a ``torch.save(generator.state_dict())`` file), or, with no ``module``,
    the generator of a ``DCGAN`` checkpoint rebuilt from its hyperparameters."""
    if module is None:
        if checkpoint is None:
            raise ValueError("GeneratedViewsDataModule needs a generator: set data.init_args.generative_model "
                             "(a class path) and/or data.init_args.checkpoint (a DCGAN checkpoint)")
        from lit_digest.ssl.genrep.dcgan import DCGAN

        path = resolve_checkpoint(checkpoint)
        if not path.is_file():
            raise missing_data_error("Generator checkpoint", path, fix="set data.init_args.checkpoint")
        module = DCGAN.load_from_checkpoint(path, map_location="cpu").generator
    elif checkpoint is not None:
        path = resolve_checkpoint(checkpoint)
        if not path.is_file():
            raise missing_data_error("Generator checkpoint", path, fix="set data.init_args.checkpoint")
        state = read_state_dict(path)
        if prefix is None:
            prefix = "generator." if any(k.startswith("generator.") for k in state) else ""
        selected = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        expected = module.state_dict()
        missing, unexpected = sorted(set(expected) - set(selected)), sorted(set(selected) - set(expected))
        shapes = [k for k in set(expected) & set(selected) if expected[k].shape != selected[k].shape]
        if missing or unexpected or shapes:
            raise ValueError(
                f"Checkpoint '{path}' does not fit the generator {type(module).__name__} (key prefix {prefix!r}): "
                f"missing {missing[:8]}, unexpected {unexpected[:8]}, shapes differ for {sorted(shapes)[:8]}. "
                "Build data.init_args.generative_model as in the run that saved it, or set "
                "data.init_args.checkpoint_prefix.")
        module.load_state_dict(selected)
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


def fingerprint(module: nn.Module) -> str:
    """A short hash of a module's weights: a pre-generated data set belongs to one generator."""
    h = hashlib.sha1()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class _Indices(Dataset):
    """Training samples of the online mode: only an index; the DataModule renders them on the device."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class _FixedWalks(Dataset):
    """A pre-generated data set: anchor ``i`` (uint8 (C, H, W)), ``n_positives`` of its neighbours drawn at
    random (without replacement when there are enough), its label. Outside DataLoader workers the draws come
    from ``generator`` (the DataModule's, seeded per rank), in workers from the worker's own seeded stream."""

    def __init__(self, anchors: torch.Tensor, neighbors: torch.Tensor | None, labels: torch.Tensor,
                 n_positives: int, generator: torch.Generator | None = None) -> None:
        self.anchors, self.neighbors, self.labels = anchors, neighbors, labels
        self.n_positives, self.generator = n_positives, generator

    def __len__(self) -> int:
        return len(self.anchors)

    def __getitem__(self, i: int):
        anchor = self.anchors[i]
        if self.neighbors is None:  # sigma = 0: every neighbour is the anchor itself
            return anchor, anchor.unsqueeze(0).expand(self.n_positives, *anchor.shape), self.labels[i]
        in_worker = torch.utils.data.get_worker_info() is not None
        g = None if in_worker else self.generator
        k = self.neighbors.shape[1]
        pick = (torch.randperm(k, generator=g)[: self.n_positives] if self.n_positives <= k
                else torch.randint(k, (self.n_positives,), generator=g))
        return anchor, self.neighbors[i, pick], self.labels[i]  # (C, H, W), (P, C, H, W), ()


class GeneratedViewsDataModule(ImageDataModule):
    """Contrastive views from any frozen generator ``nn.Module`` (GenRep, arXiv 2106.05258): anchors ``G(z)``
    with ``z`` from a normal truncated at ``bound`` standard deviations, positives ``G(z + w)`` with a Gaussian
    walk ``w`` of scale ``sigma`` cut at ``bound * sigma`` (``LatentWalk``), then the pixel augmentations of
    ``views``; evaluation on the real images of ``eval_data``.

    The generator is called as ``G(z)``, or ``G(z, y)`` when it has classes, and returns images in
    ``output_range`` (Tanh: [-1, 1], BigGAN's and StyleGAN's too). ``latent_dim`` and ``num_classes`` default to
    its attributes of those names. It is frozen (eval mode, no gradients), moved to the training device on the
    first batch, and is no part of the trained model's checkpoint.

    Defaults are the official code's: sigma 0.2 (its released unconditional BigBiGAN encoders; the
    class-conditional BigGAN ones use 1.0), bound 2.0 (``truncnorm(-2, 2)``, the models' ``tr2.0``), 20
    neighbours per pre-generated anchor. The paper's pixel augmentations (official ``main_unified.py``):
    ``SimCLRViews(min_scale=0.2, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, jitter_p=0.8,
    grayscale_p=0.2, blur_p=0.0)``; ``views=None`` gives the latent views alone.

    Args:
        generative_model: the generator (a class path in the config). None: rebuilt from a ``DCGAN`` checkpoint.
        checkpoint: its weights: a ``DCGAN`` ``.ckpt`` (keys ``generator.*``), a state_dict file, or
            ``run:<name>``, the newest ``last.ckpt`` under ``runs/<name>/`` (``run:dcgan-fashion_mnist``);
            None keeps the module's own weights.
        checkpoint_prefix: the generator's key prefix in the checkpoint (None: ``generator.`` when present).
        sigma: scale of the latent walk; 0 gives identical images before the pixel augmentation.
        bound: the truncation of anchors and walk, in standard deviations.
        latent_dim, num_classes: the generator's ``z`` size and classes (0: unconditional), if it lacks the
            attributes.
        output_range: the generator's output range, mapped to [0, 1].
        num_samples: training samples per epoch (online), or anchors of the pre-generated data set.
        pregenerate: an ``.npz`` path: render a fixed data set there once (reused while it matches the generator
            and settings), instead of fresh views every step.
        num_neighbors: walks per anchor in the pre-generated data set.
        generation_batch: images per generator call when pre-generating.
        eval_data: the real images of validation, test, predict and the kNN bank; its mean and std normalise
            the generated views too. None: no evaluation loaders, statistics 0.5.
        **kwargs: ``ImageDataModule``'s ``batch_size``, ``num_workers``, ``views``, ``knn_bank_size``, ``seed``
            (of the pre-generated data set too), ``drop_last``, ``predict_splits``.
    """

    name = "generated"

    def __init__(
        self,
        generative_model: nn.Module | None = None,
        checkpoint: str | None = None,
        checkpoint_prefix: str | None = None,
        sigma: float = 0.2,
        bound: float = 2.0,
        latent_dim: int | None = None,
        num_classes: int | None = None,
        output_range: tuple[float, float] = (-1.0, 1.0),
        num_samples: int = 60_000,
        pregenerate: str | None = None,
        num_neighbors: int = 20,
        generation_batch: int = 512,
        eval_data: ImageDataModule | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if num_samples < 1 or num_neighbors < 1 or generation_batch < 1:
            raise ValueError("GeneratedViewsDataModule: num_samples, num_neighbors and generation_batch must be >= 1")
        if output_range[1] <= output_range[0]:
            raise ValueError(f"GeneratedViewsDataModule: output_range must be (low, high), got {output_range}")
        self.generative_model = load_generator(generative_model, checkpoint, checkpoint_prefix)
        latent_dim = latent_dim if latent_dim is not None else getattr(self.generative_model, "latent_dim", None)
        if not isinstance(latent_dim, int):
            raise ValueError(f"Cannot tell the latent size of {type(self.generative_model).__name__}: it has no "
                             "integer `latent_dim` attribute; set data.init_args.latent_dim")
        classes = num_classes if num_classes is not None else int(getattr(self.generative_model, "num_classes", 0))
        self.walk = LatentWalk(latent_dim, sigma, bound, classes)
        self.output_range = output_range
        self.num_samples, self.pregenerate, self.num_neighbors = num_samples, pregenerate, num_neighbors
        self.generation_batch = generation_batch
        self.eval_data = eval_data
        self.fixed: dict[str, torch.Tensor] | None = None

    @property
    def sigma(self) -> float:
        return self.walk.sigma

    @property
    def num_views(self) -> int:
        """Images per training sample: the anchor and ``num_views - 1`` walks (2 without a view pipeline)."""
        return self.views.num_views if self.views is not None else 2

    # -- rendering ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def render(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Images ``G(z[, y])`` (N, C, H, W) as float in [0, 1], the generator moved to ``z``'s device."""
        model = self.generative_model
        if next(iter(model.parameters()), z).device != z.device:
            model.to(z.device)
        if y is not None:
            y = y.to(z.device)
        x = model(z) if y is None else model(z, y)
        lo, hi = self.output_range
        return ((x.float() - lo) / (hi - lo)).clamp_(0, 1)

    @torch.no_grad()
    def sample_views(self, n: int, device: torch.device | str = "cpu",
                     generator: torch.Generator | None = None) -> tuple[list[torch.Tensor], torch.Tensor, dict]:
        """``n`` anchors and their walks before any pixel augmentation: a list of ``num_views`` float images
        (n, C, H, W) in [0, 1] (anchors first), labels (n,) (-1: unconditional) and the latent codes
        (``z`` (n, D), ``positives`` (n, V-1, D))."""
        v = self.num_views
        z, walks, y = self.walk.sample(n, v - 1, generator, device)
        codes = torch.cat([z.unsqueeze(1), walks], dim=1).flatten(0, 1)  # (n*V, D), sample-major
        x = self.render(codes, None if y is None else y.repeat_interleave(v))
        x = x.view(n, v, *x.shape[1:])  # (n, V, C, H, W)
        labels = y if y is not None else torch.full((n,), -1, dtype=torch.long, device=device)
        return [x[:, j] for j in range(v)], labels, {"z": z, "positives": walks}

    def augment(self, images: list[torch.Tensor], generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """Pipeline ``j`` of ``views`` on image ``j`` of every sample (float [0, 1] in), then normalisation."""
        if self.views is not None:
            images = [view(x, generator) for view, x in zip(self.views.views, images, strict=True)]
        return [self.normalize(to_unit_float(x)) for x in images]

    # -- pre-generated data set -------------------------------------------------------------------------
    def _settings(self) -> dict[str, str | float | int]:
        return {"sigma": float(self.sigma), "bound": float(self.walk.bound), "num_samples": self.num_samples,
                "num_neighbors": self.num_neighbors if self.sigma > 0 else 0, "seed": self.seed,
                "generator": fingerprint(self.generative_model)}

    @torch.no_grad()
    def generate_fixed(self, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """The fixed data set: ``anchors`` (N, C, H, W) and ``neighbors`` (N, K, C, H, W) uint8 (no neighbours
        at sigma 0), ``labels`` (N,), ``z`` (N, D) and ``w`` (N, K, D), seeded by ``seed``."""
        g = torch.Generator(device=device).manual_seed(self.seed)
        k = self.num_neighbors if self.sigma > 0 else 0
        out: dict[str, list[torch.Tensor]] = {"anchors": [], "neighbors": [], "labels": [], "z": [], "w": []}
        step = max(1, self.generation_batch // (k + 1))
        for start in range(0, self.num_samples, step):
            n = min(step, self.num_samples - start)
            z, walks, y = self.walk.sample(n, k, g, device)
            codes = torch.cat([z.unsqueeze(1), walks], dim=1).flatten(0, 1)  # (n*(K+1), D)
            x = self.render(codes, None if y is None else y.repeat_interleave(k + 1))
            x = (x * 255).round().to(torch.uint8).view(n, k + 1, *x.shape[1:]).cpu()
            out["anchors"].append(x[:, 0])
            out["neighbors"].append(x[:, 1:])
            out["labels"].append(y.cpu() if y is not None else torch.full((n,), -1, dtype=torch.long))
            out["z"].append(z.cpu())
            out["w"].append((walks - z.unsqueeze(1)).cpu())
        return {key: torch.cat(parts) for key, parts in out.items()}

    def prepare_data(self) -> None:
        if self.pregenerate is None:
            return
        path = Path(self.pregenerate)
        if path.is_file():
            self._check_matches(path)
            return
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        data = self.generate_fixed(device)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part.npz")
        settings = {f"setting_{k}": np.asarray(v) for k, v in self._settings().items()}
        np.savez(tmp, **{k: v.numpy() for k, v in data.items()}, **settings)
        tmp.replace(path)

    def _check_matches(self, path: Path) -> None:
        with np.load(path) as npz:
            stored = {k[len("setting_"):]: npz[k].item() for k in npz.files if k.startswith("setting_")}
        wanted = self._settings()
        if stored != wanted:
            differ = sorted(k for k in wanted if stored.get(k) != wanted[k])
            raise ValueError(f"'{path}' holds a generated data set with other {', '.join(differ)} "
                             f"({ {k: stored.get(k) for k in differ} } where this run asks for "
                             f"{ {k: wanted[k] for k in differ} }): delete it, or set data.init_args.pregenerate "
                             "to another file")

    def _load_fixed(self) -> dict[str, torch.Tensor]:
        path = Path(self.pregenerate)  # type: ignore[arg-type]
        self.prepare_data()  # a no-op when the file is there and matches
        with np.load(path) as npz:
            data = {k: torch.from_numpy(npz[k]) for k in ("anchors", "neighbors", "labels")}
        if data["neighbors"].shape[1] == 0:
            data["neighbors"] = None
        return data

    # -- ImageDataModule hooks ---------------------------------------------------------------------------
    def make_splits(self) -> Splits:
        if self.eval_data is not None:
            self.eval_data.setup()
            real = self.eval_data.splits
            self.mean, self.std = self.eval_data.mean, self.eval_data.std
            self.num_classes = self.eval_data.num_classes
        else:
            empty = TensorImageDataset(torch.zeros(0, 1, 1, 1, dtype=torch.uint8), torch.zeros(0))
            real = Splits(pretrain=empty, eval_train=empty, val=empty, test=empty)
        g = torch.Generator().manual_seed(0)
        probe = self.render(self.walk.anchors(2, g), self.walk.classes(2, g))
        channels = probe.shape[1]
        if self.eval_data is None:
            self.mean, self.std = (0.5,) * channels, (0.5,) * channels
        elif channels != len(self.mean):
            raise ValueError(f"The generator renders {channels}-channel images but {type(self.eval_data).__name__} "
                             f"holds {len(self.mean)}-channel ones: use a generator of its kind (e.g. "
                             f"DCGANGenerator(out_channels={len(self.mean)}))")
        if self.pregenerate is not None:
            self.fixed = self._load_fixed()
            pretrain: Dataset = _FixedWalks(self.fixed["anchors"], self.fixed["neighbors"], self.fixed["labels"],
                                            self.num_views - 1, self.generator(torch.device("cpu")))
        else:
            pretrain = _Indices(self.num_samples)
        return Splits(pretrain=pretrain, eval_train=real.eval_train, val=real.val, test=real.test)

    def train_dataloader(self) -> DataLoader:
        data = self._splits().pretrain
        drop_last = self.drop_last and len(data) >= self.batch_size
        if isinstance(data, _Indices):  # nothing to load: the views are rendered on the device
            return DataLoader(data, batch_size=self.batch_size, shuffle=True, drop_last=drop_last, num_workers=0)
        return self._loader(data, shuffle=True, drop_last=drop_last)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        trainer = self.trainer
        if trainer is None or not trainer.training:
            x, y, *_ = batch
            return self.prepare_images(x), y
        if torch.is_tensor(batch):  # online: indices -> fresh anchors and walks on this device
            g = self.generator(batch.device)
            images, labels, _ = self.sample_views(batch.shape[0], batch.device, g)
        else:  # pre-generated: uint8 anchors (B, C, H, W) and neighbours (B, P, C, H, W)
            anchors, positives, labels = batch
            images = [anchors] + list(positives.unbind(1))
            g = self.generator(anchors.device)
        return self.augment(images, g), labels
