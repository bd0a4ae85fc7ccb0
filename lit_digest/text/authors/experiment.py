"""The measured command: attribution, conditioned generation and memorisation, each beside a classical baseline.

    python -m lit_digest.text.authors.experiment --seeds 0 1          # Debian's fortunes (apt-get install fortunes)
    python -m lit_digest.text.authors.experiment --corpus dictionaries   # the shipped corpus, no package
    python -m lit_digest.text.authors.experiment --path my_corpus/       # <label>/*.txt, or a .csv / .jsonl

For each seed (the document split, the initialisations, the batches and the samples all follow it):

1. ``ControlledLM`` (byte-level GPT-J, the ``small`` preset) trained on the training documents, each window opened
   by its label's control prefix (a tenth by the null prefix);
2. ``AuthorAttribution`` fine-tuned from that LM, and the same from a fresh initialisation; the TF-IDF baseline on
   the same training passages; all scored by macro-F1 on the test passages (documents never seen in training),
   beside the LM's own likelihood ranking of the labels (after the control prefix, and in context through the
   few-shot scorer) and chance;
3. samples for every label (control prefix, in context) and without a label, attributed by the TF-IDF baseline
   (trained on real text only): the share given the label asked for, beside chance;
4. the share of samples that copy a run of ``--copy-words`` words or more from a training passage, beside real
   held-out passages of the same length.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
import warnings

import numpy as np
import torch

from lit_digest.core.console import script
from lit_digest.core.lightning import Trainer, seed_everything
from lit_digest.core.measured import MeasuredRun
from lit_digest.core.optim import Optim
from lit_digest.text.authors.baseline import CharNgramBaseline, macro_f1
from lit_digest.text.authors.data import LabelledTextDataModule, chance_macro_f1
from lit_digest.text.authors.generation import ControlledLM, build_prompt, sample_texts
from lit_digest.text.authors.module import AuthorAttribution
from lit_digest.text.authors.overlap import NgramIndex
from lit_digest.text.authors.scoring import likelihood_attribution
from lit_digest.text.gptj.model import GPTJConfig

__all__ = ["main", "run_seed"]

FORTUNE_TOPICS = ["computers", "food", "law", "science", "startrek", "zippy"]


def _trainer(steps: int, folder) -> Trainer:
    return Trainer(accelerator="auto", devices=1, max_steps=steps, gradient_clip_val=1.0, logger=False,
                   enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                   limit_val_batches=0, num_sanity_val_steps=0, default_root_dir=str(folder))


def _data(s: dict, seed: int, batches: str) -> LabelledTextDataModule:
    data = LabelledTextDataModule(corpus=s["corpus"], path=s["path"], labels=s["labels"], batches=batches,
                                  passage_len=s["passage_len"], max_documents=s["max_documents"],
                                  seq_len=s["seq_len"], split_seed=seed, batch_size=s["batch_size"],
                                  test_fraction=s["test_fraction"], val_fraction=0.1)
    data.setup()
    return data


@torch.no_grad()
def _classify(module: AuthorAttribution, data: LabelledTextDataModule, split: str) -> list[int]:
    module.eval()
    data.batches = "passages"
    preds = []
    for batch in data._loader(split, shuffle=False):
        preds += module(batch["tokens"].to(module.device), batch["lengths"].to(module.device)).argmax(-1).tolist()
    return preds


@torch.no_grad()
def _bits_per_byte(lm: ControlledLM, data: LabelledTextDataModule) -> float:
    from lit_digest.text.gptj.module import lm_loss

    lm.eval()
    data.batches = "lm"
    total, count = 0.0, 0
    for tokens, targets in data._loader("val", shuffle=False):
        loss, _ = lm_loss(lm.model(tokens.to(lm.device)), targets.to(lm.device))
        total, count = total + float(loss) * tokens.numel(), count + tokens.numel()
    return total / count / math.log(2) / data.bytes_per_token


def run_seed(s: dict, seed: int, folder) -> dict[str, float]:
    """Every number of one seed."""
    out: dict[str, float] = {}
    config = GPTJConfig.preset("small", n_positions=s["n_positions"])
    data = _data(s, seed, "lm")
    k = len(data.labels)
    test = data.passages["test"]
    truth = [p.label for p in test]
    shares = data.label_share()
    print(f"seed {seed}: {k} labels {data.labels}; passages train/val/test "
          f"{[len(data.passages[n]) for n in ('train', 'val', 'test')]}", flush=True)

    # 1. the conditioned LM
    start = time.perf_counter()
    seed_everything(seed, verbose=False)
    lm = ControlledLM(model=config, samples=0, max_new_tokens=s["new_tokens"], top_p=s["top_p"],
                      temperature=s["temperature"],
                      optim=Optim(name="adamw", lr=s["lm_lr"], weight_decay=0.1, warmup_steps=s["lm_steps"] // 20,
                                  final_lr_ratio=0.1))
    trainer = _trainer(s["lm_steps"], folder)
    trainer.fit(lm, datamodule=data)
    ckpt = folder / f"controlled_lm_seed{seed}.ckpt"
    trainer.save_checkpoint(ckpt)
    out["lm/val_bpb"] = _bits_per_byte(lm, data)
    out["lm/seconds"] = time.perf_counter() - start
    print(f"  LM: {out['lm/val_bpb']:.3f} bits/byte on validation windows in {out['lm/seconds']:.0f} s", flush=True)

    # 2. attribution
    baseline = CharNgramBaseline().fit([p.text for p in data.passages["train"]],
                                       [p.label for p in data.passages["train"]], k)
    out["attr/tfidf"] = macro_f1(truth, baseline.predict([p.text for p in test]), k)
    for name, pretrained in (("attr/lm_finetuned", str(ckpt)), ("attr/lm_scratch", None)):
        start = time.perf_counter()
        seed_everything(seed, verbose=False)
        module = AuthorAttribution(model=config, pretrained=pretrained, lm_weight=0.5,
                                   optim=Optim(name="adamw", lr=s["cls_lr"], weight_decay=0.01,
                                               warmup_steps=s["cls_steps"] // 20, final_lr_ratio=0.0))
        data.batches = "passages"
        _trainer(s["cls_steps"], folder).fit(module, datamodule=data)
        out[name] = macro_f1(truth, _classify(module, data, "test"), k)
        out[name.replace("attr/", "fit/")] = macro_f1([p.label for p in data.passages["train"]],
                                                      _classify(module, data, "train"), k)
        print(f"  {name}: {out[name]:.3f} test macro-F1 (train {out[name.replace('attr/', 'fit/')]:.3f}) in "
              f"{time.perf_counter() - start:.0f} s", flush=True)
    scored = test[:: max(1, len(test) // s["scored_passages"])][: s["scored_passages"]]
    scored_truth = [p.label for p in scored]
    for conditioning in ("prefix", "in_context"):
        start = time.perf_counter()
        pred = likelihood_attribution(lm.model, data, scored, conditioning, s["shots"], seed)
        out[f"attr/lm_likelihood_{conditioning}"] = macro_f1(scored_truth, pred, k)
        print(f"  LM likelihood ({conditioning}): {out[f'attr/lm_likelihood_{conditioning}']:.3f} macro-F1 on "
              f"{len(scored)} passages in {time.perf_counter() - start:.0f} s", flush=True)
    out["attr/chance"] = chance_macro_f1(list(shares.values()))

    # 3. generation, attributed by the baseline trained on real text only
    generator = torch.Generator(device=lm.device).manual_seed(seed)
    n = s["samples_per_label"]
    asks = [label for label in range(k) for _ in range(n)]
    index = NgramIndex([d.text for d in data.documents["train"]])
    for name, conditioning, labels in (("prefix", "prefix", asks), ("in_context", "in_context", asks),
                                       ("unconditioned", "prefix", [-1] * len(asks))):
        start = time.perf_counter()
        prompts = [build_prompt(data, label, i, conditioning, s["shots"], seed) for i, label in enumerate(labels)]
        texts = sample_texts(lm.model, data.tokenizer, prompts, s["new_tokens"], data.separator, s["temperature"],
                             s["top_p"], generator=generator)
        verdicts = baseline.predict([t or " " for t in texts])
        out[f"gen/{name}"] = float(np.mean([v == a for v, a in zip(verdicts, asks)]))
        out[f"copy/{name}"] = index.share_copied(texts, s["copy_words"])
        print(f"  samples ({name}): {out[f'gen/{name}']:.3f} attributed to the label asked, {out[f'copy/{name}']:.3f}"
              f" copy {s['copy_words']}+ words, in {time.perf_counter() - start:.0f} s; e.g. {texts[0][:80]!r}",
              flush=True)
    out["gen/chance"] = 1.0 / k
    cut = [data.tokenizer.decode(p.ids[: s["new_tokens"]]) for p in test]
    out["copy/real_heldout"] = index.share_copied(cut, s["copy_words"])
    return out


ROWS = {
    "Attribution of held-out passages (macro-F1)": [
        ("character n-gram TF-IDF + logistic regression", "attr/tfidf"),
        ("GPT-J-style LM pre-trained on the corpus, fine-tuned with a head", "attr/lm_finetuned"),
        ("the same LM fine-tuned from a fresh initialisation", "attr/lm_scratch"),
        ("LM likelihood after each control prefix (no head)", "attr/lm_likelihood_prefix"),
        ("LM likelihood in context, 2 passages per label (few-shot scorer)", "attr/lm_likelihood_in_context"),
        ("chance (uniform guess)", "attr/chance")],
    "Samples the TF-IDF baseline attributes to the label asked for (share)": [
        ("control prefix (one model, a prefix per label)", "gen/prefix"),
        ("in context (2 real passages of the label as prompt)", "gen/in_context"),
        ("unconditioned (null prefix; labels asked in turn)", "gen/unconditioned"),
        ("chance", "gen/chance")],
    "Passages sharing a run of the copy length with a training passage (share)": [
        ("samples, control prefix", "copy/prefix"), ("samples, in context", "copy/in_context"),
        ("samples, unconditioned", "copy/unconditioned"), ("real held-out passages, same length",
                                                           "copy/real_heldout")],
}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="fortunes", choices=["fortunes", "fortunes-ru", "dictionaries"])
    parser.add_argument("--path", default=None, help="your own corpus instead: a folder <path>/<label>/*.txt or a "
                        ".csv/.jsonl with text and label columns")
    parser.add_argument("--labels", nargs="+", default=None, help=f"default: {' '.join(FORTUNE_TOPICS)} for "
                        "fortunes, all labels otherwise")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--max-documents", type=int, default=200, help="per label, before the split")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--passage-len", type=int, default=128)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--n-positions", type=int, default=512, help="room for in-context prompts")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lm-steps", type=int, default=400)
    parser.add_argument("--lm-lr", type=float, default=2e-3)
    parser.add_argument("--cls-steps", type=int, default=200)
    parser.add_argument("--cls-lr", type=float, default=1e-3)
    parser.add_argument("--samples-per-label", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--shots", type=int, default=2)
    parser.add_argument("--scored-passages", type=int, default=60, help="test passages ranked by LM likelihood")
    parser.add_argument("--copy-words", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="parent folder of the run (default runs/measured)")
    args = parser.parse_args(argv)
    if args.labels is None and args.corpus == "fortunes" and args.path is None:
        args.labels = FORTUNE_TOPICS
    for seed in args.seeds:  # a mistake in the data is one line before anything runs
        _data(vars(args), seed, "lm")
    torch.set_num_threads(args.threads)
    for name in ("lightning.pytorch", "pytorch_lightning", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*(num_workers|does not have many workers|LeafSpec|weights_only).*")
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    run = MeasuredRun("authors", settings, out=args.out)
    s = run.settings
    results = [run_seed(s, seed, run.folder) for seed in s["seeds"]]
    numbers: dict[str, float] = {}
    for title, rows in ROWS.items():
        table = []
        for label, key in rows:
            values = np.array([r[key] for r in results])
            numbers[key] = float(values.mean())
            spread = f" +- {values.std():.3f}" if len(values) > 1 else ""
            table.append([label, f"{values.mean():.3f}{spread}"])
        run.table(["", f"mean over seeds {s['seeds']}"], table, title=title.replace("the copy length",
                                                                                 f"{s['copy_words']} words"))
    extra = [["LM validation bits per byte", "lm/val_bpb"], ["fine-tuned LM, train macro-F1", "fit/lm_finetuned"],
             ["scratch LM, train macro-F1", "fit/lm_scratch"], ["LM training seconds", "lm/seconds"]]
    run.table(["check", "mean"], [[label, float(np.mean([r[key] for r in results]))] for label, key in extra],
              title="Checks")
    numbers.update({key: float(np.mean([r[key] for r in results])) for _, key in extra})
    run.figure(_figure(results), "authors")
    return run.finish(numbers)


def _figure(results: list[dict[str, float]]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, (title, rows) in zip(axes, ROWS.items()):
        values = np.array([[r[key] for key in (k for _, k in rows)] for r in results])  # (seeds, rows)
        ax.barh(range(len(rows)), values.mean(0), xerr=values.std(0), color="#4a7")
        ax.set_yticks(range(len(rows)), [label[:38] for label, _ in rows], fontsize=7)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    raise SystemExit(script(main)())
