"""Tabular data: SAINT (arXiv 2106.01342) and its baselines over any table.

- ``data``: ``TabularDataModule`` (a DataFrame, CSV or Parquet file, or a bundled table); ``encoding``:
  ``TableSchema``, ``TablePreprocessor`` (encoders and scalers fitted on the training split), ``TableBatch``;
  ``columns``: the role of each column, the checks before training and the lines that report them;
- ``tables``: the bundled offline tables (scikit-learn's breast_cancer, wine, diabetes; statsmodels' fair);
- ``saint/``: ``SAINT`` (SAINT, SAINT-s, SAINT-i), ``SAINTPretrain`` and their parts;
- ``baselines``: ``TabularMLP``, LightGBM and logistic / linear regression on the same encodings;
- ``tasks`` and ``system``: losses, metrics and the small base shared by the supervised models;
- ``predict``: what ``predict`` writes (``predictions.csv``, ``embeddings.csv``);
- ``compare``: ``python -m lit_digest.tabular.compare``, SAINT against the baselines over seeds.
"""

from lit_digest.tabular.baselines import TabularMLP, fit_lightgbm, fit_linear
from lit_digest.tabular.data import TableBatch, TablePreprocessor, TableSchema, TabularDataModule
from lit_digest.tabular.saint import SAINT, SAINTNet, SAINTPretrain, official_sizes
from lit_digest.tabular.tables import BUNDLED, read_table

__all__ = ["SAINT", "SAINTPretrain", "SAINTNet", "official_sizes", "TabularMLP", "fit_lightgbm", "fit_linear",
           "TabularDataModule", "TableSchema", "TableBatch", "TablePreprocessor", "BUNDLED", "read_table"]
