"""Annotation queues under ``/api/v1/queues`` (create, list, show, add items to a
hand-picked queue, claim the next item, label, skip, release, remove) and promotion of a
trace into a golden set under ``/api/v1/goldens/{name}/promote``. The CLI's `assay
queues` and the labelling page use these; every refusal is a 4xx with the reason."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assay.feedback import feedback_json
from assay.promotion import (
    MISSING,
    PromotionConflictError,
    PromotionError,
    PromotionNotFoundError,
    promote,
    promotion_json,
)
from assay.queues import (
    DEFAULT_LEASE_SECONDS,
    HAND_PICKED,
    MAX_ADD,
    MAX_SIZE,
    OPEN,
    STATUSES,
    Queue,
    QueueConflictError,
    QueueError,
    QueueNotFoundError,
    QueueSpec,
    add_items,
    claim_next,
    create_queue,
    get_item,
    get_queue,
    item_json,
    label_item,
    label_spec,
    latest_drift_report,
    queue_json,
    release_item,
    skip_item,
)
from assay.server.api import StoreDep, span_filter
from assay.store import Store, StoreError

router = APIRouter(prefix="/api/v1", tags=["queues"])
ProjectQuery = Annotated[
    str | None, Query(description="Project (admins only; a key uses its own project)")
]
QueueName = Annotated[str, Path(max_length=128, description="Queue name")]
ItemId = Annotated[int, Path(ge=1, le=MAX_SIZE, description="Item number (1, 2, …)")]
_TEXT = Field(default=None, max_length=500)


@contextmanager
def _answers() -> Iterator[None]:
    """Queue and promotion errors as 4xx answers with their message."""
    try:
        yield
    except (QueueNotFoundError, PromotionNotFoundError) as exc:
        raise HTTPException(404, str(exc)) from None
    except (QueueConflictError, PromotionConflictError) as exc:
        raise HTTPException(409, str(exc)) from None
    except (QueueError, PromotionError, StoreError) as exc:
        raise HTTPException(400, str(exc)) from None


def _project(request: Request, requested: str | None) -> str:
    project: str = request.app.state.auth.project_for(request, requested)
    return project


class QueueFilters(BaseModel):
    """Which spans a queue draws from: the filters of `GET /api/v1/spans`."""

    model_config = ConfigDict(extra="forbid")

    start: str | None = Field(
        default=None, max_length=100, description="ISO-8601, Unix time or 24h"
    )
    end: str | None = Field(default=None, max_length=100)
    model: str | None = _TEXT
    provider: str | None = _TEXT
    service: str | None = _TEXT
    name: str | None = _TEXT
    kind: str | None = _TEXT
    status: Literal["ok", "error", "unset"] | None = None
    route: str | None = _TEXT
    release: str | None = _TEXT
    environment: str | None = _TEXT
    session_id: str | None = _TEXT
    user_id: str | None = _TEXT
    min_duration_ms: float | None = Field(default=None, ge=0)
    min_cost: float | None = Field(default=None, ge=0)
    q: str | None = _TEXT
    attr: list[str] = Field(default_factory=list, max_length=20, description="key=value")


class LabelBody(BaseModel):
    """The one label a queue collects: its feedback name and allowed values (give one of
    ``values``, ``scale`` or ``boolean``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=128, description="Feedback name, e.g. helpfulness")
    values: list[str] | str | None = Field(
        default=None, description="Categories: pass,fail or a list"
    )
    scale: str | None = Field(default=None, max_length=50, description="LOW-HIGH, e.g. 1-5")
    boolean: bool = Field(default=False, description="Pass/fail, stored as true/false")


class DriftSource(BaseModel):
    """Where the drift strategy takes its examples: exactly one of a monitor's latest
    drifted result, a drift report, or a drift check to run now."""

    model_config = ConfigDict(extra="forbid")

    monitor: str | None = Field(default=None, max_length=128)
    report: dict[str, Any] | None = Field(default=None, description="A drift report's JSON")
    check: dict[str, Any] | None = Field(
        None, description="A body of POST /api/v1/drift/check (the queue's filters apply)"
    )


class QueueBody(BaseModel):
    """A new annotation queue."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=128)
    strategy: Literal[
        "random", "stratified", "drift", "low-confidence", "disagreement", "hand-picked"
    ] = Field(
        description="hand-picked: created empty (no filters), items added by people later"
    )
    size: int | None = Field(
        default=None,
        ge=1,
        le=MAX_SIZE,
        description=f"Items to choose (default 200); hand-picked: the most it may hold "
        f"(default {MAX_SIZE:,})",
    )
    label: LabelBody
    instructions: str | None = Field(default=None, max_length=20_000)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    unit: Literal["trace", "span"] = Field(
        "trace", description="random/stratified: sample traces (their root span) or spans"
    )
    field: str | None = Field(default=None, max_length=100, description="stratified: the field")
    allocation: Literal["proportional", "equal"] = "proportional"
    judge: str | None = Field(
        default=None, max_length=128, description="Feedback name of judge scores"
    )
    threshold: float = Field(default=0.5, description="The judge's decision threshold")
    lease_seconds: int = Field(default=DEFAULT_LEASE_SECONDS, ge=10, le=7 * 86_400)
    filters: QueueFilters = Field(default_factory=lambda: QueueFilters())
    drift: DriftSource | None = None
    created_by: str | None = Field(default=None, max_length=128)


def _size(body: QueueBody) -> int:
    """The size asked for, else the strategy's default."""
    if body.size is not None:
        return body.size
    return MAX_SIZE if body.strategy == HAND_PICKED else 200


def _drift_report(
    body: QueueBody, request: Request, store: Store, project: str
) -> tuple[dict[str, Any] | None, str | None]:
    source = body.drift
    if source is None:
        return None, None
    given = [k for k in ("monitor", "report", "check") if getattr(source, k) is not None]
    if len(given) != 1:
        raise HTTPException(
            400, "drift: give exactly one of monitor, report (a drift report) or check"
        )
    if source.monitor is not None:
        with _answers():
            report, what = latest_drift_report(store, project, source.monitor)
        return dict(report), what
    if source.report is not None:
        return source.report, "a drift report given at creation"
    from assay.server.drift_api import DriftCheckBody, drift_check

    fields = {
        k: v
        for k, v in body.filters.model_dump().items()
        if v is not None and k in DriftCheckBody.model_fields and k != "name"
    }
    assert source.check is not None
    try:
        check = DriftCheckBody(**{"examples": min(_size(body), 1000), **fields, **source.check})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise HTTPException(422, f"drift.check: {problems}") from None
    report = drift_check(check, request, store, project)
    reference = check.reference or f"golden {check.reference_goldens}"
    return report, f"a drift check run at creation ({reference} vs {check.current})"


def _with_progress(store: Store, queue: Queue, now: datetime) -> dict[str, Any]:
    return queue_json(queue, store.queue_progress(queue.project, queue.name, now))


@router.post("/queues", status_code=201, summary="Create an annotation queue")
def create(body: QueueBody, request: Request, store: StoreDep, project: ProjectQuery = None) -> Any:
    """Select the items (by the strategy, from spans matching the filters) and store the
    queue. The answer records the strategy, its parameters and the seed."""
    proj = _project(request, project)
    f = body.filters
    flt = span_filter(
        request,
        project=proj,
        start=f.start,
        end=f.end,
        model=f.model,
        provider=f.provider,
        service=f.service,
        name=f.name,
        kind=f.kind,
        status=f.status,
        route=f.route,
        release=f.release,
        environment=f.environment,
        session_id=f.session_id,
        user_id=f.user_id,
        min_duration_ms=f.min_duration_ms,
        min_cost=f.min_cost,
        q=f.q,
        attr=f.attr,
    )
    with _answers():
        label = label_spec(
            body.label.name,
            values=body.label.values,
            scale=body.label.scale,
            boolean=body.label.boolean,
        )
        if store.get_queue(proj, body.name) is not None:
            raise QueueConflictError(
                f"a queue named {body.name!r} already exists; pick another name or remove "
                f"it with `assay queues rm {body.name}`"
            )
        if body.drift is not None and body.strategy != "drift":
            raise QueueError("drift (a report, monitor or check) is only for strategy drift")
        report, source = _drift_report(body, request, store, proj)
        spec = QueueSpec(
            name=body.name,
            strategy=body.strategy,
            size=_size(body),
            label=label,
            filters=flt,
            seed=body.seed,
            unit=body.unit,
            field=body.field,
            allocation=body.allocation,
            judge=body.judge,
            threshold=body.threshold,
            drift_report=report,
            drift_source=source,
            lease_seconds=body.lease_seconds,
            instructions=body.instructions,
            created_by=body.created_by,
        )
        queue = create_queue(store, spec)
    return _with_progress(store, queue, datetime.now(UTC))


@router.get("/queues", summary="Annotation queues with their progress")
def list_(request: Request, store: StoreDep, project: ProjectQuery = None) -> Any:
    """Every queue of the project, newest first."""
    proj = _project(request, project)
    now = datetime.now(UTC)
    return {"items": [_with_progress(store, q, now) for q in store.list_queues(proj)]}


@router.get("/queues/{name}", summary="One queue: definition and progress")
def show(name: QueueName, request: Request, store: StoreDep, project: ProjectQuery = None) -> Any:
    """The queue's strategy and parameters, and its progress (total, labelled, skipped,
    claimed, remaining; per labeller)."""
    proj = _project(request, project)
    with _answers():
        queue = get_queue(store, proj, name)
    return _with_progress(store, queue, datetime.now(UTC))


@router.delete("/queues/{name}", status_code=204, summary="Remove a queue")
def remove(
    name: QueueName, request: Request, store: StoreDep, project: ProjectQuery = None
) -> Response:
    """Remove the queue and its items; the labels given stay (they are feedback)."""
    proj = _project(request, project)
    if not store.delete_queue(proj, name):
        raise HTTPException(404, f"no queue named {name!r} in project {proj!r}")
    return Response(status_code=204)


class SpanKey(BaseModel):
    """One span of a trace."""

    model_config = ConfigDict(extra="forbid")

    trace_id: str = Field(max_length=64)
    span_id: str = Field(max_length=32)


class AddItemsBody(BaseModel):
    """Traces (each shown by its root span) or single spans to add to a hand-picked queue."""

    model_config = ConfigDict(extra="forbid")

    trace_ids: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list, max_length=MAX_ADD, description="Traces, shown by their root span"
    )
    spans: list[SpanKey] = Field(
        default_factory=list, max_length=MAX_ADD, description="Single spans of traces"
    )
    added_by: str | None = Field(default=None, max_length=128, description="Who picked them")
    reason: str | None = Field(
        default=None, max_length=2_000, description="Why (stored in each item's context)"
    )


@router.post("/queues/{name}/items", summary="Add traces to a hand-picked queue")
def add(
    name: QueueName,
    body: AddItemsBody,
    request: Request,
    store: StoreDep,
    project: ProjectQuery = None,
) -> Any:
    """Append the traces (or spans) after the queue's last item, in one transaction, with
    the same snapshot a selected item gets. Those the queue already holds are counted in
    ``already_present`` and not added again. 409 for a queue that is a probability sample
    (random, stratified: an added item would make its inclusion probabilities wrong) or
    chosen by a rule; only hand-picked queues take items."""
    proj = _project(request, project)
    keys: list[tuple[str, str | None]] = [(t, None) for t in body.trace_ids]
    keys += [(k.trace_id, k.span_id) for k in body.spans]
    with _answers():
        done = add_items(store, proj, name, keys, body.added_by, body.reason)
    return {**done.to_json(), "queue": _with_progress(store, done.queue, datetime.now(UTC))}


@router.get("/queues/{name}/items", summary="A queue's items")
def items(
    name: QueueName,
    request: Request,
    store: StoreDep,
    project: ProjectQuery = None,
    status: Annotated[str | None, Query(description="open, labelled or skipped")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Any:
    """Items in order, with their snapshot, context and state."""
    proj = _project(request, project)
    if status is not None and status not in STATUSES:
        raise HTTPException(400, f"status {status!r} must be one of {', '.join(STATUSES)}")
    with _answers():
        get_queue(store, proj, name)
    now = datetime.now(UTC)
    found = store.list_queue_items(proj, name, status, limit, offset)
    return {"items": [item_json(i, now) for i in found]}


@router.get("/queues/{name}/items/{item_id}", summary="One item of a queue")
def item(
    name: QueueName,
    item_id: ItemId,
    request: Request,
    store: StoreDep,
    project: ProjectQuery = None,
) -> Any:
    """One item with its snapshot, context and state."""
    proj = _project(request, project)
    with _answers():
        found = get_item(store, get_queue(store, proj, name), item_id)
    return item_json(found)


class LabellerBody(BaseModel):
    """Who is asking."""

    model_config = ConfigDict(extra="forbid")

    labeller: str = Field(max_length=128, description="Who labels, e.g. ana")


class LabelItemBody(LabellerBody):
    """A label for one item."""

    value: bool | int | float | str = Field(description="A value the queue's label allows")
    comment: str | None = Field(default=None, max_length=10_000)


class SkipBody(LabellerBody):
    """Skipping one item."""

    reason: str | None = Field(default=None, max_length=2_000)


def _nothing_left(queue: Queue, progress: dict[str, Any]) -> str:
    if progress["claimed"]:
        return (
            f"every open item of {queue.name} is claimed by someone else; claims expire "
            f"(the first at {progress['next_expiry']}) and the items come free again"
        )
    return f"{queue.name} is done: {progress['labelled']} labelled, {progress['skipped']} skipped"


@router.post("/queues/{name}/next", summary="Claim the next item to label")
def next_(
    name: QueueName,
    body: LabellerBody,
    request: Request,
    store: StoreDep,
    project: ProjectQuery = None,
) -> Any:
    """Claim the next unclaimed item for the labeller, with a lease (the queue's
    ``lease_seconds``) so nobody else gets it; asking again renews the claim on the same
    item until it is labelled, skipped or released. ``item`` is null when nothing is
    free; ``message`` says why."""
    proj = _project(request, project)
    now = datetime.now(UTC)
    with _answers():
        queue, claimed = claim_next(store, proj, name, body.labeller, now)
    out = _with_progress(store, queue, now)
    return {
        "queue": out,
        "item": None if claimed is None else item_json(claimed, now),
        "message": None if claimed is not None else _nothing_left(queue, out["progress"]),
    }


@router.post("/queues/{name}/items/{item_id}/label", summary="Label an item")
def label(
    name: QueueName,
    item_id: ItemId,
    body: LabelItemBody,
    request: Request,
    store: StoreDep,
    project: ProjectQuery = None,
) -> Any:
    """Store the label as feedback (source reviewer, author the labeller, the queue's
    label name) and mark the item labelled. 409 when someone else holds or finished it."""
    proj = _project(request, project)
    now = datetime.now(UTC)
    with _answers():
        done, fb = label_item(store, proj, name, item_id, body.labeller, body.value, body.comment)
        queue = get_queue(store, proj, name)
    return {
        "item": item_json(done, now),
        "feedback": feedback_json(fb),
        "progress": store.queue_progress(proj, queue.name, now).to_json(),
    }


@router.post("/queues/{name}/items/{item_id}/skip", summary="Skip an item")
def skip(
    name: QueueName,
    item_id: ItemId,
    body: SkipBody,
    request: Request,
    store: StoreDep,
    project: ProjectQuery = None,
) -> Any:
    """Mark the item skipped (nobody is offered it again), with an optional reason."""
    proj = _project(request, project)
    now = datetime.now(UTC)
    with _answers():
        done = skip_item(store, proj, name, item_id, body.labeller, body.reason)
    return {
        "item": item_json(done, now),
        "progress": store.queue_progress(proj, name, now).to_json(),
    }


@router.post("/queues/{name}/items/{item_id}/release", summary="Give back a claimed item")
def release(
    name: QueueName,
    item_id: ItemId,
    body: LabellerBody,
    request: Request,
    store: StoreDep,
    project: ProjectQuery = None,
) -> Any:
    """Drop the labeller's claim before the lease ends, so the item is offered again."""
    proj = _project(request, project)
    with _answers():
        done = release_item(store, proj, name, item_id, body.labeller)
    return {"item": item_json(done), "open": done.status == OPEN}


class PromoteBody(BaseModel):
    """A trace to add to a golden set as a new case."""

    model_config = ConfigDict(extra="forbid")

    trace_id: str = Field(max_length=64)
    span_id: str | None = Field(default=None, max_length=32, description="Default: the root span")
    expected: Any = Field(
        None,
        description="The expected answer; when absent, the latest reviewer label of the "
        "trace (a category or comment) is used",
    )
    id: str | None = Field(default=None, max_length=200, description="Case id (default trace-…)")
    author: str | None = Field(default=None, max_length=128, description="Who promotes it")
    label: str | None = Field(
        None, max_length=128, description="Take the expected answer from this label name"
    )


@router.post(
    "/goldens/{name}/promote", summary="Add a trace to a golden set as a case (new version)"
)
def promote_trace(
    name: Annotated[str, Path(max_length=100)],
    body: PromoteBody,
    request: Request,
    response: Response,
    store: StoreDep,
    project: ProjectQuery = None,
) -> Any:
    """Build a case from the trace's root (or given) span and store the golden set's next
    version with it; the case's ``metadata.provenance`` says where it came from. 201 when
    a version was stored; 200 when the trace was already promoted under that id."""
    proj = _project(request, project)
    with _answers():
        result = promote(
            store,
            proj,
            body.trace_id,
            name,
            expected=body.expected if "expected" in body.model_fields_set else MISSING,
            case_id=body.id,
            span_id=body.span_id,
            author=body.author,
            label=body.label,
        )
    response.status_code = 201 if result.created else 200
    return promotion_json(result)
