"""Drift: compare a window of production traffic to a reference, per feature.

Detectors (numeric, categorical, embedding) return :class:`DriftResult` values;
:func:`correct` adjusts p-values across a family of results. See
docs/drift-detectors.md.
"""

from __future__ import annotations

from assay.drift.detectors import (
    DEFAULT_TESTS,
    MISSING,
    OTHER,
    Chi2Test,
    ClassifierTest,
    JSTest,
    KSPerDimTest,
    KSTest,
    MMDTest,
    PSITest,
    WassersteinTest,
    category_shifts,
    chi2_test,
    classifier_test,
    farthest_examples,
    js_test,
    ks_per_dim_test,
    ks_test,
    mmd_test,
    psi_test,
    wasserstein_test,
)
from assay.drift.result import DriftResult, DriftTest, correct

__all__ = [
    "DEFAULT_TESTS",
    "MISSING",
    "OTHER",
    "Chi2Test",
    "ClassifierTest",
    "DriftResult",
    "DriftTest",
    "JSTest",
    "KSPerDimTest",
    "KSTest",
    "MMDTest",
    "PSITest",
    "WassersteinTest",
    "category_shifts",
    "chi2_test",
    "classifier_test",
    "correct",
    "farthest_examples",
    "js_test",
    "ks_per_dim_test",
    "ks_test",
    "mmd_test",
    "psi_test",
    "wasserstein_test",
]
