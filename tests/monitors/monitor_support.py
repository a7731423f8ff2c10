"""Helpers for monitor tests: a webhook receiver on 127.0.0.1 that records every POST and
answers from a script, traffic whose outputs get longer on one day, and a fake clock."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from assay.monitors.alerts import RetryPolicy
from assay.store.duckdb import DuckDBStore
from drift_support import traffic

#: Fast retries for tests (real backoff starts at seconds).
FAST = RetryPolicy(max_attempts=4, base_delay=0.05, max_delay=0.2, timeout=5.0)
#: Five days of traffic; on DAYS[3] answers are twice as long.
DAYS = [datetime(2026, 3, 1, tzinfo=UTC) + timedelta(days=i) for i in range(5)]
LONG_DAY = 3


def fill_days(store: DuckDBStore, n_traces: int = 40) -> None:
    """``n_traces`` traces per day (two LLM calls each) on each of :data:`DAYS`."""
    for i, day in enumerate(DAYS):
        store.insert_spans(traffic(n_traces, day, seed=i, longer_outputs=i == LONG_DAY))


def end_of(day: int) -> datetime:
    """A minute before the end of ``DAYS[day]``: a '1d' window then covers that day."""
    return DAYS[day] + timedelta(days=1, minutes=-1)


class Clock:
    """A settable clock for schedulers (``clock()`` returns the time it was set to)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Post:
    """One request the receiver got."""

    at: float
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Receiver:
    """Records webhook POSTs; answers each with the next scripted (status, headers), then
    200 once the script is used up."""

    server: ThreadingHTTPServer
    posts: list[Post] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    def answer(self, *replies: tuple[int, dict[str, str]]) -> None:
        """Queue the next replies."""
        with self.lock:
            self.script.extend(replies)

    def bodies(self) -> list[Any]:
        with self.lock:
            return [p.body for p in self.posts]

    def wait_for(self, n: int, timeout: float = 10.0) -> list[Post]:
        """Until ``n`` posts arrived (or fail)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.posts) >= n:
                    return list(self.posts)
            time.sleep(0.01)
        raise AssertionError(f"expected {n} webhook posts, got {len(self.posts)}")


def receiver() -> Iterator[Receiver]:
    """A running receiver (use as a fixture body)."""
    holder: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            rec = holder[0]
            length = int(self.headers.get("content-length", "0"))
            body = json.loads(self.rfile.read(length) or b"null")
            with rec.lock:
                rec.posts.append(
                    Post(time.monotonic(), self.path, {k.lower(): v for k, v in
                                                       self.headers.items()}, body)
                )  # fmt: skip
                status, headers = rec.script.pop(0) if rec.script else (200, {})
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder.append(Receiver(server))
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def states(posts: Sequence[Post]) -> list[tuple[str | None, str]]:
    """(previous_state, state) of each post."""
    return [(p.body["previous_state"], p.body["state"]) for p in posts]
