"""Working on a queue: claim the next item under a lease, label it (stored as reviewer
feedback in the same transaction), skip it, or give it back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from assay.feedback import FeedbackError, make_feedback
from assay.model import Feedback
from assay.queues.values import (
    LABELLED,
    OPEN,
    SKIPPED,
    Queue,
    QueueConflictError,
    QueueError,
    QueueItem,
    QueueNotFoundError,
    check_labeller,
)

if TYPE_CHECKING:
    from assay.store import Store


# --- working on a queue ------------------------------------------------------------------------


def get_queue(store: Store, project: str, name: str) -> Queue:
    """A queue or :class:`QueueNotFoundError`."""
    queue = store.get_queue(project, name)
    if queue is None:
        raise QueueNotFoundError(
            f"no queue named {name!r} in project {project!r}; see `assay queues list`"
        )
    return queue


def get_item(store: Store, queue: Queue, item_id: int) -> QueueItem:
    """An item of a queue or :class:`QueueNotFoundError`."""
    item = store.get_queue_item(queue.project, queue.name, item_id)
    if item is None:
        raise QueueNotFoundError(
            f"queue {queue.name!r} has no item {item_id}; its items are numbered 1 to "
            f"{queue.item_count}"
        )
    return item


def claim_next(
    store: Store, project: str, name: str, labeller: str, now: datetime | None = None
) -> tuple[Queue, QueueItem | None]:
    """Claim the next unclaimed open item for ``labeller`` (or renew the one they hold)
    for the queue's lease; None when nothing is free."""
    check_labeller(labeller)
    queue = get_queue(store, project, name)
    now = now or datetime.now(UTC)
    until = now + timedelta(seconds=queue.lease_seconds)
    return queue, store.claim_queue_item(project, name, labeller, now, until)


def _busy(item: QueueItem, labeller: str, now: datetime) -> None:
    if item.status != OPEN:
        by = f" by {item.done_by}" if item.done_by else ""
        at = f" at {item.done_at:%Y-%m-%d %H:%M} UTC" if item.done_at else ""
        raise QueueConflictError(
            f"item {item.item_id} of queue {item.queue!r} was already {item.status}{by}{at}; "
            "take another with `assay queues next`"
        )
    if item.claimed(now) and item.claimed_by != labeller:
        assert item.lease_expires_at is not None
        raise QueueConflictError(
            f"item {item.item_id} of queue {item.queue!r} is claimed by {item.claimed_by} "
            f"until {item.lease_expires_at:%H:%M:%S} UTC; take another with "
            "`assay queues next`"
        )


def feedback_id(queue: Queue, item_id: int) -> str:
    """The feedback id of an item's label (stable, so a resent label is not stored twice)."""
    return f"queue-{queue.queue_id}-{item_id}"


def label_item(
    store: Store,
    project: str,
    name: str,
    item_id: int,
    labeller: str,
    value: Any,
    comment: str | None = None,
    now: datetime | None = None,
) -> tuple[QueueItem, Feedback]:
    """Store ``labeller``'s label of an item as reviewer feedback and mark it labelled.
    Sending the same label again answers the stored one; a different one is a conflict."""
    check_labeller(labeller)
    now = now or datetime.now(UTC)
    queue = get_queue(store, project, name)
    item = get_item(store, queue, item_id)
    parsed = queue.label.parse(value)
    fid = feedback_id(queue, item_id)
    if item.status == LABELLED and item.done_by == labeller:
        stored = store.list_feedback(project, ids=[fid], limit=1)
        if stored and _same_value(stored[0], parsed) and stored[0].comment == (comment or None):
            return item, stored[0]
    _busy(item, labeller, now)
    try:
        fb = make_feedback(
            project,
            item.trace_id,
            queue.label.name,
            parsed,
            span_id=item.label_span_id,
            comment=comment or None,
            source="reviewer",
            author=labeller,
            id=fid,
            created_at=now,
            metadata={
                "queue": queue.name,
                "queue_id": queue.queue_id,
                "item": item_id,
                "strategy": queue.strategy,
                "inclusion_probability": item.inclusion_probability,
                "stratum": item.stratum,
            },
        )
    except FeedbackError as exc:
        raise QueueError(str(exc)) from None
    if not store.finish_queue_item(project, name, item_id, labeller, LABELLED, now, feedback=fb):
        _busy(get_item(store, queue, item_id), labeller, now)
        raise QueueConflictError(f"item {item_id} changed while labelling; try again")
    return get_item(store, queue, item_id), fb


def _same_value(f: Feedback, value: bool | int | float | str) -> bool:
    if isinstance(value, bool):
        return f.kind == "boolean" and f.number == (1.0 if value else 0.0)
    if isinstance(value, str):
        return f.category == value
    return f.number == float(value)


def skip_item(
    store: Store,
    project: str,
    name: str,
    item_id: int,
    labeller: str,
    reason: str | None = None,
    now: datetime | None = None,
) -> QueueItem:
    """Mark an item skipped by ``labeller`` (it is then done: nobody is offered it again)."""
    check_labeller(labeller)
    if reason is not None and len(reason) > 2_000:
        raise QueueError("reason is longer than 2,000 characters")
    now = now or datetime.now(UTC)
    queue = get_queue(store, project, name)
    item = get_item(store, queue, item_id)
    if item.status == SKIPPED and item.done_by == labeller:
        return item
    _busy(item, labeller, now)
    if not store.finish_queue_item(
        project, name, item_id, labeller, SKIPPED, now, reason=reason or None
    ):
        _busy(get_item(store, queue, item_id), labeller, now)
        raise QueueConflictError(f"item {item_id} changed while skipping; try again")
    return get_item(store, queue, item_id)


def release_item(store: Store, project: str, name: str, item_id: int, labeller: str) -> QueueItem:
    """Give back a claim before its lease ends (the item is offered to the next caller)."""
    check_labeller(labeller)
    queue = get_queue(store, project, name)
    item = get_item(store, queue, item_id)
    if item.status == OPEN and item.claimed_by not in (None, labeller):
        raise QueueConflictError(
            f"item {item_id} is claimed by {item.claimed_by}, not {labeller}; only the holder "
            "can release it"
        )
    store.release_queue_item(project, name, item_id, labeller)
    return get_item(store, queue, item_id)
