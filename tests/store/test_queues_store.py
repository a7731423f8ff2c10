"""Annotation-queue store contracts on every backend: claims (racing labellers, renewal,
expiry, release), finishing (only without another's claim; the label stored with it),
deleting and re-creating a queue, listings and progress, and the selection queries
(seeded samples per stratum, root spans, judge scores, spans by key)."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from assay.feedback import make_feedback
from assay.model import Feedback, Span
from assay.query import SpanFilter
from assay.queues import LabelSpec, Queue, QueueItem
from assay.store import Store, StoreError

P = "p"
T0 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def queue(name: str = "q", n: int = 6, created_at: datetime = T0) -> Queue:
    return Queue(
        project=P,
        name=name,
        queue_id=f"id-{name}-{created_at:%H%M}",
        strategy="random",
        params={"unit": "trace"},
        seed=3,
        label=LabelSpec("ok", "boolean"),
        size=n,
        item_count=n,
        population=10 * n,
        lease_seconds=600,
        created_at=created_at,
        created_by="lead",
        instructions="be fair",
        notes=("a note",),
    )


def items(name: str = "q", n: int = 6) -> list[QueueItem]:
    return [
        QueueItem(
            project=P,
            queue=name,
            item_id=i,
            trace_id=f"{i:032x}",
            span_id=f"{i:016x}",
            input_text=f"q{i}",
            output_text=f"a{i}",
            input_messages=None,
            output_messages=[{"role": "assistant", "content": f"a{i}"}],
            context={"name": "chat"},
            stratum="s" if i % 2 else None,
            inclusion_probability=0.1,
            score=float(i),
        )
        for i in range(1, n + 1)
    ]


def make(store: Store, name: str = "q", n: int = 6, created_at: datetime = T0) -> None:
    assert store.create_queue(queue(name, n, created_at), items(name, n))


def label(item_id: int, who: str, at: datetime, name: str = "q") -> Feedback:
    return make_feedback(
        P,
        f"{item_id:032x}",
        "ok",
        True,
        span_id=f"{item_id:016x}",
        source="reviewer",
        author=who,
        id=f"queue-{name}-{item_id}",
        created_at=at,
    )


# -- queues -------------------------------------------------------------------------------------


def test_a_queue_round_trips_and_its_name_is_taken_once(store: Store) -> None:
    make(store)
    q = store.get_queue(P, "q")
    assert q == queue()
    assert not store.create_queue(replace(queue(), queue_id="other", size=1), [])
    assert store.get_queue(P, "q") == queue()  # the first queue is untouched
    assert [i.item_id for i in store.list_queue_items(P, "q")] == [1, 2, 3, 4, 5, 6]
    assert store.get_queue(P, "nope") is None and store.get_queue("other", "q") is None
    stored = store.get_queue_item(P, "q", 2)
    assert stored == items()[1]
    assert store.get_queue_item(P, "q", 7) is None


def test_queues_are_listed_newest_first(store: Store) -> None:
    make(store, "old", 1, T0)
    make(store, "new", 1, T0 + MIN)
    make(store, "also-new", 1, T0 + MIN)
    assert [q.name for q in store.list_queues(P)] == ["also-new", "new", "old"]
    assert store.list_queues("other") == []


def test_delete_removes_the_queue_its_items_and_their_claims(store: Store) -> None:
    make(store)
    assert store.claim_queue_item(P, "q", "ana", T0, T0 + 10 * MIN) is not None
    assert store.delete_queue(P, "q")
    assert store.get_queue(P, "q") is None
    assert store.list_queue_items(P, "q") == []
    assert store.get_queue_item(P, "q", 1) is None
    assert not store.delete_queue(P, "q")
    # A new queue of the same name starts with free items, even at the same instant.
    make(store, n=3)
    assert [i.claimed_by for i in store.list_queue_items(P, "q")] == [None] * 3
    got = store.claim_queue_item(P, "q", "bob", T0 + MIN, T0 + 10 * MIN)
    assert got is not None and got.item_id == 1 and got.claimed_by == "bob"


def test_items_list_by_status_in_pages(store: Store) -> None:
    make(store)
    assert store.finish_queue_item(P, "q", 2, "ana", "skipped", T0, reason="unclear")
    assert store.finish_queue_item(P, "q", 5, "ana", "skipped", T0)
    assert [i.item_id for i in store.list_queue_items(P, "q", status="skipped")] == [2, 5]
    assert [i.item_id for i in store.list_queue_items(P, "q", status="open")] == [1, 3, 4, 6]
    assert [i.item_id for i in store.list_queue_items(P, "q", limit=2, offset=3)] == [4, 5]
    assert store.list_queue_items(P, "q", offset=6) == []


# -- claims ---------------------------------------------------------------------------------


def test_claims_renew_expire_and_release(store: Store) -> None:
    make(store, n=3)
    a = store.claim_queue_item(P, "q", "ana", T0, T0 + 10 * MIN)
    assert a is not None and (a.item_id, a.claimed_by) == (1, "ana")
    assert a.claimed_at == T0 and a.lease_expires_at == T0 + 10 * MIN
    # Asking again renews the held item rather than taking another.
    again = store.claim_queue_item(P, "q", "ana", T0 + 5 * MIN, T0 + 15 * MIN)
    assert again is not None and again.item_id == 1
    assert again.claimed_at == T0 and again.lease_expires_at == T0 + 15 * MIN
    b = store.claim_queue_item(P, "q", "bob", T0 + 5 * MIN, T0 + 15 * MIN)
    assert b is not None and b.item_id == 2
    # Past ana's lease her item is free again: carol takes it, ana cannot finish it.
    late = T0 + 16 * MIN
    c = store.claim_queue_item(P, "q", "carol", late, late + 10 * MIN)
    assert c is not None and (c.item_id, c.claimed_by) == (1, "carol")
    assert not store.finish_queue_item(P, "q", 1, "ana", "skipped", late)
    assert not store.release_queue_item(P, "q", 1, "ana")
    # Carol gives it back: it is offered again at once.
    assert store.release_queue_item(P, "q", 1, "carol")
    freed = store.get_queue_item(P, "q", 1)
    assert freed is not None and freed.claimed_by is None and freed.lease_expires_at is None
    d = store.claim_queue_item(P, "q", "dan", late, late + 10 * MIN)
    assert d is not None and d.item_id == 1


def test_nothing_to_claim(store: Store) -> None:
    make(store, n=2)
    assert store.claim_queue_item(P, "q", "ana", T0, T0 + MIN) is not None
    assert store.claim_queue_item(P, "q", "bob", T0, T0 + MIN) is not None
    assert store.claim_queue_item(P, "q", "carol", T0, T0 + MIN) is None
    assert store.claim_queue_item(P, "nope", "carol", T0, T0 + MIN) is None


def test_racing_labellers_never_get_the_same_item(store: Store) -> None:
    # Eight labellers ask at the same instant, in threads, for a queue of five items:
    # five get one item each, all different, and three get nothing.
    make(store, n=5)
    barrier = threading.Barrier(8)
    got: dict[str, int | None] = {}

    def claim(who: str) -> None:
        barrier.wait()
        item = store.claim_queue_item(P, "q", who, T0, T0 + 10 * MIN)
        got[who] = None if item is None else item.item_id

    threads = [threading.Thread(target=claim, args=(f"l{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    taken = [i for i in got.values() if i is not None]
    assert sorted(taken) == [1, 2, 3, 4, 5]
    # What the store shows agrees with who was told they hold what.
    for who, item_id in got.items():
        if item_id is not None:
            stored = store.get_queue_item(P, "q", item_id)
            assert stored is not None and stored.claimed_by == who


def test_racing_labellers_label_every_item_once(store: Store) -> None:
    make(store, n=12)
    done: Counter[int] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def work(who: str) -> None:
        barrier.wait()
        while True:
            item = store.claim_queue_item(P, "q", who, T0, T0 + 10 * MIN)
            if item is None:
                return
            assert store.finish_queue_item(P, "q", item.item_id, who, "skipped", T0)
            with lock:
                done[item.item_id] += 1

    threads = [threading.Thread(target=work, args=(f"l{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert done == Counter(range(1, 13))
    progress = store.queue_progress(P, "q", T0)
    assert (progress.skipped, progress.remaining, progress.claimed) == (12, 0, 0)


# -- finishing ------------------------------------------------------------------------------


def test_finishing_needs_no_other_claim_and_stores_the_label(store: Store) -> None:
    make(store, n=3)
    assert store.claim_queue_item(P, "q", "ana", T0, T0 + 10 * MIN) is not None
    fb = label(1, "bob", T0)
    # Bob cannot finish ana's item, and nothing of his is stored.
    assert not store.finish_queue_item(P, "q", 1, "bob", "labelled", T0, feedback=fb)
    assert store.list_feedback(P) == []
    mine = label(1, "ana", T0 + MIN)
    assert store.finish_queue_item(P, "q", 1, "ana", "labelled", T0 + MIN, feedback=mine)
    item = store.get_queue_item(P, "q", 1)
    assert item is not None and item.status == "labelled" and item.done_by == "ana"
    assert item.done_at == T0 + MIN and item.feedback_id == "queue-q-1"
    assert item.lease_expires_at is None
    assert [f.feedback_id for f in store.list_feedback(P)] == ["queue-q-1"]
    # A done item cannot be finished again, nor claimed or released.
    assert not store.finish_queue_item(P, "q", 1, "ana", "skipped", T0 + 2 * MIN)
    assert not store.release_queue_item(P, "q", 1, "ana")
    nxt = store.claim_queue_item(P, "q", "ana", T0 + 2 * MIN, T0 + 9 * MIN)
    assert nxt is not None and nxt.item_id == 2
    # An item nobody holds can be finished by anyone; then it is not offered again.
    assert store.finish_queue_item(P, "q", 3, "bob", "skipped", T0 + 2 * MIN, reason="dup")
    skipped = store.get_queue_item(P, "q", 3)
    assert skipped is not None and skipped.skip_reason == "dup" and skipped.done_by == "bob"
    assert store.claim_queue_item(P, "q", "bob", T0 + 2 * MIN, T0 + 9 * MIN) is None
    with pytest.raises(StoreError, match="labelled or skipped"):
        store.finish_queue_item(P, "q", 2, "ana", "open", T0)
    assert not store.finish_queue_item(P, "q", 99, "ana", "skipped", T0)


def test_progress_by_state_and_labeller(store: Store) -> None:
    make(store)
    assert store.claim_queue_item(P, "q", "ana", T0, T0 + 10 * MIN) is not None
    assert store.claim_queue_item(P, "q", "bob", T0, T0 + 5 * MIN) is not None
    assert store.finish_queue_item(P, "q", 3, "ana", "skipped", T0)
    fb = label(4, "bob", T0)
    assert store.finish_queue_item(P, "q", 4, "bob", "labelled", T0, feedback=fb)
    p = store.queue_progress(P, "q", T0 + MIN)
    assert (p.total, p.labelled, p.skipped, p.claimed, p.remaining) == (6, 1, 1, 2, 2)
    assert p.by_labeller == {
        "ana": {"labelled": 0, "skipped": 1, "claimed": 1},
        "bob": {"labelled": 1, "skipped": 0, "claimed": 1},
    }
    assert p.next_expiry == T0 + 5 * MIN
    # Once the leases lapse the claims are gone from the progress.
    later = store.queue_progress(P, "q", T0 + 11 * MIN)
    assert (later.claimed, later.remaining, later.next_expiry) == (0, 4, None)
    empty = store.queue_progress(P, "nope", T0)
    assert (empty.total, empty.remaining, empty.by_labeller) == (0, 0, {})


# -- selection ------------------------------------------------------------------------------


def span(trace: int, k: int, parent: int | None, model: str | None, ms: int = 0) -> Span:
    return Span(
        project=P,
        trace_id=f"{trace:032x}",
        span_id=f"{trace:08x}{k:08x}",
        parent_span_id=None if parent is None else f"{trace:08x}{parent:08x}",
        service="app",
        name="chat",
        kind="llm",
        otel_kind="client",
        start_time=T0 + timedelta(seconds=trace, milliseconds=ms),
        end_time=T0 + timedelta(seconds=trace + 1),
        duration_ms=1000.0,
        status="ok",
        model=model,
    )


@pytest.fixture
def traffic(store: Store) -> list[Span]:
    # 40 traces: a root span (no model) and two children; traces 0-9 on model "a",
    # 10-29 on "b", 30-39 with no model. A child starts before its root in odd traces.
    out = []
    for t in range(40):
        model = "a" if t < 10 else "b" if t < 30 else None
        first = -5 if t % 2 else 5
        out += [span(t, 0, None, None), span(t, 1, 0, model, first), span(t, 2, 0, model, 9)]
    store.insert_spans(out)
    return out


def test_population_and_stratified_samples(store: Store, traffic: list[Span]) -> None:
    flt = SpanFilter(P)
    assert store.queue_population(flt, "trace") == {None: 40}
    assert store.queue_population(flt, "span") == {None: 120}
    assert store.queue_population(flt, "trace", "model") == {"a": 10, "b": 20, None: 10}
    assert store.queue_population(flt, "span", "model") == {"a": 20, "b": 40, None: 60}
    quotas = {"a": 3, "b": 20, None: 2}
    keys = store.sample_queue_keys(flt, "trace", quotas, seed=11, stratify_by="model")
    assert Counter(k[2] for k in keys) == Counter(quotas)
    assert len({k[0] for k in keys}) == 25
    # A trace is given by its root span, whatever starts first.
    roots = {f"{t:032x}": f"{t:08x}{0:08x}" for t in range(40)}
    assert all(k[1] == roots[k[0]] for k in keys)
    assert keys == store.sample_queue_keys(flt, "trace", quotas, seed=11, stratify_by="model")
    others = store.sample_queue_keys(flt, "trace", {None: 10}, seed=12)
    assert others != store.sample_queue_keys(flt, "trace", {None: 10}, seed=13)
    spans_drawn = store.sample_queue_keys(flt, "span", {"a": 4}, seed=1, stratify_by="model")
    assert len(spans_drawn) == 4 and all(k[2] == "a" for k in spans_drawn)
    with pytest.raises(StoreError, match="cannot stratify by 'cost'"):
        store.queue_population(flt, "trace", "cost")
    with pytest.raises(StoreError, match="unit 'turn' must be trace or span"):
        store.queue_population(flt, "turn")


def test_span_samples_are_uniform_over_seeds(store: Store, traffic: list[Span]) -> None:
    counts: Counter[str] = Counter()
    flt = SpanFilter(P, model="b")  # 40 spans
    for seed in range(100):
        drawn = store.sample_queue_keys(flt, "span", {None: 10}, seed)
        assert len(drawn) == len(set(drawn)) == 10
        counts.update(k[1] for k in drawn)
    # Each span is drawn with probability 1/4: 25 times in 100 draws, give or take.
    assert len(counts) == 40
    assert all(8 <= n <= 45 for n in counts.values())


def test_root_spans_spans_by_key_and_judge_scores(store: Store, traffic: list[Span]) -> None:
    t1, t2 = f"{1:032x}", f"{2:032x}"
    assert store.root_span_ids(P, [t1, t2, "f" * 32]) == {
        t1: f"{1:08x}{0:08x}",
        t2: f"{2:08x}{0:08x}",
    }
    assert store.root_span_ids(P, []) == {}
    keys = [(t1, f"{1:08x}{1:08x}"), (t2, f"{2:08x}{0:08x}"), (t1, "nope")]
    found = store.spans_by_key(SpanFilter(P), keys)
    assert sorted((s.trace_id, s.span_id) for s in found) == sorted(keys[:2])
    assert [s.span_id for s in store.spans_by_key(SpanFilter(P, model="a"), keys)] == [keys[0][1]]
    assert store.spans_by_key(SpanFilter(P), []) == []
    store.add_feedback(
        [
            make_feedback(P, t1, "j", 0.9, span_id=keys[0][1], source="judge", id="f1",
                          created_at=T0 + MIN),
            make_feedback(P, t1, "j", 0.2, span_id=keys[0][1], source="judge", id="f0",
                          created_at=T0),
            make_feedback(P, t2, "j", "bad", source="judge", id="f2", created_at=T0),
            make_feedback(P, t2, "j", 0.5, span_id=keys[1][1], source="user", id="f3"),
            make_feedback(P, t2, "other", 0.5, source="judge", id="f4"),
            make_feedback(P, f"{35:032x}", "j", 0.1, source="judge", id="f5"),
        ]
    )  # fmt: skip
    got = store.queue_judge_scores(SpanFilter(P, model="a"), "j")
    assert got == [(t1, keys[0][1], 0.2, None), (t1, keys[0][1], 0.9, None),
                   (t2, None, None, "bad")]  # fmt: skip
