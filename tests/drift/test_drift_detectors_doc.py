"""docs/drift-detectors.md is part of the product: its examples run and it covers every
detector, option and threshold a user can set."""

from __future__ import annotations

import dataclasses
import doctest
from pathlib import Path

from assay.drift import (
    DEFAULT_TESTS,
    chi2_test,
    classifier_test,
    js_test,
    ks_per_dim_test,
    ks_test,
    mmd_test,
    psi_test,
    wasserstein_test,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "drift-detectors.md"
TESTS = [
    ks_test,
    wasserstein_test,
    psi_test,
    chi2_test,
    js_test,
    mmd_test,
    classifier_test,
    ks_per_dim_test,
]


def test_examples_in_the_detectors_page_run() -> None:
    result = doctest.testfile(str(DOC), module_relative=False, verbose=False)
    assert result.attempted >= 8
    assert result.failed == 0


def test_every_detector_and_helper_is_documented() -> None:
    text = DOC.read_text()
    names = [
        "ks_test",
        "wasserstein_test",
        "psi_test",
        "chi2_test",
        "js_test",
        "mmd_test",
        "classifier_test",
        "ks_per_dim_test",
        "DEFAULT_TESTS",
        "DriftResult",
        "DriftTest",
        "correct",
        "farthest_examples",
        "category_shifts",
    ]
    assert [n for n in names if f"`{n}" not in text] == []
    assert all(f"`{t.name}`" in text for kind in DEFAULT_TESTS.values() for t in kind)


def test_every_option_and_its_default_is_documented() -> None:
    text = DOC.read_text()
    missing = []
    for t in TESTS:
        for f in dataclasses.fields(t):  # type: ignore[arg-type]
            if f.name in ("name", "kind", "alpha"):
                continue
            if f"`{f.name}`" not in text:
                missing.append(f"{t.name}.{f.name}")
    assert missing == []
    # Thresholds appear with their defaults.
    assert "`threshold` (0.2)" in text and "`threshold` (0.1)" in text
