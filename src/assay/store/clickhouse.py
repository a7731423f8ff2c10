"""The ClickHouse store: the same :class:`~assay.store.Store` on a ClickHouse server, a
cluster, or chDB (ClickHouse in-process) — one SQL dialect, one client library.

``clickhouse://user:pass@host:8123/db`` (``clickhouses://`` for TLS) reaches a server over
HTTP with clickhouse-connect; ``chdb:///path/to/dir`` runs the same SQL in this process
through chDB's clickhouse-connect backend (how the test suite exercises this module with
no server). ``?cluster=NAME`` creates replicated tables and distributed tables over them.

Tables are MergeTree families designed for ClickHouse: spans are a ReplacingMergeTree
partitioned by month and ordered by (project, start_time, trace_id, span_id), so a resent
span collapses onto the stored one and time-range queries of one project read only their
granules; mutable records (projects, keys, runs, queue items, leases …) are
ReplacingMergeTree tables versioned by a write time and read with ``FINAL``.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from assay.store import StoreError

INSTALL = 'pip install "assay[clickhouse]"'
def as_utc_naive(dt: datetime) -> datetime:
    """A datetime as naive UTC for ClickHouse; a naive one already is UTC (as on DuckDB)."""
    return dt if dt.tzinfo is None else dt.astimezone(UTC).replace(tzinfo=None)


class Params:
    """Server-side query parameters: ``p(value, "String")`` returns ``{p0:String}``."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self._n = itertools.count()

    def __call__(self, value: Any, type_: str) -> str:
        name = f"p{next(self._n)}"
        if isinstance(value, datetime):
            value = as_utc_naive(value)
        self.values[name] = value
        return "{" + f"{name}:{type_}" + "}"


TIME = "DateTime64(6, 'UTC')"


def one_of(p: Params, values: Sequence[Any], type_: str = "String") -> str:
    """The right side of ``x IN …`` for a list parameter. A subquery over the array, not
    the array itself: ClickHouse checks every row against a literal array element by
    element (80k ids took 35 s), but builds a hash set from a subquery (0.2 s)."""
    return f"(SELECT arrayJoin({p(list(values), f'Array({type_})')}))"


@dataclass(frozen=True)
class Target:
    """Where a ClickHouse store lives, parsed from its URL."""

    kind: str  # "http" or "chdb"
    database: str
    host: str = ""
    port: int = 8123
    username: str = "default"
    password: str = ""
    secure: bool = False
    path: str = ""
    cluster: str | None = None


def parse_url(url: str) -> Target:
    """``clickhouse[s]://user:pass@host:port/db?cluster=C`` or ``chdb:///dir[?database=db]``."""
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"cluster", "database"}
    if unknown:
        raise StoreError(
            f"store URL {url!r}: unknown option(s) {', '.join(sorted(unknown))}; "
            "use ?cluster=NAME (and ?database=NAME for chdb)"
        )
    if parts.scheme == "chdb":
        path = unquote(parts.path or "")
        if not path:
            raise StoreError(
                f"store URL {url!r} names no directory; use chdb:///absolute/path/to/dir"
            )
        return Target("chdb", query.get("database", "assay"), path=path)
    if parts.scheme not in ("clickhouse", "clickhouses"):
        raise StoreError(f"store URL {url!r} is not clickhouse://, clickhouses:// or chdb://")
    if not parts.hostname:
        raise StoreError(f"store URL {url!r} names no host; e.g. clickhouse://ch-host:8123/assay")
    database = (parts.path or "/").strip("/") or "assay"
    secure = parts.scheme == "clickhouses"
    return Target(
        "http",
        database,
        host=parts.hostname,
        port=parts.port or (8443 if secure else 8123),
        username=unquote(parts.username or "default"),
        password=unquote(parts.password or ""),
        secure=secure,
        cluster=query.get("cluster"),
    )


def connect(target: Target) -> Any:
    """A clickhouse-connect client for ``target`` (the chdb backend for chdb://)."""
    try:
        import clickhouse_connect
    except ImportError:
        raise StoreError(f"the ClickHouse store needs clickhouse-connect: {INSTALL}") from None
    try:
        if target.kind == "chdb":
            try:
                import chdb  # noqa: F401
            except ImportError:
                raise StoreError(
                    f"chdb:// runs ClickHouse in-process with chDB: {INSTALL} chdb"
                ) from None
            return clickhouse_connect.get_client(dsn=f"chdb://{target.path}")
        return clickhouse_connect.get_client(
            host=target.host,
            port=target.port,
            username=target.username,
            password=target.password,
            secure=target.secure,
            # Sessions serialize queries; the store issues them from many threads.
            autogenerate_session_id=False,
            # On a cluster, an insert returns once the shards have it, so the next read
            # (a lease check, a read-modify-write) sees it.
            settings={"distributed_foreground_insert": 1} if target.cluster else None,
            connect_timeout=10,
            send_receive_timeout=300,
        )
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(f"cannot reach ClickHouse ({target.kind}): {exc}") from None


class Schema:
    """Renders table DDL for a single node or a cluster (replicated + distributed)."""

    def __init__(self, database: str, cluster: str | None) -> None:
        self.database = database
        self.cluster = cluster

    def on_cluster(self) -> str:
        """``ON CLUSTER`` clause, when there is a cluster."""
        return f" ON CLUSTER `{self.cluster}`" if self.cluster else ""

    def table(
        self,
        name: str,
        columns: str,
        *,
        engine: str = "ReplacingMergeTree",
        version: str | None = None,
        order_by: str,
        partition_by: str | None = None,
        extra: str = "",
        shard_by: str | None = None,
    ) -> list[str]:
        """``CREATE TABLE`` statements: one table, or a replicated local table plus a
        Distributed table of the same name, so queries never name the local one.

        On a cluster, rows are sharded by ``shard_by``, by default a hash of the sorting
        key: every version of a record lands on one shard, where ``FINAL`` can merge them
        (a random sharding key would scatter versions across shards)."""
        args = version or ""
        local = name
        if self.cluster:
            local = f"{name}_local"
            path = f"'/clickhouse/tables/{{shard}}/{self.database}/{local}', '{{replica}}'"
            args = f"{path}, {version}" if version else path
            engine = f"Replicated{engine}"
        clauses = f"ENGINE = {engine}({args})"
        if partition_by:
            clauses += f" PARTITION BY {partition_by}"
        clauses += f" ORDER BY {order_by} {extra}"
        out = [
            f"CREATE TABLE IF NOT EXISTS `{self.database}`.`{local}`{self.on_cluster()} "
            f"({columns}) {clauses}"
        ]
        if self.cluster:
            out.append(
                f"CREATE TABLE IF NOT EXISTS `{self.database}`.`{name}`{self.on_cluster()} "
                f"AS `{self.database}`.`{local}` ENGINE = Distributed(`{self.cluster}`, "
                f"`{self.database}`, `{local}`, {shard_by or 'cityHash64' + _tuple(order_by)})"
            )
        return out


def _tuple(order_by: str) -> str:
    """A sorting key as an argument list: ``(a, b)`` stays, ``a`` becomes ``(a)``."""
    key = order_by.strip()
    return key if key.startswith("(") else f"({key})"


def _spans_ddl(schema: Schema) -> list[str]:
    return schema.table(
        "spans",
        """
        project LowCardinality(String),
        trace_id String,
        span_id String,
        parent_span_id Nullable(String),
        service LowCardinality(Nullable(String)),
        name String,
        kind LowCardinality(String),
        otel_kind LowCardinality(String),
        start_time DateTime64(6, 'UTC'),
        end_time DateTime64(6, 'UTC'),
        duration_ms Float64,
        status LowCardinality(String),
        status_message Nullable(String),
        operation LowCardinality(Nullable(String)),
        provider LowCardinality(Nullable(String)),
        model LowCardinality(Nullable(String)),
        request_model LowCardinality(Nullable(String)),
        input_tokens Nullable(Int64),
        output_tokens Nullable(Int64),
        cached_input_tokens Nullable(Int64),
        total_tokens Nullable(Int64),
        cost Nullable(Float64),
        input_text Nullable(String),
        output_text Nullable(String),
        input_messages Nullable(String),
        output_messages Nullable(String),
        finish_reason LowCardinality(Nullable(String)),
        session_id Nullable(String),
        user_id Nullable(String),
        release LowCardinality(Nullable(String)),
        route LowCardinality(Nullable(String)),
        environment LowCardinality(Nullable(String)),
        scope Nullable(String),
        attributes String,
        resource_attributes String,
        events String,
        ingested_at DateTime64(6, 'UTC') DEFAULT now64(6),
        INDEX trace_idx trace_id TYPE bloom_filter(0.001) GRANULARITY 1,
        INDEX input_idx lower(coalesce(input_text, '')) TYPE ngrambf_v1(3, 65536, 2, 0)
            GRANULARITY 1,
        INDEX output_idx lower(coalesce(output_text, '')) TYPE ngrambf_v1(3, 65536, 2, 0)
            GRANULARITY 1
        """,
        version="ingested_at",
        partition_by="toYYYYMM(start_time)",
        order_by="(project, start_time, trace_id, span_id)",
        # A trace lives on one shard: get_trace and the duplicate check read one shard's
        # granules, and a resent span meets its first copy there.
        shard_by="cityHash64(project, trace_id)",
    )


def _base_migrations(schema: Schema) -> list[tuple[str, list[str]]]:
    from assay.store.clickhouse_leases import leases_ddl

    return [
        ("m001_spans", _spans_ddl(schema)),
        (
            "m002_projects_and_keys",
            schema.table(
                "projects",
                "name String, created_at DateTime64(6, 'UTC')",
                version="created_at",
                order_by="name",
                # The first creation wins: a later create of the same project changes nothing.
            )
            + schema.table(
                "api_keys",
                """key_id String, project String, prefix String, key_hash String,
                created_at DateTime64(6, 'UTC'), revoked UInt8, version UInt64""",
                version="version",
                order_by="key_id",
            ),
        ),
        ("m005_leases", leases_ddl(schema)),
        (
            "m011_retention",
            schema.table(
                "retention",
                "project String, days Nullable(Float64), version UInt64",
                version="version",
                order_by="project",
            ),
        ),
        (
            "m010_meta",
            schema.table(
                "meta",
                "key String, value String, version UInt64",
                version="version",
                order_by="key",
            ),
        ),
    ]


class ClickHouseBase:
    """Connection, migrations and query helpers shared by the ClickHouse table mixins."""

    #: Extra migrations contributed by table mixins: (name, DDL builder).
    MIXIN_MIGRATIONS: tuple[tuple[str, Any], ...] = ()

    def __init__(self, url: str, client: Any | None = None) -> None:
        self.url = url
        self.target = parse_url(url)
        self.database = self.target.database
        self.schema = Schema(self.database, self.target.cluster)
        self._client = client if client is not None else connect(self.target)
        self._write_lock = threading.Lock()
        self._closed = False
        self._migrate()

    # -- plumbing -------------------------------------------------------------------

    def q(self, sql: str, params: Params | dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of a query (``{db}`` in the SQL is this store's database)."""
        values = params.values if isinstance(params, Params) else (params or {})
        try:
            result = self._client.query(sql.replace("{db}", f"`{self.database}`"), values)
        except Exception as exc:
            raise StoreError(f"ClickHouse query failed: {exc}") from None
        return [tuple(r) for r in result.result_rows]

    def cmd(self, sql: str, params: Params | dict[str, Any] | None = None) -> None:
        """Run a statement that returns nothing."""
        values = params.values if isinstance(params, Params) else (params or {})
        try:
            self._client.command(sql.replace("{db}", f"`{self.database}`"), values or None)
        except Exception as exc:
            raise StoreError(f"ClickHouse statement failed: {exc}") from None

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Insert Python rows (datetimes are stored as UTC)."""
        if not rows:
            return
        fixed = [[as_utc_naive(v) if isinstance(v, datetime) else v for v in r] for r in rows]
        try:
            self._client.insert(table, fixed, column_names=list(columns), database=self.database)
        except Exception as exc:
            raise StoreError(f"ClickHouse insert into {table} failed: {exc}") from None

    @staticmethod
    def version() -> int:
        """A monotonically growing version for ReplacingMergeTree rows (nanoseconds)."""
        return time.time_ns()

    def _migrate(self) -> None:
        on = self.schema.on_cluster()
        self.cmd(f"CREATE DATABASE IF NOT EXISTS `{self.database}`{on}")
        for ddl in self.schema.table(
            "assay_migrations",
            "name String, applied_at DateTime64(6, 'UTC') DEFAULT now64(6)",
            engine="ReplacingMergeTree",
            version="applied_at",
            order_by="name",
        ):
            self.cmd(ddl)
        done = {r[0] for r in self.q("SELECT name FROM {db}.assay_migrations FINAL")}
        steps = _base_migrations(self.schema) + [
            (name, build(self.schema)) for name, build in self.MIXIN_MIGRATIONS
        ]
        for name, statements in sorted(steps, key=lambda s: s[0]):
            if name in done:
                continue
            # DDL is IF NOT EXISTS: a migration interrupted half-way is simply re-run.
            for ddl in statements:
                self.cmd(ddl)
            self.insert_rows("assay_migrations", ["name"], [[name]])

    def applied_migrations(self) -> list[str]:
        """Names of the migrations this database has applied, in order."""
        rows = self.q("SELECT name FROM {db}.assay_migrations FINAL ORDER BY applied_at, name")
        return [r[0] for r in rows]

    def get_meta(self, key: str) -> str | None:
        """A database-level fact, or None when unset."""
        p = Params()
        rows = self.q(f"SELECT value FROM {{db}}.meta FINAL WHERE key = {p(key, 'String')}", p)
        return None if not rows else str(rows[0][0])

    def set_meta(self, key: str, value: str) -> None:
        """Set a database-level fact (replacing any previous value)."""
        self.insert_rows("meta", ["key", "value", "version"], [[key, value, self.version()]])

    # -- whole-table access for `assay store migrate` (assay.store.transfer) ----------

    def _engines(self) -> dict[str, str]:
        p = Params()
        rows = self.q(
            f"SELECT name, engine FROM system.tables WHERE database = {p(self.database, 'String')}",
            p,
        )
        return {r[0]: r[1] for r in rows}

    #: Tables whose rows live in other tables' rows (a record's state kept apart from its
    #: definition): they travel with that table's portable view, not on their own.
    TRANSFER_PARTS: frozenset[str] = frozenset()

    def transfer_tables(self) -> list[str]:
        """Names of the tables (a cluster's distributed tables, not their local parts)."""
        return sorted(
            n for n in self._engines() if not n.endswith("_local") and n not in self.TRANSFER_PARTS
        )

    def transfer_view(self, table: str) -> tuple[dict[str, str], str] | None:
        """For a table stored differently here than its portable form (the DuckDB
        schema): the portable columns with their types, and a SELECT producing them.
        None: the table is its own portable form. Mixins override and call super()."""
        return None

    def transfer_write(self, table: str, data: Any) -> bool:
        """Write portable rows of a table stored differently here; False: not such a
        table, write it as it is. Mixins override and call super()."""
        return False

    def transfer_columns(self, table: str) -> dict[str, str]:
        """Column name -> ClickHouse type, in table order (the portable form's columns
        for a table with a :meth:`transfer_view`)."""
        view = self.transfer_view(table)
        if view is not None:
            return view[0]
        p = Params()
        rows = self.q(
            f"SELECT name, type FROM system.columns WHERE database = {p(self.database, 'String')}"
            f" AND table = {p(table, 'String')} ORDER BY position",
            p,
        )
        return {r[0]: r[1] for r in rows}

    def _final(self, table: str) -> str:
        """`` FINAL`` for a versioned table, plus ``WHERE deleted = 0`` where rows carry a
        tombstone (a deleted record is not data to copy or count)."""
        engines = self._engines()
        engine = engines.get(f"{table}_local", engines.get(table, ""))
        final = " FINAL" if "Replacing" in engine else ""
        p = Params()
        has_deleted = self.q(
            f"SELECT count() FROM system.columns WHERE database = {p(self.database, 'String')}"
            f" AND table = {p(table, 'String')} AND name = 'deleted'",
            p,
        )[0][0]
        return final + (" WHERE deleted = 0" if has_deleted else "")

    def read_batches(
        self, table: str, columns: list[str], rows: int, where: str = ""
    ) -> Iterator[Any]:
        """The rows of ``table`` as Arrow tables (strings as strings, latest versions)."""
        cols = ", ".join(f"`{c}`" for c in columns)
        view = self.transfer_view(table)
        source = (
            f"({view[1]})" if view is not None
            else f"`{self.database}`.`{table}`{self._final(table)}"
        )  # fmt: skip
        sql = f"SELECT {cols} FROM {source}"
        if where:
            sql += (" AND " if " WHERE " in source else " WHERE ") + where
        import pyarrow as pa

        try:
            with self._client.query_arrow_stream(
                sql, settings={"output_format_arrow_string_as_string": 1}
            ) as stream:
                for batch in stream:
                    yield pa.Table.from_batches([batch])
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"reading {table} from ClickHouse failed: {exc}") from None

    def span_months(self) -> list[str]:
        """``YYYY-MM`` of every month that has spans."""
        rows = self.q(
            "SELECT DISTINCT formatDateTime(start_time, '%Y-%m') AS m FROM {db}.spans ORDER BY m"
        )
        return [r[0] for r in rows]

    def write_table(self, table: str, data: Any) -> None:
        """Write rows; versioned tables get a version newer than anything stored."""
        if table == "spans":
            self.insert_arrow(data)  # type: ignore[attr-defined]
            return
        if self.transfer_write(table, data):
            return
        self.insert_versioned(table, data, self.transfer_columns(table))

    def insert_versioned(self, table: str, data: Any, columns: Collection[str]) -> None:
        """Insert an Arrow table, stamped with a new version when ``table`` (whose columns
        are ``columns``) is versioned and ``data`` carries none."""
        import pyarrow as pa

        if "version" in columns and "version" not in data.column_names:
            data = data.append_column(
                "version", pa.array([self.version()] * data.num_rows, type=pa.uint64())
            )
        try:
            self._client.insert_arrow(table, data, database=self.database)
        except Exception as exc:
            raise StoreError(f"writing {table} to ClickHouse failed: {exc}") from None

    def count_rows(self, table: str) -> int:
        """Rows in ``table`` after deduplication (of its portable view, if it has one)."""
        view = self.transfer_view(table)
        if view is not None:
            rows = self.q(f"SELECT count() FROM ({view[1]})")
            return int(rows[0][0]) if rows else 0
        rows = self.q(f"SELECT count() FROM `{self.database}`.`{table}`{self._final(table)}")
        return int(rows[0][0]) if rows else 0

    def close(self) -> None:
        """Release the connection (for chDB, the in-process engine)."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                self._client.close()


