"""Drift: compare a window of production traffic to a reference, per feature.

Detectors (numeric, categorical, embedding) return :class:`DriftResult` values;
:func:`correct` adjusts p-values across a family of results. See
docs/drift-detectors.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from assay.drift.features import FEATURES, Feature, select_features
from assay.drift.report import DriftReport, DriftSpec, FeatureReport, build_spec, run_check
from assay.drift.result import DriftResult, DriftTest, correct
from assay.drift.windows import GoldenWindow, SpanWindow, WindowError, parse_range

if TYPE_CHECKING:
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

#: The detectors load scipy; the server imports this package at start-up without them.
_DETECTORS = frozenset(
    [
        "Chi2Test",
        "ClassifierTest",
        "DEFAULT_TESTS",
        "JSTest",
        "KSPerDimTest",
        "KSTest",
        "MISSING",
        "MMDTest",
        "OTHER",
        "PSITest",
        "WassersteinTest",
        "category_shifts",
        "chi2_test",
        "classifier_test",
        "farthest_examples",
        "js_test",
        "ks_per_dim_test",
        "ks_test",
        "mmd_test",
        "psi_test",
        "wasserstein_test",
    ]
)


def __getattr__(name: str) -> Any:
    if name in _DETECTORS:
        return getattr(importlib.import_module("assay.drift.detectors"), name)
    raise AttributeError(f"module 'assay.drift' has no attribute {name!r}")


__all__ = [
    "DEFAULT_TESTS",
    "FEATURES",
    "MISSING",
    "OTHER",
    "Chi2Test",
    "ClassifierTest",
    "DriftReport",
    "DriftResult",
    "DriftSpec",
    "DriftTest",
    "Feature",
    "FeatureReport",
    "GoldenWindow",
    "JSTest",
    "KSPerDimTest",
    "KSTest",
    "MMDTest",
    "PSITest",
    "SpanWindow",
    "WassersteinTest",
    "WindowError",
    "build_spec",
    "category_shifts",
    "chi2_test",
    "classifier_test",
    "correct",
    "farthest_examples",
    "js_test",
    "ks_per_dim_test",
    "ks_test",
    "mmd_test",
    "parse_range",
    "psi_test",
    "run_check",
    "select_features",
    "wasserstein_test",
]
