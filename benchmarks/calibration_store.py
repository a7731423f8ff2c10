"""Judge calibration from the store, end to end over the HTTP API (in-process).

A DuckDB file holds ``--items`` spans from the last few days (default 100,000), each with
a judge score (feedback, source judge: an over-confident probability of passing), and
``--labels`` (default 1,000) human pass/fail labels on a random subset, given through a
random annotation queue (m007 tables, inclusion probability labels/items) so the quality
estimate checks their provenance. Each row is one API request as `assay calibrate` /
`assay quality` send it: reading and pairing the feedback, the statistics and the JSON.

Timed: median of ``--repeat`` requests after one warm-up; issue 5's target is <= 1 s for
a calibration report and a quality estimate over 100,000 scored spans and 1,000 labels.
``window`` rows add a time window, which reads the spans too (a semi-join on the spans
matching it).

Run::

    . .venv/bin/activate
    python benchmarks/calibration_store.py
    python benchmarks/calibration_store.py --items 1000000 --labels 5000

The script exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from fastapi.testclient import TestClient
from scipy.special import expit, logit

from assay.batch import spans_to_arrow
from assay.model import Span
from assay.server import create_app
from assay.settings import Settings
from assay.store.duckdb import DuckDBStore

PROJECT = "default"


def _spans(items: int, now: datetime) -> pa.Table:
    base = now - timedelta(days=3)
    step = timedelta(days=2.9) / items
    spans = [
        Span(
            project=PROJECT,
            trace_id=f"{i + 1:032x}",
            span_id=f"{i + 1:016x}",
            parent_span_id=None,
            service="app",
            name="chat",
            kind="llm",
            otel_kind="client",
            start_time=base + i * step,
            end_time=base + i * step + timedelta(seconds=1),
            duration_ms=1000.0,
            status="ok",
            route="/support" if i % 2 else "/chat",
        )
        for i in range(items)
    ]
    return spans_to_arrow(spans)


def fill(path: str, items: int, labels: int, seed: int = 0) -> None:
    """Spans, judge scores, a random queue and its labels in a new database file."""
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC)
    store = DuckDBStore(path)
    store.create_project(PROJECT)
    store.insert_arrow(_spans(items, now))
    truth = rng.beta(5, 2, items)
    raw = expit(2.0 * logit(np.clip(truth, 1e-4, 1 - 1e-4)))
    passed = rng.random(items) < truth
    picked = np.sort(rng.permutation(items)[:labels])
    at = now.replace(tzinfo=None)
    trace = [f"{i + 1:032x}" for i in range(items)]
    span = [f"{i + 1:016x}" for i in range(items)]
    judge = pa.table(
        {
            "project": [PROJECT] * items,
            "feedback_id": [f"judge-{i}" for i in range(items)],
            "trace_id": trace,
            "span_id": span,
            "name": ["helpfulness"] * items,
            "kind": ["number"] * items,
            "number": raw,
            "category": pa.nulls(items, pa.string()),
            "comment": pa.nulls(items, pa.string()),
            "source": ["judge"] * items,
            "author": ["rule"] * items,
            "created_at": [at] * items,
            "metadata": ["{}"] * items,
        }
    )
    fids = [f"queue-q1-{k}" for k in range(labels)]
    human = pa.table(
        {
            "project": [PROJECT] * labels,
            "feedback_id": fids,
            "trace_id": [trace[i] for i in picked],
            "span_id": [span[i] for i in picked],
            "name": ["human-helpfulness"] * labels,
            "kind": ["boolean"] * labels,
            "number": passed[picked].astype(np.float64),
            "category": pa.nulls(labels, pa.string()),
            "comment": pa.nulls(labels, pa.string()),
            "source": ["reviewer"] * labels,
            "author": ["ana"] * labels,
            "created_at": [at] * labels,
            "metadata": ["{}"] * labels,
        }
    )
    cur = store._cursor()
    for name, table in (("judge_rows", judge), ("human_rows", human)):
        cur.register(name, table)
        cur.execute(f"INSERT INTO feedback SELECT * FROM {name}")
        cur.unregister(name)
    cur.execute(
        "INSERT INTO queues VALUES (?, 'sample', 'q1', 'random', '{}', 0, '{}', NULL, ?, ?, ?, "
        "1800, '{}', NULL, ?)",
        [PROJECT, labels, labels, items, at],
    )
    cur.execute(
        "INSERT INTO queue_items (project, queue, item_id, trace_id, span_id, "
        "inclusion_probability, context, status, done_by, done_at, feedback_id) "
        "SELECT ?, 'sample', unnest(?), unnest(?), unnest(?), ?, '{}', 'labelled', 'ana', ?, "
        "unnest(?)",
        [
            PROJECT,
            list(range(labels)),
            [trace[i] for i in picked],
            [span[i] for i in picked],
            labels / items,
            at,
            fids,
        ],
    )
    store.close()


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
    parser.add_argument("--items", type=int, default=100_000, help="judge-scored spans")
    parser.add_argument("--labels", type=int, default=1_000, help="spans with a human label")
    parser.add_argument("--repeat", type=int, default=5, help="timed requests per row")
    args = parser.parse_args(argv)
    if not 3 <= args.labels <= args.items - 2:
        parser.error("--labels must be between 3 and --items - 2")
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "bench.duckdb")
        start = time.perf_counter()
        fill(path, args.items, args.labels)
        setup = time.perf_counter() - start
        with TestClient(create_app(Settings(db=path, decode_workers=0))) as client:
            labels = {"labels": "human-helpfulness"}
            week = {**labels, "window": "last 7d"}

            def get(url: str, params: dict[str, Any]) -> Callable[[], Any]:
                def call() -> Any:
                    resp = client.get(url, params=params)
                    assert resp.status_code == 200, resp.text
                    return resp.json()

                return call

            def fit() -> Any:
                resp = client.post(
                    "/api/v1/calibration/helpfulness/fit", params={**labels, "method": "isotonic"}
                )
                assert resp.status_code == 200, resp.text
                return resp.json()

            report = "/api/v1/calibration/helpfulness/report"
            quality = "/api/v1/quality/helpfulness/estimate"
            n, big = args.labels, args.items
            rows: list[tuple[str, Callable[[], Any], str]] = [
                ("calibration report, all time", get(report, labels), "<= 1 s"),
                ("calibration report, window last 7d", get(report, week), "<= 1 s"),
                ("fit + store isotonic calibrator (with report)", fit, ""),
                ("quality estimate, all time (+ label-free)", get(quality, labels), "<= 1 s"),
                ("quality estimate, window last 7d (+ label-free)", get(quality, week), "<= 1 s"),
                (
                    "quality estimate, window + route filter",
                    get(quality, {**week, "route": "/support"}),
                    "",
                ),
                (
                    "conformal threshold, risk 0.05",
                    get("/api/v1/calibration/helpfulness/threshold", {**labels, "risk": 0.05}),
                    "",
                ),
                (
                    "latest 100 scores, raw + calibrated",
                    get("/api/v1/calibration/helpfulness", {"limit": 100}),
                    "",
                ),
            ]
            print(
                f"{big:,} judge-scored spans, {n:,} labels from a random queue "
                f"(setup {setup:.1f} s, not timed)\n"
            )
            print(f"| request | median ms ({args.repeat} runs) | target |")
            print("|---|---:|---|")
            for name, fn, target in rows:
                seconds = timed(fn, args.repeat)
                print(f"| {name} | {seconds * 1000:.0f} | {target} |")
                sys.stdout.flush()
            q = get(quality, week)()
            r = get(report, labels)()
            print()
            print(
                f"Figures: accuracy {r['accuracy']:.3f}, κ {r['cohen_kappa']:.3f}, offset "
                f"{r['mean_offset']:+.3f}, ECE {r['ece']:.3f}; PPI++ {q['ppi']['estimate']:.3f} "
                f"[{q['ppi']['low']:.3f}, {q['ppi']['high']:.3f}] vs human-only "
                f"[{q['human_only']['low']:.3f}, {q['human_only']['high']:.3f}] vs judge-only "
                f"{q['judge_only']['estimate']:.3f}; effective labels "
                f"{q['effective_labels']:,.0f}; label-free {q['label_free']['estimate']:.3f}; "
                f"sampling {q['sampling']['design']}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
