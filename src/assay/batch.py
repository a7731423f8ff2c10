"""Spans as Arrow tables: what the ingest writer hands the store.

Every backend bulk-loads Arrow. Decode workers send plain column lists instead
(:mod:`assay.columns`), so that they need not load pyarrow; the server converts them here.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from assay.columns import JSON_COLUMNS, span_columns
from assay.model import SPAN_COLUMNS, Span

__all__ = ["JSON_COLUMNS", "SCHEMA", "columns_to_arrow", "spans_to_arrow"]

_TYPES: dict[str, pa.DataType] = {
    "start_time": pa.timestamp("us", tz="UTC"),
    "end_time": pa.timestamp("us", tz="UTC"),
    "duration_ms": pa.float64(),
    "cost": pa.float64(),
    "input_tokens": pa.int64(),
    "output_tokens": pa.int64(),
    "cached_input_tokens": pa.int64(),
    "total_tokens": pa.int64(),
}
SCHEMA = pa.schema([(c, _TYPES.get(c, pa.string())) for c in SPAN_COLUMNS])


def columns_to_arrow(columns: Sequence[Sequence[Any]]) -> pa.Table:
    """Column lists from :func:`assay.columns.span_columns` as a table in :data:`SCHEMA`."""
    if len(columns) != len(SCHEMA):
        raise ValueError(f"expected {len(SCHEMA)} span columns, got {len(columns)}")
    return pa.Table.from_arrays(
        [pa.array(a, type=f.type) for a, f in zip(columns, SCHEMA, strict=True)], schema=SCHEMA
    )


def spans_to_arrow(rows: Sequence[Span]) -> pa.Table:
    """Spans as a table in :data:`SCHEMA` (JSON columns serialized to text)."""
    return columns_to_arrow(span_columns(rows))


class _NoPandas(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "pandas":
            raise ModuleNotFoundError("not loaded for pyarrow's probe", name=name)
        return None


def skip_pandas_probe() -> None:
    """Stop pyarrow importing pandas just to check whether an input is a pandas object.

    pyarrow probes once per process, on the first ``pa.array()``, and that import costs
    ~50 MB of RSS in every server and decode process that never touches pandas. The probe
    runs here with pandas hidden; pandas stays importable, and pyarrow still loads it
    when asked for a real conversion (``to_pandas``).
    """
    if "pandas" in sys.modules:
        return
    finder = _NoPandas()
    sys.meta_path.insert(0, finder)
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(finder)
