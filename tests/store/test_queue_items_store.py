"""Store.add_queue_items on every backend: numbering after the last item, idempotence per
(trace, span), the queue's counts, its size, and one transaction for the whole batch."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from assay.queues import LabelSpec, Queue, QueueItem
from assay.store import Store, StoreError

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def queue(name: str = "picked", size: int = 5) -> Queue:
    return Queue(
        project="p",
        name=name,
        queue_id=f"id-{name}",
        strategy="hand-picked",
        params={},
        seed=0,
        label=LabelSpec("ok", "boolean"),
        size=size,
        item_count=0,
        population=0,
        lease_seconds=1800,
        created_at=T0,
    )


def item(n: int, queue_name: str = "picked", span: int = 1) -> QueueItem:
    return QueueItem(
        project="p",
        queue=queue_name,
        item_id=999,  # the store numbers appended items itself
        trace_id=f"{n:032x}",
        span_id=f"{span:016x}",
        input_text=f"question {n}",
        output_text=f"answer {n}",
        input_messages=[{"role": "user", "content": f"question {n}"}],
        output_messages=None,
        context={"name": "chat", "reason": {"picked": "by hand"}},
    )


def keys(store: Store, name: str = "picked") -> list[tuple[int, str, str]]:
    return [(i.item_id, i.trace_id, i.span_id) for i in store.list_queue_items("p", name)]


def test_items_are_appended_after_the_last_and_counted(store: Store) -> None:
    first = replace(queue(), item_count=1, population=1)
    assert store.create_queue(first, [replace(item(1), item_id=1)])
    assert store.add_queue_items("p", "picked", [item(2), item(3)]) == 2
    assert keys(store) == [(1, f"{1:032x}", f"{1:016x}"), (2, f"{2:032x}", f"{1:016x}"),
                           (3, f"{3:032x}", f"{1:016x}")]  # fmt: skip
    q = store.get_queue("p", "picked")
    assert q is not None and (q.item_count, q.population) == (3, 3)
    # The snapshot is stored as given; the item starts open and unclaimed.
    stored = store.get_queue_item("p", "picked", 3)
    assert stored is not None and stored.status == "open" and stored.claimed_by is None
    assert stored.input_messages == [{"role": "user", "content": "question 3"}]
    assert stored.context["reason"] == {"picked": "by hand"}


def test_adding_what_the_queue_holds_adds_nothing(store: Store) -> None:
    assert store.create_queue(queue(), [])
    assert store.add_queue_items("p", "picked", [item(1)]) == 1
    assert store.add_queue_items("p", "picked", [item(1)]) == 0
    # Held and new in one batch, and one key twice: only the new key is added, once.
    assert store.add_queue_items("p", "picked", [item(1), item(2), item(2)]) == 1
    # Another span of a held trace is another item.
    assert store.add_queue_items("p", "picked", [item(1, span=2)]) == 1
    assert [k[0] for k in keys(store)] == [1, 2, 3]
    q = store.get_queue("p", "picked")
    assert q is not None and q.item_count == 3


def test_queues_are_kept_apart(store: Store) -> None:
    assert store.create_queue(queue("a"), [])
    assert store.create_queue(queue("b"), [])
    assert store.add_queue_items("p", "a", [item(1, "a")]) == 1
    # The same trace in another queue is new there, numbered from that queue's items.
    assert store.add_queue_items("p", "b", [item(1, "b"), item(2, "b")]) == 2
    assert [k[0] for k in keys(store, "a")] == [1]
    assert [k[0] for k in keys(store, "b")] == [1, 2]


def test_a_batch_that_does_not_fit_stores_nothing(store: Store) -> None:
    assert store.create_queue(queue(size=3), [])
    assert store.add_queue_items("p", "picked", [item(1), item(2)]) == 2
    with pytest.raises(StoreError, match="holds 2 items and may hold 3"):
        store.add_queue_items("p", "picked", [item(3), item(4)])
    assert len(keys(store)) == 2
    q = store.get_queue("p", "picked")
    assert q is not None and q.item_count == 2
    # Held items do not count against the size.
    assert store.add_queue_items("p", "picked", [item(1), item(2), item(3)]) == 1


def test_unknown_queue(store: Store) -> None:
    with pytest.raises(StoreError, match="no queue named 'nope'"):
        store.add_queue_items("p", "nope", [item(1, "nope")])
    assert store.create_queue(queue(), [])
    with pytest.raises(StoreError, match="no queue named 'picked' in project 'other'"):
        store.add_queue_items("other", "picked", [item(1)])
