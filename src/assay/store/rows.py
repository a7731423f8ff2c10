"""Rows to values and back, the same on every backend: both stores read and write
these tables with the same columns in the same order."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from assay.batch import JSON_COLUMNS
from assay.model import SPAN_COLUMNS, EvalRun, GoldenVersion, ScorerSpec, Span
from assay.queues.values import LabelSpec, Queue, QueueItem


def utc(dt: datetime | None) -> datetime | None:
    """A datetime read from a store (naive UTC or aware) as aware UTC."""
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def span_from_row(row: Sequence[Any]) -> Span:
    """A Span from a row in SPAN_COLUMNS order."""
    values = dict(zip(SPAN_COLUMNS, row, strict=True))
    for column in JSON_COLUMNS:
        raw = values[column]
        values[column] = json.loads(raw) if raw not in (None, "") else None
    values["attributes"] = values["attributes"] or {}
    values["resource_attributes"] = values["resource_attributes"] or {}
    values["events"] = values["events"] or []
    values["start_time"] = utc(values["start_time"])
    values["end_time"] = utc(values["end_time"])
    return Span(**values)


def dumps(value: Any) -> str:
    """JSON text as the stores keep it (non-ASCII kept, unknown types as strings)."""
    return json.dumps(value, ensure_ascii=False, default=str)


def now() -> datetime:
    return datetime.now(UTC)


def queue_from_row(row: Sequence[Any]) -> Queue:
    return Queue(
        project=row[0],
        name=row[1],
        queue_id=row[2],
        strategy=row[3],
        params=json.loads(row[4]),
        seed=int(row[5]),
        label=LabelSpec.from_json(json.loads(row[6])),
        instructions=row[7],
        size=int(row[8]),
        item_count=int(row[9]),
        population=int(row[10]),
        lease_seconds=int(row[11]),
        notes=tuple(json.loads(row[12])),
        created_by=row[13],
        created_at=utc(row[14]) or datetime.now(UTC),
    )


def item_from_row(row: Sequence[Any]) -> QueueItem:
    return QueueItem(
        project=row[0],
        queue=row[1],
        item_id=int(row[2]),
        trace_id=row[3],
        span_id=row[4],
        stratum=row[5],
        inclusion_probability=row[6],
        score=row[7],
        input_text=row[8],
        output_text=row[9],
        input_messages=json.loads(row[10]) if row[10] else None,
        output_messages=json.loads(row[11]) if row[11] else None,
        context=json.loads(row[12]),
        status=row[13],
        claimed_by=row[14],
        claimed_at=utc(row[15]),
        lease_expires_at=utc(row[16]),
        done_by=row[17],
        done_at=utc(row[18]),
        feedback_id=row[19],
        skip_reason=row[20],
    )


def item_row(i: QueueItem, item_id: int) -> list[Any]:
    """A new (open, unclaimed) item's row, numbered ``item_id``."""
    return [
        i.project,
        i.queue,
        item_id,
        i.trace_id,
        i.span_id,
        i.stratum,
        i.inclusion_probability,
        i.score,
        i.input_text,
        i.output_text,
        None if i.input_messages is None else dumps(i.input_messages),
        None if i.output_messages is None else dumps(i.output_messages),
        dumps(i.context),
        i.status,
        *([None] * 7),
    ]


def golden_from_row(row: Sequence[Any]) -> GoldenVersion:
    return GoldenVersion(
        project=row[0],
        name=row[1],
        version=row[2],
        description=row[3],
        case_count=int(row[4]),
        source=row[5],
        created_at=utc(row[6]) or now(),
    )


def run_from_row(row: Sequence[Any]) -> EvalRun:
    return EvalRun(
        project=row[0],
        run_id=row[1],
        name=row[2],
        golden=row[3],
        golden_version=row[4],
        target=json.loads(row[5]),
        scorers=[ScorerSpec(**s) for s in json.loads(row[6])],
        trials=int(row[7]),
        status=row[8],
        created_at=utc(row[9]) or now(),
        finished_at=utc(row[10]),
        metadata=json.loads(row[11]) if row[11] else {},
    )
