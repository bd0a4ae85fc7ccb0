"""What codistillation's ``predict`` writes: every group's prediction and the ensemble's, for a classifier (the
image configs) and for byte-level language models (completions)."""

from __future__ import annotations

import functools
import json

import pandas as pd
import torch

from lit_digest.codistillation import ByteLSTM, ByteTextDataModule, Codistillation
from lit_digest.codistillation.predict import sample_bytes
from lit_digest.core.lightning import pl, seed_everything
from lit_digest.ssl import SmallConvNet, SyntheticImageDataModule


def _trainer(tmp_path, **kwargs) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path, **kwargs)


def test_predict_writes_every_groups_classes_and_the_ensembles(tmp_path, capsys):
    seed_everything(0)
    model = Codistillation(functools.partial(SmallConvNet, 3, 4), num_classes=10, num_groups=2, burn_in_steps=1,
                           exchange_every=1)
    data = SyntheticImageDataModule(num_train=32, num_test=12, image_size=8, batch_size=4, num_workers=0,
                                    knn_bank_size=0)
    _trainer(tmp_path, max_steps=2).fit(model, data)
    _trainer(tmp_path).predict(model, data, return_predictions=False)  # a tuple reached conv2d here before
    path = tmp_path / "predictions.csv"
    assert f"lit_digest: wrote 12 predictions to {path}" in capsys.readouterr().out
    frame = pd.read_csv(path)
    assert frame["index"].tolist() == list(range(12)) and (frame["split"] == "test").all()
    images, labels = next(iter(torch.utils.data.DataLoader(data.splits.test, batch_size=12)))
    assert frame["target"].tolist() == labels.tolist()
    model.eval()
    with torch.no_grad():
        x = data.prepare_images(images)
        probs = torch.stack([r(x).softmax(-1) for r in model.replicas])  # (G, N, C)
    for g in range(2):
        assert frame[f"predicted_group{g}"].tolist() == probs[g].argmax(-1).tolist()
        torch.testing.assert_close(torch.tensor(frame[[f"p_group{g}_{c}" for c in range(10)]].to_numpy()).float(),
                                   probs[g], atol=1e-5, rtol=0)
    ensemble = torch.tensor(frame[[f"p_ensemble_{c}" for c in range(10)]].to_numpy()).float()
    torch.testing.assert_close(ensemble, probs.mean(0), atol=1e-5, rtol=0)
    assert frame["predicted_ensemble"].tolist() == probs.mean(0).argmax(-1).tolist()


def test_language_models_write_each_groups_completion_and_the_ensembles(tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("to be or not to be, that is the question. " * 40)
    data = ByteTextDataModule(str(text), seq_len=16, batch_size=8, prompts=["to be", "that"], predict_bytes=12)
    seed_everything(0)
    model = Codistillation(functools.partial(ByteLSTM, 256, 8, 16, 1), num_groups=2, burn_in_steps=1,
                           exchange_every=1)
    _trainer(tmp_path, max_steps=2, limit_val_batches=1).fit(model, data)
    _trainer(tmp_path).predict(model, data, return_predictions=False)
    path = tmp_path / "completions.jsonl"
    assert f"lit_digest: wrote 2 completions to {path}" in capsys.readouterr().out
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["prompt"] for r in rows] == ["to be", "that"] and set(rows[0]) == {"prompt", "group0", "group1",
                                                                                "ensemble"}
    model.eval()
    for i, row in enumerate(rows):  # each group alone and the ensemble, the same seed per prompt
        prompt = torch.tensor([list(row["prompt"].encode())])
        for name, models in (("group0", [model.replicas[0]]), ("ensemble", list(model.replicas))):
            new = sample_bytes(models, prompt, 12, torch.Generator().manual_seed(i))
            assert row[name] == bytes(new).decode("utf-8", errors="replace")
