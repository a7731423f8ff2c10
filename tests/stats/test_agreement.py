"""Agreement statistics: STATS.md §5 reference table and published Krippendorff examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from assay.stats import (
    ConfusionMatrix,
    cohen_kappa,
    confusion_matrix,
    judge_agreement,
    krippendorff_alpha,
    scott_pi,
)


def _pairs_from_table(table: list[list[int]], labels: list[object]) -> tuple[list, list]:
    a: list[object] = []
    b: list[object] = []
    for i, row in enumerate(table):
        for j, count in enumerate(row):
            a += [labels[i]] * count
            b += [labels[j]] * count
    return a, b


def test_stats_md_reference_table() -> None:
    # STATS.md §5: [[20, 5], [10, 15]] -> p_o 0.70, p_e 0.50, κ 0.400, π 0.394.
    m = ConfusionMatrix.from_counts([[20, 5], [10, 15]], labels=["yes", "no"])
    assert m.n == 50
    assert m.observed_agreement == pytest.approx(0.70)
    assert m.cohen_kappa == pytest.approx(0.400)
    assert m.scott_pi == pytest.approx(0.394, abs=5e-4)
    a, b = _pairs_from_table([[20, 5], [10, 15]], ["yes", "no"])
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert scott_pi(a, b) == pytest.approx(0.39 / 0.99)  # p_e = 0.55² + 0.45² = 0.505


@pytest.mark.parametrize(
    ("table", "kappa"),
    # Same observed agreement (0.60), different marginals: κ differs (the Cohen's kappa
    # article on Wikipedia, "Same percentages but different numbers").
    [([[45, 15], [25, 15]], 0.1304), ([[25, 35], [5, 35]], 0.2593)],
)
def test_kappa_depends_on_marginals(table: list[list[int]], kappa: float) -> None:
    m = ConfusionMatrix.from_counts(table)
    assert m.observed_agreement == pytest.approx(0.6)
    assert m.cohen_kappa == pytest.approx(kappa, abs=5e-5)


def test_confusion_matrix_orientation_and_label_order() -> None:
    judge = ["pass", "pass", "fail", "pass"]
    human = ["pass", "fail", "fail", "fail"]
    m = confusion_matrix(judge, human)
    assert m.labels == ("fail", "pass")
    assert m.counts == ((1, 0), (2, 1))  # rows: judge, columns: human
    assert m.row_totals == (1, 3) and m.column_totals == (3, 1)
    fixed = confusion_matrix(judge, human, labels=["pass", "fail", "unsure"])
    assert fixed.counts == ((1, 2, 0), (0, 1, 0), (0, 0, 0))
    with pytest.raises(ValueError, match=r"label 'pass'.*not in labels"):
        confusion_matrix(judge, human, labels=["fail"])


def test_chance_corrected_agreement_is_nan_when_undefined() -> None:
    m = confusion_matrix([1, 1, 1], [1, 1, 1])
    assert m.observed_agreement == 1.0
    assert math.isnan(m.cohen_kappa) and math.isnan(m.scott_pi)


def test_perfect_and_opposite_agreement() -> None:
    assert cohen_kappa([0, 1, 0, 1], [0, 1, 0, 1]) == pytest.approx(1.0)
    assert cohen_kappa([0, 1, 0, 1], [1, 0, 1, 0]) == pytest.approx(-1.0)


# Krippendorff, K. (2011). "Computing Krippendorff's Alpha-Reliability", Annenberg School
# for Communication, University of Pennsylvania (repository.upenn.edu/asc_papers/43),
# section C: 4 observers, 12 units, missing values. Published values: nominal .743,
# ordinal .815, interval .849, ratio .797.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]


@pytest.mark.parametrize(
    ("level", "published"),
    [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)],
)
def test_krippendorff_2011_worked_example(level: str, published: float) -> None:
    alpha = krippendorff_alpha(KRIPPENDORFF_2011, level)  # type: ignore[arg-type]
    assert alpha == pytest.approx(published, abs=5e-4)


def test_krippendorff_nominal_exact_fraction() -> None:
    # The paper's nominal computation: n = 40 pairable values, 32 of them in matching
    # pairs, value totals n_c = (9, 13, 10, 5, 3); α = 1 − (n − 1)·(n − 32)/(n(n − 1) −
    # Σ n_c(n_c − 1)) = 1 − 39·8/1216 = 113/152.
    assert krippendorff_alpha(KRIPPENDORFF_2011) == pytest.approx(113 / 152, abs=1e-12)


def test_krippendorff_wikipedia_example_with_nan_for_missing() -> None:
    # The computational example of the "Krippendorff's alpha" article on Wikipedia:
    # 3 coders, 15 units; nominal α = 0.691, interval α = 0.811.
    nan = math.nan
    data = [
        [nan, nan, nan, nan, nan, 3, 4, 1, 2, 1, 1, 3, 3, nan, 3],
        [1, nan, 2, 1, 3, 3, 4, 3, nan, nan, nan, nan, nan, nan, nan],
        [nan, nan, 2, 1, 3, 4, 4, nan, 2, 1, 1, 3, 3, nan, 4],
    ]
    assert krippendorff_alpha(data) == pytest.approx(0.691, abs=5e-4)
    assert krippendorff_alpha(data, "interval") == pytest.approx(0.811, abs=5e-4)


def test_krippendorff_two_raters_nominal_relates_to_scott_pi() -> None:
    # With two raters and no missing values α corrects π for sample size:
    # α = 1 − (1 − π)·(2n − 1)/(2n)  (Krippendorff 2011, section A).
    rng = np.random.default_rng(5)
    a = rng.integers(0, 3, 120).tolist()
    b = [x if rng.random() < 0.7 else int(rng.integers(0, 3)) for x in a]
    n = len(a)
    pi = scott_pi(a, b)
    assert krippendorff_alpha([a, b]) == pytest.approx(1 - (1 - pi) * (2 * n - 1) / (2 * n))


def test_krippendorff_ordinal_strings_sort_and_bad_input() -> None:
    # Strings that sort in rank order give the same ordinal α as their ranks.
    ranks = {1: "a", 2: "b", 3: "c", 4: "d", 5: "e"}
    as_str = [[None if v is None else ranks[v] for v in row] for row in KRIPPENDORFF_2011]
    assert krippendorff_alpha(as_str, "ordinal") == pytest.approx(0.815, abs=5e-4)
    with pytest.raises(TypeError, match="interval level needs finite numbers"):
        krippendorff_alpha(as_str, "interval")
    with pytest.raises(ValueError, match="at least 2"):
        krippendorff_alpha([[1, 2, 3]])
    with pytest.raises(ValueError, match=r"ratings\[1\] has 2 labels"):
        krippendorff_alpha([[1, 2, 3], [1, 2]])
    with pytest.raises(ValueError, match="no item was labelled by two"):
        krippendorff_alpha([[1, None], [None, 2]])
    with pytest.raises(ValueError, match="level must be one of"):
        krippendorff_alpha([[1, 2], [1, 2]], "cardinal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ratio level needs values >= 0"):
        krippendorff_alpha([[1, -2], [1, 2]], "ratio")
    assert math.isnan(krippendorff_alpha([[1, 1], [1, 1]]))


def test_judge_agreement_reports_bias_that_kappa_hides() -> None:
    # A judge that passes 30 of the 100 items people fail, and no other error: high
    # accuracy, and a mean offset of +0.3 whose interval excludes 0.
    human = [1] * 200 + [0] * 100
    judge = [1] * 200 + [1] * 30 + [0] * 70
    r = judge_agreement(judge, human)
    assert r.n == 300
    assert r.accuracy == pytest.approx(0.9)
    assert r.accuracy_low < 0.9 < r.accuracy_high
    assert r.confusion.counts == ((70, 0), (30, 200))
    assert r.cohen_kappa == pytest.approx(r.confusion.cohen_kappa)
    assert r.krippendorff_alpha == pytest.approx(krippendorff_alpha([judge, human]))
    assert r.mean_offset == pytest.approx(0.1)
    assert r.offset_low is not None and r.offset_high is not None
    assert 0.0 < r.offset_low < 0.1 < r.offset_high
    d = np.array(judge) - np.array(human)
    assert r.offset_se == pytest.approx(d.std(ddof=1) / math.sqrt(300))


def test_judge_agreement_on_ratings_and_categories() -> None:
    human = [1, 2, 3, 4, 5, 3, 4, 2]
    judge = [2, 3, 4, 5, 5, 4, 5, 3]  # about one point too generous
    r = judge_agreement(judge, human, alpha_level="interval")
    assert r.mean_offset == pytest.approx(0.875)
    assert r.alpha_level == "interval"
    assert r.krippendorff_alpha == pytest.approx(krippendorff_alpha([judge, human], "interval"))
    cats = judge_agreement(["good", "bad", "good"], ["good", "good", "good"])
    assert cats.mean_offset is None and cats.offset_low is None
    assert cats.labels == ("bad", "good")


def test_judge_agreement_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="same length"):
        judge_agreement([1, 0], [1])
    with pytest.raises(ValueError, match=r"human\[1\] is missing"):
        judge_agreement([1, 0], [1, None])
    with pytest.raises(ValueError, match="empty"):
        judge_agreement([], [])
    with pytest.raises(TypeError, match="hashable"):
        judge_agreement([[1]], [1])
    with pytest.raises(ValueError, match="level"):
        judge_agreement([1, 0], [1, 0], level=95)
