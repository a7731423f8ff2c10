"""Judge calibration and quality estimates under ``/api/v1/calibration`` and
``/api/v1/quality``: agreement with human labels, stored recalibrations applied to later
scores, the PPI++ estimate of a window and the conformal abstention threshold."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from assay.calibration import (
    LABEL_FREE_CAVEAT,
    METHODS,
    CalibrationError,
    JudgeReport,
    JudgeScores,
    JudgeThreshold,
    QualityEstimate,
    SamplingCheck,
    StoredCalibrator,
    check_name,
    check_sampling,
    fit_judge_calibrator,
    judge_report,
    judge_threshold,
    quality_estimate,
)
from assay.query import SpanFilter
from assay.server.api import FilterDep, StoreDep
from assay.store import Store

if TYPE_CHECKING:
    from assay.stats import ReliabilityDiagram

router = APIRouter(prefix="/api/v1", tags=["calibration"])


# -- JSON forms ------------------------------------------------------------------------


def _num(x: float | None) -> float | None:
    """JSON has no NaN or infinity: undefined numbers become null."""
    return None if x is None or not math.isfinite(x) else float(x)


def calibrator_json(c: StoredCalibrator) -> dict[str, Any]:
    """The API form of a stored calibrator."""
    return {
        "judge": c.judge,
        "labels": c.labels,
        "method": c.method,
        "params": c.params,
        "fitted_at": c.fitted_at.isoformat(),
        "n": c.n,
        "n_fit": c.n_fit,
        "n_holdout": c.n_holdout,
        "ece_before": _num(c.ece_before),
        "ece_after": _num(c.ece_after),
        "brier_before": _num(c.brier_before),
        "brier_after": _num(c.brier_after),
        "window": c.window,
    }


def sampling_json(s: SamplingCheck | None) -> dict[str, Any] | None:
    """The API form of a sampling check."""
    if s is None:
        return None
    return {
        "design": s.design,
        "weighted": s.weights is not None,
        "origins": s.origins,
        "message": s.message,
    }


def diagram_json(d: ReliabilityDiagram) -> dict[str, Any]:
    """Reliability diagram data: one row per bin."""
    return {
        "strategy": d.strategy,
        "n": d.n,
        "ece": d.ece,
        "bins": [
            {
                "low": b.low,
                "high": b.high,
                "count": b.count,
                "mean_confidence": b.mean_confidence,
                "accuracy": b.accuracy,
                "accuracy_low": b.accuracy_low,
                "accuracy_high": b.accuracy_high,
            }
            for b in d.bins
        ],
    }


def report_json(r: JudgeReport) -> dict[str, Any]:
    """The API form of a calibration report."""
    a = r.agreement
    return {
        "judge": r.judge,
        "labels": r.labels,
        "window": r.window,
        "n_pairs": r.n_pairs,
        "n_scored": r.n_scored,
        "labels_without_score": r.label_only,
        "pass_at": r.pass_at,
        "probabilistic": r.probabilistic,
        "accuracy": a.accuracy,
        "accuracy_low": a.accuracy_low,
        "accuracy_high": a.accuracy_high,
        "cohen_kappa": _num(a.cohen_kappa),
        "scott_pi": _num(a.scott_pi),
        "krippendorff_alpha": _num(a.krippendorff_alpha),
        "krippendorff_alpha_interval": _num(r.alpha_interval),
        "confusion": {
            "rows": "judge",
            "columns": "human",
            "labels": list(a.confusion.labels),
            "counts": [list(row) for row in a.confusion.counts],
        },
        "mean_offset": r.offset.mean,
        "offset_se": r.offset.se,
        "offset_low": r.offset.low,
        "offset_high": r.offset.high,
        "level": a.level,
        "ece": None if r.diagram is None else r.diagram.ece,
        "brier": _num(r.brier),
        "reliability": None if r.diagram is None else diagram_json(r.diagram),
        "sampling": sampling_json(r.sampling),
        "calibrator": None if r.stored is None else calibrator_json(r.stored),
        "fitted": None if r.fitted is None else calibrator_json(r.fitted),
    }


def quality_json(q: QualityEstimate) -> dict[str, Any]:
    """The API form of a quality estimate."""
    p = q.ppi
    label_free = None
    if q.label_free is not None and q.calibrator is not None:
        e = q.label_free
        label_free = {
            "estimate": e.estimate,
            "low": e.low,
            "high": e.high,
            "n": e.n,
            "calibrator": calibrator_json(q.calibrator),
            "caveat": LABEL_FREE_CAVEAT,
        }
    return {
        "judge": q.judge,
        "labels": q.labels,
        "window": q.window,
        "n_scored": q.n_scored,
        "n_labelled": q.n_labelled,
        "level": p.level,
        "ppi": {"estimate": p.estimate, "se": p.se, "low": p.low, "high": p.high, "lam": p.lam},
        "human_only": {
            "estimate": p.classical_estimate,
            "se": p.classical_se,
            "low": p.classical_low,
            "high": p.classical_high,
        },
        "judge_only": {"estimate": p.judge_mean, "low": p.judge_low, "high": p.judge_high},
        "judge_offset": p.judge_offset,
        "effective_labels": _num(p.effective_labels),
        "labels_gained": _num(q.labels_gained),
        "sampling": sampling_json(q.sampling),
        "label_free": label_free,
    }


def threshold_json(t: JudgeThreshold) -> dict[str, Any]:
    """The API form of a threshold."""
    r = t.result
    return {
        "judge": t.judge,
        "labels": t.labels,
        "window": t.window,
        "pass_at": t.pass_at,
        "risk": r.risk,
        "threshold": _num(r.threshold),
        "calibrated_threshold": _num(t.calibrated_threshold),
        "n": r.n,
        "n_wrong": r.n_wrong,
        "answer_rate": r.answer_rate,
        "empirical_risk": r.empirical_risk,
        "bound": r.bound,
        "error_rate_answered": _num(r.error_rate_answered),
        "abstain_all": r.abstain_all,
        "message": r.message,
        "sampling": sampling_json(t.sampling),
    }


#: Filters besides time that a window may carry, shown in the window's description.
_SHOWN = (
    "model",
    "provider",
    "service",
    "name",
    "kind",
    "status",
    "route",
    "release",
    "environment",
    "session_id",
    "user_id",
    "min_duration_ms",
    "min_cost",
    "text",
)


@dataclass(frozen=True)
class Selection:
    """What one request reads: the judge, its labels and the window of spans."""

    judge: str
    labels: str
    flt: SpanFilter
    window: str

    @property
    def project(self) -> str:
        """The project read."""
        return self.flt.project


def _describe(flt: SpanFilter, window: str | None) -> str:
    if window:
        text = window.strip()
    elif flt.start or flt.end:
        text = (
            f"{flt.start.isoformat() if flt.start else ''}.."
            f"{flt.end.isoformat() if flt.end else ''}"
        )
    else:
        text = "all time"
    extra = [f"{k}={getattr(flt, k)}" for k in _SHOWN if getattr(flt, k) is not None]
    extra += [f"{k}={v}" for k, v in flt.attributes.items()]
    return text + (f" ({', '.join(extra)})" if extra else "")


def _judge_name(judge: str) -> str:
    try:
        return check_name(judge, "judge")
    except CalibrationError as exc:
        raise HTTPException(400, str(exc)) from None


def selection(
    judge: str,
    flt: FilterDep,
    labels: Annotated[
        str | None,
        Query(description="Feedback name of the human labels (default: the judge's name)"),
    ] = None,
    window: Annotated[
        str | None,
        Query(
            description="Spans' time range: 'last 7d', '7d ago..1d ago', ISO times "
            "(instead of start/end)"
        ),
    ] = None,
) -> Selection:
    """The judge, label name and span window a calibration request reads."""
    name = _judge_name(judge)
    try:
        label_name = check_name(labels, "labels") if labels is not None else name
    except CalibrationError as exc:
        raise HTTPException(400, str(exc)) from None
    if window is not None:
        if flt.start is not None or flt.end is not None:
            raise HTTPException(
                400, "give either window or start/end, not both (window='last 7d' is start=7d)"
            )
        from assay.drift.windows import parse_range

        start, end = parse_range(window, what="calibration")
        flt = flt.with_(start=start, end=end)
    return Selection(name, label_name, flt, _describe(flt, window))


SelectionDep = Annotated[Selection, Depends(selection)]
PassAt = Annotated[
    float,
    Query(gt=0.0, le=1.0, description="A score (judge or human) at or above this is a pass"),
]
Level = Annotated[float, Query(gt=0.0, lt=1.0, description="Confidence level of intervals")]


def _read(store: Store, sel: Selection) -> JudgeScores:
    return store.judge_scores(sel.project, sel.judge, sel.labels, sel.flt)


def _origins(store: Store, data: JudgeScores) -> Any:
    return store.label_origins(data.project, data.label_ids, data.label_keys)


def _fail(exc: CalibrationError) -> HTTPException:
    return HTTPException(422, str(exc))


@router.get("/calibration")
def list_calibrators(
    request: Request, store: StoreDep, project: Annotated[str | None, Query()] = None
) -> Any:
    """Stored calibrators of the project, one per judge."""
    proj = request.app.state.auth.project_for(request, project)
    return {"items": [calibrator_json(c) for c in store.list_calibrators(proj)]}


@router.get("/calibration/{judge}")
def get_calibration(
    sel: SelectionDep,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=10_000, description="Scores to return")] = 100,
) -> Any:
    """The judge's stored calibrator and its latest scores, raw and calibrated (computed on
    read with the stored calibrator; ``calibrated`` is null when none is stored)."""
    stored = store.get_calibrator(sel.project, sel.judge)
    scores = store.list_judge_scores(sel.project, sel.judge, sel.flt, limit)
    if stored is None and not scores:
        raise HTTPException(
            404,
            f"judge {sel.judge!r} has no scores in the window ({sel.window}) and no stored "
            "calibrator; "
            "judge scores are feedback records with source 'judge' and this name",
        )
    values = stored.apply([s.value for s in scores]) if stored and scores else None
    return {
        "judge": sel.judge,
        "window": sel.window,
        "calibrator": None if stored is None else calibrator_json(stored),
        "scores": [
            {
                "trace_id": s.trace_id,
                "span_id": s.span_id,
                "raw": s.value,
                "calibrated": None if values is None else values[i],
                "scored_at": s.scored_at.isoformat(),
                "feedback_id": s.feedback_id,
            }
            for i, s in enumerate(scores)
        ],
    }


@router.delete("/calibration/{judge}", status_code=204)
def delete_calibration(
    judge: str,
    request: Request,
    store: StoreDep,
    project: Annotated[str | None, Query()] = None,
) -> Response:
    """Drop the judge's stored calibrator (its scores are untouched)."""
    proj = request.app.state.auth.project_for(request, project)
    if not store.delete_calibrator(proj, _judge_name(judge)):
        raise HTTPException(404, f"no calibrator is stored for judge {judge!r}")
    return Response(status_code=204)


def _report(
    store: Store, sel: Selection, data: JudgeScores, pass_at: float, bins: int, level: float
) -> Any:
    sampling = check_sampling(_origins(store, data), purpose="report") if data.n_pairs else None
    return judge_report(
        data,
        pass_at=pass_at,
        bins=bins,
        level=level,
        window=sel.window,
        sampling=sampling,
        stored=store.get_calibrator(sel.project, sel.judge),
    )


@router.get("/calibration/{judge}/report")
def calibration_report(
    sel: SelectionDep,
    store: StoreDep,
    pass_at: PassAt = 0.5,
    bins: Annotated[int, Query(ge=1, le=100, description="Reliability bins (equal mass)")] = 10,
    level: Level = 0.95,
) -> Any:
    """How far the judge agrees with human labels: accuracy, Cohen's κ, Scott's π,
    Krippendorff's α, the confusion matrix, the mean offset with its interval and, for a
    probabilistic judge, the reliability diagram and ECE."""
    try:
        return report_json(_report(store, sel, _read(store, sel), pass_at, bins, level))
    except CalibrationError as exc:
        raise _fail(exc) from None


@router.post("/calibration/{judge}/fit")
def fit_calibration(
    sel: SelectionDep,
    store: StoreDep,
    method: Annotated[str, Query(description=f"One of {', '.join(METHODS)}")] = "isotonic",
    holdout: Annotated[
        float, Query(gt=0.0, lt=1.0, description="Share of labels held out to measure ECE")
    ] = 0.3,
    seed: Annotated[int, Query(ge=0, description="Seed of the hold-out split")] = 0,
    pass_at: PassAt = 0.5,
    bins: Annotated[int, Query(ge=1, le=100)] = 10,
    level: Level = 0.95,
) -> Any:
    """Fit an isotonic or Platt recalibration on the labelled pairs, store it for the judge
    (replacing the one it had) and answer the calibration report with the fit's ECE
    before/after on held-out labels. Later reads apply it to every score of the judge."""
    if method not in METHODS:
        raise HTTPException(400, f"method {method!r} must be one of {', '.join(METHODS)}")
    try:
        data = _read(store, sel)
        report = _report(store, sel, data, pass_at, bins, level)
        fitted = fit_judge_calibrator(
            data, method, pass_at=pass_at, holdout=holdout, seed=seed, window=sel.window
        )
    except CalibrationError as exc:
        raise _fail(exc) from None
    store.save_calibrator(fitted)
    out = report_json(report)
    out["fitted"] = out["calibrator"] = calibrator_json(fitted)
    return out


@router.get("/calibration/{judge}/threshold")
def calibration_threshold(
    sel: SelectionDep,
    store: StoreDep,
    risk: Annotated[
        float, Query(gt=0.0, lt=1.0, description="Highest P(judge passes it and a human fails it)")
    ],
    pass_at: PassAt = 0.5,
) -> Any:
    """The judge score at or above which its verdict may stand without review, keeping
    P(answered and the human says fail) ≤ risk (conformal risk control), and the share
    of items it answers."""
    try:
        data = _read(store, sel)
        sampling = (
            check_sampling(_origins(store, data), purpose="threshold") if data.n_pairs else None
        )
        result = judge_threshold(
            data,
            risk,
            pass_at=pass_at,
            window=sel.window,
            sampling=sampling,
            stored=store.get_calibrator(sel.project, sel.judge),
        )
    except CalibrationError as exc:
        raise _fail(exc) from None
    return threshold_json(result)


@router.get("/quality/{judge}/estimate")
def estimate_quality(
    sel: SelectionDep,
    store: StoreDep,
    assume_random: Annotated[
        bool,
        Query(description="Treat labels of unknown or non-random origin as a random sample"),
    ] = False,
    level: Level = 0.95,
) -> Any:
    """The window's mean human label by PPI++ from the judge's scores and the human labels
    among them, next to the human-only interval and the judge-only mean; 422 when the
    labels are not a random sample of the window (unless ``assume_random``). With a
    stored calibrator, also the label-free mean of calibrated probabilities."""
    try:
        data = _read(store, sel)
        sampling = check_sampling(_origins(store, data), assume_random=assume_random)
        result = quality_estimate(
            data,
            sampling,
            calibrator=store.get_calibrator(sel.project, sel.judge),
            level=level,
            window=sel.window,
        )
    except CalibrationError as exc:
        raise _fail(exc) from None
    return quality_json(result)
