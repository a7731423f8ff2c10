"""Power and sample size: how many cases (and trials) a comparison needs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from assay.stats._inputs import CaseScores, case_arrays, check_level

#: Between-run correlation of true case means assumed when neither given nor estimable.
DEFAULT_CORRELATION = 0.5


def _z_sum(alpha: float, power: float) -> float:
    alpha = check_level(alpha, "alpha")
    power = check_level(power, "power")
    return float(sps.norm.ppf(1.0 - alpha / 2.0) + sps.norm.ppf(power))


def _check_var(var_d: float) -> float:
    v = float(var_d)
    if not (math.isfinite(v) and v >= 0.0):
        raise ValueError(
            f"var_d must be a finite variance >= 0, got {var_d!r} (a comparison of one "
            "case has no variance estimate: compare more cases)"
        )
    return v


def sample_size(delta: float, var_d: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Cases needed to detect a mean difference ``delta``: (z_{1−α/2} + z_{power})²·Var(d)/δ².

    Two-sided level ``alpha``; rounded up, and at least 2 (an SE needs two cases).
    """
    delta = float(delta)
    if not (math.isfinite(delta) and delta != 0.0):
        raise ValueError(f"delta must be a non-zero difference to detect, got {delta!r}")
    n = _z_sum(alpha, power) ** 2 * _check_var(var_d) / delta**2
    # Shave float noise so an exact whole number is not rounded up by one.
    return max(2, math.ceil(n - 1e-9))


def minimum_detectable_effect(
    var_d: float, n: int, alpha: float = 0.05, power: float = 0.8
) -> float:
    """Smallest true difference n cases detect with the given power: z-sum·sqrt(Var(d)/n)."""
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be a positive whole number of cases, got {n!r}")
    return _z_sum(alpha, power) * math.sqrt(_check_var(var_d) / n)


def variance_components(case_scores: CaseScores) -> tuple[float, float]:
    """(ω², σ²): between-case variance of true case means, and within-case trial variance.

    σ² pools Σ(s_ik − x̄_i)² over Σ(K_i − 1) across cases with two or more trials (0 when
    no case has repeats: it cannot be told apart from ω² then). ω² = Var(x̄_i) −
    σ²·mean(1/K_i), the variance of case means minus the trial noise it contains,
    floored at 0 (0 with a single case).
    """
    arrays = case_arrays(case_scores)
    ks = np.array([len(a) for a in arrays], dtype=np.float64)
    dof = float((ks - 1).sum())
    ss = sum(float(((a - a.mean()) ** 2).sum()) for a in arrays)
    sigma2 = ss / dof if dof > 0 else 0.0
    if len(arrays) < 2:
        return 0.0, sigma2
    means = np.array([a.mean() for a in arrays])
    omega2 = max(0.0, float(means.var(ddof=1)) - sigma2 * float(np.mean(1.0 / ks)))
    return omega2, sigma2


def case_correlation(
    baseline_case_scores: Mapping[str, Sequence[float]],
    candidate_case_scores: Mapping[str, Sequence[float]],
) -> float | None:
    """Correlation between runs of the true case means, over shared cases.

    Cov(x̄_A, x̄_B) is unbiased for the true-mean covariance (trial noise is independent
    between runs); it is divided by sqrt(ω_A²·ω_B²) and clipped to [−1, 1]. ``None``
    when fewer than 3 cases are shared or a run's ω² is 0.
    """
    shared = [c for c in baseline_case_scores if c in candidate_case_scores]
    if len(shared) < 3:
        return None
    a = {c: baseline_case_scores[c] for c in shared}
    b = {c: candidate_case_scores[c] for c in shared}
    wa, _ = variance_components(a)
    wb, _ = variance_components(b)
    if wa <= 0.0 or wb <= 0.0:
        return None
    ma = np.array([x.mean() for x in case_arrays(a, "baseline")])
    mb = np.array([x.mean() for x in case_arrays(b, "candidate")])
    cov = float(np.cov(ma, mb, ddof=1)[0, 1])
    return float(min(1.0, max(-1.0, cov / math.sqrt(wa * wb))))


@dataclass(frozen=True, slots=True)
class PlanRow:
    """Cases needed with K trials per case in each of two runs.

    ``n_paired``: one golden set run twice (Var(d) = 2ω²(1−ρ) + 2σ²/K). ``n_unpaired``:
    cases per run when the runs do not share cases, or when pairing is ignored
    (Var = 2(ω² + σ²/K)). ``calls_*`` count target calls for both runs: 2·K·n.
    """

    trials: int
    var_d_paired: float
    n_paired: int
    calls_paired: int
    var_d_unpaired: float
    n_unpaired: int
    calls_unpaired: int


@dataclass(frozen=True, slots=True)
class Plan:
    """How many cases a comparison needs to detect ``delta``, for several trial counts.

    ``correlation_source`` says where ρ came from: ``"given"``, ``"estimated"`` (from a
    candidate run) or ``"default"`` (0.5). ``notes`` lists assumptions a reader should know.
    """

    delta: float
    alpha: float
    power: float
    omega2: float
    sigma2: float
    correlation: float
    correlation_source: str
    rows: tuple[PlanRow, ...]
    notes: tuple[str, ...]


def plan(
    baseline_case_scores: CaseScores,
    *,
    delta: float,
    alpha: float = 0.05,
    power: float = 0.8,
    trials: Sequence[int] = (1, 3, 5, 10),
    correlation: float | None = None,
    candidate_case_scores: Mapping[str, Sequence[float]] | None = None,
) -> Plan:
    """Cases needed to detect a difference ``delta`` between two runs, per trial count K.

    Assumes the candidate has the baseline's variance components (ω², σ²) and that true
    case means correlate ρ between the runs: ``correlation`` if given, else estimated
    from ``candidate_case_scores`` when given (both keyed by case id), else 0.5.
    """
    alpha = check_level(alpha, "alpha")
    power = check_level(power, "power")
    notes: list[str] = []
    omega2, sigma2 = variance_components(baseline_case_scores)
    arrays = case_arrays(baseline_case_scores)
    if all(len(a) == 1 for a in arrays):
        notes.append(
            "one trial per case: trial noise (σ²) cannot be separated from case-to-case "
            "spread (ω²) and is counted as ω², so the paired figures may be optimistic "
            "and more trials show no benefit; run K >= 2 trials for a better plan"
        )
    source = "given"
    if correlation is None:
        estimated = None
        if candidate_case_scores is not None:
            if not isinstance(baseline_case_scores, Mapping):
                raise TypeError(
                    "to estimate the correlation, baseline_case_scores must map case id -> "
                    "scores like candidate_case_scores"
                )
            estimated = case_correlation(baseline_case_scores, candidate_case_scores)
            if estimated is None:
                notes.append(
                    "the correlation could not be estimated (under 3 shared cases or no "
                    f"case-to-case variance); assumed {DEFAULT_CORRELATION}"
                )
        rho, source = (
            (estimated, "estimated") if estimated is not None else (DEFAULT_CORRELATION, "default")
        )
    else:
        rho = float(correlation)
        if not -1.0 <= rho <= 1.0:
            raise ValueError(f"correlation must be in [-1, 1], got {correlation!r}")
    if not trials:
        raise ValueError("trials is empty; pass the trial counts to plan for, e.g. (1, 3, 5)")
    rows = []
    for k in trials:
        if isinstance(k, bool) or int(k) != k or k < 1:
            raise ValueError(f"trials must be positive whole numbers, got {k!r}")
        k = int(k)
        var_p = 2.0 * omega2 * (1.0 - rho) + 2.0 * sigma2 / k
        var_u = 2.0 * (omega2 + sigma2 / k)
        n_p = sample_size(delta, var_p, alpha, power)
        n_u = sample_size(delta, var_u, alpha, power)
        rows.append(PlanRow(k, var_p, n_p, 2 * k * n_p, var_u, n_u, 2 * k * n_u))
    return Plan(
        delta=float(delta),
        alpha=alpha,
        power=power,
        omega2=omega2,
        sigma2=sigma2,
        correlation=rho,
        correlation_source=source,
        rows=tuple(rows),
        notes=tuple(notes),
    )
