"""Eval runner overhead: N cases against a local OpenAI-compatible server that answers
after a fixed delay, at concurrency C, through the whole of ``assay.evaluate`` — golden
set stored, every trial scored (``exact``) and recorded in a fresh DuckDB file, every
call traced into the store, statistics read back.

Prints wall time against the ideal (N × delay / C), client CPU seconds, and peak RSS;
``--cases`` may be given several times to show memory stays flat as the set grows.

Run::

    . .venv/bin/activate
    python benchmarks/eval_overhead.py                      # 1,000 cases, c=100, 200 ms
    python benchmarks/eval_overhead.py --runs 3 --cases 1000 --cases 5000

Target: wall <= 1.2 x ideal. Exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from llm_client import start_server

from assay.evaluation import evaluate
from assay.goldens import golden_set_from_cases
from assay.model import Case
from assay.settings import Settings

TARGET_RATIO = 1.2


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def one_run(base_url: str, n: int, concurrency: int) -> tuple[float, float, float]:
    """Wall seconds, client CPU seconds and RSS (MB) after one evaluation of n cases."""
    cases = [Case(id=f"case-{i:06d}", input=f"question {i}", expected="OK") for i in range(n)]
    golden = golden_set_from_cases("bench", cases)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(db=os.path.join(tmp, "b.duckdb"), url="http://127.0.0.1:9")
        c0, t0 = _cpu(), time.perf_counter()
        result = evaluate(
            golden,
            "openai:bench-model",
            ["exact"],
            concurrency=concurrency,
            target_options={"base_url": base_url},
            settings=settings,
        )
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
    done = result.summary.trials_done
    if done != n:
        print(f"warning: {done} of {n} trials finished", file=sys.stderr)
    return wall, cpu, _rss_mb()


def main(argv: list[str] | None = None) -> int:
    """Measure and print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", type=int, action="append", help="cases (repeatable)")
    p.add_argument("-c", "--concurrency", type=int, default=100)
    p.add_argument("--delay", type=float, default=0.2, help="server delay per answer (s)")
    p.add_argument("--runs", type=int, default=1, help="runs per size; the median is shown")
    args = p.parse_args(argv)
    sizes = args.cases or [1000]
    proc, base_url = start_server(args.delay)
    try:
        one_run(base_url, 50, args.concurrency)  # warm-up: imports, first DB, pools
        print(
            f"eval overhead: concurrency {args.concurrency}, server delay "
            f"{args.delay * 1000:.0f} ms, median of {args.runs} run(s)"
        )
        print(f"{'cases':>7} {'ideal s':>8} {'wall s':>8} {'x ideal':>8} {'client CPU s':>13} "
              f"{'RSS MB':>7}  target")
        for n in sizes:
            runs = [one_run(base_url, n, args.concurrency) for _ in range(args.runs)]
            wall = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs)
            rss = max(r[2] for r in runs)
            ideal = n * args.delay / args.concurrency
            ratio = wall / ideal
            verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
            print(f"{n:>7} {ideal:>8.2f} {wall:>8.2f} {ratio:>8.2f} {cpu:>13.2f} {rss:>7.0f}  "
                  f"<= {TARGET_RATIO}x {verdict}")
    finally:
        proc.terminate()
        proc.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
