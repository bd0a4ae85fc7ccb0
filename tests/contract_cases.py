"""Every LightningModule lit_digest ships, built with its defaults beside its DataModule with defaults: the pairs
the contract test (``tests/test_contract.py``) trains for a few steps on a CPU, checkpoints, and loads back with
``load_from_checkpoint(path)`` alone. A method missing here fails ``test_every_method_has_a_contract_case``.

``CASES[name]`` is a function returning ``(module, datamodule)``; use defaults, and pass an argument only where
the method has no sensible default (say why in a comment).
"""

from __future__ import annotations

CASES: dict = {}


# -- tabular (SAINT) ---------------------------------------------------------------------------------------------
def _tabular(make):
    def case():
        from lit_digest.tabular import TabularDataModule

        return make(), TabularDataModule()

    return case


def _saint():
    from lit_digest.tabular import SAINT

    return SAINT()


def _saint_pretrain():
    from lit_digest.tabular import SAINTPretrain

    return SAINTPretrain()


def _tabular_mlp():
    from lit_digest.tabular import TabularMLP

    return TabularMLP()


CASES["SAINT"] = _tabular(_saint)
CASES["SAINTPretrain"] = _tabular(_saint_pretrain)
CASES["TabularMLP"] = _tabular(_tabular_mlp)
CASES["TabularSystem"] = _tabular(_tabular_mlp)  # the base of SAINT and TabularMLP: trained through the MLP


# -- text (GPT-J) ------------------------------------------------------------------------------------------------
def _causal_lm():
    from lit_digest.text import CausalLM, CorpusDataModule

    return CausalLM(), CorpusDataModule()  # the small preset on the shipped Jargon File excerpt


CASES["CausalLM"] = _causal_lm


# -- codistillation ----------------------------------------------------------------------------------------------
def _codistillation():
    from lit_digest.codistillation import Codistillation
    from lit_digest.ssl import SmallConvNet, SyntheticImageDataModule

    # the model is injected (no default: the method wraps any classifier); the paper gives no single burn-in, and
    # the default 500 steps is longer than this run, which Codistillation refuses (distillation would never start)
    return (Codistillation(SmallConvNet(3, 8), num_classes=10, burn_in_steps=1),
            SyntheticImageDataModule(knn_bank_size=0))


CASES["Codistillation"] = _codistillation


# -- MUSE ----------------------------------------------------------------------------------------------------------
def _muse():
    from lit_digest.muse import MUSE, SyntheticEmbeddingsDataModule

    # the default data are fastText's 300-d Wikipedia vectors (6 GB each); offline: a synthetic pair of that width
    return MUSE(), SyntheticEmbeddingsDataModule(dim=300)


def _muse_procrustes():
    from lit_digest.muse import MUSEProcrustes, SyntheticEmbeddingsDataModule

    # as MUSE, with the synthetic pair's training dictionary (supervised MUSE needs one)
    return MUSEProcrustes(), SyntheticEmbeddingsDataModule(dim=300, dico_train="default")


CASES["MUSE"] = _muse
CASES["MUSEProcrustes"] = _muse_procrustes


# -- lr_control ----------------------------------------------------------------------------------------------------
def _meta_training():
    from lit_digest.lr_control import MetaTraining, TaskPool

    # one meta-training step is 16 full inner training runs of pool tasks (about 30 s on a CPU): here 2 runs of the
    # two smallest tasks at a fifth of their budget, as configs/lr_control/smoke.yaml
    return (MetaTraining(episodes_per_iteration=2, decisions=4),
            TaskPool(tasks=["cancer-mlp", "digits-mlp-wide"], step_scale=0.2))


def _task_module():
    from lit_digest.lr_control.tasks import POOL, TaskData, TaskModule

    spec = next(s for s in POOL if s.name == "cancer-mlp")  # a task is what TaskModule trains: it has no default
    return TaskModule(spec), TaskData(spec)


CASES["MetaTraining"] = _meta_training
CASES["TaskModule"] = _task_module


# -- text (authors) and text2image -----------------------------------------------------------------------------

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


def _ganroses():
    from lit_digest.gan.ganroses import GANsNRoses, PhotosToDrawingsDataModule

    # photos=None: grey drawn faces stand in for the AT&T photos (the default data/att_faces may be absent)
    return GANsNRoses(), PhotosToDrawingsDataModule(photos=None)


CASES["GANsNRoses"] = _ganroses


def _nerf():
    from lit_digest.nerf import NeRF, ProceduralSceneDataModule

    return NeRF(), ProceduralSceneDataModule()


def _style_nerf():
    from lit_digest.nerf import ProceduralSceneDataModule, StyleNeRF

    # stage 2 trains on patches of rays with a style image, the DataModule's other kind of batch
    return StyleNeRF(), ProceduralSceneDataModule(batches="patches")


CASES["NeRF"] = _nerf
CASES["StyleNeRF"] = _style_nerf
