"""Query benchmark: overview aggregates, text search and trace pages on a large store.

Loads M synthetic spans (default 5,000,000; :func:`assay.synthetic.batches`, four spans
per trace with ~500-character texts, spread over ``--days`` days) straight into a
:class:`~assay.store.duckdb.DuckDBStore` file, bypassing HTTP: a helper process
generates and serialises the OTLP requests, this process decodes them with
:func:`assay.otlp.decode_request` (prices applied) and calls ``store.insert_spans`` in
chunks of ``--chunk`` spans. An existing ``--db`` file with at least M spans is reused
as is (a file with fewer spans is topped up), so re-runs skip the load.

Then it times, through the store methods (median and p95 of ``--repeat`` runs after one
warm-up; p95 is nearest-rank, i.e. the slowest run for 7 repeats):

* overview aggregates, as ``GET /api/v1/stats`` runs them (kind=llm): totals grouped by
  model; hourly buckets over the whole range; daily buckets grouped by route; totals
  grouped by release (error rate and p50/p95/p99 latency) — target <= 250 ms each;
* text search ``list_spans(text=...)``, first page of 50, newest first: a phrase found in
  about 5% of spans (picked from a sample of the data unless ``--word`` is given) and a
  string found nowhere (``--rare-word``, the worst case: every text is scanned) —
  target <= 500 ms;
* the first page of the trace listing and one ``get_trace`` — target <= 250 ms
  (assumed: these back the same pages as the overview).

With ``--http`` the same queries are also timed through the ASGI app in-process
(FastAPI TestClient: routing, validation and JSON encoding included).

Run (the 5M load takes several minutes; run it in the background and poll)::

    . .venv/bin/activate
    nohup python benchmarks/query.py --http > /tmp/assay-query-bench.log 2>&1 &
    python benchmarks/query.py --spans 200000 --db /tmp/assay-bench-200k.duckdb

The script exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from assay import synthetic
from assay.otlp import decode_request
from assay.pricing import load_prices
from assay.query import SpanFilter
from assay.settings import Settings
from assay.store import is_url, open_store
from assay.store.duckdb import DuckDBStore

MB = 1024 * 1024
PROJECT = "default"
START_NS = 1_763_000_000 * 10**9
TARGET_OVERVIEW_MS = 250.0
TARGET_SEARCH_MS = 500.0
TARGET_TRACE_MS = 250.0
SEARCH_TARGET_FRACTION = 0.05


# -- loading ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ChunkSpec:
    """One deterministic slice of the synthetic data set."""

    index: int
    spans: int
    batch: int
    seed: int
    start_ns: int
    step_ns: int


def generate_chunk(spec: ChunkSpec) -> list[bytes]:
    """Serialised OTLP requests of one chunk (runs in the helper process)."""
    return [
        req.SerializeToString()
        for req in synthetic.batches(
            spec.spans, spec.batch, seed=spec.seed, start_ns=spec.start_ns, step_ns=spec.step_ns
        )
    ]


def chunk_specs(
    first: int,
    total_spans: int,
    chunk: int,
    batch: int,
    seed: int,
    step_ns: int,
    start_ns: int = START_NS,
) -> Iterator[ChunkSpec]:
    """Chunks ``first``.. until ``total_spans`` spans; chunk i always holds the same data."""
    traces_per_chunk = chunk // 4
    i = first
    while i * chunk < total_spans:
        n = min(chunk, total_spans - i * chunk)
        yield ChunkSpec(
            index=i,
            spans=n,
            batch=batch,
            seed=seed * 1_000_003 + i,
            start_ns=start_ns + i * traces_per_chunk * step_ns,
            step_ns=step_ns,
        )
        i += 1


def file_mb(path: str) -> float:
    """Size of the database file and its WAL (or of a chDB directory)."""
    total = 0
    if path.startswith("chdb://"):
        root = Path(path.removeprefix("chdb://").split("?")[0])
        return sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / MB
    for p in (Path(path), Path(path + ".wal")):
        with contextlib.suppress(OSError):
            total += p.stat().st_size
    return total / MB


def rss_mb() -> float:
    """Current resident memory of this process."""
    rss: int = psutil.Process().memory_info().rss
    return rss / MB


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux: ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load(path: str, n_spans: int, chunk: int, days: float, seed: int, workers: int) -> None:
    """Make sure the store at ``path`` (a file or store URL) holds at least ``n_spans``
    spans, loading what is missing."""
    store: Any = open_store(path)
    have = store.count_spans()
    if have >= n_spans:
        print(f"reusing {path}: {have:,} spans (>= {n_spans:,}), {file_mb(path):,.0f} MB")
        store.close()
        return
    if have % chunk:
        # A partial chunk means an interrupted load; chunks are whole transactions, so this
        # only happens with a different --chunk. Start over rather than guess.
        print(f"{path} holds {have:,} spans, not a multiple of --chunk {chunk}; reloading")
        store.close()
        if is_url(path):
            raise SystemExit(f"empty the store at {path} (or pick another) and run again")
        for p in (Path(path), Path(path + ".wal")):
            p.unlink(missing_ok=True)
        store = DuckDBStore(path)
        have = 0
    fill(store, have, n_spans, chunk, days, seed, workers)
    t0 = time.perf_counter()
    store.close()
    print(f"close (checkpoint): {time.perf_counter() - t0:.1f} s")


def fill(
    store: DuckDBStore,
    have: int,
    n_spans: int,
    chunk: int,
    days: float,
    seed: int,
    workers: int,
    start_ns: int = START_NS,
) -> None:
    """Insert synthetic spans ``have``..``n_spans`` (whole chunks), spread over ``days``
    from ``start_ns``; generation runs in ``workers`` helper processes."""
    step_ns = int(days * 86400 * 10**9 * 4 / n_spans)
    prices = load_prices()
    todo = n_spans - have
    print(
        f"loading {todo:,} spans (already {have:,}); {chunk:,} per insert, "
        f"{days:g} days of data, 1 trace every {step_ns / 1e9:.2f} s",
        flush=True,
    )
    specs = list(chunk_specs(have // chunk, n_spans, chunk, 1_000, seed, step_ns, start_ns))
    t_decode = t_insert = 0.0
    done = 0
    started = time.perf_counter()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers) if workers > 0 else contextlib.nullcontext() as pool:
        chunks: Iterator[list[bytes]] = (
            pool.imap(generate_chunk, specs) if pool is not None else map(generate_chunk, specs)
        )
        for spec, bodies in zip(specs, chunks, strict=True):
            t0 = time.perf_counter()
            spans = []
            for body in bodies:
                req = ExportTraceServiceRequest.FromString(body)
                spans.extend(decode_request(req, PROJECT, prices).spans)
            t1 = time.perf_counter()
            store.insert_spans(spans)
            t2 = time.perf_counter()
            t_decode += t1 - t0
            t_insert += t2 - t1
            done += spec.spans
            elapsed = t2 - started
            if spec.index % 10 == 9 or done == todo:
                print(
                    f"  {have + done:>11,} spans  {done / elapsed:,.0f} spans/s  "
                    f"eta {(todo - done) / (done / elapsed):,.0f} s  RSS {rss_mb():,.0f} MB",
                    flush=True,
                )
    wall = time.perf_counter() - started
    print(
        f"loaded {done:,} spans in {wall:,.1f} s: {done / wall:,.0f} spans/s overall; "
        f"decode {done / t_decode:,.0f} spans/s, store.insert_spans {done / t_insert:,.0f} "
        f"spans/s ({workers} generator process(es) alongside)"
    )
    print(f"RSS after load: {rss_mb():,.0f} MB (peak {peak_rss_mb():,.0f} MB)")


# -- choosing search words ---------------------------------------------------------------


def pick_phrase(seed: int, target: float = SEARCH_TARGET_FRACTION) -> tuple[str, float]:
    """A phrase in about ``target`` of a sample's spans (input or output text).

    Single words of the synthetic vocabulary are in most spans, so candidates are
    two-word phrases and a word followed by the first letter of the next one."""
    sample = [
        (s.input_text or "").lower() + "\x00" + (s.output_text or "").lower()
        for req in synthetic.batches(8_000, 1_000, seed=seed + 7)
        for s in decode_request(req, PROJECT, None).spans
    ]
    words = synthetic._WORDS
    candidates = {f"{a} {b}" for a in words for b in words}
    candidates |= {f"{a} {b[0]}" for a in words for b in words}
    best = ("", 1.0)
    for phrase in sorted(candidates):
        frac = sum(phrase in t for t in sample) / len(sample)
        if abs(frac - target) < abs(best[1] - target):
            best = (phrase, frac)
    return best


# -- timing ------------------------------------------------------------------------------


@dataclass
class Timing:
    """Result of timing one query."""

    name: str
    via: str
    times_ms: list[float]
    target_ms: float
    result: str

    @property
    def median(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def p95(self) -> float:
        ordered = sorted(self.times_ms)
        return ordered[max(1, math.ceil(0.95 * len(ordered))) - 1]


def time_query(
    name: str, via: str, fn: Callable[[], Any], target: float, repeat: int, describe: Any
) -> Timing:
    """One warm-up call, then ``repeat`` timed calls."""
    describe_text = describe(fn())
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    t = Timing(name, via, times, target, describe_text)
    print(
        f"  {via:5} {name:<44} median {t.median:8.1f} ms  p95 {t.p95:8.1f} ms  ({describe_text})",
        flush=True,
    )
    return t


def print_table(timings: Sequence[Timing]) -> None:
    """query | via | median | p95 | target | pass."""
    headers = ["query", "via", "median ms", "p95 ms", "target ms", "pass", "result"]
    rows = [
        [
            t.name,
            t.via,
            f"{t.median:,.1f}",
            f"{t.p95:,.1f}",
            f"<= {t.target_ms:g}",
            "PASS" if t.median <= t.target_ms else "FAIL",
            t.result,
        ]
        for t in timings
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    left = {0, 1, 6}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print(line(headers))
    print(line(["-" * w for w in widths]))
    for row in rows:
        print(line(row))


def run_queries(store: DuckDBStore, args: argparse.Namespace, phrase: str) -> list[Timing]:
    """Time every query through the store (and the app with --http)."""
    llm = SpanFilter(PROJECT, kind="llm")
    everything = SpanFilter(PROJECT)
    hour, day = timedelta(hours=1), timedelta(days=1)
    newest = store.list_traces(everything, 1, None).items
    trace_id = newest[0].trace_id if newest else "0" * 32

    def rows(result: Any) -> str:
        return f"{len(result)} rows"

    def page(result: Any) -> str:
        return f"{len(result.items)} items"

    queries: list[tuple[str, Callable[[], Any], str, float, Callable[[Any], str]]] = [
        (
            "stats by model (totals)",
            lambda: store.aggregate(llm, None, "model"),
            "/api/v1/stats?group_by=model",
            TARGET_OVERVIEW_MS,
            rows,
        ),
        (
            "stats hourly buckets (whole range)",
            lambda: store.aggregate(llm, hour, None),
            "/api/v1/stats?bucket=1h",
            TARGET_OVERVIEW_MS,
            rows,
        ),
        (
            "stats daily buckets by route",
            lambda: store.aggregate(llm, day, "route"),
            "/api/v1/stats?bucket=1d&group_by=route",
            TARGET_OVERVIEW_MS,
            rows,
        ),
        (
            "stats by release (errors, p50/95/99)",
            lambda: store.aggregate(llm, None, "release"),
            "/api/v1/stats?group_by=release",
            TARGET_OVERVIEW_MS,
            rows,
        ),
        (
            f"search {phrase!r} (~5%), first 50",
            lambda: store.list_spans(everything.with_(text=phrase), 50, None),
            f"/api/v1/spans?q={phrase}&limit=50",
            TARGET_SEARCH_MS,
            page,
        ),
        (
            f"search {args.rare_word!r} (no match), first 50",
            lambda: store.list_spans(everything.with_(text=args.rare_word), 50, None),
            f"/api/v1/spans?q={args.rare_word}&limit=50",
            TARGET_SEARCH_MS,
            page,
        ),
        (
            "traces list, first 50",
            lambda: store.list_traces(everything, 50, None),
            "/api/v1/traces?limit=50",
            TARGET_TRACE_MS,
            page,
        ),
        (
            "get_trace (newest trace)",
            lambda: store.get_trace(PROJECT, trace_id),
            f"/api/v1/traces/{trace_id}",
            TARGET_TRACE_MS,
            lambda r: f"{len(r)} spans",
        ),
    ]
    timings = [
        time_query(name, "store", fn, target, args.repeat, describe)
        for name, fn, _, target, describe in queries
    ]
    if args.http:
        from fastapi.testclient import TestClient

        from assay.server import create_app
        from assay.settings import Settings

        app = create_app(Settings(db=args.db), store=store, prices=load_prices())
        with TestClient(app) as client:

            def get(url: str) -> Callable[[], Any]:
                def call() -> Any:
                    resp = client.get(url)
                    resp.raise_for_status()
                    return resp

                return call

            def size(resp: Any) -> str:
                return f"{len(resp.content) / 1024:,.0f} KiB JSON"

            for name, _, url, target, _ in queries:
                timings.append(time_query(name, "http", get(url), target, args.repeat, size))
    return timings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=5_000_000, help="spans in the store")
    parser.add_argument(
        "--db",
        "--store",
        dest="db",
        default="/tmp/assay-bench-5m.duckdb",
        help="DuckDB file or store URL (e.g. chdb:///tmp/assay-bench-5m-ch)",
    )
    parser.add_argument("--chunk", type=int, default=50_000, help="spans per insert_spans")
    parser.add_argument("--days", type=float, default=30.0, help="time range of the data")
    parser.add_argument("--seed", type=int, default=0, help="synthetic data seed")
    parser.add_argument(
        "--workers", type=int, default=1, help="generator processes while loading (0: inline)"
    )
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per query")
    parser.add_argument("--word", default=None, help="search phrase (default: ~5%% of spans)")
    parser.add_argument(
        "--rare-word", default="zebra-unicorn", help="search string found in no span"
    )
    parser.add_argument("--http", action="store_true", help="also time via the in-process app")
    parser.add_argument(
        "--memory-limit",
        default=Settings().duckdb_memory_limit,
        help="DuckDB memory limit, as `assay serve` sets it (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.chunk % 4:
        parser.error("--chunk must be a multiple of 4 (whole traces)")

    load(args.db, args.spans, args.chunk, args.days, args.seed, args.workers)
    print(f"database file: {file_mb(args.db):,.0f} MB ({args.db})")

    if args.word is None:
        phrase, frac = pick_phrase(args.seed)
        print(f"search phrase {phrase!r}: in {frac:.1%} of a 8,000-span sample")
    else:
        phrase = args.word

    t0 = time.perf_counter()
    store = open_store(args.db, memory_limit=args.memory_limit)
    print(f"open: {(time.perf_counter() - t0) * 1e3:,.0f} ms; RSS {rss_mb():,.0f} MB")
    if hasattr(store, "wait_text_index"):  # DuckDB: every block sketched before timing
        t0 = time.perf_counter()
        store.wait_text_index(timeout=3600)
        print(f"text index complete after {time.perf_counter() - t0:.1f} s")
    everything = SpanFilter(PROJECT)
    total = store.count_spans()
    agg = store.aggregate(everything, None, None)
    days = store.aggregate(everything, timedelta(days=1), None)
    matches = store.aggregate(everything.with_(text=phrase), None, None)
    hits = matches[0].calls if matches else 0
    print(
        f"store: {total:,} spans ({agg[0].calls if agg else 0:,} in project {PROJECT!r}), "
        f"{len(days)} days; {phrase!r} in {hits:,} spans ({hits / max(total, 1):.1%})"
    )
    print(f"RSS before queries: {rss_mb():,.0f} MB")
    print(f"timing: 1 warm-up + {args.repeat} runs each", flush=True)
    timings = run_queries(store, args, phrase)
    print(f"RSS after queries: {rss_mb():,.0f} MB (peak {peak_rss_mb():,.0f} MB)")
    store.close()
    print()
    print(
        f"assay query benchmark: {total:,} spans, store {args.db} "
        f"({file_mb(args.db):,.0f} MB if a file, DuckDB memory limit {args.memory_limit}), "
        f"{os.cpu_count()} CPUs, median/p95 of {args.repeat} runs after 1 warm-up"
    )
    print_table(timings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
