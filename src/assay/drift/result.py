"""The drift-test contract: one result value, the test Protocol, multiplicity correction.

Every detector in :mod:`assay.drift` returns a :class:`DriftResult`; a plugin detector
implements :class:`DriftTest` the same way the built-ins do. docs/drift-detectors.md
explains each statistic, effect size and threshold.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Self, runtime_checkable

import numpy as np
from numpy.typing import NDArray

Kind = Literal["numeric", "categorical", "embedding"]
Method = Literal["holm", "bh"]


@dataclass(frozen=True, slots=True)
class DriftResult:
    """One detector's verdict on one feature: reference window vs current window.

    ``drifted`` is None when the windows are too small to say anything (``note`` says how
    many values are needed and how many there are). Tests with a p-value decide
    ``p_value <= alpha`` on their own; :func:`correct` re-decides them on ``p_adjusted``
    over a family of results. Tests without a p-value decide by a documented threshold on
    ``effect``.
    """

    feature: str
    test: str
    statistic: float
    p_value: float | None
    effect: float
    effect_name: str
    n_reference: int
    n_current: int
    drifted: bool | None = None
    p_adjusted: float | None = None
    note: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class DriftTest(Protocol):
    """A two-sample drift detector for one kind of feature.

    Inputs by kind: ``numeric`` 1-d float arrays (NaN dropped); ``categorical`` sequences
    of ``str | None`` (None counts as ``"(missing)"``); ``embedding`` (n, d) float32
    arrays with L2-normalised rows.
    """

    @property
    def name(self) -> str:
        """Short test name recorded in results, e.g. ``"ks"``."""
        ...

    @property
    def kind(self) -> Kind:
        """Which kind of feature the test accepts."""
        ...

    @property
    def min_samples(self) -> int:
        """Fewest values per window for a verdict; below it ``drifted`` is None."""
        ...

    def run(self, feature: str, reference: Any, current: Any, *, seed: int = 0) -> DriftResult:
        """Compare ``current`` to ``reference`` for ``feature``; deterministic given seed."""
        ...


class Configurable:
    """Mixin for the built-in frozen-dataclass tests: calling one returns a re-configured copy.

    ``ks_test`` is a ready test (``ks_test.run(...)``) and a factory
    (``ks_test(min_samples=50).run(...)``).
    """

    __slots__ = ()

    def __call__(self, **overrides: Any) -> Self:
        """A copy with the given fields replaced; unknown names raise TypeError."""
        names = {f.name for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(
                f"{type(self).__name__} has no option {unknown}; options are {sorted(names)}"
            )
        return dataclasses.replace(self, **overrides)  # type: ignore[type-var]


def too_small_note(test: str, need: int, n_reference: int, n_current: int, why: str = "") -> str:
    """The note of a result whose windows are too small for a verdict."""
    reason = f" ({why})" if why else ""
    return (
        f"window too small for {test}: need ≥ {need:,} values per window{reason}, "
        f"have {n_reference:,} in reference and {n_current:,} in current"
    )


def check_alpha(alpha: float) -> None:
    """Raise a clear error unless 0 < alpha < 1."""
    if not (isinstance(alpha, int | float) and 0.0 < float(alpha) < 1.0):
        raise ValueError(f"alpha must be a number strictly between 0 and 1, got {alpha!r}")


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (in input order); controls the family-wise error."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (m - np.arange(m))
    adjusted_sorted = np.minimum(1.0, np.maximum.accumulate(scaled))
    adjusted: NDArray[np.float64] = np.empty(m)
    adjusted[order] = adjusted_sorted
    return [float(v) for v in adjusted]


def correct(
    results: Sequence[DriftResult], alpha: float = 0.05, method: Method = "holm"
) -> list[DriftResult]:
    """Adjust the p-values of a family of results and re-decide ``drifted`` on them.

    Results with a p-value get ``p_adjusted`` (Holm: family-wise error ≤ alpha; "bh":
    Benjamini–Hochberg, false discovery rate ≤ alpha) and ``drifted = p_adjusted <=
    alpha``. Threshold-only results (no p-value) keep their verdict, and results too small
    for a verdict (``drifted`` None with a note) stay None. Order is preserved.
    """
    check_alpha(alpha)
    if method not in ("holm", "bh"):
        raise ValueError(f"method must be 'holm' or 'bh', got {method!r}")
    family: list[int] = []
    for i, r in enumerate(results):
        if not isinstance(r, DriftResult):
            raise TypeError(f"results[{i}] is {type(r).__name__}, expected DriftResult")
        if r.p_value is None or (r.drifted is None and r.note is not None):
            continue
        if not (isinstance(r.p_value, int | float) and 0.0 <= r.p_value <= 1.0):
            raise ValueError(
                f"results[{i}] ({r.feature}/{r.test}) has p_value {r.p_value!r}; "
                "p-values must lie in [0, 1]"
            )
        family.append(i)
    p = [float(results[i].p_value) for i in family]  # type: ignore[arg-type]
    from assay.stats.paired import benjamini_hochberg  # scipy on first use, not at start-up

    adjusted = holm(p) if method == "holm" else benjamini_hochberg(p)
    out = list(results)
    for i, a in zip(family, adjusted, strict=True):
        out[i] = dataclasses.replace(out[i], p_adjusted=a, drifted=bool(a <= alpha))
    return out
