"""Evaluations: the runs list, a run page (scorer means with intervals, flaky cases,
per-case outputs across trials) and the compare page (verdict per scorer, flipped cases).

Every statistic comes from the functions behind ``assay eval show`` / ``assay eval
compare`` and their API routes (:func:`assay.results.summarize`,
:func:`assay.results.compare_runs`, :func:`assay.server.evals_api.case_scores`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from threading import Lock
from typing import Annotated, Any, TypeVar, cast

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from assay.goldens import case_from_dict
from assay.model import Case, EvalRun, Trial
from assay.results import RunComparison, RunSummary, compare_runs, summarize
from assay.server.evals_api import case_scores
from assay.server.pages import PageContext, PageError, context, query, render
from assay.server.pages.charts import bars
from assay.store import Store, StoreError

router = APIRouter(include_in_schema=False)

#: Interval level of every page (the CLI's and the API's default).
LEVEL = 0.95
#: Cases per page of a run's per-case table.
CASES_PER_PAGE = 25
#: Scorer means shown in the runs list, per run.
LIST_SCORERS = 3
#: Case filters of the run page: name -> label.
CASE_FILTERS = {
    "all": "all cases",
    "failing": "failing",
    "flaky": "flaky",
    "errors": "target errors",
}
#: Summaries and scores of runs that are not running, kept per app (settled runs do not
#: change; a resume changes the status and finish time, which are part of the key).
RUN_CACHE = 256
T = TypeVar("T")


# -- shared helpers -----------------------------------------------------------------------


def _get_run(store: Store, project: str, run_id: str) -> EvalRun:
    """A run by id or unique prefix, or a 4xx page naming the problem."""
    if not run_id.strip():
        raise PageError(400, "give a run id (see the runs list at /evals)")
    try:
        run = store.get_run(project, run_id)
    except StoreError as exc:
        raise PageError(400, str(exc)) from None
    if run is None:
        raise PageError(
            404, f"no run {run_id!r} in project {project!r}; the runs list at /evals shows them"
        )
    return run


def _n_cases(store: Store, run: EvalRun) -> int:
    # What GET /api/v1/runs/{id}/summary passes as the run's case count.
    info = store.resolve_golden(run.project, run.golden, run.golden_version)
    return info.case_count if info else 0


def _summary(store: Store, run: EvalRun, trials: Iterable[Trial]) -> RunSummary:
    """The run's summary, exactly as the summary API computes it."""
    return summarize(run, trials, _n_cases(store, run), LEVEL)


class _RunCache:
    """Summaries and per-case scores of settled runs (not running), keyed by what changes
    when a run is resumed or gains trials: its status, finish time and trial count."""

    def __init__(self) -> None:
        self._items: dict[tuple[Any, ...], Any] = {}
        self._lock = Lock()

    def _get(self, kind: str, run: EvalRun, compute: Callable[[], T]) -> T:
        if run.status == "running":
            return compute()
        key = (kind, run.project, run.run_id, run.status, run.finished_at, run.trials)
        with self._lock:
            if key in self._items:
                return cast(T, self._items[key])
        value = compute()
        with self._lock:
            if len(self._items) >= RUN_CACHE:
                self._items.pop(next(iter(self._items)))
            self._items[key] = value
        return value

    def summary(
        self, store: Store, run: EvalRun, trials: Iterable[Trial] | None = None
    ) -> RunSummary:
        """The run's summary as the summary API computes it (from ``trials`` when given)."""
        return self._get(
            "summary",
            run,
            lambda: _summary(
                store, run, store.iter_trials(run.project, run.run_id) if trials is None else trials
            ),
        )

    def scores(self, store: Store, run: EvalRun) -> dict[str, dict[str, list[float]]]:
        """scorer key -> case id -> trial scores, as the compare API reads them."""
        return self._get("scores", run, lambda: case_scores(store, run.project, run))


def _cache(request: Request) -> _RunCache:
    state = request.app.state
    cache = getattr(state, "eval_page_cache", None)
    if cache is None:
        cache = state.eval_page_cache = _RunCache()
    return cache  # type: ignore[no-any-return]


def describe_target(target: dict[str, Any]) -> str:
    """A run's target in a few words: the model, callable or URL it called."""
    kind = str(target.get("kind", "target"))
    for field in ("model", "callable", "url"):
        if target.get(field):
            return f"{kind}: {target[field]}"
    return kind


def finite(value: float | None) -> float | None:
    """None for undefined (infinite or NaN) values, so pages print a dash."""
    return value if value is not None and math.isfinite(value) else None


def show_value(value: Any) -> str:
    """An expected answer, metadata value or structured output as readable text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def _golden_cases(store: Store, run: EvalRun) -> dict[str, Case]:
    rows = store.golden_cases(run.project, run.golden, run.golden_version)
    return {c.id: c for c in (case_from_dict(r) for r in rows)}


# -- runs list ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRow:
    """One run in the list, with its summary."""

    run: EvalRun
    summary: RunSummary


def _default_pair(runs: list[EvalRun]) -> tuple[str | None, str | None]:
    """The pair the compare form starts with: the newest run that has an older run of
    the same golden set (B) and that older run (A)."""
    for i, b in enumerate(runs):
        for a in runs[i + 1 :]:
            if a.golden == b.golden:
                return a.run_id, b.run_id
    return None, None


@router.get("/evals")
def runs_list(
    request: Request,
    golden: str | None = None,
    limit: Annotated[int, Query()] = 50,
) -> Response:
    """The runs list: newest first, filterable by golden set, with a compare form."""
    ctx = context(request)
    if not 1 <= limit <= 1000:
        raise PageError(400, f"limit {limit} must be between 1 and 1000")
    store = ctx.store
    goldens = sorted({g.name for g in store.list_golden_versions(ctx.project)})
    golden = golden or None
    if golden is not None and golden not in goldens:
        raise PageError(
            404,
            f"no golden set {golden!r} in project {ctx.project!r}; known: "
            f"{', '.join(goldens) or 'none (add one with `assay goldens add FILE`)'}",
        )
    runs = store.list_runs(ctx.project, golden, limit)
    cache = _cache(request)
    rows = [RunRow(r, cache.summary(store, r)) for r in runs]
    pick_a, pick_b = _default_pair(runs)
    return render(
        request,
        "evals.html",
        title="Evaluations",
        rows=rows,
        goldens=goldens,
        golden=golden,
        limit=limit,
        more_url=query("/evals", golden=golden, limit=min(1000, limit * 2))
        if len(runs) == limit and limit < 1000
        else None,
        pick_a=pick_a,
        pick_b=pick_b,
        list_scorers=LIST_SCORERS,
        describe_target=describe_target,
        finite=finite,
    )


# -- compare ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flip:
    """A case whose majority outcome changed between the runs, with both runs' trials."""

    case_id: str
    scorer: str
    direction: str  # "to fail" | "to pass"
    case: Case | None
    a: list[Trial]
    b: list[Trial]


def _trials_of(store: Store, run: EvalRun, case_ids: set[str]) -> dict[str, list[Trial]]:
    out: dict[str, list[Trial]] = {}
    if not case_ids:
        return out
    for t in store.iter_trials(run.project, run.run_id):
        if t.case_id in case_ids:
            out.setdefault(t.case_id, []).append(t)
    return out


def compare_page_data(ctx: PageContext, cache: _RunCache, a_id: str, b_id: str) -> RunComparison:
    """The two runs and their comparison as the compare API computes it, or a 4xx page
    when they cannot be compared (different golden sets, no shared cases)."""
    store = ctx.store
    a = _get_run(store, ctx.project, a_id)
    b = _get_run(store, ctx.project, b_id)
    if a.run_id == b.run_id:
        raise PageError(400, f"both sides are run {a.run_id}: choose two different runs")
    if a.golden != b.golden:
        raise PageError(
            400,
            f"run {a.run_id} is on golden set {a.golden!r} and run {b.run_id} on "
            f"{b.golden!r}: compare two runs of the same golden set",
        )
    scores_a = cache.scores(store, a)
    scores_b = cache.scores(store, b)
    cases_a = {c for per in scores_a.values() for c in per}
    cases_b = {c for per in scores_b.values() for c in per}
    if not cases_a & cases_b:
        raise PageError(
            400,
            f"runs {a.run_id} and {b.run_id} share no scored cases: nothing to compare "
            "(did one of them fail on every case?)",
        )
    try:
        result = compare_runs(a, b, scores_a, scores_b, level=LEVEL)
    except (TypeError, ValueError) as exc:
        raise PageError(400, f"these runs cannot be compared: {exc}") from None
    if not result.scorers:
        why = "; ".join(f"{k}: {v}" for k, v in result.skipped.items()) or "no scores"
        raise PageError(
            400, f"runs {a.run_id} and {b.run_id} have no scorer in common to compare ({why})"
        )
    return result


@router.get("/evals/compare")
def compare_page(request: Request, a: str = "", b: str = "") -> Response:
    """Run A (baseline) against run B (candidate): verdicts and flipped cases."""
    ctx = context(request)
    if not a or not b:
        raise PageError(
            400,
            "choose two runs to compare: /evals/compare?a=BASELINE&b=CANDIDATE "
            "(or pick A and B in the runs list at /evals)",
        )
    result = compare_page_data(ctx, _cache(request), a, b)
    run_a, run_b = result.baseline, result.candidate
    flipped: dict[str, list[tuple[str, str]]] = {}
    for key, c in result.scorers.items():
        for cid in c.flipped_to_fail:
            flipped.setdefault(cid, []).append((key, "to fail"))
        for cid in c.flipped_to_pass:
            flipped.setdefault(cid, []).append((key, "to pass"))
    ids = set(flipped)
    golden = _golden_cases(ctx.store, run_b) if ids else {}
    if ids and run_a.golden_version != run_b.golden_version:
        golden_a = _golden_cases(ctx.store, run_a)
        golden = {**golden_a, **golden}
    trials_a = _trials_of(ctx.store, run_a, ids)
    trials_b = _trials_of(ctx.store, run_b, ids)
    flips = [
        Flip(cid, key, direction, golden.get(cid), trials_a.get(cid, []), trials_b.get(cid, []))
        for cid in sorted(ids)
        for key, direction in flipped[cid]
    ]
    flips.sort(key=lambda f: (f.direction != "to fail", f.scorer, f.case_id))
    keys = list(result.scorers)
    diffs = [result.scorers[k].diff for k in keys]
    chart = bars(
        keys,
        diffs,
        title=f"Difference B − A with {LEVEL:.0%} interval",
        x_title="candidate − baseline",
        # An undefined interval (one shared case) draws no error bar rather than an
        # infinite one, which JSON cannot carry.
        errors=(
            [finite(max(0.0, c.diff - c.low)) or 0.0 for c in result.scorers.values()],
            [finite(max(0.0, c.high - c.diff)) or 0.0 for c in result.scorers.values()],
        ),
    )
    colours = {"regression": "#c0392b", "improvement": "#1e8e4e"}
    chart["data"][0]["marker"]["color"] = [
        colours.get(result.scorers[k].verdict, "#9aa3b5") for k in keys
    ]
    chart["layout"]["shapes"] = [
        {
            "type": "line",
            "x0": 0,
            "x1": 0,
            "yref": "paper",
            "y0": 0,
            "y1": 1,
            "line": {"color": "#1d2330", "width": 1},
        }
    ]
    # Cases needed to see the observed difference, where it is defined (a comparison of
    # one case has no variance, so no sample size).
    needed = {
        k: c.cases_needed(abs(c.diff))
        for k, c in result.scorers.items()
        if c.verdict == "no detectable change" and c.diff != 0 and math.isfinite(c.var_d)
    }
    return render(
        request,
        "eval_compare.html",
        needed=needed,
        title=f"Compare {run_a.run_id} → {run_b.run_id}",
        result=result,
        a=run_a,
        b=run_b,
        flips=flips,
        chart=chart,
        level=LEVEL,
        describe_target=describe_target,
        show_value=show_value,
        finite=finite,
    )


# -- one run ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseRow:
    """One case of a run: the golden case and its trials."""

    case_id: str
    case: Case | None
    trials: list[Trial]
    failing: dict[str, float]
    flaky: list[str]
    error: str | None
    #: scorer key -> how much this case's trials agree (the summary's per-case agreement)
    agreement: dict[str, float]


@router.get("/evals/{run_id}")
def run_page(
    request: Request,
    run_id: str,
    show: str = "all",
    page: Annotated[int, Query()] = 1,
) -> Response:
    """One run: scorer means with intervals, agreement, pass@k, totals and per-case outputs."""
    ctx = context(request)
    if show not in CASE_FILTERS:
        raise PageError(400, f"show={show!r} is not one of {', '.join(CASE_FILTERS)}")
    if page < 1:
        raise PageError(400, f"page {page} must be 1 or more")
    store = ctx.store
    run = _get_run(store, ctx.project, run_id)
    trials = list(store.iter_trials(ctx.project, run.run_id))
    summary = _cache(request).summary(store, run, trials)
    # Only the cases on this page are validated into Case values.
    golden_rows = {
        str(c["id"]): c for c in store.golden_cases(run.project, run.golden, run.golden_version)
    }
    by_case: dict[str, list[Trial]] = {}
    for t in trials:
        by_case.setdefault(t.case_id, []).append(t)
    flaky_of: dict[str, list[str]] = {}
    for key, sc in summary.scorers.items():
        for cid in sc.agreement.flaky:
            flaky_of.setdefault(cid, []).append(key)
    all_ids = set(golden_rows) | set(by_case)
    ids = sorted(all_ids)
    if show == "failing":
        ids = [c for c in ids if summary.failing(c) or c in summary.failed_cases]
    elif show == "flaky":
        ids = [c for c in ids if c in flaky_of]
    elif show == "errors":
        ids = [c for c in ids if c in summary.failed_cases]
    pages = max(1, math.ceil(len(ids) / CASES_PER_PAGE))
    if page > pages:
        raise PageError(
            400, f"page {page} is past the last page ({pages}) of {len(ids)} {CASE_FILTERS[show]}"
        )
    shown = ids[(page - 1) * CASES_PER_PAGE : page * CASES_PER_PAGE]
    rows = [
        CaseRow(
            cid,
            case_from_dict(golden_rows[cid]) if cid in golden_rows else None,
            sorted(by_case.get(cid, []), key=lambda t: t.trial),
            summary.failing(cid),
            flaky_of.get(cid, []),
            summary.failed_cases.get(cid),
            {
                key: sc.agreement.per_case[cid]
                for key, sc in summary.scorers.items()
                if cid in sc.agreement.per_case
            },
        )
        for cid in shown
    ]
    keys = list(summary.scorers)
    means = [summary.scorers[k].estimate.mean for k in keys]
    lows = [finite(summary.scorers[k].estimate.low) for k in keys]
    highs = [finite(summary.scorers[k].estimate.high) for k in keys]
    chart = bars(
        keys,
        means,
        title=f"Scorer means with {LEVEL:.0%} intervals (cases as clusters)",
        x_title="mean score",
        errors=(
            [m - lo if lo is not None else 0.0 for m, lo in zip(means, lows, strict=True)],
            [hi - m if hi is not None else 0.0 for m, hi in zip(means, highs, strict=True)],
        ),
    )
    counts = {
        "all": len(all_ids),
        "failing": sum(1 for c in all_ids if summary.failing(c) or c in summary.failed_cases),
        "flaky": len(flaky_of),
        "errors": len(summary.failed_cases),
    }

    def page_url(n: int) -> str:
        return query(f"/evals/{run.run_id}", show=show if show != "all" else None, page=n)

    return render(
        request,
        "eval_run.html",
        title=f"Run {run.run_id}",
        run=run,
        summary=summary,
        rows=rows,
        chart=chart,
        show=show,
        filters=CASE_FILTERS,
        counts=counts,
        page=page,
        pages=pages,
        n_shown=len(ids),
        prev_url=page_url(page - 1) if page > 1 else None,
        next_url=page_url(page + 1) if page < pages else None,
        level=LEVEL,
        describe_target=describe_target,
        show_value=show_value,
        finite=finite,
        others=[
            r for r in store.list_runs(ctx.project, run.golden, 20) if r.run_id != run.run_id
        ],
    )
