"""Feedback and stored calibrators on every backend: ids are idempotency keys (the first
record of an id is kept and returned), listing order and filters, judge scores per
(trace, span) with trace-level records standing for the root span, the queue a label
came from, and calibrators replaced, listed and deleted."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import httpx

from assay.calibration import LabelOrigin, StoredCalibrator
from assay.feedback import make_feedback
from assay.model import Feedback, Span
from assay.query import SpanFilter
from assay.queues import LABELLED, LabelSpec, Queue, QueueItem
from assay.store import Store

P = "p"
T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def tid(i: int) -> str:
    return f"{i + 1:032x}"


def sid(i: int, k: int = 0) -> str:
    return f"{(i + 1) * 16 + k:016x}"


def fb(
    i: int,
    value: float | bool | str | None,
    *,
    id: str,
    name: str = "help",
    span: int | None = 0,
    source: str = "judge",
    at: datetime = T0,
    project: str = P,
    **kwargs: object,
) -> Feedback:
    return make_feedback(
        project,
        tid(i),
        name,
        value,
        span_id=None if span is None else sid(i, span),
        source=source,
        id=id,
        created_at=at,
        **kwargs,  # type: ignore[arg-type]
    )


def span_of(i: int, k: int, parent: int | None, start: datetime = T0) -> Span:
    return Span(
        project=P,
        trace_id=tid(i),
        span_id=sid(i, k),
        parent_span_id=None if parent is None else sid(i, parent),
        service="app",
        name="chat",
        kind="llm",
        otel_kind="client",
        start_time=start + timedelta(milliseconds=k),
        end_time=start + timedelta(seconds=1),
        duration_ms=1000.0,
        status="ok",
        route="/chat",
    )


# -- feedback ---------------------------------------------------------------------------


def test_records_round_trip_with_every_kind(store: Store) -> None:
    cest = timezone(timedelta(hours=2))
    records = [
        fb(0, 0.25, id="n", metadata={"model": "m1", "tags": ["a", "b"], "ü": 1}),
        fb(1, True, id="b", source="user", author="u1"),
        fb(2, "billing", id="c", span=None, source="reviewer"),
        fb(3, None, id="t", comment="slow answer", source="code", at=T0.astimezone(cest)),
    ]
    assert store.add_feedback(records) == records
    listed = {f.feedback_id: f for f in store.list_feedback(P)}
    assert listed == {f.feedback_id: f for f in records}
    assert listed["n"].metadata == {"model": "m1", "tags": ["a", "b"], "ü": 1}
    assert listed["b"].number == 1.0 and listed["b"].kind == "boolean"
    assert listed["c"].span_id is None and listed["c"].category == "billing"
    assert listed["t"].number is None and listed["t"].comment == "slow answer"
    assert listed["t"].created_at == T0 and listed["t"].created_at.tzinfo is not None
    assert store.add_feedback([]) == []


def test_an_id_keeps_its_first_record_and_returns_it(store: Store) -> None:
    first = fb(0, 0.2, id="x")
    assert store.add_feedback([first]) == [first]
    # A resend stores nothing new; other content under the same id is not stored either:
    # the first record comes back in its place, so the caller can tell (the API's 409).
    later = fb(0, 0.9, id="x", at=T0 + timedelta(hours=1), author="someone")
    fresh = fb(1, 0.5, id="y")
    assert store.add_feedback([first, later, fresh]) == [first, first, fresh]
    assert [f.feedback_id for f in store.list_feedback(P)] == ["x", "y"]  # same time: by id
    assert store.list_feedback(P, ids=["x"]) == [first]
    # Within one batch the first of a repeated id is the one kept.
    a, b = fb(2, 0.1, id="z"), fb(2, 0.7, id="z")
    assert store.add_feedback([a, b]) == [a, a]
    assert store.list_feedback(P, ids=["z"]) == [a]


def test_ids_are_per_project(store: Store) -> None:
    mine, theirs = fb(0, 0.2, id="x"), fb(0, 0.8, id="x", project="other")
    assert store.add_feedback([mine]) == [mine]
    assert store.add_feedback([theirs]) == [theirs]
    assert store.list_feedback(P) == [mine]
    assert store.list_feedback("other") == [theirs]
    assert store.list_feedback("nobody") == []


def test_listing_is_newest_first_with_filters_and_a_limit(store: Store) -> None:
    records = [
        fb(i % 3, i / 10, id=f"r{i:02d}", at=T0 + timedelta(minutes=i % 4),
           name="help" if i % 2 else "tone", source="judge" if i % 5 else "reviewer")
        for i in range(12)
    ]  # fmt: skip
    store.add_feedback(records)
    everything = store.list_feedback(P)
    newest_first = sorted(records, key=lambda f: (-f.created_at.timestamp(), f.feedback_id))
    assert [f.feedback_id for f in everything] == [f.feedback_id for f in newest_first]
    assert store.list_feedback(P, limit=3) == everything[:3]
    assert store.list_feedback(P, limit=0) == []
    for kw in ({"trace_id": tid(1)}, {"name": "tone"}, {"source": "reviewer"},
               {"trace_id": tid(2), "name": "help", "source": "judge"}):  # fmt: skip
        want = [f for f in everything if all(getattr(f, k) == v for k, v in kw.items())]
        assert want and store.list_feedback(P, **kw) == want  # type: ignore[arg-type]
    assert store.list_feedback(P, ids=[]) == []
    assert store.list_feedback(P, ids=["r03", "nope", "r07"]) == [
        f for f in everything if f.feedback_id in ("r03", "r07")
    ]
    assert store.list_feedback(P, ids=["r03", "r07"], name="tone") == []


async def test_the_api_answers_a_resend_with_the_stored_record_and_a_conflict_409(
    client: httpx.AsyncClient, store: Store
) -> None:
    body = {"trace_id": tid(0), "name": "thumbs", "value": True, "id": "fb-1", "author": "u1"}
    first = await client.post("/api/v1/feedback", json={"items": [body]})
    assert first.status_code == 200, first.text
    again = await client.post("/api/v1/feedback", json={"items": [body]})
    assert again.json() == first.json()
    clash = await client.post("/api/v1/feedback", json={"items": [{**body, "value": False}]})
    assert clash.status_code == 409 and "already hold different feedback" in clash.text
    listed = (await client.get("/api/v1/feedback")).json()["items"]
    assert [(f["id"], f["value"]) for f in listed] == [("fb-1", True)]
    assert len(store.list_feedback("default")) == 1


# -- judge scores -------------------------------------------------------------------------


def test_judge_scores_keep_the_latest_per_item_newest_first(store: Store) -> None:
    later = T0 + timedelta(hours=1)
    store.add_feedback(
        [
            fb(0, 0.1, id="a"),
            fb(0, 0.8, id="b", at=later),  # rescored: this one
            fb(1, 0.3, id="d"),
            fb(1, 0.6, id="c"),  # same time: the larger id wins
            fb(2, 0.5, id="e", source="reviewer"),  # a person, not the judge
            fb(3, "pass", id="f"),  # a category is not a score
            fb(4, 0.4, id="g", name="tone"),
        ]
    )
    scores = store.list_judge_scores(P, "help", SpanFilter(P))
    assert [(s.trace_id, s.span_id, s.value, s.feedback_id) for s in scores] == [
        (tid(0), sid(0), 0.8, "b"),
        (tid(1), sid(1), 0.3, "d"),
    ]
    assert scores[0].scored_at == later and scores[1].scored_at == T0
    assert store.list_judge_scores(P, "help", SpanFilter(P), limit=1) == scores[:1]
    assert store.list_judge_scores(P, "nobody", SpanFilter(P)) == []


def test_a_trace_level_record_stands_for_the_root_span(store: Store) -> None:
    # Trace 0: root span 0 with child 1. Trace 1: not stored.
    store.insert_spans([span_of(0, 0, None), span_of(0, 1, 0)])
    store.add_feedback(
        [
            fb(0, 0.9, id="j0", span=None),  # judge on the trace → its root span
            fb(0, True, id="h0", name="human", span=0, source="reviewer"),
            fb(0, 0.2, id="j01", span=1),  # a child span: its own item
            fb(0, False, id="h01", name="human", span=1, source="user"),
            fb(1, 0.7, id="j1", span=None),  # a trace with no stored spans stays trace-level
            fb(1, False, id="h1", name="human", span=None, source="reviewer"),
            fb(1, True, id="h1s", name="human", span=3, source="reviewer"),  # nothing to pair
        ]
    )
    data = store.judge_scores(P, "help", "human", SpanFilter(P))
    assert data.n_scored == 3 and data.n_pairs == 3 and data.label_only == 1
    pairs = dict(zip(data.label_keys, zip(data.paired_scores.tolist(), data.human.tolist(),
                                          data.label_ids, strict=True), strict=True))  # fmt: skip
    assert pairs == {
        (tid(0), sid(0)): (0.9, 1.0, "h0"),
        (tid(0), sid(0, 1)): (0.2, 0.0, "h01"),
        (tid(1), None): (0.7, 0.0, "h1"),
    }
    # The store's order: by trace, then span with the trace-level item first.
    assert data.label_keys == ((tid(0), sid(0)), (tid(0), sid(0, 1)), (tid(1), None))
    listed = store.list_judge_scores(P, "help", SpanFilter(P))
    assert {(s.trace_id, s.span_id) for s in listed} == set(pairs)
    # A window keeps items whose span matches; a trace-level item when any span of its
    # trace does (trace 1 has none, so it drops out).
    late = SpanFilter(P, start=T0 + timedelta(microseconds=500))
    child = store.judge_scores(P, "help", "human", late)
    assert child.label_keys == ((tid(0), sid(0, 1)),)
    assert store.judge_scores(P, "help", "human", SpanFilter(P, route="/chat")).n_scored == 2


def test_labels_outside_queues_have_no_origin(store: Store) -> None:
    assert store.label_origins(P, [], []) == []
    store.add_feedback([fb(0, 0.5, id="j"), fb(0, True, id="h", name="human", source="user")])
    data = store.judge_scores(P, "help", "human", SpanFilter(P))
    assert store.label_origins(P, data.label_ids, data.label_keys) == [None]


# -- calibrators --------------------------------------------------------------------------


def calibrator(judge: str, method: str = "platt", **kw: object) -> StoredCalibrator:
    base = StoredCalibrator(
        project=P,
        judge=judge,
        labels="human",
        method=method,
        params={"kind": method, "a": 1.5, "b": -0.25},
        fitted_at=T0,
        n=40,
        n_fit=28,
        n_holdout=12,
        ece_before=0.2,
        ece_after=0.05,
        brier_before=0.3,
        brier_after=0.2,
        window="last 7 days, route=/chat",
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_calibrators_are_replaced_listed_and_deleted(store: Store) -> None:
    assert store.get_calibrator(P, "help") is None and store.list_calibrators(P) == []
    assert not store.delete_calibrator(P, "help")
    first = calibrator("help")
    store.save_calibrator(first)
    assert store.get_calibrator(P, "help") == first
    refit = calibrator(
        "help",
        "isotonic",
        ece_before=None,
        brier_before=None,
        n=41,
        fitted_at=T0 + timedelta(days=1),
        params={"x": [0.1, 0.9], "y": [0.3, 0.7]},
    )
    store.save_calibrator(refit)
    store.save_calibrator(calibrator("accuracy"))
    store.save_calibrator(replace(calibrator("help"), project="other"))
    assert store.get_calibrator(P, "help") == refit
    assert [c.judge for c in store.list_calibrators(P)] == ["accuracy", "help"]
    assert store.delete_calibrator(P, "help") and not store.delete_calibrator(P, "help")
    assert store.get_calibrator(P, "help") is None
    assert [c.judge for c in store.list_calibrators(P)] == ["accuracy"]
    assert store.get_calibrator("other", "help") is not None
    # Fitted again after a delete: stored again.
    store.save_calibrator(first)
    assert store.get_calibrator(P, "help") == first


# -- label origins ------------------------------------------------------------------------


def labelled_queue(
    store: Store, name: str, strategy: str, items: dict[int, float | None], at: datetime
) -> list[str]:
    """A queue over items 0, 1, … (given with their inclusion probabilities), each labelled
    through it by 'ana' at ``at``; returns the labels' ids. Item -n is left open."""
    keys = sorted(items, key=abs)
    created = store.create_queue(
        Queue(
            project=P,
            name=name,
            queue_id=f"q-{name}",
            strategy=strategy,
            params={},
            seed=0,
            label=LabelSpec("human", "boolean"),
            size=len(keys),
            item_count=len(keys),
            population=10,
            lease_seconds=1800,
            created_at=T0,
        ),
        [
            QueueItem(
                project=P,
                queue=name,
                item_id=n + 1,
                trace_id=tid(abs(i)),
                span_id=sid(abs(i)),
                input_text=None,
                output_text=None,
                input_messages=None,
                output_messages=None,
                context={},
                inclusion_probability=items[i],
            )
            for n, i in enumerate(keys)
        ],
    )
    assert created
    ids = []
    for n, i in enumerate(keys):
        if i < 0:
            continue
        record = fb(i, True, id=f"{name}-{i}", name="human", source="reviewer", at=at)
        assert store.finish_queue_item(P, name, n + 1, "ana", LABELLED, at, feedback=record)
        ids.append(record.feedback_id)
    return ids


def test_a_label_comes_from_its_queue_item_or_the_queue_that_labelled_its_item_last(
    store: Store,
) -> None:
    hour = timedelta(hours=1)
    assert labelled_queue(store, "a", "random", {0: 0.5, 1: 0.5}, T0) == ["a-0", "a-1"]
    assert labelled_queue(store, "b", "stratified", {1: 0.25}, T0 + hour) == ["b-1"]
    labelled_queue(store, "c", "disagreement", {-2: None}, T0)  # open: labels nothing
    a, b = LabelOrigin("a", "random", 0.5), LabelOrigin("b", "stratified", 0.25)

    def origins(*labels: tuple[str, int]) -> list[LabelOrigin | None]:
        keys = [(tid(i), sid(i)) for _, i in labels]
        return store.label_origins(P, [f for f, _ in labels], keys)

    # By the label's own id first: a-1 came from queue a although b labelled item 1 later.
    assert origins(("a-0", 0), ("a-1", 1), ("b-1", 1), ("adhoc", 2)) == [a, a, b, None]
    # A label recorded outside any queue on an item queues labelled (a correction): the
    # queue that finished the item last.
    assert origins(("fix-0", 0), ("fix-1", 1)) == [a, b]
    assert store.label_origins(P, ["fix-9"], [(tid(9), None)]) == [None]
    assert store.label_origins("other", ["a-0"], [(tid(0), sid(0))]) == [None]
    # A deleted queue no longer explains any label.
    assert store.delete_queue(P, "b")
    assert origins(("b-1", 1), ("fix-1", 1)) == [a, a]
    assert store.delete_queue(P, "a")
    assert origins(("a-0", 0), ("b-1", 1)) == [None, None]
