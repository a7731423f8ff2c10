"""Drift detectors for numeric and categorical features, and the default test sets.

Numeric: Kolmogorov–Smirnov (p-value), Wasserstein and PSI (thresholds on an effect).
Categorical: chi-square (p-value) and Jensen–Shannon distance (threshold). Embedding
tests live in :mod:`assay.drift.embedding` and are re-exported here, so every detector
can be imported from this module. docs/drift-detectors.md explains each one.

Each built-in test is a frozen dataclass instance that is also its own factory:
``ks_test.run(...)`` uses the defaults, ``ks_test(min_samples=100).run(...)`` a copy.

Threshold tests stay silent (``drifted`` None, with a note) while sampling noise alone
could cross their threshold: the (1 − alpha) quantile of the statistic under no drift,
approximated for these window sizes, must lie below the threshold.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy import stats
from scipy.special import kolmogorov

from assay.drift.embedding import (
    ClassifierTest,
    KSPerDimTest,
    MMDTest,
    classifier_test,
    farthest_examples,
    ks_per_dim_test,
    mmd_test,
)
from assay.drift.result import (
    Configurable,
    DriftResult,
    DriftTest,
    check_alpha,
    correct,
    too_small_note,
)

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

#: The category a missing value (None or NaN) counts as.
MISSING = "(missing)"
#: The bucket that rare categories are merged into by the chi-square and JS tests.
OTHER = "(other)"

FloatArray = NDArray[np.float64]

# Largest window (each side) for the exact two-sample KS distribution (scipy's own limit).
_KS_EXACT_MAX = 10_000
# Wasserstein noise floor: W / (sqrt(1/m + 1/n) · ∫ sqrt(F(1 − F)) dx) stayed below this in
# 95% of simulated no-drift windows (normal, uniform, exponential, Poisson, lognormal, ≥ 100
# values per window); see docs/drift-detectors.md.
_W_NOISE_FACTOR = 2.0
# Cochran's rule: every bucket's expected count in each window is at least this.
_MIN_EXPECTED = 5.0


# ---------------------------------------------------------------------------- inputs


def numeric_values(values: Any, which: str) -> tuple[FloatArray, int]:
    """A 1-d float64 array of the finite values, and how many NaN/±inf were dropped."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{which} must be a 1-d sequence of numbers (None/NaN allowed); "
            f"cannot read it as floats: {exc}"
        ) from None
    if arr.ndim != 1:
        raise ValueError(f"{which} must be 1-d, got shape {arr.shape}; pass one value per span")
    finite = np.isfinite(arr)
    return np.ascontiguousarray(arr[finite]), int(arr.size - finite.sum())


def categorical_values(values: Any, which: str) -> list[str]:
    """Category labels as strings; None and NaN become ``"(missing)"``."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise ValueError(
            f"{which} must be a sequence of category labels (str or None), "
            f"got {type(values).__name__}"
        )
    out: list[str] = []
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append(MISSING)
        elif isinstance(v, str):
            out.append(v)
        else:
            out.append(str(v))
    return out


def _dropped(ref_dropped: int, cur_dropped: int) -> dict[str, Any]:
    if ref_dropped or cur_dropped:
        return {"dropped_non_finite": {"reference": ref_dropped, "current": cur_dropped}}
    return {}


def _numeric_windows(
    reference: Any, current: Any, **extra: Any
) -> tuple[FloatArray, FloatArray, dict[str, Any]]:
    """Both windows as finite floats, and the details every numeric test reports (medians,
    then ``extra``, then how many values were dropped)."""
    ref, ref_drop = numeric_values(reference, "reference")
    cur, cur_drop = numeric_values(current, "current")
    details = {
        "reference_median": _median(ref),
        "current_median": _median(cur),
        **extra,
        **_dropped(ref_drop, cur_drop),
    }
    return ref, cur, details


def _median(x: FloatArray) -> float | None:
    return float(np.median(x)) if x.size else None


# ---------------------------------------------------------------------------- numeric


def _ks_statistic(x: FloatArray, y: FloatArray) -> tuple[float, float, int]:
    """Two-sample KS D, where it occurs, and +1 if the reference ECDF is above there."""
    xs, ys = np.sort(x), np.sort(y)
    pooled = np.concatenate([xs, ys])
    diff = (
        np.searchsorted(xs, pooled, side="right") / xs.size
        - np.searchsorted(ys, pooled, side="right") / ys.size
    )
    hi, lo = int(np.argmax(diff)), int(np.argmin(diff))
    if -diff[lo] > diff[hi]:
        return float(-diff[lo]), float(pooled[lo]), -1
    return float(diff[hi]), float(pooled[hi]), 1


@dataclass(frozen=True, slots=True)
class KSTest(Configurable):
    """Two-sample Kolmogorov–Smirnov test: the largest gap between the two ECDFs.

    p-value: exact two-sample distribution (scipy) while both windows have ≤ 10,000
    values, else Kolmogorov's limit ``kolmogorov(sqrt(mn/(m+n)) · D)`` (slightly
    conservative; within ~2% of exact at those sizes).
    """

    name: str = "ks"
    kind: Literal["numeric"] = "numeric"
    min_samples: int = 30
    alpha: float = 0.05

    def run(self, feature: str, reference: Any, current: Any, *, seed: int = 0) -> DriftResult:
        """KS D as statistic and effect; verdict ``p <= alpha`` (see :func:`correct`)."""
        check_alpha(self.alpha)
        ref, cur, details = _numeric_windows(reference, current)
        m, n = ref.size, cur.size
        if min(m, n) < max(self.min_samples, 1):
            d = _ks_statistic(ref, cur)[0] if min(m, n) else math.nan
            return DriftResult(
                feature, self.name, d, None, d, "KS D", m, n,
                note=too_small_note(self.name, self.min_samples, m, n), details=details,
            )  # fmt: skip
        if max(m, n) <= _KS_EXACT_MAX:
            with warnings.catch_warnings():
                # scipy falls back to the asymptotic p-value itself when exact fails.
                warnings.simplefilter("ignore", RuntimeWarning)
                r = stats.ks_2samp(ref, cur, method="exact")
            d, p = float(r.statistic), float(r.pvalue)
            location, sign = float(r.statistic_location), int(r.statistic_sign)
            details["p_method"] = "exact"
        else:
            d, location, sign = _ks_statistic(ref, cur)
            p = float(kolmogorov(math.sqrt(m * n / (m + n)) * d))
            details["p_method"] = "asymptotic (Kolmogorov limit)"
        details["location"] = location
        # Reference ECDF above the current one: current values are larger there.
        details["current_shift"] = "higher" if sign > 0 else "lower"
        p = min(1.0, max(0.0, p))
        return DriftResult(
            feature, self.name, d, p, d, "KS D", m, n,
            drifted=p <= self.alpha, details=details,
        )  # fmt: skip


def _spread_integral(sorted_ref: FloatArray) -> float:
    """∫ sqrt(F(1 − F)) dx over the reference ECDF: the scale of Wasserstein noise."""
    m = sorted_ref.size
    if m < 2:
        return 0.0
    f = np.arange(1, m) / m
    return float(np.sum(np.sqrt(f * (1.0 - f)) * np.diff(sorted_ref)))


@dataclass(frozen=True, slots=True)
class WassersteinTest(Configurable):
    """Wasserstein-1 (earth mover's) distance in units of the reference's spread.

    effect = W / IQR(reference): how far, on average, values moved, as a share of the
    reference interquartile range (falls back to the reference sd, then the pooled sd, when
    the IQR is 0). Drifted when effect ≥ ``threshold``. No p-value.
    """

    name: str = "wasserstein"
    kind: Literal["numeric"] = "numeric"
    min_samples: int = 30
    threshold: float = 0.2
    alpha: float = 0.05

    def run(self, feature: str, reference: Any, current: Any, *, seed: int = 0) -> DriftResult:
        """W as statistic, W / spread as effect; silent while noise could cross the threshold."""
        check_alpha(self.alpha)
        ref, cur, details = _numeric_windows(reference, current, threshold=self.threshold)
        m, n = ref.size, cur.size
        if min(m, n) == 0:
            note = too_small_note(self.name, self.min_samples, m, n)
            return DriftResult(
                feature, self.name, math.nan, None, math.nan, "Wasserstein / ref IQR", m, n,
                note=note, details=details,
            )  # fmt: skip
        w = float(stats.wasserstein_distance(ref, cur))
        q1, q3 = np.quantile(ref, [0.25, 0.75])
        scale, effect_name = float(q3 - q1), "Wasserstein / ref IQR"
        if scale <= 0:
            scale = float(np.std(ref, ddof=1)) if m > 1 else 0.0
            effect_name = "Wasserstein / ref sd"
        if scale <= 0:
            pooled = np.concatenate([ref, cur])
            scale, effect_name = float(np.std(pooled, ddof=1)), "Wasserstein / pooled sd"
        effect = w / scale if scale > 0 else 0.0
        details["scale"] = scale
        # Noise floor: (1 − alpha)-level bound of W under no drift, in effect units.
        spread = _spread_integral(np.sort(ref)) / scale if scale > 0 else 0.0
        floor = _W_NOISE_FACTOR * math.sqrt(1 / m + 1 / n) * spread
        details["noise_floor"] = floor
        need = self.min_samples
        if floor >= self.threshold:
            need = max(need, math.ceil(2 * (_W_NOISE_FACTOR * spread / self.threshold) ** 2))
        if min(m, n) < self.min_samples or floor >= self.threshold:
            why = "" if floor < self.threshold else (
                f"sampling noise alone reaches {floor:.3g} against a threshold of "
                f"{self.threshold:g}"
            )  # fmt: skip
            return DriftResult(
                feature, self.name, w, None, effect, effect_name, m, n,
                note=too_small_note(self.name, need, m, n, why), details=details,
            )  # fmt: skip
        return DriftResult(
            feature, self.name, w, None, effect, effect_name, m, n,
            drifted=effect >= self.threshold, details=details,
        )  # fmt: skip


def psi_bins(reference: FloatArray, n_bins: int) -> FloatArray:
    """Interior bin edges: the distinct reference quantiles at k/n_bins, k = 1..n_bins−1."""
    levels = np.arange(1, n_bins) / n_bins
    edges: FloatArray = np.unique(np.quantile(reference, levels))
    return edges


def psi_value(
    reference: FloatArray, current: FloatArray, edges: FloatArray, pseudo_count: float = 0.5
) -> tuple[float, FloatArray, FloatArray]:
    """PSI = Σ (q − p) · ln(q / p) over bins, and the smoothed shares p (ref), q (current).

    Bins are (−inf, e1], (e1, e2], …, (e_last, inf); each bin count gets ``pseudo_count``
    added before shares are taken, so an empty bin gives a large but finite term.
    """
    k = edges.size + 1
    a = np.bincount(np.searchsorted(edges, reference, side="left"), minlength=k)
    b = np.bincount(np.searchsorted(edges, current, side="left"), minlength=k)
    p = ((a + pseudo_count) / (reference.size + pseudo_count * k)).astype(np.float64)
    q = ((b + pseudo_count) / (current.size + pseudo_count * k)).astype(np.float64)
    return float(np.sum((q - p) * np.log(q / p))), p, q


@dataclass(frozen=True, slots=True)
class PSITest(Configurable):
    """Population stability index over reference-quantile bins.

    ``n_bins`` bins at reference deciles (ties merge bins), half a count added to every bin
    in both windows (so empty bins stay finite). Drifted when PSI ≥ ``threshold`` (0.2 by
    the usual reading: < 0.1 stable, 0.1–0.2 moderate, ≥ 0.2 shifted). No p-value.
    """

    name: str = "psi"
    kind: Literal["numeric"] = "numeric"
    min_samples: int = 30
    n_bins: int = 10
    threshold: float = 0.2
    pseudo_count: float = 0.5
    alpha: float = 0.05

    def run(self, feature: str, reference: Any, current: Any, *, seed: int = 0) -> DriftResult:
        """PSI as statistic and effect; silent while noise could cross the threshold."""
        check_alpha(self.alpha)
        if self.n_bins < 2:
            raise ValueError(f"n_bins must be at least 2, got {self.n_bins}")
        ref, ref_drop = numeric_values(reference, "reference")
        cur, cur_drop = numeric_values(current, "current")
        m, n = ref.size, cur.size
        details: dict[str, Any] = {"threshold": self.threshold, **_dropped(ref_drop, cur_drop)}
        if min(m, n) == 0:
            note = too_small_note(self.name, self.min_samples, m, n)
            return DriftResult(
                feature, self.name, math.nan, None, math.nan, "PSI", m, n,
                note=note, details=details,
            )  # fmt: skip
        edges = psi_bins(ref, self.n_bins)
        psi, p, q = psi_value(ref, cur, edges, self.pseudo_count)
        details["bins"] = [
            {"upper": float(u), "reference_share": float(a), "current_share": float(b)}
            for u, a, b in zip([*edges.tolist(), math.inf], p, q, strict=True)
        ]
        # Under no drift PSI ≈ (1/m + 1/n) · χ²(bins − 1).
        crit = float(stats.chi2.ppf(1 - self.alpha, edges.size))
        floor = crit * (1 / m + 1 / n)
        details["noise_floor"] = floor
        need = max(self.min_samples, math.ceil(2 * crit / self.threshold))
        if min(m, n) < self.min_samples or floor >= self.threshold:
            why = "" if floor < self.threshold else f"for {edges.size + 1} bins"
            return DriftResult(
                feature, self.name, psi, None, psi, "PSI", m, n,
                note=too_small_note(self.name, need, m, n, why), details=details,
            )  # fmt: skip
        return DriftResult(
            feature, self.name, psi, None, psi, "PSI", m, n,
            drifted=psi >= self.threshold, details=details,
        )  # fmt: skip


# ---------------------------------------------------------------------------- categorical


def _counts(ref: list[str], cur: list[str]) -> tuple[list[str], FloatArray, FloatArray]:
    a, b = Counter(ref), Counter(cur)
    cats = sorted(set(a) | set(b))
    return (
        cats,
        np.array([a[c] for c in cats], dtype=np.float64),
        np.array([b[c] for c in cats], dtype=np.float64),
    )


def merge_rare(
    cats: list[str], a: FloatArray, b: FloatArray
) -> tuple[list[str], FloatArray, FloatArray, list[str]]:
    """Buckets for a 2×K table in which every expected count is ≥ 5 (Cochran's rule).

    Categories whose expected count in the smaller window is below 5 go into
    ``"(other)"``; if that bucket is itself below 5, it absorbs the smallest remaining
    category. Returns bucket names, counts per window, and the merged categories.
    """
    m, n = a.sum(), b.sum()
    total = a + b
    expected_min = total * min(m, n) / (m + n)
    rare = expected_min < _MIN_EXPECTED
    if not rare.any():
        return cats, a, b, []
    keep = np.flatnonzero(~rare)
    merged = [cats[i] for i in np.flatnonzero(rare)]
    other_a, other_b = float(a[rare].sum()), float(b[rare].sum())
    if (other_a + other_b) * min(m, n) / (m + n) < _MIN_EXPECTED and keep.size:
        smallest = keep[np.argmin(total[keep])]
        merged.append(cats[smallest])
        other_a += float(a[smallest])
        other_b += float(b[smallest])
        keep = keep[keep != smallest]
    names = [cats[i] for i in keep] + [OTHER]
    return (
        names,
        np.append(a[keep], other_a),
        np.append(b[keep], other_b),
        sorted(merged),
    )


def _shifts(cats: list[str], a: FloatArray, b: FloatArray, k: int) -> list[dict[str, Any]]:
    pa, pb = a / max(a.sum(), 1), b / max(b.sum(), 1)
    change = pb - pa
    order = sorted(range(len(cats)), key=lambda i: (-abs(change[i]), cats[i]))
    return [
        {
            "category": cats[i],
            "reference_share": float(pa[i]),
            "current_share": float(pb[i]),
            "change": float(change[i]),
        }
        for i in order[:k]
    ]


def category_shifts(reference: Any, current: Any, k: int = 5) -> list[dict[str, Any]]:
    """The ``k`` categories whose share changed most (largest |change| first).

    Each item: ``{"category", "reference_share", "current_share", "change"}`` with
    change = current share − reference share. None counts as ``"(missing)"``.
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    cats, a, b = _counts(
        categorical_values(reference, "reference"), categorical_values(current, "current")
    )
    return _shifts(cats, a, b, k)


def _categorical_setup(
    test: str, min_samples: int, reference: Any, current: Any
) -> tuple[list[str], FloatArray, FloatArray, int, int, dict[str, Any], str | None]:
    ref = categorical_values(reference, "reference")
    cur = categorical_values(current, "current")
    m, n = len(ref), len(cur)
    cats, a, b = _counts(ref, cur)
    shifts = _shifts(cats, a, b, 5)
    details: dict[str, Any] = {"categories": len(cats), "top_shifts": shifts}
    note = too_small_note(test, min_samples, m, n) if min(m, n) < max(min_samples, 1) else None
    return cats, a, b, m, n, details, note


def _max_share_change(a: FloatArray, b: FloatArray) -> float:
    if a.sum() == 0 or b.sum() == 0:
        return math.nan
    return float(np.max(np.abs(b / b.sum() - a / a.sum())))


@dataclass(frozen=True, slots=True)
class Chi2Test(Configurable):
    """Pearson chi-square test of homogeneity on the 2×K table (reference, current).

    Rare categories are merged (:func:`merge_rare`) so every expected count is ≥ 5; no
    continuity correction. effect = the largest absolute change in a category's share
    (over the original categories).
    """

    name: str = "chi2"
    kind: Literal["categorical"] = "categorical"
    min_samples: int = 30
    alpha: float = 0.05

    def run(self, feature: str, reference: Any, current: Any, *, seed: int = 0) -> DriftResult:
        """χ² as statistic; verdict ``p <= alpha`` (see :func:`correct`)."""
        check_alpha(self.alpha)
        cats, a, b, m, n, details, note = _categorical_setup(
            self.name, self.min_samples, reference, current
        )
        effect = _max_share_change(a, b)
        if note is not None:
            return DriftResult(
                feature, self.name, math.nan, None, effect, "max share change", m, n,
                note=note, details=details,
            )  # fmt: skip
        names, ba, bb, merged = merge_rare(cats, a, b)
        details["buckets"] = len(names)
        if merged:
            details["merged_into_other"] = merged[:50]
        if len(names) < 2:
            # One bucket left: nothing the table can tell apart.
            details["dof"] = 0
            return DriftResult(
                feature, self.name, 0.0, 1.0, effect, "max share change", m, n,
                drifted=False, details=details,
            )  # fmt: skip
        table = np.vstack([ba, bb])
        expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
        chi2 = float(np.sum((table - expected) ** 2 / expected))
        dof = len(names) - 1
        p = float(stats.chi2.sf(chi2, dof))
        details["dof"] = dof
        return DriftResult(
            feature, self.name, chi2, p, effect, "max share change", m, n,
            drifted=p <= self.alpha, details=details,
        )  # fmt: skip


def js_distance(p: FloatArray, q: FloatArray) -> float:
    """Jensen–Shannon distance, base 2 (in [0, 1]): sqrt of the JS divergence in bits."""
    p = p / p.sum()
    q = q / q.sum()
    mid = (p + q) / 2

    def kl(x: FloatArray) -> float:
        nz = x > 0
        return float(np.sum(x[nz] * np.log2(x[nz] / mid[nz])))

    return math.sqrt(max(0.0, (kl(p) + kl(q)) / 2))


@dataclass(frozen=True, slots=True)
class JSTest(Configurable):
    """Jensen–Shannon distance (base 2, 0 = same mix, 1 = disjoint) between category mixes.

    Computed over the same buckets as the chi-square test (rare categories merged into
    ``"(other)"``). Drifted when the distance ≥ ``threshold`` (0.1: about a 12-point swing
    between two categories). No p-value.
    """

    name: str = "jensen_shannon"
    kind: Literal["categorical"] = "categorical"
    min_samples: int = 30
    threshold: float = 0.1
    alpha: float = 0.05

    def run(self, feature: str, reference: Any, current: Any, *, seed: int = 0) -> DriftResult:
        """JS distance as statistic and effect; silent while noise could cross the threshold."""
        check_alpha(self.alpha)
        cats, a, b, m, n, details, note = _categorical_setup(
            self.name, self.min_samples, reference, current
        )
        details["threshold"] = self.threshold
        if min(m, n) == 0:
            return DriftResult(
                feature, self.name, math.nan, None, math.nan, "JS distance", m, n,
                note=note, details=details,
            )  # fmt: skip
        names, ba, bb, merged = merge_rare(cats, a, b)
        details["buckets"] = len(names)
        if merged:
            details["merged_into_other"] = merged[:50]
        js = js_distance(ba, bb)
        # Under no drift JS divergence (bits) ≈ (1/m + 1/n) · χ²(K − 1) / (8 ln 2).
        dof = max(len(names) - 1, 1)
        crit = float(stats.chi2.ppf(1 - self.alpha, dof)) / (8 * math.log(2))
        floor = math.sqrt(crit * (1 / m + 1 / n))
        details["noise_floor"] = floor
        if note is None and floor >= self.threshold:
            need = max(self.min_samples, math.ceil(2 * crit / self.threshold**2))
            note = too_small_note(self.name, need, m, n, f"for {len(names)} buckets")
        if note is not None:
            return DriftResult(
                feature, self.name, js, None, js, "JS distance", m, n,
                note=note, details=details,
            )  # fmt: skip
        return DriftResult(
            feature, self.name, js, None, js, "JS distance", m, n,
            drifted=js >= self.threshold, details=details,
        )  # fmt: skip


# ---------------------------------------------------------------------------- instances

ks_test = KSTest()
wasserstein_test = WassersteinTest()
psi_test = PSITest()
chi2_test = Chi2Test()
js_test = JSTest()

#: What a drift check runs by default, per feature kind.
DEFAULT_TESTS: dict[str, list[DriftTest]] = {
    "numeric": [ks_test, wasserstein_test],
    "categorical": [chi2_test, js_test],
    "embedding": [mmd_test, classifier_test],
}
