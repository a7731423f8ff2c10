"""Copy a whole store to another backend (``assay store migrate``): DuckDB to ClickHouse
and back, resumable, with row counts verified at the end.

Both backends hold the same tables with the same column names (the schema is one
design, rendered twice). The copy goes table by table in Arrow batches; spans go month by
month. Every finished table (and month of spans) is recorded in the destination's
``meta`` under ``transfer/…``, so a copy that was interrupted starts again where it
stopped; writes are idempotent on both backends (keys are upserted, spans deduplicated),
so the part that was in flight is simply written again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, cast

import pyarrow as pa
import pyarrow.compute as pc

from assay.store import Store, StoreError, redact

#: Tables in copy order (parents before children); the rest follow alphabetically.
ORDER = (
    "projects",
    "api_keys",
    "meta",
    "golden_sets",
    "golden_cases",
    "eval_runs",
    "eval_trials",
    "eval_scores",
    "monitors",
    "monitor_results",
    "monitor_alerts",
    "feedback",
    "queues",
    "queue_items",
    "judge_calibrators",
    "online_rules",
    "embeddings",
    "spans",
)
#: Bookkeeping that is not data: migrations are the destination's own; leases are
#: in-flight claims that mean nothing to another database; DuckDB's text index is derived
#: from the spans and rebuilt as they are written.
SKIP = frozenset({"assay_migrations", "leases", "span_text_blocks"})
#: Columns a backend adds for its own bookkeeping (row versions, tombstones, text index).
INTERNAL = frozenset({"version", "deleted", "text_block"})


class TableIO(Protocol):
    """What a backend offers the copy: its tables as Arrow, and idempotent writes."""

    def transfer_tables(self) -> list[str]:
        """Names of the data tables."""
        ...

    def transfer_columns(self, table: str) -> dict[str, str]:
        """Column name -> backend type, in table order."""
        ...

    def read_batches(
        self, table: str, columns: list[str], rows: int, where: str = ""
    ) -> Iterator[pa.Table]:
        """The table's rows (``where`` is a condition on span ``start_time``)."""
        ...

    def span_months(self) -> list[str]:
        """``YYYY-MM`` of every month that has spans, oldest first."""
        ...

    def write_table(self, table: str, data: pa.Table) -> None:
        """Upsert rows by the table's key (spans: skip ones already stored)."""
        ...

    def count_rows(self, table: str) -> int:
        """Logical rows (after deduplication)."""
        ...


@dataclass
class TableReport:
    """One table's outcome."""

    table: str
    source_rows: int
    destination_rows: int
    copied_rows: int = 0
    skipped: bool = False
    dropped_columns: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every source row is in the destination."""
        return self.destination_rows >= self.source_rows


@dataclass
class TransferReport:
    """What a copy did, table by table."""

    source: str
    destination: str
    tables: list[TableReport]

    @property
    def ok(self) -> bool:
        """Counts verified for every table."""
        return all(t.ok for t in self.tables)


def _io(store: Store) -> TableIO:
    if not hasattr(store, "transfer_tables"):
        raise StoreError(f"{type(store).__name__} cannot take part in a store copy")
    return cast(TableIO, store)


def _month_bounds(month: str) -> tuple[datetime, datetime]:
    year, mon = (int(x) for x in month.split("-"))
    start = datetime(year, mon, 1, tzinfo=UTC)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _conform(data: pa.Table, types: dict[str, str]) -> pa.Table:
    """Cast columns the destination stores differently (booleans as integers …)."""
    arrays = []
    for name in data.column_names:
        col = data.column(name)
        want = types.get(name, "").lower()
        if pa.types.is_boolean(col.type) and "int" in want:
            col = pc.cast(col, pa.uint8())
        elif pa.types.is_integer(col.type) and want.startswith("bool"):
            col = pc.not_equal(col, 0)
        elif pa.types.is_timestamp(col.type) and col.type.tz is None:
            col = pc.cast(col, pa.timestamp(col.type.unit, tz="UTC"))
        arrays.append(col)
    return pa.Table.from_arrays(arrays, names=data.column_names)


def copy_store(
    source: Store,
    destination: Store,
    source_name: str,
    destination_name: str,
    batch_rows: int = 50_000,
    progress: Callable[[str, int], None] | None = None,
) -> TransferReport:
    """Copy every table of ``source`` into ``destination``; resumes a previous copy of the
    same source and verifies row counts."""
    src, dst = _io(source), _io(destination)
    label = redact(source_name)
    tables = src.transfer_tables()
    dst_tables = set(dst.transfer_tables())
    ordered = [t for t in ORDER if t in tables] + sorted(set(tables) - set(ORDER) - SKIP)
    reports = []
    for table in ordered:
        if table in SKIP:
            continue
        if table not in dst_tables:
            raise StoreError(
                f"the destination has no table {table!r}: it runs an older assay schema; "
                "upgrade assay where it runs, then migrate again"
            )
        src_cols = src.transfer_columns(table)
        dst_types = dst.transfer_columns(table)
        columns = [c for c in src_cols if c in dst_types]
        dropped = [c for c in src_cols if c not in dst_types and c not in INTERNAL]
        report = TableReport(table, src.count_rows(table), 0, dropped_columns=dropped)
        parts = [("", "")] if table != "spans" else []
        if table == "spans":
            for month in src.span_months():
                start, end = _month_bounds(month)
                parts.append((month, f"start_time >= '{start:%Y-%m-%d}' AND "
                                     f"start_time < '{end:%Y-%m-%d}'"))  # fmt: skip
        for part, where in parts:
            key = f"transfer/{label}/{table}" + (f"/{part}" if part else "")
            if destination.get_meta(key):
                report.skipped = True
                continue
            for data in src.read_batches(table, columns, batch_rows, where):
                if data.num_rows == 0:
                    continue
                dst.write_table(table, _conform(data, dst_types))
                report.copied_rows += data.num_rows
                if progress is not None:
                    progress(table, data.num_rows)
            destination.set_meta(
                key, json.dumps({"at": datetime.now(UTC).isoformat(), "rows": report.copied_rows})
            )
        report.destination_rows = dst.count_rows(table)
        reports.append(report)
    return TransferReport(label, redact(destination_name), reports)


def describe(report: TransferReport) -> list[dict[str, Any]]:
    """The report as rows for a table or JSON."""
    return [
        {
            "table": t.table,
            "source_rows": t.source_rows,
            "destination_rows": t.destination_rows,
            "copied_rows": t.copied_rows,
            "resumed": t.skipped,
            "verified": t.ok,
            "dropped_columns": t.dropped_columns,
        }
        for t in report.tables
    ]
