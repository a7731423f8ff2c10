"""The JSON query API under ``/api/v1`` (documented at ``/docs`` and ``/openapi.json``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from assay.keys import check_project_name, create_key
from assay.model import Aggregate, ApiKey, Project, Span, TraceSummary, UnpricedModel
from assay.query import SpanFilter, check_group, parse_bucket, parse_time
from assay.store import Store

router = APIRouter(prefix="/api/v1")


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


StoreDep = Annotated[Store, Depends(_store)]


def span_filter(
    request: Request,
    project: Annotated[
        str | None, Query(description="Project to read (admins only; a key reads its own project)")
    ] = None,
    start: Annotated[
        str | None,
        Query(description="From this time: ISO-8601, Unix seconds, or a duration ago such as 24h"),
    ] = None,
    end: Annotated[str | None, Query(description="Before this time (same forms as start)")] = None,
    model: str | None = None,
    provider: str | None = None,
    service: str | None = None,
    name: Annotated[str | None, Query(description="Span name")] = None,
    kind: Annotated[
        str | None, Query(description="llm, chain, tool, retriever, embedding, agent, span …")
    ] = None,
    status: Annotated[str | None, Query(description="ok, error or unset")] = None,
    route: str | None = None,
    release: str | None = None,
    environment: str | None = None,
    session_id: str | None = None,
    user_id: str | None = None,
    min_duration_ms: Annotated[float | None, Query(ge=0)] = None,
    min_cost: Annotated[float | None, Query(ge=0, description="USD")] = None,
    q: Annotated[
        str | None, Query(description="Case-insensitive text in input or output", max_length=500)
    ] = None,
    attr: Annotated[
        list[str] | None, Query(description="Attribute equality, key=value (repeatable)")
    ] = None,
) -> SpanFilter:
    """The filters every listing and aggregate accepts."""
    attributes: dict[str, str] = {}
    for item in attr or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise HTTPException(
                400,
                f"attr {item!r} must look like key=value, e.g. attr=gen_ai.request.model=gpt-4o",
            )
        attributes[key] = value
    return SpanFilter(
        project=request.app.state.auth.project_for(request, project),
        start=parse_time(start, what="start"),
        end=parse_time(end, what="end"),
        model=model,
        provider=provider,
        service=service,
        name=name,
        kind=kind,
        status=status,
        route=route,
        release=release,
        environment=environment,
        session_id=session_id,
        user_id=user_id,
        min_duration_ms=min_duration_ms,
        min_cost=min_cost,
        text=q or None,
        attributes=attributes,
    )


FilterDep = Annotated[SpanFilter, Depends(span_filter)]
Limit = Annotated[int, Query(ge=1, le=1000, description="Page size")]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]


@dataclass
class SpanPage:
    """A page of spans."""

    items: list[Span]
    next_cursor: str | None


@dataclass
class TracePage:
    """A page of trace summaries."""

    items: list[TraceSummary]
    next_cursor: str | None


@dataclass
class TraceTree:
    """One trace: its spans in start order and the tree they form."""

    trace_id: str
    project: str
    spans: list[Span]
    roots: list[dict[str, Any]]


@dataclass
class StatsResult:
    """Aggregates per bucket and group."""

    bucket: str | None
    group_by: str | None
    rows: list[Aggregate]


def _tree(spans: list[Span]) -> list[dict[str, Any]]:
    """Nested {span_id, name, children} nodes; orphans (parent not received) become roots."""
    nodes: dict[str, dict[str, Any]] = {
        s.span_id: {
            "span_id": s.span_id,
            "name": s.name,
            "kind": s.kind,
            "start_time": s.start_time.isoformat(),
            "duration_ms": s.duration_ms,
            "status": s.status,
            "children": [],
        }
        for s in spans
    }
    roots: list[dict[str, Any]] = []
    for s in spans:
        parent = nodes.get(s.parent_span_id) if s.parent_span_id else None
        siblings: list[dict[str, Any]] = parent["children"] if parent is not None else roots
        siblings.append(nodes[s.span_id])
    return roots


@router.get("/spans", response_model=SpanPage, summary="List spans, newest first")
def list_spans(store: StoreDep, flt: FilterDep, limit: Limit = 50, cursor: Cursor = None) -> Any:
    """Spans matching the filters, with cursor pagination."""
    page = store.list_spans(flt, limit, cursor)
    return SpanPage(page.items, page.next_cursor)


@router.get("/traces", response_model=TracePage, summary="List traces, newest first")
def list_traces(store: StoreDep, flt: FilterDep, limit: Limit = 50, cursor: Cursor = None) -> Any:
    """Traces with at least one span matching the filters."""
    page = store.list_traces(flt, limit, cursor)
    return TracePage(page.items, page.next_cursor)


@router.get(
    "/traces/{trace_id}",
    response_model=TraceTree,
    summary="One trace as a span tree",
    responses={404: {"description": "No such trace in this project"}},
)
def get_trace(
    trace_id: str, request: Request, store: StoreDep, project: Annotated[str | None, Query()] = None
) -> Any:
    """Every span of a trace, plus the parent/child tree."""
    proj = request.app.state.auth.project_for(request, project)
    tid = trace_id.lower()
    SpanFilter(proj, trace_id=tid)  # validates the id
    spans = store.get_trace(proj, tid)
    if not spans:
        raise HTTPException(404, f"trace {trace_id} not found in project {proj!r}")
    return TraceTree(tid, proj, spans, _tree(spans))


@router.get(
    "/stats",
    response_model=StatsResult,
    summary="Calls, errors, latency percentiles, tokens and cost over time",
)
def stats(
    store: StoreDep,
    flt: FilterDep,
    bucket: Annotated[
        str | None, Query(description="Bucket width such as 5m, 1h, 1d; omit for totals")
    ] = None,
    group_by: Annotated[
        str | None,
        Query(
            description="model, service, route, release, "
            "provider, kind, status, name, environment, "
            "operation"
        ),
    ] = None,
    all_kinds: Annotated[
        bool, Query(description="Count every span, not only LLM calls (kind=llm is the default)")
    ] = False,
) -> Any:
    """Aggregates over LLM calls (or the given kind, or every span with all_kinds)."""
    if flt.kind is None and not all_kinds:
        flt = flt.with_(kind="llm")
    width = parse_bucket(bucket)
    group = check_group(group_by)
    return StatsResult(bucket, group, store.aggregate(flt, width, group))


@router.get(
    "/models/unpriced",
    response_model=list[UnpricedModel],
    summary="Models seen with tokens but no price",
)
def unpriced(store: StoreDep, flt: FilterDep) -> Any:
    """Add these to a price file (ASSAY_PRICES) to get their cost."""
    return store.unpriced_models(flt)


@router.get("/prices", summary="The price table in use (USD per 1M tokens)")
def prices(request: Request) -> dict[str, Any]:
    """Every priced model."""
    table = request.app.state.prices
    return {
        "models": {
            k: {"input": p.input, "output": p.output, "cached_input": p.cached_input}
            for k, p in sorted(table.models.items())
        }
    }


class ProjectIn(BaseModel):
    """Body of POST /projects."""

    name: str = Field(description="1-63 lower-case letters, digits, '-', '_' or '.'")


class KeyOut(BaseModel):
    """A new API key: the secret is shown this once."""

    key_id: str
    project: str
    prefix: str
    secret: str


@router.get("/projects", response_model=list[Project], summary="List projects (admin)")
def list_projects(request: Request, store: StoreDep) -> Any:
    """Every project."""
    request.app.state.auth.require_admin(request)
    return store.list_projects()


@router.post(
    "/projects", response_model=Project, status_code=201, summary="Create a project (admin)"
)
def create_project(body: ProjectIn, request: Request, store: StoreDep) -> Any:
    """Create a project; idempotent."""
    request.app.state.auth.require_admin(request)
    return store.create_project(check_project_name(body.name))


class RetentionIn(BaseModel):
    """Body of PUT /projects/{name}/retention."""

    days: float | None = Field(
        description="Keep spans this many days (at least 1 hour = 0.042); null keeps them forever"
    )


class RetentionOut(BaseModel):
    """A project's retention period."""

    project: str
    days: float | None


@router.get(
    "/projects/{name}/retention",
    response_model=RetentionOut,
    summary="A project's retention period (admin)",
)
def get_retention(name: str, request: Request, store: StoreDep) -> Any:
    """How long the project's spans are kept (null: forever)."""
    request.app.state.auth.require_admin(request)
    _known_project(store, name)
    return RetentionOut(project=name, days=store.retention().get(name))


@router.put(
    "/projects/{name}/retention",
    response_model=RetentionOut,
    summary="Set a project's retention period (admin)",
)
def set_retention(name: str, body: RetentionIn, request: Request, store: StoreDep) -> Any:
    """Keep the project's spans for ``days``; older ones are deleted by the server's next
    retention pass (ASSAY_RETENTION_INTERVAL_SECONDS), or at once with POST /retention/apply."""
    from assay.retention import RetentionError, check_days

    request.app.state.auth.require_admin(request)
    _known_project(store, name)
    try:
        days = check_days(body.days)
    except RetentionError as exc:
        raise HTTPException(400, str(exc)) from None
    store.set_retention(name, days)
    return RetentionOut(project=name, days=days)


@router.post("/retention/apply", summary="Delete spans past their retention now (admin)")
def apply_retention_now(request: Request, store: StoreDep) -> dict[str, int]:
    """Run a retention pass now; spans deleted per project."""
    from assay.retention import apply_retention

    request.app.state.auth.require_admin(request)
    return apply_retention(store)


def _known_project(store: Store, name: str) -> None:
    if name not in {p.name for p in store.list_projects()}:
        raise HTTPException(
            404, f"no project named {name!r}; create it with `assay projects create`"
        )


@router.post(
    "/projects/{name}/keys",
    response_model=KeyOut,
    status_code=201,
    summary="Create an API key for a project (admin)",
)
def new_key(name: str, request: Request, store: StoreDep) -> Any:
    """A new key; the secret is in this response only."""
    request.app.state.auth.require_admin(request)
    key, secret = create_key(store, name)
    return KeyOut(key_id=key.key_id, project=key.project, prefix=key.prefix, secret=secret)


@router.get("/keys", response_model=list[ApiKey], summary="List API keys (admin)")
def list_keys(request: Request, store: StoreDep, project: str | None = None) -> Any:
    """Public records of keys (never the secrets)."""
    request.app.state.auth.require_admin(request)
    return store.list_keys(project)


@router.delete("/keys/{key_id}", status_code=204, summary="Revoke an API key (admin)")
def revoke_key(key_id: str, request: Request, store: StoreDep) -> None:
    """Revoke a key; later requests with it get 401."""
    request.app.state.auth.require_admin(request)
    if not store.revoke_key(key_id):
        raise HTTPException(404, f"no API key with id {key_id!r}")
    request.app.state.keys.forget()
