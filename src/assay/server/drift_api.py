"""Drift checks under ``/api/v1/drift`` (the CLI's `assay drift check` calls these)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from assay.drift.features import FEATURES, FeatureError, check_embedder_name, resolve_embedder
from assay.drift.report import build_spec, run_check
from assay.drift.windows import DEFAULT_MAX_SAMPLES, GoldenNotFoundError
from assay.embedders import EmbedderError
from assay.query import parse_time
from assay.server.api import StoreDep

router = APIRouter(prefix="/api/v1", tags=["drift"])
_RANGE = Field(
    default=None,
    max_length=200,
    description="START..END ('7d ago..1d ago', '30d..1d', ISO-8601 times) or 'last 1d'",
)
_FILTER = Field(default=None, max_length=500)


class DriftCheckBody(BaseModel):
    """A drift check: two windows sharing the filters, and the test options."""

    model_config = ConfigDict(extra="forbid")

    reference: str | None = _RANGE
    reference_goldens: str | None = Field(
        None, max_length=200, description="A golden set as the reference: NAME or NAME@VERSION"
    )
    current: str = Field("last 1d", max_length=200, description="The window to test")
    model: str | None = _FILTER
    provider: str | None = _FILTER
    service: str | None = _FILTER
    route: str | None = _FILTER
    release: str | None = _FILTER
    environment: str | None = _FILTER
    kind: str | None = Field(None, max_length=100, description="Span kind; llm by default")
    name: str | None = _FILTER
    status: Literal["ok", "error", "unset"] | None = None
    attributes: dict[str, str] = Field(
        default_factory=dict, max_length=20, description="Attribute equality filters"
    )
    all_kinds: bool = Field(False, description="Every span kind, not only LLM calls")
    features: list[str] | None = Field(
        None, max_length=100, description="Features to compare (default: all built-ins)"
    )
    score_attributes: list[str] = Field(
        default_factory=list, max_length=50, description="Numeric span attributes to compare"
    )
    embedder: str | None = Field(
        None, max_length=200, description="auto, hashing, sentence-transformers, openai:MODEL"
    )
    alpha: float = Field(0.05, gt=0, lt=1)
    correction: Literal["holm", "bh"] = "holm"
    max_samples: int = Field(DEFAULT_MAX_SAMPLES, ge=10, le=1_000_000)
    max_embeddings: int = Field(5_000, ge=10, le=100_000)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    examples: int = Field(10, ge=0, le=1000)
    now: str | None = Field(
        None, max_length=100, description="Read relative ranges as of this time (default now)"
    )


@router.post(
    "/drift/check",
    summary="Compare a window of traffic with a reference, feature by feature",
    responses={
        400: {"description": "A window, feature or embedder that cannot be used"},
        404: {"description": "The golden set named as the reference is not stored"},
        502: {"description": "The embedding model failed"},
    },
)
def drift_check(
    body: DriftCheckBody,
    request: Request,
    store: StoreDep,
    project: Annotated[
        str | None, Query(description="Project (admins only; a key checks its own project)")
    ] = None,
) -> Any:
    """Run the detectors on every feature, correct for multiplicity across features and
    return the report (verdicts, effect sizes, examples of what moved)."""
    proj: str = request.app.state.auth.project_for(request, project)
    embedder_name = body.embedder or request.app.state.settings.embedder
    try:
        resolve_embedder(check_embedder_name(embedder_name))
    except EmbedderError as exc:
        raise HTTPException(400, f"embedder: {exc}") from None
    filters = {
        "model": body.model,
        "provider": body.provider,
        "service": body.service,
        "route": body.route,
        "release": body.release,
        "environment": body.environment,
        "kind": body.kind,
        "name": body.name,
        "status": body.status,
    }
    try:
        spec = build_spec(
            proj,
            current=body.current,
            reference=body.reference,
            reference_goldens=body.reference_goldens,
            filters=filters,
            attributes=body.attributes,
            all_kinds=body.all_kinds,
            now=parse_time(body.now, what="now") if body.now else None,
            features=tuple(body.features or ()),
            score_attributes=tuple(body.score_attributes),
            embedder=embedder_name,
            alpha=body.alpha,
            correction=body.correction,
            max_samples=body.max_samples,
            max_embeddings=body.max_embeddings,
            seed=body.seed,
            examples=body.examples,
        )
        report = run_check(store, spec)
    except GoldenNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    except FeatureError as exc:
        raise HTTPException(400, str(exc)) from None
    except EmbedderError as exc:
        raise HTTPException(502, f"embedding failed: {exc}") from None
    return report.to_json()


@router.get("/drift/features", summary="The features a drift check can compare")
def drift_features() -> Any:
    """Built-in features with their kind (which detectors run) and what they measure."""
    return {
        "items": [
            {"name": f.name, "kind": f.kind, "description": f.description, "golden": f.golden}
            for f in FEATURES.values()
        ]
    }
