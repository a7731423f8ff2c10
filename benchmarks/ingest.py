"""Ingest benchmark: OTLP/HTTP protobuf into a real ``assay serve`` process.

What it measures, per run (each run uses a fresh temporary database and a free port):

* **ready**: seconds from spawning ``assay serve`` to the first 200 from ``/healthz``;
* **RSS idle**: resident memory of the server (and any children) once it is ready;
* **throughput**: N synthetic spans (:func:`assay.synthetic.batches`, a root chain span
  and three children per trace, ~500-character texts) are encoded as protobuf *before*
  timing, then sent from ``--threads`` client threads (one ``httpx.Client`` each). The
  clock starts at the first send and stops once ``GET /api/v1/stats?all_kinds=true``
  reports all N spans, i.e. everything is committed and queryable. A 200 from the
  server already means "committed"; the stats poll proves it;
* **latency**: wall time of every successful POST (p50/p95); 503 answers are counted and
  retried after their ``Retry-After``;
* **RSS peak**: maximum server RSS sampled every 100 ms during the load;
* **CPU**: cores the server kept busy during the load, and cores used by *other*
  processes (neither the server nor this client) — on a shared machine that is noise.

The server is stopped with SIGTERM (SIGKILL only if it does not exit in 30 s).

Run::

    . .venv/bin/activate
    python benchmarks/ingest.py                      # 200,000 spans, batches of 1,000
    python benchmarks/ingest.py --runs 3             # three fresh servers, prints the median
    python benchmarks/ingest.py --spans 50000 --threads 4 --batch 500

Targets (printed next to the figures): >= 20,000 spans/s persisted, ready <= 2 s,
RSS <= 200 MB idle and <= 500 MB under load. The script exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from assay import synthetic

PROTOBUF = "application/x-protobuf"
MB = 1024 * 1024

TARGET_SPANS_PER_S = 20_000.0
TARGET_READY_S = 2.0
TARGET_RSS_IDLE_MB = 200.0
TARGET_RSS_PEAK_MB = 500.0


@dataclass
class RunResult:
    """Figures of one run."""

    spans: int
    batches: int
    wall_s: float
    spans_per_s: float
    send_s: float
    p50_ms: float
    p95_ms: float
    n503: int
    ready_s: float
    rss_idle_mb: float
    rss_peak_mb: float
    db_mb: float
    server_cores: float
    client_cores: float
    other_cores: float


@dataclass
class _LoadState:
    latencies_ms: list[float] = field(default_factory=list)
    n503: int = 0
    errors: list[str] = field(default_factory=list)
    next_index: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def assay_command() -> list[str]:
    """``assay serve`` through this interpreter, so the measured install is this one."""
    return [sys.executable, "-m", "assay", "serve"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def tree_rss(proc: psutil.Process) -> int:
    """Resident bytes of a process and all its descendants."""
    total = 0
    with contextlib.suppress(psutil.Error):
        total += proc.memory_info().rss
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
    return total


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy (not idle or waiting for I/O)."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def tree_cpu_seconds(proc: psutil.Process) -> float:
    """User + system CPU seconds of a process and its descendants."""
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def encode_batches(n_spans: int, batch: int, seed: int) -> tuple[list[bytes], int]:
    """Synthetic requests as protobuf bytes, and how many spans they hold."""
    bodies: list[bytes] = []
    spans = 0
    for req in synthetic.batches(n_spans, batch, seed):
        spans += sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
        bodies.append(req.SerializeToString())
    return bodies, spans


class Server:
    """``assay serve`` as a child process on its own database and port."""

    def __init__(self, workdir: Path, store: str = "duckdb") -> None:
        # A fresh store per run: a DuckDB file or chDB directory in the run's workdir, or
        # a new database on a ClickHouse server (store = its clickhouse:// URL).
        if store == "duckdb":
            self.db: Path | str = workdir / "bench.duckdb"
        elif store == "chdb":
            self.db = f"chdb://{workdir / 'chdb'}"
        else:
            self.db = store.rstrip("/") + f"/assay_bench_{os.getpid()}_{time.time_ns()}"
        self.log_path = workdir / "server.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ps: psutil.Process | None = None

    def start(self, timeout: float = 60.0) -> float:
        """Spawn the server; return seconds until ``/healthz`` answered 200."""
        env = dict(os.environ)
        env.update(
            ASSAY_DB=str(self.db),
            ASSAY_PORT=str(self.port),
            ASSAY_HOST="127.0.0.1",
            ASSAY_LOG_LEVEL="warning",
        )
        env.pop("ASSAY_PRICES", None)
        log = self.log_path.open("wb")
        started = time.perf_counter()
        self.proc = subprocess.Popen(assay_command(), env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.ps = psutil.Process(self.proc.pid)
        with httpx.Client(base_url=self.url, timeout=1.0) as client:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"assay serve exited with {self.proc.returncode}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get("/healthz").status_code == 200:
                        return time.perf_counter() - started
                if time.perf_counter() - started > timeout:
                    raise RuntimeError(f"assay serve not ready after {timeout} s")
                time.sleep(0.01)

    def rss(self) -> int:
        """Current resident bytes of the server and its children."""
        return tree_rss(self.ps) if self.ps is not None else 0

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server's output."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM by PID and wait; SIGKILL only if it does not exit within 30 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            print(f"  server {self.proc.pid} ignored SIGTERM; sending SIGKILL", file=sys.stderr)
            self.proc.kill()
            self.proc.wait(10)


class RssSampler(threading.Thread):
    """Samples a callable returning bytes every ``interval`` seconds; keeps the max."""

    def __init__(self, sample: Callable[[], int], interval: float = 0.1) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.sample = sample
        self.interval = interval
        self.peak = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, self.sample())
            self._stop_event.wait(self.interval)

    def finish(self) -> int:
        """Stop sampling (one last sample) and return the peak in bytes."""
        self._stop_event.set()
        self.join()
        self.peak = max(self.peak, self.sample())
        return self.peak


def _sender(url: str, bodies: Sequence[bytes], state: _LoadState) -> None:
    headers = {"Content-Type": PROTOBUF}
    with httpx.Client(base_url=url, timeout=httpx.Timeout(120.0)) as client:
        while True:
            with state.lock:
                i = state.next_index
                if i >= len(bodies) or state.errors:
                    return
                state.next_index += 1
            body = bodies[i]
            while True:
                t0 = time.perf_counter()
                try:
                    resp = client.post("/v1/traces", content=body, headers=headers)
                except httpx.HTTPError as exc:
                    with state.lock:
                        state.errors.append(f"batch {i}: {exc!r}")
                    return
                elapsed_ms = (time.perf_counter() - t0) * 1e3
                if resp.status_code == 503:
                    with state.lock:
                        state.n503 += 1
                    time.sleep(float(resp.headers.get("Retry-After", "1")))
                    continue
                if resp.status_code != 200:
                    with state.lock:
                        state.errors.append(f"batch {i}: HTTP {resp.status_code} {resp.text[:200]}")
                    return
                with state.lock:
                    state.latencies_ms.append(elapsed_ms)
                break


def _stored_spans(client: httpx.Client) -> int:
    resp = client.get("/api/v1/stats", params={"all_kinds": "true"})
    resp.raise_for_status()
    return sum(int(row["calls"]) for row in resp.json()["rows"])


def run_once(
    bodies: Sequence[bytes], n_spans: int, threads: int, idle_wait: float, store: str = "duckdb"
) -> RunResult:
    """One fresh server, one full load; the server is stopped before returning."""
    with tempfile.TemporaryDirectory(prefix="assay-bench-") as tmp:
        server = Server(Path(tmp), store)
        try:
            ready_s = server.start()
            time.sleep(idle_wait)  # let start-up allocations settle before "idle"
            rss_idle = server.rss()
            sampler = RssSampler(server.rss)
            sampler.start()
            state = _LoadState()
            workers = [
                threading.Thread(target=_sender, args=(server.url, bodies, state), daemon=True)
                for _ in range(threads)
            ]
            assert server.ps is not None
            me = psutil.Process()
            cpu0 = (busy_cpu_seconds(), tree_cpu_seconds(server.ps), tree_cpu_seconds(me))
            t_start = time.perf_counter()
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            t_sent = time.perf_counter()
            if state.errors:
                raise RuntimeError(
                    "ingest failed: " + "; ".join(state.errors[:3]) + "\n" + server.log_tail()
                )
            with httpx.Client(base_url=server.url, timeout=60.0) as client:
                deadline = time.perf_counter() + 120
                while (stored := _stored_spans(client)) < n_spans:
                    if time.perf_counter() > deadline:
                        raise RuntimeError(f"only {stored} of {n_spans} spans became queryable")
                    time.sleep(0.02)
            t_done = time.perf_counter()
            cpu1 = (busy_cpu_seconds(), tree_cpu_seconds(server.ps), tree_cpu_seconds(me))
            rss_peak = sampler.finish()
            if stored != n_spans:
                raise RuntimeError(f"stats report {stored} spans, expected {n_spans}")
        finally:
            server.stop()
        db_bytes = sum(p.stat().st_size for p in Path(tmp).glob("bench.duckdb*"))
    wall = t_done - t_start
    busy, server_cpu, own_cpu = (b - a for a, b in zip(cpu0, cpu1, strict=True))
    client_cpu = max(0.0, own_cpu - server_cpu)  # the server is this process's child
    return RunResult(
        spans=n_spans,
        batches=len(bodies),
        wall_s=wall,
        spans_per_s=n_spans / wall,
        send_s=t_sent - t_start,
        p50_ms=percentile(state.latencies_ms, 50),
        p95_ms=percentile(state.latencies_ms, 95),
        n503=state.n503,
        ready_s=ready_s,
        rss_idle_mb=rss_idle / MB,
        rss_peak_mb=rss_peak / MB,
        db_mb=db_bytes / MB,
        server_cores=server_cpu / wall,
        client_cores=client_cpu / wall,
        other_cores=max(0.0, busy - server_cpu - client_cpu) / wall,
    )


# (label, attribute, format, target text, pass check or None)
_ROWS: list[tuple[str, str, str, str, Callable[[float], bool] | None]] = [
    ("spans", "spans", "{:,.0f}", "", None),
    ("batches (requests)", "batches", "{:,.0f}", "", None),
    ("wall s (first send -> all queryable)", "wall_s", "{:.2f}", "", None),
    ("  of which sending s", "send_s", "{:.2f}", "", None),
    (
        "spans/s persisted",
        "spans_per_s",
        "{:,.0f}",
        f">= {TARGET_SPANS_PER_S:,.0f}",
        lambda v: v >= TARGET_SPANS_PER_S,
    ),
    ("request latency p50 ms", "p50_ms", "{:.1f}", "", None),
    ("request latency p95 ms", "p95_ms", "{:.1f}", "", None),
    ("503 responses (retried)", "n503", "{:.0f}", "", None),
    ("ready s", "ready_s", "{:.2f}", f"<= {TARGET_READY_S:g}", lambda v: v <= TARGET_READY_S),
    (
        "RSS idle MB",
        "rss_idle_mb",
        "{:.0f}",
        f"<= {TARGET_RSS_IDLE_MB:g}",
        lambda v: v <= TARGET_RSS_IDLE_MB,
    ),
    (
        "RSS peak MB (under load)",
        "rss_peak_mb",
        "{:.0f}",
        f"<= {TARGET_RSS_PEAK_MB:g}",
        lambda v: v <= TARGET_RSS_PEAK_MB,
    ),
    ("database MB", "db_mb", "{:.0f}", "", None),
    ("server CPU (cores busy) during load", "server_cores", "{:.2f}", "", None),
    ("benchmark client CPU (cores)", "client_cores", "{:.2f}", "", None),
    ("other processes' CPU (noise, cores)", "other_cores", "{:.2f}", "", None),
]


def print_table(results: Sequence[RunResult]) -> None:
    """Metrics as rows, one column per run, then the median, target and verdict."""
    headers = ["metric"] + [f"run {i + 1}" for i in range(len(results))]
    if len(results) > 1:
        headers.append("median")
    headers += ["target", "pass"]
    rows: list[list[str]] = []
    for label, attr, fmt, target, check in _ROWS:
        values = [float(getattr(r, attr)) for r in results]
        median = statistics.median(values)
        row = [label] + [fmt.format(v) for v in values]
        if len(results) > 1:
            row.append(fmt.format(median))
        row += [target, "" if check is None else ("PASS" if check(median) else "FAIL")]
        rows.append(row)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print(line(headers))
    print(line(["-" * w for w in widths]))
    for row in rows:
        print(line(row))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=200_000, help="spans per run")
    parser.add_argument("--batch", type=int, default=1_000, help="spans per OTLP request")
    parser.add_argument("--threads", type=int, default=2, help="concurrent client threads")
    parser.add_argument("--runs", type=int, default=1, help="fresh-database runs")
    parser.add_argument("--seed", type=int, default=0, help="synthetic data seed")
    parser.add_argument(
        "--idle-wait", type=float, default=1.0, help="seconds after ready before idle RSS"
    )
    parser.add_argument(
        "--store",
        default="duckdb",
        help="duckdb (default), chdb, or a clickhouse://user:pass@host:8123 server URL",
    )
    args = parser.parse_args(argv)

    print(f"server command: {' '.join(assay_command())}")
    t0 = time.perf_counter()
    bodies, n_spans = encode_batches(args.spans, args.batch, args.seed)
    size_mb = sum(len(b) for b in bodies) / MB
    print(
        f"pre-encoded {n_spans:,} spans in {len(bodies):,} requests "
        f"({size_mb:,.0f} MB protobuf) in {time.perf_counter() - t0:.1f} s (not timed)"
    )
    results: list[RunResult] = []
    for i in range(args.runs):
        r = run_once(bodies, n_spans, args.threads, args.idle_wait, args.store)
        print(
            f"run {i + 1}/{args.runs}: {r.spans_per_s:,.0f} spans/s, wall {r.wall_s:.2f} s, "
            f"p50 {r.p50_ms:.0f} ms, p95 {r.p95_ms:.0f} ms, 503s {r.n503}, "
            f"ready {r.ready_s:.2f} s, RSS {r.rss_idle_mb:.0f}/{r.rss_peak_mb:.0f} MB, "
            f"server {r.server_cores:.2f} cores, others {r.other_cores:.2f} cores",
            flush=True,
        )
        results.append(r)
    print()
    print(
        f"assay ingest benchmark ({args.store}): {args.threads} client threads, "
        f"{args.batch} spans/request, "
        f"OTLP/HTTP protobuf, {os.cpu_count()} CPUs"
    )
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
