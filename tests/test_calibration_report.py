"""Judge calibration on stored feedback: pairing, reference values through the store, the
sampling check (refusal, queue weights), stored calibrators applied to later scores and
the conformal threshold."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest

from assay.calibration import (
    CalibrationError,
    JudgeScores,
    LabelOrigin,
    NotRandomError,
    calibrated,
    check_sampling,
    fit_judge_calibrator,
    judge_report,
    judge_threshold,
    quality_estimate,
)
from assay.feedback import make_feedback
from assay.model import Feedback
from assay.query import SpanFilter
from assay.server.calibration_api import report_json
from assay.stats import calibrator_from_dict, conformal_threshold, ppi_mean
from assay.store.duckdb import DuckDBStore
from calibration_support import (
    T0,
    P,
    add_queue,
    biased_window,
    bulk_add,
    judge,
    label,
    overconfident,
    sid,
    span,
    table_2x2,
    tid,
)

#: Every test here runs on each store backend (tests/conftest.py).
pytestmark = pytest.mark.all_backends


def read(store: DuckDBStore, flt: SpanFilter | None = None) -> JudgeScores:
    return store.judge_scores(P, "help", "human-help", flt or SpanFilter(P))


def test_stats_md_2x2_table_through_feedback_records(store: DuckDBStore) -> None:
    table_2x2(store)
    report = judge_report(read(store))
    a = report.agreement
    assert a.confusion.labels == ("fail", "pass")
    assert a.confusion.counts == ((20, 5), (10, 15))
    assert a.accuracy == pytest.approx(0.70)
    assert a.cohen_kappa == pytest.approx(0.400)
    assert a.scott_pi == pytest.approx(0.394, abs=5e-4)
    # Judge passes 25 of 50, people 20: the judge rates 0.10 higher on average.
    assert report.offset.mean == pytest.approx(0.10)
    assert report.offset.low < 0.10 < report.offset.high
    assert not report.probabilistic and report.diagram is None
    out = report_json(report)
    assert out["confusion"]["counts"] == [[20, 5], [10, 15]]
    json.dumps(out, allow_nan=False)


def test_pairing_latest_record_wins_and_sources_are_kept_apart(store: DuckDBStore) -> None:
    later = T0 + timedelta(hours=1)
    store.add_feedback(
        [
            judge(0, 0.2),
            judge(0, 0.9, at=later),  # the judge rescored: 0.9 counts
            label(0, False),
            label(0, True, at=later),  # a reviewer corrected the label: pass counts
            judge(1, 0.4),
            label(1, 0.0, source="user"),
            # Same name as the judge, but from a person: a label of name "help", not a score.
            make_feedback(P, tid(2), "help", 0.7, span_id=sid(2), source="reviewer"),
            label(3, True),  # no judge score: cannot pair
            make_feedback(P, tid(4), "human-help", "pass", span_id=sid(4), source="reviewer"),
            judge(4, 0.5),
        ]
    )
    data = read(store)
    assert data.n_scored == 3 and data.n_pairs == 2 and data.label_only == 1
    assert sorted(zip(data.paired_scores.tolist(), data.human.tolist(), strict=True)) == [
        (0.4, 0.0),
        (0.9, 1.0),
    ]
    assert set(data.label_keys) == {(tid(0), sid(0)), (tid(1), sid(1))}


def test_trace_level_records_pair_by_trace(store: DuckDBStore) -> None:
    store.add_feedback(
        [
            make_feedback(P, tid(i), "help", i % 2 == 0, source="judge", created_at=T0)
            for i in range(4)
        ]
        + [
            make_feedback(P, tid(i), "human-help", True, source="reviewer", created_at=T0)
            for i in range(4)
        ]
    )
    data = read(store)
    assert data.n_pairs == 4 and data.label_keys[0][1] is None
    assert judge_report(data).agreement.accuracy == 0.5


def test_window_and_filters_select_by_the_spans(store: DuckDBStore) -> None:
    old, new = T0, T0 + timedelta(days=3)
    spans = [span(i, old) for i in range(10)] + [span(i, new) for i in range(10, 20)]
    spans[15] = span(15, new, route="/other")
    store.insert_spans(spans)
    store.add_feedback([judge(i, i / 20) for i in range(20)] + [label(i, True) for i in range(20)])
    # Trace-level feedback stands for the trace's root span: on trace 12 it meets span 12's
    # records (the latest of each wins); on a trace with no stored spans it stays on its own.
    store.add_feedback(
        [
            make_feedback(P, tid(12), "help", 0.5, source="judge", created_at=T0),
            make_feedback(P, tid(12), "human-help", True, source="reviewer", created_at=T0),
            make_feedback(P, tid(99), "help", 0.5, source="judge", created_at=T0),
        ]
    )
    recent = read(store, SpanFilter(P, start=T0 + timedelta(days=1)))
    assert recent.n_scored == 10 and recent.n_pairs == 10
    chat = read(store, SpanFilter(P, start=T0 + timedelta(days=1), route="/chat"))
    assert chat.n_scored == 9
    assert read(store).n_scored == 21  # 20 spans + the trace without stored spans


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([judge(0, 0.5), label(0, True)], "at least 2 labelled pairs"),
        ([judge(0, 3.0), label(0, True), judge(1, 0.5), label(1, False)], "outside \\[0, 1\\]"),
        ([judge(0, 0.5), label(0, 4.0), judge(1, 0.5), label(1, 1.0)], "labels named"),
    ],
)
def test_unusable_pairs_say_why(store: DuckDBStore, records: list[Feedback], message: str) -> None:
    store.add_feedback(records)
    with pytest.raises(CalibrationError, match=message):
        judge_report(read(store))


# -- sampling ------------------------------------------------------------------------


def origins_of(store: DuckDBStore, data: JudgeScores) -> list[LabelOrigin | None]:
    return store.label_origins(P, data.label_ids, data.label_keys)


def test_labels_outside_a_queue_are_refused_unless_assumed_random(store: DuckDBStore) -> None:
    truth = biased_window(store, 400)
    bulk_add(store, [label(i, bool(truth[i])) for i in range(0, 400, 4)])
    data = read(store)
    check = check_sampling(origins_of(store, data))
    assert check.design == "not_random" and not check.ok
    with pytest.raises(NotRandomError, match="100 added outside any annotation queue"):
        quality_estimate(data, check)
    assumed = check_sampling(origins_of(store, data), assume_random=True)
    q = quality_estimate(data, assumed)
    assert assumed.design == "assumed" and "ASSUMED RANDOM" in assumed.message
    assert q.n_labelled == 100 and q.n_scored == 400


def test_labels_from_a_disagreement_queue_are_refused(store: DuckDBStore) -> None:
    truth = biased_window(store, 400)
    add_queue(store, "hard", "disagreement", [(i, None) for i in range(50)], truth)
    add_queue(store, "sample", "random", [(i, 0.1) for i in range(100, 140)], truth)
    data = read(store)
    check = check_sampling(origins_of(store, data))
    assert check.origins == {
        "from queue hard (disagreement)": 50,
        "from queue sample (random)": 40,
    }
    with pytest.raises(NotRandomError, match=r"50 of 90: 50 from queue hard \(disagreement\)"):
        quality_estimate(data, check)


def test_random_queue_is_used_unweighted(store: DuckDBStore) -> None:
    truth = biased_window(store, 1000)
    add_queue(store, "sample", "random", [(i, 0.1) for i in range(0, 1000, 10)], truth)
    data = read(store)
    check = check_sampling(origins_of(store, data))
    assert check.design == "random" and check.weights is None
    q = quality_estimate(data, check)
    direct = ppi_mean(data.human, data.paired_scores, data.unlabelled_scores)
    assert q.ppi.estimate == pytest.approx(direct.estimate)
    assert q.ppi.low == pytest.approx(direct.low)


def test_stratified_queue_weights_by_inclusion_probability(store: DuckDBStore) -> None:
    """Judge-fails labelled 4x as often as judge-passes: weights 1/π undo the tilt."""
    truth = biased_window(store, 4000, seed=11)
    data0 = read(store)
    fails = np.flatnonzero(data0.scores == 0.0)
    passes_ = np.flatnonzero(data0.scores == 1.0)
    rng = np.random.default_rng(5)
    p_fail, p_pass = 0.2, 0.05
    picked = [(int(i), p_fail) for i in fails if rng.random() < p_fail]
    picked += [(int(i), p_pass) for i in passes_ if rng.random() < p_pass]
    # Item positions in the store's order are the same indices as tid/sid here.
    add_queue(store, "strat", "stratified", picked, truth)
    data = read(store)
    check = check_sampling(origins_of(store, data))
    assert check.design == "weighted" and check.weights is not None
    assert sorted(set(check.weights)) == pytest.approx([1 / p_fail, 1 / p_pass])
    q = quality_estimate(data, check)
    direct = ppi_mean(
        data.human, data.paired_scores, data.unlabelled_scores, weights=list(check.weights)
    )
    assert q.ppi.estimate == pytest.approx(direct.estimate)
    assert q.ppi.weighted
    # The labels over-represent judge-fails (people fail many of them): unweighted, the
    # human-only mean is far below the truth; weighted, both intervals cover it.
    true_rate = float(truth.mean())
    unweighted = ppi_mean(data.human, data.paired_scores, data.unlabelled_scores)
    assert unweighted.classical_high < true_rate
    assert q.ppi.low <= true_rate <= q.ppi.high
    assert q.ppi.classical_low <= true_rate <= q.ppi.classical_high


def test_a_corrected_label_keeps_its_queue(store: DuckDBStore) -> None:
    truth = biased_window(store, 200)
    add_queue(store, "sample", "random", [(i, 0.2) for i in range(0, 200, 5)], truth)
    # A reviewer overrides one queue label later, outside the queue.
    store.add_feedback([label(0, not bool(truth[0]), at=T0 + timedelta(days=1))])
    data = read(store)
    origins = origins_of(store, data)
    assert all(o is not None and o.queue == "sample" for o in origins)
    assert check_sampling(origins).design == "random"


# -- stored calibrators ----------------------------------------------------------------


def test_fitted_calibrator_is_stored_and_applied_to_later_scores(store: DuckDBStore) -> None:
    overconfident(store, 1000)
    report = judge_report(read(store))
    assert report.probabilistic and report.diagram is not None
    assert [round(b.accuracy, 2) for b in report.diagram.bins] == [0.3, 0.7]
    fitted = fit_judge_calibrator(read(store), "isotonic", holdout=0.3, seed=0)
    assert fitted.n == 1000 and fitted.n_holdout == 300
    # Held out: 0.9/0.1 against about 0.7/0.3 → ECE near 0.2 before, near 0 after.
    assert fitted.ece_before is not None and 0.15 < fitted.ece_before < 0.3
    assert fitted.ece_after < 0.07
    store.save_calibrator(fitted)
    stored = store.get_calibrator(P, "help")
    assert stored is not None and stored.params == fitted.params
    assert stored.fitted_at == fitted.fitted_at
    # Later scores, never labelled, are calibrated on read.
    overconfident(store, 10, start=5000, labelled=False)
    later = store.list_judge_scores(P, "help", SpanFilter(P), limit=10)
    raw = [s.value for s in later]
    assert calibrated(store, P, "help", raw) == pytest.approx(
        calibrator_from_dict(stored.params).predict(raw)
    )
    assert calibrated(store, P, "help", [0.9, 0.1]) == pytest.approx([0.7, 0.3])
    assert calibrated(store, P, "other", [0.5]) is None
    # The label-free estimate: the mean calibrated probability over every scored item.
    data = read(store)
    q = quality_estimate(
        data, check_sampling([None] * data.n_pairs, assume_random=True), calibrator=stored
    )
    assert q.label_free is not None and q.label_free.n == 1010
    assert q.label_free.estimate == pytest.approx(0.5, abs=0.01)
    # A refit replaces it; a delete drops it.
    store.save_calibrator(fit_judge_calibrator(read(store), "platt"))
    assert [c.method for c in store.list_calibrators(P)] == ["platt"]
    assert store.delete_calibrator(P, "help") and not store.delete_calibrator(P, "help")
    assert store.get_calibrator(P, "help") is None


def test_fit_refuses_too_few_labels_and_unknown_methods(store: DuckDBStore) -> None:
    overconfident(store, 2)
    with pytest.raises(CalibrationError, match="at least 3 labelled pairs"):
        fit_judge_calibrator(read(store), "isotonic")
    overconfident(store, 10, start=100)
    with pytest.raises(CalibrationError, match="method 'spline' must be one of"):
        fit_judge_calibrator(read(store), "spline")


# -- threshold -----------------------------------------------------------------------------


def test_threshold_matches_conformal_risk_control(store: DuckDBStore) -> None:
    """docs/statistics.md §8's example, built from feedback: confidence i/100."""
    wrong = {i for i in range(100) if (i % 4 == 0 and i < 60) or i in (72, 91)}
    store.add_feedback(
        [judge(i, i / 100) for i in range(100)] + [label(i, i not in wrong) for i in range(100)]
    )
    t = judge_threshold(read(store), 0.05)
    assert t.result.threshold == 0.49 and t.result.answer_rate == 0.51
    assert t.result.empirical_risk == 0.04
    direct = conformal_threshold(
        [i / 100 for i in range(100)], [i not in wrong for i in range(100)], 0.05
    )
    assert t.result == direct
    none = judge_threshold(read(store), 0.005)
    assert none.result.abstain_all
    assert none.result.message.startswith("no threshold can hold")


def test_without_queue_tables_every_label_is_ad_hoc(store: DuckDBStore) -> None:
    truth = biased_window(store, 100)
    add_queue(store, "sample", "random", [(i, 0.5) for i in range(0, 100, 2)], truth)
    # As in a database from before m007 (every backend's migrations create the table).
    if isinstance(store, DuckDBStore):
        store._cursor().execute("DROP TABLE queue_items")
    else:
        store.cmd("DROP TABLE {db}.queue_items")
    data = read(store)
    assert origins_of(store, data) == [None] * 50
    assert check_sampling(origins_of(store, data)).design == "not_random"


def test_labels_given_through_real_queues(store: DuckDBStore) -> None:
    """End to end with assay.queues: a random queue over the judge's spans passes the
    check; a low-confidence queue on the same judge is refused."""
    from assay.queues import QueueSpec, claim_next, create_queue, label_item, label_spec

    n = 300
    store.insert_spans([span(i, T0 + timedelta(minutes=i)) for i in range(n)])
    rng = np.random.default_rng(2)
    p = rng.random(n)
    truth = rng.random(n) < p
    bulk_add(store, [judge(i, float(p[i])) for i in range(n)])
    flt = SpanFilter(P, kind="llm")

    def label_all(name: str, spec: QueueSpec) -> None:
        create_queue(store, spec)
        while True:
            _, item = claim_next(store, P, name, "ana")
            if item is None:
                return
            i = int(item.trace_id, 16) - 1
            label_item(store, P, name, item.item_id, "ana", bool(truth[i]))

    label_all(
        "sample",
        QueueSpec(
            "sample", "random", 60, label_spec("human-help", boolean=True), flt, seed=1, unit="span"
        ),
    )
    data = read(store)
    assert data.n_pairs == 60
    check = check_sampling(origins_of(store, data))
    assert check.design == "random" and check.origins == {"from queue sample (random)": 60}
    q = quality_estimate(data, check)
    assert q.ppi.low < q.ppi.estimate < q.ppi.high

    label_all(
        "unsure",
        QueueSpec(
            "unsure",
            "low-confidence",
            30,
            label_spec("human-help", boolean=True),
            flt,
            seed=1,
            judge="help",
        ),
    )
    data = read(store)
    refused = check_sampling(origins_of(store, data))
    assert refused.design == "not_random"
    assert "from queue unsure (low-confidence)" in refused.origins
