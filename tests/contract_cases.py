"""Every LightningModule lit_digest ships, built with its defaults beside its DataModule with defaults: the pairs
the contract test (``tests/test_contract.py``) trains for a few steps on a CPU, checkpoints, and loads back with
``load_from_checkpoint(path)`` alone. A method missing here fails ``test_every_method_has_a_contract_case``.

``CASES[name]`` is a function returning ``(module, datamodule)``; use defaults, and pass an argument only where
the method has no sensible default (say why in a comment).
"""

from __future__ import annotations

CASES: dict = {}


def _author_attribution():
    from lit_digest.text.authors import AuthorAttribution, LabelledTextDataModule

    return AuthorAttribution(), LabelledTextDataModule()


def _controlled_lm():
    from lit_digest.text.authors import ControlledLM, LabelledTextDataModule

    # the one DataModule serves passages (attribution, its default) or control-prefixed windows (the LM)
    return ControlledLM(), LabelledTextDataModule(batches="lm")


CASES["AuthorAttribution"] = _author_attribution
CASES["ControlledLM"] = _controlled_lm


def _text2image(method: str):
    def case():
        from lit_digest import text2image

        module = getattr(text2image, method)()
        if method == "VQGANCLIP":  # generation trains nothing; its data are prompts
            return module, text2image.PromptDataModule()
        return module, text2image.SceneDataModule()

    return case


for _method in ("VQGANModule", "CLIPModule", "VQGANCLIP", "SceneAttributeClassifier"):
    CASES[_method] = _text2image(_method)


# -- ssl, gan, depth ------------------------------------------------------------------------------------------
# The image methods share their DataModules; SyntheticImageDataModule() (3-channel 32-px class patterns, offline)
# stands in for CIFAR-10, the data their defaults are shaped for. The augmentation is the data's option
# (``views``): its default is one un-augmented view, so BYOL and SimCLR, which compare two views, get theirs.


def _byol():
    from lit_digest.ssl import BYOL, BYOLViews, SyntheticImageDataModule

    return BYOL(), SyntheticImageDataModule(views=BYOLViews())


def _simclr():
    from lit_digest.ssl import SimCLR, SimCLRViews, SyntheticImageDataModule

    return SimCLR(), SyntheticImageDataModule(views=SimCLRViews())


def _on_synthetic_images(name: str):
    def case():
        import lit_digest.ssl
        import lit_digest.ssl.aet

        method = getattr(lit_digest.ssl, name, None) or getattr(lit_digest.ssl.aet, name)
        return method(), lit_digest.ssl.SyntheticImageDataModule()

    return case


def _dcgan():
    from lit_digest.ssl import SyntheticImageDataModule
    from lit_digest.ssl.genrep import DCGAN

    # DCGAN()'s defaults are Fashion-MNIST's 28-px grey images; FashionMNISTDataModule() downloads them, so the
    # offline stand-in takes their shape (real images as they are: views=None, its default)
    return DCGAN(), SyntheticImageDataModule(image_size=28, channels=1)


def _scfegan():
    from lit_digest.gan import SCFEGAN, SyntheticFaceDataModule

    return SCFEGAN(), SyntheticFaceDataModule()


def _depth(name: str):
    def case():
        import lit_digest.depth

        return getattr(lit_digest.depth, name)(), lit_digest.depth.ProceduralRGBDDataModule()

    return case


CASES.update({
    "BYOL": _byol,
    "SimCLR": _simclr,
    **{name: _on_synthetic_images(name) for name in ("SupCon", "Supervised", "LinearEval", "KNNEval", "AET", "AED",
                                                     "BlockClassifier")},
    "DCGAN": _dcgan,
    "SCFEGAN": _scfegan,
    "DepthEstimation": _depth("DepthEstimation"),
    "DepthMerge": _depth("DepthMerge"),
})
