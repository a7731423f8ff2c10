"""Spans, projects and API keys on ClickHouse (see :mod:`assay.store.clickhouse`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from assay.batch import SCHEMA, spans_to_arrow
from assay.model import (
    SPAN_COLUMNS,
    Aggregate,
    AggregateSets,
    ApiKey,
    Project,
    Span,
    TraceSummary,
    UnpricedModel,
)
from assay.pricing import PriceTable
from assay.query import EQUALITY_FIELDS, Page, SpanFilter, cursor_time, decode_cursor, encode_cursor
from assay.store import StoreError
from assay.store.clickhouse import TIME, ClickHouseBase, Params, one_of
from assay.store.rows import span_from_row, utc

_SPAN_SELECT = ", ".join(SPAN_COLUMNS)


def where(flt: SpanFilter, p: Params) -> str:
    """The WHERE clause of a span filter."""
    clauses = [f"project = {p(flt.project, 'String')}"]
    if flt.start is not None:
        clauses.append(f"start_time >= {p(flt.start, TIME)}")
    if flt.end is not None:
        clauses.append(f"start_time < {p(flt.end, TIME)}")
    for column in EQUALITY_FIELDS:
        value = getattr(flt, column)
        if value is not None:
            clauses.append(f"{column} = {p(value, 'String')}")
    if flt.min_duration_ms is not None:
        clauses.append(f"duration_ms >= {p(float(flt.min_duration_ms), 'Float64')}")
    if flt.min_cost is not None:
        clauses.append(f"cost >= {p(float(flt.min_cost), 'Float64')}")
    if flt.text:
        # lower(coalesce(…)) LIKE is what the ngrambf_v1 skip indexes are built on: a
        # string found nowhere skips almost every granule (position() would scan them all).
        escaped = flt.text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        needle = p(f"%{escaped}%", "String")
        clauses.append(
            f"(lower(coalesce(input_text, '')) LIKE {needle} "
            f"OR lower(coalesce(output_text, '')) LIKE {needle})"
        )
    for key, value in flt.attributes.items():
        clauses.append(
            f"JSONExtract(attributes, {p(key, 'String')}, 'Nullable(String)') = "
            f"{p(value, 'String')}"
        )
    return " AND ".join(clauses)


class SpanTables(ClickHouseBase):
    """Spans, projects and API keys on ClickHouse."""

    # -- spans ----------------------------------------------------------------------

    def insert_spans(self, spans: Sequence[Span]) -> int:
        """Insert spans; spans whose (project, trace, span) is stored are not added."""
        if not spans:
            return 0
        return self.insert_arrow(spans_to_arrow(spans))

    def insert_arrow(self, table: pa.Table) -> int:
        """Insert a table in :data:`assay.batch.SCHEMA`; rows already stored (or repeated
        in the table) are dropped first, so the count is of new spans. Two replicas racing
        on one span both write it; ReplacingMergeTree and ``FINAL`` keep one."""
        if table.num_rows == 0:
            return 0
        # A store copy carries each span's ingested_at: online rules' watermarks depend on it.
        extra = ["ingested_at"] if "ingested_at" in table.column_names else []
        table = table.select([*SCHEMA.names, *extra])
        keys = list(
            zip(
                table.column("project").to_pylist(),
                table.column("trace_id").to_pylist(),
                table.column("span_id").to_pylist(),
                strict=True,
            )
        )
        stored = self._stored_keys(keys)
        keep: list[int] = []
        seen: set[tuple[str, str, str]] = set()
        for i, key in enumerate(keys):
            if key in stored or key in seen:
                continue
            seen.add(key)
            keep.append(i)
        if not keep:
            return 0
        if len(keep) < table.num_rows:
            table = table.take(pa.array(keep))
        with self._write_lock:
            try:
                self._client.insert_arrow("spans", table, database=self.database)
            except Exception as exc:
                raise StoreError(f"ClickHouse insert into spans failed: {exc}") from None
        return len(keep)

    def _stored_keys(self, keys: Sequence[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
        out: set[tuple[str, str, str]] = set()
        by_project: dict[str, set[str]] = {}
        for project, trace_id, _ in keys:
            by_project.setdefault(project, set()).add(trace_id)
        for project, trace_ids in by_project.items():
            ids = sorted(trace_ids)
            for i in range(0, len(ids), 5000):
                p = Params()
                rows = self.q(
                    f"SELECT trace_id, span_id FROM {{db}}.spans "
                    f"WHERE project = {p(project, 'String')} "
                    f"AND trace_id IN {one_of(p, ids[i : i + 5000])}",
                    p,
                )
                out.update((project, t, s) for t, s in rows)
        return out

    def count_spans(self, project: str | None = None) -> int:
        """Number of stored spans."""
        p = Params()
        sql = "SELECT count() FROM {db}.spans FINAL"
        if project is not None:
            sql += f" WHERE project = {p(project, 'String')}"
        rows = self.q(sql, p)
        return int(rows[0][0]) if rows else 0

    def list_spans(self, flt: SpanFilter, limit: int, cursor: str | None) -> Page[Span]:
        """Spans newest first, keyset-paginated on (start_time, trace_id, span_id)."""
        p = Params()
        cond = where(flt, p)
        if cursor:
            ts, tid, sid = decode_cursor(cursor, 3)
            cond += (
                f" AND (start_time, trace_id, span_id) < "
                f"({p(cursor_time(ts), TIME)}, {p(str(tid), 'String')}, {p(str(sid), 'String')})"
            )
        rows = self.q(
            f"SELECT {_SPAN_SELECT} FROM {{db}}.spans FINAL WHERE {cond} "
            f"ORDER BY start_time DESC, trace_id DESC, span_id DESC "
            f"LIMIT {p(limit + 1, 'UInt32')}",
            p,
        )
        spans = [span_from_row(r) for r in rows[:limit]]
        nxt = None
        if len(rows) > limit:
            last = spans[-1]
            nxt = encode_cursor(last.start_time.isoformat(), last.trace_id, last.span_id)
        return Page(spans, nxt)

    def list_traces(self, flt: SpanFilter, limit: int, cursor: str | None) -> Page[TraceSummary]:
        """Traces with a matching span, newest first, keyset-paginated."""
        p = Params()
        cond = where(flt, p)
        having = ""
        if cursor:
            ts, tid = decode_cursor(cursor, 2)
            having = (
                f"HAVING (trace_start, trace_id) < "
                f"({p(cursor_time(ts), TIME)}, {p(str(tid), 'String')})"
            )
        ids = self.q(
            f"SELECT trace_id, min(start_time) AS trace_start FROM {{db}}.spans FINAL "
            f"WHERE {cond} GROUP BY trace_id {having} "
            f"ORDER BY trace_start DESC, trace_id DESC LIMIT {p(limit + 1, 'UInt32')}",
            p,
        )
        page_ids = ids[:limit]
        order = {tid: i for i, (tid, _) in enumerate(page_ids)}
        summaries: list[TraceSummary] = []
        if page_ids:
            p2 = Params()
            rows = self.q(
                f"""
                SELECT trace_id,
                       if(countIf(parent_span_id IS NULL) > 0,
                          argMinIf(name, start_time, parent_span_id IS NULL),
                          argMin(name, start_time)),
                       if(countIf(parent_span_id IS NULL) > 0,
                          argMinIf(service, start_time, parent_span_id IS NULL),
                          argMin(service, start_time)),
                       min(start_time),
                       (toUnixTimestamp64Micro(max(end_time))
                          - toUnixTimestamp64Micro(min(start_time))) / 1000.0,
                       count(),
                       countIf(status = 'error'),
                       sum(input_tokens), sum(output_tokens), sum(cost),
                       arraySort(groupUniqArrayIf(assumeNotNull(model), model IS NOT NULL)),
                       countIf(input_tokens IS NOT NULL), countIf(output_tokens IS NOT NULL),
                       countIf(cost IS NOT NULL)
                FROM {{db}}.spans FINAL
                WHERE project = {p2(flt.project, 'String')}
                  AND trace_id IN {one_of(p2, [t for t, _ in page_ids])}
                GROUP BY trace_id
                """,
                p2,
            )
            for r in sorted(rows, key=lambda r: order[r[0]]):
                summaries.append(
                    TraceSummary(
                        project=flt.project,
                        trace_id=r[0],
                        name=r[1],
                        service=r[2],
                        start_time=utc(r[3]) or datetime.now(UTC),
                        duration_ms=float(r[4]),
                        span_count=int(r[5]),
                        error_count=int(r[6]),
                        input_tokens=int(r[7]) if r[11] else None,
                        output_tokens=int(r[8]) if r[12] else None,
                        cost=float(r[9]) if r[13] else None,
                        models=list(r[10] or []),
                    )
                )
        nxt = None
        if len(ids) > limit:
            tid, ts = page_ids[-1]
            nxt = encode_cursor((utc(ts) or datetime.now(UTC)).isoformat(), tid)
        return Page(summaries, nxt)

    def get_trace(self, project: str, trace_id: str) -> list[Span]:
        """All spans of a trace, in start order."""
        p = Params()
        rows = self.q(
            f"SELECT {_SPAN_SELECT} FROM {{db}}.spans FINAL "
            f"WHERE project = {p(project, 'String')} AND trace_id = {p(trace_id, 'String')} "
            "ORDER BY start_time, span_id",
            p,
        )
        return [span_from_row(r) for r in rows]

    def aggregate(
        self, flt: SpanFilter, bucket: timedelta | None, group_by: str | None
    ) -> list[Aggregate]:
        """Aggregates per time bucket and group (group_by is validated by the caller)."""
        return [agg for _, _, agg in self._aggregate(flt, bucket, group_by, rollup=False)]

    def aggregate_sets(
        self, flt: SpanFilter, bucket: timedelta | None, group_by: str | None
    ) -> AggregateSets:
        """Per (bucket, group), per bucket, per group and in total, from one scan."""
        out: dict[tuple[bool, bool], list[Aggregate]] = {
            (b, g): [] for b in (False, True) for g in (False, True)
        }
        for by_bucket, by_group, agg in self._aggregate(flt, bucket, group_by, rollup=True):
            out[by_bucket, by_group].append(agg)
        total = out[False, False]
        return AggregateSets(
            by_bucket_group=out[True, True] if bucket is not None and group_by else [],
            by_bucket=out[True, False] if bucket is not None else [],
            by_group=out[False, True] if group_by else [],
            total=total[0] if total and total[0].calls else None,
        )

    def _aggregate(
        self, flt: SpanFilter, bucket: timedelta | None, group_by: str | None, rollup: bool
    ) -> list[tuple[bool, bool, Aggregate]]:
        p = Params()
        cond = where(flt, p)
        bucket_sql = "CAST(NULL AS Nullable(DateTime64(6, 'UTC')))"
        if bucket is not None:
            micros = int(bucket / timedelta(microseconds=1))
            # Aligned like DuckDB's time_bucket with origin 2000-01-01: whole buckets
            # counted from that instant.
            origin = 946684800_000000
            bucket_sql = (
                "fromUnixTimestamp64Micro(intDiv(toUnixTimestamp64Micro(start_time) - "
                f"{origin}, {micros}) * {micros} + {origin}, 'UTC')"
            )
        group_sql = (
            "CAST(NULL AS Nullable(String))"
            if group_by is None
            else f"CAST({group_by} AS Nullable(String))"
        )
        grouping = "GROUP BY b, g"
        levels = "1, 1"
        if rollup:
            sets = ["()"]
            if bucket is not None:
                sets.append("(b)")
            if group_by is not None:
                sets.append("(g)")
            if bucket is not None and group_by is not None:
                sets.append("(b, g)")
            grouping = f"GROUP BY GROUPING SETS ({', '.join(sets)})"
            # GROUPING() is 0 for a grouped column (the SQL standard, which ClickHouse
            # follows by default); a constant stands in for a level that does not exist.
            levels = ", ".join(
                f"GROUPING({col}) = 0" if used else "0"
                for col, used in (("b", bucket is not None), ("g", group_by is not None))
            )
        rows = self.q(
            f"""
            SELECT {bucket_sql} AS b, {group_sql} AS g, {levels},
                   count(),
                   countIf(status = 'error'),
                   quantilesExactInclusive(0.5, 0.95, 0.99)(duration_ms),
                   sum(coalesce(input_tokens, 0)), sum(coalesce(output_tokens, 0)),
                   sum(coalesce(cost, 0)),
                   countIf(cost IS NULL AND model IS NOT NULL
                           AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL))
            FROM {{db}}.spans FINAL WHERE {cond}
            {grouping} ORDER BY b ASC NULLS FIRST, g ASC NULLS FIRST
            SETTINGS group_by_use_nulls = 1
            """,
            p,
        )
        out = []
        for b, g, by_b, by_g, calls, errors, q, tin, tout, cost, unpriced in rows:
            q = q or [None, None, None]
            agg = Aggregate(
                bucket=utc(b),
                group=g,
                calls=int(calls),
                errors=int(errors),
                error_rate=errors / calls if calls else 0.0,
                p50_ms=float(q[0]) if q[0] is not None else None,
                p95_ms=float(q[1]) if q[1] is not None else None,
                p99_ms=float(q[2]) if q[2] is not None else None,
                input_tokens=int(tin),
                output_tokens=int(tout),
                cost=float(cost),
                unpriced_calls=int(unpriced),
            )
            out.append((bool(by_b), bool(by_g), agg))
        return out

    def unpriced_models(self, flt: SpanFilter) -> list[UnpricedModel]:
        """Models with token counts but no cost, most spans first."""
        p = Params()
        rows = self.q(
            f"""
            SELECT model, any(provider), count(), sum(coalesce(input_tokens, 0)),
                   sum(coalesce(output_tokens, 0)), max(start_time)
            FROM {{db}}.spans FINAL
            WHERE {where(flt, p)} AND model IS NOT NULL AND cost IS NULL
              AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL)
            GROUP BY model ORDER BY count() DESC, model
            """,
            p,
        )
        return [
            UnpricedModel(
                model=r[0],
                provider=r[1],
                spans=int(r[2]),
                input_tokens=int(r[3]),
                output_tokens=int(r[4]),
                last_seen=utc(r[5]) or datetime.now(UTC),
            )
            for r in rows
        ]

    def reprice(self, prices: PriceTable) -> int:
        """Price unpriced spans whose model the table now knows, by writing a newer
        version of each row (ReplacingMergeTree keeps it; no mutation)."""
        models = [
            r[0]
            for r in self.q(
                "SELECT DISTINCT model FROM {db}.spans FINAL WHERE cost IS NULL "
                "AND model IS NOT NULL AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL)"
            )
        ]
        updated = 0
        for model in models:
            price = prices.price(model)
            if price is None:
                continue
            p = Params()
            rows = self.q(
                f"SELECT {_SPAN_SELECT} FROM {{db}}.spans FINAL "
                f"WHERE model = {p(model, 'String')} AND cost IS NULL "
                "AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL)",
                p,
            )
            priced = []
            for r in rows:
                span = span_from_row(r)
                tin, tout = span.input_tokens or 0, span.output_tokens or 0
                cached = min(span.cached_input_tokens or 0, tin)
                cost = (
                    (tin - cached) * price.input + cached * price.cached_rate + tout * price.output
                ) / 1e6
                priced.append(Span(**{**_fields(span), "cost": cost}))
            with self._write_lock:
                for chunk in _chunks(priced, 10_000):
                    try:
                        self._client.insert_arrow(
                            "spans", spans_to_arrow(chunk), database=self.database
                        )
                    except Exception as exc:
                        raise StoreError(f"ClickHouse reprice failed: {exc}") from None
            updated += len(priced)
        return updated

    # -- projects and keys ------------------------------------------------------------

    def create_project(self, name: str) -> Project:
        """Create a project if it does not exist; return it."""
        found = self._project(name)
        if found is not None:
            return found
        self.insert_rows("projects", ["name", "created_at"], [[name, datetime.now(UTC)]])
        project = self._project(name)
        assert project is not None
        return project

    def _project(self, name: str) -> Project | None:
        p = Params()
        # min(): the first creation is the project's birth, whatever came later.
        rows = self.q(
            f"SELECT name, min(created_at) FROM {{db}}.projects "
            f"WHERE name = {p(name, 'String')} GROUP BY name",
            p,
        )
        return Project(rows[0][0], utc(rows[0][1]) or datetime.now(UTC)) if rows else None

    def list_projects(self) -> list[Project]:
        """Every project, oldest first."""
        rows = self.q(
            "SELECT name, min(created_at) AS c FROM {db}.projects GROUP BY name ORDER BY c, name"
        )
        return [Project(r[0], utc(r[1]) or datetime.now(UTC)) for r in rows]

    def add_key(self, key: ApiKey, key_hash: str) -> None:
        """Store a key's hash and public record."""
        self.insert_rows(
            "api_keys",
            ["key_id", "project", "prefix", "key_hash", "created_at", "revoked", "version"],
            [[key.key_id, key.project, key.prefix, key_hash, key.created_at,
              int(key.revoked), self.version()]],
        )

    def get_key(self, key_id: str) -> tuple[ApiKey, str] | None:
        """A key's record and hash."""
        p = Params()
        rows = self.q(
            "SELECT key_id, project, prefix, created_at, revoked, key_hash "
            f"FROM {{db}}.api_keys FINAL WHERE key_id = {p(key_id, 'String')}",
            p,
        )
        if not rows:
            return None
        r = rows[0]
        return ApiKey(r[0], r[1], r[2], utc(r[3]) or datetime.now(UTC), bool(r[4])), str(r[5])

    def list_keys(self, project: str | None = None) -> list[ApiKey]:
        """Public records of keys."""
        p = Params()
        sql = "SELECT key_id, project, prefix, created_at, revoked FROM {db}.api_keys FINAL"
        if project is not None:
            sql += f" WHERE project = {p(project, 'String')}"
        rows = self.q(sql + " ORDER BY created_at", p)
        return [ApiKey(r[0], r[1], r[2], utc(r[3]) or datetime.now(UTC), bool(r[4])) for r in rows]

    def set_retention(self, project: str, days: float | None) -> None:
        """Keep ``project``'s spans for ``days`` (None: forever)."""
        self.insert_rows(
            "retention",
            ["project", "days", "version"],
            [[project, None if days is None else float(days), self.version()]],
        )

    def retention(self) -> dict[str, float]:
        """Projects with a retention period."""
        rows = self.q("SELECT project, days FROM {db}.retention FINAL WHERE days IS NOT NULL")
        return {r[0]: float(r[1]) for r in rows}

    def delete_spans_before(self, project: str, before: datetime) -> int:
        """Delete old spans of one project with a lightweight DELETE (rows vanish from
        reads at once; parts are rewritten by later merges), and their embeddings."""
        p = Params()
        cond = f"project = {p(project, 'String')} AND start_time < {p(before, TIME)}"
        rows = self.q(f"SELECT count() FROM {{db}}.spans FINAL WHERE {cond}", p)
        deleted = int(rows[0][0]) if rows else 0
        if not deleted:
            return 0
        table, on = "spans", ""
        if self.target.cluster:
            # Lightweight deletes run on the local replicated tables, cluster-wide.
            table, on = "spans_local", self.schema.on_cluster()
        self.cmd(f"DELETE FROM {{db}}.`{table}`{on} WHERE {cond}", p)
        self._delete_orphan_embeddings(project)
        return deleted

    def _delete_orphan_embeddings(self, project: str) -> None:
        if "embeddings" not in self._engines():
            return
        table, on = ("embeddings_local", self.schema.on_cluster()) if self.target.cluster else (
            "embeddings", "")  # fmt: skip
        p = Params()
        proj = p(project, "String")
        self.cmd(
            f"DELETE FROM {{db}}.`{table}`{on} WHERE project = {proj} AND (trace_id, span_id) "
            f"NOT IN (SELECT trace_id, span_id FROM {{db}}.spans WHERE project = {proj})",
            p,
        )

    def revoke_key(self, key_id: str) -> bool:
        """Mark a key revoked."""
        found = self.get_key(key_id)
        if found is None:
            return False
        key, key_hash = found
        self.insert_rows(
            "api_keys",
            ["key_id", "project", "prefix", "key_hash", "created_at", "revoked", "version"],
            [[key.key_id, key.project, key.prefix, key_hash, key.created_at, 1, self.version()]],
        )
        return True


def _fields(span: Span) -> dict[str, Any]:
    return {c: getattr(span, c) for c in SPAN_COLUMNS}


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
