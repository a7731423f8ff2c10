"""Golden sets, eval runs and their results under ``/api/v1`` (used by the CLI, the
Python API and the runner, whether the server is remote or in-process)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field

from assay.goldens import (
    GoldenSet,
    GoldenSetError,
    case_from_dict,
    case_to_dict,
    diff_golden_sets,
    golden_set_from_cases,
)
from assay.model import EvalRun, GoldenVersion, Output, Score, ScorerSpec, Trial
from assay.results import compare_runs, summarize, to_json
from assay.server.api import StoreDep
from assay.store import Store, StoreError

router = APIRouter(prefix="/api/v1", tags=["evals"])
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"


def _project(request: Request, requested: str | None) -> str:
    project: str = request.app.state.auth.project_for(request, requested)
    return project


ProjectQuery = Annotated[
    str | None, Query(description="Project (admins only; a key acts on its own project)")
]


def _golden_json(g: GoldenVersion) -> dict[str, Any]:
    return {**asdict(g), "short": g.short}


def _run_json(r: EvalRun) -> dict[str, Any]:
    return to_json(r)  # type: ignore[no-any-return]


# -- golden sets --------------------------------------------------------------------------


class GoldenBody(BaseModel):
    """A golden-set version to store: its name and its cases (as in a JSONL file)."""

    name: str = Field(pattern=_NAME, description="Golden set name")
    description: str | None = None
    source: str | None = Field(None, description="Where the cases came from (a file path)")
    cases: list[dict[str, Any]] = Field(min_length=1)


@router.post("/goldens", status_code=200)
def add_golden(
    body: GoldenBody, request: Request, store: StoreDep, project: ProjectQuery = None
) -> Any:
    """Store a new version of a golden set (a version already stored is not duplicated)."""
    proj = _project(request, project)
    try:
        golden = golden_set_from_cases(
            body.name,
            [case_from_dict(c, source=f"cases[{i}]") for i, c in enumerate(body.cases)],
            description=body.description,
        )
    except GoldenSetError as exc:
        raise HTTPException(422, str(exc)) from None
    version, created = store.save_golden_set(
        proj,
        golden.name,
        golden.version,
        [case_to_dict(c) for c in golden.cases],
        description=golden.description,
        source=body.source,
    )
    return {**_golden_json(version), "created": created}


@router.get("/goldens")
def list_goldens(
    request: Request, store: StoreDep, project: ProjectQuery = None, name: str | None = None
) -> Any:
    """Stored golden-set versions, newest first."""
    proj = _project(request, project)
    return {"items": [_golden_json(g) for g in store.list_golden_versions(proj, name)]}


def load_golden(store: Store, project: str, name: str, version: str | None) -> GoldenSet:
    """A stored golden set (newest version, or one by hash prefix) or a 404."""
    try:
        found = store.resolve_golden(project, name, version)
    except StoreError as exc:
        raise HTTPException(400, str(exc)) from None
    if found is None:
        what = f"version {version!r} of golden set {name!r}" if version else f"golden set {name!r}"
        raise HTTPException(
            404, f"no {what} in project {project!r}; add one with `assay goldens add FILE`"
        )
    cases = [case_from_dict(c) for c in store.golden_cases(project, name, found.version)]
    return GoldenSet(
        name=found.name,
        description=found.description,
        cases=tuple(cases),
        version=found.version,
        source=found.source,
    )


@router.get("/goldens/{name}")
def get_golden(
    name: str,
    request: Request,
    store: StoreDep,
    project: ProjectQuery = None,
    version: Annotated[str | None, Query(description="Version hash or prefix")] = None,
) -> Any:
    """One golden-set version with its cases."""
    proj = _project(request, project)
    golden = load_golden(store, proj, name, version)
    info = store.resolve_golden(proj, name, golden.version)
    assert info is not None
    return {**_golden_json(info), "cases": [case_to_dict(c) for c in golden.cases]}


@router.get("/goldens/{name}/diff")
def diff_goldens(
    name: str,
    request: Request,
    store: StoreDep,
    old: Annotated[str, Query(description="Old version (hash prefix)")],
    new: Annotated[str | None, Query(description="New version (default: newest)")] = None,
    project: ProjectQuery = None,
) -> Any:
    """What changed between two versions of a golden set."""
    proj = _project(request, project)
    a = load_golden(store, proj, name, old)
    b = load_golden(store, proj, name, new)
    return diff_golden_sets(a, b).to_dict()


# -- runs ---------------------------------------------------------------------------------------


class ScorerSpecBody(BaseModel):
    """A scorer as a run records it."""

    name: str
    args: dict[str, Any] = Field(default_factory=dict)
    key: str | None = None


class RunBody(BaseModel):
    """A new run."""

    run_id: str = Field(pattern=_NAME)
    name: str | None = None
    golden: str = Field(pattern=_NAME)
    golden_version: str = Field(min_length=12)
    target: dict[str, Any]
    scorers: list[ScorerSpecBody]
    trials: int = Field(ge=1, le=1000)
    created_at: datetime
    metadata: dict[str, Any] = Field(default_factory=dict)


@router.post("/runs")
def create_run(
    body: RunBody, request: Request, store: StoreDep, project: ProjectQuery = None
) -> Any:
    """Record a new run of a stored golden-set version."""
    proj = _project(request, project)
    if store.resolve_golden(proj, body.golden, body.golden_version) is None:
        raise HTTPException(
            404,
            f"golden set {body.golden!r} version {body.golden_version[:12]} is not stored in "
            f"project {proj!r}; POST it to /api/v1/goldens first",
        )
    run = EvalRun(
        project=proj,
        run_id=body.run_id,
        name=body.name,
        golden=body.golden,
        golden_version=body.golden_version,
        target=body.target,
        scorers=[ScorerSpec(s.name, s.args, s.key) for s in body.scorers],
        trials=body.trials,
        status="running",
        created_at=body.created_at,
        metadata=body.metadata,
    )
    try:
        store.create_run(run)
    except StoreError as exc:
        raise HTTPException(409, str(exc)) from None
    return _run_json(run)


@router.get("/runs")
def list_runs(
    request: Request,
    store: StoreDep,
    project: ProjectQuery = None,
    golden: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> Any:
    """Runs, newest first."""
    proj = _project(request, project)
    return {"items": [_run_json(r) for r in store.list_runs(proj, golden, limit)]}


def _get_run(store: Store, project: str, run_id: str) -> EvalRun:
    try:
        run = store.get_run(project, run_id)
    except StoreError as exc:
        raise HTTPException(400, str(exc)) from None
    if run is None:
        raise HTTPException(404, f"no run {run_id!r} in project {project!r}; see `assay eval list`")
    return run


@router.get("/runs/{run_id}")
def get_run(run_id: str, request: Request, store: StoreDep, project: ProjectQuery = None) -> Any:
    """One run (by id or unique prefix)."""
    return _run_json(_get_run(store, _project(request, project), run_id))


class StatusBody(BaseModel):
    """A run's new status."""

    status: str = Field(pattern="^(running|finished|interrupted|failed)$")
    trials: int | None = Field(None, ge=1, le=1000, description="Raise the run's trial count")


@router.post("/runs/{run_id}/status")
def set_status(
    run_id: str, body: StatusBody, request: Request, store: StoreDep, project: ProjectQuery = None
) -> Any:
    """Mark a run running, finished, interrupted or failed."""
    proj = _project(request, project)
    run = _get_run(store, proj, run_id)
    store.set_run_status(proj, run.run_id, body.status, body.trials)
    return {"run_id": run.run_id, "status": body.status}


class ScoreBody(BaseModel):
    """One score of a trial."""

    value: float
    passed: bool | None = None
    label: str | None = None
    explanation: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class TrialBody(BaseModel):
    """One finished trial."""

    case_id: str = Field(min_length=1)
    trial: int = Field(ge=0)
    output: dict[str, Any] | None = None
    error: str | None = None
    scores: dict[str, ScoreBody] = Field(default_factory=dict)
    score_errors: dict[str, str] = Field(default_factory=dict)
    started_at: datetime
    finished_at: datetime


class TrialsBody(BaseModel):
    """Finished trials of one run."""

    trials: list[TrialBody] = Field(min_length=1, max_length=10_000)


_OUTPUT_FIELDS = set(Output.__dataclass_fields__)


@router.post("/runs/{run_id}/trials")
def add_trials(
    run_id: str, body: TrialsBody, request: Request, store: StoreDep, project: ProjectQuery = None
) -> Any:
    """Record finished trials (idempotent by case and trial index)."""
    proj = _project(request, project)
    run = _get_run(store, proj, run_id)
    trials = []
    for t in body.trials:
        if t.output is not None and not set(t.output) <= _OUTPUT_FIELDS:
            unknown = sorted(set(t.output) - _OUTPUT_FIELDS)
            raise HTTPException(
                422, f"trial {t.case_id}#{t.trial}: unknown output fields {unknown}"
            )
        if (t.output is None) == (t.error is None):
            raise HTTPException(
                422, f"trial {t.case_id}#{t.trial}: give exactly one of output and error"
            )
        trials.append(
            Trial(
                run_id=run.run_id,
                case_id=t.case_id,
                trial=t.trial,
                output=Output(**t.output) if t.output is not None else None,
                error=t.error,
                scores={k: Score(**s.model_dump()) for k, s in t.scores.items()},
                score_errors=t.score_errors,
                started_at=t.started_at,
                finished_at=t.finished_at,
            )
        )
    return {"added": store.record_trials(proj, trials)}


@router.get("/runs/{run_id}/completed")
def completed(run_id: str, request: Request, store: StoreDep, project: ProjectQuery = None) -> Any:
    """(case id, trial) pairs recorded without a target error, for resuming."""
    proj = _project(request, project)
    run = _get_run(store, proj, run_id)
    return {"items": sorted([c, k] for c, k in store.completed_trials(proj, run.run_id))}


@router.get("/runs/{run_id}/trials")
def list_trials(
    run_id: str,
    request: Request,
    store: StoreDep,
    project: ProjectQuery = None,
    case_id: str | None = None,
) -> Any:
    """A run's trials with outputs and scores (one case's with ``case_id``)."""
    proj = _project(request, project)
    run = _get_run(store, proj, run_id)
    items = [
        to_json(t)
        for t in store.iter_trials(proj, run.run_id)
        if case_id is None or t.case_id == case_id
    ]
    return {"items": items}


@router.get("/runs/{run_id}/summary")
def run_summary(
    run_id: str,
    request: Request,
    store: StoreDep,
    project: ProjectQuery = None,
    level: Annotated[float, Query(gt=0.5, lt=1)] = 0.95,
) -> Any:
    """Per-scorer means with intervals (cases as clusters), flaky cases, pass@k, cost and
    latency of a run."""
    proj = _project(request, project)
    run = _get_run(store, proj, run_id)
    info = store.resolve_golden(proj, run.golden, run.golden_version)
    n_cases = info.case_count if info else 0
    return to_json(summarize(run, store.iter_trials(proj, run.run_id), n_cases, level))


def case_scores(store: Store, project: str, run: EvalRun) -> dict[str, dict[str, list[float]]]:
    """scorer key -> case id -> trial scores of a run."""
    out: dict[str, dict[str, list[float]]] = {}
    for t in store.iter_trials(project, run.run_id):
        for key, s in t.scores.items():
            out.setdefault(key, {}).setdefault(t.case_id, []).append(s.value)
    return out


@router.get("/compare")
def compare(
    request: Request,
    store: StoreDep,
    baseline: Annotated[str, Query(description="Baseline run id")],
    candidate: Annotated[str, Query(description="Candidate run id")],
    project: ProjectQuery = None,
    level: Annotated[float, Query(gt=0.5, lt=1)] = 0.95,
    power: Annotated[float, Query(gt=0, lt=1)] = 0.8,
    lower_is_better: Annotated[
        list[str] | None, Query(description="Scorers where lower is better")
    ] = None,
) -> Any:
    """Paired comparison of two runs on the cases they share, per scorer, with
    Benjamini–Hochberg across scorers; verdicts and flipped cases."""
    proj = _project(request, project)
    a = _get_run(store, proj, baseline)
    b = _get_run(store, proj, candidate)
    try:
        result = compare_runs(
            a,
            b,
            case_scores(store, proj, a),
            case_scores(store, proj, b),
            level=level,
            power=power,
            lower_is_better=lower_is_better or (),
        )
    except (TypeError, ValueError) as exc:
        raise HTTPException(422, str(exc)) from None
    return to_json(result)
