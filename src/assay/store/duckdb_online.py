"""Online-evaluation rules in the DuckDB store (mixed into DuckDBStore).

A rule is leased with a conditional UPDATE, so workers sharing one database never score
one rule twice at once; its watermark, counters and spend move in the same transaction
that stores its scores as feedback.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

from assay.model import Feedback, ScorerSpec, Span
from assay.online import Mark, OnlineRule, ProgressUpdate, RuleProgress
from assay.query import SpanFilter
from assay.store.rows import utc as _utc

_RULE_COLS = (
    "project, name, scorer, score_name, sample_rate, filters, budget_usd, budget_period, "
    "concurrency, retries, enabled, created_at, updated_at, watermark_at, watermark_trace, "
    "watermark_span, processed, sampled, scored, errors, skipped, unpriced, spend_period, "
    "spend_usd, spend_total_usd, last_scored_at, last_error, last_error_at, lease_owner, "
    "lease_expires_at"
)
_FEEDBACK_COLS = (
    "project, feedback_id, trace_id, span_id, name, kind, number, category, comment, "
    "source, author, created_at, metadata"
)
_FREE = "(lease_expires_at IS NULL OR lease_expires_at <= ?)"


def _naive(dt: datetime) -> datetime:
    # ingested_at is a plain TIMESTAMP: a naive UTC parameter keeps the comparison on the
    # column itself, so DuckDB can skip row groups by their min/max.
    return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo else dt


def _rule(row: Sequence[Any]) -> OnlineRule:
    scorer = json.loads(row[2])
    return OnlineRule(
        project=row[0],
        name=row[1],
        scorer=ScorerSpec(scorer["name"], dict(scorer.get("args") or {}), scorer.get("key")),
        score_name=row[3],
        sample_rate=float(row[4]),
        filters=json.loads(row[5]),
        budget_usd=row[6],
        budget_period=row[7],
        concurrency=int(row[8]),
        retries=int(row[9]),
        enabled=bool(row[10]),
        created_at=row[11].replace(tzinfo=UTC),
        updated_at=row[12].replace(tzinfo=UTC),
        progress=RuleProgress(
            watermark=Mark(row[13].replace(tzinfo=UTC), row[14], row[15]),
            processed=int(row[16]),
            sampled=int(row[17]),
            scored=int(row[18]),
            errors=int(row[19]),
            skipped=int(row[20]),
            unpriced=int(row[21]),
            spend_period=row[22],
            spend_usd=float(row[23]),
            spend_total_usd=float(row[24]),
            last_scored_at=_utc(row[25]),
            last_error=row[26],
            last_error_at=_utc(row[27]),
            lease_owner=row[28],
            lease_expires_at=_utc(row[29]),
        ),
    )


def _definition(rule: OnlineRule) -> list[Any]:
    spec = {"name": rule.scorer.name, "args": rule.scorer.args, "key": rule.scorer.key}
    return [
        json.dumps(spec, default=str),
        rule.score_name,
        rule.sample_rate,
        json.dumps(dict(rule.filters)),
        rule.budget_usd,
        rule.budget_period,
        rule.concurrency,
        rule.retries,
        rule.enabled,
    ]


def _feedback_table(items: Sequence[Feedback]) -> pa.Table:
    columns: dict[str, list[Any]] = {c.strip(): [] for c in _FEEDBACK_COLS.split(",")}
    for f in items:
        for name in columns:
            value = getattr(f, name)
            if name == "created_at":
                value = _naive(value)
            elif name == "metadata":
                value = json.dumps(value, ensure_ascii=False, default=str)
            columns[name].append(value)
    types = {"number": pa.float64(), "created_at": pa.timestamp("us")}
    return pa.table({k: pa.array(v, types.get(k, pa.string())) for k, v in columns.items()})


class OnlineTables:
    """The online-evaluation half of :class:`assay.store.duckdb.DuckDBStore`."""

    _write_lock: threading.Lock

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        raise NotImplementedError

    def _one(self, sql: str, params: Sequence[Any], write: bool = True) -> Any:
        cur = self._cursor()
        try:
            if not write:
                return cur.execute(sql, params).fetchone()
            with self._write_lock:
                return cur.execute(sql, params).fetchone()
        finally:
            cur.close()

    # -- definitions --------------------------------------------------------------------

    def create_online_rule(self, rule: OnlineRule) -> bool:
        """Store a new rule; False when the project already has one of that name."""
        p = rule.progress
        row = self._one(
            f"INSERT OR IGNORE INTO online_rules ({_RULE_COLS}) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0, 0, 0, 0, NULL, 0, 0, "
            "NULL, NULL, NULL, NULL, NULL)",
            [
                rule.project,
                rule.name,
                *_definition(rule),
                rule.created_at,
                rule.updated_at,
                _naive(p.watermark.at),
                p.watermark.trace_id,
                p.watermark.span_id,
            ],
        )
        return bool(row and row[0])

    def get_online_rule(self, project: str, name: str) -> OnlineRule | None:
        """One rule with its progress."""
        row = self._one(
            f"SELECT {_RULE_COLS} FROM online_rules WHERE project = ? AND name = ?",
            [project, name],
            write=False,
        )
        return None if row is None else _rule(row)

    def list_online_rules(self, project: str | None = None) -> list[OnlineRule]:
        """Rules of one project (or all), by name."""
        sql = f"SELECT {_RULE_COLS} FROM online_rules"
        params: list[Any] = []
        if project is not None:
            sql += " WHERE project = ?"
            params.append(project)
        cur = self._cursor()
        try:
            rows = cur.execute(sql + " ORDER BY project, name", params).fetchall()
        finally:
            cur.close()
        return [_rule(r) for r in rows]

    def update_online_rule(self, rule: OnlineRule) -> bool:
        """Rewrite a rule's definition and enabled flag; progress and lease are kept (a
        worker holding it sees the new ``updated_at`` and restarts on the new definition).
        False when it does not exist."""
        row = self._one(
            "UPDATE online_rules SET scorer = ?, score_name = ?, sample_rate = ?, filters = ?, "
            "budget_usd = ?, budget_period = ?, concurrency = ?, retries = ?, enabled = ?, "
            "updated_at = ? WHERE project = ? AND name = ?",
            [*_definition(rule), rule.updated_at, rule.project, rule.name],
        )
        return bool(row and row[0])

    def delete_online_rule(self, project: str, name: str) -> bool:
        """Remove a rule (the scores it stored stay); False when it does not exist."""
        row = self._one("DELETE FROM online_rules WHERE project = ? AND name = ?", [project, name])
        return bool(row and row[0])

    # -- leases -------------------------------------------------------------------------

    def claim_online_rule(
        self,
        owner: str,
        now: datetime,
        lease_until: datetime,
        skip: Sequence[tuple[str, str]] = (),
    ) -> OnlineRule | None:
        """Lease an enabled rule nobody holds (or whose holder's lease ran out), other than
        the (project, name) pairs in ``skip``; None when there is none."""
        skipped = set(skip)
        with self._write_lock:
            cur = self._cursor()
            try:
                candidates = cur.execute(
                    f"SELECT project, name FROM online_rules WHERE enabled AND {_FREE} "
                    "ORDER BY project, name",
                    [now],
                ).fetchall()
                for project, name in candidates:
                    if (project, name) in skipped:
                        continue
                    row = cur.execute(
                        "UPDATE online_rules SET lease_owner = ?, lease_expires_at = ? "
                        f"WHERE project = ? AND name = ? AND enabled AND {_FREE} "
                        f"RETURNING {_RULE_COLS}",
                        [owner, lease_until, project, name, now],
                    ).fetchone()
                    if row is not None:
                        return _rule(row)
            finally:
                cur.close()
        return None

    def renew_online_lease(
        self, project: str, name: str, owner: str, lease_until: datetime
    ) -> OnlineRule | None:
        """Extend a held lease and return the rule as stored now (to see a pause or a
        change); None when ``owner`` no longer holds it or the rule is gone."""
        row = self._one(
            f"UPDATE online_rules SET lease_expires_at = ? "
            f"WHERE project = ? AND name = ? AND lease_owner = ? RETURNING {_RULE_COLS}",
            [lease_until, project, name, owner],
        )
        return None if row is None else _rule(row)

    def release_online_rule(self, project: str, name: str, owner: str) -> bool:
        """Give up a held lease."""
        row = self._one(
            "UPDATE online_rules SET lease_owner = NULL, lease_expires_at = NULL "
            "WHERE project = ? AND name = ? AND lease_owner = ?",
            [project, name, owner],
        )
        return bool(row and row[0])

    # -- spans --------------------------------------------------------------------------

    def scan_online(self, flt: SpanFilter, after: Mark, limit: int) -> list[Mark]:
        """Keys of committed spans matching ``flt`` (its time range ignored) after ``after``
        in commit order (ingested_at, trace_id, span_id), at most ``limit``.

        Only spans whose commit was complete when the scan began are returned, so no span
        can later appear before the last key: the horizon is read under the write lock,
        when no insert is under way, and every later insert starts (and stamps its
        ``ingested_at``) after it.
        """
        from assay.store.duckdb import _where

        cur = self._cursor()
        try:
            with self._write_lock:
                row = cur.execute("SELECT current_timestamp::TIMESTAMP").fetchone()
            horizon = row[0] if row else None
            where, params = _where(flt.with_(start=None, end=None))
            at = _naive(after.at)
            rows = cur.execute(
                f"SELECT ingested_at, trace_id, span_id FROM spans WHERE {where} "
                "AND ingested_at >= ? AND ingested_at < ? "
                "AND (ingested_at, trace_id, span_id) > (?, ?, ?) "
                "ORDER BY ingested_at, trace_id, span_id LIMIT ?",
                [*params, at, horizon, at, after.trace_id, after.span_id, limit],
            ).fetchall()
        finally:
            cur.close()
        return [Mark(r[0].replace(tzinfo=UTC), r[1], r[2]) for r in rows]

    def online_spans(self, project: str, keys: Sequence[Mark]) -> list[Span]:
        """The spans at these keys, in key order (missing ones left out)."""
        if not keys:
            return []
        from assay.model import SPAN_COLUMNS
        from assay.store.rows import span_from_row as _span_from_row

        cols = ", ".join(f"s.{c}" for c in SPAN_COLUMNS)
        lo = _naive(min(k.at for k in keys))
        hi = _naive(max(k.at for k in keys))
        cur = self._cursor()
        try:
            rows = cur.execute(
                f"SELECT {cols} FROM spans s JOIN (SELECT unnest(?) AS t, unnest(?) AS p) k "
                "ON s.trace_id = k.t AND s.span_id = k.p "
                "WHERE s.project = ? AND s.ingested_at >= ? AND s.ingested_at <= ?",
                [[k.trace_id for k in keys], [k.span_id for k in keys], project, lo, hi],
            ).fetchall()
        finally:
            cur.close()
        spans = {(s.trace_id, s.span_id): s for s in map(_span_from_row, rows)}
        return [spans[(k.trace_id, k.span_id)] for k in keys if (k.trace_id, k.span_id) in spans]

    def online_backlog(self, flt: SpanFilter, after: Mark) -> tuple[int, datetime | None]:
        """How many spans matching ``flt`` were committed after ``after``, and when the
        oldest of them was (None when there are none)."""
        from assay.store.duckdb import _where

        where, params = _where(flt.with_(start=None, end=None))
        at = _naive(after.at)
        row = self._one(
            f"SELECT count(*), min(ingested_at) FROM spans WHERE {where} "
            "AND ingested_at >= ? AND (ingested_at, trace_id, span_id) > (?, ?, ?)",
            [*params, at, at, after.trace_id, after.span_id],
            write=False,
        )
        return (int(row[0]), _utc(row[1])) if row else (0, None)

    # -- progress -----------------------------------------------------------------------

    def record_online_progress(
        self, project: str, name: str, owner: str, update: ProgressUpdate
    ) -> bool:
        """In one transaction, while the rule exists: store its scores as feedback (an id
        already stored is kept), add the counters and spend (the spend restarts when the
        period changes), note the last error; and, only while ``owner`` holds the lease,
        move the watermark and count the spans it passed. Returns whether ``owner`` holds
        the lease."""
        batch = _feedback_table(update.feedback) if update.feedback else None
        with self._write_lock:
            cur = self._cursor()
            try:
                cur.execute("BEGIN")
                rows = cur.execute(
                    "SELECT lease_owner FROM online_rules WHERE project = ? AND name = ?",
                    [project, name],
                ).fetchall()
                if not rows:
                    cur.execute("ROLLBACK")
                    return False
                if batch is not None:
                    # One INSERT from an Arrow table: executemany would hold the write lock
                    # (and so the ingest writer) for milliseconds per row.
                    cur.register("online_feedback", batch)
                    try:
                        cur.execute(
                            f"INSERT OR IGNORE INTO feedback ({_FEEDBACK_COLS}) "
                            f"SELECT {_FEEDBACK_COLS} FROM online_feedback"
                        )
                    finally:
                        cur.unregister("online_feedback")
                held = bool(rows[0][0] == owner)
                wm = update.watermark if held else None
                scored_at = update.at if update.scored else None
                error_at = update.at if update.last_error else None
                cur.execute(
                    "UPDATE online_rules SET scored = scored + ?, errors = errors + ?, "
                    "skipped = skipped + ?, unpriced = unpriced + ?, "
                    "spend_usd = CASE WHEN spend_period IS NOT DISTINCT FROM ? "
                    "  THEN spend_usd + ? ELSE ? END, spend_period = ?, "
                    "spend_total_usd = spend_total_usd + ?, "
                    "last_scored_at = coalesce(?, last_scored_at), "
                    "last_error = coalesce(?, last_error), "
                    "last_error_at = coalesce(?, last_error_at), "
                    "watermark_at = coalesce(?, watermark_at), "
                    "watermark_trace = coalesce(?, watermark_trace), "
                    "watermark_span = coalesce(?, watermark_span), "
                    "processed = processed + ?, sampled = sampled + ? "
                    "WHERE project = ? AND name = ?",
                    [
                        update.scored,
                        update.errors,
                        update.skipped,
                        update.unpriced,
                        update.period,
                        update.spend_usd,
                        update.spend_usd,
                        update.period,
                        update.spend_usd,
                        scored_at,
                        update.last_error,
                        error_at,
                        None if wm is None else _naive(wm.at),
                        None if wm is None else wm.trace_id,
                        None if wm is None else wm.span_id,
                        update.processed if wm is not None else 0,
                        update.sampled if wm is not None else 0,
                        project,
                        name,
                    ],
                )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            finally:
                cur.close()
        return held
