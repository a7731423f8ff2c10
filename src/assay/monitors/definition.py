"""Monitor definitions: validate what a user types, build each run's drift spec, and the
JSON forms the API and CLI show."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from assay.drift.features import (
    FeatureError,
    check_embedder_name,
    resolve_embedder,
    select_features,
)
from assay.drift.report import DriftSpec, build_spec
from assay.drift.windows import WindowError, parse_range
from assay.embedders import EmbedderError
from assay.monitors.values import (
    Monitor,
    MonitorAlert,
    MonitorCheck,
    MonitorError,
    MonitorResult,
)
from assay.query import QueryError, parse_duration
from assay.store import Store

#: Shortest and longest schedule.
MIN_EVERY_SECONDS = 60
MAX_EVERY_SECONDS = 90 * 86_400
MAX_WEBHOOKS = 10
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_UNITS = (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))


def check_name(name: str) -> str:
    """A monitor name: letters, digits, ``_``, ``.``, ``-`` (it appears in URLs)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise MonitorError(
            f"monitor name {name!r} must start with a letter or digit and use only letters, "
            "digits, '_', '.' and '-' (at most 128), e.g. input-drift"
        )
    return name


def parse_every(every: str | int | float) -> int:
    """A schedule (``1h``, ``15m``, ``1d`` or seconds) as whole seconds, at least a minute."""
    if isinstance(every, bool):
        raise MonitorError(f"every {every!r} is not a duration; use e.g. 15m, 1h or 1d")
    if isinstance(every, int | float):
        # A huge int would overflow float(); anything that large is over the maximum anyway.
        seconds = float(min(every, MAX_EVERY_SECONDS + 1))
    else:
        try:
            seconds = parse_duration(str(every), "every").total_seconds()
        except QueryError as exc:
            raise MonitorError(str(exc)) from None
    if not math.isfinite(seconds) or seconds < MIN_EVERY_SECONDS:
        raise MonitorError(
            f"every {every!r} is shorter than the minimum of 1m; a drift check reads whole "
            "windows, so run it every 1m or less often (e.g. 1h)"
        )
    if seconds > MAX_EVERY_SECONDS:
        raise MonitorError(f"every {every!r} is longer than the maximum of 90d")
    return round(seconds)


def format_seconds(seconds: int) -> str:
    """``3600`` → ``1h``: the largest unit that divides the duration evenly."""
    for unit, size in _UNITS:
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def check_webhooks(urls: Iterable[str]) -> tuple[str, ...]:
    """Webhook URLs: http(s) with a host, at most :data:`MAX_WEBHOOKS`, duplicates dropped."""
    out: list[str] = []
    for url in urls:
        text = url.strip() if isinstance(url, str) else ""
        scheme, host = "", None
        try:
            parts = urlsplit(text)
            scheme, host = parts.scheme, parts.hostname
        except ValueError:  # e.g. an unclosed IPv6 bracket
            pass
        if not host or scheme not in ("http", "https") or len(text) > 2000:
            raise MonitorError(
                f"webhook {url!r} is not an http(s) URL with a host, e.g. "
                "https://hooks.example.com/assay"
            )
        if text not in out:
            out.append(text)
    if len(out) > MAX_WEBHOOKS:
        raise MonitorError(f"{len(out)} webhooks; a monitor posts to at most {MAX_WEBHOOKS}")
    return tuple(out)


def _check_relative(text: str, what: str, now: datetime, need_start: bool) -> None:
    """A monitor's windows move with each run: both ends must be 'ago' or 'now'."""
    later = now + timedelta(hours=1)
    try:
        a0, a1 = parse_range(text, now, what)
        b0, b1 = parse_range(text, later, what)
    except WindowError as exc:
        raise MonitorError(str(exc)) from None
    except OverflowError:
        raise MonitorError(
            f"{what} window {text!r} reaches before year 1; use a shorter duration"
        ) from None
    moved = timedelta(hours=1)
    fixed = (a1 is not None and b1 is not None and b1 - a1 != moved) or (
        a0 is not None and b0 is not None and b0 - a0 != moved
    )
    if fixed:
        raise MonitorError(
            f"{what} window {text!r} has a fixed time; a monitor reads its windows relative to "
            "each run, so write durations ago, e.g. '30d..1d' (reference) or '1d' (window)"
        )
    if need_start and a0 is None:
        raise MonitorError(
            f"{what} window {text!r} has no start; give its length, e.g. '1d' for the last day"
        )


def check_check(project: str, check: MonitorCheck, now: datetime | None = None) -> DriftSpec:
    """Validate a monitor's check as of ``now`` and return the spec it would run then."""
    now = now or datetime.now(UTC)
    if check.reference is not None and check.reference_goldens is not None:
        raise MonitorError("give one reference: a range (reference) or a golden set, not both")
    _check_relative(check.window, "current", now, need_start=True)
    if check.reference is not None:
        _check_relative(check.reference, "reference", now, need_start=False)
    try:
        select_features(check.features, check.score_attributes)
        if check.embedder is not None:
            # Resolving loads no model but fails now if the embedder cannot be used.
            resolve_embedder(check_embedder_name(check.embedder))
        return spec_for(project, check, now, None)
    except (WindowError, FeatureError) as exc:
        raise MonitorError(str(exc)) from None
    except EmbedderError as exc:
        raise MonitorError(f"embedder: {exc}") from None


def spec_for(
    project: str, check: MonitorCheck, now: datetime, default_embedder: str | None
) -> DriftSpec:
    """The drift spec of one run at ``now`` (windows read relative to it)."""
    return build_spec(
        project,
        current=check.window,
        reference=check.reference,
        reference_goldens=check.reference_goldens,
        filters=dict(check.filters),
        attributes=dict(check.attributes),
        all_kinds=check.all_kinds,
        now=now,
        features=tuple(check.features),
        score_attributes=tuple(check.score_attributes),
        embedder=check.embedder or default_embedder,
        alpha=check.alpha,
        correction=check.correction,
        max_samples=check.max_samples,
        max_embeddings=check.max_embeddings,
        seed=check.seed,
        examples=check.examples,
    )


def new_monitor(
    store: Store | None,
    project: str,
    name: str,
    check: MonitorCheck,
    every: str | int | float,
    webhooks: Iterable[str] = (),
    enabled: bool = True,
    now: datetime | None = None,
) -> Monitor:
    """A validated monitor, due at once (its first result comes on the next tick). With a
    store, a golden reference must exist in it."""
    now = now or datetime.now(UTC)
    check_name(name)
    every_seconds = parse_every(every)
    urls = check_webhooks(webhooks)
    spec = check_check(project, check, now)
    if store is not None and check.reference_goldens is not None:
        golden = getattr(spec.reference, "name", check.reference_goldens)
        version = getattr(spec.reference, "version", None)
        if store.resolve_golden(project, golden, version) is None:
            raise MonitorError(
                f"reference golden set {check.reference_goldens!r} is not stored in project "
                f"{project!r}; add it first with `assay goldens add FILE` (see `assay goldens "
                "list`)"
            )
    return Monitor(
        project=project,
        name=name,
        check=check,
        every_seconds=every_seconds,
        created_at=now,
        updated_at=now,
        webhooks=urls,
        enabled=enabled,
        next_run_at=now if enabled else None,
    )


def next_run(scheduled: datetime | None, every_seconds: int, now: datetime) -> datetime:
    """The run after one due at ``scheduled``: keeps the cadence and skips runs missed while
    no scheduler was up (a monitor runs once when it is late, not once per missed slot)."""
    every = timedelta(seconds=every_seconds)
    base = scheduled or now
    if base + every > now:
        return base + every
    missed = (now - base) // every
    return base + (missed + 1) * every


# -- JSON forms ------------------------------------------------------------------------------


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.isoformat()


def monitor_json(monitor: Monitor, now: datetime | None = None) -> dict[str, Any]:
    """A monitor as the API returns it: the fields it was created with, then its status."""
    now = now or datetime.now(UTC)
    out: dict[str, Any] = {
        "project": monitor.project,
        "name": monitor.name,
        "every": format_seconds(monitor.every_seconds),
        "every_seconds": monitor.every_seconds,
        **monitor.check.to_json(),
        "webhooks": list(monitor.webhooks),
        "enabled": monitor.enabled,
        "created_at": _iso(monitor.created_at),
        "updated_at": _iso(monitor.updated_at),
        "next_run_at": _iso(monitor.next_run_at),
        "state": monitor.state,
        "state_since": _iso(monitor.state_since),
        "last_run_at": _iso(monitor.last_run_at),
        "last_result_id": monitor.last_result_id,
        "running": monitor.running(now),
    }
    return out


def result_json(result: MonitorResult) -> dict[str, Any]:
    """One run as the API returns it (with ``report`` when it was read by id)."""
    out: dict[str, Any] = {
        "result_id": result.result_id,
        "project": result.project,
        "monitor": result.monitor,
        "ran_at": _iso(result.ran_at),
        "trigger": result.trigger,
        "verdict": result.verdict,
        "state": result.state,
        "previous_state": result.previous_state,
        "window": {"start": _iso(result.window_start), "end": _iso(result.window_end)},
        "reference": {
            "text": result.reference,
            "start": _iso(result.reference_start),
            "end": _iso(result.reference_end),
        },
        "drifted": list(result.drifted),
        "features": list(result.features),
        "error": result.error,
        "elapsed_ms": result.elapsed_ms,
    }
    if result.report is not None:
        out["report"] = result.report
    return out


def alert_json(alert: MonitorAlert) -> dict[str, Any]:
    """An alert with its delivery status."""
    return {
        "alert_id": alert.alert_id,
        "project": alert.project,
        "monitor": alert.monitor,
        "result_id": alert.result_id,
        "url": alert.url,
        "state": alert.state,
        "previous_state": alert.previous_state,
        "created_at": _iso(alert.created_at),
        "status": alert.status,
        "attempts": alert.attempts,
        "last_status": alert.last_status,
        "error": alert.error,
        "delivered_at": _iso(alert.delivered_at),
        "next_attempt_at": _iso(alert.next_attempt_at),
        "payload": dict(alert.payload),
    }


def check_from_fields(fields: Mapping[str, Any]) -> MonitorCheck:
    """A :class:`MonitorCheck` from request fields (None means the default)."""
    values = {k: v for k, v in fields.items() if v is not None}
    for name in ("features", "score_attributes"):
        if name in values:
            values[name] = tuple(values[name])
    for name in ("filters", "attributes"):
        if name in values:
            values[name] = dict(values[name])
    try:
        return MonitorCheck(**values)
    except TypeError as exc:
        raise MonitorError(f"monitor check: {exc}") from None
