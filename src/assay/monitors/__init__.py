"""Monitors: saved drift checks the server runs on a schedule, each result stored as a
point of a time series, and a JSON webhook when a monitor's state changes.

- :mod:`assay.monitors.values` — the frozen values (imports nothing heavy; the store uses it)
- :mod:`assay.monitors.definition` — validation, schedules, each run's drift spec, JSON forms
- :mod:`assay.monitors.runner` — one run: check, result row, alerts for a change of state
- :mod:`assay.monitors.scheduler` — the server's loop, leases, manual runs
- :mod:`assay.monitors.alerts` — webhook delivery with backoff, jitter and ``Retry-After``

Names of the last four are loaded on first use, so ``import assay.monitors`` (and the
store, which imports the values) does not load the drift statistics.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from assay.monitors.values import (
    DRIFT,
    ERROR,
    OK,
    Monitor,
    MonitorAlert,
    MonitorBusyError,
    MonitorCheck,
    MonitorError,
    MonitorNotFoundError,
    MonitorResult,
)

if TYPE_CHECKING:
    from assay.monitors.alerts import AlertSender, RetryPolicy
    from assay.monitors.definition import new_monitor
    from assay.monitors.runner import run_monitor
    from assay.monitors.scheduler import Scheduler

_LAZY = {
    "AlertSender": "assay.monitors.alerts",
    "RetryPolicy": "assay.monitors.alerts",
    "new_monitor": "assay.monitors.definition",
    "run_monitor": "assay.monitors.runner",
    "Scheduler": "assay.monitors.scheduler",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'assay.monitors' has no attribute {name!r}")


__all__ = [
    "DRIFT",
    "ERROR",
    "OK",
    "AlertSender",
    "Monitor",
    "MonitorAlert",
    "MonitorBusyError",
    "MonitorCheck",
    "MonitorError",
    "MonitorNotFoundError",
    "MonitorResult",
    "RetryPolicy",
    "Scheduler",
    "new_monitor",
    "run_monitor",
]
