"""Writers and topics: which one wrote a text (attribution), and text written like each (conditioned generation),
every claim beside a classical baseline.

- ``corpus``: texts grouped by label (folders, CSV/JSONL, Debian's fortunes, the shipped dictionaries), strict
  UTF-8, the split by document;
- ``data``: ``LabelledTextDataModule`` (passages for attribution, control-prefixed windows for the LM);
- ``module``: ``AuthorAttribution``, a classification head on the GPT-J-style LM, fine-tuned (GPT-1's recipe);
- ``generation``: ``ControlledLM``, one LM for every label with a control prefix (CTRL), its samples and report;
- ``baseline``: character n-gram TF-IDF + logistic regression; ``overlap``: the longest shared run of words;
- ``scoring``: labels ranked by the LM's likelihood, after a control prefix or in context (the few-shot scorer);
- ``report``: the HTML / Markdown page; ``experiment``: the measured command (docs/authors.md).
"""

from lit_digest.text.authors.baseline import CharNgramBaseline, macro_f1
from lit_digest.text.authors.corpus import Document, read_dictionaries, read_folder, read_fortune_topics, read_table
from lit_digest.text.authors.data import LabelledTextDataModule
from lit_digest.text.authors.generation import ControlledLM
from lit_digest.text.authors.module import AuthorAttribution
from lit_digest.text.authors.overlap import NgramIndex, longest_shared_run

__all__ = ["AuthorAttribution", "ControlledLM", "LabelledTextDataModule", "CharNgramBaseline", "macro_f1",
           "NgramIndex", "longest_shared_run", "Document", "read_dictionaries", "read_folder", "read_fortune_topics",
           "read_table"]
