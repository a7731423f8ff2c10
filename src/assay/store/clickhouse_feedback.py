"""Feedback on traces in the ClickHouse store (mixed into ClickHouseStore).

``feedback`` is a ReplacingMergeTree keyed by (project, feedback_id), the client's
idempotency key, so a resent record collapses onto the stored one. Its version counts
*down* with write time, so when two writers race on one id the first record wins on
every replica — the same "first record kept" rule as DuckDB's ``INSERT OR IGNORE``.
Reads use ``FINAL``. A bloom filter on trace_id serves the per-trace reads of the pages.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from assay.model import Feedback
from assay.store.clickhouse import TIME, ClickHouseBase, Params, Schema
from assay.store.rows import utc

COLUMNS = (
    "project",
    "feedback_id",
    "trace_id",
    "span_id",
    "name",
    "kind",
    "number",
    "category",
    "comment",
    "source",
    "author",
    "created_at",
    "metadata",
)
_SELECT = ", ".join(COLUMNS)
#: Versions are this minus the write time: the earliest write has the largest version.
_FIRST_WINS = 2**64 - 1


def _feedback_ddl(schema: Schema) -> list[str]:
    return schema.table(
        "feedback",
        f"""
        project LowCardinality(String),
        feedback_id String,
        trace_id String,
        span_id Nullable(String),
        name LowCardinality(String),
        kind LowCardinality(String),
        number Nullable(Float64),
        category Nullable(String),
        comment Nullable(String),
        source LowCardinality(String),
        author Nullable(String),
        created_at {TIME},
        metadata String,
        version UInt64,
        INDEX trace_idx trace_id TYPE bloom_filter(0.001) GRANULARITY 1,
        INDEX name_idx name TYPE set(256) GRANULARITY 4
        """,
        version="version",
        order_by="(project, feedback_id)",
    )


#: (migration name, DDL builder taking a Schema), applied in name order with the rest.
MIGRATIONS: list[tuple[str, Any]] = [("m006_feedback", _feedback_ddl)]


def feedback_from_row(row: Sequence[Any]) -> Feedback:
    """A Feedback from a row in :data:`COLUMNS` order."""
    return Feedback(
        project=row[0],
        feedback_id=row[1],
        trace_id=row[2],
        span_id=row[3],
        name=row[4],
        kind=row[5],
        number=None if row[6] is None else float(row[6]),
        category=row[7],
        comment=row[8],
        source=row[9],
        author=row[10],
        created_at=utc(row[11]) or datetime.now(UTC),
        metadata=json.loads(row[12]) if row[12] else {},
    )


class FeedbackTables(ClickHouseBase):
    """The feedback methods of :class:`assay.store.Store` on ClickHouse."""

    def add_feedback(self, items: Sequence[Feedback]) -> list[Feedback]:
        """Store feedback records; an id already stored keeps its first record, which is
        returned in its place (so the caller can tell a resend from a conflict)."""
        if not items:
            return []
        with self._write_lock:
            stored = self._feedback_by_key(items)
            new: dict[tuple[str, str], Feedback] = {}
            for f in items:
                key = (f.project, f.feedback_id)
                if key not in stored and key not in new:  # a repeated id: the first one
                    new[key] = f
            self.write_feedback(list(new.values()))
            if new:
                stored = self._feedback_by_key(items)
        return [stored[f.project, f.feedback_id] for f in items]

    def write_feedback(self, items: Sequence[Feedback]) -> None:
        """Insert feedback rows as they are (no check for stored ids: ``FINAL`` keeps the
        first record of an id). For mixins that store feedback with other writes."""
        if not items:
            return
        version = _FIRST_WINS - self.version()
        self.insert_rows(
            "feedback",
            [*COLUMNS, "version"],
            [
                [
                    f.project,
                    f.feedback_id,
                    f.trace_id,
                    f.span_id,
                    f.name,
                    f.kind,
                    f.number,
                    f.category,
                    f.comment,
                    f.source,
                    f.author,
                    f.created_at,
                    json.dumps(f.metadata, ensure_ascii=False, default=str),
                    version,
                ]
                for f in items
            ],
        )

    def _feedback_by_key(self, items: Sequence[Feedback]) -> dict[tuple[str, str], Feedback]:
        """The stored records among the (project, id) keys of ``items``."""
        by_project: dict[str, list[str]] = {}
        for f in items:
            by_project.setdefault(f.project, []).append(f.feedback_id)
        out: dict[tuple[str, str], Feedback] = {}
        for project, ids in by_project.items():
            for f in self.list_feedback(project, ids=ids, limit=len(ids)):
                out[f.project, f.feedback_id] = f
        return out

    def list_feedback(
        self,
        project: str,
        *,
        trace_id: str | None = None,
        name: str | None = None,
        source: str | None = None,
        ids: Sequence[str] | None = None,
        limit: int = 1000,
    ) -> list[Feedback]:
        """Feedback of a project, newest first, optionally for one trace, name, source or
        set of ids."""
        p = Params()
        sql = f"SELECT {_SELECT} FROM {{db}}.feedback FINAL WHERE project = {p(project, 'String')}"
        if ids is not None:
            # IN a subquery builds a hash set (and still narrows the primary key); IN an
            # array parameter tests every row against the whole array, quadratic in a
            # large batch.
            sql += f" AND feedback_id IN (SELECT arrayJoin({p(sorted(set(ids)), 'Array(String)')}))"
        for column, value in (("trace_id", trace_id), ("name", name), ("source", source)):
            if value is not None:
                sql += f" AND {column} = {p(value, 'String')}"
        sql += f" ORDER BY created_at DESC, feedback_id LIMIT {p(max(limit, 0), 'UInt64')}"
        return [feedback_from_row(r) for r in self.q(sql, p)]
