"""The online-evaluation worker: an asyncio task in ``assay serve`` that leases each
enabled rule, reads the spans committed after its watermark, scores the sampled ones with
bounded concurrency, retries failures with backoff, stops at the rule's budget, and stores
the scores as feedback while moving the watermark (see :mod:`assay.online`, docs/online.md).

Per rule, a scan reads span keys after the cursor; sampled keys become items in a bounded
queue (at most ``queue_limit`` per rule, default 4 × concurrency); the watermark moves past
a scan's spans only once all of its items are finished and stored, so a crash or a lost
lease rescores at most what was under way (and a rescore stores nothing twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from assay.model import Score, ScorerSpec, Span
from assay.online import (
    Mark,
    OnlineRule,
    ProgressUpdate,
    feedback_id,
    is_sampled,
    period_key,
    score_feedback,
    span_case,
    span_output,
)
from assay.store import Store

if TYPE_CHECKING:
    from assay.scorers.base import Scorer
    from assay.settings import Settings

log = logging.getLogger("assay.online")

Clock = Callable[[], datetime]
ScorerFactory = Callable[[ScorerSpec], "Scorer"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def new_owner() -> str:
    """A lease owner id unique to this worker: host, process and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _build(spec: ScorerSpec) -> Scorer:
    from assay.scorers.registry import build

    return build(spec)


def _permanent(exc: BaseException) -> bool:
    """Failures another attempt cannot fix: a misconfigured scorer, a refused request."""
    from assay.llm import LLMError
    from assay.scorers.base import ScorerError

    if isinstance(exc, ScorerError):
        return True
    return isinstance(exc, LLMError) and not exc.retryable


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:2000]


@dataclass
class _Chunk:
    """Spans read by one scan: the watermark moves to ``end`` once all are finished."""

    end: Mark
    processed: int
    sampled: int
    remaining: int = 0


@dataclass
class _Outcome:
    span: Span
    score: Score | None = None
    error: str | None = None
    skipped: bool = False
    attempts: int = 0
    cost: float | None = None
    at: datetime = field(default_factory=_utcnow)


class OnlineWorker:
    """Scores the sampled spans of every enabled rule it can lease. :meth:`start` it on the
    running loop (the server does), :meth:`stop` it before closing the store."""

    def __init__(
        self,
        store: Store,
        *,
        poll_seconds: float = 1.0,
        lease_seconds: float = 60.0,
        owner: str | None = None,
        clock: Clock | None = None,
        scorer_factory: ScorerFactory | None = None,
        retry_base_seconds: float = 1.0,
        retry_max_seconds: float = 30.0,
        max_rules: int = 100,
        scan_limit: int = 5000,
        queue_limit: int | None = None,
        flush_seconds: float = 0.5,
        grace_seconds: float = 5.0,
    ) -> None:
        if poll_seconds <= 0 or lease_seconds <= 0:
            raise ValueError("poll_seconds and lease_seconds must be positive")
        self.store = store
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self.owner = owner or new_owner()
        self.clock = clock or _utcnow
        self.scorer_factory = scorer_factory or _build
        self.retry_base_seconds = retry_base_seconds
        self.retry_max_seconds = retry_max_seconds
        self.max_rules = max_rules
        self.scan_limit = scan_limit
        self.queue_limit = queue_limit
        self.flush_seconds = flush_seconds
        self.grace_seconds = grace_seconds
        self._runs: dict[tuple[str, str], _RuleRun] = {}
        self._cooldown: dict[tuple[str, str], float] = {}
        self._task: asyncio.Task[None] | None = None
        self.stopping = False

    @classmethod
    def from_settings(cls, store: Store, settings: Settings) -> OnlineWorker:
        """A worker polling at the server's ``ASSAY_ONLINE_POLL_SECONDS``."""
        return cls(store, poll_seconds=settings.online_poll_seconds)

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start claiming rules every poll interval (the first claim after one interval)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name="assay-online-worker"
            )

    async def stop(self) -> None:
        """Stop reading new spans; give scores under way ``grace_seconds`` to finish, store
        what finished and release the leases (the rest is rescored by the next owner)."""
        self.stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        tasks = [r.task for r in self._runs.values() if r.task is not None]
        for run in self._runs.values():
            run.wake()
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self.grace_seconds)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=self.grace_seconds)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad tick (database busy, a bug) must not end the loop
                log.exception("online worker tick failed; trying again next poll")

    async def tick(self) -> int:
        """Lease every enabled rule nobody else holds and start scoring it; returns how many
        rules started."""
        started = 0
        mono = time.monotonic()
        self._cooldown = {k: t for k, t in self._cooldown.items() if t > mono}
        while not self.stopping and len(self._runs) < self.max_rules:
            now = self.clock()
            rule = await asyncio.to_thread(
                self.store.claim_online_rule,
                self.owner,
                now,
                now + timedelta(seconds=self.lease_seconds),
                [*self._runs, *self._cooldown],
            )
            if rule is None:
                break
            run = _RuleRun(self, rule)
            self._runs[(rule.project, rule.name)] = run
            run.task = asyncio.get_running_loop().create_task(
                run.run(), name=f"assay-online-{rule.name}"
            )
            started += 1
        return started

    def live(self, project: str, name: str) -> dict[str, Any] | None:
        """Queue depth and calls in flight of a rule this worker scores, else None."""
        run = self._runs.get((project, name))
        if run is None:
            return None
        return {"queue_depth": len(run.pending), "in_flight": run.in_flight}

    async def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every rule this worker runs has scored and stored all it has read and
        found no newer spans (for tests and benchmarks); False on timeout."""
        since = time.monotonic()
        deadline = since + timeout
        for run in self._runs.values():
            run.wake()
        while time.monotonic() < deadline:
            if all(r.is_idle(since) for r in self._runs.values()):
                return True
            await asyncio.sleep(0.01)
        return False

    def backoff(self, attempt: int) -> float:
        """Seconds before retry ``attempt`` (1-based): exponential with full jitter."""
        ceiling = min(self.retry_max_seconds, self.retry_base_seconds * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)

    def _finished(self, run: _RuleRun, cooldown: bool) -> None:
        key = (run.rule.project, run.rule.name)
        if self._runs.get(key) is run:
            del self._runs[key]
        if cooldown:
            self._cooldown[key] = time.monotonic() + max(60.0, self.poll_seconds)


class _RuleRun:
    """One leased rule: scan after the watermark, score with bounded concurrency, flush."""

    def __init__(self, worker: OnlineWorker, rule: OnlineRule) -> None:
        self.worker = worker
        self.store = worker.store
        self.rule = rule
        self.task: asyncio.Task[None] | None = None
        self.cursor = rule.progress.watermark
        self.limit = worker.queue_limit or max(100, 4 * rule.concurrency)
        self.chunks: deque[_Chunk] = deque()
        self.pending: set[asyncio.Task[None]] = set()
        self.done: list[_Outcome] = []
        self.sem = asyncio.Semaphore(rule.concurrency)
        self.in_flight = 0
        now = worker.clock()
        self.period = period_key(rule.budget_period, now)
        self.spend = rule.spend(now)
        self.priced_calls = 0
        self.priced_cost = 0.0
        self.caught_up_at = -math.inf
        self.flushing = False
        self.lost = False
        self.draining = False
        self._wake = asyncio.Event()
        self.scorer: Scorer | None = None
        # Spans committed up to here may have been scored by a previous holder (which may
        # still be finishing its last scan): ingested_at is wall-clock time, so no test clock.
        margin = 2 * min(worker.lease_seconds / 3, worker.poll_seconds) + 5.0
        self.check_until = datetime.now(UTC) + timedelta(seconds=margin)

    def wake(self) -> None:
        """Make the loop look at its state now (stop, a finished item)."""
        self._wake.set()

    async def run(self) -> None:
        rule = self.rule
        cooldown = False
        try:
            self.scorer = self.worker.scorer_factory(rule.scorer)
        except Exception as exc:
            log.error("online rule %s: cannot build its scorer: %s", rule.name, exc)
            cooldown = True
            await self._record(
                ProgressUpdate(at=self.worker.clock(), period=self.period, errors=0,
                               last_error=f"cannot build the scorer: {_describe(exc)}")
            )  # fmt: skip
        else:
            try:
                await self._loop()
            except asyncio.CancelledError:
                pass
            except Exception as exc:
                log.exception("online rule %s stopped", rule.name)
                cooldown = True
                self.done.append(_Outcome(_NO_SPAN, error=f"worker: {_describe(exc)}"))
        finally:
            for task in self.pending:
                task.cancel()
            if self.pending:
                await asyncio.wait(list(self.pending), timeout=1.0)
            with contextlib.suppress(Exception):
                await self._flush()
            if not self.lost:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(
                        self.store.release_online_rule, rule.project, rule.name, self.worker.owner
                    )
            closer = getattr(self.scorer, "aclose", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()
            self.worker._finished(self, cooldown)

    async def _loop(self) -> None:
        w = self.worker
        # Renewing also reads the rule back: a pause or an edit is seen within a poll.
        renew_every = min(w.lease_seconds / 3, w.poll_seconds)
        mono = time.monotonic()
        next_renew, next_scan, next_flush = mono + renew_every, mono, mono + w.flush_seconds
        while True:
            self._wake.clear()
            mono = time.monotonic()
            if w.stopping:
                self.draining = True
            if mono >= next_renew:
                await self._renew()
                if self.lost:
                    return
                next_renew = mono + renew_every
            # Read more only when the queue is at most half full, so that a backlog is read
            # in large scans rather than one per finished item.
            room = not self.draining and len(self.pending) <= self.limit // 2
            if room and mono >= next_scan:
                started = time.monotonic()
                if await self._scan():
                    next_scan = started
                else:
                    next_scan = started + w.poll_seconds
                    self.caught_up_at = started
            if self._unrecorded() and (
                time.monotonic() >= next_flush or len(self.done) >= 500 or not self.pending
            ):
                await self._flush()
                next_flush = time.monotonic() + w.flush_seconds
                if self.lost:
                    return
            if self.draining and not self.pending:
                return
            wake_at = next_renew
            if not self.draining and len(self.pending) <= self.limit // 2:
                wake_at = min(wake_at, next_scan)
            if self._unrecorded():
                wake_at = min(wake_at, next_flush)
            timeout = wake_at - time.monotonic()
            if timeout > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)

    def _unrecorded(self) -> bool:
        """Scores to store, or read spans (sampled or not) the watermark has not passed."""
        return bool(self.done) or bool(self.chunks and self.chunks[0].remaining == 0)

    def is_idle(self, since: float) -> bool:
        """Caught up by a scan that started after ``since``, with nothing left to store."""
        return (
            self.caught_up_at >= since
            and not self.pending
            and not self._unrecorded()
            and not self.flushing
        )

    async def _renew(self) -> None:
        w = self.worker
        until = w.clock() + timedelta(seconds=w.lease_seconds)
        rule = self.rule
        fresh = await asyncio.to_thread(
            self.store.renew_online_lease, rule.project, rule.name, w.owner, until
        )
        if fresh is None:
            log.warning("online rule %s: lease lost (deleted, or taken over)", rule.name)
            self.lost = True
        elif not fresh.enabled or fresh.updated_at != rule.updated_at:
            # Paused or changed: finish what is under way; the next tick runs the new rule.
            self.draining = True

    # -- reading --------------------------------------------------------------------

    async def _scan(self) -> bool:
        """Read the next spans after the cursor; returns whether more are waiting."""
        rule = self.rule
        room = self.limit - len(self.pending)
        # Enough keys to fill the queue at this rate, within the worker's scan limit.
        limit = min(self.worker.scan_limit, max(100, math.ceil(room / rule.sample_rate)))
        keys = await asyncio.to_thread(
            self.store.scan_online, rule.span_filter(), self.cursor, limit
        )
        if not keys:
            return False
        chosen: list[Mark] = []
        taken = 0
        for key in keys:
            taken += 1
            if is_sampled(key.trace_id, key.span_id, rule.sample_rate):
                chosen.append(key)
                if len(chosen) >= room:
                    break
        chunk = _Chunk(end=keys[taken - 1], processed=taken, sampled=len(chosen))
        self.cursor = chunk.end
        self.chunks.append(chunk)
        if chosen:
            await self._start(chunk, chosen)
        return taken < len(keys) or len(keys) >= limit

    async def _start(self, chunk: _Chunk, chosen: list[Mark]) -> None:
        rule = self.rule
        todo = chosen
        # Only spans committed before this run claimed the rule can have a score already
        # (from an earlier holder, or an earlier rule of this name): look those up, so a
        # rescore costs nothing and steady-state scans read no feedback.
        older = [feedback_id(rule.name, k.trace_id, k.span_id) for k in chosen
                 if k.at <= self.check_until]  # fmt: skip
        if older:
            stored = await asyncio.to_thread(
                self.store.list_feedback, rule.project, ids=older, limit=len(older)
            )
            have = {f.feedback_id for f in stored}
            todo = [k for k in chosen if feedback_id(rule.name, k.trace_id, k.span_id) not in have]
        if not todo:
            return
        if self._over_budget(extra=0):
            # Skip without reading the spans: nothing will be scored this period.
            now = self.worker.clock()
            self.done.extend(_Outcome(_key_span(rule, k), skipped=True, at=now) for k in todo)
            return
        spans = await asyncio.to_thread(self.store.online_spans, rule.project, todo)
        for span in spans:
            chunk.remaining += 1
            task = asyncio.get_running_loop().create_task(self._item(chunk, span))
            self.pending.add(task)
            task.add_done_callback(self._item_done)

    def _item_done(self, task: asyncio.Task[None]) -> None:
        self.pending.discard(task)
        self._wake.set()

    # -- scoring ----------------------------------------------------------------------

    def _current_spend(self) -> float:
        key = period_key(self.rule.budget_period, self.worker.clock())
        if key != self.period:
            self.period, self.spend = key, 0.0
        return self.spend

    def _over_budget(self, extra: int) -> bool:
        """Whether another call would pass the cap, counting the calls in flight at the
        mean cost seen so far (so concurrency does not overshoot it by much)."""
        budget = self.rule.budget_usd
        if budget is None:
            return False
        spend = self._current_spend()
        if spend >= budget * (1 - 1e-9):  # ten calls at $0.10 sum to 0.9999999999999999
            return True
        mean = self.priced_cost / self.priced_calls if self.priced_calls else 0.0
        return spend + (self.in_flight + extra) * mean > budget * (1 + 1e-9)

    async def _item(self, chunk: _Chunk, span: Span) -> None:
        # A cancelled item leaves its chunk unfinished: the watermark stays before it.
        try:
            outcome = await self._score(span)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            outcome = _Outcome(span, error=f"worker: {_describe(exc)}")
        chunk.remaining -= 1
        self.done.append(outcome)

    async def _score(self, span: Span) -> _Outcome:
        assert self.scorer is not None
        case, output = span_case(span), span_output(span)
        attempts = self.rule.retries + 1
        error: BaseException | None = None
        for attempt in range(1, attempts + 1):
            async with self.sem:
                if self._over_budget(extra=1):
                    return _Outcome(span, skipped=True, attempts=attempt - 1)
                self.in_flight += 1
                try:
                    score = await self.scorer.score(case, output)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    error = exc
                else:
                    cost = _cost(score)
                    if cost is not None:
                        self._current_spend()
                        self.spend += cost
                        self.priced_calls += 1
                        self.priced_cost += cost
                    return _Outcome(span, score=score, attempts=attempt, cost=cost)
                finally:
                    self.in_flight -= 1
            if _permanent(error) or attempt == attempts:
                break
            await asyncio.sleep(self.worker.backoff(attempt))
        assert error is not None
        return _Outcome(span, error=_describe(error), attempts=attempt)

    # -- storing ----------------------------------------------------------------------

    async def _flush(self) -> None:
        """Store finished scores and move the watermark past every finished chunk."""
        outcomes, self.done = self.done, []
        ready = 0
        for chunk in self.chunks:
            if chunk.remaining:
                break
            ready += 1
        complete = [self.chunks[i] for i in range(ready)]
        if not outcomes and not complete:
            return
        rule = self.rule
        now = self.worker.clock()
        feedback = tuple(
            score_feedback(rule, o.span, o.score, o.attempts, o.at)
            for o in outcomes
            if o.score is not None
        )
        errors = [o for o in outcomes if o.error is not None]
        scored = [o for o in outcomes if o.score is not None]
        update = ProgressUpdate(
            at=now,
            feedback=feedback,
            scored=len(scored),
            errors=sum(1 for o in errors if o.span is not _NO_SPAN),
            skipped=sum(1 for o in outcomes if o.skipped),
            unpriced=sum(1 for o in scored if o.cost is None),
            spend_usd=sum(o.cost or 0.0 for o in scored),
            period=period_key(rule.budget_period, now),
            watermark=complete[-1].end if complete else None,
            processed=sum(c.processed for c in complete),
            sampled=sum(c.sampled for c in complete),
            last_error=errors[-1].error if errors else None,
        )
        self.flushing = True
        try:
            held = await self._record(update)
        except Exception:
            self.done = outcomes + self.done  # try again at the next flush
            raise
        finally:
            self.flushing = False
        for _ in range(ready):
            self.chunks.popleft()
        if not held:
            self.lost = True

    async def _record(self, update: ProgressUpdate) -> bool:
        rule = self.rule
        return await asyncio.to_thread(
            self.store.record_online_progress, rule.project, rule.name, self.worker.owner, update
        )


def _cost(score: Score) -> float | None:
    raw = score.metadata.get("cost")
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        return None
    return max(0.0, float(raw))


#: Stands in for the span of an outcome that belongs to no span (a worker error).
_NO_SPAN = Span(
    project="",
    trace_id="",
    span_id="",
    parent_span_id=None,
    service=None,
    name="",
    kind="",
    otel_kind="",
    start_time=datetime.fromtimestamp(0, UTC),
    end_time=datetime.fromtimestamp(0, UTC),
    duration_ms=0.0,
    status="unset",
)


def _key_span(rule: OnlineRule, key: Mark) -> Span:
    return replace(_NO_SPAN, project=rule.project, trace_id=key.trace_id, span_id=key.span_id)


__all__ = ["OnlineWorker", "new_owner"]
