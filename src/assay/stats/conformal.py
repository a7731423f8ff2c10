"""Conformal risk control: the confidence threshold below which a judge should abstain.

Angelopoulos, Bates, Fisch, Lei, Schuster, "Conformal Risk Control", arXiv 2208.02814
(ICLR 2024). With loss L(λ) = 1{confidence ≥ λ and wrong} (bounded by B = 1 and
non-increasing in λ), λ̂ = inf{λ : (n/(n+1))·R̂_n(λ) + 1/(n+1) ≤ α} on n labelled items
keeps the expected loss on a new exchangeable item ≤ α: P(answered and wrong) ≤ α.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from assay.stats._inputs import check_level
from assay.stats.calibration import Numbers, finite_array, outcome_array


@dataclass(frozen=True, slots=True)
class ConformalThreshold:
    """Answer when confidence ≥ ``threshold``; abstain otherwise.

    Guarantee: on new items exchangeable with the n calibration items, P(answered and
    wrong) ≤ ``risk`` in expectation over calibration sets. ``threshold`` is ``inf``
    when no threshold meets the risk (``abstain_all``; ``message`` says why).
    ``empirical_risk`` is the share of calibration items answered and wrong at the
    threshold, ``bound`` = (n/(n+1))·empirical_risk + 1/(n+1) the quantity held ≤ risk,
    ``answer_rate`` the share of calibration items answered and ``error_rate_answered``
    the share wrong among them (P(wrong | answered): reported, not guaranteed; ``None``
    when nothing is answered).
    """

    threshold: float
    risk: float
    n: int
    n_wrong: int
    empirical_risk: float
    bound: float
    answer_rate: float
    error_rate_answered: float | None
    abstain_all: bool
    message: str

    def answers(self, confidence: float) -> bool:
        """Whether an item with this confidence is answered (not abstained on)."""
        return float(confidence) >= self.threshold


def conformal_threshold(
    confidence: Numbers,
    correct: Numbers,
    risk: float,
    *,
    grid: Numbers | None = None,
) -> ConformalThreshold:
    """Smallest confidence threshold keeping P(answered and wrong) ≤ ``risk`` (CRC).

    ``confidence``: the judge's (or model's) confidence per labelled item, any scale where
    higher means surer; ``correct``: whether the answer was right (1/True) or wrong
    (0/False). ``grid``: candidate thresholds (default: the confidences seen, so the
    threshold is the smallest safe one among them); ``inf``, abstain on everything, is
    always a candidate.
    """
    alpha = check_level(risk, "risk")
    conf = finite_array(confidence, "confidence")
    ok = outcome_array(correct, "correct")
    n = len(conf)
    if len(ok) != n:
        raise ValueError(
            f"confidence and correct must have the same length (one pair per labelled item), "
            f"got {n} and {len(ok)}"
        )
    if n == 0:
        raise ValueError("confidence is empty; pass at least one labelled item")
    if grid is None:
        candidates = np.unique(conf)
    else:
        g = finite_array(grid, "grid")
        if len(g) == 0:
            raise ValueError("grid is empty; pass candidate thresholds, or None to use the data")
        candidates = np.unique(g)
    wrong_conf = np.sort(conf[ok == 0.0])
    n_wrong = len(wrong_conf)
    sorted_conf = np.sort(conf)
    # Condition on the count of wrong answers W(λ): (W/n)·n/(n+1) + 1/(n+1) ≤ α ⟺
    # W ≤ α(n+1) − 1. The tolerance keeps an exact boundary from failing by rounding.
    allowed = math.floor(alpha * (n + 1) - 1.0 + 1e-9)
    answered_wrong = n_wrong - np.searchsorted(wrong_conf, candidates, side="left")
    safe = np.flatnonzero(answered_wrong <= allowed)
    threshold = math.inf if allowed < 0 or safe.size == 0 else float(candidates[safe[0]])
    if math.isinf(threshold):
        w_count, answered = 0, 0
    else:
        w_count = int(n_wrong - np.searchsorted(wrong_conf, threshold, side="left"))
        answered = int(n - np.searchsorted(sorted_conf, threshold, side="left"))
    empirical = w_count / n
    bound = (n / (n + 1)) * empirical + 1.0 / (n + 1)
    abstain_all = answered == 0
    if allowed < 0:
        need = math.ceil(1.0 / alpha - 1.0 - 1e-9)
        message = (
            f"no threshold can hold P(answered and wrong) <= {alpha:g} with {n} labelled "
            f"items: the bound is at least 1/(n+1) = {1 / (n + 1):.4g}; label at least {need} "
            "items or accept a higher risk. Abstaining on everything."
        )
    elif math.isinf(threshold):
        message = (
            f"no candidate threshold holds P(answered and wrong) <= {alpha:g}: even the "
            "highest answers too many wrong items; use more labelled items, a finer grid or "
            "a higher risk. Abstaining on everything."
        )
    elif abstain_all:
        message = (
            f"the smallest safe threshold, {threshold:.4g}, is above every labelled item's "
            "confidence, so nothing is answered; use a finer grid or more labelled items"
        )
    else:
        message = (
            f"answer when confidence >= {threshold:.4g}: {answered / n:.1%} of items answered, "
            f"P(answered and wrong) <= {alpha:g} on average"
        )
    return ConformalThreshold(
        threshold=threshold,
        risk=alpha,
        n=n,
        n_wrong=n_wrong,
        empirical_risk=empirical,
        bound=bound,
        answer_rate=answered / n,
        error_rate_answered=w_count / answered if answered else None,
        abstain_all=abstain_all,
        message=message,
    )
