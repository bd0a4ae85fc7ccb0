"""MUSE end to end on synthetic rotations (lit_digest.methods.muse, lit_digest.nn.muse)."""

import glob
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from lit_digest.alignment import EmptyDictionaryError
from lit_digest.data.embeddings import SyntheticEmbeddingsDataModule, load_embeddings
from lit_digest.methods.muse import MUSE, MUSEProcrustes
from lit_digest.nn.muse import LanguageDiscriminator, LinearMapping

ROOT = Path(__file__).resolve().parents[1]
MUSE_CONFIGS = sorted(
    Path(p).relative_to(ROOT).as_posix() for p in glob.glob(str(ROOT / "configs" / "muse" / "*.yaml"))
)


def muse_smoke_overrides(config: str) -> list[str]:
    """Arguments that run a configs/muse file on tiny offline synthetic data."""
    return [
        "--data", "lit_digest.data.embeddings.SyntheticEmbeddingsDataModule",
        "--data.init_args.n_words", "300", "--data.init_args.dim", "300",
    ]  # fmt: skip


def trainer(tmp_path=None, **kwargs):
    opts = dict(
        accelerator="cpu", devices=1, max_epochs=20, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    if tmp_path is not None:
        opts["default_root_dir"] = str(tmp_path)
    opts.update(kwargs)
    return pl.Trainer(**opts)


@pytest.fixture
def one_thread():
    """Small matrices run fastest (and steadiest on a shared machine) on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_networks_follow_the_paper():
    mapping = LinearMapping(6)
    assert torch.equal(mapping.weight, torch.eye(6)) and not any(
        "bias" in n for n, _ in mapping.named_parameters()
    )
    dis = LanguageDiscriminator(6, hidden_dim=2048)
    layers = list(dis.net)
    assert isinstance(layers[0], nn.Dropout) and layers[0].p == 0.1
    linears = [m for m in layers if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(6, 2048), (2048, 2048), (2048, 1)]
    assert all(m.negative_slope == 0.2 for m in layers if isinstance(m, nn.LeakyReLU))
    dis.eval()
    x = torch.randn(5, 6)
    probs = dis(x)
    assert probs.shape == (5,) and ((probs > 0) & (probs < 1)).all()
    torch.testing.assert_close(probs, torch.sigmoid(dis.logits(x)))


def test_schedule_counts_steps_per_phase():
    model = MUSE(dim=4, n_epochs=2, epoch_size=100, batch_size=32, n_refinement=3, dis_hidden_dim=8)
    assert [model.train_steps_in_epoch(e) for e in range(6)] == [4, 4, 1, 1, 1, 0]
    model._adversarial_end = 1  # the learning rate fell below min_lr after the first epoch
    assert [model.train_steps_in_epoch(e) for e in range(5)] == [4, 1, 1, 1, 0]
    assert [MUSEProcrustes(dim=4, n_refinement=2).train_steps_in_epoch(e) for e in range(4)] == [1, 1, 1, 0]


def test_criterion_drives_lr_decay_shrink_and_the_end_of_the_adversarial_phase(tmp_path, one_thread):
    dm = SyntheticEmbeddingsDataModule(n_words=200, dim=4)
    model = MUSE(
        dim=4, dis_hidden_dim=8, n_epochs=5, epoch_size=64, n_refinement=1, min_lr=0.05, dico_max_rank=200
    )
    scores = [0.5, 0.4, 0.3, 0.2, 0.1, 0.0]  # improves once, then drops every epoch
    model.criterion = lambda: scores[model.current_epoch]
    lrs = []

    class Record(pl.Callback):
        def on_train_epoch_start(self, trainer, module):  # the rate set at the end of the last epoch
            lrs.append(module.optimizers()[0].param_groups[0]["lr"])

    fit = trainer(tmp_path, max_epochs=10, callbacks=[Record()])
    fit.fit(model, dm)
    # decay 0.98 each epoch; the first drop only arms the shrink, the second halves the rate,
    # which falls below min_lr and ends the adversarial phase after epoch 2; one refinement follows
    assert lrs[:4] == pytest.approx([0.1, 0.098, 0.09604, 0.0941192 * 0.5])
    assert model._adversarial_end == 3 and fit.current_epoch == 4
    assert float(model.best_score) == 0.5


def test_supervised_procrustes_recovers_the_rotation(tmp_path):
    dm = SyntheticEmbeddingsDataModule(n_words=1500, dim=32, noise=0.02, dico_train="default", seed=1)
    model = MUSEProcrustes(dim=32, n_refinement=2, export="vec", export_dir=str(tmp_path / "export"))
    trainer(tmp_path).fit(model, dm)
    assert model.final_metrics["p@1_nn"] >= 99.0 and model.final_metrics["p@1_csls"] >= 99.0
    assert (model.mapping.weight - dm.pair.rotation).norm() < 0.05
    exported = load_embeddings(tmp_path / "export" / "vectors-src.txt", max_vocab=0)
    torch.testing.assert_close(exported.vectors, dm.src.vectors @ model.best_weight.T, atol=1e-4, rtol=0)


def test_supervised_from_identical_strings(tmp_path):
    dm = SyntheticEmbeddingsDataModule(
        n_words=1500, dim=32, noise=0.02, n_identical=80, dico_train="identical_char"
    )
    model = MUSEProcrustes(dim=32, n_refinement=1)
    trainer(tmp_path).fit(model, dm)
    assert len(dm.dico_train) == 80 and model._selection() == "criterion"
    assert model.final_metrics["p@1_csls"] >= 99.0


def test_unsupervised_adversarial_and_refinement_reach_90(tmp_path, one_thread):
    pl.seed_everything(0)
    dm = SyntheticEmbeddingsDataModule(n_words=2000, dim=16, noise=0.02, n_clusters=0, rotation_angle=1.0)
    model = MUSE(
        dim=16, dis_hidden_dim=128, n_epochs=3, epoch_size=32 * 300, n_refinement=2, dis_most_frequent=2000,
        dico_max_rank=2000, criterion_words=2000,
    )  # fmt: skip
    fit = trainer(tmp_path, max_epochs=10)
    fit.fit(model, dm)
    assert fit.current_epoch == 5  # 3 adversarial epochs + 2 refinement iterations, then the model stops
    assert model.final_metrics["p@1_csls"] > 90.0
    w = model.mapping.weight.detach()
    torch.testing.assert_close(w @ w.T, torch.eye(16), atol=1e-4, rtol=0)  # Procrustes output
    assert (w - dm.pair.rotation).norm() < 0.1
    assert fit.callback_metrics["val/best_criterion"] > 0.95
    assert 0.0 <= float(fit.callback_metrics["val/dis_acc"]) <= 1.0


def test_adversarial_steps_keep_w_near_orthogonal(tmp_path, one_thread):
    def deviation_after_training(beta):
        pl.seed_everything(0)
        dm = SyntheticEmbeddingsDataModule(n_words=500, dim=8, rotation_angle=1.0)
        model = MUSE(dim=8, dis_hidden_dim=32, map_beta=beta, n_epochs=1, epoch_size=32 * 300, n_refinement=0)
        trainer(tmp_path, max_epochs=1).fit(model, dm)
        w = model.best_weight
        return (w @ w.T - torch.eye(8)).abs().max().item()

    with_update, without = deviation_after_training(0.01), deviation_after_training(0.0)
    assert with_update < 0.6 * without  # 0.31 against 0.64 when written


def test_empty_induced_dictionary_stops_refinement_clearly(tmp_path):
    dm = SyntheticEmbeddingsDataModule(n_words=300, dim=8, dico_train="default", n_train=100)
    model = MUSEProcrustes(dim=8, n_refinement=2, dico_threshold=100.0)
    with pytest.raises(EmptyDictionaryError, match="induced dictionary is empty"):
        trainer(tmp_path).fit(model, dm)


def test_supervised_needs_a_training_dictionary(tmp_path):
    with pytest.raises(ValueError, match="needs a training dictionary"):
        trainer(tmp_path).fit(MUSEProcrustes(dim=8), SyntheticEmbeddingsDataModule(n_words=100, dim=8))


def test_dimension_mismatch_is_explained(tmp_path):
    with pytest.raises(ValueError, match="set model.init_args.dim: 8"):
        trainer(tmp_path).fit(
            MUSE(dim=300, dis_hidden_dim=8), SyntheticEmbeddingsDataModule(n_words=100, dim=8)
        )


def test_checkpoint_restores_the_mapping(tmp_path, one_thread):
    dm = SyntheticEmbeddingsDataModule(n_words=300, dim=8, rotation_angle=1.0)
    model = MUSE(dim=8, dis_hidden_dim=16, n_epochs=1, epoch_size=32 * 5, n_refinement=1, dico_max_rank=300)
    fit = trainer(tmp_path, enable_checkpointing=True, max_epochs=2)
    fit.fit(model, dm)
    path = tmp_path / "w.ckpt"
    fit.save_checkpoint(path)
    restored = MUSE.load_from_checkpoint(path)
    assert torch.equal(restored.mapping.weight, model.mapping.weight)
    assert torch.equal(restored.best_weight, model.best_weight)
    assert "src_emb" not in torch.load(path, weights_only=False)["state_dict"]  # embeddings stay out


@pytest.mark.parametrize("config", MUSE_CONFIGS)
def test_muse_configs_run_on_synthetic_data(config, tmp_path, monkeypatch):
    from lit_digest.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(ROOT / config), "--print_config"])
    assert exit_info.value.code in (0, None)
    cli = main([
        "fit", "--config", str(ROOT / config), "--trainer.fast_dev_run", "true",
        "--trainer.accelerator", "cpu", "--trainer.default_root_dir", str(tmp_path),
        "--trainer.enable_progress_bar", "false",
        *muse_smoke_overrides(config),
    ])  # fmt: skip
    assert set(cli.model.final_metrics) >= {"criterion", "p@1_nn", "p@1_csls", "p@10_csls"}
