"""Run summaries, gates and JUnit XML from known trials."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

import pytest

from assay.model import EvalRun, Output, Score, ScorerSpec, Trial
from assay.results import GateError, evaluate_gates, junit_xml, summarize

NOW = datetime(2026, 3, 1, tzinfo=UTC)
RUN = EvalRun(
    project="p",
    run_id="r1",
    golden="g",
    golden_version="a" * 64,
    target={"kind": "python"},
    scorers=[ScorerSpec("exact"), ScorerSpec("judge", key="tone")],
    trials=3,
    status="finished",
    created_at=NOW,
)


def trial(case: str, k: int, exact: float | None, tone: float = 0.5, **kw: object) -> Trial:
    scores = (
        {}
        if exact is None
        else {
            "exact": Score(exact, passed=exact == 1.0),
            "tone": Score(tone, metadata={"cost": 0.01}),
        }
    )
    values: dict[str, object] = dict(
        run_id="r1",
        case_id=case,
        trial=k,
        output=None if exact is None else Output("x", latency_ms=100.0 * (k + 1), cost=0.002),
        error="boom" if exact is None else None,
        scores=scores,
        started_at=NOW,
        finished_at=NOW,
    )
    values.update(kw)
    return Trial(**values)  # type: ignore[arg-type]


TRIALS = [
    *[trial("a", k, 1.0) for k in range(3)],
    trial("b", 0, 1.0),
    trial("b", 1, 0.0),
    trial("b", 2, 1.0),
    *[trial("c", k, 0.0) for k in range(3)],
    trial("d", 0, None),
]


def test_summary_counts_statistics_and_costs() -> None:
    s = summarize(RUN, TRIALS, n_cases=4)
    assert (s.trials_done, s.trials_failed) == (9, 1)
    assert s.failed_cases == {"d": "boom"}
    exact = s.scorers["exact"]
    assert exact.estimate.mean == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert exact.agreement.flaky == ("b",)
    assert exact.pass_at_k[3] == pytest.approx(2 / 3)  # a and b pass at least once
    assert exact.pass_hat_k[3] == pytest.approx(1 / 3)  # only a passes every time
    assert s.cost == pytest.approx(9 * 0.002)
    assert s.scoring_cost == pytest.approx(9 * 0.01)
    assert s.latency_p50_ms == pytest.approx(200.0)


def test_gates() -> None:
    s = summarize(RUN, TRIALS, n_cases=4)
    results = evaluate_gates(
        s,
        [
            "exact.mean >= 0.5",
            "exact.low > 0.5",
            "exact.pass@3 >= 0.6",
            "exact.flaky_share <= 0.34",
            "cost.total < 0.2",
            "cost.scoring < 0.05",
            "latency.p95 <= 300",
            "trials.failed_share < 0.05",
        ],
    )
    assert [r.passed for r in results] == [True, False, True, True, True, False, True, False]
    with pytest.raises(GateError, match=r"not 'SCORER\.STAT OP NUMBER'"):
        evaluate_gates(s, ["exact mean > 1"])
    with pytest.raises(GateError, match=r"no scorer 'correct'.*exact, tone"):
        evaluate_gates(s, ["correct.mean > 0.5"])
    with pytest.raises(GateError, match="unknown statistic 'median'"):
        evaluate_gates(s, ["exact.median > 0.5"])
    with pytest.raises(GateError, match="latency has p50, p95"):
        evaluate_gates(s, ["latency.p99 < 5"])


def test_undefined_statistic_fails_its_gate() -> None:
    one = summarize(RUN, [trial("a", 0, 1.0, tone=0.3)], n_cases=1)
    (gate,) = evaluate_gates(one, ["tone.low >= 0"])
    assert math.isinf(one.scorers["tone"].estimate.low) and not gate.passed


def test_junit_marks_failing_cases_errors_and_gates() -> None:
    s = summarize(RUN, TRIALS, n_cases=4)
    xml = junit_xml(s, evaluate_gates(s, ["exact.mean >= 0.9"]))
    suite = ET.fromstring(xml)
    # b and c fail exact; tone (no pass/fail decision) fails nothing; the gate fails.
    assert suite.get("tests") == "5" and suite.get("failures") == "3"
    assert suite.get("errors") == "1"
    by_name = {tc.get("name"): tc for tc in suite.iter("testcase")}
    assert by_name["a"].find("failure") is None
    assert "exact passed 67%" in (by_name["b"].find("failure").get("message") or "")  # type: ignore[union-attr]
    assert by_name["d"].find("error") is not None
