"""Calibration of judge scores that claim a probability: ECE, reliability diagram, recalibration.

A judge is calibrated when, among items it gives probability p of passing, a share p
passes. :class:`IsotonicCalibrator` and :class:`PlattCalibrator` learn a map from raw
scores to calibrated probabilities on labelled items; both store as a plain dict and
apply to later scores. :func:`expected_pass_rate` turns calibrated probabilities on
unlabelled traffic into a label-free pass rate (valid only while calibration holds).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

import numpy as np
import numpy.typing as npt
from scipy import optimize, special
from scipy import stats as sps

from assay.stats._inputs import FloatArray, check_level
from assay.stats.intervals import wilson_interval

#: Scores as plain Python numbers or a numpy array.
Numbers = Sequence[float] | npt.NDArray[Any]
Strategy = Literal["mass", "width"]
Method = Literal["isotonic", "platt"]

#: Version of the stored calibrator format (``to_dict``).
CALIBRATOR_VERSION = 1
#: Probabilities are clipped to [EPS, 1 − EPS] before the logit, so 0 and 1 stay finite.
EPS = 1e-6


def finite_array(values: Numbers, name: str) -> FloatArray:
    """A flat sequence of finite numbers as a float array; errors name the bad entry."""
    if isinstance(values, str | bytes) or not hasattr(values, "__len__"):
        raise TypeError(f"{name}: expected a sequence of numbers, got {type(values).__name__}")
    try:
        fast = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        fast = None
    if fast is not None and fast.ndim == 1 and bool(np.isfinite(fast).all()):
        return fast
    for i, v in enumerate(values):
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise TypeError(f"{name}[{i}] = {v!r} is not a number") from None
        if not math.isfinite(x):
            raise ValueError(f"{name}[{i}] = {v!r} is not finite; fix or drop the item")
    raise TypeError(f"{name}: expected a flat sequence of numbers, one per item")


def probability_array(values: Numbers, name: str) -> FloatArray:
    """Finite numbers that must lie in [0, 1]."""
    a = finite_array(values, name)
    bad = np.flatnonzero((a < 0.0) | (a > 1.0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{name}[{i}] = {float(a[i])!r} is not a probability in [0, 1]; rescale the scores "
            "or fit an IsotonicCalibrator, which accepts any scale"
        )
    return a


def outcome_array(values: Numbers, name: str) -> FloatArray:
    """Pass/fail outcomes (True/False or 1/0) as a float array of 0.0 and 1.0."""
    a = finite_array(values, name)
    bad = np.flatnonzero((a != 0.0) & (a != 1.0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{name}[{i}] = {values[i]!r}: outcomes must be 1/True (pass, correct) or "
            "0/False (fail, wrong)"
        )
    return a


def _paired(
    scores: Numbers, outcomes: Numbers, probabilities: bool, score_name: str
) -> tuple[FloatArray, FloatArray]:
    p = probability_array(scores, score_name) if probabilities else finite_array(scores, score_name)
    y = outcome_array(outcomes, "outcomes")
    if len(p) != len(y):
        raise ValueError(
            f"{score_name} and outcomes must have the same length (one pair per labelled "
            f"item), got {len(p)} and {len(y)}"
        )
    if len(p) == 0:
        raise ValueError(f"{score_name} is empty; pass at least one labelled item")
    return p, y


@dataclass(frozen=True, slots=True)
class ReliabilityBin:
    """One bin of a reliability diagram.

    ``low``/``high``: the bin's range of probabilities (its edges for equal-width bins,
    the smallest and largest probability in it for equal-mass bins). ``accuracy`` is the
    share of passes, with its Wilson interval at 95% in ``accuracy_low``/``_high``.
    """

    low: float
    high: float
    count: int
    mean_confidence: float
    accuracy: float
    accuracy_low: float
    accuracy_high: float


@dataclass(frozen=True, slots=True)
class ReliabilityDiagram:
    """Per-bin mean probability against observed pass rate, and the ECE they give.

    ``ece`` = Σ_b (n_b / n) · |accuracy_b − mean_confidence_b| over non-empty bins.
    """

    bins: tuple[ReliabilityBin, ...]
    ece: float
    n: int
    strategy: str


def _bin_ids(p: FloatArray, bins: int, strategy: str) -> tuple[np.ndarray[Any, Any], FloatArray]:
    """Bin index of every probability, and the edges for equal-width bins."""
    if strategy == "width":
        edges = np.linspace(0.0, 1.0, bins + 1)
        return np.minimum((p * bins).astype(np.int64), bins - 1), edges
    order = np.argsort(p, kind="stable")
    sorted_p = p[order]
    n = len(p)
    cuts = np.round(np.arange(1, bins) * n / bins).astype(np.int64)
    # Move each cut back to the start of its run of equal values: equal probabilities
    # always share a bin, so the result does not depend on the input order.
    cuts = np.unique(np.searchsorted(sorted_p, sorted_p[np.clip(cuts, 0, n - 1)], side="left"))
    cuts = cuts[(cuts > 0) & (cuts < n)]
    ids_sorted = np.zeros(n, dtype=np.int64)
    ids_sorted[cuts] = 1
    ids = np.empty(n, dtype=np.int64)
    ids[order] = np.cumsum(ids_sorted)
    return ids, np.empty(0)


def reliability_diagram(
    probs: Numbers, outcomes: Numbers, bins: int = 10, strategy: Strategy = "mass"
) -> ReliabilityDiagram:
    """Reliability diagram data: per bin the mean probability, pass rate and count.

    ``strategy="mass"`` (default) makes bins of nearly equal counts (equal probabilities
    stay in one bin, so there may be fewer bins); ``"width"`` cuts [0, 1] into equal
    intervals and leaves out empty ones.
    """
    if isinstance(bins, bool) or int(bins) != bins or bins < 1:
        raise ValueError(f"bins must be a whole number >= 1, got {bins!r}")
    if strategy not in ("mass", "width"):
        raise ValueError(f"strategy must be 'mass' or 'width', got {strategy!r}")
    p, y = _paired(probs, outcomes, True, "probs")
    n = len(p)
    ids, edges = _bin_ids(p, int(bins), strategy)
    size = int(ids.max()) + 1
    count = np.bincount(ids, minlength=size)
    conf_sum = np.bincount(ids, weights=p, minlength=size)
    pass_sum = np.bincount(ids, weights=y, minlength=size)
    lows = np.full(size, np.inf)
    highs = np.full(size, -np.inf)
    np.minimum.at(lows, ids, p)
    np.maximum.at(highs, ids, p)
    out: list[ReliabilityBin] = []
    ece = 0.0
    for b in np.flatnonzero(count):
        c = int(count[b])
        conf, acc = float(conf_sum[b] / c), float(pass_sum[b] / c)
        ece += c / n * abs(acc - conf)
        lo, hi = wilson_interval(float(pass_sum[b]), c)
        low, high = (float(edges[b]), float(edges[b + 1])) if edges.size else (lows[b], highs[b])
        out.append(ReliabilityBin(float(low), float(high), c, conf, acc, lo, hi))
    return ReliabilityDiagram(tuple(out), ece, n, strategy)


def expected_calibration_error(
    probs: Numbers, outcomes: Numbers, bins: int = 10, strategy: Strategy = "mass"
) -> float:
    """ECE = Σ_b (n_b/n)·|pass rate_b − mean probability_b| (equal-mass bins by default)."""
    return reliability_diagram(probs, outcomes, bins, strategy).ece


def brier_score(probs: Numbers, outcomes: Numbers) -> float:
    """Mean squared difference between probability and outcome (lower is better)."""
    p, y = _paired(probs, outcomes, True, "probs")
    return float(np.mean((p - y) ** 2))


class Calibrator(Protocol):
    """Maps raw judge scores to calibrated pass probabilities; stores as a plain dict."""

    method: ClassVar[str]

    def predict(self, scores: Numbers) -> list[float]:
        """Calibrated probabilities for raw scores."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict that ``calibrator_from_dict`` turns back into this calibrator."""
        ...


def _check_stored(data: Mapping[str, Any], method: str) -> None:
    if not isinstance(data, Mapping):
        raise TypeError(f"a stored calibrator must be a dict, got {type(data).__name__}")
    if data.get("method") != method:
        raise ValueError(
            f"stored calibrator: method is {data.get('method')!r}, expected {method!r}"
        )
    if data.get("version") != CALIBRATOR_VERSION:
        raise ValueError(
            f"stored calibrator: version {data.get('version')!r} is not supported (this assay "
            f"reads version {CALIBRATOR_VERSION}); refit the calibrator"
        )


def _stored_count(data: Mapping[str, Any]) -> int:
    n = data.get("n")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"stored calibrator: n must be the number of labels fitted on, got {n!r}")
    return n


@dataclass(frozen=True, slots=True)
class IsotonicCalibrator:
    """Non-decreasing map from score to probability, by isotonic regression.

    Knots ``(x[i], y[i])``: between knots the map is linear, outside them flat. Fitted
    by pool-adjacent-violators on (score, outcome) pairs; scores may be on any scale
    (probabilities, 1–5 ratings, log-odds) as long as higher means more likely to pass.
    """

    x: tuple[float, ...]
    y: tuple[float, ...]
    n: int
    method: ClassVar[str] = "isotonic"

    @classmethod
    def fit(cls, scores: Numbers, outcomes: Numbers) -> IsotonicCalibrator:
        """Fit on labelled pairs: raw score and pass (1/True) or fail (0/False)."""
        s, y = _paired(scores, outcomes, False, "scores")
        values, inverse = np.unique(s, return_inverse=True)
        weight = np.bincount(inverse).astype(np.float64)
        total = np.bincount(inverse, weights=y)
        # Pool adjacent violators over the distinct scores: a stack of blocks, each with
        # its summed outcomes, weight and first/last distinct-score index.
        sums: list[float] = []
        weights: list[float] = []
        first: list[int] = []
        last: list[int] = []
        for i in range(len(values)):
            sums.append(float(total[i]))
            weights.append(float(weight[i]))
            first.append(i)
            last.append(i)
            while len(sums) > 1 and sums[-2] * weights[-1] >= sums[-1] * weights[-2]:
                s_top, w_top, l_top = sums.pop(), weights.pop(), last.pop()
                first.pop()
                sums[-1] += s_top
                weights[-1] += w_top
                last[-1] = l_top
        xs: list[float] = []
        ys: list[float] = []
        for s_b, w_b, lo, hi in zip(sums, weights, first, last, strict=True):
            v = s_b / w_b
            xs.append(float(values[lo]))
            ys.append(v)
            if hi != lo:
                xs.append(float(values[hi]))
                ys.append(v)
        return cls(tuple(xs), tuple(ys), len(s))

    def predict(self, scores: Numbers) -> list[float]:
        """Calibrated probabilities for raw scores (linear between knots, flat outside)."""
        s = finite_array(scores, "scores")
        return list(np.interp(s, self.x, self.y).tolist())

    def to_dict(self) -> dict[str, Any]:
        """``{"method": "isotonic", "version": 1, "x": [...], "y": [...], "n": n}``."""
        return {
            "method": self.method,
            "version": CALIBRATOR_VERSION,
            "x": list(self.x),
            "y": list(self.y),
            "n": self.n,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IsotonicCalibrator:
        """Rebuild a stored isotonic calibrator, checking its knots."""
        _check_stored(data, cls.method)
        xs, ys = data.get("x"), data.get("y")
        if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys) or not xs:
            raise ValueError(
                "stored isotonic calibrator: x and y must be non-empty lists of equal length"
            )
        x = finite_array(xs, "stored calibrator x")
        y = probability_array(ys, "stored calibrator y")
        if np.any(np.diff(x) <= 0.0) or np.any(np.diff(y) < 0.0):
            raise ValueError(
                "stored isotonic calibrator: x must increase and y must not decrease; refit it"
            )
        return cls(tuple(map(float, x)), tuple(map(float, y)), _stored_count(data))


def _logit(p: FloatArray) -> FloatArray:
    return np.asarray(special.logit(np.clip(p, EPS, 1.0 - EPS)))


@dataclass(frozen=True, slots=True)
class PlattCalibrator:
    """Platt scaling on the log-odds: calibrated p = σ(a · logit(p_raw) + b).

    Fitted by logistic regression with Platt's smoothed targets ((N₊+1)/(N₊+2) for
    passes, 1/(N₋+2) for fails), which keeps the fit finite when scores separate the
    outcomes. a = 1, b = 0 is the identity; a < 1 means the judge is over-confident.
    """

    a: float
    b: float
    n: int
    method: ClassVar[str] = "platt"

    @classmethod
    def fit(cls, probs: Numbers, outcomes: Numbers) -> PlattCalibrator:
        """Fit on labelled pairs: raw probability and pass (1/True) or fail (0/False)."""
        p, y = _paired(probs, outcomes, True, "probs")
        x = _logit(p)
        n_pos = float(y.sum())
        n_neg = len(y) - n_pos
        target = np.where(y == 1.0, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
        n = len(y)

        def loss(theta: FloatArray) -> tuple[float, FloatArray]:
            z = theta[0] * x + theta[1]
            value = float(np.sum(np.logaddexp(0.0, z) - target * z)) / n
            r = special.expit(z) - target
            return value, np.array([float(r @ x), float(r.sum())]) / n

        res = optimize.minimize(loss, np.array([1.0, 0.0]), jac=True, method="BFGS")
        return cls(float(res.x[0]), float(res.x[1]), n)

    def predict(self, probs: Numbers) -> list[float]:
        """Calibrated probabilities for raw probabilities."""
        p = probability_array(probs, "probs")
        return list(special.expit(self.a * _logit(p) + self.b).tolist())

    def to_dict(self) -> dict[str, Any]:
        """``{"method": "platt", "version": 1, "a": a, "b": b, "n": n}``."""
        return {
            "method": self.method,
            "version": CALIBRATOR_VERSION,
            "a": self.a,
            "b": self.b,
            "n": self.n,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlattCalibrator:
        """Rebuild a stored Platt calibrator."""
        _check_stored(data, cls.method)
        a, b = data.get("a"), data.get("b")
        for name, v in (("a", a), ("b", b)):
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(
                    f"stored platt calibrator: {name} must be a finite number, got {v!r}"
                )
        return cls(float(a), float(b), _stored_count(data))  # type: ignore[arg-type]


def calibrator_from_dict(data: Mapping[str, Any]) -> IsotonicCalibrator | PlattCalibrator:
    """Rebuild a calibrator stored with ``to_dict``, whichever its method."""
    method = data.get("method") if isinstance(data, Mapping) else None
    if method == "isotonic":
        return IsotonicCalibrator.from_dict(data)
    if method == "platt":
        return PlattCalibrator.from_dict(data)
    raise ValueError(
        f"stored calibrator: unknown method {method!r}; expected 'isotonic' or 'platt'"
    )


def fit_calibrator(
    scores: Numbers, outcomes: Numbers, method: Method = "isotonic"
) -> IsotonicCalibrator | PlattCalibrator:
    """Fit an isotonic or Platt calibrator on labelled pairs."""
    if method == "isotonic":
        return IsotonicCalibrator.fit(scores, outcomes)
    if method == "platt":
        return PlattCalibrator.fit(scores, outcomes)
    raise ValueError(f"method must be 'isotonic' or 'platt', got {method!r}")


@dataclass(frozen=True, slots=True)
class CalibrationReport:
    """ECE and Brier score before and after recalibration, on held-out labels.

    A calibrator is fitted on ``n_fit`` labelled pairs and judged on the other
    ``n_holdout``: ``ece_before``/``brier_before`` score the raw probabilities and
    ``ece_after``/``brier_after`` the recalibrated ones, on the same held-out items
    (``before`` is ``None`` when the raw scores are not probabilities). ``calibrator``
    is refitted on all ``n`` pairs: it is the one to store and apply to later scores.
    """

    method: str
    n: int
    n_fit: int
    n_holdout: int
    ece_before: float | None
    ece_after: float
    brier_before: float | None
    brier_after: float
    diagram_before: ReliabilityDiagram | None
    diagram_after: ReliabilityDiagram
    calibrator: IsotonicCalibrator | PlattCalibrator


def calibration_report(
    scores: Numbers,
    outcomes: Numbers,
    method: Method = "isotonic",
    *,
    holdout: float = 0.3,
    seed: int = 0,
    bins: int = 10,
    strategy: Strategy = "mass",
) -> CalibrationReport:
    """Fit a calibrator on part of the labels and report calibration before/after on the rest.

    ``holdout`` is the share of labelled pairs held out (chosen at random with ``seed``);
    both parts need at least one item, and the fit part at least two.
    """
    if not 0.0 < holdout < 1.0:
        raise ValueError(f"holdout must be a share between 0 and 1 (exclusive), got {holdout!r}")
    if method not in ("isotonic", "platt"):
        raise ValueError(f"method must be 'isotonic' or 'platt', got {method!r}")
    s, y = _paired(scores, outcomes, method == "platt", "scores")
    n = len(s)
    n_hold = round(holdout * n)
    if n_hold < 1 or n - n_hold < 2:
        raise ValueError(
            f"{n} labelled pairs cannot be split {1 - holdout:.0%}/{holdout:.0%} into a fit part "
            "(at least 2) and a held-out part (at least 1); label more items"
        )
    perm = np.random.default_rng(seed).permutation(n)
    hold, fit = perm[:n_hold], perm[n_hold:]
    part = fit_calibrator(s[fit], y[fit], method)
    after = np.asarray(part.predict(s[hold]))
    diag_after = reliability_diagram(after, y[hold], bins, strategy)
    raw_is_prob = bool(np.all((s >= 0.0) & (s <= 1.0)))
    diag_before = reliability_diagram(s[hold], y[hold], bins, strategy) if raw_is_prob else None
    return CalibrationReport(
        method=method,
        n=n,
        n_fit=len(fit),
        n_holdout=n_hold,
        ece_before=diag_before.ece if diag_before else None,
        ece_after=diag_after.ece,
        brier_before=float(np.mean((s[hold] - y[hold]) ** 2)) if raw_is_prob else None,
        brier_after=float(np.mean((after - y[hold]) ** 2)),
        diagram_before=diag_before,
        diagram_after=diag_after,
        calibrator=fit_calibrator(s, y, method),
    )


@dataclass(frozen=True, slots=True)
class PassRateEstimate:
    """A label-free pass rate: the mean of calibrated probabilities over a window.

    ``se`` = sqrt(Σ p(1 − p))/n is the spread of the window's realised pass rate *if the
    probabilities are calibrated*; the interval ``low``/``high`` therefore ignores any
    calibration error and holds only while calibration holds.
    """

    estimate: float
    se: float
    low: float
    high: float
    level: float
    n: int


def expected_pass_rate(calibrated_probs: Numbers, level: float = 0.95) -> PassRateEstimate:
    """Expected pass rate of unlabelled items from calibrated probabilities (CBPE's idea).

    Valid only while the calibrator still fits the traffic: re-check with fresh human
    labels and report the PPI interval (``ppi_mean``) next to it.
    """
    level = check_level(level)
    p = probability_array(calibrated_probs, "calibrated_probs")
    n = len(p)
    if n == 0:
        raise ValueError("calibrated_probs is empty; pass the calibrated probability of each item")
    mean = float(p.mean())
    se = math.sqrt(float(np.sum(p * (1.0 - p)))) / n
    z = float(sps.norm.ppf(0.5 + level / 2.0))
    return PassRateEstimate(mean, se, max(0.0, mean - z * se), min(1.0, mean + z * se), level, n)
