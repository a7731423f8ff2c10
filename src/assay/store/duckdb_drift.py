"""Drift windows and the embedding cache in the DuckDB store (mixed into DuckDBStore)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import duckdb
import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from assay.query import SpanFilter
from assay.store import StoreError

_TOOL_NAMES = """
CASE WHEN kind = 'tool' THEN coalesce(
        json_extract_string(attributes, '$."gen_ai.tool.name"'),
        json_extract_string(attributes, '$."tool.name"'),
        name)
     ELSE nullif(array_to_string(list_sort(list_distinct(list_concat(
        coalesce(json_extract_string(output_messages, '$[*].tool_calls[*].name'), []),
        coalesce(json_extract_string(output_messages, '$[*].tool_calls[*].function.name'), [])
     ))), '+'), '')
END"""

#: Fields a drift window can read, and the SQL computing each from a span row. ``tools``
#: is the tool's name on a tool span, else the sorted distinct tool calls of the output
#: messages joined by ``+`` (null when the call used no tool).
DRIFT_FIELDS: dict[str, str] = {
    "start_time": "start_time",
    "kind": "kind",
    "input_text": "input_text",
    "output_text": "output_text",
    "input_length": "CAST(length(input_text) AS DOUBLE)",
    "output_length": "CAST(length(output_text) AS DOUBLE)",
    "duration_ms": "duration_ms",
    "input_tokens": "CAST(input_tokens AS DOUBLE)",
    "output_tokens": "CAST(output_tokens AS DOUBLE)",
    "cost": "cost",
    "model": "model",
    "finish_reason": "finish_reason",
    "status": "status",
    "tools": _TOOL_NAMES,
}

_VECTOR_SCHEMA = pa.schema(
    [
        ("trace_id", pa.string()),
        ("span_id", pa.string()),
        ("vector", pa.list_(pa.float32())),
    ]
)


def _attribute_path(key: str) -> str:
    return '$."' + key.replace('"', '\\"') + '"'


class DriftTables:
    """The drift half of :class:`assay.store.duckdb.DuckDBStore`."""

    _write_lock: threading.Lock

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        raise NotImplementedError

    def _narrow(self, flt: SpanFilter) -> str | None:
        raise NotImplementedError

    def sample_window(
        self,
        flt: SpanFilter,
        fields: Sequence[str],
        attributes: Sequence[str] = (),
        limit: int = 20_000,
        seed: int = 0,
    ) -> tuple[pa.Table, int]:
        """Up to ``limit`` spans matching ``flt`` and how many matched in all.

        The sample is the ``limit`` spans with the smallest ``hash(seed, trace_id,
        span_id)``: uniform without replacement, the same spans on every call, and rows
        come in that hash order, so any prefix is itself a uniform sample. Columns:
        ``trace_id``, ``span_id``, each of ``fields`` (see :data:`DRIFT_FIELDS`) and
        ``attr:KEY`` (the attribute read as a number, null when absent or not numeric).
        """
        # Deferred: duckdb.py imports this module to build DuckDBStore.
        from assay.store.duckdb import _where

        unknown = [f for f in fields if f not in DRIFT_FIELDS]
        if unknown:
            raise StoreError(
                f"unknown drift field(s) {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(DRIFT_FIELDS)}"
            )
        if limit < 1:
            raise StoreError(f"sample limit must be >= 1, got {limit}")
        where, params = _where(flt, self._narrow)
        select = ["trace_id", "span_id"]
        select += [f"{DRIFT_FIELDS[f]} AS f{i}" for i, f in enumerate(fields)]
        select_params: list[object] = []
        for i, key in enumerate(attributes):
            select.append(f"TRY_CAST(json_extract_string(attributes, ?) AS DOUBLE) AS a{i}")
            select_params.append(_attribute_path(key))
        cur = self._cursor()
        try:
            rows = cur.execute(f"SELECT count(*) FROM spans WHERE {where}", params).fetchall()
            total = int(rows[0][0])
            # Top-N by a seeded hash: DuckDB keeps only `limit` rows while it scans, so
            # memory stays bounded whatever the window's size.
            table = cur.sql(
                f"SELECT {', '.join(select)} FROM spans WHERE {where} "
                "ORDER BY hash(?::BIGINT, trace_id, span_id), trace_id, span_id LIMIT ?",
                params=[*select_params, *params, int(seed), int(limit)],
            ).to_arrow_table()
        finally:
            cur.close()
        names = ["trace_id", "span_id", *fields, *(f"attr:{k}" for k in attributes)]
        return table.rename_columns(names), total

    def load_embeddings(
        self,
        project: str,
        embedder: str,
        field: str,
        trace_ids: Sequence[str],
        span_ids: Sequence[str],
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Cached vectors of the given spans: the positions (into ``trace_ids``) that have
        one, ascending, and their vectors as one (found, dim) float32 array."""
        if len(trace_ids) != len(span_ids):
            raise StoreError("load_embeddings: trace_ids and span_ids differ in length")
        if not trace_ids:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        keys = pa.table(
            {
                "pos": pa.array(np.arange(len(trace_ids), dtype=np.int64)),
                "trace_id": pa.array(list(trace_ids), pa.string()),
                "span_id": pa.array(list(span_ids), pa.string()),
            }
        )
        cur = self._cursor()
        cur.register("assay_embedding_keys", keys)
        try:
            found = cur.sql(
                "SELECT k.pos, e.vector FROM assay_embedding_keys k JOIN embeddings e "
                "ON e.trace_id = k.trace_id AND e.span_id = k.span_id "
                "WHERE e.project = ? AND e.embedder = ? AND e.field = ? ORDER BY k.pos",
                params=[project, embedder, field],
            ).to_arrow_table()
        finally:
            cur.unregister("assay_embedding_keys")
            cur.close()
        positions = found.column("pos").to_numpy().astype(np.int64)
        if found.num_rows == 0:
            return positions, np.zeros((0, 0), dtype=np.float32)
        lists = found.column("vector").combine_chunks()
        flat = lists.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        dim = len(flat) // found.num_rows
        if dim * found.num_rows != len(flat):
            raise StoreError(
                f"cached embeddings of {embedder!r} ({field}) have mixed lengths; "
                f"delete them: DELETE FROM embeddings WHERE embedder = '{embedder}'"
            )
        return positions, flat.reshape(found.num_rows, dim)

    def save_embeddings(
        self,
        project: str,
        embedder: str,
        field: str,
        trace_ids: Sequence[str],
        span_ids: Sequence[str],
        vectors: NDArray[np.float32],
    ) -> int:
        """Cache vectors (one row per span); ones already cached are kept. Returns how
        many were added."""
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.ndim != 2 or not (len(trace_ids) == len(span_ids) == matrix.shape[0]):
            raise StoreError(
                "save_embeddings: need one (trace_id, span_id) per row of a 2-d vector array"
            )
        if matrix.shape[0] == 0:
            return 0
        n, dim = matrix.shape
        offsets = pa.array(np.arange(0, (n + 1) * dim, dim, dtype=np.int32))
        lists = pa.ListArray.from_arrays(offsets, pa.array(matrix.reshape(-1)))
        table = pa.Table.from_arrays(
            [pa.array(list(trace_ids), pa.string()), pa.array(list(span_ids), pa.string()), lists],
            schema=_VECTOR_SCHEMA,
        )
        with self._write_lock:
            cur = self._cursor()
            cur.register("assay_embedding_batch", table)
            try:
                rows = cur.execute(
                    "INSERT OR IGNORE INTO embeddings (project, embedder, field, trace_id, "
                    "span_id, vector) SELECT ?, ?, ?, trace_id, span_id, vector "
                    "FROM assay_embedding_batch",
                    [project, embedder, field],
                ).fetchall()
            finally:
                cur.unregister("assay_embedding_batch")
                cur.close()
        return int(rows[0][0]) if rows else 0
