"""Online-evaluation benchmark: does the worker keep up with 100 sampled spans per second
against a judge that answers in 500 ms, and does it slow ingestion?

A local OpenAI-compatible judge (aiohttp, in a subprocess so its CPU is not the worker's)
answers every ``POST /v1/chat/completions`` after ``--delay`` seconds with a valid
pass/fail verdict and token usage, as model ``gpt-4o-mini`` (so every score has a cost).

**Keep-up** (in this process): a DuckDB store on a temporary file, one rule scoring 5% of
LLM spans with the real ``judge`` scorer at ``--concurrency``, and a producer committing
``--offered / 0.05`` spans per second (so ~``--offered`` sampled spans per second) for
``--seconds``. Reported: offered sampled spans per second; spans scored per second in the
second half of the run (steady state); the lag from a span's commit to its stored score
(p50/p95 for spans committed in the first and in the second half: a worker that falls
behind shows a growing lag); how long the worker takes to finish after the producer stops
and whether every sampled span was scored.

**Ingest with the worker on and off**: ``assay serve`` (fresh database, free port) with
``ASSAY_ONLINE=false`` and then ``=true`` (default poll interval), a rule
scoring 5% of LLM spans through the same judge created over HTTP first, then
``--spans`` synthetic spans sent as OTLP protobuf from two threads (the ingest benchmark's
load); spans per second from first send until all are queryable. With the worker on it
scores at full concurrency throughout the load: the worst case for ingest.

Run::

    . .venv/bin/activate
    python benchmarks/online.py                          # 30 s keep-up, 100,000-span ingest
    python benchmarks/online.py --seconds 10 --spans 50000 --runs 2

Targets (printed next to the figures): scored >= 95% of offered in the second half, lag p95
growing by <= 1 s from the first half to the second, every sampled span scored; ingest
with the worker on >= 90% of off. The machine's other
load moves these figures; the script exits 0 whatever they are.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest as ingest_bench  # the sibling benchmark's server and load
from llm_client import start_server

from assay.model import ScorerSpec, Span
from assay.online import is_sampled, new_rule, parse_filters
from assay.online_worker import OnlineWorker
from assay.store.duckdb import DuckDBStore

SAMPLE = 0.05
TARGET_KEEP_UP = 0.95
TARGET_INGEST_RATIO = 0.90
_VERDICT = json.dumps({"reasoning": "It answers the question directly.", "verdict": "pass"})


# --------------------------------------------------------------------------- judge server


def start_judge(delay: float) -> tuple[subprocess.Popen[str], str]:
    """Spawn a fixed-delay judge (the chat benchmark's server answering a verdict);
    returns it and its base URL."""
    verdict = {"content": _VERDICT, "model": "gpt-4o-mini", "usage": [220, 25]}
    return start_server(delay, verdict)


def judge_args(base_url: str) -> dict[str, Any]:
    """The judge's arguments every rule here uses."""
    return {
        "rubric": "The answer addresses the user's question.",
        "endpoint": {"base_url": base_url, "model": "gpt-4o-mini"},
    }


# --------------------------------------------------------------------------- keep-up


def _span(now: datetime) -> Span:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return Span(
        project="default",
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=None,
        service="support-bot",
        name="ChatCompletion",
        kind="llm",
        otel_kind="client",
        start_time=now,
        end_time=now + timedelta(milliseconds=900),
        duration_ms=900.0,
        status="ok",
        model="gpt-4o-mini",
        input_text="How do I get a refund for a damaged parcel?",
        output_text="Open the order, choose 'Report a problem' and attach a photo.",
        input_messages=[{"role": "user", "content": "How do I get a refund?"}],
        route="support",
    )


def _percentile(values: Sequence[float], q: float) -> float:
    return ingest_bench.percentile(values, q) if values else float("nan")


async def keep_up(base_url: str, args: argparse.Namespace) -> dict[str, float]:
    """Offer ~``args.offered`` sampled spans/s for ``args.seconds``; measure the worker."""
    per_second = args.offered / SAMPLE
    tick = 0.1
    committed: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="assay-online-") as tmp:
        store = DuckDBStore(str(Path(tmp) / "online.duckdb"))
        rule = new_rule("default", "bench", ScorerSpec("judge", judge_args(base_url)),
                        sample=SAMPLE, filters=parse_filters([]),
                        concurrency=args.concurrency)  # fmt: skip
        store.create_online_rule(rule)
        worker = OnlineWorker(store, poll_seconds=args.poll)
        await worker.tick()
        max_in_flight = 0
        started = time.perf_counter()
        sent = offered = 0
        while (elapsed := time.perf_counter() - started) < args.seconds:
            due = int(per_second * min(elapsed + tick, args.seconds)) - sent
            if due > 0:
                now = datetime.now(UTC)
                batch = [_span(now) for _ in range(due)]
                await asyncio.to_thread(store.insert_spans, batch)
                at = time.time()
                committed.update((s.span_id, at) for s in batch)
                offered += sum(is_sampled(s.trace_id, s.span_id, SAMPLE) for s in batch)
                sent += due
            live = worker.live("default", "bench") or {}
            max_in_flight = max(max_in_flight, int(live.get("in_flight", 0)))
            await asyncio.sleep(max(0.0, started + elapsed + tick - time.perf_counter()))
        produced_s = time.perf_counter() - started
        stopped_wall = time.time()
        start_wall = stopped_wall - produced_s
        drained = await worker.wait_idle(timeout=120)
        drain_s = time.time() - stopped_wall
        await worker.stop()
        feedback = store.list_feedback("default", name="bench", limit=10**7)
        final = store.get_online_rule("default", "bench")
        assert final is not None
        store.close()
    half = start_wall + produced_s / 2
    first = [f.created_at.timestamp() - committed[f.span_id] for f in feedback
             if committed.get(f.span_id, math.inf) < half]  # fmt: skip
    second = [f.created_at.timestamp() - committed[f.span_id] for f in feedback
              if half <= committed.get(f.span_id, -math.inf)]  # fmt: skip
    steady = sum(1 for f in feedback if half <= f.created_at.timestamp() < stopped_wall)
    return {
        "committed_per_s": sent / produced_s,
        "offered_per_s": offered / produced_s,
        "scored_per_s": steady / (produced_s / 2),
        "unscored": float(offered - final.progress.scored) if drained else float(offered),
        "drain_s": drain_s if drained else math.inf,
        "lag_p50_first": _percentile(first, 50),
        "lag_p95_first": _percentile(first, 95),
        "lag_p50_second": _percentile(second, 50),
        "lag_p95_second": _percentile(second, 95),
        "lag_max": max(first + second) if feedback else math.nan,
        "max_in_flight": float(max_in_flight),
        "errors": float(final.progress.errors),
        "spend": final.progress.spend_total_usd,
    }


# --------------------------------------------------------------------------- ingest on/off


def ingest_run(
    bodies: Sequence[bytes], n_spans: int, online: bool, judge_url: str, judge_pid: int
) -> dict[str, float]:
    """One fresh ``assay serve`` with the worker on or off; spans/s until all queryable,
    and the CPU seconds the server and the judge stand-in used meanwhile."""
    os.environ.update(ASSAY_ONLINE="true" if online else "false", ASSAY_MONITORS="false")
    os.environ.pop("ASSAY_ONLINE_POLL_SECONDS", None)
    with tempfile.TemporaryDirectory(prefix="assay-online-ingest-") as tmp:
        server = ingest_bench.Server(Path(tmp))
        try:
            server.start()
            with httpx.Client(base_url=server.url, timeout=30.0) as client:
                scorer = {"name": "judge", **judge_args(judge_url)}
                body = {"name": "bench", "scorer": scorer, "sample": SAMPLE, "concurrency": 64}
                resp = client.post("/api/v1/online", json=body)
                resp.raise_for_status()
                time.sleep(1.5)  # the worker claims the rule before the load starts
                state = ingest_bench._LoadState()
                threads = [
                    threading.Thread(
                        target=ingest_bench._sender, args=(server.url, bodies, state), daemon=True
                    )
                    for _ in range(2)
                ]
                assert server.ps is not None
                judge_ps = psutil.Process(judge_pid)
                cpu0 = (ingest_bench.tree_cpu_seconds(server.ps),
                        ingest_bench.tree_cpu_seconds(judge_ps))  # fmt: skip
                t0 = time.perf_counter()
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                if state.errors:
                    raise RuntimeError("ingest failed: " + "; ".join(state.errors[:3]))
                while ingest_bench._stored_spans(client) < n_spans:
                    time.sleep(0.02)
                wall = time.perf_counter() - t0
                server_cpu = ingest_bench.tree_cpu_seconds(server.ps) - cpu0[0]
                judge_cpu = ingest_bench.tree_cpu_seconds(judge_ps) - cpu0[1]
                status = client.get("/api/v1/online/bench").json()["status"]
        finally:
            server.stop()
    return {
        "spans_per_s": n_spans / wall,
        "wall_s": wall,
        "p95_ms": ingest_bench.percentile(state.latencies_ms, 95),
        "scored": float(status["scored"]),
        "n503": float(state.n503),
        "server_cpu_per_1k": server_cpu / n_spans * 1000,
        "judge_cores": judge_cpu / wall,
    }


# --------------------------------------------------------------------------- output


def _row(label: str, value: str, target: str = "", ok: bool | None = None) -> list[str]:
    return [label, value, target, "" if ok is None else ("PASS" if ok else "FAIL")]


def print_table(rows: list[list[str]]) -> None:
    """Aligned columns: metric, value, target, verdict."""
    headers = ["metric", "value", "target", "pass"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for cells in [headers, ["-" * w for w in widths], *rows]:
        padded = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        print("  ".join(padded).rstrip())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay", type=float, default=0.5, help="judge latency, seconds")
    parser.add_argument("--offered", type=float, default=100.0, help="sampled spans/s offered")
    parser.add_argument("--seconds", type=float, default=30.0, help="keep-up duration")
    parser.add_argument("--concurrency", type=int, default=64, help="the rule's concurrency")
    parser.add_argument("--poll", type=float, default=1.0, help="worker poll seconds")
    parser.add_argument("--spans", type=int, default=100_000, help="spans per ingest run")
    parser.add_argument("--runs", type=int, default=1, help="ingest runs per setting")
    parser.add_argument("--skip-ingest", action="store_true", help="only the keep-up part")
    args = parser.parse_args(argv)

    judge, url = start_judge(args.delay)
    try:
        print(f"judge at {url}: {args.delay * 1000:.0f} ms per answer", flush=True)
        k = asyncio.run(keep_up(url, args))
        print(
            f"keep-up: {k['offered_per_s']:.1f} sampled/s offered, {k['scored_per_s']:.1f} "
            f"scored/s in the second half, lag p95 {k['lag_p95_second']:.2f} s",
            flush=True,
        )
        off: list[dict[str, float]] = []
        on: list[dict[str, float]] = []
        if not args.skip_ingest:
            bodies, n_spans = ingest_bench.encode_batches(args.spans, 1000, 0)
            for i in range(args.runs):
                for online, results in ((False, off), (True, on)):
                    r = ingest_run(bodies, n_spans, online, url, judge.pid)
                    results.append(r)
                    print(
                        f"ingest run {i + 1}, worker {'on' if online else 'off'}: "
                        f"{r['spans_per_s']:,.0f} spans/s, p95 {r['p95_ms']:.0f} ms, "
                        f"server CPU {r['server_cpu_per_1k']:.3f} s per 1k spans, judge "
                        f"stand-in {r['judge_cores']:.2f} cores, scored during the load "
                        f"{r['scored']:.0f}",
                        flush=True,
                    )
    finally:
        judge.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            judge.wait(10)

    offered = k["offered_per_s"]
    keeps = k["scored_per_s"] >= TARGET_KEEP_UP * offered
    growth = k["lag_p95_second"] - k["lag_p95_first"]
    rows = [
        _row("judge latency ms", f"{args.delay * 1000:.0f}"),
        _row("rule concurrency", f"{args.concurrency}"),
        _row("worker poll s", f"{args.poll:g}"),
        _row("spans committed/s (5% sampled)", f"{k['committed_per_s']:,.0f}"),
        _row("sampled spans/s offered", f"{offered:.1f}"),
        _row("scored spans/s (second half)", f"{k['scored_per_s']:.1f}",
             f">= {TARGET_KEEP_UP:.0%} of offered", keeps),
        _row("lag commit -> score p50 s (1st / 2nd half)",
             f"{k['lag_p50_first']:.2f} / {k['lag_p50_second']:.2f}"),
        _row("lag commit -> score p95 s (1st / 2nd half)",
             f"{k['lag_p95_first']:.2f} / {k['lag_p95_second']:.2f}"),
        _row("lag p95 growth s (2nd - 1st half)", f"{growth:+.2f}", "<= 1", growth <= 1.0),
        _row("lag max s", f"{k['lag_max']:.2f}"),
        _row("drain after the producer stops s", f"{k['drain_s']:.2f}"),
        _row("sampled spans left unscored", f"{k['unscored']:.0f}", "0", k["unscored"] == 0),
        _row("judge calls in flight (max seen)", f"{k['max_in_flight']:.0f}"),
        _row("errors", f"{k['errors']:.0f}"),
        _row("judge spend USD", f"{k['spend']:.4f}"),
    ]  # fmt: skip
    if off and on:
        off_s = statistics.median(r["spans_per_s"] for r in off)
        on_s = statistics.median(r["spans_per_s"] for r in on)
        ratio = on_s / off_s
        rows += [
            _row("ingest spans/s, worker off", f"{off_s:,.0f}"),
            _row("ingest spans/s, worker on", f"{on_s:,.0f}"),
            _row("ingest on / off", f"{ratio:.2f}", f">= {TARGET_INGEST_RATIO:g}",
                 ratio >= TARGET_INGEST_RATIO),
            _row("spans scored during the load (on)",
                 f"{statistics.median(r['scored'] for r in on):,.0f}"),
            _row("server CPU s per 1k spans, off / on",
                 f"{statistics.median(r['server_cpu_per_1k'] for r in off):.3f} / "
                 f"{statistics.median(r['server_cpu_per_1k'] for r in on):.3f}"),
            _row("judge stand-in CPU (cores) during the load, on",
                 f"{statistics.median(r['judge_cores'] for r in on):.2f}"),
        ]  # fmt: skip
    print()
    print(
        f"assay online-evaluation benchmark: {os.cpu_count()} CPUs, sample {SAMPLE:.0%}, "
        f"{args.seconds:g} s keep-up, {args.spans:,} spans per ingest run x {args.runs}"
    )
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
