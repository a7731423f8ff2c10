"""Online-evaluation rules under ``/api/v1/online``: which live spans are scored, by which
scorer, within what budget, and how far each rule has got (the CLI's `assay online`)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from assay.online import (
    OnlineError,
    OnlineRule,
    check_rule_name,
    check_scorer,
    new_rule,
    parse_filters,
    parse_since,
    rule_json,
)
from assay.online_worker import OnlineWorker
from assay.server.api import StoreDep
from assay.store import Store

router = APIRouter(prefix="/api/v1", tags=["online"])
ProjectQuery = Annotated[
    str | None, Query(description="Project (admins only; a key uses its own project)")
]


class RuleFields(BaseModel):
    """A rule's settings; every field optional (PATCH changes the given ones)."""

    model_config = ConfigDict(extra="forbid")

    scorer: str | dict[str, Any] | None = Field(
        None,
        description="Any scorer the registry builds: a name, {name, key?, ...args} or "
        "{name: {...args}}; a judge is {name: judge, rubric, mode, endpoint …}",
    )
    score_name: str | None = Field(
        None, max_length=128, description="Feedback name the scores are stored under"
    )
    sample: float | None = Field(None, gt=0, le=1, description="Share of matching spans scored")
    filters: dict[str, str] | None = Field(
        None,
        max_length=20,
        description="Span filters: model, provider, service, route, release, environment, "
        "kind (default llm), name, status, session_id, user_id, attr.KEY",
    )
    all_kinds: bool | None = Field(None, description="Every span kind when no kind filter")
    budget_usd: float | None = Field(None, gt=0, description="Spend cap per period (USD)")
    budget_period: Literal["hour", "day", "week", "month"] | None = None
    concurrency: int | None = Field(None, ge=1, le=256, description="Scorer calls at once")
    retries: int | None = Field(None, ge=0, le=10, description="Retries of a failed span")
    enabled: bool | None = None


class RuleBody(RuleFields):
    """A new rule."""

    name: str = Field(..., max_length=128, description="Unique in the project, e.g. helpfulness")
    since: str | None = Field(
        None,
        max_length=100,
        description="Also score spans ingested since this time (ISO-8601 or a duration ago "
        "such as 1h); default: only spans ingested from now on",
    )


def _project(request: Request, project: str | None) -> str:
    return str(request.app.state.auth.project_for(request, project))


def _get(store: Store, project: str, name: str) -> OnlineRule:
    rule = store.get_online_rule(project, name)
    if rule is None:
        raise HTTPException(
            404, f"no online rule {name!r} in project {project!r}; see `assay online list`"
        )
    return rule


def _json(request: Request, store: Store, rule: OnlineRule) -> dict[str, Any]:
    worker: OnlineWorker | None = getattr(request.app.state, "online", None)
    live = worker.live(rule.project, rule.name) if worker is not None else None
    backlog = store.online_backlog(rule.span_filter(), rule.progress.watermark)
    return rule_json(rule, datetime.now(UTC), live, backlog)


@router.post(
    "/online",
    status_code=201,
    summary="Score a sample of new production spans with a scorer",
    responses={400: {"description": "A field that cannot be used"}, 409: {"description": "Taken"}},
)
def create_rule(
    body: RuleBody, request: Request, store: StoreDep, project: ProjectQuery = None
) -> Any:
    """Validate the rule (the scorer is built now, so a bad config or a missing API key is
    a 400) and store it; the server's online worker picks it up on its next poll."""
    proj = _project(request, project)
    now = datetime.now(UTC)
    if body.scorer is None:
        raise HTTPException(
            400, 'scorer is missing; give a scorer config, e.g. {"name": "judge", ...}'
        )
    try:
        check_rule_name(body.name)
        rule = new_rule(
            proj,
            body.name,
            check_scorer(body.scorer),
            sample=body.sample if body.sample is not None else 1.0,
            filters=parse_filters(body.filters or {}, bool(body.all_kinds)),
            score_name=body.score_name,
            budget_usd=body.budget_usd,
            budget_period=body.budget_period or "day",
            concurrency=body.concurrency if body.concurrency is not None else 8,
            retries=body.retries if body.retries is not None else 2,
            enabled=body.enabled if body.enabled is not None else True,
            since=parse_since(body.since, now),
            now=now,
        )
    except OnlineError as exc:
        raise HTTPException(400, str(exc)) from None
    if not store.create_online_rule(rule):
        raise HTTPException(
            409,
            f"online rule {body.name!r} already exists in project {proj!r}; change it with "
            f"PATCH (or `assay online rm {body.name}` first)",
        )
    return _json(request, store, rule)


@router.get("/online", summary="Online-evaluation rules with their status")
def list_rules(request: Request, store: StoreDep, project: ProjectQuery = None) -> Any:
    """Every rule of the project: definition, counters, spend, backlog and lag."""
    proj = _project(request, project)
    return {"items": [_json(request, store, r) for r in store.list_online_rules(proj)]}


@router.get("/online/{name}", summary="One rule with its status")
def get_rule(name: str, request: Request, store: StoreDep, project: ProjectQuery = None) -> Any:
    """A rule's definition and status: processed, sampled, scored, errors, skipped for the
    budget, spend this period, queue depth, backlog and lag."""
    return _json(request, store, _get(store, _project(request, project), name))


@router.patch(
    "/online/{name}",
    summary="Change a rule (only the given fields); pause or resume it with enabled",
    responses={400: {"description": "A field that cannot be used"}},
)
def update_rule(
    name: str, body: RuleFields, request: Request, store: StoreDep, project: ProjectQuery = None
) -> Any:
    """Change the scorer, sample, filters, budget, concurrency, retries or enabled flag; the
    watermark and counters are kept, so the new definition applies to spans not yet read.
    ``budget_usd: null`` removes the cap."""
    proj = _project(request, project)
    old = _get(store, proj, name)
    given = body.model_dump(exclude_unset=True)
    try:
        changes: dict[str, Any] = {}
        if given.get("scorer") is not None:
            changes["scorer"] = check_scorer(given["scorer"])
        if given.get("filters") is not None or given.get("all_kinds") is not None:
            filters = given.get("filters")
            if filters is None:
                filters = {k: v for k, v in old.filters.items() if k != "kind"}
            changes["filters"] = parse_filters(filters, bool(given.get("all_kinds")))
        for field, attr in (("sample", "sample_rate"), ("score_name", "score_name"),
                            ("budget_period", "budget_period"), ("concurrency", "concurrency"),
                            ("retries", "retries"), ("enabled", "enabled")):  # fmt: skip
            if given.get(field) is not None:
                changes[attr] = given[field]
        if "budget_usd" in given:
            changes["budget_usd"] = given["budget_usd"]
        merged = dataclasses.replace(old, **changes)
        checked = new_rule(
            proj,
            name,
            merged.scorer,
            sample=merged.sample_rate,
            filters=merged.filters,
            score_name=merged.score_name,
            budget_usd=merged.budget_usd,
            budget_period=merged.budget_period,
            concurrency=merged.concurrency,
            retries=merged.retries,
            enabled=merged.enabled,
        )
    except OnlineError as exc:
        raise HTTPException(400, str(exc)) from None
    changed = dataclasses.replace(
        merged, score_name=checked.score_name, updated_at=datetime.now(UTC)
    )
    if not store.update_online_rule(changed):
        raise HTTPException(404, f"no online rule {name!r} in project {proj!r}")
    return _json(request, store, _get(store, proj, name))


@router.delete("/online/{name}", status_code=204, summary="Delete a rule (its scores stay)")
def delete_rule(
    name: str, request: Request, store: StoreDep, project: ProjectQuery = None
) -> Response:
    """Remove the rule; the scores it stored stay as feedback."""
    proj = _project(request, project)
    if not store.delete_online_rule(proj, name):
        raise HTTPException(404, f"no online rule {name!r} in project {proj!r}")
    return Response(status_code=204)


__all__ = ["router"]
