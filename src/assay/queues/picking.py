"""Hand-picked queues: people add traces (or single spans) one at a time, from the trace
page, ``assay queues add`` or ``POST /api/v1/queues/{name}/items``.

Only hand-picked queues take items after creation. A random or stratified queue's items
carry the probability each had of being drawn, and estimates weight labels by it; an item
added by hand has none, so adding one would make those weights wrong. A queue chosen by a
rule (drift, low-confidence, disagreement) records that rule and its candidates, which an
added item would misdescribe.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from assay.model import Span
from assay.query import SpanFilter
from assay.queues.selection import QueueSpec, build_queue, snapshot_item
from assay.queues.values import (
    HAND_PICKED,
    PROBABILITY_SAMPLES,
    LabelSpec,
    Queue,
    QueueConflictError,
    QueueError,
    QueueItem,
    QueueNotFoundError,
)
from assay.queues.work import get_queue
from assay.store import StoreError

if TYPE_CHECKING:
    from assay.store import Store

#: Most traces or spans one call adds.
MAX_ADD = 1000
_TRACE = re.compile(r"^[0-9a-f]{32}$")
_SPAN = re.compile(r"^[0-9a-f]{16}$")

#: A trace to add (its root span is shown), or one span of it.
Key = tuple[str, str | None]


@dataclass(frozen=True)
class Added:
    """What adding did: the queue afterwards, how many items are new, and how many of the
    asked-for traces (or spans) the queue already held (each counted once)."""

    queue: Queue
    added: int
    already_present: int

    def to_json(self) -> dict[str, Any]:
        """The API form (without the queue)."""
        return {"added": self.added, "already_present": self.already_present}


def check_keys(keys: Sequence[Key | Span | str]) -> list[Key]:
    """(trace id, span id or None) pairs, lower-cased, each once in the order given, from
    pairs, bare trace ids or spans; a :class:`QueueError` names a malformed id."""
    if not keys:
        raise QueueError("give at least one trace id to add (as in `assay traces list`)")
    out: list[Key] = []
    for key in keys:
        if isinstance(key, Span):
            trace_id, span_id = key.trace_id, key.span_id
        elif isinstance(key, str):
            trace_id, span_id = key, None
        else:
            trace_id, span_id = key
        t = trace_id.strip().lower() if isinstance(trace_id, str) else ""
        if not _TRACE.match(t):
            raise QueueError(
                f"trace id {trace_id!r} must be 32 hex characters (as in `assay traces list`)"
            )
        s: str | None = None
        if span_id is not None:
            s = span_id.strip().lower() if isinstance(span_id, str) else ""
            if not _SPAN.match(s):
                raise QueueError(
                    f"span id {span_id!r} of trace {t} must be 16 hex characters (as in "
                    f"`assay traces show {t}`)"
                )
        if (t, s) not in out:
            out.append((t, s))
    if len(out) > MAX_ADD:
        raise QueueError(f"{len(out):,} traces at once; add at most {MAX_ADD:,} per call")
    return out


def _spans(store: Store, project: str, keys: Sequence[Key]) -> list[Span]:
    """The span each key stands for (a trace's root span), or QueueNotFoundError."""
    roots = store.root_span_ids(project, [t for t, s in keys if s is None])
    missing = [t for t, s in keys if s is None and t not in roots]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        listed = ", ".join(missing[:5]) + more
        raise QueueNotFoundError(
            f"no trace {listed} in project {project!r}; see `assay traces list`"
        )
    resolved = [(t, s if s is not None else roots[t]) for t, s in keys]
    found = {(x.trace_id, x.span_id): x for x in store.spans_by_key(SpanFilter(project), resolved)}
    for t, s in resolved:
        if (t, s) not in found:
            raise QueueNotFoundError(
                f"trace {t} has no span {s} in project {project!r}; see `assay traces show {t}`"
            )
    return [found[k] for k in resolved]


def _reason(added_by: str | None, reason: str | None, now: datetime) -> dict[str, Any]:
    if added_by is not None and (
        not added_by.strip() or len(added_by) > 128 or any(ord(c) < 32 for c in added_by)
    ):
        raise QueueError(f"added_by {added_by!r} must be 1-128 characters on one line")
    if reason is not None and len(reason) > 2_000:
        raise QueueError("reason is longer than 2,000 characters; shorten it")
    out: dict[str, Any] = {"picked": "by hand", "added_at": now.isoformat()}
    if added_by:
        out["added_by"] = added_by
    if reason:
        out["why"] = reason
    return out


def _items(
    queue: str, spans: Sequence[Span], why: Mapping[str, Any], first: int = 1
) -> list[QueueItem]:
    # The same snapshot a selected item gets; labelled on the span shown (a trace's root),
    # like a random queue's traces, where calibration meets the judge's scores.
    return [snapshot_item(queue, first + n, s, why) for n, s in enumerate(spans)]


def label_flags(label: LabelSpec) -> str:
    """The ``assay queues create`` options that make a queue collect ``label``."""
    if label.kind == "boolean":
        how = "--boolean"
    elif label.kind == "category":
        how = "--values " + shlex.quote(",".join(label.values))
    else:
        low, high = label.low, label.high
        how = f"--scale {low:g}-{high:g}" if label.integer else f"--scale {low!r}-{high!r}"
    return f"--label {shlex.quote(label.name)} {how}"


def _refusal(queue: Queue) -> QueueConflictError:
    suggestion = (
        "put hand-picked traces in a hand-picked queue instead: `assay queues create NAME "
        f"--strategy hand-picked {label_flags(queue.label)}`, then `assay queues add NAME "
        "TRACE_ID...` (or pick that queue on the trace page)"
    )
    if queue.strategy in PROBABILITY_SAMPLES:
        return QueueConflictError(
            f"queue {queue.name!r} is a {queue.strategy} sample: each item carries the "
            f"probability it had of being drawn from {queue.population:,} candidates, and "
            "quality estimates weight its labels by those probabilities; an item added by "
            "hand has no such probability and would make the weights wrong. Its items are "
            f"fixed at creation; {suggestion}"
        )
    return QueueConflictError(
        f"queue {queue.name!r} holds what its {queue.strategy} rule selected, as its "
        "parameters and population record; an item added by hand would make that record "
        f"wrong. Its items are fixed at creation; {suggestion}"
    )


def add_items(
    store: Store,
    project: str,
    queue_name: str,
    keys: Sequence[Key | Span | str],
    added_by: str | None = None,
    reason: str | None = None,
    now: datetime | None = None,
) -> Added:
    """Add traces (shown by their root span) or spans to a hand-picked queue, after its
    last item, in one transaction; those it already holds are counted, not added again.
    ``keys``: trace ids, (trace_id, span_id or None) pairs, or spans.

    :class:`QueueNotFoundError` for an unknown queue, trace or span;
    :class:`QueueConflictError` for a queue that does not take items (a probability sample
    or a rule's selection) or would pass its size; :class:`QueueError` for a bad id.
    """
    now = now or datetime.now(UTC)
    wanted = check_keys(keys)
    why = _reason(added_by, reason, now)
    queue = get_queue(store, project, queue_name)
    if not queue.accepts_items:
        raise _refusal(queue)
    spans = _spans(store, project, wanted)
    unique = list({(s.trace_id, s.span_id): s for s in spans}.values())
    try:
        added = store.add_queue_items(project, queue_name, _items(queue_name, unique, why))
    except StoreError:
        after = get_queue(store, project, queue_name)  # gone meanwhile: not found
        if after.item_count + len(unique) <= after.size:
            raise  # not the size: the store's own failure, as it said
        raise QueueConflictError(
            f"queue {queue_name!r} holds {after.item_count:,} items and may hold at most "
            f"{after.size:,} (its size); {len(unique)} more would pass that, so nothing was "
            "added. Create another hand-picked queue for them"
        ) from None
    return Added(get_queue(store, project, queue_name), added, len(unique) - added)


def create_with_items(
    store: Store,
    spec: QueueSpec,
    keys: Sequence[Key | Span | str],
    added_by: str | None = None,
    reason: str | None = None,
    now: datetime | None = None,
) -> Added:
    """Create a hand-picked queue already holding these traces or spans (one transaction:
    a bad id or a taken name stores nothing)."""
    if spec.strategy != HAND_PICKED:
        raise QueueError(
            f"only a hand-picked queue is created with chosen items, not {spec.strategy}"
        )
    now = now or datetime.now(UTC)
    wanted = check_keys(keys)
    why = _reason(added_by, reason, now)
    project = spec.filters.project
    if store.get_queue(project, spec.name) is not None:
        raise _taken(spec.name)
    spans = _spans(store, project, wanted)
    unique = list({(s.trace_id, s.span_id): s for s in spans}.values())
    if len(unique) > spec.size:
        raise QueueError(
            f"{len(unique)} items do not fit a queue of size {spec.size}; raise its size"
        )
    queue, _ = build_queue(store, spec, now)
    items = _items(spec.name, unique, why)
    queue = replace(queue, item_count=len(items), population=len(items))
    if not store.create_queue(queue, items):
        raise _taken(spec.name)
    return Added(queue, len(items), len(wanted) - len(items))


def _taken(name: str) -> QueueConflictError:
    return QueueConflictError(
        f"a queue named {name!r} already exists; pick another name, or add to it with "
        f"`assay queues add {name} TRACE_ID...` when it is hand-picked"
    )
