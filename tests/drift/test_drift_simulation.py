"""Detectors checked by simulation (fixed seeds): false alarms on identical distributions.

Every detector with a p-value must flag at most alpha + 0.02 of 500 windows drawn from
the same distribution; threshold tests, at the smallest windows they decide on, likewise.
Sizes are small so the whole file runs in seconds; docs/drift-detectors.md has the
power table (benchmarks/drift.py --power).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from assay.drift import (
    DriftTest,
    chi2_test,
    classifier_test,
    js_test,
    ks_per_dim_test,
    ks_test,
    mmd_test,
    psi_test,
    wasserstein_test,
)

ALPHA = 0.05
RUNS = 500


def rows(rng: np.random.Generator, n: int, d: int, shift: float = 0.0) -> NDArray[np.float32]:
    z = rng.standard_normal((n, d)) / math.sqrt(d)
    z[:, 0] += shift
    out: NDArray[np.float32] = (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32)
    return out


def categories(rng: np.random.Generator, n: int, mix: list[float]) -> list[str]:
    return [f"c{i}" for i in rng.choice(len(mix), n, p=mix)]


Sampler = Callable[[np.random.Generator], tuple[Any, Any]]

NULL_CASES: dict[str, tuple[DriftTest, Sampler]] = {
    "ks": (ks_test, lambda r: (r.normal(size=40), r.normal(size=40))),
    "ks_ties": (ks_test, lambda r: (r.poisson(3, 60), r.poisson(3, 45))),
    "chi2": (
        chi2_test,
        lambda r: (
            categories(r, 100, [0.5, 0.3, 0.15, 0.05]),
            categories(r, 80, [0.5, 0.3, 0.15, 0.05]),
        ),
    ),
    "mmd_exact": (mmd_test, lambda r: (rows(r, 30, 5), rows(r, 30, 5))),
    "mmd_fourier": (
        mmd_test(exact_max=0, n_features=64),
        lambda r: (rows(r, 30, 5), rows(r, 35, 5)),
    ),
    "classifier": (classifier_test, lambda r: (rows(r, 50, 5), rows(r, 60, 5))),
    "ks_per_dim": (ks_per_dim_test, lambda r: (rows(r, 40, 10), rows(r, 40, 10))),
    # Threshold tests at windows a little above the smallest they give a verdict on.
    "wasserstein": (wasserstein_test, lambda r: (r.normal(size=400), r.normal(size=400))),
    "wasserstein_lognormal": (
        wasserstein_test,
        lambda r: (r.lognormal(size=3000), r.lognormal(size=3000)),
    ),
    "psi": (psi_test, lambda r: (r.lognormal(size=200), r.lognormal(size=200))),
    "jensen_shannon": (
        js_test,
        lambda r: (
            categories(r, 300, [0.4, 0.3, 0.2, 0.1]),
            categories(r, 300, [0.4, 0.3, 0.2, 0.1]),
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(NULL_CASES))
def test_false_alarm_rate_on_identical_distributions(case: str) -> None:
    test, sample = NULL_CASES[case]
    rng = np.random.default_rng(2024)
    verdicts = []
    for i in range(RUNS):
        reference, current = sample(rng)
        verdicts.append(test.run(case, reference, current, seed=i).drifted)
    decided = [v for v in verdicts if v is not None]
    # The sizes above are ones every test decides on; a silent test would prove nothing.
    assert len(decided) >= 0.95 * RUNS
    rate = sum(decided) / len(decided)
    assert rate <= ALPHA + 0.02, f"{case}: {rate:.3f} false alarms"


POWER_CASES: dict[str, tuple[DriftTest, Sampler]] = {
    "ks": (ks_test, lambda r: (r.normal(size=200), r.normal(0.5, size=200))),
    "chi2": (
        chi2_test,
        lambda r: (
            categories(r, 300, [0.5, 0.3, 0.2]),
            categories(r, 300, [0.35, 0.35, 0.3]),
        ),
    ),
    "mmd": (mmd_test, lambda r: (rows(r, 100, 16), rows(r, 100, 16, 0.5))),
    "classifier": (classifier_test, lambda r: (rows(r, 200, 16), rows(r, 200, 16, 0.5))),
    "ks_per_dim": (ks_per_dim_test, lambda r: (rows(r, 100, 16), rows(r, 100, 16, 0.5))),
}


@pytest.mark.parametrize("case", sorted(POWER_CASES))
def test_clear_shifts_are_detected(case: str) -> None:
    test, sample = POWER_CASES[case]
    rng = np.random.default_rng(7)
    hits = [test.run(case, *sample(rng), seed=i).drifted for i in range(40)]
    assert sum(h is True for h in hits) >= 36, f"{case}: detected {sum(hits)}/40"
