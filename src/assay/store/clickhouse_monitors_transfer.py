"""The monitors' half of ``assay store migrate`` on ClickHouse (mixed into ClickHouseStore).

Monitors travel in a portable form: the definition joined with its run state, without
the generation (a ClickHouse-only detail) or a lease. Results and alerts travel for
monitors that exist, and are written back under the generation of their monitor as
stored in the destination.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from assay.store.clickhouse import TIME, Params
from assay.store.clickhouse_monitors import (
    _DEF_COLS,
    _NTIME,
    _STATE_COLS,
    MonitorsTables,
    _cols,
)


class MonitorsTransfer(MonitorsTables):
    """:class:`MonitorsTables` with the copy hooks of :mod:`assay.store.transfer`."""

    def _stored_types(self, table: str) -> dict[str, str]:
        """Column name -> type of a table as stored, in table order."""
        p = Params()
        rows = self.q(
            f"SELECT name, type FROM system.columns WHERE database = {p(self.database, 'String')}"
            f" AND table = {p(table, 'String')} ORDER BY position",
            p,
        )
        return {r[0]: r[1] for r in rows}

    def _live_generations(self) -> dict[tuple[str, str], str]:
        """(project, name) -> generation of every monitor that exists."""
        return {(d.project, d.name): d.generation for d in self._defs()}

    def transfer_view(self, table: str) -> tuple[dict[str, str], str] | None:
        """Monitors in their portable form (definition joined with its run state, no
        lease), and results and alerts of monitors that exist (their current generation;
        older generations' rows are deleted history), without the generation."""
        db = f"`{self.database}`"
        if table == "monitors":
            return _MONITOR_TYPES, (
                "SELECT d.project AS project, d.name AS name, d.spec AS spec, "
                "d.every_seconds AS every_seconds, d.webhooks AS webhooks, "
                "d.enabled AS enabled, d.created_at AS created_at, d.updated_at AS updated_at, "
                # As _monitors: the next run a run set wins over one set by an older edit.
                "if(s.next_set > d.version, s.next_run_at, d.next_run_at) AS next_run_at, "
                "s.state AS state, s.state_since AS state_since, s.last_run_at AS last_run_at, "
                "s.last_result_id AS last_result_id, "
                f"CAST(NULL AS Nullable(String)) AS lease_owner, "
                f"CAST(NULL AS {_NTIME}) AS lease_expires_at "
                f"FROM (SELECT * FROM {db}.monitors FINAL WHERE deleted = 0) AS d "
                f"LEFT JOIN (SELECT * FROM {db}.monitor_state FINAL) AS s "
                "ON s.project = d.project AND s.name = d.name AND s.generation = d.generation"
            )
        if table in ("monitor_results", "monitor_alerts"):
            stored = self._stored_types(table)
            types = {c: t for c, t in stored.items() if c not in ("generation", "version")}
            cols = ", ".join(f"r.`{c}` AS `{c}`" for c in types)
            if table == "monitor_alerts":
                types |= {"lease_owner": "Nullable(String)", "lease_expires_at": _NTIME}
                cols += (
                    ", CAST(NULL AS Nullable(String)) AS lease_owner, "
                    f"CAST(NULL AS {_NTIME}) AS lease_expires_at"
                )
            return types, (
                f"SELECT {cols} FROM (SELECT * FROM {db}.`{table}` FINAL) AS r "
                "WHERE (r.project, r.monitor, r.generation) IN "
                f"(SELECT project, name, generation FROM {db}.monitors FINAL WHERE deleted = 0)"
            )
        return super().transfer_view(table)

    def transfer_write(self, table: str, data: Any) -> bool:
        """Write portable monitors (a monitor that exists here keeps its generation, so
        a resumed copy finds its results again; a new one gets a new generation), and
        results and alerts under the generation of their monitor as stored here."""
        if table == "monitors":
            self._write_portable_monitors(data.to_pylist())
            return True
        if table not in ("monitor_results", "monitor_alerts"):
            return super().transfer_write(table, data)
        import pyarrow as pa

        live = self._live_generations()
        # A result of a monitor that does not exist (none should) is kept unreachable,
        # as a deleted monitor's history is here.
        generations = [
            live.get((p, m), "")
            for p, m in zip(
                data.column("project").to_pylist(), data.column("monitor").to_pylist(), strict=True
            )
        ]
        stored = self._stored_types(table)
        data = data.select([c for c in data.column_names if c in stored])
        data = data.append_column("generation", pa.array(generations, type=pa.string()))
        self.insert_versioned(table, data, stored)
        return True

    def _write_portable_monitors(self, rows: Sequence[dict[str, Any]]) -> None:
        with self._write_lock:
            live = self._live_generations()
            states: list[list[Any]] = []
            defs: list[list[Any]] = []
            for r in rows:
                generation = live.get((r["project"], r["name"])) or uuid.uuid4().hex
                # next_set 0: the definition's next run (written with it below) is current.
                states.append(
                    [
                        r["project"],
                        r["name"],
                        generation,
                        r["state"],
                        r["state_since"],
                        r["last_run_at"],
                        r["last_result_id"],
                        None,
                        0,
                        self.version(),
                    ]
                )
                defs.append(
                    [
                        r["project"],
                        r["name"],
                        generation,
                        _json_text(r["spec"]),
                        int(r["every_seconds"]),
                        _json_text(r["webhooks"]),
                        int(bool(r["enabled"])),
                        r["created_at"],
                        r["updated_at"],
                        r["next_run_at"],
                        self.version(),
                        0,
                    ]
                )
            # States first, as create_monitor: a definition is never visible without one.
            self.insert_rows("monitor_state", _cols(_STATE_COLS), states)
            self.insert_rows("monitors", [*_cols(_DEF_COLS), "deleted"], defs)


_MONITOR_TYPES = {
    "project": "String",
    "name": "String",
    "spec": "String",
    "every_seconds": "Int64",
    "webhooks": "String",
    "enabled": "UInt8",
    "created_at": TIME,
    "updated_at": TIME,
    "next_run_at": _NTIME,
    "state": "Nullable(String)",
    "state_since": _NTIME,
    "last_run_at": _NTIME,
    "last_result_id": "Nullable(String)",
    "lease_owner": "Nullable(String)",
    "lease_expires_at": _NTIME,
}


def _json_text(value: Any) -> str:
    """A JSON column's value as text (a backend may hand it over parsed)."""
    return value if isinstance(value, str) else json.dumps(value)

