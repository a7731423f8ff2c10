"""Judge calibration on the data in the store: judge scores paired with human labels.

A judge's scores are feedback records with ``source="judge"`` and a name (value a number
in [0, 1] — a probability or a normalised grade — or true/false); human labels are
feedback with ``source`` ``reviewer`` or ``user`` and a label name (by default the
judge's). A **pair** is one (trace, span) — or one trace, for trace-level records —
holding both; of several records for one (trace, span) and name, the latest (by
``created_at``, then id) with a number or true/false wins.

On those pairs this module builds the calibration report (agreement, bias, reliability),
fits and stores recalibrations (applied on read to every later score: :func:`calibrated`),
the PPI++ quality estimate of a window — refusing when the labels are not a random
sample of it, or weighting them when an annotation queue recorded their inclusion
probabilities — and the conformal abstention threshold. The formulas are in
:mod:`assay.stats`; docs/calibration.md explains what a user sees.

Statistics modules are imported inside the functions that need them, so importing this
module (as the store does) stays cheap.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from assay.queues.values import PROBABILITY_SAMPLES

if TYPE_CHECKING:
    from assay.stats import (
        Calibrator,
        ConformalThreshold,
        JudgeAgreement,
        PassRateEstimate,
        PPIEstimate,
        ReliabilityDiagram,
    )
    from assay.store import Store

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: The feedback source of judge scores.
JUDGE_SOURCE = "judge"
#: Feedback sources that count as human labels.
LABEL_SOURCES: tuple[str, ...] = ("reviewer", "user")
#: Recalibration methods (``assay.stats.fit_calibrator``).
METHODS: tuple[str, ...] = ("isotonic", "platt")
#: Queue strategies that draw items with a known inclusion probability.
PROBABILITY_STRATEGIES: tuple[str, ...] = PROBABILITY_SAMPLES
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")


class CalibrationError(ValueError):
    """Judge scores or labels cannot give the number asked for; says why and what to do."""


class NotRandomError(CalibrationError):
    """The labels are not a random sample of the window, so PPI would be biased."""


def check_name(name: str, what: str = "judge") -> str:
    """A judge or label name as feedback records carry it, or CalibrationError."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise CalibrationError(
            f"{what} name {name!r} must be 1-128 letters, digits, '_', '.', ':' or '-' "
            "(the feedback name the scores were recorded under, e.g. 'helpfulness')"
        )
    return name


# -- what the store reads -----------------------------------------------------------


@dataclass(frozen=True, eq=False)
class JudgeScores:
    """A judge's latest score per (trace, span) in a window, and the human labels among them.

    ``scores`` has one value per scored item (N), in a stable order; ``labelled`` gives
    the positions in ``scores`` that carry a human label, ``human`` those labels (n, in
    the same order), ``label_ids`` the label records' feedback ids and ``label_keys``
    their (trace_id, span_id). ``label_only`` counts labels in the window whose item has
    no judge score (they cannot be paired).
    """

    project: str
    judge: str
    labels: str
    scores: FloatArray
    labelled: IntArray
    human: FloatArray
    label_ids: tuple[str, ...]
    label_keys: tuple[tuple[str, str | None], ...]
    label_only: int = 0

    @property
    def n_scored(self) -> int:
        """N: items with a judge score."""
        return len(self.scores)

    @property
    def n_pairs(self) -> int:
        """n: items with both a judge score and a human label."""
        return len(self.labelled)

    @property
    def paired_scores(self) -> FloatArray:
        """The judge's scores of the labelled items, aligned with ``human``."""
        return np.asarray(self.scores[self.labelled])

    @property
    def unlabelled_scores(self) -> FloatArray:
        """The judge's scores of the items without a label."""
        mask = np.ones(len(self.scores), dtype=bool)
        mask[self.labelled] = False
        return np.asarray(self.scores[mask])


@dataclass(frozen=True)
class JudgeScore:
    """One judge score as stored (the latest for its trace and span)."""

    trace_id: str
    span_id: str | None
    value: float
    feedback_id: str
    scored_at: datetime


@dataclass(frozen=True)
class LabelOrigin:
    """Where a human label came from: an annotation queue's item, with the queue's sampling.

    ``strategy`` is the queue's (random, stratified, low-confidence, disagreement, drift
    …); ``inclusion_probability`` the chance the item had of being picked, when the
    strategy draws at random (``None`` otherwise).
    """

    queue: str
    strategy: str
    inclusion_probability: float | None


@dataclass(frozen=True)
class StoredCalibrator:
    """A recalibration fitted on a judge's labelled pairs, stored per project and judge.

    ``params`` is the stats calibrator's ``to_dict()``; ``ece_before``/``ece_after`` (and
    the Brier scores) were measured on ``n_holdout`` labels held out of the fit, and the
    stored calibrator was then refitted on all ``n`` labels. ``window`` describes the
    data it was fitted on.
    """

    project: str
    judge: str
    labels: str
    method: str
    params: dict[str, Any]
    fitted_at: datetime
    n: int
    n_fit: int
    n_holdout: int
    ece_before: float | None
    ece_after: float
    brier_before: float | None
    brier_after: float
    window: str = "all time"

    def calibrator(self) -> Calibrator:
        """The stats calibrator these parameters describe."""
        from assay.stats import calibrator_from_dict

        return calibrator_from_dict(self.params)

    def apply(self, raw: Sequence[float] | FloatArray) -> list[float]:
        """Calibrated probabilities for raw judge scores."""
        return self.calibrator().predict(np.asarray(raw, dtype=np.float64))


def calibrated(store: Store, project: str, judge: str, raw: Sequence[float]) -> list[float] | None:
    """Calibrated probabilities for raw scores of ``judge`` with the calibrator stored for it,
    or ``None`` when none is stored. Calibration is applied on read: stored scores keep the
    judge's raw value, so a refit changes every later read at once."""
    stored = store.get_calibrator(project, check_name(judge))
    return None if stored is None else stored.apply(raw)


# -- checks on the values -------------------------------------------------------------


def _check_values(values: FloatArray, what: str, name: str) -> None:
    bad = np.flatnonzero((values < 0.0) | (values > 1.0))
    if bad.size:
        raise CalibrationError(
            f"{bad.size} {what} named {name!r} lie outside [0, 1] (e.g. {float(values[bad[0]])!r});"
            " calibration needs probabilities, normalised grades in [0, 1] or true/false. "
            "Record rescaled values (e.g. (stars - 1) / 4) under another name"
        )


def _need_pairs(data: JudgeScores, minimum: int, purpose: str) -> None:
    if data.n_pairs >= minimum:
        return
    hint = (
        f"the window has {data.n_scored} judge score(s) named {data.judge!r} (source judge) "
        f"and {data.n_pairs + data.label_only} label(s) named {data.labels!r} (source "
        f"reviewer or user, a number or true/false); {data.n_pairs} share a trace and span"
    )
    raise CalibrationError(
        f"{purpose} needs at least {minimum} labelled pairs: {hint}. Label more items of "
        "this judge (assay feedback add TRACE --name LABEL --value true --span SPAN), "
        "widen the window, or check --labels"
    )


def passes(values: FloatArray, pass_at: float) -> npt.NDArray[np.bool_]:
    """Pass/fail from scores in [0, 1]: pass when the score is at least ``pass_at``."""
    return np.asarray(values >= pass_at)


def _check_pass_at(pass_at: float) -> float:
    v = float(pass_at)
    if not 0.0 < v <= 1.0:
        raise CalibrationError(
            f"pass_at must be in (0, 1] (a score at or above it counts as a pass), got {pass_at!r}"
        )
    return v


# -- the calibration report -----------------------------------------------------------


@dataclass(frozen=True)
class Offset:
    """mean(judge − human) on the raw values, with its t interval."""

    mean: float
    se: float
    low: float
    high: float


@dataclass(frozen=True)
class JudgeReport:
    """How far a judge can be trusted, from its labelled pairs.

    ``agreement`` is on pass/fail (score ≥ ``pass_at``): accuracy, κ, π, α (nominal) and
    the confusion matrix (rows judge, columns human). ``offset`` is on the raw values.
    ``alpha_interval`` is Krippendorff's α at the interval level on the raw values, when
    either side has values other than 0 and 1. For a probabilistic judge (some score
    strictly between 0 and 1) ``diagram`` is the reliability diagram of its raw scores
    against the human pass/fail (equal-mass bins) with ``ece`` and ``brier``.
    """

    judge: str
    labels: str
    window: str
    n_pairs: int
    n_scored: int
    label_only: int
    pass_at: float
    probabilistic: bool
    agreement: JudgeAgreement
    offset: Offset
    alpha_interval: float | None
    diagram: ReliabilityDiagram | None
    brier: float | None
    sampling: SamplingCheck | None
    stored: StoredCalibrator | None
    fitted: StoredCalibrator | None = None


def judge_report(
    data: JudgeScores,
    *,
    pass_at: float = 0.5,
    bins: int = 10,
    level: float = 0.95,
    window: str = "all time",
    sampling: SamplingCheck | None = None,
    stored: StoredCalibrator | None = None,
) -> JudgeReport:
    """The calibration report of a judge against human labels on the pairs in ``data``."""
    from scipy import stats as sps

    from assay.stats import brier_score, judge_agreement, krippendorff_alpha, reliability_diagram

    pass_at = _check_pass_at(pass_at)
    _need_pairs(data, 2, "a calibration report")
    f, y = data.paired_scores, data.human
    _check_values(f, "judge scores", data.judge)
    _check_values(y, "labels", data.labels)
    judge_pass, human_pass = passes(f, pass_at), passes(y, pass_at)
    agreement = judge_agreement(
        ["pass" if p else "fail" for p in judge_pass],
        ["pass" if p else "fail" for p in human_pass],
        labels=["fail", "pass"],
        level=level,
    )
    d = f - y
    n = len(d)
    se = 0.0 if np.ptp(d) == 0.0 else float(d.std(ddof=1) / math.sqrt(n))
    t = float(sps.t.ppf(0.5 + level / 2.0, n - 1))
    mean = float(d.mean())
    offset = Offset(mean, se, mean - t * se, mean + t * se)
    binary = bool(np.all((f == 0.0) | (f == 1.0)) and np.all((y == 0.0) | (y == 1.0)))
    alpha_interval = None if binary else krippendorff_alpha([f.tolist(), y.tolist()], "interval")
    probabilistic = bool(np.any((f > 0.0) & (f < 1.0)))
    outcomes = human_pass.astype(np.float64)
    diagram = reliability_diagram(f, outcomes, bins, "mass") if probabilistic else None
    return JudgeReport(
        judge=data.judge,
        labels=data.labels,
        window=window,
        n_pairs=n,
        n_scored=data.n_scored,
        label_only=data.label_only,
        pass_at=pass_at,
        probabilistic=probabilistic,
        agreement=agreement,
        offset=offset,
        alpha_interval=alpha_interval,
        diagram=diagram,
        brier=brier_score(f, outcomes) if probabilistic else None,
        sampling=sampling,
        stored=stored,
    )


def fit_judge_calibrator(
    data: JudgeScores,
    method: str,
    *,
    pass_at: float = 0.5,
    holdout: float = 0.3,
    seed: int = 0,
    window: str = "all time",
    now: datetime | None = None,
) -> StoredCalibrator:
    """Fit an isotonic or Platt recalibration on the pairs (raw score → human pass), with
    ECE before/after measured on ``holdout`` of the labels; ready to store."""
    from assay.stats import calibration_report

    if method not in METHODS:
        raise CalibrationError(f"method {method!r} must be one of {', '.join(METHODS)}")
    pass_at = _check_pass_at(pass_at)
    _need_pairs(data, 3, "fitting a calibrator")
    f, y = data.paired_scores, data.human
    _check_values(f, "judge scores", data.judge)
    _check_values(y, "labels", data.labels)
    outcomes = passes(y, pass_at).astype(np.float64)
    try:
        rep = calibration_report(f, outcomes, method, holdout=holdout, seed=seed)  # type: ignore[arg-type]
    except ValueError as exc:
        raise CalibrationError(f"cannot fit a {method} calibrator: {exc}") from None
    return StoredCalibrator(
        project=data.project,
        judge=data.judge,
        labels=data.labels,
        method=method,
        params=rep.calibrator.to_dict(),
        fitted_at=now or datetime.now(UTC),
        n=rep.n,
        n_fit=rep.n_fit,
        n_holdout=rep.n_holdout,
        ece_before=rep.ece_before,
        ece_after=rep.ece_after,
        brier_before=rep.brier_before,
        brier_after=rep.brier_after,
        window=window,
    )


# -- sampling design of the labels -------------------------------------------------------

Design = Literal["random", "weighted", "assumed", "not_random"]
Purpose = Literal["estimate", "report", "threshold"]


@dataclass(frozen=True)
class SamplingCheck:
    """Whether the labels are a random sample of the window, and the weights that make them one.

    ``design``: ``random`` (every label from a random queue with equal inclusion
    probabilities), ``weighted`` (known, unequal probabilities: ``weights`` = 1/π per
    label), ``assumed`` (some labels' sampling is unknown or not random, and the caller
    said to treat them as random anyway) or ``not_random`` (PPI refuses). ``origins``
    counts the labels per origin, e.g. ``{"from queue support (random)": 150,
    "added outside any annotation queue": 30}``.
    """

    design: Design
    weights: tuple[float, ...] | None
    origins: dict[str, int]
    message: str

    @property
    def ok(self) -> bool:
        """Whether a quality estimate may use these labels."""
        return self.design != "not_random"


def _origin_name(origin: LabelOrigin | None) -> str:
    if origin is None:
        return "added outside any annotation queue"
    return f"from queue {origin.queue} ({origin.strategy})"


def _is_probability(origin: LabelOrigin | None) -> bool:
    return (
        origin is not None
        and origin.strategy in PROBABILITY_STRATEGIES
        and origin.inclusion_probability is not None
        and 0.0 < origin.inclusion_probability <= 1.0
    )


def check_sampling(
    origins: Sequence[LabelOrigin | None],
    *,
    assume_random: bool = False,
    purpose: Purpose = "estimate",
) -> SamplingCheck:
    """Decide how labels with these origins may be used.

    For a quality estimate (``purpose="estimate"``): labels all drawn with known
    inclusion probabilities (random or stratified queues) are used with weights 1/π
    (none when all π are equal); labels from a non-probability strategy (low confidence,
    disagreement, drift) or added outside a queue make it refuse (``not_random``) unless
    ``assume_random``. For a ``"report"`` or ``"threshold"`` the design is only noted:
    those use the labelled items as they are, and the message says what that means.
    """
    counts = dict(Counter(_origin_name(o) for o in origins))
    n = len(origins)
    bad = Counter(_origin_name(o) for o in origins if not _is_probability(o))
    n_bad = sum(bad.values())
    listed = ", ".join(f"{v} {k}" for k, v in sorted(bad.items()))
    probs = {o.inclusion_probability for o in origins if o is not None}
    if n_bad:
        design: Design = "not_random"
    else:
        design = "random" if len(probs) <= 1 else "weighted"
    if purpose != "estimate":
        if design == "random":
            return SamplingCheck(design, None, counts, "")
        what = (
            f"{n_bad} of {n} labels are not a random sample of the window ({listed})"
            if n_bad
            else "the labels were drawn with unequal inclusion probabilities"
        )
        consequence = (
            "agreement and calibration here describe the labelled items, which may be "
            "easier or harder than the window's traffic"
            if purpose == "report"
            else "the guarantee assumes the labelled items are exchangeable with the items "
            "the threshold will be applied to, which labels picked this way may not be"
        )
        return SamplingCheck(design, None, counts, f"note: {what}; {consequence}")
    if design == "random":
        return SamplingCheck(design, None, counts, "labels drawn at random by their queue")
    if design == "weighted":
        weights = tuple(
            1.0 / float(o.inclusion_probability) for o in origins if o and o.inclusion_probability
        )
        return SamplingCheck(
            design,
            weights,
            counts,
            "labels drawn with unequal inclusion probabilities (stratified): each is "
            "weighted by 1 / its probability",
        )
    if assume_random:
        msg = (
            f"ASSUMED RANDOM: {n_bad} of {n} labels are not a known random sample of the "
            f"window ({listed}); they are treated as one because --assume-random was given. "
            "If they were picked for a reason (low judge confidence, disagreement, drift, "
            "what someone happened to look at), this interval is biased"
        )
        return SamplingCheck("assumed", None, counts, msg)
    msg = (
        f"the labels are not a random sample of the window ({n_bad} of {n}: {listed}). "
        "PPI needs labels drawn at random from the window's traffic (or with known "
        "inclusion probabilities), otherwise its interval is biased. Label items from a "
        "random or stratified annotation queue (assay queues create NAME --strategy "
        "random), or pass --assume-random (assume_random=true over HTTP) if you know "
        "these labels are a random sample"
    )
    return SamplingCheck("not_random", None, counts, msg)


# -- the quality estimate -------------------------------------------------------------


@dataclass(frozen=True)
class QualityEstimate:
    """The quality of a window from N judge scores and n human labels among them.

    ``ppi`` holds the PPI++ estimate with its interval, the human-only (classical)
    interval and the judge-only mean; ``labels_gained`` = effective labels − n.
    ``label_free`` is mean(calibrated p) over all N scores when a calibrator is stored
    (``calibrator``): it holds only while that calibration still holds.
    """

    judge: str
    labels: str
    window: str
    n_scored: int
    n_labelled: int
    ppi: PPIEstimate
    labels_gained: float
    sampling: SamplingCheck
    label_free: PassRateEstimate | None
    calibrator: StoredCalibrator | None


def quality_estimate(
    data: JudgeScores,
    sampling: SamplingCheck,
    *,
    calibrator: StoredCalibrator | None = None,
    level: float = 0.95,
    window: str = "all time",
) -> QualityEstimate:
    """PPI++ mean of the human label over the window (raises NotRandomError when
    ``sampling`` refuses the labels). The judge's raw scores are the predictions: a
    calibrator fitted on these same labels would make them depend on the labels, which
    PPI's guarantee rules out; it gives the label-free estimate instead."""
    from assay.stats import expected_pass_rate, ppi_mean

    if not sampling.ok:
        raise NotRandomError(sampling.message)
    _need_pairs(data, 2, "a quality estimate")
    f, y, ft = data.paired_scores, data.human, data.unlabelled_scores
    _check_values(data.scores, "judge scores", data.judge)
    _check_values(y, "labels", data.labels)
    if len(ft) < 2:
        raise CalibrationError(
            f"the window has {len(ft)} judge-scored item(s) without a label; a quality "
            "estimate needs judge scores of at least 2 unlabelled items (widen the window "
            "or score more traffic)"
        )
    estimate = ppi_mean(y, f, ft, level=level, weights=sampling.weights)
    label_free = None
    if calibrator is not None:
        label_free = expected_pass_rate(calibrator.apply(data.scores), level)
    return QualityEstimate(
        judge=data.judge,
        labels=data.labels,
        window=window,
        n_scored=data.n_scored,
        n_labelled=data.n_pairs,
        ppi=estimate,
        labels_gained=estimate.effective_labels - data.n_pairs,
        sampling=sampling,
        label_free=label_free,
        calibrator=calibrator,
    )


# -- the abstention threshold -----------------------------------------------------------


@dataclass(frozen=True)
class JudgeThreshold:
    """The judge score at or above which its pass may be taken without review.

    Conformal risk control on the labelled pairs with confidence = the judge's raw score
    and wrong = the human says fail: P(score ≥ threshold and human fails) ≤ risk on new
    exchangeable items. ``calibrated_threshold`` is the threshold on the calibrated scale
    when a calibrator is stored.
    """

    judge: str
    labels: str
    window: str
    pass_at: float
    result: ConformalThreshold
    calibrated_threshold: float | None
    sampling: SamplingCheck | None


def judge_threshold(
    data: JudgeScores,
    risk: float,
    *,
    pass_at: float = 0.5,
    window: str = "all time",
    sampling: SamplingCheck | None = None,
    stored: StoredCalibrator | None = None,
) -> JudgeThreshold:
    """The conformal threshold on the judge's score for a risk of answered-and-wrong."""
    from assay.stats import conformal_threshold

    pass_at = _check_pass_at(pass_at)
    if not 0.0 < float(risk) < 1.0:
        raise CalibrationError(f"risk must be between 0 and 1 (e.g. 0.05), got {risk!r}")
    _need_pairs(data, 1, "a threshold")
    f, y = data.paired_scores, data.human
    _check_values(f, "judge scores", data.judge)
    _check_values(y, "labels", data.labels)
    result = conformal_threshold(f, passes(y, pass_at).astype(np.float64), float(risk))
    cal = None
    if stored is not None and math.isfinite(result.threshold):
        cal = stored.apply([result.threshold])[0]
    return JudgeThreshold(
        judge=data.judge,
        labels=data.labels,
        window=window,
        pass_at=pass_at,
        result=result,
        calibrated_threshold=cal,
        sampling=sampling,
    )


LABEL_FREE_CAVEAT = (
    "mean of calibrated judge probabilities over the window: holds only while the "
    "calibration still fits this traffic and judge; re-check with fresh labels and trust "
    "the PPI interval when they differ"
)


__all__ = [
    "JUDGE_SOURCE",
    "LABEL_SOURCES",
    "METHODS",
    "CalibrationError",
    "JudgeReport",
    "JudgeScore",
    "JudgeScores",
    "JudgeThreshold",
    "LabelOrigin",
    "NotRandomError",
    "QualityEstimate",
    "SamplingCheck",
    "StoredCalibrator",
    "calibrated",
    "check_sampling",
    "fit_judge_calibrator",
    "judge_report",
    "judge_threshold",
    "quality_estimate",
]
