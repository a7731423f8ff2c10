"""Spans as plain column lists: the half of :mod:`assay.batch` that needs no pyarrow.

Decode worker processes (:mod:`assay.decode_worker`) build these and hand them to the
server with :mod:`marshal`; leaving pyarrow (and numpy) out of each worker keeps it
~35 MB smaller. :func:`assay.batch.columns_to_arrow` turns them into a table.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from assay.model import SPAN_COLUMNS, Span

JSON_COLUMNS = frozenset(
    {"input_messages", "output_messages", "attributes", "resource_attributes", "events"}
)
#: Columns carried as integer microseconds since the epoch (UTC).
TIME_COLUMNS = frozenset({"start_time", "end_time"})
_ROW = operator.attrgetter(*SPAN_COLUMNS)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _micros(value: datetime) -> int:
    if value.tzinfo is None:  # a naive time is UTC, as everywhere in assay
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MICROSECOND


def span_columns(rows: Sequence[Span]) -> list[list[Any]]:
    """One list per :data:`assay.model.SPAN_COLUMNS` entry: JSON columns serialized to
    text, times as integer microseconds, everything else as is (str, int, float, None)."""
    dumps = json.dumps
    shared: dict[int, str] = {}  # resource attributes are one dict per resource

    def shared_dump(obj: dict[str, Any]) -> str:
        key = id(obj)
        out = shared.get(key)
        if out is None:
            out = shared[key] = dumps(obj, ensure_ascii=False)
        return out

    # One C-level attrgetter call per row, then a transpose: far cheaper than a getattr
    # per cell.
    values = list(zip(*map(_ROW, rows), strict=True)) if rows else [()] * len(SPAN_COLUMNS)
    columns: list[list[Any]] = []
    for c, col in zip(SPAN_COLUMNS, values, strict=True):
        if c == "resource_attributes":
            columns.append([shared_dump(v) for v in col])
        elif c in JSON_COLUMNS:
            columns.append([None if v is None else dumps(v, ensure_ascii=False) for v in col])
        elif c in TIME_COLUMNS:
            columns.append([_micros(v) for v in col])
        else:
            columns.append(list(col))
    return columns
