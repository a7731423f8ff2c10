"""Calibration pages: the judges (with or without a stored calibrator), and one judge's
agreement with human labels, confusion matrix, reliability diagram and quality estimate.

The numbers come from exactly the functions the calibration API calls
(``server/calibration_api.py``): ``store.judge_scores``, ``check_sampling`` on the labels'
origins, ``judge_report`` and ``quality_estimate``; the page only arranges them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from assay.calibration import (
    JUDGE_SOURCE,
    LABEL_FREE_CAVEAT,
    CalibrationError,
    JudgeReport,
    JudgeScores,
    NotRandomError,
    QualityEstimate,
    StoredCalibrator,
    check_name,
    check_sampling,
    judge_report,
    quality_estimate,
)
from assay.query import QueryError, SpanFilter
from assay.server.calibration_api import selection
from assay.server.pages import PageError, context, render
from assay.server.pages.charts import PALETTE, Figure, bars, heatmap, reliability
from assay.store import Store

router = APIRouter(include_in_schema=False)

#: Fewest labelled pairs a calibration report needs (``judge_report``) and a quality
#: estimate (``quality_estimate``); tested against those functions.
REPORT_MIN_PAIRS = 2
QUALITY_MIN_PAIRS = 2
#: Recent judge-score records read to find judges that have no calibrator.
RECENT_SCORES = 5_000
#: Reliability bins, as the API's default.
BINS = 10


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


# -- the list of judges ------------------------------------------------------------------------


@dataclass(frozen=True)
class JudgeRow:
    """A judge as the list shows it: its calibrator and its data (all time)."""

    judge: str
    labels: str
    calibrator: StoredCalibrator | None
    n_scored: int
    n_pairs: int
    label_only: int

    @property
    def needed(self) -> int:
        """Labelled pairs still missing for a calibration report."""
        return max(0, REPORT_MIN_PAIRS - self.n_pairs)


def judge_names(store: Store, project: str) -> list[str]:
    """Judges of a project: stored calibrators, online rules and recent judge scores."""
    names = {c.judge for c in store.list_calibrators(project)}
    names |= {r.score_name for r in store.list_online_rules(project)}
    recent = store.list_feedback(project, source=JUDGE_SOURCE, limit=RECENT_SCORES)
    names |= {f.name for f in recent}
    return sorted(names)


@router.get("/calibration")
def calibration_list(request: Request) -> Response:
    """Judges with a stored calibrator, and judges with scores but none yet."""
    ctx = context(request)
    store = ctx.store
    stored = {c.judge: c for c in store.list_calibrators(ctx.project)}
    rows = []
    for name in judge_names(store, ctx.project):
        c = stored.get(name)
        labels = c.labels if c else name
        data = store.judge_scores(ctx.project, name, labels, SpanFilter(project=ctx.project))
        rows.append(JudgeRow(name, labels, c, data.n_scored, data.n_pairs, data.label_only))
    return render(
        request,
        "calibration.html",
        title="Calibration",
        calibrated=[r for r in rows if r.calibrator is not None],
        uncalibrated=[r for r in rows if r.calibrator is None],
        min_pairs=REPORT_MIN_PAIRS,
    )


# -- one judge ---------------------------------------------------------------------------------


def _forest(q: QualityEstimate) -> tuple[Figure, list[dict[str, Any]]]:
    """The PPI interval beside the human-only and judge-only ones (and the label-free one
    when a calibrator is stored): a small forest plot and its rows."""
    p = q.ppi
    rows: list[dict[str, Any]] = [
        {
            "name": "PPI++ (judge + human labels)",
            "estimate": p.estimate,
            "low": p.low,
            "high": p.high,
            "n": f"{q.n_labelled:,} labels + {q.n_scored - q.n_labelled:,} judge scores",
            "note": f"λ = {p.lam:.2f}; as precise as {p.effective_labels:,.0f} labels alone",
            "key": "ppi",
        },
        {
            "name": "human labels only",
            "estimate": p.classical_estimate,
            "low": p.classical_low,
            "high": p.classical_high,
            "n": f"{q.n_labelled:,} labels",
            "note": "classical interval, λ = 0",
            "key": "human",
        },
        {
            "name": "judge only (biased)",
            "estimate": p.judge_mean,
            "low": p.judge_low,
            "high": p.judge_high,
            "n": f"{q.n_scored - q.n_labelled:,} judge scores",
            "note": f"ignores the judge's offset of {p.judge_offset:+.3f}: not a quality estimate",
            "key": "judge",
        },
    ]
    if q.label_free is not None:
        e = q.label_free
        rows.append(
            {
                "name": "label-free (calibrated judge)",
                "estimate": e.estimate,
                "low": e.low,
                "high": e.high,
                "n": f"{e.n:,} calibrated scores",
                "note": LABEL_FREE_CAVEAT,
                "key": "label-free",
            }
        )
    fig = bars(
        [r["name"] for r in rows],
        [r["estimate"] for r in rows],
        title=f"Pass rate of the window ({p.level:.0%} intervals)",
        x_title="mean human label (pass rate)",
        errors=(
            [max(0.0, r["estimate"] - r["low"]) for r in rows],
            [max(0.0, r["high"] - r["estimate"]) for r in rows],
        ),
    )
    # A forest plot: points with whiskers, not bars from zero.
    trace = fig["data"][0]
    trace.update(
        type="scatter",
        mode="markers",
        marker={"size": 11, "color": [PALETTE[0], PALETTE[1], "#9aa3b5", PALETTE[2]][: len(rows)]},
        hovertemplate="%{y}: %{x:.3f}<extra></extra>",
    )
    trace.pop("orientation", None)
    trace["error_x"]["thickness"] = 2
    trace["error_x"]["width"] = 6
    # Zoomed to the intervals (they are often a few points wide), never past [0, 1].
    low = max(0.0, min(r["low"] for r in rows) - 0.08)
    high = min(1.0, max(r["high"] for r in rows) + 0.08)
    fig["layout"]["xaxis"].update(range=[low, high], tickformat=".0%")
    fig["layout"]["margin"] = {"l": 10, "r": 20, "t": 30, "b": 40}
    return fig, rows


def _confusion(r: JudgeReport) -> Figure:
    c = r.agreement.confusion
    labels = [str(x) for x in c.labels]
    return heatmap(
        [list(row) for row in c.counts],
        [f"human {x}" for x in labels],
        [f"judge {x}" for x in labels],
        title=f"Confusion matrix (pass = score ≥ {r.pass_at:g})",
        x_title="human",
        y_title="judge",
    )


def _reliability(r: JudgeReport) -> Figure | None:
    d = r.diagram
    if d is None:
        return None
    fig = reliability(
        [b.mean_confidence for b in d.bins],
        [b.accuracy for b in d.bins],
        [b.count for b in d.bins],
        title=f"Reliability of raw judge scores (ECE {d.ece:.3f})",
    )
    judge = fig["data"][1]
    judge["error_y"] = {
        "type": "data",
        "symmetric": False,
        "array": [max(0.0, b.accuracy_high - b.accuracy) for b in d.bins],
        "arrayminus": [max(0.0, b.accuracy - b.accuracy_low) for b in d.bins],
        "color": "#9aa3b5",
        "thickness": 1,
    }
    judge["hovertemplate"] = "score %{x:.2f} → humans pass %{y:.2f} (%{text})<extra></extra>"
    fig["layout"]["legend"] = {"orientation": "h", "y": -0.25}
    # A little room past 0 and 1 so that markers on the edges are not cut in half.
    fig["layout"]["xaxis"]["range"] = [-0.02, 1.02]
    fig["layout"]["yaxis"]["range"] = [-0.04, 1.06]
    return fig


def _bad(exc: Exception) -> PageError:
    if isinstance(exc, HTTPException):
        return PageError(exc.status_code, str(exc.detail))
    return PageError(400, str(exc))


@router.get("/calibration/{judge}")
def judge_page(
    request: Request,
    judge: str,
    labels: Annotated[str | None, Query(max_length=128)] = None,
    window: Annotated[str | None, Query(max_length=200)] = None,
    route: Annotated[str | None, Query(max_length=500)] = None,
    pass_at: Annotated[str | None, Query(max_length=20)] = None,
    assume_random: Annotated[str | None, Query(max_length=5)] = None,
) -> Response:
    """A judge's agreement with human labels and the window's quality estimate."""
    ctx = context(request)
    store = ctx.store
    try:
        name = check_name(judge, "judge")
    except CalibrationError as exc:
        raise PageError(400, str(exc)) from None
    threshold = 0.5
    if pass_at not in (None, ""):
        try:
            threshold = float(pass_at)
        except ValueError:
            threshold = math.nan
        if not 0.0 < threshold <= 1.0:
            raise PageError(
                400,
                f"pass_at {pass_at!r} must be a number in (0, 1]: a score at or above it counts "
                "as a pass, e.g. 0.5",
            )
    assumed = assume_random in ("1", "true", "on")
    if assume_random not in (None, "", "0", "false", "1", "true", "on"):
        raise PageError(400, f"assume_random {assume_random!r} must be 1 or 0")
    stored = store.get_calibrator(ctx.project, name)
    label_name = labels or (stored.labels if stored else name)
    flt = SpanFilter(project=ctx.project, route=route or None)
    try:
        sel = selection(name, flt, label_name, window or None)
    except (HTTPException, QueryError, ValueError) as exc:
        raise _bad(exc) from None
    if stored is None and not store.list_judge_scores(
        ctx.project, name, SpanFilter(project=ctx.project), 1
    ):
        raise PageError(
            404,
            f"no judge {name!r} in project {ctx.project!r}: it has no scores and no stored "
            "calibrator (judge scores are feedback records with source 'judge' and this name)",
        )
    data: JudgeScores = store.judge_scores(sel.project, sel.judge, sel.labels, sel.flt)
    origins = store.label_origins(data.project, data.label_ids, data.label_keys)
    report: JudgeReport | None = None
    report_error: str | None = None
    try:
        sampling = check_sampling(origins, purpose="report") if data.n_pairs else None
        report = judge_report(
            data,
            pass_at=threshold,
            bins=BINS,
            level=0.95,
            window=sel.window,
            sampling=sampling,
            stored=stored,
        )
    except CalibrationError as exc:
        report_error = str(exc)
    quality: QualityEstimate | None = None
    quality_error: str | None = None
    refused = False
    try:
        q_sampling = check_sampling(origins, assume_random=assumed)
        quality = quality_estimate(
            data, q_sampling, calibrator=stored, level=0.95, window=sel.window
        )
    except NotRandomError as exc:
        quality_error, refused = str(exc), True
    except CalibrationError as exc:
        quality_error = str(exc)
    forest, forest_rows = _forest(quality) if quality else (None, [])
    params = {
        "labels": labels,
        "window": window,
        "route": route,
        "pass_at": pass_at,
        "assume_random": "1" if assumed else None,
    }
    return render(
        request,
        "calibration_judge.html",
        title=f"Calibration of {name}",
        judge=name,
        sel=sel,
        params=params,
        form={k: v or "" for k, v in params.items()},
        pass_at=threshold,
        assumed=assumed,
        data=data,
        stored=stored,
        report=report,
        report_error=report_error,
        needed=max(0, REPORT_MIN_PAIRS - data.n_pairs),
        quality=quality,
        quality_error=quality_error,
        quality_needed=max(0, QUALITY_MIN_PAIRS - data.n_pairs),
        refused=refused,
        forest=forest,
        forest_rows=forest_rows,
        forest_height=60 + 42 * len(forest_rows),
        confusion=_confusion(report) if report else None,
        diagram=_reliability(report) if report else None,
        kappa=_finite(report.agreement.cohen_kappa) if report else None,
        scott=_finite(report.agreement.scott_pi) if report else None,
        kalpha=_finite(report.agreement.krippendorff_alpha) if report else None,
    )
