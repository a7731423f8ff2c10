"""Drift windows and the embedding cache on ClickHouse (see :mod:`assay.store.clickhouse`).

A window is sampled by a seeded hash of span ids, like the DuckDB store, with ClickHouse's
``sipHash64(seed, trace_id, span_id)``: the two backends pick different (equally uniform)
spans for one seed, each the same ones on every call. Window tables come back with the
Arrow types the DuckDB store returns, so detectors never see the difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from assay.query import SpanFilter
from assay.store import StoreError
from assay.store.clickhouse import TIME, ClickHouseBase, Params, Schema
from assay.store.clickhouse_evals import first_wins
from assay.store.clickhouse_spans import where

#: Keys per embedding lookup (parameters travel in the request).
_KEY_CHUNK = 5_000

# Tool names an LLM call asked for, in both shapes providers use: {"name": …} and
# {"function": {"name": …}} inside each output message's tool_calls.
_CALLS = (
    "arrayFlatten(arrayMap(m -> JSONExtractArrayRaw(m, 'tool_calls'), "
    "JSONExtractArrayRaw(coalesce(output_messages, '[]'))))"
)
_TOOL_NAMES = f"""
if(kind = 'tool',
   coalesce(JSONExtract(attributes, 'gen_ai.tool.name', 'Nullable(String)'),
            JSONExtract(attributes, 'tool.name', 'Nullable(String)'),
            name),
   nullIf(arrayStringConcat(arraySort(arrayDistinct(arrayMap(x -> assumeNotNull(x),
       arrayFilter(x -> x IS NOT NULL, arrayConcat(
           arrayMap(c -> JSONExtract(c, 'name', 'Nullable(String)'), {_CALLS}),
           arrayMap(c -> JSONExtract(c, 'function', 'name', 'Nullable(String)'), {_CALLS})
       ))))), '+'), ''))"""

#: Fields a drift window can read: (SQL computing it from a span row, Arrow type). Same
#: names and meaning as :data:`assay.store.duckdb_drift.DRIFT_FIELDS`; lengths count
#: characters, not bytes.
DRIFT_FIELDS: dict[str, tuple[str, pa.DataType]] = {
    "start_time": ("start_time", pa.timestamp("us")),
    "kind": ("kind", pa.string()),
    "input_text": ("input_text", pa.string()),
    "output_text": ("output_text", pa.string()),
    "input_length": ("toFloat64(lengthUTF8(input_text))", pa.float64()),
    "output_length": ("toFloat64(lengthUTF8(output_text))", pa.float64()),
    "duration_ms": ("duration_ms", pa.float64()),
    "input_tokens": ("toFloat64(input_tokens)", pa.float64()),
    "output_tokens": ("toFloat64(output_tokens)", pa.float64()),
    "cost": ("cost", pa.float64()),
    "model": ("model", pa.string()),
    "finish_reason": ("finish_reason", pa.string()),
    "status": ("status", pa.string()),
    "tools": (_TOOL_NAMES, pa.string()),
}


def _migration(schema: Schema) -> list[str]:
    # One vector per (span, field, embedder): drift checks embed a span once and reuse it.
    # Golden-set cases are cached too, under trace_id 'golden:NAME@VERSION' and their case
    # id. The first vector cached for a key is the one kept.
    return schema.table(
        "embeddings",
        f"""project String, embedder String, field LowCardinality(String), trace_id String,
        span_id String, vector Array(Float32), created_at {TIME} DEFAULT now64(6),
        precedence UInt64""",
        version="precedence",
        order_by="(project, embedder, field, trace_id, span_id)",
    )


#: (migration name, DDL builder taking a Schema), applied in name order with the rest.
MIGRATIONS: list[tuple[str, Any]] = [("m004_embeddings", _migration)]


class DriftTables(ClickHouseBase):
    """The drift methods of :class:`assay.store.Store` on ClickHouse."""

    def _arrow(self, sql: str, p: Params) -> pa.Table:
        try:
            table: pa.Table = self._client.query_arrow(
                sql.replace("{db}", f"`{self.database}`"), parameters=p.values
            )
        except Exception as exc:
            raise StoreError(f"ClickHouse query failed: {exc}") from None
        return table

    def sample_window(
        self,
        flt: SpanFilter,
        fields: Sequence[str],
        attributes: Sequence[str] = (),
        limit: int = 20_000,
        seed: int = 0,
    ) -> tuple[pa.Table, int]:
        """Up to ``limit`` spans matching ``flt`` and how many matched in all.

        The sample is the ``limit`` spans with the smallest ``sipHash64(seed, trace_id,
        span_id)``: uniform without replacement, the same spans on every call, and rows
        come in that hash order, so any prefix is itself a uniform sample. Columns:
        ``trace_id``, ``span_id``, each of ``fields`` (see :data:`DRIFT_FIELDS`) and
        ``attr:KEY`` (the attribute read as a number, null when absent or not numeric).
        """
        unknown = [f for f in fields if f not in DRIFT_FIELDS]
        if unknown:
            raise StoreError(
                f"unknown drift field(s) {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(DRIFT_FIELDS)}"
            )
        if limit < 1:
            raise StoreError(f"sample limit must be >= 1, got {limit}")
        p = Params()
        select = ["trace_id", "span_id"]
        select += [f"{DRIFT_FIELDS[f][0]} AS f{i}" for i, f in enumerate(fields)]
        for i, key in enumerate(attributes):
            # A number, or a string holding one ("3.5"); anything else reads as null.
            select.append(
                f"toFloat64OrNull(JSONExtract(attributes, {p(key, 'String')}, "
                f"'Nullable(String)')) AS a{i}"
            )
        cond = where(flt, p)
        rows = self.q(f"SELECT count() FROM {{db}}.spans FINAL WHERE {cond}", p)
        total = int(rows[0][0]) if rows else 0
        # Top-N by a seeded hash: ClickHouse keeps only `limit` rows while it scans, so
        # memory stays bounded whatever the window's size.
        table = self._arrow(
            f"SELECT {', '.join(select)} FROM {{db}}.spans FINAL WHERE {cond} "
            f"ORDER BY sipHash64({p(int(seed), 'Int64')}, trace_id, span_id), trace_id, "
            f"span_id LIMIT {p(int(limit), 'UInt64')}",
            p,
        )
        names = ["trace_id", "span_id", *fields, *(f"attr:{k}" for k in attributes)]
        types = [pa.string(), pa.string(), *(DRIFT_FIELDS[f][1] for f in fields)]
        types += [pa.float64()] * len(attributes)
        # The DuckDB store's types: plain strings (not dictionaries), naive UTC timestamps.
        columns = [_as(table.column(i), t).combine_chunks() for i, t in enumerate(types)]
        schema = pa.schema(list(zip(names, types, strict=True)))
        return pa.Table.from_arrays(columns, schema=schema), total

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
        where_is: dict[tuple[str, str], list[int]] = {}
        for pos, key in enumerate(zip(trace_ids, span_ids, strict=True)):
            where_is.setdefault(key, []).append(pos)
        keys = list(where_is)
        positions: list[int] = []
        vectors: list[NDArray[np.float32]] = []
        dims: set[int] = set()
        for i in range(0, len(keys), _KEY_CHUNK):
            p = Params()
            found = self._arrow(
                "SELECT trace_id, span_id, vector FROM {db}.embeddings FINAL "
                f"WHERE project = {p(project, 'String')} AND embedder = {p(embedder, 'String')} "
                f"AND field = {p(field, 'String')} AND (trace_id, span_id) IN "
                f"{p(keys[i : i + _KEY_CHUNK], 'Array(Tuple(String, String))')}",
                p,
            )
            if found.num_rows == 0:
                continue
            lists = found.column("vector").combine_chunks()
            lengths = _list_lengths(lists)
            dims.update(lengths.tolist())
            if len(dims) > 1:
                raise StoreError(
                    f"cached embeddings of {embedder!r} ({field}) have mixed lengths; "
                    "delete them: ALTER TABLE embeddings DELETE WHERE embedder = "
                    f"'{embedder}'"
                )
            flat = lists.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
            block = flat.reshape(found.num_rows, int(lengths[0]))
            for row, key in enumerate(
                zip(
                    found.column("trace_id").to_pylist(),
                    found.column("span_id").to_pylist(),
                    strict=True,
                )
            ):
                for pos in where_is[key]:
                    positions.append(pos)
                    vectors.append(block[row])
        if not positions:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        order = np.argsort(np.asarray(positions, dtype=np.int64), kind="stable")
        pos_out = np.asarray(positions, dtype=np.int64)[order]
        return pos_out, np.vstack(vectors).astype(np.float32, copy=False)[order]

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
        with self._write_lock:
            cached = self._cached_keys(project, embedder, field, trace_ids, span_ids)
            keep: list[int] = []
            seen: set[tuple[str, str]] = set()
            for i, key in enumerate(zip(trace_ids, span_ids, strict=True)):
                if key in cached or key in seen:
                    continue
                seen.add(key)
                keep.append(i)
            if not keep:
                return 0
            rows = matrix[keep]
            n, dim = rows.shape
            offsets = pa.array(np.arange(0, (n + 1) * dim, dim, dtype=np.int32))
            # Racing writers both insert; the first vector written keeps the key.
            table = pa.table(
                {
                    "project": pa.array([project] * n, pa.string()),
                    "embedder": pa.array([embedder] * n, pa.string()),
                    "field": pa.array([field] * n, pa.string()),
                    "trace_id": pa.array([trace_ids[i] for i in keep], pa.string()),
                    "span_id": pa.array([span_ids[i] for i in keep], pa.string()),
                    "vector": pa.ListArray.from_arrays(offsets, pa.array(rows.reshape(-1))),
                    "precedence": pa.array([first_wins()] * n, pa.uint64()),
                }
            )
            try:
                self._client.insert_arrow("embeddings", table, database=self.database)
            except Exception as exc:
                raise StoreError(f"ClickHouse insert into embeddings failed: {exc}") from None
        return int(n)

    def _cached_keys(
        self,
        project: str,
        embedder: str,
        field: str,
        trace_ids: Sequence[str],
        span_ids: Sequence[str],
    ) -> set[tuple[str, str]]:
        keys = sorted(set(zip(trace_ids, span_ids, strict=True)))
        out: set[tuple[str, str]] = set()
        for i in range(0, len(keys), _KEY_CHUNK):
            p = Params()
            rows = self.q(
                "SELECT trace_id, span_id FROM {db}.embeddings "
                f"WHERE project = {p(project, 'String')} AND embedder = {p(embedder, 'String')} "
                f"AND field = {p(field, 'String')} AND (trace_id, span_id) IN "
                f"{p(keys[i : i + _KEY_CHUNK], 'Array(Tuple(String, String))')}",
                p,
            )
            out.update((str(t), str(s)) for t, s in rows)
        return out


def _list_lengths(lists: pa.Array) -> NDArray[np.int64]:
    return np.asarray(pc.list_value_length(lists).to_numpy(zero_copy_only=False), dtype=np.int64)


def _as(column: pa.ChunkedArray, type_: pa.DataType) -> pa.ChunkedArray:
    """A column cast to ``type_`` (dictionary strings decoded, timestamps made naive UTC)."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_timestamp(column.type) and column.type.tz is not None:
        # The DuckDB store returns naive timestamps in UTC; so does this one.
        column = column.cast(pa.timestamp(column.type.unit, "UTC")).cast(
            pa.timestamp(column.type.unit)
        )
    return column.cast(type_)
