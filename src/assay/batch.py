"""Spans as Arrow tables: what decoding hands the writer and the writer hands the store.

Arrow is the interchange because it crosses process boundaries as one buffer (decoding
runs in worker processes to use more than one core) and every backend bulk-loads it.
"""

from __future__ import annotations

import importlib.abc
import json
import operator
import sys
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from assay.model import SPAN_COLUMNS, Span

JSON_COLUMNS = frozenset(
    {"input_messages", "output_messages", "attributes", "resource_attributes", "events"}
)
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
_ROW = operator.attrgetter(*SPAN_COLUMNS)


def spans_to_arrow(rows: Sequence[Span]) -> pa.Table:
    """Spans as a table in :data:`SCHEMA` (JSON columns serialized to text)."""
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
    arrays: list[Any] = []
    for i, c in enumerate(SPAN_COLUMNS):
        col = values[i]
        if c == "resource_attributes":
            arrays.append([shared_dump(v) for v in col])
        elif c in JSON_COLUMNS:
            arrays.append([None if v is None else dumps(v, ensure_ascii=False) for v in col])
        else:
            arrays.append(col)
    return pa.Table.from_arrays(
        [pa.array(a, type=f.type) for a, f in zip(arrays, SCHEMA, strict=True)], schema=SCHEMA
    )


def to_ipc(table: pa.Table) -> bytes:
    """A table as Arrow IPC stream bytes (to send between processes)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def from_ipc(data: bytes) -> pa.Table:
    """The table in Arrow IPC stream bytes made by :func:`to_ipc`."""
    return pa.ipc.open_stream(data).read_all()


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
