"""Non-determinism per case: STATS.md §2 reference values, agreement and flaky cases."""

from __future__ import annotations

from math import comb

import pytest

from assay.stats import (
    average_pass_at_k,
    average_pass_hat_k,
    pass_at_k,
    pass_hat_k,
    trial_agreement,
)


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [(10, 3, 1, 0.3), (10, 3, 5, 0.916667), (200, 10, 10, 0.408548), (200, 10, 100, 0.999229)],
)
def test_pass_at_k_reference(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=5e-7)


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [(8, 6, 1, 0.75), (8, 6, 2, 0.535714), (8, 6, 4, 0.214286), (8, 6, 8, 0.0), (4, 3, 2, 0.5)],
)
def test_pass_hat_k_reference(n: int, c: int, k: int, expected: float) -> None:
    assert pass_hat_k(n, c, k) == pytest.approx(expected, abs=5e-7)


def test_edges_and_large_n_match_the_combinatorial_definition() -> None:
    assert pass_at_k(5, 3, 3) == 1.0  # n - c < k: some pass is certain
    assert pass_at_k(5, 0, 2) == 0.0
    assert pass_hat_k(5, 5, 5) == 1.0
    # Large counts: the product form agrees with exact big-integer arithmetic.
    n, c, k = 5000, 4000, 300
    assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k), rel=1e-9)
    assert pass_hat_k(n, c, k) == pytest.approx(comb(c, k) / comb(n, k), rel=1e-9)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((3, 1, 4), ValueError, "k must be between 1 and n=3"),
        ((3, 1, 0), ValueError, "k must be between 1 and n=3"),
        ((3, 4, 1), ValueError, "c .* between 0 and n=3"),
        ((0, 0, 1), ValueError, "n .* at least 1"),
        ((3.5, 1, 1), TypeError, "whole numbers"),
    ],
)
def test_bad_counts_are_rejected(args: tuple[int, int, int], error: type, match: str) -> None:
    for fn in (pass_at_k, pass_hat_k):
        with pytest.raises(error, match=match):
            fn(*args)


def test_averages_over_cases_weigh_each_case_once() -> None:
    runs = {"a": [1, 1, 0, 0], "b": [1, 1, 1, 1], "c": [0, 0, 0, 0]}
    assert average_pass_at_k(runs, 2) == pytest.approx((pass_at_k(4, 2, 2) + 1 + 0) / 3)
    assert average_pass_hat_k(runs, 2) == pytest.approx((pass_hat_k(4, 2, 2) + 1 + 0) / 3)
    with pytest.raises(ValueError, match="0 or 1"):
        average_pass_at_k({"a": [0.5, 1.0]}, 1)
    with pytest.raises(ValueError, match="run at least k trials"):
        average_pass_at_k(runs, 5)


def test_pass_fail_agreement_and_flaky_cases() -> None:
    agreement = trial_agreement(
        {"steady": [1, 1, 1, 1], "wobbly": [1, 0, 1, 1], "even": [1, 0], "once": [0]}
    )
    assert agreement.binary
    assert agreement.per_case == {"steady": 1.0, "wobbly": 0.75, "even": 0.5, "once": 1.0}
    assert agreement.flaky == ("wobbly", "even")
    # The single-trial case cannot show flakiness, so it is left out of the share.
    assert (agreement.n_repeated, agreement.flaky_share) == (3, pytest.approx(2 / 3))
    assert agreement.mean_agreement == pytest.approx(3.25 / 4)


def test_continuous_agreement_uses_the_score_range() -> None:
    runs = {"tight": [0.50, 0.52, 0.51], "loose": [0.0, 1.0], "mid": [0.4, 0.6]}
    agreement = trial_agreement(runs)
    assert not agreement.binary
    assert agreement.per_case["loose"] == pytest.approx(0.0)  # the largest spread possible
    assert agreement.per_case["mid"] == pytest.approx(1 - 0.01 / 0.25)
    assert agreement.flaky == ("loose", "mid")  # spans over 10% of the range
    assert trial_agreement(runs, tolerance=0.25).flaky == ("loose",)
    # A declared scale of 0..10 makes the same spreads small.
    wide = trial_agreement(
        {"a": [4.0, 4.5], "b": [7.0, 7.2]}, score_range=(0.0, 10.0), tolerance=0.1
    )
    assert wide.flaky == ()
    assert wide.per_case["a"] == pytest.approx(1 - 0.0625 / 25)


def test_no_repeated_trials_means_no_flaky_share() -> None:
    agreement = trial_agreement({"a": [1], "b": [0]})
    assert agreement.flaky == () and agreement.flaky_share is None


def test_agreement_input_errors() -> None:
    with pytest.raises(TypeError, match="map case id"):
        trial_agreement([[1, 0]])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no trial scores"):
        trial_agreement({"a": []})
    with pytest.raises(ValueError, match="low <= high"):
        trial_agreement({"a": [0.2, 0.3]}, score_range=(1.0, 0.0))
