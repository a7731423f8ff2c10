"""Judge scores and human labels as feedback records, for the calibration tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from assay.feedback import make_feedback
from assay.model import Feedback, Span
from assay.queues.values import LABELLED, Queue, QueueItem, label_spec
from assay.store import Store

P = "default"
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def tid(i: int) -> str:
    return f"{i + 1:032x}"


def sid(i: int) -> str:
    return f"{i + 1:016x}"


def span(i: int, start: datetime = T0, route: str = "/chat") -> Span:
    return Span(
        project=P,
        trace_id=tid(i),
        span_id=sid(i),
        parent_span_id=None,
        service="app",
        name="chat",
        kind="llm",
        otel_kind="client",
        start_time=start,
        end_time=start + timedelta(seconds=1),
        duration_ms=1000.0,
        status="ok",
        route=route,
    )


def judge(i: int, value: float | bool, name: str = "help", at: datetime = T0) -> Feedback:
    return make_feedback(
        P,
        tid(i),
        name,
        value,
        span_id=sid(i),
        source="judge",
        id=f"j{name}{i}@{at:%H%M}",
        created_at=at,
    )


def label(
    i: int,
    value: float | bool,
    name: str = "human-help",
    at: datetime = T0,
    source: str = "reviewer",
    fid: str | None = None,
) -> Feedback:
    return make_feedback(
        P,
        tid(i),
        name,
        value,
        span_id=sid(i),
        source=source,
        id=fid or f"h{name}{i}{at.timestamp()}",
        created_at=at,
    )


def bulk_add(store: Store, records: Sequence[Feedback]) -> None:
    """Many feedback records at once (one batch insert on every backend)."""
    store.add_feedback(records)


def table_2x2(store: Store) -> None:
    """STATS.md §5: rows judge, columns human, [[20, 5], [10, 15]] with labels (fail, pass)."""
    cells = [(False, False, 20), (False, True, 5), (True, False, 10), (True, True, 15)]
    records, i = [], 0
    for j, h, count in cells:
        for _ in range(count):
            records += [judge(i, j), label(i, h)]
            i += 1
    store.add_feedback(records)


def biased_window(store: Store, n_items: int = 4000, seed: int = 3) -> np.ndarray:
    """Items whose true pass rate is 0.7 and a judge that passes too often; returns truth."""
    rng = np.random.default_rng(seed)
    truth = rng.random(n_items) < 0.7
    judge_pass = np.where(truth, rng.random(n_items) < 0.9, rng.random(n_items) < 0.5)
    bulk_add(store, [judge(i, bool(judge_pass[i])) for i in range(n_items)])
    return truth


def add_queue(
    store: Store,
    name: str,
    strategy: str,
    items: Sequence[tuple[int, float | None]],
    truth: np.ndarray,
    label_name: str = "human-help",
) -> None:
    """A queue over the given items (with their inclusion probabilities), every item
    labelled through it by 'ana' at T0 (reviewer feedback whose id the item names)."""
    created = store.create_queue(
        Queue(
            project=P,
            name=name,
            queue_id=f"q-{name}",
            strategy=strategy,
            params={},
            seed=0,
            label=label_spec(label_name, boolean=True),
            size=len(items),
            item_count=len(items),
            population=len(truth),
            lease_seconds=1800,
            created_at=T0,
        ),
        [
            QueueItem(
                project=P,
                queue=name,
                item_id=k + 1,
                trace_id=tid(i),
                span_id=sid(i),
                input_text=None,
                output_text=None,
                input_messages=None,
                output_messages=None,
                context={},
                inclusion_probability=p,
            )
            for k, (i, p) in enumerate(items)
        ],
    )
    assert created
    for k, (i, _) in enumerate(items):
        record = label(i, bool(truth[i]), name=label_name, fid=f"queue-{name}-{k}")
        assert store.finish_queue_item(P, name, k + 1, "ana", LABELLED, T0, feedback=record)


def overconfident(store: Store, n: int, start: int = 0, labelled: bool = True) -> None:
    """Judge probabilities 0.9 / 0.1 whose items really pass 70% / 30% of the time."""
    records = []
    for k in range(n):
        i = start + k
        high = k % 2 == 0
        records.append(judge(i, 0.9 if high else 0.1))
        if labelled:
            passed = (k // 2) % 10 < (7 if high else 3)
            records.append(label(i, passed))
    bulk_add(store, records)
