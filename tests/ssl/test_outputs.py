"""What ``predict`` writes for the image methods (classifiers: per-row probabilities as CSV; DCGAN: PNG samples), and
every image method's checkpoint loading with ``load_from_checkpoint(path)`` alone, injected modules included."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from lit_digest.core.callbacks import PredictionWriter
from lit_digest.core.images import ImageWriter
from lit_digest.core.outputs import ANNOUNCED
from lit_digest.ssl import BYOL, KNNEval, LinearEval, SimCLR, SmallConvNet, SupCon, Supervised, SyntheticImageDataModule
from lit_digest.ssl.aet import AED, AET, AffineTransformation, BlockClassifier, NetworkInNetwork
from lit_digest.ssl.genrep import DCGAN, DCGANDiscriminator, DCGANGenerator


def tiny_data(**kwargs) -> SyntheticImageDataModule:
    options = dict(num_train=8, num_test=6, image_size=16, batch_size=4, num_workers=0)
    return SyntheticImageDataModule(**{**options, **kwargs})


@pytest.mark.parametrize("method", ["linear_eval", "block_classifier", "supervised"])
def test_classifiers_write_each_rows_probabilities_and_class_as_csv(method, tmp_path, quiet_trainer, capsys):
    torch.manual_seed(0)
    nin = NetworkInNetwork(num_blocks=3, width=12)
    model = {"linear_eval": lambda: LinearEval(SmallConvNet(width=4)),
             "block_classifier": lambda: BlockClassifier(nin, image_size=16),
             "supervised": lambda: Supervised(SmallConvNet(width=4))}[method]()
    data = tiny_data(predict_splits=["test", "train"])
    quiet_trainer(callbacks=[PredictionWriter(fmt="csv")]).predict(model, data, return_predictions=False)
    (count, unit, where), = ANNOUNCED.findall(capsys.readouterr().out)
    table = pd.read_csv(where)
    assert (int(count), unit, where) == (14, "predictions", str(tmp_path / "predictions.csv")) and len(table) == 14
    probabilities = table[[f"probabilities_{k}" for k in range(10)]].to_numpy()
    assert list(table.columns[:2]) == ["index", "split"] and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    assert (table["predicted"] == probabilities.argmax(axis=1)).all()
    test = table[table["split"] == "test"]
    assert test["index"].tolist() == list(range(6)) and test["labels"].tolist() == data.splits.test.labels.tolist()
    model.eval()
    with torch.no_grad():  # the first row is the first test image's, as the model gives it
        x = data.prepare_images(data.splits.test.images[:1])
        expected = model(x).softmax(1) if method != "supervised" else model.classifier(model(x)).softmax(1)
    np.testing.assert_allclose(probabilities[0], expected[0].numpy(), atol=1e-5)


def test_dcgan_predict_writes_one_sample_per_image_the_same_at_every_run(tmp_path, quiet_trainer, capsys):
    torch.manual_seed(0)
    model = DCGAN(DCGANGenerator(latent_dim=8, width=4), DCGANDiscriminator(width=4))
    data = tiny_data(image_size=28, channels=1, num_test=5)
    for folder in ("a", "b"):
        quiet_trainer(callbacks=[ImageWriter(folder)]).predict(model, data, return_predictions=False)
    announced = ANNOUNCED.findall(capsys.readouterr().out)
    assert [(int(c), u) for c, u, _ in announced] == [(5, "images")] * 2
    for i in range(5):
        a, b = (np.asarray(Image.open(tmp_path / folder / f"{i}.png")) for folder in ("a", "b"))
        assert a.shape == (28, 28) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "a" / "0.png")),
                              np.asarray(Image.open(tmp_path / "a" / "1.png")))


def _injected() -> dict:
    """Every image method built in Python with injected modules (not from a config): the case that needed
    ``weights_only=False`` before."""
    nin = NetworkInNetwork(num_blocks=3, width=12)
    return {
        BYOL: lambda: BYOL(SmallConvNet(width=4), proj_hidden_dim=8, pred_hidden_dim=8, proj_dim=4),
        SimCLR: lambda: SimCLR(SmallConvNet(width=4), proj_hidden_dim=8, proj_dim=4),
        SupCon: lambda: SupCon(SmallConvNet(width=4), proj_hidden_dim=8, proj_dim=4),
        Supervised: lambda: Supervised(SmallConvNet(width=4)),
        LinearEval: lambda: LinearEval(SmallConvNet(width=4)),
        KNNEval: lambda: KNNEval(SmallConvNet(width=4)),
        AET: lambda: AET(nin, AffineTransformation(degrees=90.0)),
        AED: lambda: AED(nin, image_size=16),
        BlockClassifier: lambda: BlockClassifier(nin, image_size=16),
        DCGAN: lambda: DCGAN(DCGANGenerator(latent_dim=8, width=4), DCGANDiscriminator(width=4)),
    }


@pytest.mark.parametrize("cls", list(_injected()), ids=lambda c: c.__name__)
def test_checkpoints_load_with_load_from_checkpoint_alone(cls, tmp_path, quiet_trainer):
    model = _injected()[cls]()
    trainer = quiet_trainer()
    trainer.strategy.connect(model)
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    loaded = cls.load_from_checkpoint(tmp_path / "model.ckpt")
    assert type(loaded) is cls and loaded.state_dict().keys() == model.state_dict().keys()
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name


@pytest.mark.timeout(60)
def test_knn_eval_fit_ends_after_one_evaluation_whatever_bounds_the_run(quiet_trainer):
    """Before: nothing steps the optimisers of ``KNNEval``, so a run bounded by ``max_steps`` never ended."""
    trainer = quiet_trainer(max_steps=3, num_sanity_val_steps=0)
    trainer.fit(KNNEval(SmallConvNet(width=4)), tiny_data())
    assert trainer.current_epoch == 1 and 0 <= trainer.callback_metrics["val/knn_acc_k20"] <= 1
