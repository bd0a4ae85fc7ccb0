"""`python -m lit_digest measured`: README's table is docs/measured.yaml's, a fast row's command prints the numbers
the file quotes (and a planted wrong number is caught), and every slow row says when and on which commit it ran."""

from __future__ import annotations

import re

import pytest

from lit_digest.cli import measured
from tests.helpers import ROOT


def test_the_readme_table_is_written_from_measured_yaml():
    rows = measured.load_rows()
    readme = (ROOT / "README.md").read_text()
    assert measured.readme_with_table(readme, rows) == readme, "run: python -m lit_digest measured --readme"
    # a number changed by hand in the README, not in the file, is caught
    planted = re.sub(r"churn (\d+\.\d)%", lambda m: f"churn {float(m.group(1)) + 5:.1f}%", readme, count=1)
    assert planted != readme and measured.readme_with_table(planted, rows) != planted
    assert measured.main(["--check-readme"]) == 0


def test_every_row_names_its_data_and_every_slow_row_its_date_and_commit():
    for row in measured.load_rows():
        assert row["data"] and row["wall"], row["id"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", str(row["measured"]["date"])), row["id"]
        assert re.fullmatch(r"[0-9a-f]{7,40}", str(row["measured"]["commit"])), row["id"]
        if not row.get("fast"):
            assert row.get("code"), f"{row['id']}: a slow row names the code it measures, to tell when it is stale"
            assert isinstance(measured.stale(row), list)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_fast_row_prints_the_readmes_numbers_and_a_planted_wrong_one_is_caught():
    row = next(r for r in measured.load_rows() if r["id"] == "muse-synthetic")
    got, out = measured.run_row(row)
    assert measured.compare(row, got) == [], out
    planted = {**row, "numbers": {k: v + 1.0 for k, v in row["numbers"].items()}}
    moved = measured.compare(planted, got)
    assert len(moved) == len(row["numbers"]) and all("README" in line for line in moved)
