"""Tables as pandas DataFrames: the offline data sets that ship inside installed packages, CSV and Parquet files.

``read_table(source)`` takes the name of a bundled table or a path. The bundled tables need no download:

============== ============================== ====== =========================================== ===========
name           package                        rows   columns                                     task
============== ============================== ====== =========================================== ===========
breast_cancer  scikit-learn                   569    30 continuous                               binary
wine           scikit-learn                   178    13 continuous                               3 classes
diabetes       scikit-learn (unscaled)        442    9 continuous, ``sex`` categorical           regression
fair           statsmodels (Fair 1978)        6366   5 categorical (occupations, education, ...) binary
                                                     and 3 continuous
============== ============================== ====== =========================================== ===========

``fair`` is the affairs survey of R. Fair (J. Political Economy 1978) as statsmodels ships it. Its codes
become labelled categories (statsmodels' variable notes), and the target ``had_affair`` is ``affairs > 0``
("yes" for 32% of the rows). The continuous ``affairs`` measure itself is dropped: it is the target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from lit_digest.core.download import missing_data_error

__all__ = ["BUNDLED", "BundledTable", "read_table"]

_OCCUPATIONS = {1: "student", 2: "farming/semi-skilled/unskilled", 3: "white-collar",
                4: "teacher/nurse/artist/technician/skilled", 5: "managerial/business",
                6: "professional, advanced degree"}
_EDUCATION = {9: "grade school", 12: "high school", 14: "some college", 16: "college graduate",
              17: "some graduate school", 20: "advanced degree"}
_MARRIAGE = {1: "very poor", 2: "poor", 3: "fair", 4: "good", 5: "very good"}
_RELIGIOUS = {1: "not", 2: "mildly", 3: "fairly", 4: "strongly"}


@dataclass(frozen=True)
class BundledTable:
    """A table that ships inside an installed package, with its target and its categorical columns."""

    frame: pd.DataFrame
    target: str
    categorical: list[str] = field(default_factory=list)


def _sklearn(name: str) -> pd.DataFrame:
    from sklearn import datasets

    if name == "diabetes":  # unscaled: `sex` keeps its codes 1 / 2
        bunch = datasets.load_diabetes(as_frame=True, scaled=False)
    else:
        bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    return bunch.frame


def _fair() -> pd.DataFrame:
    from statsmodels.datasets import fair

    raw = fair.load_pandas().data
    frame = pd.DataFrame({
        "rate_marriage": raw["rate_marriage"].round().astype(int).map(_MARRIAGE),
        "religious": raw["religious"].round().astype(int).map(_RELIGIOUS),
        "educ": raw["educ"].round().astype(int).map(_EDUCATION),
        "occupation": raw["occupation"].round().astype(int).map(_OCCUPATIONS),
        "occupation_husb": raw["occupation_husb"].round().astype(int).map(_OCCUPATIONS),
        "age": raw["age"],
        "yrs_married": raw["yrs_married"],
        "children": raw["children"],
    })
    frame["had_affair"] = (raw["affairs"] > 0).map({True: "yes", False: "no"})
    return frame


def _bundled(name: str) -> BundledTable:
    if name in ("breast_cancer", "wine"):
        return BundledTable(_sklearn(name), "target")
    if name == "diabetes":
        frame = _sklearn(name)
        frame["sex"] = frame["sex"].round().astype(int).map({1: "1", 2: "2"})
        return BundledTable(frame, "target", ["sex"])
    if name == "fair":
        return BundledTable(_fair(), "had_affair",
                            ["rate_marriage", "religious", "educ", "occupation", "occupation_husb"])
    raise KeyError(name)


BUNDLED = ("breast_cancer", "wine", "diabetes", "fair")


def read_table(source: str | Path) -> BundledTable:
    """The bundled table ``source`` (one of ``BUNDLED``), or the CSV / Parquet file at path ``source``
    (target and categorical columns then come from the caller: the ``BundledTable`` has an empty target)."""
    if str(source) in BUNDLED:
        return _bundled(str(source))
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise ValueError(
            f"Cannot read table '{source}': give a bundled table ({', '.join(BUNDLED)}) or a .csv / .parquet file "
            "(set data.init_args.table)."
        )
    if not path.is_file():
        raise missing_data_error("Table", path, fix="set data.init_args.table to a .csv or .parquet file, or to one "
                                 f"of the bundled tables: {', '.join(BUNDLED)}")
    try:
        frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except Exception as err:  # a malformed file: say which
        raise ValueError(f"Could not read table '{path.resolve()}': {type(err).__name__}: {err}") from err
    return BundledTable(frame, "")
