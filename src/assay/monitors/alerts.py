"""Webhook delivery: one JSON POST per alert, retried with exponential backoff and jitter
on connection errors, 408/425/429 and 5xx (``Retry-After`` honoured), bounded attempts,
every attempt recorded in the store. Deliveries run as their own tasks; the alerts of one
monitor reach one URL in order."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx

from assay import __version__
from assay.monitors.values import DELIVERED, FAILED, PENDING, MonitorAlert
from assay.store import Store

log = logging.getLogger("assay.monitors")
#: Statuses worth retrying besides 5xx: the receiver asked for time or timed out.
RETRY_STATUSES = frozenset({408, 425, 429})


@dataclass(frozen=True)
class RetryPolicy:
    """How hard a webhook is tried."""

    #: Attempts in all, the first included.
    max_attempts: int = 6
    #: Backoff before retry n is ``base * 2**(n-1)`` capped at ``max_delay``, with jitter:
    #: a uniform draw from its upper half.
    base_delay: float = 2.0
    max_delay: float = 120.0
    #: A longer ``Retry-After`` is cut to this.
    max_retry_after: float = 900.0
    #: Seconds per attempt (connect, send, answer).
    timeout: float = 10.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        cap = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return cap / 2 + rng.uniform(0, cap / 2)

    @property
    def lease_seconds(self) -> float:
        """How long a delivery may go between store updates before others may take it."""
        return max(self.max_delay, self.max_retry_after) + self.timeout + 60


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: delay-seconds or an HTTP date; None when absent or bad."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class AlertSender:
    """Delivers alerts as background tasks of the running event loop."""

    def __init__(
        self,
        store: Store,
        owner: str,
        policy: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        seed: int | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock or (lambda: datetime.now(UTC))
        self.owner = owner
        self.policy = policy or RetryPolicy()
        self._transport = transport
        self._rng = random.Random(seed)
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # The last delivery per (project, monitor, url): the next one waits for it.
        self._last: dict[tuple[str, str, str], asyncio.Task[None]] = {}
        self._closed = False
        self._closing = asyncio.Event()

    def submit(self, alerts: Sequence[MonitorAlert]) -> None:
        """Start delivering alerts this sender holds the lease of; returns at once."""
        if self._closed:
            return
        for alert in alerts:
            key = (alert.project, alert.monitor, alert.url)
            before = self._last.get(key)
            task = asyncio.get_running_loop().create_task(
                self._deliver_after(before, alert), name=f"assay-alert-{alert.alert_id}"
            )
            self._last[key] = task
            self._tasks.add(task)
            task.add_done_callback(self._done(key))

    def _done(self, key: tuple[str, str, str]) -> Callable[[asyncio.Task[None]], None]:
        def forget(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            if self._last.get(key) is task:
                del self._last[key]
            if not task.cancelled() and task.exception() is not None:
                log.error("alert delivery failed", exc_info=task.exception())

        return forget

    @property
    def busy(self) -> int:
        """Deliveries in progress (or waiting for a retry)."""
        return len(self._tasks)

    async def wait(self) -> None:
        """Until every submitted delivery has finished (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, grace: float | None = None) -> None:
        """Stop: a POST under way may finish (up to ``grace`` seconds, default one attempt's
        timeout); deliveries waiting for a retry stop at once. Unfinished alerts stay
        pending in the store, released so the next scheduler delivers them."""
        self._closed = True
        self._closing.set()
        grace = self.policy.timeout + 1 if grace is None else grace
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self._transport,
                follow_redirects=False,
                headers={"User-Agent": f"assay/{__version__}"},
            )
        return self._client

    async def _deliver_after(self, before: asyncio.Task[None] | None, alert: MonitorAlert) -> None:
        if before is not None:
            try:
                await asyncio.shield(before)
            except asyncio.CancelledError:
                self._release(alert)
                raise
            except Exception:  # the earlier delivery's failure is recorded; go on
                pass
        await self.deliver(alert)

    def _release(self, alert: MonitorAlert) -> None:
        # Shutting down: release the alert so the next scheduler retries it at once.
        with contextlib.suppress(Exception):
            self.store.save_alert_attempt(alert, self.owner, None)

    async def _save(self, alert: MonitorAlert, lease_for: float | None) -> bool:
        until = None
        if lease_for is not None:
            until = self.clock() + timedelta(seconds=lease_for)
        return await asyncio.to_thread(self.store.save_alert_attempt, alert, self.owner, until)

    async def deliver(self, alert: MonitorAlert) -> MonitorAlert:
        """POST one alert until it is delivered, refused, or out of attempts; every attempt
        is recorded. Returns the alert as last recorded."""
        policy = self.policy
        try:
            while True:
                attempt = alert.attempts + 1
                status: int | None = None
                retry_after: float | None = None
                try:
                    response = await self._http().post(
                        alert.url,
                        json=dict(alert.payload),
                        headers={
                            "X-Assay-Alert-Id": alert.alert_id,
                            "X-Assay-Event": "monitor.state_changed",
                        },
                        timeout=policy.timeout,
                    )
                except httpx.HTTPError as exc:
                    retryable, error = True, f"{type(exc).__name__}: {exc}".strip()
                else:
                    status = response.status_code
                    if 200 <= status < 300:
                        alert = dataclasses.replace(
                            alert,
                            status=DELIVERED,
                            attempts=attempt,
                            last_status=status,
                            error=None,
                            delivered_at=self.clock(),
                            next_attempt_at=None,
                        )
                        await self._save(alert, None)
                        return alert
                    retryable = status >= 500 or status in RETRY_STATUSES
                    retry_after = parse_retry_after(response.headers.get("retry-after"))
                    # Status only: the receiver's body is not shown to API callers, who could
                    # otherwise read internal services through a webhook URL.
                    error = f"HTTP {status} {response.reason_phrase}".strip()
                    if 300 <= status < 400:
                        error += " (redirects are not followed: use the final URL)"
                if not retryable or attempt >= policy.max_attempts:
                    alert = dataclasses.replace(
                        alert,
                        status=FAILED,
                        attempts=attempt,
                        last_status=status,
                        error=error,
                        next_attempt_at=None,
                    )
                    await self._save(alert, None)
                    log.warning(
                        "webhook %s for monitor %s gave up after %d attempt(s): %s",
                        alert.url, alert.monitor, attempt, error,
                    )  # fmt: skip
                    return alert
                delay = policy.delay(attempt, retry_after, self._rng)
                alert = dataclasses.replace(
                    alert,
                    status=PENDING,
                    attempts=attempt,
                    last_status=status,
                    error=error,
                    next_attempt_at=self.clock() + timedelta(seconds=delay),
                )
                if not await self._save(alert, delay + policy.lease_seconds):
                    return alert  # another scheduler took it over
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), delay)
                if self._closing.is_set():
                    self._release(alert)
                    return alert
        except asyncio.CancelledError:
            self._release(alert)
            raise
