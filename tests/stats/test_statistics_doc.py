"""docs/statistics.md is part of the product: its examples run and it covers the API."""

from __future__ import annotations

import doctest
from pathlib import Path

import assay.stats

DOC = Path(__file__).resolve().parents[2] / "docs" / "statistics.md"


def test_examples_in_the_statistics_page_run() -> None:
    result = doctest.testfile(str(DOC), module_relative=False, verbose=False)
    assert result.attempted >= 10
    assert result.failed == 0


def test_every_public_name_is_documented() -> None:
    text = DOC.read_text()
    undocumented = [n for n in assay.stats.__all__ if n != "Verdict" and f"`{n}" not in text]
    assert undocumented == []
