"""Non-determinism per case: pass@k, pass^k, trial agreement and flaky cases."""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from assay.stats._inputs import CaseScores, case_arrays, is_binary, trial_array


def _counts(n: int, c: int, k: int) -> tuple[int, int, int]:
    try:
        n, c, k = operator.index(n), operator.index(c), operator.index(k)
    except TypeError:
        raise TypeError(
            f"n, c and k must be whole numbers, got n={n!r}, c={c!r}, k={k!r}"
        ) from None
    if n < 1:
        raise ValueError(f"n (trials of the case) must be at least 1, got {n}")
    if not 0 <= c <= n:
        raise ValueError(f"c (passing trials) must be between 0 and n={n}, got {c}")
    if not 1 <= k <= n:
        raise ValueError(
            f"k must be between 1 and n={n}, got {k}; run at least k trials per case "
            "to estimate pass@k or pass^k"
        )
    return n, c, k


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chance at least one of k trials passes, from c passes in n (Chen et al. 2021).

    Unbiased estimator 1 − C(n−c, k)/C(n, k), computed as 1 − Π_{i=n−c+1}^{n} (1 − k/i)
    so large n does not overflow.
    """
    n, c, k = _counts(n, c, k)
    if n - c < k:
        return 1.0
    i = np.arange(n - c + 1, n + 1, dtype=np.float64)
    return float(1.0 - np.prod(1.0 - k / i))


def pass_hat_k(n: int, c: int, k: int) -> float:
    """Chance all of k trials pass, from c passes in n: C(c, k)/C(n, k) (τ-bench, pass^k)."""
    n, c, k = _counts(n, c, k)
    if c < k:
        return 0.0
    i = np.arange(k, dtype=np.float64)
    return float(np.prod((c - i) / (n - i)))


def _pass_counts(case_scores: CaseScores, k: int) -> list[tuple[int, int]]:
    arrays = case_arrays(case_scores)
    if not is_binary(arrays):
        raise ValueError("pass@k and pass^k need pass/fail scores (every score 0 or 1)")
    return [(len(a), int(a.sum())) for a in arrays]


def average_pass_at_k(case_scores: CaseScores, k: int) -> float:
    """pass@k averaged over cases (each case weighs the same); scores must be 0/1."""
    return float(np.mean([pass_at_k(n, c, k) for n, c in _pass_counts(case_scores, k)]))


def average_pass_hat_k(case_scores: CaseScores, k: int) -> float:
    """pass^k averaged over cases (each case weighs the same); scores must be 0/1."""
    return float(np.mean([pass_hat_k(n, c, k) for n, c in _pass_counts(case_scores, k)]))


@dataclass(frozen=True, slots=True)
class TrialAgreement:
    """How much the trials of each case agree, and which cases are flaky.

    Pass/fail scores: a case's agreement is the share of its trials equal to its
    majority outcome, and it is flaky when its trials disagree at all. Continuous
    scores: agreement is 1 − var/max_var, with max_var = (range/2)² the largest variance
    possible over the run's score range, and a case is flaky when its trials span more
    than ``tolerance`` × that range. ``flaky_share`` is over cases with at least two
    trials, and ``None`` when there are none.
    """

    binary: bool
    per_case: dict[str, float]
    flaky: tuple[str, ...]
    flaky_share: float | None
    mean_agreement: float
    n_cases: int
    n_repeated: int
    tolerance: float = field(default=0.0)


def trial_agreement(
    case_scores: Mapping[str, Sequence[float]],
    *,
    tolerance: float = 0.1,
    score_range: tuple[float, float] | None = None,
) -> TrialAgreement:
    """Per-case agreement between trials and the flaky cases of a run.

    For continuous scores ``score_range`` is the scorer's (low, high); by default the
    run's observed minimum and maximum. ``tolerance`` only applies to continuous scores.
    """
    if not isinstance(case_scores, Mapping):
        raise TypeError("case_scores must map case id -> trial scores")
    if not 0.0 <= tolerance < 1.0:
        raise ValueError(f"tolerance must be in [0, 1), got {tolerance!r}")
    case_arrays(case_scores)  # checks emptiness with a clear message
    arrays = {str(cid): trial_array(s, f"case_scores[{cid!r}]") for cid, s in case_scores.items()}
    binary = is_binary(list(arrays.values()))
    per_case: dict[str, float] = {}
    flaky: list[str] = []
    if binary:
        for cid, a in arrays.items():
            passes = float(a.sum())
            per_case[cid] = max(passes, len(a) - passes) / len(a)
            if 0 < passes < len(a):
                flaky.append(cid)
        tol = 0.0
    else:
        if score_range is None:
            lo = min(float(a.min()) for a in arrays.values())
            hi = max(float(a.max()) for a in arrays.values())
        else:
            lo, hi = float(score_range[0]), float(score_range[1])
            if not hi >= lo:
                raise ValueError(
                    f"score_range must be (low, high) with low <= high, got {score_range}"
                )
        width = hi - lo
        tol = tolerance
        for cid, a in arrays.items():
            if width == 0.0:
                per_case[cid] = 1.0
                continue
            max_var = (width / 2.0) ** 2
            per_case[cid] = float(max(0.0, 1.0 - a.var() / max_var))
            if float(a.max() - a.min()) > tolerance * width:
                flaky.append(cid)
    n_repeated = sum(1 for a in arrays.values() if len(a) >= 2)
    share = len(flaky) / n_repeated if n_repeated else None
    return TrialAgreement(
        binary=binary,
        per_case=per_case,
        flaky=tuple(flaky),
        flaky_share=share,
        mean_agreement=float(np.mean(list(per_case.values()))),
        n_cases=len(arrays),
        n_repeated=n_repeated,
        tolerance=tol,
    )
