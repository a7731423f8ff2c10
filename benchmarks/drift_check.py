"""A full drift check on the store: two windows of N LLM spans each (the default 10,000),
every default feature and detector, hashing embeddings. Prints the first check (which
embeds every text) and the following ones (embeddings read from the cache).

Run::

    . .venv/bin/activate
    python benchmarks/drift_check.py                   # 10,000 vs 10,000 spans
    python benchmarks/drift_check.py --spans 50000 --repeat 5

Target: a check of a 10,000-span window with cached embeddings in <= 2 s. Exits 0.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from assay.drift.report import build_spec, run_check
from assay.embedders import HashingEmbedder
from assay.store.duckdb import DuckDBStore
from drift_support import traffic

TARGET_S = 2.0


def main(argv: list[str] | None = None) -> int:
    """Build the store, time the checks, print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--spans", type=int, default=10_000, help="LLM spans per window")
    p.add_argument("--repeat", type=int, default=3, help="cached checks to time")
    args = p.parse_args(argv)
    now = datetime.now(UTC).replace(microsecond=0)
    traces = args.spans  # one LLM span per synthetic trace
    step = timedelta(days=1) / traces
    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBStore(os.path.join(tmp, "d.duckdb"))
        store.insert_spans(traffic(traces, now - timedelta(days=2), seed=1, step=step))
        store.insert_spans(
            traffic(traces, now - timedelta(days=1), seed=2, step=step, new_topic=0.3)
        )
        spec = build_spec(
            "default", current="1d ago..now", reference="2d ago..1d ago", now=now, seed=0
        )
        embedder = HashingEmbedder()
        t0 = time.perf_counter()
        report = run_check(store, spec, embedder=embedder)
        first = time.perf_counter() - t0
        cached = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            run_check(store, spec, embedder=embedder)
            cached.append(time.perf_counter() - t0)
        store.close()
    median = statistics.median(cached)
    print(f"drift check: {args.spans:,} vs {args.spans:,} LLM spans, hashing embeddings")
    print(f"{'check':<34} {'seconds':>8}  target")
    print(f"{'first (embeds every text)':<34} {first:>8.2f}  —")
    verdict = "PASS" if median <= TARGET_S else "FAIL"
    print(f"{f'cached, median of {args.repeat}':<34} {median:>8.2f}  <= {TARGET_S} {verdict}")
    print(f"verdict: {report.verdict} (30% of the current window's inputs on a new topic)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
