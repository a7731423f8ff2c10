"""Feedback on traces in the DuckDB store (mixed into DuckDBStore)."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import duckdb

from assay.model import Feedback

_COLS = (
    "project, feedback_id, trace_id, span_id, name, kind, number, category, comment, "
    "source, author, created_at, metadata"
)


def _feedback(row: tuple[Any, ...]) -> Feedback:
    return Feedback(
        project=row[0],
        feedback_id=row[1],
        trace_id=row[2],
        span_id=row[3],
        name=row[4],
        kind=row[5],
        number=row[6],
        category=row[7],
        comment=row[8],
        source=row[9],
        author=row[10],
        created_at=(row[11] or datetime.now(UTC)).replace(tzinfo=UTC),
        metadata=json.loads(row[12]) if row[12] else {},
    )


class FeedbackTables:
    """The feedback half of :class:`assay.store.duckdb.DuckDBStore`."""

    _write_lock: threading.Lock

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        raise NotImplementedError

    def add_feedback(self, items: Sequence[Feedback]) -> list[Feedback]:
        """Store feedback records; an id already stored keeps its first record, which is
        returned in its place (so the caller can tell a resend from a conflict)."""
        if not items:
            return []
        with self._write_lock:
            cur = self._cursor()
            cur.execute("BEGIN")
            try:
                cur.executemany(
                    f"INSERT OR IGNORE INTO feedback ({_COLS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                        ]
                        for f in items
                    ],
                )
                cur.execute("COMMIT")
            except duckdb.Error:
                cur.execute("ROLLBACK")
                raise
            project = items[0].project
            ids = [f.feedback_id for f in items]
            rows = cur.execute(
                f"SELECT {_COLS} FROM feedback WHERE project = ? AND list_contains(?, feedback_id)",
                [project, ids],
            ).fetchall()
        stored = {r[1]: _feedback(r) for r in rows}
        return [stored[i] for i in ids]

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
        sql = f"SELECT {_COLS} FROM feedback WHERE project = ?"
        params: list[Any] = [project]
        if ids is not None:
            sql += " AND list_contains(?, feedback_id)"
            params.append(list(ids))
        for column, value in (("trace_id", trace_id), ("name", name), ("source", source)):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        rows = (
            self._cursor()
            .execute(sql + " ORDER BY created_at DESC, feedback_id LIMIT ?", [*params, limit])
            .fetchall()
        )
        return [_feedback(r) for r in rows]
