"""Attribution and conditioned generation: pooling and the masked LM loss against plain loops, the n-gram overlap
on known strings, the TF-IDF baseline, a fine-tuned head that learns, pre-trained weights that arrive, a control
prefix that steers the samples, the report, likelihood attribution through the few-shot scorer."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lit_digest.core.lightning import Trainer, seed_everything
from lit_digest.core.optim import Optim
from lit_digest.text.authors import (
    AuthorAttribution,
    CharNgramBaseline,
    ControlledLM,
    LabelledTextDataModule,
    NgramIndex,
    longest_shared_run,
    macro_f1,
)
from lit_digest.text.authors.data import collate_passages
from lit_digest.text.authors.generation import build_prompt, sample_texts
from lit_digest.text.authors.module import load_pretrained_lm, masked_lm_loss, pool
from lit_digest.text.authors.scoring import likelihood_attribution
from lit_digest.text.gptj.model import GPTJConfig

TINY = GPTJConfig.preset("tiny", n_positions=128)
FAST = Optim(name="adamw", lr=3e-3, weight_decay=0.01, warmup_steps=2, final_lr_ratio=0.1)


def toy_corpus(root, docs=12):
    """Two labels a model can tell apart from a few bytes: vowels 'a'/'o' against 'e'/'i', written as words."""
    rng = random.Random(0)
    for label, letters in (("ao", "ao"), ("ei", "ei")):
        (root / label).mkdir(parents=True)
        for d in range(docs):
            words = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 5))) for _ in range(30)]
            (root / label / f"{d}.txt").write_text(" ".join(words))
    return root


def quiet(steps: int, folder) -> Trainer:
    return Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0, accelerator="cpu",
                   default_root_dir=str(folder))


def test_longest_shared_run_on_known_strings():
    assert longest_shared_run("the cat sat on the mat", "a cat sat on a mat") == 3  # "cat sat on"
    assert longest_shared_run("It is, he said, TRUE.", "it is he said true") == 5  # case and punctuation ignored
    assert longest_shared_run("nothing here", "at all") == 0
    assert longest_shared_run("Мама мыла раму", "мама мыла окно") == 2  # any script
    index = NgramIndex(["a cat sat on a mat", "the dog sat on the cat sat on the mat again"])
    match = index.longest("Look: the cat sat on the mat!")
    assert (match.length, match.text) == (6, 1)
    assert "Look: the cat sat on the mat!"[slice(*match.query_span)] == "the cat sat on the mat"
    assert index.texts[1][slice(*match.text_span)] == "the cat sat on the mat"
    assert index.longest("dog").length == 1 and index.longest("zebra").length == 0
    assert index.share_copied(["cat sat on the mat", "zebra", "a dog"], 4) == pytest.approx(1 / 3)


def test_the_index_finds_the_same_longest_run_as_the_plain_definition():
    rng = random.Random(1)
    vocab = ["a", "b", "c", "d"]
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(3, 30))) for _ in range(20)]
    index = NgramIndex(texts)
    for _ in range(50):
        query = " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 15)))
        assert index.longest(query).length == max(longest_shared_run(query, t) for t in texts)


def test_pooling_and_the_masked_lm_loss_equal_plain_loops():
    h, lengths = torch.randn(3, 5, 4), torch.tensor([5, 2, 1])
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(pool(h, lengths, "mean")[i], h[i, :n].mean(0))
        torch.testing.assert_close(pool(h, lengths, "last")[i], h[i, n - 1])
    logits, tokens = torch.randn(3, 5, 7), torch.randint(0, 7, (3, 5))
    terms = [F.cross_entropy(logits[i, t][None], tokens[i, t + 1][None]) for i, n in enumerate(lengths.tolist())
             for t in range(n - 1)]
    torch.testing.assert_close(masked_lm_loss(logits, tokens, lengths), torch.stack(terms).mean())


def test_tfidf_baseline_separates_writers_and_macro_f1_is_sklearns():
    from sklearn.metrics import f1_score

    rng = random.Random(0)
    texts = ["".join(rng.choice("ao ") for _ in range(60)) for _ in range(20)] + [
        "".join(rng.choice("ei ") for _ in range(60)) for _ in range(20)]
    labels = [0] * 20 + [1] * 20
    baseline = CharNgramBaseline().fit(texts[::2], labels[::2])
    assert (baseline.predict(texts[1::2]) == np.array(labels[1::2])).all()
    assert baseline.predict_proba(texts[:3]).shape == (3, 2)
    true, pred = rng.choices(range(4), k=50), rng.choices(range(4), k=50)
    assert macro_f1(true, pred, 4) == pytest.approx(f1_score(true, pred, average="macro", labels=range(4)))
    assert macro_f1([0, 0], [0, 0], 3) == pytest.approx(1 / 3)  # labels never seen count as 0


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_fine_tuned_head_learns_and_pretrained_weights_arrive(tmp_path):
    seed_everything(0)
    data = LabelledTextDataModule(path=str(toy_corpus(tmp_path / "c")), passage_len=32, batch_size=8, seq_len=32,
                                  test_fraction=0.25, val_fraction=0.15)
    data.batches = "lm"
    lm = ControlledLM(model=TINY, optim=FAST, samples=0)
    trainer = quiet(3, tmp_path)
    trainer.fit(lm, data)
    trainer.save_checkpoint(tmp_path / "lm.ckpt")
    data.batches = "passages"
    model = AuthorAttribution(model=GPTJConfig.preset("tiny"), pretrained=str(tmp_path / "lm.ckpt"), optim=FAST)
    untrained = AuthorAttribution(model=TINY, labels=data.labels)
    truth = torch.tensor([p.label for p in data.passages["test"]])

    def accuracy(module) -> float:
        module.eval()
        batch = collate_passages([(p, i) for i, p in enumerate(data.passages["test"])])
        with torch.no_grad():
            return float((module(batch["tokens"], batch["lengths"]).argmax(-1) == truth).float().mean())

    before = accuracy(untrained)
    quiet(40, tmp_path).fit(model, data)
    assert model.config == TINY and model.hparams.model == TINY  # the checkpoint's sizes replace the argument's
    assert model.labels == ["ao", "ei"]
    assert accuracy(model) >= 0.9 and accuracy(model) > before + 0.2, before
    # the LM weights came from the checkpoint: the embedding rows of bytes the corpus never uses got no gradient,
    # so they are the checkpoint's, shrunk only by 40 steps of weight decay (lr 3e-3 x 0.01: under 0.2%)
    saved = torch.load(tmp_path / "lm.ckpt", weights_only=False)["state_dict"]["model.wte.weight"]
    torch.testing.assert_close(model.model.wte.weight[200:].detach(), saved[200:], rtol=2e-3, atol=1e-7)
    assert not torch.allclose(untrained.model.wte.weight[200:], saved[200:], rtol=0.1)
    trainer = quiet(1, tmp_path)
    trainer.fit(model, data)
    trainer.save_checkpoint(tmp_path / "cls.ckpt")
    loaded = AuthorAttribution.load_from_checkpoint(tmp_path / "cls.ckpt")
    assert loaded.labels == ["ao", "ei"] and accuracy(loaded) == accuracy(model)
    with pytest.raises(ValueError, match="not a CausalLM checkpoint"):
        load_pretrained_lm(str(tmp_path / "cls.ckpt"))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_control_prefix_steers_the_samples_and_predict_writes_the_report(tmp_path, capsys):
    """Trained on two labels with disjoint letters, the model writes each label's letters after its prefix; the
    prompt that generation reads starts with the prefix; predict writes samples.jsonl and the report."""
    seed_everything(0)
    data = LabelledTextDataModule(path=str(toy_corpus(tmp_path / "c", docs=20)), batches="lm", seq_len=48,
                                  passage_len=48, batch_size=16, samples_per_label=3, null_control=0.1)
    lm = ControlledLM(model=TINY, optim=Optim(name="adamw", lr=1e-2, weight_decay=0.0, warmup_steps=5,
                                              final_lr_ratio=0.1), samples=0, max_new_tokens=24, top_p=0.5)
    quiet(120, tmp_path).fit(lm, data)
    prompts = [build_prompt(data, label, 0) for label in (0, 1)]
    assert prompts == ["[ao]\n\n\n", "[ei]\n\n\n"]
    texts = sample_texts(lm.model, data.tokenizer, prompts * 4, 24, data.separator,
                         generator=torch.Generator().manual_seed(0))
    for label, letters in ((0, "ao"), (1, "ei")):
        written = "".join(texts[label::2])
        assert sum(ch in letters for ch in written) > 0.9 * sum(ch.isalpha() for ch in written) > 0
    trainer = Trainer(logger=False, enable_progress_bar=False, accelerator="cpu", default_root_dir=str(tmp_path))
    trainer.predict(lm, data)
    out = capsys.readouterr().out
    assert "wrote 9 samples to" in out and "wrote 1 report to" in out
    rows = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert [r["label"] for r in rows] == ["ao"] * 3 + ["ei"] * 3 + [None] * 3
    assert all(r["prompt"].startswith("[" + (r["label"] or "?") + "]") for r in rows)
    page = (tmp_path / "report.html").read_text()
    assert page.count("<h2>") == 3 and "TF-IDF baseline" in page and "nearest real training text" in page
    # attribution by likelihood through the few-shot scorer: the prefix ranks the toy labels right
    test = data.passages["test"]
    assert likelihood_attribution(lm.model, data, test, "prefix") == [p.label for p in test]
    long = LabelledTextDataModule(path=data.path, passage_len=128)
    long.setup()
    with pytest.raises(ValueError, match="the prefix would be cut off"):
        likelihood_attribution(lm.model, long, long.passages["test"], "prefix")
    in_context = likelihood_attribution(lm.model, data, test, "in_context", shots=1)
    assert np.mean(np.array(in_context) == np.array([p.label for p in test])) > 0.5
