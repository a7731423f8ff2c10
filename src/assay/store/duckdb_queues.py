"""Annotation queues and their items in the DuckDB store (mixed into DuckDBStore).

An item is claimed with a conditional UPDATE (a lease that expires), so two labellers
never hold one item; a label is stored as feedback in the same transaction that marks
the item labelled.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import duckdb

from assay.model import Feedback, Span
from assay.query import GROUP_FIELDS, SpanFilter
from assay.queues.values import (
    LABELLED,
    OPEN,
    SKIPPED,
    Queue,
    QueueItem,
    QueueProgress,
)
from assay.store import StoreError
from assay.store.rows import dumps as _dumps
from assay.store.rows import item_from_row as _item
from assay.store.rows import item_row as _item_row
from assay.store.rows import queue_from_row as _queue
from assay.store.rows import utc as _utc

_QUEUE_COLS = (
    "project, name, queue_id, strategy, params, seed, label, instructions, size, item_count, "
    "population, lease_seconds, notes, created_by, created_at"
)
_ITEM_COLS = (
    "project, queue, item_id, trace_id, span_id, stratum, inclusion_probability, score, "
    "input_text, output_text, input_messages, output_messages, context, status, claimed_by, "
    "claimed_at, lease_expires_at, done_by, done_at, feedback_id, skip_reason"
)
_FEEDBACK_COLS = (
    "project, feedback_id, trace_id, span_id, name, kind, number, category, comment, "
    "source, author, created_at, metadata"
)
_FREE = "(lease_expires_at IS NULL OR lease_expires_at <= ?)"
#: Stands for a missing stratum value where SQL needs a non-null key.
_NULL = "\x00"


_INSERT_ITEM = (
    f"INSERT INTO queue_items ({_ITEM_COLS}) VALUES "
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _stratum_sql(stratify_by: str | None) -> str:
    if stratify_by is None:
        return "NULL::VARCHAR"
    if stratify_by not in GROUP_FIELDS:
        raise StoreError(
            f"cannot stratify by {stratify_by!r}; use one of {', '.join(GROUP_FIELDS)}"
        )
    return f"CAST({stratify_by} AS VARCHAR)"


def _units_sql(flt: SpanFilter, unit: str, stratify_by: str | None) -> tuple[str, list[Any]]:
    """A query of (trace_id, span_id, stratum) rows, one per sampling unit. A trace's
    stratum is the first non-null value of the field among its matching spans; its
    span is filled in after sampling."""
    from assay.store.duckdb import _where  # deferred: duckdb.py imports this module

    where, params = _where(flt)
    stratum = _stratum_sql(stratify_by)
    if unit == "span":
        return f"SELECT trace_id, span_id, {stratum} AS stratum FROM spans WHERE {where}", params
    if unit != "trace":
        raise StoreError(f"unit {unit!r} must be trace or span")
    return (
        f"SELECT trace_id, NULL::VARCHAR AS span_id, "
        f"arg_min(v, start_time) FILTER (WHERE v IS NOT NULL) AS stratum FROM ("
        f"SELECT trace_id, start_time, {stratum} AS v FROM spans WHERE {where}) "
        "GROUP BY trace_id",
        params,
    )


class QueueTables:
    """The annotation-queue half of :class:`assay.store.duckdb.DuckDBStore`."""

    _write_lock: threading.Lock

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        raise NotImplementedError

    def _narrow(self, flt: SpanFilter) -> str | None:
        raise NotImplementedError

    # -- selection ----------------------------------------------------------------------

    def queue_population(
        self, flt: SpanFilter, unit: str, stratify_by: str | None = None
    ) -> dict[str | None, int]:
        """How many sampling units (traces with a matching span, or matching spans) there
        are, per value of ``stratify_by`` (one None key when not stratified)."""
        units, params = _units_sql(flt, unit, stratify_by)
        rows = (
            self._cursor()
            .execute(f"SELECT stratum, count(*) FROM ({units}) GROUP BY stratum", params)
            .fetchall()
        )
        return {r[0]: int(r[1]) for r in rows}

    def sample_queue_keys(
        self,
        flt: SpanFilter,
        unit: str,
        quotas: Mapping[str | None, int],
        seed: int,
        stratify_by: str | None = None,
    ) -> list[tuple[str, str, str | None]]:
        """Per stratum, the ``quotas[stratum]`` units with the smallest seeded hash (a
        simple random sample without replacement within each stratum), as (trace_id,
        span_id, stratum); a trace unit's span is its root (else its earliest) span."""
        units, params = _units_sql(flt, unit, stratify_by)
        keys = [_NULL if k is None else k for k in quotas]
        sizes = [int(quotas[k]) for k in quotas]
        # One string hashed whole: DuckDB's hash(seed, id) mixes the seed so weakly that
        # draws with different seeds favour the same units (a chi-square test shows it).
        key = "trace_id" if unit == "trace" else "trace_id || ':' || span_id"
        order = f"hash(?::VARCHAR || ':' || {key})"
        cur = self._cursor()
        rows = cur.execute(
            f"""
            WITH q AS (SELECT unnest(?::VARCHAR[]) AS s, unnest(?::BIGINT[]) AS n),
            u AS (
                SELECT trace_id, span_id, stratum,
                       row_number() OVER (PARTITION BY coalesce(stratum, ?)
                                          ORDER BY {order}, trace_id, span_id) AS rn
                FROM ({units}))
            SELECT u.trace_id, u.span_id, u.stratum FROM u
            JOIN q ON coalesce(u.stratum, ?) = q.s WHERE u.rn <= q.n
            ORDER BY q.s, u.rn
            """,
            [keys, sizes, _NULL, str(int(seed)), *params, _NULL],
        ).fetchall()
        if unit == "span":
            return [(r[0], r[1], r[2]) for r in rows]
        roots = self.root_span_ids(flt.project, [r[0] for r in rows])
        return [(r[0], roots[r[0]], r[2]) for r in rows if r[0] in roots]

    def queue_judge_scores(
        self, flt: SpanFilter, name: str
    ) -> list[tuple[str, str | None, float | None, str | None]]:
        """Judge feedback (source ``judge``) named ``name`` as (trace_id, span_id, number,
        category), oldest first: records on a span matching the filter, and records on a
        whole trace (span_id None) with any span matching it."""
        from assay.store.duckdb import _where

        where, params = _where(flt, self._narrow)
        rows = (
            self._cursor()
            .execute(
                f"""
                WITH win AS (SELECT trace_id, span_id FROM spans WHERE {where})
                SELECT trace_id, span_id, number, category FROM feedback
                WHERE project = ? AND name = ? AND source = 'judge'
                  AND ((span_id IS NULL AND trace_id IN (SELECT trace_id FROM win))
                       OR (trace_id, span_id) IN (SELECT trace_id, span_id FROM win))
                ORDER BY trace_id, span_id NULLS FIRST, created_at, feedback_id
                """,
                [*params, flt.project, name],
            )
            .fetchall()
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def root_span_ids(self, project: str, trace_ids: Sequence[str]) -> dict[str, str]:
        """Each stored trace's root span (a span without a parent; else its earliest)."""
        if not trace_ids:
            return {}
        rows = (
            self._cursor()
            .execute(
                "SELECT trace_id, span_id FROM spans WHERE project = ? "
                "AND trace_id IN (SELECT unnest(?::VARCHAR[])) "
                "QUALIFY row_number() OVER (PARTITION BY trace_id "
                "ORDER BY parent_span_id IS NOT NULL, start_time, span_id) = 1",
                [project, list(trace_ids)],
            )
            .fetchall()
        )
        return {r[0]: r[1] for r in rows}

    def spans_by_key(self, flt: SpanFilter, keys: Sequence[tuple[str, str]]) -> list[Span]:
        """The spans among ``keys`` (trace_id, span_id) that are stored and match ``flt``."""
        from assay.store.duckdb import _SPAN_SELECT, _where
        from assay.store.rows import span_from_row as _span_from_row

        if not keys:
            return []
        where, params = _where(flt, self._narrow)
        rows = (
            self._cursor()
            .execute(
                f"WITH k AS (SELECT unnest(?::VARCHAR[]) AS t, unnest(?::VARCHAR[]) AS s) "
                f"SELECT {_SPAN_SELECT} FROM spans JOIN k ON trace_id = k.t AND span_id = k.s "
                f"WHERE {where}",
                [[k[0] for k in keys], [k[1] for k in keys], *params],
            )
            .fetchall()
        )
        return [_span_from_row(r) for r in rows]

    # -- queues ---------------------------------------------------------------------------

    def create_queue(self, queue: Queue, items: Sequence[QueueItem]) -> bool:
        """Store a queue with its items in one transaction; False when the name is taken."""
        with self._write_lock:
            cur = self._cursor()
            try:
                cur.execute("BEGIN")
                taken = cur.execute(
                    "SELECT 1 FROM queues WHERE project = ? AND name = ?",
                    [queue.project, queue.name],
                ).fetchone()
                if taken:
                    cur.execute("ROLLBACK")
                    return False
                cur.execute(
                    f"INSERT INTO queues ({_QUEUE_COLS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        queue.project,
                        queue.name,
                        queue.queue_id,
                        queue.strategy,
                        _dumps(queue.params),
                        queue.seed,
                        _dumps(queue.label.to_json()),
                        queue.instructions,
                        queue.size,
                        queue.item_count,
                        queue.population,
                        queue.lease_seconds,
                        _dumps(list(queue.notes)),
                        queue.created_by,
                        queue.created_at,
                    ],
                )
                if items:
                    cur.executemany(_INSERT_ITEM, [_item_row(i, i.item_id) for i in items])
                cur.execute("COMMIT")
            except duckdb.Error:
                cur.execute("ROLLBACK")
                raise
            finally:
                cur.close()
        return True

    def add_queue_items(self, project: str, name: str, items: Sequence[QueueItem]) -> int:
        """Append items after the queue's last one, in one transaction, skipping any whose
        (trace_id, span_id) it already holds (so resending adds nothing); the queue's item
        count and population grow by the number added, which is returned."""
        with self._write_lock:
            cur = self._cursor()
            try:
                cur.execute("BEGIN")
                row = cur.execute(
                    "SELECT size, (SELECT coalesce(max(item_id), 0) FROM queue_items "
                    "WHERE project = ? AND queue = ?) FROM queues WHERE project = ? AND name = ?",
                    [project, name, project, name],
                ).fetchone()
                if row is None:
                    cur.execute("ROLLBACK")
                    raise StoreError(f"no queue named {name!r} in project {project!r}")
                size, last = int(row[0]), int(row[1])
                keys = [(i.trace_id, i.span_id) for i in items]
                held = {
                    (r[0], r[1])
                    for r in cur.execute(
                        "WITH k AS (SELECT unnest(?::VARCHAR[]) AS t, unnest(?::VARCHAR[]) AS s) "
                        "SELECT trace_id, span_id FROM queue_items JOIN k "
                        "ON trace_id = k.t AND span_id = k.s WHERE project = ? AND queue = ?",
                        [[k[0] for k in keys], [k[1] for k in keys], project, name],
                    ).fetchall()
                }
                new: list[QueueItem] = []
                for item, key in zip(items, keys, strict=True):
                    if key not in held:
                        held.add(key)  # a key twice in one call is added once
                        new.append(item)
                if last + len(new) > size:
                    cur.execute("ROLLBACK")
                    raise StoreError(
                        f"queue {name!r} holds {last} items and may hold {size}; "
                        f"{len(new)} more do not fit"
                    )
                if new:
                    rows = [_item_row(i, last + n) for n, i in enumerate(new, start=1)]
                    cur.executemany(_INSERT_ITEM, rows)
                    cur.execute(
                        "UPDATE queues SET item_count = item_count + ?, "
                        "population = population + ? WHERE project = ? AND name = ?",
                        [len(new), len(new), project, name],
                    )
                cur.execute("COMMIT")
            except duckdb.Error:
                cur.execute("ROLLBACK")
                raise
            finally:
                cur.close()
        return len(new)

    def get_queue(self, project: str, name: str) -> Queue | None:
        """One queue by name."""
        row = (
            self._cursor()
            .execute(
                f"SELECT {_QUEUE_COLS} FROM queues WHERE project = ? AND name = ?",
                [project, name],
            )
            .fetchone()
        )
        return None if row is None else _queue(row)

    def list_queues(self, project: str) -> list[Queue]:
        """A project's queues, newest first."""
        rows = (
            self._cursor()
            .execute(
                f"SELECT {_QUEUE_COLS} FROM queues WHERE project = ? "
                "ORDER BY created_at DESC, name",
                [project],
            )
            .fetchall()
        )
        return [_queue(r) for r in rows]

    def delete_queue(self, project: str, name: str) -> bool:
        """Remove a queue and its items (the labels stay, as feedback)."""
        with self._write_lock:
            cur = self._cursor()
            try:
                cur.execute("BEGIN")
                cur.execute(
                    "DELETE FROM queue_items WHERE project = ? AND queue = ?", [project, name]
                )
                row = cur.execute(
                    "DELETE FROM queues WHERE project = ? AND name = ?", [project, name]
                ).fetchone()
                cur.execute("COMMIT")
            except duckdb.Error:
                cur.execute("ROLLBACK")
                raise
            finally:
                cur.close()
        return bool(row and row[0])

    def queue_progress(self, project: str, name: str, now: datetime) -> QueueProgress:
        """Items by state, per labeller, and when the first current claim expires."""
        cur = self._cursor()
        row = cur.execute(
            f"""
            SELECT count(*),
                   count(*) FILTER (WHERE status = '{LABELLED}'),
                   count(*) FILTER (WHERE status = '{SKIPPED}'),
                   count(*) FILTER (WHERE status = '{OPEN}' AND lease_expires_at > ?),
                   min(lease_expires_at) FILTER (WHERE status = '{OPEN}' AND lease_expires_at > ?)
            FROM queue_items WHERE project = ? AND queue = ?
            """,
            [now, now, project, name],
        ).fetchone()
        assert row is not None
        total, labelled, skipped, claimed = (int(x) for x in row[:4])
        by: dict[str, dict[str, int]] = {}
        for who, status, n in cur.execute(
            f"""
            SELECT coalesce(done_by, claimed_by), status, count(*) FROM queue_items
            WHERE project = ? AND queue = ?
              AND (status <> '{OPEN}' OR lease_expires_at > ?)
            GROUP BY ALL ORDER BY 1
            """,
            [project, name, now],
        ).fetchall():
            key = {LABELLED: "labelled", SKIPPED: "skipped", OPEN: "claimed"}[status]
            counts = by.setdefault(who or "", {"labelled": 0, "skipped": 0, "claimed": 0})
            counts[key] = int(n)
        return QueueProgress(
            total=total,
            labelled=labelled,
            skipped=skipped,
            claimed=claimed,
            remaining=total - labelled - skipped - claimed,
            by_labeller=by,
            next_expiry=_utc(row[4]),
        )

    # -- items -----------------------------------------------------------------------------

    def list_queue_items(
        self,
        project: str,
        name: str,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[QueueItem]:
        """A queue's items in order (optionally of one status)."""
        sql = f"SELECT {_ITEM_COLS} FROM queue_items WHERE project = ? AND queue = ?"
        params: list[Any] = [project, name]
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        rows = (
            self._cursor()
            .execute(sql + " ORDER BY item_id LIMIT ? OFFSET ?", [*params, limit, offset])
            .fetchall()
        )
        return [_item(r) for r in rows]

    def get_queue_item(self, project: str, name: str, item_id: int) -> QueueItem | None:
        """One item by number."""
        row = (
            self._cursor()
            .execute(
                f"SELECT {_ITEM_COLS} FROM queue_items WHERE project = ? AND queue = ? "
                "AND item_id = ?",
                [project, name, item_id],
            )
            .fetchone()
        )
        return None if row is None else _item(row)

    def claim_queue_item(
        self, project: str, name: str, labeller: str, now: datetime, lease_until: datetime
    ) -> QueueItem | None:
        """Lease the open item ``labeller`` already holds (renewed), else the first open
        item nobody holds; None when there is none. A conditional UPDATE takes it."""
        with self._write_lock:
            cur = self._cursor()
            try:
                held = cur.execute(
                    f"UPDATE queue_items SET lease_expires_at = ? WHERE item_id = ("
                    f"  SELECT min(item_id) FROM queue_items WHERE project = ? AND queue = ? "
                    f"  AND status = '{OPEN}' AND claimed_by = ? AND lease_expires_at > ?) "
                    f"AND project = ? AND queue = ? RETURNING {_ITEM_COLS}",
                    [lease_until, project, name, labeller, now, project, name],
                ).fetchone()
                if held is not None:
                    return _item(held)
                candidates = cur.execute(
                    f"SELECT item_id FROM queue_items WHERE project = ? AND queue = ? "
                    f"AND status = '{OPEN}' AND {_FREE} ORDER BY item_id LIMIT 8",
                    [project, name, now],
                ).fetchall()
                for (item_id,) in candidates:
                    row = cur.execute(
                        "UPDATE queue_items SET claimed_by = ?, claimed_at = ?, "
                        "lease_expires_at = ? WHERE project = ? AND queue = ? AND item_id = ? "
                        f"AND status = '{OPEN}' AND {_FREE} RETURNING {_ITEM_COLS}",
                        [labeller, now, lease_until, project, name, item_id, now],
                    ).fetchone()
                    if row is not None:
                        return _item(row)
            finally:
                cur.close()
        return None

    def release_queue_item(self, project: str, name: str, item_id: int, labeller: str) -> bool:
        """Drop ``labeller``'s claim on an open item; False when they do not hold it."""
        with self._write_lock:
            cur = self._cursor()
            try:
                row = cur.execute(
                    "UPDATE queue_items SET claimed_by = NULL, claimed_at = NULL, "
                    "lease_expires_at = NULL WHERE project = ? AND queue = ? AND item_id = ? "
                    f"AND status = '{OPEN}' AND claimed_by = ?",
                    [project, name, item_id, labeller],
                ).fetchone()
            finally:
                cur.close()
        return bool(row and row[0])

    def finish_queue_item(
        self,
        project: str,
        name: str,
        item_id: int,
        labeller: str,
        status: str,
        now: datetime,
        feedback: Feedback | None = None,
        reason: str | None = None,
    ) -> bool:
        """Mark an open item labelled (storing ``feedback`` in the same transaction) or
        skipped, when nobody else holds its lease; False otherwise (nothing is stored)."""
        if status not in (LABELLED, SKIPPED):
            raise StoreError(f"an item finishes as labelled or skipped, not {status!r}")
        with self._write_lock:
            cur = self._cursor()
            try:
                cur.execute("BEGIN")
                row = cur.execute(
                    "UPDATE queue_items SET status = ?, done_by = ?, done_at = ?, "
                    "feedback_id = ?, skip_reason = ?, lease_expires_at = NULL "
                    "WHERE project = ? AND queue = ? AND item_id = ? "
                    f"AND status = '{OPEN}' AND ({_FREE} OR claimed_by = ?) RETURNING item_id",
                    [
                        status,
                        labeller,
                        now,
                        feedback.feedback_id if feedback else None,
                        reason,
                        project,
                        name,
                        item_id,
                        now,
                        labeller,
                    ],
                ).fetchone()
                if row is None:
                    cur.execute("ROLLBACK")
                    return False
                if feedback is not None:
                    f = feedback
                    cur.execute(
                        f"INSERT OR IGNORE INTO feedback ({_FEEDBACK_COLS}) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                            _dumps(f.metadata),
                        ],
                    )
                cur.execute("COMMIT")
            except duckdb.Error:
                cur.execute("ROLLBACK")
                raise
            finally:
                cur.close()
        return True
