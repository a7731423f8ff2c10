"""Golden sets: their versions, one version's cases with provenance, and version diffs.

Cases are loaded and diffed by the code behind ``assay goldens show`` / ``assay goldens
diff`` and their API routes (:func:`assay.server.evals_api.load_golden`,
:func:`assay.goldens.diff_golden_sets`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from assay.goldens import GoldenSet, diff_golden_sets
from assay.model import Case, GoldenVersion
from assay.promotion import PROVENANCE_KEY
from assay.server.evals_api import load_golden
from assay.server.pages import PageError, context, query, render
from assay.store import Store, StoreError

router = APIRouter(include_in_schema=False)

#: Cases per page of a golden-set version.
CASES_PER_PAGE = 50


def show_value(value: Any) -> str:
    """An expected answer or metadata value as readable text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def provenance(case: Case) -> Mapping[str, Any] | None:
    """Where a promoted case came from (``metadata.provenance``), or None."""
    value = case.metadata.get(PROVENANCE_KEY)
    return value if isinstance(value, Mapping) and value.get("trace_id") else None


def _load(store: Store, project: str, name: str, version: str | None) -> GoldenSet:
    """A stored version as the API loads it; its 4xx becomes the page's."""
    try:
        return load_golden(store, project, name, version)
    except HTTPException as exc:
        raise PageError(exc.status_code, str(exc.detail)) from None


def _versions(store: Store, project: str, name: str) -> list[GoldenVersion]:
    found = store.list_golden_versions(project, name)
    if not found:
        raise PageError(
            404,
            f"no golden set {name!r} in project {project!r}; the list at /goldens shows them "
            "(add one with `assay goldens add FILE`)",
        )
    return found


@dataclass(frozen=True)
class GoldenGroup:
    """One golden set with its versions, newest first, and how many runs used it."""

    name: str
    versions: list[GoldenVersion]
    runs: int


@router.get("/goldens")
def goldens_list(request: Request) -> Response:
    """Every golden set of the project with its versions."""
    ctx = context(request)
    groups: dict[str, list[GoldenVersion]] = {}
    for g in ctx.store.list_golden_versions(ctx.project):
        groups.setdefault(g.name, []).append(g)
    sets = [
        GoldenGroup(
            name,
            sorted(vs, key=lambda v: v.created_at, reverse=True),
            len(ctx.store.list_runs(ctx.project, name, 1000)),
        )
        for name, vs in sorted(groups.items())
    ]
    return render(request, "goldens.html", title="Golden sets", sets=sets)


@router.get("/goldens/{name}/diff")
def golden_diff(
    request: Request,
    name: str,
    old: str = "",
    new: str = "",
) -> Response:
    """What changed between two versions (``new`` defaults to the newest)."""
    ctx = context(request)
    versions = _versions(ctx.store, ctx.project, name)
    if not old:
        raise PageError(
            400,
            f"give the old version: /goldens/{name}/diff?old=V1&new=V2 (version hashes or "
            "prefixes; the versions are listed at /goldens/" + name + ")",
        )
    before = _load(ctx.store, ctx.project, name, old)
    after = _load(ctx.store, ctx.project, name, new or None)
    result = diff_golden_sets(before, after)
    new_cases = {c.id: c for c in after.cases}
    old_cases = {c.id: c for c in before.cases}
    info = {v.version: v for v in versions}
    return render(
        request,
        "golden_diff.html",
        title=f"{name}: {before.short} → {after.short}",
        name=name,
        before=before,
        after=after,
        before_info=info.get(before.version),
        after_info=info.get(after.version),
        diff=result,
        added=[new_cases[i] for i in result.added],
        removed=[old_cases[i] for i in result.removed],
        versions=versions,
        show_value=show_value,
        provenance=provenance,
        provenance_key=PROVENANCE_KEY,
    )


@router.get("/goldens/{name}")
def golden_set(
    request: Request,
    name: str,
    version: str = "",
    page: Annotated[int, Query()] = 1,
) -> Response:
    """One version's cases (the newest by default), with provenance and a version picker."""
    ctx = context(request)
    if page < 1:
        raise PageError(400, f"page {page} must be 1 or more")
    versions = _versions(ctx.store, ctx.project, name)
    golden = _load(ctx.store, ctx.project, name, version or None)
    try:
        info = ctx.store.resolve_golden(ctx.project, name, golden.version)
    except StoreError as exc:  # pragma: no cover - a full hash is never ambiguous
        raise PageError(400, str(exc)) from None
    assert info is not None
    pages = max(1, -(-len(golden.cases) // CASES_PER_PAGE))
    if page > pages:
        raise PageError(400, f"page {page} is past the last page ({pages})")
    cases = golden.cases[(page - 1) * CASES_PER_PAGE : page * CASES_PER_PAGE]
    position = next(i for i, v in enumerate(versions) if v.version == golden.version)
    previous = versions[position + 1] if position + 1 < len(versions) else None

    def page_url(n: int) -> str:
        return query(f"/goldens/{name}", version=version or None, page=n if n > 1 else None)

    return render(
        request,
        "golden_set.html",
        title=f"Golden set {name}",
        name=name,
        golden=golden,
        info=info,
        versions=versions,
        latest=versions[0].version == golden.version,
        previous=previous,
        cases=cases,
        page=page,
        pages=pages,
        prev_url=page_url(page - 1) if page > 1 else None,
        next_url=page_url(page + 1) if page < pages else None,
        promoted=sum(1 for c in golden.cases if provenance(c)),
        runs=ctx.store.list_runs(ctx.project, name, 10),
        show_value=show_value,
        provenance=provenance,
        provenance_key=PROVENANCE_KEY,
    )
