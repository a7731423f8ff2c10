"""Monitors, their results and alerts in the DuckDB store (mixed into DuckDBStore).

A run is claimed with a conditional UPDATE (a lease that expires), so schedulers sharing
one database never run a monitor twice at once; the same holds for alert deliveries.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import duckdb

from assay.monitors.values import (
    PENDING,
    Monitor,
    MonitorAlert,
    MonitorCheck,
    MonitorResult,
)
from assay.store.rows import utc as _utc

_MONITOR_COLS = (
    "project, name, spec, every_seconds, webhooks, enabled, created_at, updated_at, "
    "next_run_at, state, state_since, last_run_at, last_result_id, lease_owner, "
    "lease_expires_at"
)
_RESULT_COLS = (
    "result_id, project, monitor, ran_at, trigger, verdict, state, previous_state, "
    "window_start, window_end, reference, reference_start, reference_end, drifted, "
    "features, error, elapsed_ms"
)
_ALERT_COLS = (
    "alert_id, project, monitor, result_id, url, state, previous_state, payload, created_at, "
    "status, attempts, last_status, error, delivered_at, next_attempt_at"
)
_FREE = "(lease_expires_at IS NULL OR lease_expires_at <= ?)"


def _at(dt: datetime | None) -> datetime:
    out = _utc(dt)
    if out is None:
        raise ValueError("a required timestamp is missing")
    return out


def _monitor(row: Sequence[Any]) -> Monitor:
    return Monitor(
        project=row[0],
        name=row[1],
        check=MonitorCheck.from_json(json.loads(row[2])),
        every_seconds=int(row[3]),
        webhooks=tuple(json.loads(row[4])),
        enabled=bool(row[5]),
        created_at=_at(row[6]),
        updated_at=_at(row[7]),
        next_run_at=_utc(row[8]),
        state=row[9],
        state_since=_utc(row[10]),
        last_run_at=_utc(row[11]),
        last_result_id=row[12],
        lease_owner=row[13],
        lease_expires_at=_utc(row[14]),
    )


def _result(row: Sequence[Any], report: Any = None) -> MonitorResult:
    return MonitorResult(
        result_id=row[0],
        project=row[1],
        monitor=row[2],
        ran_at=_at(row[3]),
        trigger=row[4],
        verdict=row[5],
        state=row[6],
        previous_state=row[7],
        window_start=_utc(row[8]),
        window_end=_utc(row[9]),
        reference=row[10],
        reference_start=_utc(row[11]),
        reference_end=_utc(row[12]),
        drifted=tuple(json.loads(row[13])),
        features=tuple(json.loads(row[14])),
        error=row[15],
        elapsed_ms=float(row[16]),
        report=json.loads(report) if report else None,
    )


def _alert(row: Sequence[Any]) -> MonitorAlert:
    return MonitorAlert(
        alert_id=row[0],
        project=row[1],
        monitor=row[2],
        result_id=row[3],
        url=row[4],
        state=row[5],
        previous_state=row[6],
        payload=json.loads(row[7]),
        created_at=_at(row[8]),
        status=row[9],
        attempts=int(row[10]),
        last_status=None if row[11] is None else int(row[11]),
        error=row[12],
        delivered_at=_utc(row[13]),
        next_attempt_at=_utc(row[14]),
    )


class MonitorTables:
    """The monitor half of :class:`assay.store.duckdb.DuckDBStore`."""

    _write_lock: threading.Lock

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        raise NotImplementedError

    # -- definitions --------------------------------------------------------------------

    def create_monitor(self, monitor: Monitor) -> bool:
        """Store a new monitor; False when the project already has one of that name."""
        with self._write_lock:
            cur = self._cursor()
            try:
                row = cur.execute(
                    f"INSERT OR IGNORE INTO monitors ({_MONITOR_COLS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        monitor.project,
                        monitor.name,
                        json.dumps(monitor.check.to_json()),
                        monitor.every_seconds,
                        json.dumps(list(monitor.webhooks)),
                        monitor.enabled,
                        monitor.created_at,
                        monitor.updated_at,
                        monitor.next_run_at,
                        monitor.state,
                        monitor.state_since,
                        monitor.last_run_at,
                        monitor.last_result_id,
                        None,
                        None,
                    ],
                ).fetchone()
            finally:
                cur.close()
        return bool(row and row[0])

    def get_monitor(self, project: str, name: str) -> Monitor | None:
        """One monitor by name."""
        cur = self._cursor()
        try:
            row = cur.execute(
                f"SELECT {_MONITOR_COLS} FROM monitors WHERE project = ? AND name = ?",
                [project, name],
            ).fetchone()
        finally:
            cur.close()
        return None if row is None else _monitor(row)

    def list_monitors(self, project: str | None = None) -> list[Monitor]:
        """Monitors of one project (or all), by name."""
        sql = f"SELECT {_MONITOR_COLS} FROM monitors"
        params: list[Any] = []
        if project is not None:
            sql += " WHERE project = ?"
            params.append(project)
        cur = self._cursor()
        try:
            rows = cur.execute(sql + " ORDER BY project, name", params).fetchall()
        finally:
            cur.close()
        return [_monitor(r) for r in rows]

    def update_monitor(self, monitor: Monitor) -> bool:
        """Rewrite a monitor's definition (check, schedule, webhooks, enabled, next run);
        its state, history and lease are kept. False when it does not exist."""
        with self._write_lock:
            cur = self._cursor()
            try:
                row = cur.execute(
                    "UPDATE monitors SET spec = ?, every_seconds = ?, webhooks = ?, enabled = ?, "
                    "updated_at = ?, next_run_at = ? WHERE project = ? AND name = ?",
                    [
                        json.dumps(monitor.check.to_json()),
                        monitor.every_seconds,
                        json.dumps(list(monitor.webhooks)),
                        monitor.enabled,
                        monitor.updated_at,
                        monitor.next_run_at,
                        monitor.project,
                        monitor.name,
                    ],
                ).fetchone()
            finally:
                cur.close()
        return bool(row and row[0])

    def delete_monitor(self, project: str, name: str) -> bool:
        """Remove a monitor with its results and alerts; False when it does not exist."""
        with self._write_lock:
            cur = self._cursor()
            try:
                cur.execute("BEGIN")
                row = cur.execute(
                    "DELETE FROM monitors WHERE project = ? AND name = ?", [project, name]
                ).fetchone()
                cur.execute(
                    "DELETE FROM monitor_results WHERE project = ? AND monitor = ?",
                    [project, name],
                )
                cur.execute(
                    "DELETE FROM monitor_alerts WHERE project = ? AND monitor = ?",
                    [project, name],
                )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            finally:
                cur.close()
        return bool(row and row[0])

    # -- running ---------------------------------------------------------------------------

    def claim_monitor(
        self,
        owner: str,
        now: datetime,
        lease_until: datetime,
        project: str | None = None,
        name: str | None = None,
    ) -> Monitor | None:
        """Take the lease on one monitor and return it, or None.

        Without a name: the most overdue enabled monitor whose ``next_run_at`` has come.
        With ``project`` and ``name``: that monitor whenever it is not leased (a manual run).
        The claim is a conditional UPDATE, so two schedulers never hold one monitor.
        """
        with self._write_lock:
            cur = self._cursor()
            try:
                if name is not None:
                    candidates = [(project, name)]
                    due = ""
                    due_params: list[Any] = []
                else:
                    due = " AND enabled AND next_run_at <= ?"
                    due_params = [now]
                    candidates = [
                        (r[0], r[1])
                        for r in cur.execute(
                            f"SELECT project, name FROM monitors WHERE {_FREE}{due} "
                            "ORDER BY next_run_at, project, name LIMIT 8",
                            [now, *due_params],
                        ).fetchall()
                    ]
                for proj, nm in candidates:
                    row = cur.execute(
                        "UPDATE monitors SET lease_owner = ?, lease_expires_at = ? "
                        f"WHERE project = ? AND name = ? AND {_FREE}{due} "
                        f"RETURNING {_MONITOR_COLS}",
                        [owner, lease_until, proj, nm, now, *due_params],
                    ).fetchone()
                    if row is not None:
                        return _monitor(row)
            finally:
                cur.close()
        return None

    def renew_monitor_lease(
        self, project: str, name: str, owner: str, lease_until: datetime
    ) -> bool:
        """Extend a held lease; False when ``owner`` no longer holds it."""
        with self._write_lock:
            cur = self._cursor()
            try:
                row = cur.execute(
                    "UPDATE monitors SET lease_expires_at = ? "
                    "WHERE project = ? AND name = ? AND lease_owner = ?",
                    [lease_until, project, name, owner],
                ).fetchone()
            finally:
                cur.close()
        return bool(row and row[0])

    def record_monitor_run(
        self,
        result: MonitorResult,
        owner: str,
        next_run_at: datetime | None,
        alerts: Sequence[MonitorAlert],
        alert_lease_until: datetime | None = None,
    ) -> bool:
        """In one transaction: store a run's result; and, while ``owner`` still holds the
        lease, move the monitor's state, set its next run (None keeps it), release the lease
        and queue the alerts (leased to ``owner`` until ``alert_lease_until``). Returns
        whether the lease was still held (if not, only the result is stored; nothing is
        when the monitor was deleted while it ran)."""
        with self._write_lock:
            cur = self._cursor()
            try:
                cur.execute("BEGIN")
                exists = cur.execute(
                    "SELECT count(*) FROM monitors WHERE project = ? AND name = ?",
                    [result.project, result.monitor],
                ).fetchone()
                if not (exists and exists[0]):  # deleted while it ran: keep no orphan rows
                    cur.execute("ROLLBACK")
                    return False
                cur.execute(
                    f"INSERT INTO monitor_results ({_RESULT_COLS}, report) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        result.result_id,
                        result.project,
                        result.monitor,
                        result.ran_at,
                        result.trigger,
                        result.verdict,
                        result.state,
                        result.previous_state,
                        result.window_start,
                        result.window_end,
                        result.reference,
                        result.reference_start,
                        result.reference_end,
                        json.dumps(list(result.drifted)),
                        json.dumps(list(result.features)),
                        result.error,
                        result.elapsed_ms,
                        None if result.report is None else json.dumps(result.report),
                    ],
                )
                row = cur.execute(
                    "UPDATE monitors SET "
                    "state_since = CASE WHEN ?::VARCHAR IS NOT NULL "
                    "  AND state IS DISTINCT FROM ? THEN ? ELSE state_since END, "
                    "state = coalesce(?, state), last_run_at = ?, last_result_id = ?, "
                    "next_run_at = coalesce(?, next_run_at), "
                    "lease_owner = NULL, lease_expires_at = NULL "
                    "WHERE project = ? AND name = ? AND lease_owner = ?",
                    [
                        result.state,
                        result.state,
                        result.ran_at,
                        result.state,
                        result.ran_at,
                        result.result_id,
                        next_run_at,
                        result.project,
                        result.monitor,
                        owner,
                    ],
                ).fetchone()
                owned = bool(row and row[0])
                if owned:
                    for a in alerts:
                        cur.execute(
                            f"INSERT INTO monitor_alerts ({_ALERT_COLS}, lease_owner, "
                            "lease_expires_at) VALUES "
                            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [
                                a.alert_id,
                                a.project,
                                a.monitor,
                                a.result_id,
                                a.url,
                                a.state,
                                a.previous_state,
                                json.dumps(a.payload),
                                a.created_at,
                                a.status,
                                a.attempts,
                                a.last_status,
                                a.error,
                                a.delivered_at,
                                a.next_attempt_at,
                                owner if alert_lease_until else None,
                                alert_lease_until,
                            ],
                        )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            finally:
                cur.close()
        return owned

    def release_monitor(self, project: str, name: str, owner: str) -> bool:
        """Give up a held lease without recording a run (the run could not start)."""
        with self._write_lock:
            cur = self._cursor()
            try:
                row = cur.execute(
                    "UPDATE monitors SET lease_owner = NULL, lease_expires_at = NULL "
                    "WHERE project = ? AND name = ? AND lease_owner = ?",
                    [project, name, owner],
                ).fetchone()
            finally:
                cur.close()
        return bool(row and row[0])

    def list_monitor_results(
        self, project: str, name: str, limit: int = 100, since: datetime | None = None
    ) -> list[MonitorResult]:
        """A monitor's results, newest first (without the full reports)."""
        sql = f"SELECT {_RESULT_COLS} FROM monitor_results WHERE project = ? AND monitor = ?"
        params: list[Any] = [project, name]
        if since is not None:
            sql += " AND ran_at >= ?"
            params.append(since)
        cur = self._cursor()
        try:
            rows = cur.execute(
                sql + " ORDER BY ran_at DESC, result_id DESC LIMIT ?", [*params, limit]
            ).fetchall()
        finally:
            cur.close()
        return [_result(r) for r in rows]

    def get_monitor_result(self, project: str, name: str, result_id: str) -> MonitorResult | None:
        """One result with its full drift report."""
        cur = self._cursor()
        try:
            row = cur.execute(
                f"SELECT {_RESULT_COLS}, report FROM monitor_results "
                "WHERE project = ? AND monitor = ? AND result_id = ?",
                [project, name, result_id],
            ).fetchone()
        finally:
            cur.close()
        return None if row is None else _result(row[:-1], row[-1])

    # -- alerts ----------------------------------------------------------------------------

    def claim_alerts(
        self, owner: str, now: datetime, lease_until: datetime, limit: int = 20
    ) -> list[MonitorAlert]:
        """Lease pending alerts nobody is delivering (their owner stopped or crashed) whose
        next attempt is due, oldest first."""
        with self._write_lock:
            cur = self._cursor()
            try:
                rows = cur.execute(
                    "UPDATE monitor_alerts SET lease_owner = ?, lease_expires_at = ? "
                    "WHERE alert_id IN (SELECT alert_id FROM monitor_alerts "
                    f"  WHERE status = ? AND {_FREE} "
                    "  AND (next_attempt_at IS NULL OR next_attempt_at <= ?) "
                    "  ORDER BY created_at, alert_id LIMIT ?) "
                    f"AND status = ? AND {_FREE} RETURNING {_ALERT_COLS}",
                    [owner, lease_until, PENDING, now, now, limit, PENDING, now],
                ).fetchall()
            finally:
                cur.close()
        return sorted((_alert(r) for r in rows), key=lambda a: (a.created_at, a.alert_id))

    def save_alert_attempt(
        self, alert: MonitorAlert, owner: str, lease_until: datetime | None
    ) -> bool:
        """Record a delivery attempt (status, attempts, last HTTP status, error, times) of
        an alert ``owner`` holds; ``lease_until`` None releases it. False when not held."""
        with self._write_lock:
            cur = self._cursor()
            try:
                row = cur.execute(
                    "UPDATE monitor_alerts SET status = ?, attempts = ?, last_status = ?, "
                    "error = ?, delivered_at = ?, next_attempt_at = ?, "
                    "lease_owner = CASE WHEN ?::TIMESTAMP IS NULL THEN NULL ELSE lease_owner END, "
                    "lease_expires_at = ? WHERE alert_id = ? AND lease_owner = ?",
                    [
                        alert.status,
                        alert.attempts,
                        alert.last_status,
                        alert.error,
                        alert.delivered_at,
                        alert.next_attempt_at,
                        lease_until,
                        lease_until,
                        alert.alert_id,
                        owner,
                    ],
                ).fetchone()
            finally:
                cur.close()
        return bool(row and row[0])

    def list_monitor_alerts(self, project: str, name: str, limit: int = 50) -> list[MonitorAlert]:
        """A monitor's alerts with their delivery status, newest first."""
        cur = self._cursor()
        try:
            rows = cur.execute(
                f"SELECT {_ALERT_COLS} FROM monitor_alerts WHERE project = ? AND monitor = ? "
                "ORDER BY created_at DESC, alert_id DESC LIMIT ?",
                [project, name, limit],
            ).fetchall()
        finally:
            cur.close()
        return [_alert(r) for r in rows]
