"""Page benchmark: server time and weight of every dashboard page on a 1M-span database.

Builds (once, then reuses) a DuckDB file holding the ``assay demo`` project plus
``--spans`` synthetic spans (four per trace, ~500-character texts) spread over the last
``--days`` days, so the overview and trace pages read a large table and the evaluation,
drift, annotation and calibration pages have the demo's content. Then it loads each page
``--loads`` times in-process (Starlette's TestClient: routing, store queries, template
rendering and gzip included; no network) after one warm-up, and prints the median and
p95 server time (nearest rank) against the 300 ms target, with each page's size as sent
(gzip) and uncompressed. The static assets a first visit downloads are listed below it.

Run::

    . .venv/bin/activate
    python benchmarks/pages.py                      # 1M spans; first run builds ~2-4 min
    python benchmarks/pages.py --spans 100000 --db /tmp/assay-pages-100k.duckdb

The script exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import gzip
import math
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))

from query import file_mb, fill
from starlette.testclient import TestClient

from assay.query import SpanFilter
from assay.server import create_app
from assay.settings import Settings
from assay.store.duckdb import DuckDBStore

TARGET_MS = 300.0
CHUNK = 50_000


def build(path: str, n_spans: int, days: float, workers: int) -> None:
    """The demo project plus ``n_spans`` synthetic spans, unless ``path`` already has them."""
    from assay.demo import build_demo

    store = DuckDBStore(path)
    try:
        if store.get_meta("pages-bench") == str(n_spans):
            print(f"reusing {path}: {store.count_spans():,} spans, {file_mb(path):,.0f} MB")
            return
        if store.count_spans():
            raise SystemExit(f"{path} holds other data; pass a new --db path")
        now = datetime.now(UTC)
        t0 = time.perf_counter()
        build_demo(store, Settings(db=path), seed=7, now=now)
        print(f"demo built in {time.perf_counter() - t0:.1f} s")
        start_ns = int((now - timedelta(days=days)).timestamp() * 10**9)
        fill(store, 0, n_spans, CHUNK, days, 0, workers, start_ns=start_ns)
        store.set_meta("pages-bench", str(n_spans))
    finally:
        store.close()


def pages(store: DuckDBStore, project: str) -> list[tuple[str, str]]:
    """(label, URL) of every page, with ids picked from the database."""
    out = [
        ("overview 7d by model", "/"),
        ("overview 30d by route, all spans", "/?range=30d&group=route&scope=all"),
        ("traces, first page", "/traces"),
        ("traces, model + status filter", "/traces?model=gpt-4o-mini&status=error"),
        ("traces, text search", "/traces?q=refund"),
    ]
    newest = store.list_traces(SpanFilter(project=project, service="support-bot"), 1, None)
    if newest.items:
        out.append(("trace detail", f"/traces/{newest.items[0].trace_id}"))
    runs = store.list_runs(project, limit=10)
    out.append(("evaluation runs", "/evals"))
    if runs:
        out.append(("evaluation run", f"/evals/{runs[0].run_id}"))
    if len(runs) >= 2:
        out.append(("compare two runs", f"/evals/compare?a={runs[1].run_id}&b={runs[0].run_id}"))
    out.append(("golden sets", "/goldens"))
    versions = store.list_golden_versions(project)
    if versions:
        name = versions[0].name
        out.append(("golden set", f"/goldens/{quote(name)}"))
        mine = [v for v in versions if v.name == name]
        if len(mine) >= 2:
            out.append(
                (
                    "golden diff",
                    f"/goldens/{quote(name)}/diff?old={mine[-1].version}&new={mine[0].version}",
                )
            )
    out.append(("drift monitors", "/drift"))
    for monitor in store.list_monitors(project)[:2]:
        out.append((f"monitor {monitor.name}", f"/drift/monitors/{quote(monitor.name)}"))
    out.append(("annotation queues", "/annotate"))
    queues = store.list_queues(project)
    if queues:
        name = quote(queues[0].name)
        out.append(("annotate (queue page)", f"/annotate/{name}"))
        items = store.list_queue_items(project, queues[0].name, status="open", limit=1)
        if items:
            out.append(("annotate (an open item)", f"/annotate/{name}/items/{items[0].item_id}"))
    out.append(("calibration", "/calibration"))
    for cal in store.list_calibrators(project)[:1]:
        out.append(("calibration judge", f"/calibration/{quote(cal.judge)}"))
    return out


def nearest_rank(values: Sequence[float], q: float) -> float:
    """The q-quantile by nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=1_000_000, help="synthetic spans")
    parser.add_argument("--db", default="/tmp/assay-pages-1m.duckdb", help="DuckDB file")
    parser.add_argument("--days", type=float, default=30.0, help="time range of the spans")
    parser.add_argument("--loads", type=int, default=20, help="timed loads per page")
    parser.add_argument("--workers", type=int, default=1, help="span generator processes")
    args = parser.parse_args(argv)
    build(args.db, args.spans, args.days, args.workers)

    settings = Settings(db=args.db, decode_workers=0, monitors=False, online=False)
    store = DuckDBStore(args.db)
    app = create_app(settings, store=store, close_store=True)
    rows = []
    with TestClient(app, base_url="http://127.0.0.1:7800") as client:
        targets = pages(store, settings.default_project)
        for label, url in targets:
            first = client.get(url, headers={"accept-encoding": "gzip"})
            times = []
            for _ in range(args.loads):
                t0 = time.perf_counter()
                r = client.get(url, headers={"accept-encoding": "gzip"})
                times.append((time.perf_counter() - t0) * 1000)
            raw = len(r.content)  # TestClient decodes gzip; re-measure the wire size
            wire = len(gzip.compress(r.content, compresslevel=5)) if raw > 1400 else raw
            rows.append((label, url, first.status_code, statistics.median(times),
                         nearest_rank(times, 0.95), wire, raw))  # fmt: skip
        assets = []
        static = Path(__file__).resolve().parents[1] / "src" / "assay" / "server" / "static"
        own = sorted(f"/static/{p.name}" for p in static.iterdir() if p.suffix in (".css", ".js"))
        for asset in (*own, "/static/vendor/plotly.min.js"):
            r = client.get(asset, headers={"accept-encoding": "gzip"})
            enc = r.headers.get("content-encoding") == "gzip"
            wire = len(gzip.compress(r.content, compresslevel=9)) if enc else len(r.content)
            assets.append((asset, wire, len(r.content)))
        spans = store.count_spans()

    print(f"\n{spans:,} spans in {args.db}; {args.loads} loads per page after a warm-up\n")
    head = f"{'page':38} {'status':>6} {'median ms':>10} {'p95 ms':>8} {'target':>7}  " \
           f"{'ok':4} {'sent KB':>8} {'html KB':>8}  url"  # fmt: skip
    print(head)
    print("-" * len(head))
    for label, url, status, med, p95, wire, raw in rows:
        ok = "PASS" if p95 <= TARGET_MS and status == 200 else "FAIL"
        print(f"{label:38} {status:>6} {med:>10.1f} {p95:>8.1f} {TARGET_MS:>7.0f}  {ok:4} "
              f"{wire / 1024:>8.1f} {raw / 1024:>8.1f}  {url}")  # fmt: skip
    print("\nstatic assets (a page loads app.* and its own; plotly only where it has a chart;")
    print("cached by version, plotly immutable for a year)")
    for asset, wire, raw in assets:
        print(f"  {asset:34} sent {wire / 1024:>8.1f} KB   uncompressed {raw / 1024:>8.1f} KB")
    every = sum(w for _, w, _ in assets)
    print(f"  all assets together: {every / 1024:,.0f} KB sent; a cached visit sends none")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
