"""Agreement between a judge and people: confusion matrix, Cohen's κ, Scott's π, Krippendorff's α.

Labels are any hashable values (booleans, numbers, strings). A judge that agrees with
people by chance alone scores 0 on κ, π and α; perfect agreement scores 1. A high κ can
hide a bias, so :func:`judge_agreement` also reports the mean offset (judge − human).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

from assay.stats._inputs import FloatArray, check_level
from assay.stats.intervals import wilson_interval

Level = Literal["nominal", "ordinal", "interval", "ratio"]
LEVELS: tuple[str, ...] = ("nominal", "ordinal", "interval", "ratio")


@dataclass(frozen=True, slots=True)
class ConfusionMatrix:
    """Counts of label pairs: ``counts[i][j]`` items where a said ``labels[i]`` and b ``labels[j]``.

    In :func:`judge_agreement` rows are the judge and columns the human. ``cohen_kappa``
    and ``scott_pi`` are ``nan`` when chance agreement is 1 (both raters used one and
    the same label throughout): there is nothing left to correct for chance.
    """

    labels: tuple[Hashable, ...]
    counts: tuple[tuple[int, ...], ...]

    @property
    def n(self) -> int:
        """Number of rated items."""
        return sum(sum(row) for row in self.counts)

    @property
    def row_totals(self) -> tuple[int, ...]:
        """How often rater a used each label."""
        return tuple(sum(row) for row in self.counts)

    @property
    def column_totals(self) -> tuple[int, ...]:
        """How often rater b used each label."""
        return tuple(sum(col) for col in zip(*self.counts, strict=True))

    @property
    def observed_agreement(self) -> float:
        """p_o: the share of items both raters gave the same label (accuracy)."""
        return sum(self.counts[i][i] for i in range(len(self.labels))) / self.n

    @property
    def cohen_kappa(self) -> float:
        """(p_o − p_e)/(1 − p_e) with p_e = Σ_k p_a,k · p_b,k (each rater's own marginals)."""
        n = self.n
        p_e = sum(r * c for r, c in zip(self.row_totals, self.column_totals, strict=True)) / n**2
        return _chance_corrected(self.observed_agreement, p_e)

    @property
    def scott_pi(self) -> float:
        """(p_o − p_e)/(1 − p_e) with p_e = Σ_k q_k², q_k the pooled share of label k."""
        n = self.n
        pooled = [
            (r + c) / (2 * n) for r, c in zip(self.row_totals, self.column_totals, strict=True)
        ]
        return _chance_corrected(self.observed_agreement, sum(q * q for q in pooled))

    @classmethod
    def from_counts(
        cls, counts: Sequence[Sequence[int]], labels: Sequence[Hashable] | None = None
    ) -> ConfusionMatrix:
        """A matrix from a square table of counts (labels default to 0, 1, …)."""
        k = len(counts)
        names = tuple(range(k)) if labels is None else tuple(labels)
        if k == 0 or len(names) != k:
            raise ValueError(
                f"counts must be a non-empty square table with one row per label; got {k} "
                f"rows and {len(names)} labels"
            )
        rows: list[tuple[int, ...]] = []
        for i, row in enumerate(counts):
            if len(row) != k:
                raise ValueError(f"counts[{i}] has {len(row)} entries; the table must be {k}×{k}")
            for j, v in enumerate(row):
                if isinstance(v, bool) or int(v) != v or v < 0:
                    raise ValueError(f"counts[{i}][{j}] = {v!r}: counts must be whole numbers >= 0")
            rows.append(tuple(int(v) for v in row))
        if sum(map(sum, rows)) == 0:
            raise ValueError("counts are all 0; the table needs at least one rated item")
        return cls(names, tuple(rows))


def _chance_corrected(p_o: float, p_e: float) -> float:
    # Rounding can leave p_e a hair under 1 when it is exactly 1 in theory.
    if p_e >= 1.0 - 1e-12:
        return math.nan
    return (p_o - p_e) / (1.0 - p_e)


def _is_missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _ordered(values: set[Hashable]) -> list[Hashable]:
    try:
        return sorted(values)  # type: ignore[type-var]
    except TypeError:
        return sorted(values, key=repr)


def _pairs(
    a: Sequence[Any], b: Sequence[Any], names: tuple[str, str]
) -> tuple[list[Hashable], list[Hashable]]:
    for name, seq in zip(names, (a, b), strict=True):
        if isinstance(seq, str | bytes) or not hasattr(seq, "__len__"):
            raise TypeError(f"{name}: expected a sequence of labels, got {type(seq).__name__}")
    if len(a) != len(b):
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same length (one label each per item), "
            f"got {len(a)} and {len(b)}"
        )
    if len(a) == 0:
        raise ValueError(f"{names[0]} and {names[1]} are empty; pass at least one labelled item")
    for name, seq in zip(names, (a, b), strict=True):
        for i, v in enumerate(seq):
            if _is_missing(v):
                raise ValueError(
                    f"{name}[{i}] is missing ({v!r}); drop items without both labels "
                    "(krippendorff_alpha accepts missing labels)"
                )
            try:
                hash(v)
            except TypeError:
                raise TypeError(f"{name}[{i}] = {v!r}: labels must be hashable values") from None
    return list(a), list(b)


def confusion_matrix(
    a: Sequence[Any], b: Sequence[Any], labels: Sequence[Hashable] | None = None
) -> ConfusionMatrix:
    """Cross-tabulate two raters' labels of the same items (rows: a, columns: b).

    ``labels`` fixes the order and may include labels nobody used; by default the labels
    seen, sorted. A label outside ``labels`` is an error.
    """
    xs, ys = _pairs(a, b, ("a", "b"))
    if labels is None:
        order = _ordered(set(xs) | set(ys))
    else:
        order = list(labels)
        if len(set(order)) != len(order):
            raise ValueError(f"labels has duplicates: {order!r}")
        if not order:
            raise ValueError("labels is empty; pass the label values, or None to use those seen")
    index = {v: i for i, v in enumerate(order)}
    k = len(order)
    codes = []
    for name, seq in (("a", xs), ("b", ys)):
        try:
            codes.append(np.fromiter((index[v] for v in seq), dtype=np.int64, count=len(seq)))
        except KeyError as exc:
            raise ValueError(
                f"{name} uses label {exc.args[0]!r}, which is not in labels {order!r}; add it"
            ) from None
    table = np.bincount(codes[0] * k + codes[1], minlength=k * k).reshape(k, k)
    return ConfusionMatrix(tuple(order), tuple(tuple(int(c) for c in row) for row in table))


def cohen_kappa(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Cohen's κ between two raters of the same items; ``nan`` when chance agreement is 1."""
    return confusion_matrix(a, b).cohen_kappa


def scott_pi(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Scott's π (κ with pooled label shares); ``nan`` when chance agreement is 1."""
    return confusion_matrix(a, b).scott_pi


def _distances(values: list[Hashable], marginals: FloatArray, level: str) -> FloatArray:
    """δ²(c, k) for every pair of values (Krippendorff 2011, metric differences)."""
    k = len(values)
    if level == "nominal":
        return 1.0 - np.eye(k)
    if level == "ordinal":
        # Ranks are the sorted order of the values; the distance between two ranks is the
        # number of pairable values between them, with each end counted half.
        cum = np.concatenate([[0.0], np.cumsum(marginals)])
        idx = np.arange(k)
        lo, hi = np.minimum.outer(idx, idx), np.maximum.outer(idx, idx)
        between = cum[hi + 1] - cum[lo]
        return np.asarray((between - (marginals[lo] + marginals[hi]) / 2.0) ** 2)
    x = np.asarray(values, dtype=np.float64)
    diff = np.subtract.outer(x, x)
    if level == "interval":
        return np.asarray(diff**2)
    total = np.add.outer(x, x)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(total == 0.0, 0.0, diff / np.where(total == 0.0, 1.0, total))
    return np.asarray(ratio**2)


def krippendorff_alpha(ratings: Sequence[Sequence[Any]], level: Level = "nominal") -> float:
    """Krippendorff's α for several raters with missing labels.

    ``ratings`` has one sequence per rater, each with one label per item (the same items
    in the same order); ``None`` or NaN marks an item the rater did not label. ``level``
    is the scale: ``"nominal"`` (categories), ``"ordinal"`` (ordered; labels must sort),
    ``"interval"`` or ``"ratio"`` (numbers; ratio needs values >= 0). Items labelled by
    fewer than two raters carry no information and are skipped. ``nan`` when all
    pairable labels are equal (there is no disagreement to expect).
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}; got {level!r}")
    if isinstance(ratings, str | bytes) or not hasattr(ratings, "__len__"):
        raise TypeError("ratings: expected one sequence of labels per rater")
    if len(ratings) < 2:
        raise ValueError(f"ratings has {len(ratings)} rater(s); agreement needs at least 2")
    n_items = len(ratings[0])
    for r, row in enumerate(ratings):
        if isinstance(row, str | bytes) or not hasattr(row, "__len__"):
            raise TypeError(f"ratings[{r}]: expected a sequence of labels, one per item")
        if len(row) != n_items:
            raise ValueError(
                f"ratings[{r}] has {len(row)} labels but ratings[0] has {n_items}; every "
                "rater needs one entry per item (None where they gave no label)"
            )
    seen: set[Hashable] = set()
    for r, row in enumerate(ratings):
        for u, v in enumerate(row):
            if _is_missing(v):
                continue
            try:
                hash(v)
            except TypeError:
                raise TypeError(f"ratings[{r}][{u}] = {v!r}: labels must be hashable") from None
            if level in ("interval", "ratio"):
                if not isinstance(v, Real) or not math.isfinite(v):
                    raise TypeError(
                        f"ratings[{r}][{u}] = {v!r}: the {level} level needs finite numbers; "
                        "use level='nominal' or 'ordinal' for categories"
                    )
                if level == "ratio" and v < 0:
                    raise ValueError(
                        f"ratings[{r}][{u}] = {v!r}: the ratio level needs values >= 0"
                    )
            seen.add(v)
    if level == "ordinal":
        try:
            values: list[Hashable] = sorted(seen)  # type: ignore[type-var]
        except TypeError:
            raise TypeError(
                "the ordinal level needs labels that sort (numbers, or strings in a sortable "
                "form); map your categories to ranks first"
            ) from None
    else:
        values = _ordered(seen)
    index = {v: i for i, v in enumerate(values)}
    counts = np.zeros((n_items, len(values)), dtype=np.float64)
    for row in ratings:
        for u, v in enumerate(row):
            if not _is_missing(v):
                counts[u, index[v]] += 1.0
    m = counts.sum(axis=1)
    pairable = m >= 2
    if not pairable.any():
        raise ValueError(
            "no item was labelled by two or more raters; α needs items with at least two labels"
        )
    counts, m = counts[pairable], m[pairable]
    # Coincidences: every ordered pair of labels within an item, weighted 1/(m_u − 1).
    scaled = counts / (m - 1.0)[:, None]
    coincidence = scaled.T @ counts - np.diag(scaled.sum(axis=0))
    marginals = coincidence.sum(axis=1)
    total = float(marginals.sum())
    delta = _distances(values, marginals, level)
    observed = float((coincidence * delta).sum())
    expected = float((np.outer(marginals, marginals) * delta).sum()) / (total - 1.0)
    if expected <= 0.0:
        return math.nan
    return 1.0 - observed / expected


@dataclass(frozen=True, slots=True)
class JudgeAgreement:
    """How well a judge's labels match people's labels on the same items.

    ``accuracy`` is the share of items with equal labels (Wilson interval in
    ``accuracy_low``/``accuracy_high``); ``cohen_kappa``, ``scott_pi`` and
    ``krippendorff_alpha`` (at ``alpha_level``) correct it for chance (``nan`` when
    undefined). ``mean_offset`` is mean(judge − human) with its t interval, ``None``
    unless both label sets are numbers (booleans count as 0/1): a positive offset means
    the judge rates higher than people. ``confusion`` has the judge in rows and people in
    columns.
    """

    n: int
    labels: tuple[Hashable, ...]
    accuracy: float
    accuracy_low: float
    accuracy_high: float
    cohen_kappa: float
    scott_pi: float
    krippendorff_alpha: float
    alpha_level: str
    confusion: ConfusionMatrix
    mean_offset: float | None
    offset_se: float | None
    offset_low: float | None
    offset_high: float | None
    level: float


def _numeric(values: list[Hashable]) -> npt.NDArray[np.float64] | None:
    if not all(isinstance(v, Real) for v in values):
        return None
    return np.asarray(values, dtype=np.float64)


def judge_agreement(
    judge: Sequence[Any],
    human: Sequence[Any],
    labels: Sequence[Hashable] | None = None,
    *,
    alpha_level: Level = "nominal",
    level: float = 0.95,
) -> JudgeAgreement:
    """Agreement of a judge with human labels on the same items, in the same order.

    ``labels`` fixes the confusion matrix's order; ``alpha_level`` is the scale for
    Krippendorff's α (use ``"ordinal"`` or ``"interval"`` for 1–5 ratings); ``level`` is
    the confidence level of the intervals.
    """
    level = check_level(level)
    js, hs = _pairs(judge, human, ("judge", "human"))
    matrix = confusion_matrix(js, hs, labels)
    n = matrix.n
    agree = sum(matrix.counts[i][i] for i in range(len(matrix.labels)))
    acc_low, acc_high = wilson_interval(agree, n, level)
    alpha = krippendorff_alpha([js, hs], alpha_level)
    offset = se = low = high = None
    xj, xh = _numeric(js), _numeric(hs)
    if xj is not None and xh is not None:
        d = xj - xh
        offset = float(d.mean())
        if n < 2:
            se, low, high = math.inf, -math.inf, math.inf
        else:
            se = 0.0 if np.ptp(d) == 0.0 else float(d.std(ddof=1) / math.sqrt(n))
            t = float(sps.t.ppf(0.5 + level / 2.0, n - 1))
            low, high = offset - t * se, offset + t * se
    return JudgeAgreement(
        n=n,
        labels=matrix.labels,
        accuracy=agree / n,
        accuracy_low=acc_low,
        accuracy_high=acc_high,
        cohen_kappa=matrix.cohen_kappa,
        scott_pi=matrix.scott_pi,
        krippendorff_alpha=alpha,
        alpha_level=alpha_level,
        confusion=matrix,
        mean_offset=offset,
        offset_se=se,
        offset_low=low,
        offset_high=high,
        level=level,
    )
