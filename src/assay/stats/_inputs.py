"""Turn the plain Python sequences callers pass into checked numpy arrays."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

#: Scores of a golden set: one sequence of trial scores per case, as a list or by case id.
CaseScores = Sequence[Sequence[float]] | Mapping[str, Sequence[float]]

FloatArray = npt.NDArray[np.float64]


def case_arrays(case_scores: CaseScores, what: str = "case_scores") -> list[FloatArray]:
    """Check every case has at least one finite score; return one float array per case."""
    if isinstance(case_scores, Mapping):
        items: list[tuple[object, Sequence[float]]] = list(case_scores.items())
    elif isinstance(case_scores, str | bytes):
        raise TypeError(f"{what}: expected one sequence of scores per case, got a string")
    else:
        items = list(enumerate(case_scores))
    if not items:
        raise ValueError(f"{what}: no cases; pass at least one case with at least one score")
    return [trial_array(scores, f"{what}[{key!r}]") for key, scores in items]


def trial_array(scores: Sequence[float], where: str) -> FloatArray:
    """One case's trial scores as a float array; errors name the case and the trial."""
    if isinstance(scores, str | bytes) or not hasattr(scores, "__len__"):
        raise TypeError(
            f"{where}: expected a sequence of numbers (one per trial), got {type(scores).__name__}"
        )
    if len(scores) == 0:
        raise ValueError(f"{where}: a case has no trial scores; drop the case or score it")
    try:
        fast = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError):
        fast = None
    if fast is not None and fast.ndim == 1 and bool(np.isfinite(fast).all()):
        return fast
    # Slow path only to name the offending trial in the error.
    for k, s in enumerate(scores):
        try:
            v = float(s)
        except (TypeError, ValueError):
            raise TypeError(f"{where}[{k}]: score {s!r} is not a number") from None
        if not math.isfinite(v):
            raise ValueError(f"{where}[{k}]: score {s!r} is not finite; fix or drop the trial")
    raise TypeError(f"{where}: expected a flat sequence of numbers, one per trial")


def is_binary(arrays: Sequence[FloatArray]) -> bool:
    """True when every score is exactly 0 or 1 (pass/fail)."""
    return all(bool(np.all((a == 0.0) | (a == 1.0))) for a in arrays)


def check_level(level: float, name: str = "level") -> float:
    """A confidence level, power or alpha must lie strictly between 0 and 1."""
    v = float(level)
    if not 0.0 < v < 1.0:
        raise ValueError(f"{name} must be between 0 and 1 (exclusive), got {level!r}")
    return v
