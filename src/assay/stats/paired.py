"""Comparing two runs on the same golden set: paired difference, exact tests, FDR control."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from scipy import stats as sps

from assay.stats._inputs import FloatArray, check_level, is_binary, trial_array
from assay.stats.power import minimum_detectable_effect, sample_size

Verdict = Literal["regression", "improvement", "no detectable change"]

#: Rows of random signs drawn at once in the Monte Carlo test (bounds memory).
_CHUNK_CELLS = 2_000_000


@dataclass(frozen=True, slots=True)
class Comparison:
    """Candidate minus baseline over the cases both runs share, with a verdict.

    ``diff`` is mean(candidate) − mean(baseline) over shared cases, each case weighing
    the same; ``low``/``high`` its t interval. ``p_value`` comes from ``test``
    (``"mcnemar-exact"``, ``"sign-flip-exact"`` or ``"sign-flip-monte-carlo"``). The
    verdict uses ``p_adjusted`` when Benjamini–Hochberg was applied (see
    ``adjustment``), else ``p_value``, against alpha = 1 − level; the sign of ``diff``
    and ``higher_is_better`` give its direction. ``mde`` is the smallest true difference
    this many cases would detect with probability ``power``. The verdict is
    "improvement" or "regression" only when that p-value is ≤ alpha *and* the interval
    excludes 0; where the two disagree the result is borderline and reads "no detectable
    change".
    """

    n_cases: int
    n_only_baseline: int
    n_only_candidate: int
    baseline_mean: float
    candidate_mean: float
    diff: float
    se: float
    low: float
    high: float
    level: float
    var_d: float
    p_value: float
    test: str
    mde: float
    power: float
    verdict: Verdict
    higher_is_better: bool
    n_better: int
    n_worse: int
    n_same: int
    #: Pass/fail scores only: cases whose majority outcome went fail → pass, pass → fail.
    flipped_to_pass: tuple[str, ...]
    flipped_to_fail: tuple[str, ...]
    p_adjusted: float | None = None
    adjustment: str | None = None
    #: How many comparisons the adjustment was made over (1 when not adjusted).
    n_family: int = 1

    @property
    def alpha(self) -> float:
        """The significance level the verdict uses: 1 − level."""
        return 1.0 - self.level

    def cases_needed(self, delta: float) -> int:
        """Shared cases needed to detect a true difference ``delta`` at this power."""
        return sample_size(delta, self.var_d, alpha=self.alpha, power=self.power)


def _verdict(p: float, low: float, high: float, alpha: float, higher_is_better: bool) -> Verdict:
    # The test and the interval must agree: a verdict never sits next to an interval
    # that contains 0, and an interval alone never overrides the exact test.
    if not (p <= alpha and (low > 0.0 or high < 0.0)):
        return "no detectable change"
    diff = low if low > 0.0 else high
    return "improvement" if (diff > 0) == higher_is_better else "regression"


def mcnemar_exact(worse: int, better: int) -> float:
    """Two-sided exact McNemar p-value from the two kinds of discordant pairs."""
    if worse < 0 or better < 0:
        raise ValueError(f"discordant counts must be >= 0, got {worse} and {better}")
    n = worse + better
    if n == 0:
        return 1.0
    return float(min(1.0, sps.binomtest(min(worse, better), n, 0.5).pvalue))


def sign_flip_p(d: FloatArray, n_permutations: int, seed: int) -> tuple[float, str]:
    """Two-sided sign-flip p-value for mean(d) = 0, and the test's name.

    Exact over all 2^m sign patterns of the m non-zero differences when 2^m is at most
    ``n_permutations``; otherwise Monte Carlo with (1 + hits)/(1 + n_permutations).
    """
    nz = d[d != 0.0]
    m = len(nz)
    if m == 0:
        return 1.0, "sign-flip-exact"
    observed = abs(float(nz.sum()))
    # Sums equal in exact arithmetic can differ in the last bits; count those as ties.
    threshold = observed - 1e-9 * max(1.0, float(np.abs(nz).sum()))
    rows = max(1, _CHUNK_CELLS // m)
    if 2**m <= n_permutations:
        bits = np.arange(m)
        hits = 0
        for start in range(0, 2**m, rows):
            codes = np.arange(start, min(2**m, start + rows))[:, None]
            signs = ((codes >> bits) & 1) * 2 - 1
            hits += int(np.count_nonzero(np.abs(signs @ nz) >= threshold))
        return hits / 2**m, "sign-flip-exact"
    rng = np.random.default_rng(seed)
    hits = 0
    done = 0
    while done < n_permutations:
        size = min(rows, n_permutations - done)
        signs = rng.integers(0, 2, size=(size, m), dtype=np.int8) * 2 - 1
        hits += int(np.count_nonzero(np.abs(signs @ nz) >= threshold))
        done += size
    return (1 + hits) / (1 + n_permutations), "sign-flip-monte-carlo"


def _majority(a: FloatArray) -> int | None:
    mean = float(a.mean())
    return 1 if mean > 0.5 else 0 if mean < 0.5 else None


def compare_paired(
    baseline: Mapping[str, Sequence[float]],
    candidate: Mapping[str, Sequence[float]],
    *,
    level: float = 0.95,
    power: float = 0.8,
    higher_is_better: bool = True,
    n_permutations: int = 10_000,
    seed: int = 0,
) -> Comparison:
    """Compare two runs case by case on the case ids both share.

    McNemar's exact test when every shared case has one 0/1 trial on each side, else the
    sign-flip permutation test on d_i = mean(candidate_i) − mean(baseline_i).
    """
    level = check_level(level)
    power = check_level(power, "power")
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be at least 1, got {n_permutations}")
    for name, run in (("baseline", baseline), ("candidate", candidate)):
        if not isinstance(run, Mapping):
            raise TypeError(f"{name} must map case id -> trial scores, got {type(run).__name__}")
    shared = [cid for cid in baseline if cid in candidate]
    if not shared:
        raise ValueError(
            f"the runs share no case ids (baseline has {len(baseline)}, candidate has "
            f"{len(candidate)}); compare two runs of the same golden set"
        )
    base = [trial_array(baseline[c], f"baseline[{c!r}]") for c in shared]
    cand = [trial_array(candidate[c], f"candidate[{c!r}]") for c in shared]
    bm = np.array([a.mean() for a in base])
    cm = np.array([a.mean() for a in cand])
    d = cm - bm
    # Averages of equal trial sets can differ in the last bits; such a case is unchanged.
    scale = max(1.0, float(np.abs(bm).max()), float(np.abs(cm).max()))
    d[np.abs(d) <= 1e-12 * scale] = 0.0
    n = len(d)
    alpha = 1.0 - level
    diff = float(d.mean())
    binary = is_binary(base) and is_binary(cand)

    if n > 1:
        var_d = 0.0 if np.ptp(d) == 0.0 else float(d.var(ddof=1))
        se = math.sqrt(var_d / n)
        t = float(sps.t.ppf(1.0 - alpha / 2.0, n - 1))
        low, high = diff - t * se, diff + t * se
        mde_var = var_d
        if var_d == 0.0 and binary:
            # No case moved differently from the rest: bound the share of discordant
            # cases by its upper confidence limit with none seen, since E[d²] ≤ that share.
            mde_var = 1.0 - (alpha / 2.0) ** (1.0 / n)
        mde = minimum_detectable_effect(mde_var, n, alpha=alpha, power=power)
    else:
        var_d, se, low, high, mde = math.inf, math.inf, -math.inf, math.inf, math.inf

    single = all(len(a) == 1 for a in base) and all(len(a) == 1 for a in cand)
    if binary and single:
        worse = int(np.count_nonzero(d < 0))
        better = int(np.count_nonzero(d > 0))
        p, test = mcnemar_exact(worse, better), "mcnemar-exact"
    else:
        p, test = sign_flip_p(d, n_permutations, seed)

    up, down = int(np.count_nonzero(d > 0)), int(np.count_nonzero(d < 0))
    to_pass: list[str] = []
    to_fail: list[str] = []
    if binary:
        for cid, a, b in zip(shared, base, cand, strict=True):
            before, after = _majority(a), _majority(b)
            if before == 0 and after == 1:
                to_pass.append(cid)
            elif before == 1 and after == 0:
                to_fail.append(cid)
    return Comparison(
        n_cases=n,
        n_only_baseline=len(baseline) - n,
        n_only_candidate=sum(1 for c in candidate if c not in baseline),
        baseline_mean=float(bm.mean()),
        candidate_mean=float(cm.mean()),
        diff=diff,
        se=se,
        low=low,
        high=high,
        level=level,
        var_d=var_d,
        p_value=p,
        test=test,
        mde=mde,
        power=power,
        verdict=_verdict(p, low, high, alpha, higher_is_better),
        higher_is_better=higher_is_better,
        n_better=up if higher_is_better else down,
        n_worse=down if higher_is_better else up,
        n_same=n - up - down,
        flipped_to_pass=tuple(to_pass),
        flipped_to_fail=tuple(to_fail),
    )


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg adjusted p-values (in input order); reject where adjusted ≤ q."""
    p = np.asarray([float(v) for v in p_values], dtype=np.float64)
    if p.size == 0:
        return []
    bad = [i for i, v in enumerate(p) if not 0.0 <= v <= 1.0]
    if bad:
        raise ValueError(f"p-values must lie in [0, 1]; p_values[{bad[0]}] = {p[bad[0]]!r}")
    m = p.size
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    # Step-up: each adjusted value is the smallest scaled value at or above its rank.
    adjusted_sorted = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return [float(v) for v in adjusted]


def compare_many(
    pairs: Mapping[str, tuple[Mapping[str, Sequence[float]], Mapping[str, Sequence[float]]]],
    *,
    level: float = 0.95,
    power: float = 0.8,
    higher_is_better: bool | Mapping[str, bool] = True,
    n_permutations: int = 10_000,
    seed: int = 0,
) -> dict[str, Comparison]:
    """Compare several scorers at once, controlling the false discovery rate (BH).

    ``pairs`` maps a scorer name to its (baseline, candidate) case scores. Verdicts use
    the Benjamini–Hochberg adjusted p-values; each result records the adjustment.
    """
    if not pairs:
        raise ValueError("pairs is empty; pass at least one scorer's (baseline, candidate)")
    if not isinstance(higher_is_better, bool):
        unknown = sorted(set(higher_is_better) - set(pairs))
        if unknown:
            raise ValueError(f"higher_is_better names scorers not in pairs: {unknown}")
    results: dict[str, Comparison] = {}
    for name, pair in pairs.items():
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise TypeError(f"pairs[{name!r}] must be a (baseline, candidate) tuple")
        hib = (
            higher_is_better
            if isinstance(higher_is_better, bool)
            else higher_is_better.get(name, True)
        )
        try:
            results[name] = compare_paired(
                pair[0],
                pair[1],
                level=level,
                power=power,
                higher_is_better=hib,
                n_permutations=n_permutations,
                seed=seed,
            )
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"scorer {name!r}: {exc}") from exc
    adjusted = benjamini_hochberg([c.p_value for c in results.values()])
    return {
        name: replace(
            c,
            p_adjusted=q,
            adjustment="benjamini-hochberg",
            n_family=len(results),
            verdict=_verdict(q, c.low, c.high, c.alpha, c.higher_is_better),
        )
        for (name, c), q in zip(results.items(), adjusted, strict=True)
    }
