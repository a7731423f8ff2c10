"""Annotation queues: every strategy's selection on synthetic traffic, inclusion
probabilities, claims and leases between two labellers, label validation, progress, and
promotion of a trace into a golden set with provenance."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from scipy import stats

from assay.feedback import make_feedback
from assay.goldens import case_from_dict, golden_set_from_cases
from assay.model import Span
from assay.promotion import (
    PromotionConflictError,
    PromotionError,
    PromotionNotFoundError,
    promote,
)
from assay.query import SpanFilter
from assay.queues import (
    LabelSpec,
    QueueConflictError,
    QueueError,
    QueueNotFoundError,
    QueueSpec,
    allocate,
    build_queue,
    claim_next,
    create_queue,
    disagreement,
    label_item,
    label_spec,
    release_item,
    skip_item,
)
from assay.store.duckdb import DuckDBStore
from drift_support import DAY1, traffic

pytestmark = pytest.mark.all_backends

P = "default"
PASS_FAIL = label_spec("helpfulness", boolean=True)
T0 = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)


@pytest.fixture
def spans(store: DuckDBStore) -> list[Span]:
    out = traffic(120, DAY1, seed=7)
    store.insert_spans(out)
    return out


def spec(strategy: str = "random", size: int = 20, **kw: Any) -> QueueSpec:
    filters = kw.pop("filters", SpanFilter(P))
    return QueueSpec(kw.pop("name", "q"), strategy, size, PASS_FAIL, filters, **kw)


def llm_spans(spans: list[Span]) -> list[Span]:
    return [s for s in spans if s.name == "ChatCompletion"]


# --- allocation and labels ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "size", "allocation", "expected"),
    [
        ({"a": 50, "b": 30, "c": 20}, 10, "proportional", {"a": 5, "b": 3, "c": 2}),
        # 7·(50, 30, 20)/100 = 3.5, 2.1, 1.4: floors 3, 2, 1 and the one left goes to a.
        ({"a": 50, "b": 30, "c": 20}, 7, "proportional", {"a": 4, "b": 2, "c": 1}),
        # Equal remainders: the larger stratum first, then the name.
        ({"a": 1, "b": 3, "c": 2}, 3, "proportional", {"a": 0, "b": 2, "c": 1}),
        ({"b": 1, "a": 1, "c": 2}, 2, "proportional", {"a": 1, "b": 0, "c": 1}),
        ({"a": 2, "b": 50, "c": 50}, 30, "equal", {"a": 2, "b": 14, "c": 14}),
        ({"a": 10, "b": 10, "c": 40}, 31, "equal", {"a": 10, "b": 10, "c": 11}),
        ({"a": 3, None: 2}, 9, "equal", {"a": 3, None: 2}),
    ],
)
def test_allocation(
    counts: dict[Any, int], size: int, allocation: str, expected: dict[Any, int]
) -> None:
    got = allocate(counts, size, allocation)
    assert got == expected
    assert sum(got.values()) == min(size, sum(counts.values()))
    assert all(got[k] <= counts[k] for k in counts)


@pytest.mark.parametrize(
    ("label", "value", "stored"),
    [
        (label_spec("h", boolean=True), "PASS", True),
        (label_spec("h", boolean=True), "no", False),
        (label_spec("h", boolean=True), 1, True),
        (label_spec("t", values="billing,Shipping"), "shipping", "Shipping"),
        (label_spec("s", scale="1-5"), "4", 4),
        (label_spec("s", scale="0.0-1.0"), 0.25, 0.25),
    ],
)
def test_label_values_are_parsed(label: LabelSpec, value: Any, stored: Any) -> None:
    got = label.parse(value)
    assert got == stored and type(got) is type(stored)


@pytest.mark.parametrize(
    ("label", "value", "message"),
    [
        (label_spec("h", boolean=True), "maybe", "must be pass or fail"),
        (label_spec("t", values="a,b"), "c", "must be one of a, b"),
        (label_spec("t", values="a,b"), True, "must be one of a, b"),
        (label_spec("s", scale="1-5"), "6", "a whole number from 1 to 5"),
        (label_spec("s", scale="1-5"), 2.5, "a whole number from 1 to 5"),
        (label_spec("s", scale="1-5"), "x", "a whole number from 1 to 5"),
        (label_spec("s", scale="0.0-1.0"), float("nan"), "a number from 0 to 1"),
    ],
)
def test_bad_label_values_say_what_is_allowed(label: LabelSpec, value: Any, message: str) -> None:
    with pytest.raises(QueueError, match=message):
        label.parse(value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "give the label's allowed values once"),
        ({"values": "a,b", "boolean": True}, "once"),
        ({"values": "a"}, "2-100 choices"),
        ({"values": "a,a"}, "distinct"),
        ({"scale": "5-1"}, "LOW must be below HIGH"),
        ({"scale": "one to five"}, "LOW-HIGH"),
    ],
)
def test_bad_label_specs(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(QueueError, match=message):
        label_spec("h", **kwargs)
    with pytest.raises(QueueError, match="label name"):
        label_spec("bad name", boolean=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "no spaces"}, "queue name"),
        ({"strategy": "clever"}, "strategy 'clever'"),
        ({"size": 0}, "between 1 and 10,000"),
        ({"strategy": "stratified"}, "stratified needs --field"),
        ({"strategy": "stratified", "field": "colour"}, "stratified needs --field"),
        ({"field": "route"}, "only for --strategy stratified"),
        ({"strategy": "low-confidence"}, "needs --judge"),
        ({"judge": "h"}, "only for the low-confidence and disagreement"),
        ({"strategy": "drift"}, "drift needs a drift report"),
        ({"lease_seconds": 1}, "between 10 seconds and 7 days"),
        ({"unit": "session"}, "trace or span"),
    ],
)
def test_bad_specs_name_the_problem(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(QueueError, match=message):
        spec(**kwargs)


# --- random and stratified ---------------------------------------------------------------------


def test_random_samples_traces_with_their_inclusion_probability(
    store: DuckDBStore, spans: list[Span]
) -> None:
    queue, items = build_queue(store, spec(size=30, seed=11))
    roots = {s.trace_id: s for s in spans if s.parent_span_id is None}
    assert queue.population == 120 and queue.item_count == 30 and queue.seed == 11
    assert queue.params["unit"] == "trace" and "smallest hash" in queue.params["method"]
    assert len({i.trace_id for i in items}) == 30
    for i in items:
        assert roots[i.trace_id].span_id == i.span_id  # a trace is shown by its root
        assert i.inclusion_probability == pytest.approx(30 / 120)
        assert i.input_text == roots[i.trace_id].input_text
        assert i.label_span_id == i.span_id  # labelled on the root span, as calibration pairs
    again = build_queue(store, spec(size=30, seed=11))[1]
    assert [i.trace_id for i in again] == [i.trace_id for i in items]
    other = build_queue(store, spec(size=30, seed=12))[1]
    assert {i.trace_id for i in other} != {i.trace_id for i in items}


def test_random_draw_is_uniform(store: DuckDBStore, spans: list[Span]) -> None:
    # Every trace should be drawn with probability n/N = 1/4 whatever the seed.
    counts: Counter[str] = Counter()
    for seed in range(200):
        keys = store.sample_queue_keys(SpanFilter(P), "trace", {None: 30}, seed)
        assert len(keys) == 30
        counts.update(k[0] for k in keys)
    observed = [counts[t] for t in {s.trace_id for s in spans}]
    assert sum(observed) == 200 * 30
    assert stats.chisquare(observed).pvalue > 0.001


def test_span_unit_and_filters(store: DuckDBStore, spans: list[Span]) -> None:
    flt = SpanFilter(P, kind="llm", model="gpt-4o")
    _, items = build_queue(store, spec(size=5, seed=1, unit="span", filters=flt))
    matching = [s for s in spans if s.kind == "llm" and s.model == "gpt-4o"]
    assert all(i.context["model"] == "gpt-4o" and i.label_span_id == i.span_id for i in items)
    assert items[0].inclusion_probability == pytest.approx(5 / len(matching))
    small = build_queue(store, spec(size=500, seed=1, unit="span", filters=flt))[0]
    assert small.item_count == len(matching) and "only" in small.notes[0]
    with pytest.raises(QueueError, match="no traces match the filters"):
        build_queue(store, spec(filters=SpanFilter(P, model="gpt-9")))


@pytest.mark.parametrize("allocation", ["proportional", "equal"])
def test_stratified_allocation_and_probabilities(
    store: DuckDBStore, spans: list[Span], allocation: str
) -> None:
    queue, items = build_queue(
        store, spec("stratified", 24, field="route", allocation=allocation, seed=3)
    )
    routes = Counter(s.route for s in spans if s.parent_span_id is None)
    strata = {s["value"]: s for s in queue.params["strata"]}
    assert {k: v["population"] for k, v in strata.items()} == dict(routes)
    expected = allocate(dict(routes), 24, allocation)
    assert Counter(i.stratum for i in items) == Counter({k: n for k, n in expected.items() if n})
    for i in items:
        assert i.inclusion_probability == pytest.approx(expected[i.stratum] / routes[i.stratum])
        assert i.context["route"] == i.stratum and i.context["reason"] == {"stratum": i.stratum}
    # Inverse-probability weights add up to the population: what PPI weighting relies on.
    assert sum(1 / i.inclusion_probability for i in items if i.inclusion_probability) == (
        pytest.approx(120)
    )


def test_spans_without_a_value_form_their_own_stratum(
    store: DuckDBStore, spans: list[Span]
) -> None:
    queue, items = build_queue(
        store, spec("stratified", 12, unit="span", field="model", allocation="equal", seed=2)
    )
    strata = {s["value"]: s for s in queue.params["strata"]}
    assert strata[None]["population"] == sum(1 for s in spans if s.model is None)
    assert Counter(i.stratum for i in items)[None] == strata[None]["allocated"] == 2
    assert all(i.context["model"] is None for i in items if i.stratum is None)


def test_stratified_refuses_a_field_with_too_many_values(
    store: DuckDBStore, spans: list[Span], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("assay.queues.selection.MAX_STRATA", 2)
    with pytest.raises(QueueError, match="route has 3 values"):
        build_queue(store, spec("stratified", field="route"))


# --- judge-based strategies -----------------------------------------------------------------------


def judge(store: DuckDBStore, span: Span | None, trace_id: str, *values: Any) -> None:
    store.add_feedback(
        [
            make_feedback(
                P,
                trace_id,
                "helpfulness",
                v,
                span_id=None if span is None else span.span_id,
                source="judge",
                created_at=T0 + timedelta(seconds=i),
            )
            for i, v in enumerate(values)
        ]
    )


def test_low_confidence_takes_scores_nearest_the_threshold(
    store: DuckDBStore, spans: list[Span]
) -> None:
    llm = llm_spans(spans)
    for s, v in zip(llm[:6], (0.9, 0.52, 0.1, 0.45, 0.7, 0.35), strict=True):
        judge(store, s, s.trace_id, v)
    root = next(s for s in spans if s.parent_span_id is None and s.trace_id == llm[6].trace_id)
    judge(store, None, llm[6].trace_id, 0.49)  # a score of the whole trace
    store.add_feedback([make_feedback(P, llm[7].trace_id, "helpfulness", 0.5, source="user")])
    _, items = build_queue(store, spec("low-confidence", 4, judge="helpfulness"))
    assert [round(i.context["reason"]["judge_score"], 2) for i in items] == [0.49, 0.52, 0.45, 0.35]
    assert items[0].span_id == root.span_id and items[0].label_span_id is None
    assert items[1].span_id == llm[1].span_id and items[1].label_span_id == llm[1].span_id
    assert [round(i.score or 0, 2) for i in items] == [0.01, 0.02, 0.05, 0.15]
    assert all(i.inclusion_probability is None for i in items)
    high = build_queue(store, spec("low-confidence", 1, judge="helpfulness", threshold=0.75))[1]
    assert high[0].context["reason"]["judge_score"] == 0.7


def test_low_confidence_respects_filters_and_explains_empty_results(
    store: DuckDBStore, spans: list[Span]
) -> None:
    llm = llm_spans(spans)
    for s in llm[:10]:
        judge(store, s, s.trace_id, 0.5)
    model = llm[0].model
    _, items = build_queue(
        store, spec("low-confidence", 50, judge="helpfulness", filters=SpanFilter(P, model=model))
    )
    assert {i.context["model"] for i in items} == {model}
    assert len(items) == sum(1 for s in llm[:10] if s.model == model)
    with pytest.raises(QueueError, match="no judge scores named 'tone'"):
        build_queue(store, spec("low-confidence", judge="tone"))
    judge(store, llm[20], llm[20].trace_id, "good")
    with pytest.raises(QueueError, match="are categories, not numbers"):
        build_queue(
            store,
            spec(
                "low-confidence",
                judge="helpfulness",
                filters=SpanFilter(P, trace_id=llm[20].trace_id),
            ),
        )


def test_disagreement_measure() -> None:
    assert disagreement([(0.9, None), (0.1, None)], 0.5)[:2] == (0.5, pytest.approx(0.4))
    share, _, decisions = disagreement([(0.9, None), (0.8, None), (0.2, None)], 0.5)
    assert share == pytest.approx(1 / 3) and decisions == {"pass": 2, "fail": 1}
    assert disagreement([(0.9, None), (0.6, None)], 0.5)[0] == 0.0
    assert disagreement([(None, "a"), (None, "b"), (None, "a"), (None, "c")], 0.5)[0] == 0.5


def test_disagreement_ranks_spans_whose_trials_disagree(
    store: DuckDBStore, spans: list[Span]
) -> None:
    llm = llm_spans(spans)
    judge(store, llm[0], llm[0].trace_id, 0.9, 0.8, 0.2)  # 1/3
    judge(store, llm[1], llm[1].trace_id, 0.9, 0.1)  # 1/2, spread 0.4
    judge(store, llm[2], llm[2].trace_id, 0.6, 0.4)  # 1/2, spread 0.1
    judge(store, llm[3], llm[3].trace_id, 0.9, 0.7)  # agree
    judge(store, llm[4], llm[4].trace_id, 0.1)  # one score only
    judge(store, None, llm[5].trace_id, True, False, True, True)  # a whole trace, 1/4
    queue, items = build_queue(store, spec("disagreement", 10, judge="helpfulness", seed=1))
    assert [i.trace_id for i in items] == [s.trace_id for s in (llm[1], llm[2], llm[0], llm[5])]
    assert [i.score for i in items] == pytest.approx([0.5, 0.5, 1 / 3, 0.25])
    assert items[0].context["reason"]["scores"] == [0.9, 0.1]
    assert items[3].label_span_id is None  # judged as a whole trace, labelled as one
    assert queue.population == 5  # spans with two or more scores
    with pytest.raises(QueueError, match="all agree"):
        build_queue(
            store,
            spec(
                "disagreement", judge="helpfulness", filters=SpanFilter(P, trace_id=llm[3].trace_id)
            ),
        )


# --- drift ------------------------------------------------------------------------------------


def report(*features: tuple[str, str, list[tuple[Span, float]]]) -> dict[str, Any]:
    return {
        "version": 1,
        "created_at": "2026-03-03T00:00:00+00:00",
        "current": {"text": "last 1d", "start": None, "end": None},
        "features": [
            {
                "feature": name,
                "verdict": verdict,
                "examples": [
                    {"trace_id": s.trace_id, "span_id": s.span_id, "score": score, "text": "…"}
                    for s, score in examples
                ],
            }
            for name, verdict, examples in features
        ],
    }


def test_drift_takes_the_reports_examples_round_robin(
    store: DuckDBStore, spans: list[Span]
) -> None:
    llm = llm_spans(spans)
    ghost = dataclasses.replace(llm[9], span_id="00000000000000ff")
    r = report(
        ("input_embedding", "drift", [(llm[0], 0.9), (llm[1], 0.8), (ghost, 0.7), (llm[2], 0.6)]),
        ("output_embedding", "drift", [(llm[3], 0.5), (llm[0], 0.4)]),
        ("model", "no drift", [(llm[5], 1.0)]),
    )
    queue, items = build_queue(store, spec("drift", 10, drift_report=r, drift_source="test"))
    assert [i.span_id for i in items] == [s.span_id for s in (llm[0], llm[3], llm[1], llm[2])]
    assert items[1].context["reason"] == {
        "drift_feature": "output_embedding",
        "drift_score": 0.5,
        "rank": 1,
    }
    assert queue.params["drifted"] == ["input_embedding", "output_embedding"]
    assert queue.params["source"] == "test" and any("not stored" in n for n in queue.notes)
    model = llm[3].model
    filtered = build_queue(
        store, spec("drift", 10, drift_report=r, filters=SpanFilter(P, model=model))
    )[1]
    assert all(i.context["model"] == model for i in filtered)
    with pytest.raises(QueueError, match="no examples of drifted spans"):
        build_queue(store, spec("drift", drift_report=report(("m", "no drift", []))))
    with pytest.raises(QueueError, match="no features list"):
        build_queue(store, spec("drift", drift_report={"verdict": "drift"}))


# --- claims, labels, skips, progress -------------------------------------------------------------


def test_two_labellers_never_share_an_item(store: DuckDBStore, spans: list[Span]) -> None:
    create_queue(store, spec(size=4, seed=5, lease_seconds=600), now=T0)
    _, a = claim_next(store, P, "q", "ana", T0)
    _, b = claim_next(store, P, "q", "bob", T0)
    assert a and b and (a.item_id, b.item_id) == (1, 2)
    _, a_again = claim_next(store, P, "q", "ana", T0 + timedelta(minutes=5))
    assert a_again and a_again.item_id == 1  # asking again renews the same claim
    assert a_again.lease_expires_at == T0 + timedelta(minutes=15)
    with pytest.raises(QueueConflictError, match="claimed by ana"):
        label_item(store, P, "q", 1, "bob", "pass", now=T0 + timedelta(minutes=6))
    # Once ana's lease lapses the item is free: carol gets it and ana cannot label it.
    late = T0 + timedelta(minutes=16)
    _, c = claim_next(store, P, "q", "carol", late)
    assert c and c.item_id == 1 and c.claimed_by == "carol"
    with pytest.raises(QueueConflictError, match="claimed by carol"):
        label_item(store, P, "q", 1, "ana", "pass", now=late)
    released = release_item(store, P, "q", 1, "carol")
    assert released.claimed_by is None
    with pytest.raises(QueueConflictError, match="only the holder"):
        release_item(store, P, "q", 2, "carol")


def test_label_is_reviewer_feedback_and_idempotent(store: DuckDBStore, spans: list[Span]) -> None:
    queue = create_queue(
        store, spec("stratified", 6, field="route", seed=2, name="r", created_by="lead"), now=T0
    )
    _, item = claim_next(store, P, "r", "ana", T0)
    assert item is not None
    done, fb = label_item(store, P, "r", item.item_id, "ana", "fail", "wrong refund policy", T0)
    assert (
        done.status == "labelled" and done.done_by == "ana" and done.feedback_id == fb.feedback_id
    )
    assert (fb.source, fb.author, fb.name, fb.kind, fb.number) == (
        "reviewer",
        "ana",
        "helpfulness",
        "boolean",
        0.0,
    )
    assert fb.trace_id == item.trace_id and fb.span_id == item.span_id
    assert fb.metadata["inclusion_probability"] == item.inclusion_probability
    assert fb.metadata["queue"] == "r" and fb.metadata["strategy"] == "stratified"
    stored = store.list_feedback(P, source="reviewer")
    assert [f.feedback_id for f in stored] == [fb.feedback_id]
    again = label_item(store, P, "r", item.item_id, "ana", "no", "wrong refund policy", T0)
    assert again[1] == stored[0]  # a resent label stores nothing new
    with pytest.raises(QueueConflictError, match="already labelled by ana"):
        label_item(store, P, "r", item.item_id, "ana", "pass", now=T0)
    with pytest.raises(QueueError, match="must be pass or fail"):
        label_item(store, P, "r", 2, "ana", "meh", now=T0)
    with pytest.raises(QueueNotFoundError, match="numbered 1 to 6"):
        label_item(store, P, "r", 99, "ana", "pass", now=T0)
    with pytest.raises(QueueNotFoundError, match="no queue named 'nope'"):
        claim_next(store, P, "nope", "ana", T0)
    with pytest.raises(QueueError, match="say who you are"):
        claim_next(store, P, "r", " ", T0)
    with pytest.raises(QueueConflictError, match="already exists"):
        create_queue(store, spec(name="r"))
    assert queue.created_by == "lead"


def test_progress_by_labeller(store: DuckDBStore, spans: list[Span]) -> None:
    create_queue(store, spec(size=6, seed=9), now=T0)
    _, a = claim_next(store, P, "q", "ana", T0)
    assert a
    label_item(store, P, "q", a.item_id, "ana", True, now=T0)
    _, a2 = claim_next(store, P, "q", "ana", T0)
    assert a2 and a2.item_id == 2
    skip_item(store, P, "q", a2.item_id, "ana", "not English", T0)
    _, b = claim_next(store, P, "q", "bob", T0)
    assert b and b.item_id == 3
    label_item(store, P, "q", 4, "bob", False, now=T0)  # an unclaimed item may be labelled
    progress = store.queue_progress(P, "q", T0)
    assert (progress.total, progress.labelled, progress.skipped, progress.claimed) == (6, 2, 1, 1)
    assert progress.remaining == 2
    assert progress.by_labeller == {
        "ana": {"labelled": 1, "skipped": 1, "claimed": 0},
        "bob": {"labelled": 1, "skipped": 0, "claimed": 1},
    }
    assert progress.next_expiry == T0 + timedelta(minutes=30)
    skipped = store.get_queue_item(P, "q", 2)
    assert skipped and skipped.skip_reason == "not English"
    # Skipped and labelled items are done: nobody is offered them again.
    offered = [claim_next(store, P, "q", f"l{i}", T0)[1] for i in range(4)]
    assert [i.item_id if i else None for i in offered] == [5, 6, None, None]
    later = store.queue_progress(P, "q", T0 + timedelta(hours=1))
    assert later.claimed == 0 and later.remaining == 3
    assert store.delete_queue(P, "q") and store.get_queue(P, "q") is None
    assert len(store.list_feedback(P, source="reviewer")) == 2  # labels outlive the queue


# --- promotion ----------------------------------------------------------------------------------


def test_promotion_adds_a_case_with_provenance_as_a_new_version(
    store: DuckDBStore, spans: list[Span]
) -> None:
    roots = [s for s in spans if s.parent_span_id is None]
    first = promote(
        store,
        P,
        roots[0].trace_id,
        "support",
        expected="Refunds take 5 days.",
        author="ana",
        now=T0,
    )
    assert first.created and first.previous is None and first.golden.case_count == 1
    assert first.case.input == roots[0].input_text
    assert first.case.expected == "Refunds take 5 days."
    assert first.provenance == {
        "trace_id": roots[0].trace_id,
        "span_id": roots[0].span_id,
        "label": None,
        "expected_from": "given",
        "promoted_by": "ana",
        "promoted_at": T0.isoformat(),
    }
    # A reviewer's category label becomes the expected answer of the next case.
    store.add_feedback(
        [
            make_feedback(
                P,
                roots[1].trace_id,
                "topic",
                "billing",
                source="reviewer",
                author="bob",
                id="fb-1",
                created_at=T0,
            ),
            make_feedback(P, roots[1].trace_id, "topic", "refund", source="user", id="fb-2"),
        ]
    )
    second = promote(store, P, roots[1].trace_id, "support", now=T0)
    assert second.created and second.previous == first.golden.version
    assert second.golden.case_count == 2 and second.case.expected == "billing"
    assert second.provenance["expected_from"] == "label"
    assert second.provenance["label"] == {
        "feedback_id": "fb-1",
        "name": "topic",
        "value": "billing",
        "author": "bob",
        "created_at": T0.isoformat(),
    }
    versions = store.list_golden_versions(P, "support")
    assert [v.version for v in versions] == [second.golden.version, first.golden.version]
    stored = [case_from_dict(c) for c in store.golden_cases(P, "support", second.golden.version)]
    # Provenance is part of the case, so the stored cases rebuild the same version.
    assert golden_set_from_cases("support", stored).version == second.golden.version
    # Promoting the same trace again stores nothing; another trace under its id conflicts.
    again = promote(store, P, roots[1].trace_id, "support", now=T0 + timedelta(hours=1))
    assert not again.created and again.golden.version == second.golden.version
    with pytest.raises(PromotionConflictError, match="already has a case 'trace-"):
        promote(store, P, roots[2].trace_id, "support", case_id=second.case.id)


def test_promotion_of_a_span_with_messages_and_a_pass_fail_label(
    store: DuckDBStore, spans: list[Span]
) -> None:
    llm = llm_spans(spans)[0]
    store.add_feedback([make_feedback(P, llm.trace_id, "ok", False, source="reviewer")])
    out = promote(store, P, llm.trace_id, "chats", span_id=llm.span_id, case_id="c-1")
    assert out.case.id == "c-1" and isinstance(out.case.input, list)
    assert [m["role"] for m in out.case.input] == ["system", "user"]
    assert out.case.expected is None  # a pass/fail label expects nothing…
    assert out.provenance["label"]["value"] is False  # …but is kept as provenance
    default = promote(store, P, llm.trace_id, "chats", span_id=llm.span_id.upper())
    assert default.case.id == f"trace-{llm.trace_id[:16]}-{llm.span_id[:8]}"


def test_promotion_refusals(store: DuckDBStore, spans: list[Span]) -> None:
    trace = spans[0].trace_id
    with pytest.raises(PromotionNotFoundError, match="no trace"):
        promote(store, P, "ab" * 16, "g")
    with pytest.raises(PromotionError, match="32 hex characters"):
        promote(store, P, "xyz", "g")
    with pytest.raises(PromotionNotFoundError, match="has no span"):
        promote(store, P, trace, "g", span_id="ab" * 8)
    with pytest.raises(PromotionError, match="golden set name"):
        promote(store, P, trace, "bad name!")
    bare = dataclasses.replace(spans[0], trace_id="cd" * 16, input_text=None)
    child = dataclasses.replace(spans[2], trace_id="cd" * 16)
    store.insert_spans([bare, child])
    with pytest.raises(PromotionError, match=r"has no input; spans with an input: .* --span"):
        promote(store, P, "cd" * 16, "g")
    assert store.resolve_golden(P, "g") is None
