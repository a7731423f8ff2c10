"""Helpers for online-evaluation tests: spans to insert and a scorer that records its calls,
costs what it is told and fails when it is told to."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from assay.model import Case, Output, Score, ScorerSpec, Span
from assay.online import OnlineRule, new_rule, parse_filters
from assay.online_worker import OnlineWorker
from assay.store.duckdb import DuckDBStore

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def ids(i: int, salt: str = "") -> tuple[str, str]:
    """A deterministic (trace_id, span_id) for span number ``i``."""
    h = hashlib.sha256(f"{salt}{i}".encode()).hexdigest()
    return h[:32], h[32:48]


def span(i: int, *, route: str = "support", kind: str = "llm", salt: str = "",
         attributes: dict[str, Any] | None = None) -> Span:  # fmt: skip
    """An LLM call of the support bot asking question ``i``."""
    trace_id, span_id = ids(i, salt)
    start = T0 + timedelta(seconds=i)
    return Span(
        project="default",
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=None,
        service="support-bot",
        name="ChatCompletion",
        kind=kind,
        otel_kind="client",
        start_time=start,
        end_time=start + timedelta(milliseconds=800),
        duration_ms=800.0,
        status="ok",
        model="gpt-4o-mini",
        input_text=f"question {i}",
        output_text=f"answer {i}",
        input_messages=[{"role": "user", "content": f"question {i}"}],
        output_messages=[{"role": "assistant", "content": f"answer {i}"}],
        route=route,
        attributes=attributes or {},
    )


def spans(n: int, start: int = 0, **kw: Any) -> list[Span]:
    """Spans ``start`` .. ``start + n - 1``."""
    return [span(i, **kw) for i in range(start, start + n)]


class RecordingScorer:
    """Scores 1.0 when the answer mentions an even number; records every call.

    ``cost`` is reported in the score's metadata; ``fail`` maps a case id to how many
    calls raise before one succeeds (``error`` is the exception raised); ``delay`` is
    seconds per call.
    """

    def __init__(
        self,
        cost: float | None = None,
        delay: float = 0.0,
        error: Callable[[], Exception] = lambda: RuntimeError("judge down"),
    ) -> None:
        self.spec = ScorerSpec("recording")
        self.cost = cost
        self.delay = delay
        self.error = error
        self.fail: dict[str, int] = {}
        self.calls: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0

    async def score(self, case: Case, output: Output) -> Score:
        self.calls[case.id] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.fail.get(case.id, 0) > 0:
                self.fail[case.id] -= 1
                raise self.error()
        finally:
            self.in_flight -= 1
        even = int(output.text.split()[-1]) % 2 == 0
        return Score(
            1.0 if even else 0.0,
            passed=even,
            label="pass" if even else "fail",
            explanation=f"because {output.text}",
            metadata={"cost": self.cost, "raw": "{...}"},
        )


def add_rule(store: DuckDBStore, name: str = "helpful", *, filters: list[str] | None = None,
             since: datetime | None = None, **kw: Any) -> OnlineRule:  # fmt: skip
    """Store a rule scored by the 'recording' scorer (built by the test's factory)."""
    rule = new_rule(
        "default",
        name,
        ScorerSpec("recording"),
        filters=parse_filters(filters or []),
        since=since or datetime(2000, 1, 1, tzinfo=UTC),
        **kw,
    )
    assert store.create_online_rule(rule)
    return rule


def worker(store: DuckDBStore, scorer: RecordingScorer, **kw: Any) -> OnlineWorker:
    """A fast-polling worker whose rules all use ``scorer``."""
    options: dict[str, Any] = {
        "poll_seconds": 0.02,
        "flush_seconds": 0.02,
        "retry_base_seconds": 0.001,
        "retry_max_seconds": 0.005,
        "grace_seconds": 2.0,
    }
    options.update(kw)
    return OnlineWorker(store, scorer_factory=lambda spec: scorer, **options)


async def run_until_idle(w: OnlineWorker, timeout: float = 10.0) -> None:
    """Claim the rules and wait until everything readable is scored and stored."""
    await w.tick()
    assert await w.wait_idle(timeout), "the worker did not catch up"
