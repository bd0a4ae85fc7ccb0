"""The roles of a table's columns (target, categorical, continuous, dropped), the checks that come before
training, and the lines that tell the user what was found.

A column is *id-like*, and dropped unless the user names it, when it identifies rows instead of describing
them: a text column whose every value differs (names, keys), or an integer column whose every value differs
and that is named like an id (``id``, ``customerID``, ``user_id``, ``Unnamed: 0``) or counts the rows
(consecutive integers). Such a column would give a categorical embedding per training row, or a continuous
feature that only memorises the split.
"""

from __future__ import annotations

import re
import sys

import numpy as np
import pandas as pd

__all__ = ["is_numeric", "id_like", "check_values", "describe_roles", "say"]

_ID_NAME = re.compile(r"(^|[_\s.-])(id|key|index|uuid)$|^unnamed: ?0$", re.IGNORECASE)
_CAMEL_ID = re.compile(r"[a-z](Id|ID)$")  # customerID, PassengerId (not "paid", "valid")


def is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def id_like(series: pd.Series, min_rows: int = 20) -> bool:
    """Whether ``series`` identifies rows rather than describing them (module docstring)."""
    values = series.dropna()
    if len(values) < min_rows or values.nunique() != len(values):
        return False
    if not is_numeric(values):
        return True
    if not pd.api.types.is_integer_dtype(values):
        return False  # distinct measurements (prices, weights) are features
    consecutive = int(values.max()) - int(values.min()) + 1 == len(values)
    name = str(series.name)
    return bool(_ID_NAME.search(name) or _CAMEL_ID.search(name)) or consecutive


def check_values(frame: pd.DataFrame, target: str, categorical: list[str], continuous: list[str],
                 source: str) -> None:
    """Before anything is fitted: every feature column has a value, no continuous cell (nor a regression
    target) is infinite. The error names the columns and the fix."""
    empty = [c for c in (*categorical, *continuous) if frame[c].isna().all()]
    if empty:
        raise ValueError(f"Column(s) {empty} of {source} have no value at all (every cell is missing): drop them "
                         "with data.init_args.drop.")
    numeric = [c for c in (*continuous, target) if is_numeric(frame[c])]
    infinite = {c: int(np.isinf(frame[c].to_numpy(dtype=np.float64)).sum()) for c in numeric}
    infinite = {c: n for c, n in infinite.items() if n}
    if infinite:
        named = ", ".join(f"'{c}' ({n} infinite value{'s' if n > 1 else ''})" for c, n in infinite.items())
        raise ValueError(f"Column(s) {named} of {source} hold infinite values, which no model can use: replace them "
                         "by NaN (a missing value) or by a finite number, or drop the column (data.init_args.drop).")


def _names(columns: list[str], limit: int = 12) -> str:
    shown = ", ".join(columns[:limit])
    return shown + (f" ... ({len(columns)} in all)" if len(columns) > limit else "")


def describe_roles(source: str, rows: int, target: str, task: str, classes: list[str], categorical: list[str],
                   continuous: list[str], dropped: list[str], id_columns: list[str], unlabelled: int) -> list[str]:
    """The lines printed when a table is read: its rows, the task, and the role of each column."""
    kind = f"{task}, classes {_names(classes)}" if task != "regression" else "regression"
    lines = [f"{source}: {rows} rows, target '{target}' ({kind})"]
    if unlabelled:
        lines.append(f"  {unlabelled} row(s) without a target value dropped")
    lines.append(f"  categorical ({len(categorical)}): {_names(categorical) or '-'}")
    lines.append(f"  continuous ({len(continuous)}): {_names(continuous) or '-'}")
    if id_columns:
        lines.append(f"  dropped as id-like ({len(id_columns)}): {_names(id_columns)} (every value differs; name the "
                     "column in data.init_args.categorical or continuous to keep it)")
    user = [c for c in dropped if c not in id_columns]
    if user:
        lines.append(f"  dropped as asked ({len(user)}): {_names(user)}")
    return lines


def say(lines: list[str]) -> None:
    """Print ``lines`` on stderr, ``lit_digest: `` first, from the main process only."""
    from lit_digest.core.lightning import pl

    if getattr(pl.utilities.rank_zero_only, "rank", 0) == 0:
        for line in lines:
            print(f"lit_digest: {line}", file=sys.stderr, flush=True)
