"""The page a reader who does not program opens: per label, generated samples beside real passages, the
attribution classifier's verdict on each, and the nearest real training passage with the shared words marked.

``write_report(path, ...)`` writes HTML (``.html``, one self-contained file for a browser) or Markdown (``.md``).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = ["Entry", "Section", "write_report", "render_html", "render_markdown", "build_report", "classifier_verdicts"]


@dataclass
class Entry:
    """One text on the page: ``verdicts`` maps a classifier's name to ``(label, probability)``; ``copied`` is the
    shared run in this text and in ``nearest`` (character spans), ``run`` its length in words."""

    text: str
    verdicts: dict[str, tuple[str, float]] = field(default_factory=dict)
    nearest: str = ""
    run: int = 0
    copied: tuple[int, int] = (0, 0)
    nearest_span: tuple[int, int] = (0, 0)


@dataclass
class Section:
    """One label's part of the page (``label`` None: the unconditioned samples)."""

    label: str | None
    prompt: str
    samples: list[Entry]
    real: list[Entry]


_INTRO = ("A language model was trained on the texts below, grouped by {kind}, and then asked to write new ones "
          "for each {kind}. For every text the page shows what an attribution classifier, trained on real texts "
          "only, thinks it is, and the nearest real training text: the words both share in a row are marked, so "
          "that copying is visible. A shared run of {copy} words or more counts as copied.")


def _shown(prompt: str, most: int = 300) -> str:
    """A prompt on one line, its line breaks written ``\\n``."""
    text = prompt.replace("\n", "\\n")
    return text if len(text) <= most else text[:most] + "..."


def _marked_html(text: str, span: tuple[int, int]) -> str:
    a, b = span
    if b <= a:
        return html.escape(text)
    return html.escape(text[:a]) + "<mark>" + html.escape(text[a:b]) + "</mark>" + html.escape(text[b:])


def _verdicts(entry: Entry) -> str:
    return "; ".join(f"{name}: {label} ({p:.0%})" for name, (label, p) in entry.verdicts.items())


def render_html(title: str, sections: list[Section], notes: list[str], copy_words: int, kind: str = "label") -> str:
    style = ("body{font-family:Georgia,serif;max-width:70em;margin:2em auto;line-height:1.4}"
             "table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.4em;vertical-align:top;"
             "white-space:pre-wrap}mark{background:#fd6}.copied{color:#b00;font-weight:bold}")
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>",
           f"<p>{html.escape(_INTRO.format(kind=kind, copy=copy_words))}</p>"]
    out += [f"<p>{html.escape(n)}</p>" for n in notes]
    for section in sections:
        name = "No label asked (unconditioned)" if section.label is None else section.label
        out.append(f"<h2>{html.escape(name)}</h2><p>Prompt: <code>{html.escape(_shown(section.prompt))}</code></p>")
        out.append("<table><tr><th>generated</th><th>verdict</th><th>nearest real training text</th></tr>")
        for e in section.samples:
            flag = f"<br><span class='copied'>copied: {e.run} words</span>" if e.run >= copy_words else (
                f"<br>longest shared run: {e.run} words")
            out.append(f"<tr><td>{_marked_html(e.text, e.copied)}</td><td>{html.escape(_verdicts(e))}{flag}</td>"
                       f"<td>{_marked_html(e.nearest, e.nearest_span)}</td></tr>")
        out.append("</table>")
        if section.real:
            out.append("<h3>Real held-out texts of this label</h3><table><tr><th>real</th><th>verdict</th></tr>")
            out += [f"<tr><td>{html.escape(e.text)}</td><td>{html.escape(_verdicts(e))}</td></tr>"
                    for e in section.real]
            out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out)


def _marked_md(text: str, span: tuple[int, int]) -> str:
    a, b = span
    text = text if b <= a else text[:a] + "**" + text[a:b] + "**" + text[b:]
    return text.replace("|", "\\|").replace("\n", "<br>")


def render_markdown(title: str, sections: list[Section], notes: list[str], copy_words: int,
                    kind: str = "label") -> str:
    out = [f"# {title}", "", _INTRO.format(kind=kind, copy=copy_words), "", *notes, ""]
    for section in sections:
        out += [f"## {'No label asked (unconditioned)' if section.label is None else section.label}", "",
                f"Prompt: `{_shown(section.prompt)}`", "", "| generated | verdict | nearest real training text |",
                "|---|---|---|"]
        for e in section.samples:
            flag = f" **copied: {e.run} words**" if e.run >= copy_words else f" (longest shared run: {e.run} words)"
            out.append(f"| {_marked_md(e.text, e.copied)} | {_verdicts(e)}{flag} | "
                       f"{_marked_md(e.nearest, e.nearest_span)} |")
        if section.real:
            out += ["", "Real held-out texts of this label:", "", "| real | verdict |", "|---|---|"]
            out += [f"| {_marked_md(e.text, (0, 0))} | {_verdicts(e)} |" for e in section.real]
        out.append("")
    return "\n".join(out)


def write_report(path: str | Path, title: str, sections: list[Section], notes: list[str], copy_words: int,
                 kind: str = "label") -> Path:
    """The page as HTML (``.html``) or Markdown (any other suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    render = render_html if path.suffix == ".html" else render_markdown
    path.write_text(render(title, sections, notes, copy_words, kind), encoding="utf-8")
    return path


def _shorten(text: str, span: tuple[int, int], most: int = 600) -> tuple[str, tuple[int, int]]:
    """``text`` cut to about ``most`` characters around ``span`` (marked with "..."), and the span in the cut."""
    if len(text) <= most:
        return text, span
    start = max(0, min(span[0] - most // 3, len(text) - most))
    head = "..." if start else ""
    cut = head + text[start:start + most] + ("..." if start + most < len(text) else "")
    shift = len(head) - start
    return cut, (span[0] + shift, span[1] + shift) if span[1] > span[0] else (0, 0)


def classifier_verdicts(path: str, data: Any, texts: list[str]) -> list[tuple[str, float]]:
    """``(label, probability)`` of an ``AuthorAttribution`` checkpoint for each text (its first passage)."""
    from lit_digest.core.checkpoints import expect_checkpoint
    from lit_digest.text.authors.data import Passage, collate_passages
    from lit_digest.text.authors.module import AuthorAttribution

    expect_checkpoint(path, AuthorAttribution)
    model = AuthorAttribution.load_from_checkpoint(path, map_location="cpu").eval()
    if list(model.labels) != list(data.labels):
        raise ValueError(f"the classifier {path} knows the labels {model.labels}, the data has {data.labels}")
    out = []
    for start in range(0, len(texts), 32):
        chunk = [data.tokenizer.encode(t)[:data.passage_len] or [0] for t in texts[start:start + 32]]
        batch = collate_passages([(Passage(ids, 0, 0, ""), i) for i, ids in enumerate(chunk)])
        with torch.no_grad():
            probs = model(batch["tokens"], batch["lengths"]).float().softmax(-1)
        out += [(data.labels[int(p.argmax())], float(p.max())) for p in probs]
    return out


def build_report(data: Any, rows: list[dict], classifier: str | None, copy_words: int, real_texts: int,
                 path: Path) -> Path:
    """The report of ``rows`` (``{"label", "prompt", "sample"}``, label None for unconditioned) of ``data`` (a
    set-up ``LabelledTextDataModule``): the TF-IDF baseline fitted on its training passages, the classifier's
    verdicts when given, the nearest training passage of each sample."""
    from lit_digest.text.authors.baseline import CharNgramBaseline
    from lit_digest.text.authors.overlap import NgramIndex

    train = data.passages["train"]
    baseline = CharNgramBaseline().fit([p.text for p in train], [p.label for p in train], len(data.labels))
    index = NgramIndex([d.text for d in data.documents["train"]])
    real = {label: [_shorten(d.text, (0, 0))[0] for d in data.documents["test"] if d.label == label][:real_texts]
            for label in data.labels}
    texts = [r["sample"] for r in rows]
    all_real = [t for label in data.labels for t in real[label]]

    def verdicts(batch: list[str]) -> list[dict[str, tuple[str, float]]]:
        if not batch:
            return []
        probs = baseline.predict_proba(batch)
        out = [{"TF-IDF baseline": (data.labels[int(p.argmax())], float(p.max()))} for p in probs]
        if classifier:
            for v, c in zip(out, classifier_verdicts(classifier, data, batch)):
                v["fine-tuned LM"] = c
        return out

    sample_verdicts, real_verdicts = verdicts(texts), iter(verdicts(all_real))
    sections, matched, copied = [], 0, 0
    for label in [*data.labels, None]:
        samples = []
        for row, verdict in zip(rows, sample_verdicts):
            if row["label"] != label:
                continue
            m = index.longest(row["sample"])
            nearest, span = _shorten(index.texts[m.text], m.text_span) if m.text >= 0 else ("", (0, 0))
            samples.append(Entry(row["sample"], verdict, nearest, m.length, m.query_span, span))
            matched += label is not None and verdict["TF-IDF baseline"][0] == label
            copied += m.length >= copy_words
        prompt = next((r["prompt"] for r in rows if r["label"] == label), "")
        reals = [Entry(t, next(real_verdicts)) for t in real[label]] if label is not None else []
        sections.append(Section(label, prompt, samples, reals))
    asked = sum(r["label"] is not None for r in rows)
    notes = [f"{len(data.labels)} labels: {', '.join(data.labels)}. "
             f"The TF-IDF baseline gives {matched} of the {asked} samples that asked for a label that label "
             f"(chance: {1 / len(data.labels):.0%}); {copied} of the {len(rows)} samples copy {copy_words} words or "
             "more of a training text."]
    return write_report(path, "What the model writes for each label", sections, notes, copy_words)
