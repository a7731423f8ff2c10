"""Drift detector benchmark: time and memory per detector, and simulated power.

Default: times every detector in :mod:`assay.drift` on realistic window sizes (median of
``--repeat`` runs after one warm-up) and the peak memory it allocates (tracemalloc, one
extra run), then prints a table. Targets (issue 4): MMD with ≥ 100 permutations on
5,000 vs 5,000 × 384 in ≤ 1 s; per-dimension KS over 384 dims × 50,000 rows per window in
≤ 1 s.

``--power``: simulated detection rates at alpha = 0.05 (``--reps`` checks per cell, and
``--null-reps`` for the no-shift rows, which give the false-alarm rate) for injected shifts
of known size, printed as the markdown table in docs/drift-detectors.md:

* numeric, "longer outputs": output length ~ lognormal(5.5, 0.6); current lengths × (1 + δ);
* categorical, "changed mix": shares (50, 25, 15, 7, 3)%; δ moves from the first to the
  fourth category;
* embedding, 384-d rows around 20 topic centres (noise 0.6 per row, rows L2-normalised):
  "mean shift": every current row moved by δ along one random direction before
  normalising; "new topic": a share δ of current rows from a 21st topic.

Run::

    . .venv/bin/activate
    python benchmarks/drift.py
    python benchmarks/drift.py --power > /tmp/drift-power.md   # ~10-20 min on 2 cores

The script exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from assay.drift import (
    DriftTest,
    chi2_test,
    classifier_test,
    farthest_examples,
    js_test,
    ks_per_dim_test,
    ks_test,
    mmd_test,
    psi_test,
    wasserstein_test,
)

DIM = 384
MIX = [0.50, 0.25, 0.15, 0.07, 0.03]


# ---------------------------------------------------------------------------- data


class Topics:
    """Embeddings around fixed topic centres; the same centres for every window."""

    def __init__(self, dim: int = DIM, n_topics: int = 21, noise: float = 0.6) -> None:
        rng = np.random.default_rng(1234)
        centres = rng.standard_normal((n_topics, dim))
        self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)
        direction = rng.standard_normal(dim)
        self.direction = direction / np.linalg.norm(direction)
        self.noise = noise
        self.dim = dim

    def rows(
        self, rng: np.random.Generator, n: int, shift: float = 0.0, new_topic: float = 0.0
    ) -> NDArray[np.float32]:
        """n rows from the 20 base topics (a share ``new_topic`` from the 21st), shifted."""
        base = self.centres.shape[0] - 1
        labels = rng.integers(0, base, n)
        labels[rng.random(n) < new_topic] = base
        z = self.centres[labels] + self.noise * rng.standard_normal((n, self.dim)) / math.sqrt(
            self.dim
        )
        z += shift * self.direction
        z /= np.linalg.norm(z, axis=1, keepdims=True)
        return z.astype(np.float32)


def lengths(rng: np.random.Generator, n: int, longer: float = 0.0) -> NDArray[np.float64]:
    out: NDArray[np.float64] = np.round(rng.lognormal(5.5, 0.6, n) * (1 + longer))
    return out


def mix(rng: np.random.Generator, n: int, moved: float = 0.0) -> list[str]:
    p = list(MIX)
    p[0] -= moved
    p[3] += moved
    names = ["refund", "billing", "shipping", "account", "other"]
    return [names[i] for i in rng.choice(len(p), n, p=p)]


# ---------------------------------------------------------------------------- timing


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """(median seconds, peak MiB allocated during one run, last result)."""
    out = fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return statistics.median(times), peak / 2**20, out


def describe(result: Any) -> str:
    if isinstance(result, list):
        return f"{len(result)} examples"
    extra = ""
    if result.details.get("permutations"):
        extra = f", {result.details['permutations']} permutations"
    if result.details.get("estimator"):
        extra += f", {result.details['estimator']}"
    p = "—" if result.p_value is None else f"{result.p_value:.3g}"
    return f"p={p}, effect={result.effect:.3g}{extra}"


def bench_timing(repeat: int) -> None:
    rng = np.random.default_rng(0)
    topics = Topics()
    rows: list[tuple[str, str, Callable[[], Any]]] = []

    num_small = (lengths(rng, 10_000), lengths(rng, 10_000, 0.05))
    num_big = (lengths(rng, 1_000_000), lengths(rng, 1_000_000, 0.01))
    cat = (mix(rng, 100_000), mix(rng, 100_000, 0.02))
    e2 = (topics.rows(rng, 2000), topics.rows(rng, 2000))
    e5 = (topics.rows(rng, 5000), topics.rows(rng, 5000))
    e5s = (e5[0], topics.rows(rng, 5000, shift=0.1))
    e50 = (topics.rows(rng, 50_000), topics.rows(rng, 50_000, shift=0.05))
    e200 = (topics.rows(rng, 200_000), topics.rows(rng, 200_000))

    def add(label: str, size: str, test: DriftTest, data: tuple[Any, Any]) -> None:
        rows.append((label, size, lambda: test.run("f", data[0], data[1])))

    add("ks", "10k vs 10k", ks_test, num_small)
    add("ks", "1M vs 1M", ks_test, num_big)
    add("wasserstein", "1M vs 1M", wasserstein_test, num_big)
    add("psi", "1M vs 1M", psi_test, num_big)
    add("chi2", "100k vs 100k", chi2_test, cat)
    add("jensen_shannon", "100k vs 100k", js_test, cat)
    add("mmd", "2k vs 2k × 384, no shift", mmd_test, e2)
    add("mmd", "5k vs 5k × 384, no shift", mmd_test, e5)
    add("mmd", "5k vs 5k × 384, shifted", mmd_test, e5s)
    add("mmd (100 perms fixed)", "5k vs 5k × 384, shifted", mmd_test(max_permutations=100), e5s)
    add("mmd (capped at 5k)", "200k vs 200k × 384", mmd_test, e200)
    add("classifier", "5k vs 5k × 384", classifier_test, e5s)
    add("ks_per_dim", "50k vs 50k × 384", ks_per_dim_test, e50)
    add("ks_per_dim (capped at 50k)", "200k vs 200k × 384", ks_per_dim_test, e200)
    rows.append(("farthest_examples", "5k vs 5k × 384", lambda: farthest_examples(e5s[0], e5s[1])))

    print(f"| detector | windows | median s ({repeat} runs) | peak MiB | result |")
    print("|---|---|---:|---:|---|")
    for label, size, fn in rows:
        seconds, mib, out = timed(fn, repeat)
        print(f"| {label} | {size} | {seconds:.3f} | {mib:.0f} | {describe(out)} |")
        sys.stdout.flush()


# ---------------------------------------------------------------------------- power


Sampler = Callable[[np.random.Generator], tuple[Any, Any]]


def rate(test: DriftTest, sample: Sampler, reps: int) -> str:
    rng = np.random.default_rng(2024)
    hits = silent = 0
    for i in range(reps):
        ref, cur = sample(rng)
        verdict = test.run("f", ref, cur, seed=i).drifted
        if verdict is None:
            silent += 1
        else:
            hits += verdict
    if silent == reps:
        return "too small"
    text = f"{hits / (reps - silent):.2f}"
    return text + (f" ({silent / reps:.0%} silent)" if silent else "")


def bench_power(
    reps: int, null_reps: int, sizes: Sequence[int], only: Sequence[str] | None = None
) -> None:
    topics = Topics()
    cells: list[tuple[str, str, list[DriftTest], Callable[[int, float], Callable[..., Any]]]] = [
        (
            "longer outputs",
            "δ = relative length increase",
            [ks_test, wasserstein_test, psi_test],
            lambda n, d: lambda r: (lengths(r, n), lengths(r, n, d)),
        ),
        (
            "changed mix",
            "δ = share moved between two categories",
            [chi2_test, js_test],
            lambda n, d: lambda r: (mix(r, n), mix(r, n, d)),
        ),
        (
            "embedding mean shift",
            "δ = shift along one direction (row norm ≈ 1)",
            [mmd_test, classifier_test, ks_per_dim_test],
            lambda n, d: lambda r: (topics.rows(r, n), topics.rows(r, n, shift=d)),
        ),
        (
            "embedding new topic",
            "δ = share of current rows from a new topic",
            [mmd_test, classifier_test, ks_per_dim_test],
            lambda n, d: lambda r: (topics.rows(r, n), topics.rows(r, n, new_topic=d)),
        ),
    ]
    shifts = {
        "longer outputs": [0.0, 0.05, 0.10, 0.25],
        "changed mix": [0.0, 0.03, 0.05, 0.10],
        "embedding mean shift": [0.0, 0.05, 0.10, 0.20],
        "embedding new topic": [0.0, 0.05, 0.10, 0.20],
    }
    for scenario, meaning, tests, make in cells:
        if only and not any(word in scenario for word in only):
            continue
        print(f"\n**{scenario}** ({meaning}; detection rate at alpha = 0.05)\n")
        threshold_tests = [t for t in tests if getattr(t, "threshold", None) is not None]
        if threshold_tests:
            # What a threshold test converges to: its effect on very large windows.
            big = {
                d: [t.run("f", *make(200_000, d)(np.random.default_rng(1))).effect
                    for t in threshold_tests]
                for d in shifts[scenario]
            }  # fmt: skip
            names = ", ".join(f"{t.name} {getattr(t, 'threshold', '')}" for t in threshold_tests)
            print(f"Effect on 200,000 vs 200,000 rows (threshold: {names}):", end=" ")
            print("; ".join(
                f"δ={d:g}: " + ", ".join(f"{v:.3f}" for v in vals) for d, vals in big.items()
            ) + "\n")  # fmt: skip
        header = " | ".join(f"{t.name} n={n}" for t in tests for n in sizes)
        print(f"| δ | {header} |")
        print("|---|" + "---:|" * (len(tests) * len(sizes)))
        for d in shifts[scenario]:
            cells_out = []
            for t in tests:
                for n in sizes:
                    cells_out.append(rate(t, make(n, d), null_reps if d == 0 else reps))
                    sys.stdout.flush()
            print(f"| {d:g} | " + " | ".join(cells_out) + " |")
            sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per detector")
    parser.add_argument("--power", action="store_true", help="simulate detection rates")
    parser.add_argument("--reps", type=int, default=200, help="checks per shifted cell")
    parser.add_argument("--null-reps", type=int, default=500, help="checks per no-shift cell")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[100, 500, 2000], help="rows per window"
    )
    parser.add_argument(
        "--scenarios", nargs="+", help="only scenarios whose name contains one of these words"
    )
    args = parser.parse_args(argv)
    if args.power:
        bench_power(args.reps, args.null_reps, args.sizes, args.scenarios)
    else:
        bench_timing(args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
