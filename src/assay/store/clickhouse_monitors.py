"""Monitors, their results and alerts on ClickHouse (mixed into ClickHouseStore).

Tables (all ReplacingMergeTree, read with ``FINAL``):

- ``monitors``: the definition, one row per (project, name), written by the API. A
  delete writes a version with ``deleted = 1``. Every creation gets a new
  ``generation``; results, alerts, state and leases carry it, so a monitor deleted and
  created again starts with no history (DuckDB deletes those rows; here they stay,
  unreachable).
- ``monitor_state``: state, last run and the next run a run set, one row per
  (project, name, generation), written only by the holder of the monitor's lease. The
  definition and the state are separate rows so an edit through the API and a run that
  finishes on another replica never overwrite each other; ``next_run_at`` is taken from
  whichever of the two set it last.
- ``monitor_results``: one row per run; ``monitor_alerts``: one row per (state change,
  webhook), a new version per delivery attempt.

Who runs a monitor, and who delivers an alert, is decided by the lease log of
:mod:`assay.store.clickhouse_leases` (scopes ``monitor`` and ``alert``), never by these
rows. :class:`HeldLeases` adds what the Store protocol needs on top of it: a winning
claim is *confirmed* (a renew event right after it wins), so "does ``owner`` still hold
it?" can be answered without a clock, as DuckDB's ``lease_owner = ?`` does.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from assay.monitors.values import PENDING, Monitor, MonitorAlert, MonitorCheck, MonitorResult
from assay.store.clickhouse import TIME, ClickHouseBase, Params, Schema
from assay.store.clickhouse_leases import HeldLeases, lease_key
from assay.store.rows import utc

_NTIME = f"Nullable({TIME})"


def _ddl(schema: Schema) -> list[str]:
    return (
        schema.table(
            "monitors",
            f"""project String, name String, generation String, spec String,
            every_seconds Int64, webhooks String, enabled UInt8, created_at {TIME},
            updated_at {TIME}, next_run_at {_NTIME}, deleted UInt8, version UInt64""",
            version="version",
            order_by="(project, name)",
        )
        + schema.table(
            "monitor_state",
            f"""project String, name String, generation String, state Nullable(String),
            state_since {_NTIME}, last_run_at {_NTIME}, last_result_id Nullable(String),
            next_run_at {_NTIME}, next_set UInt64, version UInt64""",
            version="version",
            order_by="(project, name, generation)",
        )
        + schema.table(
            "monitor_results",
            f"""project String, monitor String, generation String, result_id String,
            ran_at {TIME}, trigger LowCardinality(String), verdict Nullable(String),
            state Nullable(String), previous_state Nullable(String),
            window_start {_NTIME}, window_end {_NTIME}, reference Nullable(String),
            reference_start {_NTIME}, reference_end {_NTIME}, drifted String,
            features String, error Nullable(String), elapsed_ms Float64,
            report Nullable(String)""",
            order_by="(project, monitor, generation, result_id)",
        )
        + schema.table(
            "monitor_alerts",
            f"""alert_id String, project String, monitor String, generation String,
            result_id String, url String, state String, previous_state Nullable(String),
            payload String, created_at {TIME}, status LowCardinality(String),
            attempts Int64, last_status Nullable(Int64), error Nullable(String),
            delivered_at {_NTIME}, next_attempt_at {_NTIME}, version UInt64""",
            version="version",
            order_by="(project, monitor, alert_id)",
        )
    )


#: (migration name, DDL builder taking a Schema), applied in name order with the rest.
MIGRATIONS: list[tuple[str, Any]] = [("m005_monitors", _ddl)]
#: Copied inside the portable ``monitors`` rows (see :meth:`MonitorsTables.transfer_view`).
TRANSFER_PARTS = frozenset({"monitor_state"})

_DEF_COLS = (
    "project, name, generation, spec, every_seconds, webhooks, enabled, created_at, "
    "updated_at, next_run_at, version"
)
_STATE_COLS = (
    "project, name, generation, state, state_since, last_run_at, last_result_id, "
    "next_run_at, next_set, version"
)
_RESULT_COLS = (
    "result_id, project, monitor, ran_at, trigger, verdict, state, previous_state, "
    "window_start, window_end, reference, reference_start, reference_end, drifted, "
    "features, error, elapsed_ms"
)
_ALERT_COLS = (
    "alert_id, project, monitor, result_id, url, state, previous_state, payload, created_at, "
    "status, attempts, last_status, error, delivered_at, next_attempt_at, generation"
)
_TICK = timedelta(microseconds=1)


def _cols(spec: str) -> list[str]:
    return [c.strip() for c in spec.split(",")]


@dataclass(frozen=True)
class _Def:
    project: str
    name: str
    generation: str
    spec: str
    every_seconds: int
    webhooks: str
    enabled: bool
    created_at: datetime
    updated_at: datetime
    next_run_at: datetime | None
    version: int

    @property
    def key(self) -> str:
        return lease_key(self.project, self.name, self.generation)


def _def(row: Sequence[Any]) -> _Def:
    return _Def(
        project=row[0],
        name=row[1],
        generation=row[2],
        spec=row[3],
        every_seconds=int(row[4]),
        webhooks=row[5],
        enabled=bool(row[6]),
        created_at=utc(row[7]) or row[7],
        updated_at=utc(row[8]) or row[8],
        next_run_at=utc(row[9]),
        version=int(row[10]),
    )


def _result(row: Sequence[Any], report: Any = None) -> MonitorResult:
    return MonitorResult(
        result_id=row[0],
        project=row[1],
        monitor=row[2],
        ran_at=utc(row[3]) or row[3],
        trigger=row[4],
        verdict=row[5],
        state=row[6],
        previous_state=row[7],
        window_start=utc(row[8]),
        window_end=utc(row[9]),
        reference=row[10],
        reference_start=utc(row[11]),
        reference_end=utc(row[12]),
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
        created_at=utc(row[8]) or row[8],
        status=row[9],
        attempts=int(row[10]),
        last_status=None if row[11] is None else int(row[11]),
        error=row[12],
        delivered_at=utc(row[13]),
        next_attempt_at=utc(row[14]),
    )


def _alert_row(a: MonitorAlert, generation: str, version: int) -> list[Any]:
    return [
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
        generation,
        version,
    ]


class MonitorsTables(ClickHouseBase):
    """The monitors methods of :class:`assay.store.Store` on ClickHouse."""

    def _monitor_leases(self) -> HeldLeases:
        return HeldLeases(self, "monitor")

    def _alert_leases(self) -> HeldLeases:
        return HeldLeases(self, "alert")

    # -- reading ----------------------------------------------------------------------

    def _defs(self, project: str | None = None, name: str | None = None) -> list[_Def]:
        """Live (not deleted) definitions, by project and name."""
        p = Params()
        sql = f"SELECT {_DEF_COLS} FROM {{db}}.monitors FINAL WHERE deleted = 0"
        if project is not None:
            sql += f" AND project = {p(project, 'String')}"
        if name is not None:
            sql += f" AND name = {p(name, 'String')}"
        return [_def(r) for r in self.q(sql + " ORDER BY project, name", p)]

    def _states(self, defs: Sequence[_Def]) -> dict[tuple[str, str, str], tuple[Any, ...]]:
        if not defs:
            return {}
        p = Params()
        keys = [(d.project, d.name, d.generation) for d in defs]
        rows = self.q(
            f"SELECT {_STATE_COLS} FROM {{db}}.monitor_state FINAL "
            f"WHERE (project, name, generation) IN "
            f"{p(keys, 'Array(Tuple(String, String, String))')}",
            p,
        )
        return {(r[0], r[1], r[2]): r for r in rows}

    def _monitors(self, defs: Sequence[_Def]) -> list[Monitor]:
        states = self._states(defs)
        leases = self._monitor_leases().current([d.key for d in defs])
        out = []
        for d in defs:
            st = states.get((d.project, d.name, d.generation))
            next_run = d.next_run_at
            if st is not None and int(st[8]) > d.version:  # a run set it after the last edit
                next_run = utc(st[7])
            lease = leases.get(d.key)
            out.append(
                Monitor(
                    project=d.project,
                    name=d.name,
                    check=MonitorCheck.from_json(json.loads(d.spec)),
                    every_seconds=d.every_seconds,
                    webhooks=tuple(json.loads(d.webhooks)),
                    enabled=d.enabled,
                    created_at=d.created_at,
                    updated_at=d.updated_at,
                    next_run_at=next_run,
                    state=None if st is None else st[3],
                    state_since=None if st is None else utc(st[4]),
                    last_run_at=None if st is None else utc(st[5]),
                    last_result_id=None if st is None else st[6],
                    lease_owner=None if lease is None else lease.owner,
                    lease_expires_at=None if lease is None else lease.expires_at,
                )
            )
        return out

    def _write_def(self, monitor: Monitor, generation: str, created_at: datetime) -> None:
        self.insert_rows(
            "monitors",
            [*_cols(_DEF_COLS), "deleted"],
            [
                [
                    monitor.project,
                    monitor.name,
                    generation,
                    json.dumps(monitor.check.to_json()),
                    monitor.every_seconds,
                    json.dumps(list(monitor.webhooks)),
                    int(monitor.enabled),
                    created_at,
                    monitor.updated_at,
                    monitor.next_run_at,
                    self.version(),
                    0,
                ]
            ],
        )

    # -- definitions --------------------------------------------------------------------

    def create_monitor(self, monitor: Monitor) -> bool:
        """Store a new monitor; False when the project already has one of that name."""
        with self._write_lock:
            if self._defs(monitor.project, monitor.name):
                return False
            generation = uuid.uuid4().hex
            # The state first: a definition is never visible without the state it starts in.
            self.insert_rows(
                "monitor_state",
                _cols(_STATE_COLS),
                [
                    [
                        monitor.project,
                        monitor.name,
                        generation,
                        monitor.state,
                        monitor.state_since,
                        monitor.last_run_at,
                        monitor.last_result_id,
                        None,
                        0,
                        self.version(),
                    ]
                ],
            )
            self._write_def(monitor, generation, monitor.created_at)
        return True

    def get_monitor(self, project: str, name: str) -> Monitor | None:
        """One monitor by name."""
        found = self._monitors(self._defs(project, name))
        return found[0] if found else None

    def list_monitors(self, project: str | None = None) -> list[Monitor]:
        """Monitors of one project (or all), by name."""
        return self._monitors(self._defs(project))

    def update_monitor(self, monitor: Monitor) -> bool:
        """Rewrite a monitor's definition (check, schedule, webhooks, enabled, next run);
        its state, history and lease are kept. False when it does not exist."""
        with self._write_lock:
            found = self._defs(monitor.project, monitor.name)
            if not found:
                return False
            self._write_def(monitor, found[0].generation, found[0].created_at)
        return True

    def delete_monitor(self, project: str, name: str) -> bool:
        """Remove a monitor with its results and alerts (a later monitor of the same name
        starts a new generation, which sees none of them); False when it does not exist."""
        with self._write_lock:
            found = self._defs(project, name)
            if not found:
                return False
            d = found[0]
            self.insert_rows(
                "monitors",
                [*_cols(_DEF_COLS), "deleted"],
                [
                    [
                        d.project,
                        d.name,
                        d.generation,
                        d.spec,
                        d.every_seconds,
                        d.webhooks,
                        int(d.enabled),
                        d.created_at,
                        d.updated_at,
                        d.next_run_at,
                        max(self.version(), d.version + 1),
                        1,
                    ]
                ],
            )
        return True

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
        The lease log decides; after winning, the monitor is read again and the lease given
        back if it is no longer due (another replica ran it meanwhile) or was replaced."""
        named = name is not None
        if named:
            if project is None:
                return None
            candidates = self._defs(project, name)
        else:
            defs = self._defs()
            pairs = [(m, d) for m, d in zip(self._monitors(defs), defs, strict=True)]
            due = sorted(
                ((m, d) for m, d in pairs if self._due(m, now)),
                key=lambda md: (md[0].next_run_at, md[0].project, md[0].name),
            )
            candidates = [d for _, d in due]
        leases = self._monitor_leases()
        held = leases.holders(now, [d.key for d in candidates])
        for d in candidates:
            if d.key in held or not leases.take(d.key, owner, now, lease_until):
                continue
            fresh = self._defs(d.project, d.name)
            monitor = self._monitors(fresh)[0] if fresh else None
            if (
                monitor is None
                or fresh[0].generation != d.generation
                or (not named and not self._due(monitor, now))
            ):
                leases.drop(d.key, owner)
                continue
            return replace(monitor, lease_owner=owner, lease_expires_at=lease_until)
        return None

    @staticmethod
    def _due(m: Monitor, now: datetime) -> bool:
        return m.enabled and m.next_run_at is not None and m.next_run_at <= now

    def renew_monitor_lease(
        self, project: str, name: str, owner: str, lease_until: datetime
    ) -> bool:
        """Extend a held lease; False when ``owner`` no longer holds it."""
        found = self._defs(project, name)
        return bool(found) and self._monitor_leases().extend(found[0].key, owner, lease_until)

    def release_monitor(self, project: str, name: str, owner: str) -> bool:
        """Give up a held lease without recording a run (the run could not start)."""
        found = self._defs(project, name)
        return bool(found) and self._monitor_leases().drop(found[0].key, owner)

    def record_monitor_run(
        self,
        result: MonitorResult,
        owner: str,
        next_run_at: datetime | None,
        alerts: Sequence[MonitorAlert],
        alert_lease_until: datetime | None = None,
    ) -> bool:
        """Store a run's result; and, while ``owner`` still holds the lease, queue the
        alerts (leased to ``owner`` until ``alert_lease_until``), move the monitor's state,
        set its next run (None keeps it) and release the lease, in that order (a crash
        part-way leaves at worst an alert sent twice, never one lost). Returns whether the
        lease was still held (if not, only the result is stored; nothing is when the
        monitor was deleted while it ran)."""
        with self._write_lock:
            found = self._defs(result.project, result.monitor)
            if not found:  # deleted while it ran: keep no orphan rows
                return False
            d = found[0]
            leases = self._monitor_leases()
            owned = leases.held(d.key, owner) is not None
            self.insert_rows(
                "monitor_results",
                ["generation", *_cols(_RESULT_COLS), "report"],
                [
                    [
                        d.generation,
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
                    ]
                ],
            )
            if not owned:
                return False
            if alert_lease_until is not None:
                alert_leases = self._alert_leases()
                claim_at = min(result.ran_at, alert_lease_until - _TICK)
                for a in alerts:  # leased before they are visible, so nobody else takes one
                    alert_leases.take(
                        lease_key(a.project, a.alert_id), owner, claim_at, alert_lease_until
                    )
            version = self.version()
            self.insert_rows(
                "monitor_alerts",
                [*_cols(_ALERT_COLS), "version"],
                [_alert_row(a, d.generation, version) for a in alerts],
            )
            st = self._states([d]).get((d.project, d.name, d.generation))
            old_state = None if st is None else st[3]
            state_since = None if st is None else utc(st[4])
            if result.state is not None and old_state != result.state:
                state_since = result.ran_at
            version = max(self.version(), int(st[9]) + 1 if st is not None else 0)
            next_at: datetime | None = next_run_at
            next_set = version
            if next_run_at is None:
                next_at = None if st is None else utc(st[7])
                next_set = 0 if st is None else int(st[8])
            self.insert_rows(
                "monitor_state",
                _cols(_STATE_COLS),
                [
                    [
                        d.project,
                        d.name,
                        d.generation,
                        result.state if result.state is not None else old_state,
                        state_since,
                        result.ran_at,
                        result.result_id,
                        next_at,
                        next_set,
                        version,
                    ]
                ],
            )
            leases.drop(d.key, owner)
        return True

    def list_monitor_results(
        self, project: str, name: str, limit: int = 100, since: datetime | None = None
    ) -> list[MonitorResult]:
        """A monitor's results, newest first (without the full reports)."""
        found = self._defs(project, name)
        if not found:
            return []
        p = Params()
        sql = (
            f"SELECT {_RESULT_COLS} FROM {{db}}.monitor_results FINAL "
            f"WHERE project = {p(project, 'String')} AND monitor = {p(name, 'String')} "
            f"AND generation = {p(found[0].generation, 'String')}"
        )
        if since is not None:
            sql += f" AND ran_at >= {p(since, TIME)}"
        sql += f" ORDER BY ran_at DESC, result_id DESC LIMIT {p(max(limit, 0), 'UInt64')}"
        return [_result(r) for r in self.q(sql, p)]

    def get_monitor_result(self, project: str, name: str, result_id: str) -> MonitorResult | None:
        """One result with its full drift report."""
        found = self._defs(project, name)
        if not found:
            return None
        p = Params()
        rows = self.q(
            f"SELECT {_RESULT_COLS}, report FROM {{db}}.monitor_results FINAL "
            f"WHERE project = {p(project, 'String')} AND monitor = {p(name, 'String')} "
            f"AND generation = {p(found[0].generation, 'String')} "
            f"AND result_id = {p(result_id, 'String')}",
            p,
        )
        return None if not rows else _result(rows[0][:-1], rows[0][-1])

    # -- alerts ----------------------------------------------------------------------------

    def _alerts(self, where: str, p: Params, tail: str = "") -> list[tuple[Any, ...]]:
        """Alert rows of monitors that exist (their current generation)."""
        live = {(d.project, d.name): d.generation for d in self._defs()}
        rows = self.q(
            f"SELECT {_ALERT_COLS}, version FROM {{db}}.monitor_alerts FINAL "
            f"WHERE {where} {tail}",
            p,
        )
        return [r for r in rows if live.get((r[1], r[2])) == r[15]]

    def claim_alerts(
        self, owner: str, now: datetime, lease_until: datetime, limit: int = 20
    ) -> list[MonitorAlert]:
        """Lease pending alerts nobody is delivering (their owner stopped or crashed) whose
        next attempt is due, oldest first."""
        p = Params()
        rows = self._alerts(
            f"status = {p(PENDING, 'String')} AND "
            f"(next_attempt_at IS NULL OR next_attempt_at <= {p(now, TIME)})",
            p,
            "ORDER BY created_at, alert_id",
        )
        leases = self._alert_leases()
        keys = [lease_key(r[1], r[0]) for r in rows]
        held = leases.holders(now, keys)
        out: list[MonitorAlert] = []
        for row, key in zip(rows, keys, strict=True):
            if len(out) >= limit:
                break
            if key in held or not leases.take(key, owner, now, lease_until):
                continue
            q = Params()
            again = self._alerts(
                f"alert_id = {q(row[0], 'String')} AND status = {q(PENDING, 'String')}", q
            )
            if not again:  # delivered (or deleted) between the read and the claim
                leases.drop(key, owner)
                continue
            out.append(_alert(again[0]))
        return sorted(out, key=lambda a: (a.created_at, a.alert_id))

    def save_alert_attempt(
        self, alert: MonitorAlert, owner: str, lease_until: datetime | None
    ) -> bool:
        """Record a delivery attempt (status, attempts, last HTTP status, error, times) of
        an alert ``owner`` holds; ``lease_until`` None releases it. False when not held."""
        with self._write_lock:
            p = Params()
            rows = self._alerts(
                f"project = {p(alert.project, 'String')} AND monitor = "
                f"{p(alert.monitor, 'String')} AND alert_id = {p(alert.alert_id, 'String')}",
                p,
            )
            if not rows:
                return False
            key = lease_key(alert.project, alert.alert_id)
            leases = self._alert_leases()
            if lease_until is not None:
                if not leases.extend(key, owner, lease_until):
                    return False
            elif leases.held(key, owner) is None:
                return False
            stored = _alert(rows[0])
            new = replace(
                stored,
                status=alert.status,
                attempts=alert.attempts,
                last_status=alert.last_status,
                error=alert.error,
                delivered_at=alert.delivered_at,
                next_attempt_at=alert.next_attempt_at,
            )
            version = max(self.version(), int(rows[0][16]) + 1)
            self.insert_rows(
                "monitor_alerts",
                [*_cols(_ALERT_COLS), "version"],
                [_alert_row(new, rows[0][15], version)],
            )
            if lease_until is None:  # after the new status, so nobody re-sends it
                leases.drop(key, owner)
        return True

    def list_monitor_alerts(self, project: str, name: str, limit: int = 50) -> list[MonitorAlert]:
        """A monitor's alerts with their delivery status, newest first."""
        found = self._defs(project, name)
        if not found:
            return []
        p = Params()
        rows = self.q(
            f"SELECT {_ALERT_COLS}, version FROM {{db}}.monitor_alerts FINAL "
            f"WHERE project = {p(project, 'String')} AND monitor = {p(name, 'String')} "
            f"AND generation = {p(found[0].generation, 'String')} "
            f"ORDER BY created_at DESC, alert_id DESC LIMIT {p(max(limit, 0), 'UInt64')}",
            p,
        )
        return [_alert(r) for r in rows]

    # -- whole-store copy (assay.store.transfer) ----------------------------------------
