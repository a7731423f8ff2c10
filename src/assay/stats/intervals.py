"""The mean of a golden set with its uncertainty: plain and clustered SE, t and Wilson."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from assay.stats._inputs import CaseScores, case_arrays, check_level, is_binary, trial_array

#: Below this many cases a pass rate near 0 or 1 gets the Wilson interval.
SMALL_N = 30
#: "Near 0 or 1": fewer than this many expected passes (or fails) among the cases.
NEAR_EDGE_COUNT = 5.0


@dataclass(frozen=True, slots=True)
class Estimate:
    """A run's mean score with its standard error and confidence interval.

    ``method`` is ``"t"`` (mean ± t·SE), ``"wilson"`` (pass/fail scores with few cases
    or a rate near 0 or 1) or ``"undefined"`` (a single case of continuous scores: the
    interval is (-inf, inf) because one case says nothing about case-to-case spread).
    ``se`` is always the plain SE of the case means, ``inf`` with a single case.
    """

    mean: float
    se: float
    low: float
    high: float
    level: float
    n_cases: int
    n_trials: int
    method: str


def wilson_interval(successes: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``successes / n`` (successes may be fractional)."""
    level = check_level(level)
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be a positive whole number of observations, got {n!r}")
    s = float(successes)
    if not (math.isfinite(s) and 0.0 <= s <= n):
        raise ValueError(f"successes must be between 0 and n={n}, got {successes!r}")
    z = float(sps.norm.ppf(0.5 + level / 2.0))
    p = s / n
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n))
    # At p = 0 or 1 the bound equals the edge exactly; rounding must not step past it.
    low = 0.0 if s == 0 else max(0.0, centre - half)
    high = 1.0 if s == n else min(1.0, centre + half)
    return low, high


def estimate_mean(case_scores: CaseScores, level: float = 0.95) -> Estimate:
    """Mean of case means (each case weighs the same) with an SE over cases and an interval.

    Trials of one case are averaged first, so repeated trials never count as independent
    cases. Pass/fail scores get the Wilson interval when every case is all-pass or
    all-fail, when the case means do not vary, or when there are fewer than 30 cases
    and fewer than 5 expected passes or fails; otherwise the t interval with n-1 df.
    """
    level = check_level(level)
    arrays = case_arrays(case_scores)
    means = np.array([a.mean() for a in arrays])
    n = len(means)
    n_trials = int(sum(len(a) for a in arrays))
    mean = float(means.mean())
    if n == 1:
        se = math.inf
    elif np.ptp(means) == 0.0:  # equal means: exactly 0, not a rounding residue
        se = 0.0
    else:
        se = float(means.std(ddof=1) / math.sqrt(n))
    binary = is_binary(arrays)
    if binary:
        successes = float(means.sum())
        all_decided = bool(np.all((means == 0.0) | (means == 1.0)))
        near_edge = n < SMALL_N and min(successes, n - successes) < NEAR_EDGE_COUNT
        if all_decided or near_edge or n == 1 or se == 0.0:
            # Case means of pass/fail trials lie in [0, 1], so their variance is at most
            # p(1-p): treating each case as one Bernoulli draw is exact for decided cases
            # and conservative for flaky ones.
            low, high = wilson_interval(min(successes, float(n)), n, level)
            return Estimate(mean, se, low, high, level, n, n_trials, "wilson")
    if n == 1:
        return Estimate(mean, se, -math.inf, math.inf, level, n, n_trials, "undefined")
    t = float(sps.t.ppf(0.5 + level / 2.0, n - 1))
    return Estimate(mean, se, mean - t * se, mean + t * se, level, n, n_trials, "t")


def clustered_se(
    scores: Sequence[float], clusters: Sequence[Hashable], small_sample: bool = True
) -> float:
    """Cluster-robust SE of the pooled mean of ``scores``, clustering by ``clusters``.

    SE = (1/N)·sqrt(Σ_c (Σ_{j∈c} (s_j − s̄))²), times sqrt(C/(C−1)) when ``small_sample``
    (Miller 2024, "Adding Error Bars to Evals", App. A). With one cluster the SE cannot
    be estimated and ``inf`` is returned.
    """
    if len(scores) != len(clusters):
        raise ValueError(
            f"scores and clusters must have the same length, got {len(scores)} and "
            f"{len(clusters)}; give the case id of every trial score"
        )
    if len(scores) == 0:
        raise ValueError("scores is empty; pass at least one trial score")
    groups: dict[Hashable, list[float]] = {}
    for s, c in zip(scores, clusters, strict=True):
        groups.setdefault(c, []).append(s)
    arrays = [trial_array(v, f"scores in cluster {k!r}") for k, v in groups.items()]
    n_clusters = len(arrays)
    if n_clusters < 2:
        return math.inf
    total = sum(len(a) for a in arrays)
    grand = sum(float(a.sum()) for a in arrays) / total
    sq = sum(float(a.sum() - len(a) * grand) ** 2 for a in arrays)
    se = math.sqrt(sq) / total
    if small_sample:
        se *= math.sqrt(n_clusters / (n_clusters - 1))
    return se
