"""Monitor values: a saved definition, one run's result, one alert (frozen dataclasses).

This module imports nothing heavy: the store builds these values without loading the
drift statistics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

#: A monitor's state: the last decided verdict (``inconclusive`` runs leave it unchanged).
OK = "ok"
DRIFT = "drift"
ERROR = "error"
STATES = (OK, DRIFT, ERROR)
#: Delivery status of an alert.
PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
#: What started a run.
SCHEDULE = "schedule"
MANUAL = "manual"
#: Version of the webhook payload (bump on a breaking change).
ALERT_VERSION = 1


class MonitorError(ValueError):
    """A monitor definition or request that cannot be used; the message says the fix."""


class MonitorNotFoundError(MonitorError):
    """No monitor of that name in the project."""


class MonitorBusyError(MonitorError):
    """The monitor is being run (its lease is held) by a scheduler or another request."""


@dataclass(frozen=True)
class MonitorCheck:
    """The drift check a monitor runs, as the user wrote it. Windows are relative: each run
    reads them as of its own time."""

    #: Current window: a duration (``1d`` = the last day) or a relative range (``1d..1h``).
    window: str = "1d"
    #: Reference range relative to the run (``30d..1d``), or None with a golden reference.
    reference: str | None = None
    #: A golden set as the reference: ``NAME`` (newest version) or ``NAME@VERSION``.
    reference_goldens: str | None = None
    #: Span filters shared by both windows (model, service, route, release, kind …).
    filters: Mapping[str, str] = field(default_factory=dict)
    #: Attribute equality filters.
    attributes: Mapping[str, str] = field(default_factory=dict)
    all_kinds: bool = False
    features: tuple[str, ...] = ()
    score_attributes: tuple[str, ...] = ()
    #: Embedder name; None uses the server's ``ASSAY_EMBEDDER`` at run time.
    embedder: str | None = None
    alpha: float = 0.05
    correction: str = "holm"
    max_samples: int = 20_000
    max_embeddings: int = 5_000
    seed: int = 0
    examples: int = 10

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (stored in the database and returned by the API)."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["filters"] = dict(self.filters)
        out["attributes"] = dict(self.attributes)
        out["features"] = list(self.features)
        out["score_attributes"] = list(self.score_attributes)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MonitorCheck:
        """The inverse of :meth:`to_json`; unknown keys (from a newer assay) are ignored."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for name in ("features", "score_attributes"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)


@dataclass(frozen=True)
class Monitor:
    """A saved drift check with its schedule, webhooks and current state."""

    project: str
    name: str
    check: MonitorCheck
    every_seconds: int
    created_at: datetime
    updated_at: datetime
    webhooks: tuple[str, ...] = ()
    enabled: bool = True
    #: When the scheduler runs it next (None while disabled).
    next_run_at: datetime | None = None
    #: ``ok``, ``drift``, ``error``, or None before any run decided.
    state: str | None = None
    state_since: datetime | None = None
    last_run_at: datetime | None = None
    last_result_id: str | None = None
    #: Who is running it, and until when the claim holds without renewal.
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None

    def running(self, now: datetime) -> bool:
        """True while a scheduler (or a manual run) holds an unexpired lease on it."""
        return self.lease_expires_at is not None and self.lease_expires_at > now


@dataclass(frozen=True)
class MonitorResult:
    """One run of a monitor: a point of its time series."""

    result_id: str
    project: str
    monitor: str
    ran_at: datetime
    #: ``schedule`` or ``manual``.
    trigger: str
    #: The check's verdict (``drift``, ``no drift``, ``inconclusive``); None when it failed.
    verdict: str | None
    #: The state this run decided (``ok``, ``drift``, ``error``); None for an inconclusive
    #: run, which leaves the monitor's state as it was.
    state: str | None
    previous_state: str | None
    window_start: datetime | None
    window_end: datetime | None
    #: The reference as written (a range, or ``golden NAME@VERSION``).
    reference: str | None
    reference_start: datetime | None
    reference_end: datetime | None
    drifted: tuple[str, ...]
    #: Per feature: verdict, sizes, and per test statistic / effect / p_adjusted / drifted.
    features: tuple[Mapping[str, Any], ...]
    error: str | None
    elapsed_ms: float
    #: The full drift report (only when read one result at a time).
    report: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class MonitorAlert:
    """A webhook POST for one state change to one URL, with its delivery status."""

    alert_id: str
    project: str
    monitor: str
    result_id: str
    url: str
    state: str
    previous_state: str | None
    payload: Mapping[str, Any]
    created_at: datetime
    #: ``pending``, ``delivered`` or ``failed`` (gave up).
    status: str = PENDING
    attempts: int = 0
    #: HTTP status of the last attempt (None when it got no answer).
    last_status: int | None = None
    error: str | None = None
    delivered_at: datetime | None = None
    next_attempt_at: datetime | None = None


def new_state(verdict: str | None, failed: bool) -> str | None:
    """The state a run decides: ``error`` when it failed, ``drift``/``ok`` from the verdict,
    None (unchanged) when nothing could be tested."""
    if failed:
        return ERROR
    if verdict == "drift":
        return DRIFT
    if verdict == "no drift":
        return OK
    return None


def should_alert(previous: str | None, state: str | None) -> bool:
    """Alerts go out on a change of state only; a first run that finds nothing wrong is not
    news."""
    if state is None or state == previous:
        return False
    return not (previous is None and state == OK)
