"""Judge calibration benchmark: calibration report and quality estimate on one window.

A window of ``--items`` judge-scored items (default 100,000) of which ``--labels``
(default 1,000, picked at random) carry a human pass/fail label. The judge outputs an
over-confident probability of passing (log-odds twice too large) and its pass/fail
verdict is probability >= 0.5; the true pass rate is about 0.7. Inputs are plain Python
lists, as a store query returns them, so conversion is part of every timing.

Timed (median of ``--repeat`` runs after one warm-up), issue 5 target <= 1 s for each
of the two composite rows:

* **calibration report** = ``judge_agreement`` (accuracy, κ, π, α, confusion matrix,
  mean offset) on the labelled pairs + ``calibration_report`` (isotonic; ECE, Brier and
  reliability diagrams before/after on a 30% hold-out, calibrator refitted on every
  label) + applying the stored calibrator to every scored item;
* **quality estimate** = applying the calibrator to every scored item + ``ppi_mean``
  (PPI++ on the labelled pairs and the unlabelled scores, with the human-only and
  judge-only figures) + ``expected_pass_rate`` (label-free mean of calibrated
  probabilities);

and their parts, the Platt variant and ``conformal_threshold`` on the labelled pairs.

Run::

    . .venv/bin/activate
    python benchmarks/calibration.py
    python benchmarks/calibration.py --items 1000000 --labels 5000

The script exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.special import expit, logit

from assay.stats import (
    IsotonicCalibrator,
    calibration_report,
    calibrator_from_dict,
    conformal_threshold,
    expected_pass_rate,
    judge_agreement,
    ppi_mean,
)


def window(items: int, labels: int, seed: int = 0) -> dict[str, list[Any]]:
    """Judge probabilities for every item; human labels for a random subset."""
    rng = np.random.default_rng(seed)
    truth = rng.beta(5, 2, items)  # each item's true chance of passing (mean ≈ 0.71)
    raw = expit(2.0 * logit(np.clip(truth, 1e-4, 1 - 1e-4)))  # over-confident judge
    passed = rng.random(items) < truth
    picked = rng.permutation(items)[:labels]
    rest = np.ones(items, dtype=bool)
    rest[picked] = False
    return {
        "scores": raw.tolist(),
        "labelled_scores": raw[picked].tolist(),
        "labelled_judge": (raw[picked] >= 0.5).astype(int).tolist(),
        "human": passed[picked].astype(int).tolist(),
        "unlabelled_judge": (raw[rest] >= 0.5).astype(int).tolist(),
    }


def timed(fn: Callable[[], Any], repeat: int) -> float:
    """Median seconds over ``repeat`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000, help="judge-scored items")
    parser.add_argument("--labels", type=int, default=1_000, help="items with a human label")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per row")
    args = parser.parse_args(argv)
    if not 2 <= args.labels <= args.items - 2:
        parser.error("--labels must be between 2 and --items - 2")
    w = window(args.items, args.labels)
    stored = IsotonicCalibrator.fit(w["labelled_scores"], w["human"]).to_dict()

    def agreement() -> Any:
        return judge_agreement(w["labelled_judge"], w["human"])

    def report(method: str = "isotonic") -> Any:
        return calibration_report(w["labelled_scores"], w["human"], method)  # type: ignore[arg-type]

    def apply() -> list[float]:
        return calibrator_from_dict(stored).predict(w["scores"])

    def ppi() -> Any:
        return ppi_mean(w["human"], w["labelled_judge"], w["unlabelled_judge"])

    def label_free() -> Any:
        return expected_pass_rate(apply())

    def full_report() -> Any:
        return agreement(), report(), apply()

    def quality() -> Any:
        return ppi(), expected_pass_rate(apply())

    n, big = args.labels, args.items
    rows: list[tuple[str, str, Callable[[], Any], str]] = [
        ("**calibration report**", f"{n:,} labels, {big:,} items", full_report, "<= 1 s"),
        ("· judge_agreement", f"{n:,} pairs", agreement, ""),
        ("· calibration_report (isotonic)", f"{n:,} pairs", report, ""),
        ("· calibrator.predict", f"{big:,} scores", apply, ""),
        ("**quality estimate**", f"{n:,} labels, {big:,} items", quality, "<= 1 s"),
        ("· ppi_mean (PPI++)", f"{n:,} + {big - n:,}", ppi, ""),
        ("· expected_pass_rate (incl. predict)", f"{big:,} scores", label_free, ""),
        ("calibration_report (platt)", f"{n:,} pairs", lambda: report("platt"), ""),
        (
            "conformal_threshold",
            f"{n:,} pairs",
            lambda: conformal_threshold(
                w["labelled_scores"],
                [int(j == h) for j, h in zip(w["labelled_judge"], w["human"], strict=True)],
                0.05,
            ),
            "",
        ),
    ]
    print(f"| operation | size | median ms ({args.repeat} runs) | target |")
    print("|---|---|---:|---|")
    for label, size, fn, target in rows:
        seconds = timed(fn, args.repeat)
        print(f"| {label} | {size} | {seconds * 1000:.1f} | {target} |")
        sys.stdout.flush()

    q = ppi()
    r = report()
    a = agreement()
    print()
    print(
        f"Figures: judge accuracy {a.accuracy:.3f}, κ {a.cohen_kappa:.3f}, offset "
        f"{a.mean_offset:+.3f}; ECE {r.ece_before:.3f} -> {r.ece_after:.3f} (isotonic, "
        f"held out); PPI++ {q.estimate:.3f} [{q.low:.3f}, {q.high:.3f}] vs human-only "
        f"[{q.classical_low:.3f}, {q.classical_high:.3f}] vs judge-only {q.judge_mean:.3f}; "
        f"effective labels {q.effective_labels:,.0f}; label-free {label_free().estimate:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
