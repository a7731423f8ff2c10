"""Feedback on traces under ``/api/v1/feedback``: scores, labels and comments with their
source and author, idempotent by the client's id."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field

from assay.feedback import SOURCES, FeedbackError, feedback_json, make_feedback, same_content
from assay.server.api import StoreDep

router = APIRouter(prefix="/api/v1", tags=["feedback"])


class FeedbackItem(BaseModel):
    """One score, label or comment."""

    id: str | None = Field(
        None, description="Your id for this record: resending it stores nothing new"
    )
    trace_id: str
    span_id: str | None = None
    name: str = Field(description="What is judged, e.g. helpfulness, thumbs, topic")
    value: float | bool | str | None = Field(
        None, description="A number (score), true/false, or a category label"
    )
    comment: str | None = None
    source: str = Field("user", description=f"One of {', '.join(SOURCES)}")
    author: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class FeedbackBody(BaseModel):
    """Feedback records to store."""

    items: list[FeedbackItem] = Field(min_length=1, max_length=10_000)


@router.post("/feedback")
def add_feedback(
    body: FeedbackBody,
    request: Request,
    store: StoreDep,
    project: Annotated[str | None, Query()] = None,
) -> Any:
    """Attach feedback to traces (or spans). A record whose id is already stored with
    the same content is not stored again; the same id with other content is a 409."""
    proj = request.app.state.auth.project_for(request, project)
    records = []
    for i, item in enumerate(body.items):
        try:
            records.append(
                make_feedback(
                    proj,
                    item.trace_id,
                    item.name,
                    item.value,
                    span_id=item.span_id,
                    comment=item.comment,
                    source=item.source,
                    author=item.author,
                    id=item.id,
                    metadata=item.metadata,
                )
            )
        except FeedbackError as exc:
            raise HTTPException(422, f"items[{i}]: {exc}") from None
    ids = [r.feedback_id for r in records]
    if len(set(ids)) != len(ids):
        raise HTTPException(422, "two items share one id; give each record its own id")
    existing = {f.feedback_id: f for f in store.list_feedback(proj, ids=ids, limit=len(ids))}
    conflicts = [
        r.feedback_id
        for r in records
        if r.feedback_id in existing and not same_content(existing[r.feedback_id], r)
    ]
    if conflicts:
        raise HTTPException(
            409,
            f"id(s) {conflicts[:5]} already hold different feedback; use a new id to add "
            "another record (nothing was stored)",
        )
    stored = store.add_feedback(records)
    return {"items": [feedback_json(f) for f in stored]}


@router.get("/feedback")
def list_feedback(
    request: Request,
    store: StoreDep,
    project: Annotated[str | None, Query()] = None,
    trace_id: str | None = None,
    name: str | None = None,
    source: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Any:
    """Feedback, newest first (for one trace, name or source)."""
    proj = request.app.state.auth.project_for(request, project)
    if source is not None and source not in SOURCES:
        raise HTTPException(400, f"source {source!r} must be one of {', '.join(SOURCES)}")
    items = store.list_feedback(
        proj,
        trace_id=trace_id.lower() if trace_id else None,
        name=name,
        source=source,
        limit=limit,
    )
    return {"items": [feedback_json(f) for f in items]}
