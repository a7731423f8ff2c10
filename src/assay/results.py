"""What a finished run says: per-scorer estimates, flaky cases, pass@k, cost and latency;
how two runs compare; whether a CI gate passes; the JUnit XML a CI server shows."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET

from assay.model import EvalRun, Trial

if TYPE_CHECKING:
    from assay.stats import Comparison, Estimate, TrialAgreement

#: case id -> trial scores of one scorer
CaseScores = dict[str, list[float]]


@dataclass(frozen=True, slots=True)
class ScorerSummary:
    """One scorer over a run: the mean with its interval (cases as clusters), trial
    agreement and flaky cases, pass@k / pass^k for pass/fail scores, scoring errors."""

    key: str
    estimate: Estimate
    agreement: TrialAgreement
    binary: bool
    pass_at_k: dict[int, float]
    pass_hat_k: dict[int, float]
    n_scored: int
    n_errors: int
    first_error: str | None = None


@dataclass(frozen=True, slots=True)
class RunSummary:
    """Everything a run page, the CLI and a CI gate read from a run."""

    run: EvalRun
    n_cases: int
    trials_done: int
    trials_failed: int
    first_failure: str | None
    scorers: dict[str, ScorerSummary]
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    cost: float
    input_tokens: int
    output_tokens: int
    #: What scoring itself cost (LLM judges report their calls' cost in score metadata).
    scoring_cost: float = 0.0
    #: case id -> scorer key -> trial scores, for the per-case table (not serialized).
    case_scores: dict[str, CaseScores] = field(default_factory=dict, repr=False)
    #: case id -> scorer key -> pass/fail of each trial, for scorers that decide one.
    case_passes: dict[str, dict[str, list[bool]]] = field(default_factory=dict, repr=False)
    failed_cases: dict[str, str] = field(default_factory=dict, repr=False)

    def failing(self, case_id: str, threshold: float = 1.0) -> dict[str, float]:
        """Scorers whose pass rate over this case's trials is below ``threshold``
        (scorers without a pass/fail decision never fail a case)."""
        return {
            key: sum(v) / len(v)
            for key, v in self.case_passes.get(case_id, {}).items()
            if v and sum(v) / len(v) < threshold
        }


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    pos = (len(values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def summarize(
    run: EvalRun, trials: Iterable[Trial], n_cases: int, level: float = 0.95
) -> RunSummary:
    """Summarize a run from its stored trials (streamed: memory grows with cases, not
    with the size of outputs)."""
    # scipy loads on first use: commands that never compute statistics start faster.
    from assay.stats import (
        average_pass_at_k,
        average_pass_hat_k,
        estimate_mean,
        trial_agreement,
    )

    per_scorer: dict[str, CaseScores] = {s.label: {} for s in run.scorers}
    errors: dict[str, int] = {s.label: 0 for s in run.scorers}
    first_error: dict[str, str] = {}
    latencies: list[float] = []
    cost = scoring_cost = 0.0
    tokens_in = tokens_out = 0
    done = failed = 0
    first_failure: str | None = None
    failed_cases: dict[str, str] = {}
    passes: dict[str, dict[str, list[bool]]] = {}
    for t in trials:
        if t.error is not None:
            failed += 1
            first_failure = first_failure or f"{t.case_id}#{t.trial}: {t.error}"
            failed_cases.setdefault(t.case_id, t.error)
            continue
        done += 1
        if t.output is not None:
            latencies.append(t.output.latency_ms)
            cost += t.output.cost or 0.0
            tokens_in += t.output.input_tokens or 0
            tokens_out += t.output.output_tokens or 0
        for key, score in t.scores.items():
            per_scorer.setdefault(key, {}).setdefault(t.case_id, []).append(score.value)
            if score.passed is not None:
                passes.setdefault(t.case_id, {}).setdefault(key, []).append(score.passed)
            judged = score.metadata.get("cost")
            if isinstance(judged, int | float):
                scoring_cost += float(judged)
        for key, message in t.score_errors.items():
            errors[key] = errors.get(key, 0) + 1
            first_error.setdefault(key, f"{t.case_id}#{t.trial}: {message}")
    scorers: dict[str, ScorerSummary] = {}
    for key, case_scores in per_scorer.items():
        if not case_scores:
            continue
        est = estimate_mean(list(case_scores.values()), level)
        agreement = trial_agreement(case_scores)
        k_max = min(len(v) for v in case_scores.values())
        ks = sorted({1, k_max}) if agreement.binary else []
        scorers[key] = ScorerSummary(
            key=key,
            estimate=est,
            agreement=agreement,
            binary=agreement.binary,
            pass_at_k={k: average_pass_at_k(list(case_scores.values()), k) for k in ks},
            pass_hat_k={k: average_pass_hat_k(list(case_scores.values()), k) for k in ks},
            n_scored=sum(len(v) for v in case_scores.values()),
            n_errors=errors.get(key, 0),
            first_error=first_error.get(key),
        )
    cases: dict[str, CaseScores] = {}
    for key, case_scores in per_scorer.items():
        for cid, values in case_scores.items():
            cases.setdefault(cid, {})[key] = values
    return RunSummary(
        run=run,
        n_cases=n_cases,
        trials_done=done,
        trials_failed=failed,
        first_failure=first_failure,
        scorers=scorers,
        latency_p50_ms=_percentile(latencies, 0.5),
        latency_p95_ms=_percentile(latencies, 0.95),
        cost=cost,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        scoring_cost=scoring_cost,
        case_scores=cases,
        case_passes=passes,
        failed_cases=failed_cases,
    )


# -- comparison ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunComparison:
    """Two runs compared on the cases they share, one paired comparison per scorer
    (Benjamini–Hochberg across scorers when there are several)."""

    baseline: EvalRun
    candidate: EvalRun
    scorers: dict[str, Comparison]
    skipped: dict[str, str]
    notes: tuple[str, ...]

    @property
    def regressions(self) -> list[str]:
        """Scorers whose verdict is a regression."""
        return [k for k, c in self.scorers.items() if c.verdict == "regression"]


def compare_runs(
    baseline: EvalRun,
    candidate: EvalRun,
    baseline_scores: Mapping[str, CaseScores],
    candidate_scores: Mapping[str, CaseScores],
    *,
    level: float = 0.95,
    power: float = 0.8,
    lower_is_better: Iterable[str] = (),
    seed: int = 0,
) -> RunComparison:
    """Compare two runs' per-case scores scorer by scorer (scores keyed by scorer key)."""
    from assay.stats import compare_many

    notes: list[str] = []
    if baseline.golden != candidate.golden:
        notes.append(
            f"different golden sets ({baseline.golden} vs {candidate.golden}): only cases "
            "with the same id are compared"
        )
    elif baseline.golden_version != candidate.golden_version:
        notes.append(
            f"golden set {baseline.golden} changed between the runs "
            f"({baseline.golden_version[:12]} -> {candidate.golden_version[:12]}): cases with "
            "the same id are compared even if their content changed"
        )
    pairs: dict[str, tuple[CaseScores, CaseScores]] = {}
    skipped: dict[str, str] = {}
    for key in sorted(set(baseline_scores) | set(candidate_scores)):
        a = baseline_scores.get(key)
        b = candidate_scores.get(key)
        if not a or not b:
            skipped[key] = "only in the " + ("candidate" if not a else "baseline")
            continue
        if not set(a) & set(b):
            skipped[key] = "the runs share no cases"
            continue
        pairs[key] = (a, b)
    lower = set(lower_is_better)
    comparisons = (
        compare_many(
            pairs,
            level=level,
            power=power,
            higher_is_better={k: k not in lower for k in pairs},
            seed=seed,
        )
        if pairs
        else {}
    )
    return RunComparison(baseline, candidate, comparisons, skipped, tuple(notes))


# -- gates --------------------------------------------------------------------------------------

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
_GATE = re.compile(
    r"^\s*(?P<subject>[\w\-]+(?:\.[\w\-@^]+)?)\.(?P<stat>[\w@^]+)\s*"
    r"(?P<op>>=|<=|==|!=|>|<)\s*(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)
SCORER_STATS = ("mean", "low", "high", "se", "flaky_share", "errors", "pass_at_1")
RUN_STATS = {
    "cost": ("total", "target", "scoring"),
    "latency": ("p50", "p95"),
    "trials": ("failed", "failed_share"),
}


class GateError(ValueError):
    """A gate expression cannot be parsed or names something the run does not have."""


@dataclass(frozen=True, slots=True)
class GateResult:
    """One gate expression, the value it saw and whether it held."""

    expression: str
    value: float
    passed: bool


def _gate_value(summary: RunSummary, subject: str, stat: str, expression: str) -> float:
    if subject in RUN_STATS:
        _check_stat(subject, stat, expression)
        if subject == "cost":
            costs = {"target": summary.cost, "scoring": summary.scoring_cost}
            return costs.get(stat, summary.cost + summary.scoring_cost)
        if subject == "latency":
            value = summary.latency_p50_ms if stat == "p50" else summary.latency_p95_ms
            return math.nan if value is None else value
        total = summary.trials_done + summary.trials_failed
        if stat == "failed":
            return float(summary.trials_failed)
        return summary.trials_failed / total if total else 0.0
    s = summary.scorers.get(subject)
    if s is None:
        configured = [spec.label for spec in summary.run.scorers]
        if subject in configured:
            # The scorer ran but scored nothing (every trial or score failed): the
            # statistic is undefined, so the gate fails rather than being a usage error.
            _check_stat(subject, stat, expression)
            return math.nan
        known = ", ".join(sorted(set(summary.scorers) | set(configured))) or "none"
        raise GateError(
            f"gate {expression!r}: the run has no scorer {subject!r} (scorers: {known}; "
            f"run-level: {', '.join(RUN_STATS)})"
        )
    values: dict[str, float | None] = {
        "mean": s.estimate.mean,
        "low": s.estimate.low,
        "high": s.estimate.high,
        "se": s.estimate.se,
        "flaky_share": s.agreement.flaky_share,
        "errors": float(s.n_errors),
        "pass_at_1": s.pass_at_k.get(1),
    }
    for k, v in s.pass_at_k.items():
        values[f"pass@{k}"] = v
    for k, v in s.pass_hat_k.items():
        values[f"pass^{k}"] = v
    if stat not in values:
        _check_stat(subject, stat, expression)
        # pass@K / pass^K for a K this run cannot give (too few trials per case).
        return math.nan
    value = values[stat]
    return math.nan if value is None else float(value)


_PASS_K = re.compile(r"^pass[@^](?P<k>[1-9]\d*)$")


def _check_stat(subject: str, stat: str, expression: str, trials: int | None = None) -> None:
    if subject in RUN_STATS:
        if stat not in RUN_STATS[subject]:
            raise GateError(
                f"gate {expression!r}: {subject} has {', '.join(RUN_STATS[subject])}, not {stat!r}"
            )
        return
    m = _PASS_K.match(stat)
    if stat not in SCORER_STATS and m is None:
        raise GateError(
            f"gate {expression!r}: unknown statistic {stat!r}; use one of "
            f"{', '.join(SCORER_STATS)}, pass@K or pass^K"
        )
    if m is not None and trials is not None and int(m["k"]) > trials:
        raise GateError(
            f"gate {expression!r}: {stat} needs at least {m['k']} trials per case; the run "
            f"has {trials} (raise --trials or lower K)"
        )


def _parse_gate(expression: str) -> re.Match[str]:
    m = _GATE.match(expression)
    if not m:
        raise GateError(
            f"gate {expression!r} is not 'SCORER.STAT OP NUMBER', e.g. "
            "'correct.mean >= 0.8' or 'latency.p95 < 2000'"
        )
    return m


def check_gates(
    expressions: Iterable[str], scorers: Iterable[str], trials: int | None = None
) -> None:
    """Check gate expressions before a run: their syntax, that each names one of
    ``scorers`` (scorer keys) or a run-level subject, and a statistic it has."""
    keys = list(scorers)
    for expression in expressions:
        m = _parse_gate(expression)
        subject, stat = m["subject"], m["stat"]
        if subject not in RUN_STATS and subject not in keys:
            raise GateError(
                f"gate {expression!r}: the run has no scorer {subject!r} (scorers: "
                f"{', '.join(keys) or 'none'}; run-level: {', '.join(RUN_STATS)})"
            )
        _check_stat(subject, stat, expression, trials)


def evaluate_gates(summary: RunSummary, expressions: Iterable[str]) -> list[GateResult]:
    """Check gate expressions such as ``correct.mean >= 0.8``, ``judge.low > 0.7``,
    ``cost.total < 2``, ``latency.p95 <= 1500``, ``trials.failed_share < 0.05``.

    A statistic that is undefined for this run (NaN) fails its gate: a scorer that
    scored nothing, or pass@K with fewer than K trials of some case.
    """
    results = []
    for expression in expressions:
        m = _parse_gate(expression)
        value = _gate_value(summary, m["subject"], m["stat"], expression)
        passed = not math.isnan(value) and _OPS[m["op"]](value, float(m["value"]))
        results.append(GateResult(expression.strip(), value, passed))
    return results


# -- JUnit ----------------------------------------------------------------------------------------


def junit_xml(
    summary: RunSummary,
    gates: Iterable[GateResult] = (),
    comparison: RunComparison | None = None,
    threshold: float = 1.0,
) -> str:
    """JUnit XML: a test per case (failed when the share of its trials a pass/fail scorer
    passed is below ``threshold``; errored when the target failed), per gate, and per
    compared scorer."""
    run = summary.run
    suite = ET.Element("testsuite", name=f"assay eval {run.golden} ({run.run_id})")
    counts = {"tests": 0, "failures": 0, "errors": 0}

    def case(name: str, classname: str) -> ET.Element:
        counts["tests"] += 1
        return ET.SubElement(suite, "testcase", name=name, classname=classname)

    for cid in sorted(set(summary.case_scores) | set(summary.failed_cases)):
        tc = case(cid, f"assay.{run.golden}")
        if cid in summary.failed_cases and cid not in summary.case_scores:
            counts["errors"] += 1
            ET.SubElement(tc, "error", message=summary.failed_cases[cid][:500])
            continue
        low = summary.failing(cid, threshold)
        if low:
            counts["failures"] += 1
            detail = ", ".join(f"{k} passed {v:.0%}" for k, v in sorted(low.items()))
            ET.SubElement(tc, "failure", message=f"below {threshold:.0%}: {detail}")
    for g in gates:
        tc = case(g.expression, "assay.gate")
        if not g.passed:
            counts["failures"] += 1
            ET.SubElement(tc, "failure", message=f"{g.expression} (value {g.value:.4g})")
    if comparison is not None:
        for key, c in comparison.scorers.items():
            tc = case(f"{key} vs {comparison.baseline.run_id}", "assay.regression")
            if c.verdict == "regression":
                counts["failures"] += 1
                ET.SubElement(
                    tc,
                    "failure",
                    message=f"{key}: {c.diff:+.4f} [{c.low:+.4f}, {c.high:+.4f}], "
                    f"p={c.p_value:.3g}",
                )
    for k, v in counts.items():
        suite.set(k, str(v))
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)


def to_json(value: Any) -> Any:
    """A summary, comparison or gate result as JSON-ready data (inf/NaN become None)."""
    from dataclasses import fields, is_dataclass

    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [to_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


# -- pairwise judging -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PairwiseSummary:
    """A pairwise judge's verdicts on two runs' outputs, case by case.

    ``win_rate`` is the candidate's share of wins among decided cases (ties and
    position-inconsistent verdicts excluded), with a Wilson interval and a two-sided
    exact binomial (sign) test against 0.5.
    """

    baseline: str
    candidate: str
    judge: str
    n_cases: int
    candidate_wins: int
    baseline_wins: int
    ties: int
    inconsistent: int
    errors: int
    win_rate: float | None
    low: float | None
    high: float | None
    p_value: float | None
    verdict: str
    cost: float
    cases: dict[str, str] = field(default_factory=dict, repr=False)


def summarize_pairwise(
    baseline: str,
    candidate: str,
    judge: str,
    winners: Mapping[str, str],
    *,
    cost: float = 0.0,
    level: float = 0.95,
) -> PairwiseSummary:
    """Summarize per-case winners (``candidate``, ``baseline``, ``tie``, ``inconsistent``
    or ``error``) into a win rate with an interval and a sign-test verdict."""
    from scipy.stats import binomtest

    from assay.stats import wilson_interval

    counts = {k: sum(1 for w in winners.values() if w == k) for k in _WINNERS}
    decided = counts["candidate"] + counts["baseline"]
    rate: float | None = None
    low: float | None = None
    high: float | None = None
    p: float | None = None
    if decided:
        rate = counts["candidate"] / decided
        low, high = wilson_interval(counts["candidate"], decided, level)
        p = float(binomtest(counts["candidate"], decided, 0.5).pvalue)
    if p is not None and p <= 1 - level and rate is not None:
        verdict = "candidate preferred" if rate > 0.5 else "baseline preferred"
    else:
        verdict = "no detectable preference"
    return PairwiseSummary(
        baseline=baseline,
        candidate=candidate,
        judge=judge,
        n_cases=len(winners),
        candidate_wins=counts["candidate"],
        baseline_wins=counts["baseline"],
        ties=counts["tie"],
        inconsistent=counts["inconsistent"],
        errors=counts["error"],
        win_rate=rate,
        low=low,
        high=high,
        p_value=p,
        verdict=verdict,
        cost=cost,
        cases=dict(winners),
    )


_WINNERS = ("candidate", "baseline", "tie", "inconsistent", "error")
