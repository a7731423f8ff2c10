"""The embedded default store: one DuckDB file, one writing process."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from assay.batch import spans_to_arrow
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
from assay.store import StoreError, StoreLockedError
from assay.store.duckdb_calibration import CalibrationTables
from assay.store.duckdb_drift import DriftTables
from assay.store.duckdb_evals import EvalTables
from assay.store.duckdb_feedback import FeedbackTables
from assay.store.duckdb_monitors import MonitorTables
from assay.store.duckdb_online import OnlineTables
from assay.store.duckdb_queues import QueueTables
from assay.store.duckdb_text import TextIndex, stop
from assay.store.migrations import MIGRATIONS
from assay.store.rows import span_from_row as _span_from_row
from assay.store.rows import utc as _utc

_SPAN_SELECT = ", ".join(SPAN_COLUMNS)
#: Rows per row group for data this store writes (DuckDB's default is 122,880). A
#: checkpoint compresses whole row groups in memory, so with ~1 KB of text per span the
#: default size costs ~250 MB of transient memory per checkpoint; 8,192 cut the server's
#: peak RSS under ingest by ~160 MB and raised throughput (docs/performance.md).
DEFAULT_ROW_GROUP_SIZE = 8192
#: The catalog name the database file is attached under; every cursor ``USE``s it.
_CATALOG = "assay_db"


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _where(
    flt: SpanFilter, narrow: Callable[[SpanFilter], str | None] | None = None
) -> tuple[str, list[Any]]:
    """SQL conditions and parameters for a span filter; with ``narrow`` (the store's text
    index) a text search first skips the blocks that cannot match."""
    clauses = ["project = ?"]
    params: list[Any] = [flt.project]
    if flt.start is not None:
        clauses.append("start_time >= ?")
        params.append(flt.start)
    if flt.end is not None:
        clauses.append("start_time < ?")
        params.append(flt.end)
    for column in EQUALITY_FIELDS:
        value = getattr(flt, column)
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if flt.min_duration_ms is not None:
        clauses.append("duration_ms >= ?")
        params.append(flt.min_duration_ms)
    if flt.min_cost is not None:
        clauses.append("cost >= ?")
        params.append(flt.min_cost)
    if flt.text:
        if any(c in flt.text for c in "%_\\"):
            pattern = _like_pattern(flt.text)
            clauses.append("(input_text ILIKE ? ESCAPE '\\' OR output_text ILIKE ? ESCAPE '\\')")
        else:
            # Without ESCAPE DuckDB takes its fast ILIKE path (about 2x on a full scan).
            pattern = f"%{flt.text}%"
            clauses.append("(input_text ILIKE ? OR output_text ILIKE ?)")
        params += [pattern, pattern]
        narrowed = narrow(flt) if narrow is not None else None
        if narrowed:
            clauses.append(narrowed)
    for key, value in flt.attributes.items():
        clauses.append("json_extract_string(attributes, ?) = ?")
        params += ['$."' + key.replace('"', '\\"') + '"', value]
    return " AND ".join(clauses), params


class DuckDBStore(
    EvalTables,
    DriftTables,
    MonitorTables,
    FeedbackTables,
    CalibrationTables,
    QueueTables,
    OnlineTables,
):
    """:class:`assay.store.Store` on one DuckDB file (or ``:memory:``)."""

    sketches_text = True

    def __init__(
        self,
        path: str,
        read_only: bool = False,
        memory_limit: str | None = None,
        threads: int = 0,
        checkpoint_threshold: str | None = None,
        row_group_size: int = DEFAULT_ROW_GROUP_SIZE,
    ) -> None:
        self.path = path
        config: dict[str, Any] = {}
        if memory_limit:
            config["memory_limit"] = memory_limit
        if checkpoint_threshold:
            config["checkpoint_threshold"] = checkpoint_threshold
        if threads:
            config["threads"] = threads
        # The row group size is an ATTACH option (not a connect setting and not stored in
        # the file), so the file is attached to an in-memory instance and made current.
        options = f"ROW_GROUP_SIZE {int(row_group_size)}" + (", READ_ONLY" if read_only else "")
        self._con = duckdb.connect(":memory:", config=config)
        try:
            quoted = path.replace("'", "''")
            self._con.execute(f"ATTACH '{quoted}' AS {_CATALOG} ({options})")
            self._con.execute(f"USE {_CATALOG}")
        except duckdb.Error as exc:
            self._con.close()
            if isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower():
                raise StoreLockedError(
                    f"database {path!r} is held by another process (usually `assay serve`). "
                    "Use the CLI against that server (it finds it at ASSAY_URL), or stop it "
                    "to open the file directly."
                ) from None
            raise StoreError(f"cannot open database {path!r}: {exc}") from None
        # GLOBAL: every cursor (one per call) inherits it, so no per-call SET.
        self._con.execute("SET GLOBAL TimeZone = 'UTC'")
        self._write_lock = threading.Lock()
        if not read_only:
            self._migrate()
        self._text: TextIndex | None = None
        try:
            self._text = TextIndex(self._cursor, self._write_lock, read_only)
        except duckdb.Error:  # a read-only file from before the index: searches scan
            self._text = None

    # -- plumbing -----------------------------------------------------------------

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cur = self._con.cursor()
        cur.execute(f"USE {_CATALOG}")  # a new cursor starts in the in-memory catalog
        return cur

    def _narrow(self, flt: SpanFilter) -> str | None:
        return self._text.condition(self._cursor(), flt) if self._text is not None else None

    def wait_text_index(self, timeout: float = 30.0) -> bool:
        """Wait until the text index covers every stored span (benchmarks, tests)."""
        return self._text.wait(timeout) if self._text is not None else True

    def _migrate(self) -> None:
        con = self._con
        con.execute(
            "CREATE TABLE IF NOT EXISTS assay_migrations (name VARCHAR PRIMARY KEY, "
            "applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
        )
        done = {r[0] for r in con.execute("SELECT name FROM assay_migrations").fetchall()}
        for name, fn in MIGRATIONS:
            if name in done:
                continue
            con.execute("BEGIN")
            try:
                fn(con)
                con.execute("INSERT INTO assay_migrations (name) VALUES (?)", [name])
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise

    def applied_migrations(self) -> list[str]:
        """Names of the migrations this database has applied, in order."""
        cur = self._cursor()
        rows = cur.execute("SELECT name FROM assay_migrations ORDER BY applied_at, name").fetchall()
        return [r[0] for r in rows]

    def get_meta(self, key: str) -> str | None:
        """A database-level fact, or None when unset."""
        try:
            row = self._cursor().execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        except duckdb.CatalogException:
            # A read-only open of a file made before m010 has no meta table: nothing is set.
            return None
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Set a database-level fact (replacing any previous value)."""
        with self._write_lock:
            self._cursor().execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [key, value]
            )

    def close(self) -> None:
        """Finish sketching what is written, checkpoint and release the file."""
        stop(self._text)
        with contextlib.suppress(duckdb.Error):
            self._con.close()

    # -- whole-table access for `assay store migrate` (assay.store.transfer) ----------

    def transfer_tables(self) -> list[str]:
        """Names of the tables in this database."""
        rows = self._cursor().execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
            "AND table_catalog = current_database() "
            "ORDER BY table_name"
        ).fetchall()
        return [r[0] for r in rows]

    def transfer_columns(self, table: str) -> dict[str, str]:
        """Column name -> DuckDB type, in table order."""
        rows = self._cursor().execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main' AND table_catalog = current_database() "
            "AND table_name = ? ORDER BY ordinal_position",
            [table],
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    def read_batches(
        self, table: str, columns: list[str], rows: int, where: str = ""
    ) -> Iterator[pa.Table]:
        """The rows of ``table`` in Arrow batches of about ``rows``."""
        cols = ", ".join(f'"{c}"' for c in columns)
        sql = f'SELECT {cols} FROM "{table}"' + (f" WHERE {where}" if where else "")
        reader = self._cursor().sql(sql).to_arrow_reader(rows)
        for batch in reader:
            yield pa.Table.from_batches([batch])

    def span_months(self) -> list[str]:
        """``YYYY-MM`` of every month that has spans."""
        rows = self._cursor().execute(
            "SELECT DISTINCT strftime(start_time, '%Y-%m') AS m FROM spans ORDER BY m"
        ).fetchall()
        return [r[0] for r in rows]

    def write_table(self, table: str, data: pa.Table) -> None:
        """Upsert rows by primary key (spans already stored are kept as they are)."""
        if table == "spans":
            self.insert_arrow(data)
            return
        cols = ", ".join(f'"{c}"' for c in data.column_names)
        row = self._cursor().execute(
            "SELECT constraint_column_names FROM duckdb_constraints() "
            "WHERE database_name = current_database() AND table_name = ? "
            "AND constraint_type = 'PRIMARY KEY'",
            [table],
        ).fetchone()
        key = list(row[0]) if row else []
        rest = [c for c in data.column_names if c not in key]
        # The primary key names the conflict: a table may have other UNIQUE constraints.
        action = (
            "UPDATE SET " + ", ".join(f'"{c}" = excluded."{c}"' for c in rest)
            if rest
            else "NOTHING"
        )
        upsert = f" ON CONFLICT ({', '.join(key)}) DO {action}" if key else ""
        with self._write_lock:
            cur = self._cursor()
            cur.register("assay_transfer", data)
            try:
                cur.execute(
                    f'INSERT INTO "{table}" ({cols}) SELECT {cols} FROM assay_transfer{upsert}'
                )
            finally:
                cur.unregister("assay_transfer")
                cur.close()

    def count_rows(self, table: str) -> int:
        """Rows in ``table``."""
        row = self._cursor().execute(f'SELECT count(*) FROM "{table}"').fetchone()
        return int(row[0]) if row else 0

    # -- spans ----------------------------------------------------------------------

    def insert_spans(self, spans: Sequence[Span]) -> int:
        """Insert spans in one transaction; duplicates of stored spans are ignored."""
        if not spans:
            return 0
        return self.insert_arrow(spans_to_arrow(spans))

    def insert_arrow(self, table: pa.Table) -> int:
        """Insert a table in :data:`assay.batch.SCHEMA` in one transaction; rows whose key
        is already stored (or repeated within the table) are ignored. Returns rows added."""
        if table.num_rows == 0:
            return 0
        # A store copy carries each span's ingested_at: online rules' watermarks depend on it.
        cols = _SPAN_SELECT + (", ingested_at" if "ingested_at" in table.column_names else "")
        with self._write_lock:
            blocks = None
            if self._text is not None:
                table, blocks = self._text.number(table)
                cols += ", text_block"
            cur = self._cursor()
            cur.register("assay_batch", table)
            try:
                result = cur.execute(
                    f"INSERT OR IGNORE INTO spans ({cols}) SELECT {cols} FROM assay_batch"
                ).fetchall()[0]
            except BaseException:
                if self._text is not None and blocks is not None:
                    self._text.abandoned(blocks)
                raise
            finally:
                cur.close()
        if self._text is not None and blocks is not None:
            self._text.written(table, blocks)
        return int(result[0]) if result else 0

    def count_spans(self, project: str | None = None) -> int:
        """Number of stored spans."""
        cur = self._cursor()
        if project is None:
            row = cur.execute("SELECT count(*) FROM spans").fetchone()
        else:
            row = cur.execute("SELECT count(*) FROM spans WHERE project = ?", [project]).fetchone()
        return int(row[0]) if row else 0

    def list_spans(self, flt: SpanFilter, limit: int, cursor: str | None) -> Page[Span]:
        """Spans newest first, keyset-paginated on (start_time, trace_id, span_id)."""
        where, params = _where(flt, self._narrow)
        if cursor:
            ts, tid, sid = decode_cursor(cursor, 3)
            where += " AND (start_time, trace_id, span_id) < (?, ?, ?)"
            params += [cursor_time(ts), str(tid), str(sid)]
        cur = self._cursor()
        rows = cur.execute(
            f"SELECT {_SPAN_SELECT} FROM spans WHERE {where} "
            "ORDER BY start_time DESC, trace_id DESC, span_id DESC LIMIT ?",
            [*params, limit + 1],
        ).fetchall()
        spans = [_span_from_row(r) for r in rows[:limit]]
        nxt = None
        if len(rows) > limit:
            last = spans[-1]
            nxt = encode_cursor(last.start_time.isoformat(), last.trace_id, last.span_id)
        return Page(spans, nxt)

    def list_traces(self, flt: SpanFilter, limit: int, cursor: str | None) -> Page[TraceSummary]:
        """Traces with a matching span, newest first, keyset-paginated."""
        where, params = _where(flt, self._narrow)
        after: tuple[datetime, str] | None = None
        if cursor:
            ts, tid = decode_cursor(cursor, 2)
            after = (cursor_time(ts), str(tid))
        cur = self._cursor()
        ids = self._newest_traces(cur, where, params, after, limit + 1)
        page_ids = ids[:limit]
        order = {tid: i for i, (tid, _) in enumerate(page_ids)}
        summaries: list[TraceSummary] = []
        if page_ids:
            rows = cur.execute(
                """
                SELECT trace_id,
                       coalesce(arg_min(name, start_time) FILTER (WHERE parent_span_id IS NULL),
                                arg_min(name, start_time)),
                       coalesce(arg_min(service, start_time) FILTER (WHERE parent_span_id IS NULL),
                                arg_min(service, start_time)),
                       min(start_time),
                       (epoch_us(max(end_time)) - epoch_us(min(start_time))) / 1000.0,
                       count(*),
                       count(*) FILTER (WHERE status = 'error'),
                       sum(input_tokens), sum(output_tokens), sum(cost),
                       list(DISTINCT model ORDER BY model) FILTER (WHERE model IS NOT NULL)
                FROM spans WHERE project = ? AND trace_id IN (SELECT unnest(?))
                GROUP BY trace_id
                """,
                [flt.project, [t for t, _ in page_ids]],
            ).fetchall()
            for r in sorted(rows, key=lambda r: order[r[0]]):
                summaries.append(
                    TraceSummary(
                        project=flt.project,
                        trace_id=r[0],
                        name=r[1],
                        service=r[2],
                        start_time=_utc(r[3]) or datetime.now(UTC),
                        duration_ms=float(r[4]),
                        span_count=int(r[5]),
                        error_count=int(r[6]),
                        input_tokens=None if r[7] is None else int(r[7]),
                        output_tokens=None if r[8] is None else int(r[8]),
                        cost=r[9],
                        models=list(r[10] or []),
                    )
                )
        nxt = None
        if len(ids) > limit:
            tid, ts = page_ids[-1]
            nxt = encode_cursor(_utc(ts).isoformat() if ts else "", tid)  # type: ignore[union-attr]
        return Page(summaries, nxt)

    #: A trace list first looks among this many newest matching spans per trace wanted.
    TRACE_WINDOW = 8

    def _newest_traces(
        self,
        cur: duckdb.DuckDBPyConnection,
        where: str,
        params: list[Any],
        after: tuple[datetime, str] | None,
        n: int,
    ) -> list[tuple[str, datetime]]:
        """The ``n`` newest traces by their first matching span, as (trace_id, start),
        older than ``after`` when paging.

        Grouping every matching span by trace is a hash aggregate over the whole project
        (~200-300 ms at 5M spans). Instead take ``c``, the start of the k-th newest
        matching span: a trace that starts at or after ``c`` has all its matching spans
        there, so grouping only those spans gives its true start, and a trace found there
        that also has a matching span before ``c`` started earlier and is dropped. When
        ``n`` traces remain they are exactly the newest ``n``; else the window grows, and
        after three tries the whole project is grouped.
        """
        having = "HAVING (min(start_time), trace_id) < (?, ?)" if after else ""
        hparams: list[Any] = list(after) if after else []
        bound = " AND start_time <= ?" if after else ""
        bparams: list[Any] = [after[0]] if after else []
        k = n * self.TRACE_WINDOW
        for _ in range(3):
            row = cur.execute(
                f"SELECT start_time FROM spans WHERE {where}{bound} "
                "ORDER BY start_time DESC LIMIT 1 OFFSET ?",
                [*params, *bparams, k - 1],
            ).fetchall()
            if not row:
                break  # fewer than k matching spans: grouping them all is cheap
            c = row[0][0]
            found = cur.execute(
                f"SELECT trace_id, min(start_time) AS s FROM spans "
                f"WHERE {where} AND start_time >= ? GROUP BY trace_id {having} "
                "ORDER BY s DESC, trace_id DESC",
                [*params, c, *hparams],
            ).fetchall()
            if len(found) >= n:
                earlier = {
                    r[0]
                    for r in cur.execute(
                        f"SELECT DISTINCT trace_id FROM spans WHERE {where} "
                        "AND start_time < ? AND trace_id IN (SELECT unnest(?))",
                        [*params, c, [t for t, _ in found]],
                    ).fetchall()
                }
                whole = [(t, s) for t, s in found if t not in earlier]
                if len(whole) >= n:
                    return whole[:n]
            k *= 8
        return [
            (r[0], r[1])
            for r in cur.execute(
                f"SELECT trace_id, min(start_time) AS s FROM spans WHERE {where} "
                f"GROUP BY trace_id {having} ORDER BY s DESC, trace_id DESC LIMIT ?",
                [*params, *hparams, n],
            ).fetchall()
        ]

    def get_trace(self, project: str, trace_id: str) -> list[Span]:
        """All spans of a trace, in start order."""
        cur = self._cursor()
        rows = cur.execute(
            f"SELECT {_SPAN_SELECT} FROM spans WHERE project = ? AND trace_id = ? "
            "ORDER BY start_time, span_id",
            [project, trace_id],
        ).fetchall()
        return [_span_from_row(r) for r in rows]

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
        where, params = _where(flt, self._narrow)
        bucket_sql = "NULL::TIMESTAMP"
        if bucket is not None:
            micros = int(bucket / timedelta(microseconds=1))
            bucket_sql = (
                f"time_bucket(to_microseconds({micros}), start_time, TIMESTAMP '2000-01-01')"
            )
        group_sql = "NULL::VARCHAR" if group_by is None else f"CAST({group_by} AS VARCHAR)"
        grouping = "GROUP BY b, g"
        levels = "1, 1"
        if rollup:
            # GROUPING() tells a rolled-up row from a group whose value is NULL.
            sets = ["()"]
            if bucket is not None:
                sets.append("(b)")
            if group_by is not None:
                sets.append("(g)")
            if bucket is not None and group_by is not None:
                sets.append("(b, g)")
            grouping = f"GROUP BY GROUPING SETS ({', '.join(sets)})"
            levels = ", ".join(
                f"GROUPING({col}) = 0" if used else "false"
                for col, used in (("b", bucket is not None), ("g", group_by is not None))
            )
        cur = self._cursor()
        rows = cur.execute(
            f"""
            SELECT {bucket_sql} AS b, {group_sql} AS g, {levels},
                   count(*),
                   count(*) FILTER (WHERE status = 'error'),
                   quantile_cont(duration_ms, [0.5, 0.95, 0.99]),
                   coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),
                   coalesce(sum(cost), 0),
                   count(*) FILTER (WHERE cost IS NULL AND model IS NOT NULL
                                    AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL))
            FROM spans WHERE {where}
            {grouping} ORDER BY b NULLS FIRST, g NULLS FIRST
            """,
            params,
        ).fetchall()
        out = []
        for b, g, by_b, by_g, calls, errors, q, tin, tout, cost, unpriced in rows:
            q = q or [None, None, None]
            agg = Aggregate(
                bucket=_utc(b),
                group=g,
                calls=int(calls),
                errors=int(errors),
                error_rate=errors / calls if calls else 0.0,
                p50_ms=q[0],
                p95_ms=q[1],
                p99_ms=q[2],
                input_tokens=int(tin),
                output_tokens=int(tout),
                cost=float(cost),
                unpriced_calls=int(unpriced),
            )
            out.append((bool(by_b), bool(by_g), agg))
        return out

    def unpriced_models(self, flt: SpanFilter) -> list[UnpricedModel]:
        """Models with token counts but no cost, most spans first."""
        where, params = _where(flt, self._narrow)
        cur = self._cursor()
        rows = cur.execute(
            f"""
            SELECT model, any_value(provider), count(*), coalesce(sum(input_tokens), 0),
                   coalesce(sum(output_tokens), 0), max(start_time)
            FROM spans
            WHERE {where} AND model IS NOT NULL AND cost IS NULL
              AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL)
            GROUP BY model ORDER BY count(*) DESC, model
            """,
            params,
        ).fetchall()
        return [
            UnpricedModel(
                model=r[0],
                provider=r[1],
                spans=int(r[2]),
                input_tokens=int(r[3]),
                output_tokens=int(r[4]),
                last_seen=_utc(r[5]) or datetime.now(UTC),
            )
            for r in rows
        ]

    def reprice(self, prices: PriceTable) -> int:
        """Fill the cost of unpriced spans whose model the table now knows."""
        cur = self._cursor()
        models = [
            r[0]
            for r in cur.execute(
                "SELECT DISTINCT model FROM spans WHERE cost IS NULL AND model IS NOT NULL "
                "AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL)"
            ).fetchall()
        ]
        updated = 0
        with self._write_lock:
            for model in models:
                p = prices.price(model)
                if p is None:
                    continue
                row = cur.execute(
                    """
                    UPDATE spans SET cost = (
                        (coalesce(input_tokens, 0)
                           - least(coalesce(cached_input_tokens, 0), coalesce(input_tokens, 0))) * ?
                        + least(coalesce(cached_input_tokens, 0), coalesce(input_tokens, 0)) * ?
                        + coalesce(output_tokens, 0) * ?) / 1e6
                    WHERE model = ? AND cost IS NULL
                      AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL)
                    """,
                    [p.input, p.cached_rate, p.output, model],
                ).fetchone()
                updated += int(row[0]) if row else 0
        return updated

    # -- projects and keys ------------------------------------------------------------

    def create_project(self, name: str) -> Project:
        """Create a project if it does not exist; return it."""
        cur = self._cursor()
        cur.execute(
            "INSERT OR IGNORE INTO projects (name, created_at) VALUES (?, ?)",
            [name, datetime.now(UTC)],
        )
        row = cur.execute("SELECT name, created_at FROM projects WHERE name = ?", [name]).fetchone()
        assert row is not None
        return Project(row[0], _utc(row[1]) or datetime.now(UTC))

    def list_projects(self) -> list[Project]:
        """Every project, oldest first."""
        cur = self._cursor()
        rows = cur.execute("SELECT name, created_at FROM projects ORDER BY created_at").fetchall()
        return [Project(r[0], _utc(r[1]) or datetime.now(UTC)) for r in rows]

    def add_key(self, key: ApiKey, key_hash: str) -> None:
        """Store a key's hash and public record."""
        self._cursor().execute(
            "INSERT INTO api_keys (key_id, project, prefix, key_hash, created_at, revoked) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [key.key_id, key.project, key.prefix, key_hash, key.created_at, key.revoked],
        )

    def get_key(self, key_id: str) -> tuple[ApiKey, str] | None:
        """A key's record and hash."""
        row = (
            self._cursor()
            .execute(
                "SELECT key_id, project, prefix, created_at, revoked, key_hash FROM api_keys "
                "WHERE key_id = ?",
                [key_id],
            )
            .fetchone()
        )
        if row is None:
            return None
        key = ApiKey(row[0], row[1], row[2], _utc(row[3]) or datetime.now(UTC), bool(row[4]))
        return key, str(row[5])

    def list_keys(self, project: str | None = None) -> list[ApiKey]:
        """Public records of keys."""
        sql = "SELECT key_id, project, prefix, created_at, revoked FROM api_keys"
        params: list[Any] = []
        if project is not None:
            sql += " WHERE project = ?"
            params.append(project)
        rows = self._cursor().execute(sql + " ORDER BY created_at", params).fetchall()
        return [ApiKey(r[0], r[1], r[2], _utc(r[3]) or datetime.now(UTC), bool(r[4])) for r in rows]

    def set_retention(self, project: str, days: float | None) -> None:
        """Keep ``project``'s spans for ``days`` (None: forever)."""
        with self._write_lock:
            cur = self._cursor()
            if days is None:
                cur.execute("DELETE FROM retention WHERE project = ?", [project])
            else:
                cur.execute(
                    "INSERT OR REPLACE INTO retention (project, days, updated_at) VALUES (?, ?, ?)",
                    [project, float(days), datetime.now(UTC)],
                )

    def retention(self) -> dict[str, float]:
        """Projects with a retention period."""
        rows = self._cursor().execute("SELECT project, days FROM retention").fetchall()
        return {r[0]: float(r[1]) for r in rows}

    def delete_spans_before(self, project: str, before: datetime) -> int:
        """Delete old spans of one project, and embeddings of spans that are gone."""
        with self._write_lock:
            cur = self._cursor()
            row = cur.execute(
                "DELETE FROM spans WHERE project = ? AND start_time < ?", [project, before]
            ).fetchone()
            deleted = int(row[0]) if row else 0
            # A block is dropped once all of its spans are past the cutoff (a partly
            # deleted block only makes the index point at fewer rows).
            cur.execute(
                "DELETE FROM span_text_blocks WHERE project = ? AND max_start < ?",
                [project, before],
            )
            if deleted:
                cur.execute(
                    "DELETE FROM embeddings e WHERE e.project = ? AND NOT EXISTS (SELECT 1 "
                    "FROM spans s WHERE s.project = e.project AND s.trace_id = e.trace_id "
                    "AND s.span_id = e.span_id)",
                    [project],
                )
        return deleted

    def revoke_key(self, key_id: str) -> bool:
        """Mark a key revoked."""
        row = (
            self._cursor()
            .execute("UPDATE api_keys SET revoked = true WHERE key_id = ?", [key_id])
            .fetchone()
        )
        return bool(row and row[0])
