"""Hand-picked queues: created empty, traces added by people with the snapshot a selected
item gets, idempotent adds, refusals for sampled and rule-chosen queues, and calibration
that never treats their labels as a random sample."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from assay.calibration import NotRandomError, check_sampling, judge_report, quality_estimate
from assay.model import Span
from assay.query import SpanFilter
from assay.queues import (
    HAND_PICKED,
    MAX_ADD,
    PROBABILITY_SAMPLES,
    STRATEGIES,
    QueueConflictError,
    QueueError,
    QueueNotFoundError,
    QueueSpec,
    add_items,
    build_queue,
    create_queue,
    create_with_items,
    feedback_id,
    label_flags,
    label_item,
    label_spec,
    queue_json,
)
from assay.store.duckdb import DuckDBStore
from calibration_support import add_queue, biased_window, sid, span, tid
from drift_support import DAY1, traffic

pytestmark = pytest.mark.all_backends

P = "default"
PASS_FAIL = label_spec("helpfulness", boolean=True)
T0 = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)


@pytest.fixture
def spans(store: DuckDBStore) -> list[Span]:
    out = traffic(12, DAY1, seed=7)
    store.insert_spans(out)
    return out


def roots(spans: list[Span]) -> list[Span]:
    return [s for s in spans if s.parent_span_id is None]


def picked(size: int = 10_000, name: str = "picked", **kw: object) -> QueueSpec:
    return QueueSpec(name, HAND_PICKED, size, PASS_FAIL, SpanFilter(P), **kw)  # type: ignore[arg-type]


def test_hand_picked_is_a_strategy_but_not_a_sample() -> None:
    assert HAND_PICKED in STRATEGIES and HAND_PICKED not in PROBABILITY_SAMPLES


def test_a_hand_picked_queue_starts_empty(store: DuckDBStore, spans: list[Span]) -> None:
    queue = create_queue(store, picked(size=50), T0)
    assert (queue.item_count, queue.population, queue.size, queue.seed) == (0, 0, 50, 0)
    assert not queue.probability_sample and queue.accepts_items
    assert "not a probability sample" in queue.params["rule"]
    assert "not a random sample" in queue.notes[0]
    stored = store.get_queue(P, "picked")
    assert stored is not None and queue_json(stored)["accepts_items"] is True
    assert store.list_queue_items(P, "picked") == []


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"filters": SpanFilter(P, route="/chat")}, r"takes no filters or seed \(got route\)"),
        ({"seed": 3}, r"\(got seed\)"),
        ({"judge": "help"}, "--judge is only for"),
    ],
)
def test_hand_picked_takes_no_selection_options(kw: dict[str, object], message: str) -> None:
    filters = kw.pop("filters", SpanFilter(P))
    with pytest.raises(QueueError, match=message):
        QueueSpec("q", HAND_PICKED, 10, PASS_FAIL, filters, **kw)  # type: ignore[arg-type]


def test_added_items_get_the_snapshot_a_selected_item_gets(
    store: DuckDBStore, spans: list[Span]
) -> None:
    create_queue(store, picked(), T0)
    first, second = roots(spans)[:2]
    done = add_items(store, P, "picked", [(first.trace_id, None)], "ana", "escalated", T0)
    assert (done.added, done.already_present, done.queue.item_count) == (1, 0, 1)
    assert done.queue.population == 1
    [item] = store.list_queue_items(P, "picked")
    # The random strategy's item for the same trace: same snapshot, other reason.
    flt = SpanFilter(P, trace_id=first.trace_id)
    _, [drawn] = build_queue(store, QueueSpec("r", "random", 1, PASS_FAIL, flt, seed=1))
    assert (item.item_id, item.trace_id, item.span_id) == (1, first.trace_id, first.span_id)
    assert item.span_id == drawn.span_id and item.label_span_id == first.span_id
    for field in ("input_text", "output_text", "input_messages", "output_messages"):
        assert getattr(item, field) == getattr(drawn, field)
    assert {**item.context, "reason": None} == {**drawn.context, "reason": None}
    assert item.context["reason"] == {
        "picked": "by hand",
        "added_at": T0.isoformat(),
        "added_by": "ana",
        "why": "escalated",
    }
    assert item.inclusion_probability is None and item.stratum is None and item.score is None
    # Next: numbered after the last item; upper-case ids are the same trace.
    done = add_items(store, P, "picked", [second.trace_id.upper()], None, None)
    assert done.added == 1 and store.get_queue_item(P, "picked", 2) is not None


def test_adding_a_held_trace_adds_nothing(store: DuckDBStore, spans: list[Span]) -> None:
    create_queue(store, picked(), T0)
    a, b, c = roots(spans)[:3]
    assert add_items(store, P, "picked", [(a.trace_id, None)]).added == 1
    again = add_items(store, P, "picked", [(a.trace_id, None)])
    assert (again.added, again.already_present, again.queue.item_count) == (0, 1, 1)
    # A trace given twice, by its id and by its root span, is one item.
    mixed = add_items(
        store,
        P,
        "picked",
        [(a.trace_id, None), (b.trace_id, None), (b.trace_id, b.span_id), (c.trace_id, None)],
    )
    assert (mixed.added, mixed.already_present) == (2, 1)
    # Another span of a held trace is a new item (labelled on that span).
    child = next(s for s in spans if s.trace_id == a.trace_id and s.parent_span_id)
    one = add_items(store, P, "picked", [child])
    assert one.added == 1
    item = store.get_queue_item(P, "picked", 4)
    assert item is not None and item.label_span_id == child.span_id
    assert [i.item_id for i in store.list_queue_items(P, "picked")] == [1, 2, 3, 4]


def test_bad_and_unknown_ids(store: DuckDBStore, spans: list[Span]) -> None:
    create_queue(store, picked(), T0)
    root = roots(spans)[0]
    with pytest.raises(QueueError, match="trace id 'xyz' must be 32 hex"):
        add_items(store, P, "picked", [("xyz", None)])
    with pytest.raises(QueueError, match=r"span id 'nope' of trace .* must be 16 hex"):
        add_items(store, P, "picked", [(root.trace_id, "nope")])
    with pytest.raises(QueueError, match="at least one trace id"):
        add_items(store, P, "picked", [])
    many = [(f"{i:032x}", None) for i in range(MAX_ADD + 1)]
    with pytest.raises(QueueError, match=f"add at most {MAX_ADD:,} per call"):
        add_items(store, P, "picked", many)
    with pytest.raises(QueueNotFoundError, match=f"no trace {'a' * 32} in project"):
        add_items(store, P, "picked", [(root.trace_id, None), ("a" * 32, None)])
    with pytest.raises(QueueNotFoundError, match=f"has no span {'b' * 16}"):
        add_items(store, P, "picked", [(root.trace_id, "b" * 16)])
    with pytest.raises(QueueNotFoundError, match="no queue named 'other'"):
        add_items(store, P, "other", [(root.trace_id, None)])
    # Queues belong to a project.
    with pytest.raises(QueueNotFoundError, match="no queue named 'picked' in project 'x'"):
        add_items(store, "x", "picked", [(root.trace_id, None)])
    assert store.list_queue_items(P, "picked") == []  # nothing was stored by any of them


@pytest.mark.parametrize("strategy", ["random", "stratified"])
def test_sampled_queues_refuse_items(
    store: DuckDBStore, spans: list[Span], strategy: str
) -> None:
    field = "route" if strategy == "stratified" else None
    create_queue(store, QueueSpec("s", strategy, 3, PASS_FAIL, SpanFilter(P), seed=1,
                                  field=field), T0)  # fmt: skip
    held = {i.trace_id for i in store.list_queue_items(P, "s")}
    other = next(s for s in roots(spans) if s.trace_id not in held)
    with pytest.raises(QueueConflictError) as err:
        add_items(store, P, "s", [(other.trace_id, None)])
    message = str(err.value)
    assert f"is a {strategy} sample" in message and "from 12 candidates" in message
    assert "weights wrong" in message and "fixed at creation" in message
    assert "--strategy hand-picked --label helpfulness --boolean" in message
    queue = store.get_queue(P, "s")
    assert queue is not None and queue.item_count == 3
    assert len(store.list_queue_items(P, "s")) == 3


def test_rule_chosen_queues_refuse_items(store: DuckDBStore, spans: list[Span]) -> None:
    # A low-confidence queue, stored as chosen; items are fixed there too.
    queue, _ = build_queue(store, picked(name="unsure"), T0)
    store.create_queue(replace(queue, strategy="low-confidence"), [])
    with pytest.raises(QueueConflictError, match="holds what its low-confidence rule selected"):
        add_items(store, P, "unsure", [(roots(spans)[0].trace_id, None)])


def test_label_flags_rebuild_the_label() -> None:
    flags = label_flags(label_spec("q", values="good,not good"))
    assert flags == "--label q --values 'good,not good'"
    assert label_flags(label_spec("q", scale="1-5")) == "--label q --scale 1-5"
    assert label_flags(label_spec("q", scale="0.0-1.0")) == "--label q --scale 0.0-1.0"


def test_a_full_queue_takes_nothing(store: DuckDBStore, spans: list[Span]) -> None:
    create_queue(store, picked(size=2), T0)
    a, b, c, d = roots(spans)[:4]
    add_items(store, P, "picked", [a])
    with pytest.raises(QueueConflictError, match="holds 1 items and may hold at most 2"):
        add_items(store, P, "picked", [b, c])
    assert [i.trace_id for i in store.list_queue_items(P, "picked")] == [a.trace_id]
    # What the queue holds does not count against its size.
    assert add_items(store, P, "picked", [a, d]).added == 1


def test_create_with_items_is_one_step(store: DuckDBStore, spans: list[Span]) -> None:
    a, b = roots(spans)[:2]
    with pytest.raises(QueueNotFoundError, match="no trace"):
        create_with_items(store, picked(), [a, ("c" * 32, None)], "ana")
    assert store.get_queue(P, "picked") is None  # a bad trace creates no queue
    done = create_with_items(store, picked(), [a, b, (a.trace_id, None)], "ana", "why", T0)
    assert (done.added, done.already_present) == (2, 1)
    assert (done.queue.item_count, done.queue.population) == (2, 2)
    assert [i.trace_id for i in store.list_queue_items(P, "picked")] == [a.trace_id, b.trace_id]
    with pytest.raises(QueueConflictError, match=r"already exists; .*assay queues add picked"):
        create_with_items(store, picked(), [a])
    with pytest.raises(QueueError, match="only a hand-picked queue"):
        create_with_items(store, QueueSpec("r", "random", 5, PASS_FAIL, SpanFilter(P)), [a])
    with pytest.raises(QueueError, match="2 items do not fit a queue of size 1"):
        create_with_items(store, picked(size=1, name="small"), [a, b])


def test_an_added_item_is_labelled_like_any_other(store: DuckDBStore, spans: list[Span]) -> None:
    queue = create_queue(store, picked(), T0)
    root = roots(spans)[0]
    add_items(store, P, "picked", [root])
    item, fb = label_item(store, P, "picked", 1, "ana", "pass")
    assert item.status == "labelled" and fb.feedback_id == feedback_id(queue, 1)
    assert (fb.trace_id, fb.span_id, fb.source) == (root.trace_id, root.span_id, "reviewer")
    assert fb.metadata["strategy"] == HAND_PICKED
    assert fb.metadata["inclusion_probability"] is None


# -- calibration --------------------------------------------------------------------------


def test_labels_from_a_hand_picked_queue_are_not_a_random_sample(store: DuckDBStore) -> None:
    """Labels given through a hand-picked queue: their origin is that queue, and a quality
    estimate refuses them (unless assumed random), even beside labels of a random queue."""
    truth = biased_window(store, 400)
    store.insert_spans([span(i) for i in range(40)])
    add_queue(store, "sample", "random", [(i, 0.25) for i in range(100, 200)], truth)
    label = label_spec("human-help", boolean=True)
    create_queue(store, QueueSpec("picked", HAND_PICKED, 100, label, SpanFilter(P)), T0)
    done = add_items(store, P, "picked", [(tid(i), None) for i in range(40)], "ana")
    assert done.added == 40
    for n in range(1, 41):
        item = store.get_queue_item(P, "picked", n)
        assert item is not None and item.span_id == sid(int(item.trace_id, 16) - 1)
        label_item(store, P, "picked", n, "ana", bool(truth[int(item.trace_id, 16) - 1]))
    data = store.judge_scores(P, "help", "human-help", SpanFilter(P))
    assert data.n_pairs == 140
    origins = store.label_origins(P, data.label_ids, data.label_keys)
    hand = [o for o in origins if o is not None and o.queue == "picked"]
    assert len(hand) == 40
    assert all(o.strategy == HAND_PICKED and o.inclusion_probability is None for o in hand)
    check = check_sampling(origins)
    assert check.design == "not_random" and not check.ok and check.weights is None
    assert check.origins == {
        "from queue picked (hand-picked)": 40,
        "from queue sample (random)": 100,
    }
    with pytest.raises(NotRandomError, match=r"40 of 140: 40 from queue picked \(hand-picked\)"):
        quality_estimate(data, check)
    assumed = check_sampling(origins, assume_random=True)
    assert assumed.design == "assumed" and "ASSUMED RANDOM" in assumed.message
    # A report uses them as they are, and says what that means.
    noted = check_sampling(origins, purpose="report")
    assert noted.message.startswith("note: 40 of 140 labels are not a random sample")
    assert judge_report(data).agreement.n == 140
