"""A real ``assay serve`` process: acknowledged spans survive SIGKILL, and the CLI and
the OpenTelemetry SDK exporter work over a real socket."""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import psutil
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from assay import synthetic

PROTOBUF = {"content-type": "application/x-protobuf"}
T0 = 1_763_000_000 * 10**9


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assay_command() -> list[str]:
    """The CLI through this interpreter, so the tested install is the one that runs."""
    return [sys.executable, "-m", "assay"]


def clean_env(**assay: str) -> dict[str, str]:
    """This environment without any ASSAY_* variable, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSAY_")}
    env.update({f"ASSAY_{k.upper()}": v for k, v in assay.items()})
    return env


class Server:
    """One ``assay serve`` process this test started (and only ever signals by its pid)."""

    def __init__(self, db: str, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = clean_env(db=db, host="127.0.0.1", port=str(self.port), log_level="warning")
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*assay_command(), "serve"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.pid = self.proc.pid

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"assay serve exited early:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"assay serve not ready after {timeout}s:\n{self.log.read_text()}")

    def sigkill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        """Graceful stop (SIGTERM): the server drains its writer and closes the database."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        # uvicorn re-raises the signal after a graceful shutdown, so -SIGTERM is clean too.
        assert code in (0, -signal.SIGTERM), (code, self.log.read_text())


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Started servers are registered here so none outlives its test."""
    started: list[Server] = []
    yield started
    for s in started:
        if s.proc.poll() is None:
            os.kill(s.pid, signal.SIGKILL)
            s.proc.wait(timeout=30)


def start(servers: list[Server], db: str, log: Path) -> Server:
    server = Server(db, log)
    servers.append(server)
    server.wait_ready()
    return server


class Sender(threading.Thread):
    """Sends batches of fresh traces until told to stop; remembers what got a 200."""

    def __init__(self, url: str, seed: int, stop: threading.Event) -> None:
        super().__init__(name=f"sender-{seed}", daemon=True)
        self.url = url
        self.rng = random.Random(seed)
        self.stop_event = stop
        self.acked: set[tuple[str, str]] = set()
        self.acked_requests = 0
        self.failed_requests = 0
        self.other_statuses: list[int] = []

    def run(self) -> None:
        t = T0
        with httpx.Client(timeout=10.0) as client:
            while not self.stop_event.is_set():
                spans = []
                for _ in range(25):  # 100 spans per request
                    spans.extend(synthetic.trace_spans(self.rng, t, error_rate=0))
                    t += 10**6
                keys = {(sp.trace_id.hex(), sp.span_id.hex()) for sp in spans}
                body = synthetic.request(spans).SerializeToString()
                try:
                    r = client.post(f"{self.url}/v1/traces", content=body, headers=PROTOBUF)
                except httpx.HTTPError:
                    self.failed_requests += 1
                    time.sleep(0.01)
                    continue
                if r.status_code == 200:
                    self.acked |= keys
                    self.acked_requests += 1
                else:
                    self.other_statuses.append(r.status_code)


def stored_keys(db: str) -> set[tuple[str, str]]:
    con = duckdb.connect(db, read_only=True)
    try:
        rows = con.execute("SELECT trace_id, span_id FROM spans WHERE project = 'default'")
        return {(r[0], r[1]) for r in rows.fetchall()}
    finally:
        con.close()


def test_acknowledged_spans_survive_sigkill(tmp_path: Path, servers: list[Server]) -> None:
    db = str(tmp_path / "durable.duckdb")
    log = tmp_path / "serve.log"
    first = start(servers, db, log)

    stop = threading.Event()
    senders = [Sender(first.url, seed, stop) for seed in (1, 2)]
    for s in senders:
        s.start()
    time.sleep(2.0)
    assert all(s.is_alive() for s in senders)
    workers = psutil.Process(first.pid).children(recursive=True)
    assert workers, "the server decodes in worker processes"
    first.sigkill()  # while both threads are sending
    time.sleep(0.3)  # let the senders see the dead socket
    stop.set()
    for s in senders:
        s.join(timeout=30)
        assert not s.is_alive()

    acked = set().union(*(s.acked for s in senders))
    assert all(s.acked_requests >= 3 for s in senders), [s.acked_requests for s in senders]
    assert not any(s.other_statuses for s in senders), [s.other_statuses for s in senders]
    assert first.proc.returncode == -signal.SIGKILL
    # Its decode workers do not outlive it as orphans.
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, [p.pid for p in alive]

    # The same database, a new server: it starts, and every acknowledged span is there.
    second = start(servers, db, log)
    by_trace: dict[str, set[str]] = {}
    for tid, sid in acked:
        by_trace.setdefault(tid, set()).add(sid)
    sample = random.Random(0).sample(sorted(by_trace), min(25, len(by_trace)))
    with httpx.Client(base_url=second.url, timeout=10.0) as client:
        for tid in sample:
            r = client.get(f"/api/v1/traces/{tid}")
            assert r.status_code == 200, (tid, r.text)
            assert {s["span_id"] for s in r.json()["spans"]} == by_trace[tid]
        # Still accepting writes after recovery.
        body = synthetic.request(synthetic.trace_spans(random.Random(3), T0)).SerializeToString()
        assert client.post("/v1/traces", content=body, headers=PROTOBUF).status_code == 200
    second.stop()

    stored = stored_keys(db)
    missing = acked - stored
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged spans were lost"
    # Unacknowledged requests may or may not have landed, but nothing beyond what was sent.
    assert len(stored) <= len(acked) + sum(s.failed_requests for s in senders) * 100 + 4


def test_real_socket_post_and_cli(tmp_path: Path, servers: list[Server]) -> None:
    db = str(tmp_path / "smoke.duckdb")
    server = start(servers, db, tmp_path / "serve.log")
    spans = synthetic.trace_spans(random.Random(42), T0, error_rate=0)
    tid = spans[0].trace_id.hex()
    body = synthetic.request(spans).SerializeToString()

    with httpx.Client(base_url=server.url, timeout=10.0) as client:
        r = client.post(
            "/v1/traces",
            content=gzip.compress(body),
            headers={**PROTOBUF, "content-encoding": "gzip"},
        )
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/x-protobuf"
        assert not ExportTraceServiceResponse.FromString(r.content).HasField("partial_success")
        bad = client.post("/v1/traces", content=b"\x07nope", headers=PROTOBUF)
        assert bad.status_code == 400
        assert client.get("/healthz").json()["written_spans"] == 4

    # The CLI finds the server through ASSAY_URL; ASSAY_DB points nowhere, so an answer
    # can only have come from the server.
    env = clean_env(url=server.url, db=str(tmp_path / "absent.duckdb"))
    listed = subprocess.run(
        [*assay_command(), "traces", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert listed.returncode == 0, listed.stderr
    page = json.loads(listed.stdout)
    assert [t["trace_id"] for t in page["items"]] == [tid]
    assert page["items"][0]["span_count"] == 4

    shown = subprocess.run(
        [*assay_command(), "traces", "show", tid, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert shown.returncode == 0, shown.stderr
    trace = json.loads(shown.stdout)
    assert {s["span_id"] for s in trace["spans"]} == {sp.span_id.hex() for sp in spans}
    assert not os.path.exists(tmp_path / "absent.duckdb")

    server.stop()
    assert len(stored_keys(db)) == 4


def test_otel_sdk_exporter_against_real_server(tmp_path: Path, servers: list[Server]) -> None:
    """The stock OTLP/HTTP exporter (protobuf, gzip) is accepted as-is."""
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    db = str(tmp_path / "sdk.duckdb")
    server = start(servers, db, tmp_path / "serve.log")
    provider = TracerProvider(resource=Resource.create({"service.name": "sdk-test"}))
    exporter = OTLPSpanExporter(endpoint=f"{server.url}/v1/traces", compression=Compression.Gzip)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("assay-tests")
    with tracer.start_as_current_span("agent run") as root:
        with tracer.start_as_current_span("chat gpt-4o-mini") as llm:
            llm.set_attribute("gen_ai.operation.name", "chat")
            llm.set_attribute("gen_ai.request.model", "gpt-4o-mini")
            llm.set_attribute("gen_ai.usage.input_tokens", 12)
            llm.set_attribute("gen_ai.usage.output_tokens", 3)
        tid = format(root.get_span_context().trace_id, "032x")
    provider.shutdown()

    r = httpx.get(f"{server.url}/api/v1/traces/{tid}", timeout=10.0)
    assert r.status_code == 200, r.text
    spans = {s["name"]: s for s in r.json()["spans"]}
    assert set(spans) == {"agent run", "chat gpt-4o-mini"}
    chat = spans["chat gpt-4o-mini"]
    assert chat["service"] == "sdk-test"
    assert (chat["kind"], chat["model"], chat["input_tokens"], chat["output_tokens"]) == (
        "llm",
        "gpt-4o-mini",
        12,
        3,
    )
    assert chat["parent_span_id"] == spans["agent run"]["span_id"]
    server.stop()


def test_sigterm_closes_the_database(tmp_path: Path, servers: list[Server]) -> None:
    db = str(tmp_path / "term.duckdb")
    server = start(servers, db, tmp_path / "serve.log")
    body = synthetic.request(synthetic.trace_spans(random.Random(5), T0)).SerializeToString()
    r = httpx.post(f"{server.url}/v1/traces", content=body, headers=PROTOBUF, timeout=10.0)
    assert r.status_code == 200
    server.stop()
    assert not Path(db + ".wal").exists()  # DuckDBStore.close() checkpoints and removes it
    assert len(stored_keys(db)) == 4
