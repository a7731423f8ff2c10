"""Monitors under ``/api/v1/monitors``: saved drift checks, their results over time and
their alerts (the CLI's `assay monitors` calls these)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from assay.monitors.definition import (
    alert_json,
    check_check,
    check_from_fields,
    check_webhooks,
    monitor_json,
    new_monitor,
    parse_every,
    result_json,
)
from assay.monitors.scheduler import Scheduler
from assay.monitors.values import (
    Monitor,
    MonitorBusyError,
    MonitorError,
    MonitorNotFoundError,
)
from assay.query import parse_time
from assay.server.api import StoreDep
from assay.store import Store

router = APIRouter(prefix="/api/v1", tags=["monitors"])
ProjectQuery = Annotated[
    str | None, Query(description="Project (admins only; a key uses its own project)")
]
_CHECK_FIELDS = (
    "window",
    "reference",
    "reference_goldens",
    "filters",
    "attributes",
    "all_kinds",
    "features",
    "score_attributes",
    "embedder",
    "alpha",
    "correction",
    "max_samples",
    "max_embeddings",
    "seed",
    "examples",
)


class MonitorFields(BaseModel):
    """What a monitor checks and when; every field optional (PATCH changes the given ones)."""

    model_config = ConfigDict(extra="forbid")

    every: str | int | None = Field(
        None, description="Schedule: 15m, 1h, 1d … or seconds (at least 1m)"
    )
    window: str | None = Field(
        None, max_length=200, description="Current window relative to each run: 1d, 1d..1h"
    )
    reference: str | None = Field(
        None, max_length=200, description="Reference range relative to each run: 30d..1d"
    )
    reference_goldens: str | None = Field(
        None, max_length=200, description="A golden set as the reference: NAME[@VERSION]"
    )
    filters: dict[str, str] | None = Field(
        None,
        max_length=20,
        description="Span filters: model, provider, service, route, release, environment, "
        "kind, name, status",
    )
    attributes: dict[str, str] | None = Field(None, max_length=20)
    all_kinds: bool | None = None
    features: list[str] | None = Field(None, max_length=100)
    score_attributes: list[str] | None = Field(None, max_length=50)
    embedder: str | None = Field(None, max_length=200)
    alpha: float | None = Field(None, gt=0, lt=1)
    correction: Literal["holm", "bh"] | None = None
    max_samples: int | None = Field(None, ge=10, le=1_000_000)
    max_embeddings: int | None = Field(None, ge=10, le=100_000)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    examples: int | None = Field(None, ge=0, le=1000)
    webhooks: list[str] | None = Field(None, max_length=10, description="URLs to POST alerts to")
    enabled: bool | None = None


class MonitorBody(MonitorFields):
    """A new monitor."""

    name: str = Field(..., max_length=128, description="Unique in the project, e.g. input-drift")


def _bad(exc: MonitorError) -> HTTPException:
    if isinstance(exc, MonitorNotFoundError):
        return HTTPException(404, str(exc))
    if isinstance(exc, MonitorBusyError):
        return HTTPException(409, str(exc))
    return HTTPException(400, str(exc))


def _project(request: Request, project: str | None) -> str:
    return str(request.app.state.auth.project_for(request, project))


def _webhooks_allowed(request: Request) -> None:
    # The server POSTs to whatever URL a webhook names; on a server reachable by others
    # only the admin may point it somewhere, so a project key cannot probe the network.
    if not request.app.state.auth.caller(request).admin:
        raise HTTPException(
            403,
            "setting webhooks needs the admin key (ASSAY_ADMIN_KEY) or a loopback request "
            "without a key; create the monitor without webhooks, then ask an admin to add them",
        )


def _get(store: Store, project: str, name: str) -> Monitor:
    monitor = store.get_monitor(project, name)
    if monitor is None:
        raise HTTPException(
            404, f"no monitor {name!r} in project {project!r}; see `assay monitors list`"
        )
    return monitor


@router.post(
    "/monitors",
    status_code=201,
    summary="Save a drift check that runs on a schedule",
    responses={400: {"description": "A field that cannot be used"}, 409: {"description": "Taken"}},
)
def create_monitor(
    body: MonitorBody, request: Request, store: StoreDep, project: ProjectQuery = None
) -> Any:
    """Validate and store a monitor; it first runs on the scheduler's next tick."""
    proj = _project(request, project)
    if body.webhooks:
        _webhooks_allowed(request)
    fields = body.model_dump(include=set(_CHECK_FIELDS))
    try:
        monitor = new_monitor(
            store,
            proj,
            body.name,
            check_from_fields(fields),
            every=body.every if body.every is not None else "1h",
            webhooks=body.webhooks or (),
            enabled=body.enabled if body.enabled is not None else True,
        )
    except MonitorError as exc:
        raise _bad(exc) from None
    if not store.create_monitor(monitor):
        raise HTTPException(
            409,
            f"monitor {body.name!r} already exists in project {proj!r}; change it with PATCH "
            f"(or `assay monitors rm {body.name}` first)",
        )
    return monitor_json(monitor)


@router.get("/monitors", summary="List monitors with their state")
def list_monitors(request: Request, store: StoreDep, project: ProjectQuery = None) -> Any:
    """Every monitor of the project: definition, schedule, state, last run."""
    proj = _project(request, project)
    now = datetime.now(UTC)
    return {"items": [monitor_json(m, now) for m in store.list_monitors(proj)]}


@router.get("/monitors/{name}", summary="One monitor")
def get_monitor(name: str, request: Request, store: StoreDep, project: ProjectQuery = None) -> Any:
    """A monitor's definition and state."""
    return monitor_json(_get(store, _project(request, project), name))


def _rescheduled(old: Monitor, every_seconds: int, enabled: bool, now: datetime) -> datetime | None:
    """Next run after a change: none while disabled; else the last run plus the (new)
    interval, or now when that has passed or the monitor never ran."""
    if not enabled:
        return None
    if old.enabled and every_seconds == old.every_seconds and old.next_run_at is not None:
        return old.next_run_at
    if old.last_run_at is None:
        return now
    return max(now, old.last_run_at + timedelta(seconds=every_seconds))


@router.patch(
    "/monitors/{name}",
    summary="Change a monitor (only the given fields)",
    responses={400: {"description": "A field that cannot be used"}},
)
def update_monitor(
    name: str, body: MonitorFields, request: Request, store: StoreDep, project: ProjectQuery = None
) -> Any:
    """Change the check, schedule, webhooks or enabled flag; state and history are kept."""
    proj = _project(request, project)
    old = _get(store, proj, name)
    given = body.model_dump(exclude_unset=True)
    if given.get("webhooks"):
        _webhooks_allowed(request)
    now = datetime.now(UTC)
    try:
        merged = {**old.check.to_json(), **{k: v for k, v in given.items() if k in _CHECK_FIELDS}}
        if "reference" in given and given["reference"] is not None:
            merged["reference_goldens"] = None
        if "reference_goldens" in given and given["reference_goldens"] is not None:
            merged["reference"] = None
        check = check_from_fields(merged)
        check_check(proj, check, now)
        every = parse_every(given["every"]) if given.get("every") is not None else old.every_seconds
        webhooks = check_webhooks(given["webhooks"] or ()) if "webhooks" in given else old.webhooks
    except MonitorError as exc:
        raise _bad(exc) from None
    enabled = bool(given["enabled"]) if given.get("enabled") is not None else old.enabled
    changed = dataclasses.replace(
        old,
        check=check,
        every_seconds=every,
        webhooks=webhooks,
        enabled=enabled,
        updated_at=now,
        next_run_at=_rescheduled(old, every, enabled, now),
    )
    if not store.update_monitor(changed):
        raise HTTPException(404, f"no monitor {name!r} in project {proj!r}")
    return monitor_json(changed, now)


@router.delete("/monitors/{name}", status_code=204, summary="Delete a monitor and its history")
def delete_monitor(
    name: str, request: Request, store: StoreDep, project: ProjectQuery = None
) -> Response:
    """Remove the monitor with its results and alerts."""
    proj = _project(request, project)
    if not store.delete_monitor(proj, name):
        raise HTTPException(404, f"no monitor {name!r} in project {proj!r}")
    return Response(status_code=204)


@router.post(
    "/monitors/{name}/run",
    summary="Run a monitor now",
    responses={404: {"description": "No such monitor"}, 409: {"description": "Running now"}},
)
async def run_monitor_now(name: str, request: Request, project: ProjectQuery = None) -> Any:
    """Run the check now (its schedule is unchanged), store the result, alert on a change
    of state, and return the result."""
    proj = _project(request, project)
    scheduler: Scheduler = request.app.state.monitors
    try:
        result = await scheduler.run_now(proj, name)
    except MonitorError as exc:
        raise _bad(exc) from None
    return result_json(result)


@router.get("/monitors/{name}/results", summary="A monitor's results over time, newest first")
def list_results(
    name: str,
    request: Request,
    store: StoreDep,
    project: ProjectQuery = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    since: Annotated[str | None, Query(description="Only runs from this time on")] = None,
) -> Any:
    """Per run: verdict, state, windows and per-feature statistics, effects and adjusted
    p-values — the points of a drift-over-time chart."""
    proj = _project(request, project)
    _get(store, proj, name)
    start = parse_time(since, what="since")
    return {"items": [result_json(r) for r in store.list_monitor_results(proj, name, limit, start)]}


@router.get("/monitors/{name}/results/{result_id}", summary="One result with its full report")
def get_result(
    name: str, result_id: str, request: Request, store: StoreDep, project: ProjectQuery = None
) -> Any:
    """A run's result and the drift report it produced (examples, category shifts …)."""
    proj = _project(request, project)
    result = store.get_monitor_result(proj, name, result_id)
    if result is None:
        raise HTTPException(404, f"no result {result_id!r} of monitor {name!r}")
    return result_json(result)


@router.get("/monitors/{name}/alerts", summary="A monitor's alerts and their delivery")
def list_alerts(
    name: str,
    request: Request,
    store: StoreDep,
    project: ProjectQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> Any:
    """Alerts newest first: state change, URL, status, attempts, last HTTP status, error."""
    proj = _project(request, project)
    _get(store, proj, name)
    return {"items": [alert_json(a) for a in store.list_monitor_alerts(proj, name, limit)]}


__all__ = ["router"]
