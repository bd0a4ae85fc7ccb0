"""MUSE end to end on synthetic rotations (the MUSE and MUSEProcrustes systems, mapping networks)."""


import pytest
import torch
from torch import nn

from lit_digest.core.lightning import pl
from lit_digest.muse import (
    MUSE,
    ExportAlignment,
    LanguageDiscriminator,
    LinearMapping,
    MUSEProcrustes,
    SyntheticEmbeddingsDataModule,
)
from lit_digest.muse.dictionary import EmptyDictionaryError
from lit_digest.muse.vec_io import load_embeddings
from tests.helpers import print_measured


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
    assert [model.steps_in_epoch(e) for e in range(6)] == [4, 4, 1, 1, 1, 0]
    model._adversarial_end = 1  # the learning rate fell below min_lr after the first epoch
    assert [model.steps_in_epoch(e) for e in range(5)] == [4, 1, 1, 1, 0]


def test_criterion_drives_lr_decay_shrink_and_the_end_of_the_adversarial_phase(tmp_path, one_thread):
    dm = SyntheticEmbeddingsDataModule(n_words=200, dim=4)
    model = MUSE(
        dim=4, dis_hidden_dim=8, n_epochs=5, epoch_size=64, n_refinement=1, min_lr=0.05, dico_max_rank=200
    )
    scores = [0.5, 0.4, 0.3, 0.2, 0.1, 0.0]  # improves once, then drops every epoch
    lrs = []

    class Record(pl.Callback):
        def on_fit_start(self, trainer, module):
            module.evaluator.criterion = lambda weight: scores[module.current_epoch]

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
    model = MUSEProcrustes(dim=32, n_refinement=2)
    trainer(tmp_path, callbacks=[ExportAlignment("vec", str(tmp_path / "export"))]).fit(model, dm)
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
    assert len(dm.dico_train) == 80 and model.selection == "criterion"
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
    print_measured("muse-synthetic", {"p_at_1_csls": model.final_metrics["p@1_csls"]})
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


@pytest.mark.parametrize("pair", ["en-es", "en-fr", "en-de", "en-ru", "en-zh"])
def test_language_pair_configs_follow_the_official_code(pair, capsys):
    """en-zh centres the embeddings (the official README's advice for it); the unsupervised refinement
    builds its dictionaries S2T with CSLS (the official default, which produced the published numbers; the
    paper's mutual nearest neighbours are dico_build: S2T&T2S), the supervised one S2T&T2S."""
    import yaml

    from lit_digest.cli import main
    from tests.helpers import ROOT

    for mode, build in (("unsupervised", "S2T"), ("supervised", "S2T&T2S")):
        with pytest.raises(SystemExit):
            main(["fit", "--config", str(ROOT / f"configs/muse/{pair}-{mode}.yaml"), "--print_config"])
        config = yaml.safe_load(capsys.readouterr().out)
        assert config["model"]["init_args"]["dico_build"] == build
        assert config["model"]["init_args"]["dico_method"] == "csls"
        assert config["data"]["init_args"]["normalize"] == ("center" if pair == "en-zh" else "")


def test_missing_files_name_their_option(tmp_path):
    from lit_digest.muse import EmbeddingsDataModule

    dm = EmbeddingsDataModule(src_emb=str(tmp_path / "none.vec"), tgt_emb=str(tmp_path / "none2.vec"))
    with pytest.raises(FileNotFoundError, match=r"src_emb file not found at .*none\.vec.*data\.init_args\.src_emb"):
        dm.setup()
    official = EmbeddingsDataModule(data_dir=str(tmp_path))  # the default files, not downloaded
    expected = r"data\.init_args\.src_emb \(default: the official file\).*wiki\.en\.vec"
    with pytest.raises(FileNotFoundError, match=expected):
        official.setup()


def test_the_final_summary_names_its_selection_rule_and_procrustes_runs_checkpoint(tmp_path, caplog, monkeypatch):
    """The supervised system counts its closed-form steps, so its runs write last.ckpt like the others."""
    import logging

    # rank_zero_info logs to "lightning.pytorch", which Lightning detaches from the root logger (propagate
    # False) when it is imported before the root has a handler: then caplog would see nothing
    monkeypatch.setattr(logging.getLogger("lightning.pytorch"), "propagate", True)
    dm = SyntheticEmbeddingsDataModule(n_words=300, dim=8, dico_train="default", n_train=100)
    fit = trainer(tmp_path, enable_checkpointing=True, max_epochs=3)
    with caplog.at_level(logging.INFO):
        fit.fit(MUSEProcrustes(dim=8, n_refinement=2, dico_max_rank=300, criterion_words=300), dm)
    assert "the W with the best CSLS P@1 on the evaluation dictionary" in caplog.text
    assert "refinement 2: criterion" in caplog.text  # every iteration is printed
    assert fit.global_step == 3 and list(tmp_path.rglob("*.ckpt"))


def test_dis_most_frequent_above_the_vocabulary_is_reported(tmp_path):
    dm = SyntheticEmbeddingsDataModule(n_words=200, dim=4)
    model = MUSE(dim=4, dis_hidden_dim=8, n_epochs=1, epoch_size=32, n_refinement=0, dis_most_frequent=75000)
    with pytest.warns(UserWarning, match="dis_most_frequent=75000 but the vocabularies have 200 and 200 words"):
        trainer(tmp_path, max_epochs=1).fit(model, dm)


def test_predict_writes_each_words_translations_and_the_mapped_vocabulary(tmp_path, capsys):
    dm = SyntheticEmbeddingsDataModule(n_words=300, dim=8, dico_train="default", n_train=100)
    model = MUSEProcrustes(dim=8, n_refinement=1, dico_max_rank=300, criterion_words=300)
    trainer(tmp_path).fit(model, dm)
    trainer(tmp_path).predict(model, dm, return_predictions=False)
    out = capsys.readouterr().out
    assert f"lit_digest: wrote 300 translated words to {tmp_path / 'translations.tsv'}" in out
    assert f"lit_digest: wrote 300 mapped source embeddings to {tmp_path / 'vectors-src.txt'}" in out
    lines = (tmp_path / "translations.tsv").read_text().splitlines()
    assert lines[0].split("\t")[:3] == ["source", "translation_1", "csls_1"] and len(lines) == 301
    rows = [line.split("\t") for line in lines[1:]]
    gold = dict(dm.pair.gold.tolist())
    found = [dm.tgt.word2id[r[1]] == gold[dm.src.word2id[r[0]]] for r in rows]
    assert sum(found) / len(found) > 0.9  # the planted translation comes first
    assert all(float(r[2]) >= float(r[4]) >= float(r[10]) for r in rows)  # best first, 5 of them
    mapped = load_embeddings(tmp_path / "vectors-src.txt")
    assert mapped.words == dm.src.words
    torch.testing.assert_close(mapped.vectors, dm.src.vectors @ model.mapping.weight.detach().T, atol=1e-4, rtol=0)
