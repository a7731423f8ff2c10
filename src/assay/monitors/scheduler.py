"""The monitor scheduler: an asyncio task in the server that wakes every tick, claims due
monitors through the store (a lease, so schedulers sharing a database never run one twice),
runs each check in a thread while renewing the lease, records the result and hands the
alerts of a change of state to the :class:`AlertSender`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from assay.embedders import Embedder
from assay.monitors.alerts import AlertSender, RetryPolicy
from assay.monitors.definition import next_run
from assay.monitors.runner import run_monitor
from assay.monitors.values import (
    MANUAL,
    SCHEDULE,
    Monitor,
    MonitorAlert,
    MonitorBusyError,
    MonitorNotFoundError,
    MonitorResult,
)
from assay.settings import Settings
from assay.store import Store

log = logging.getLogger("assay.monitors")
Clock = Callable[[], datetime]
_Outcome = tuple[MonitorResult, list[MonitorAlert], bool]
#: Most monitors one tick runs before it lets the next tick (and the alert sweep) come.
MAX_RUNS_PER_TICK = 100


def _utcnow() -> datetime:
    return datetime.now(UTC)


def new_owner() -> str:
    """A lease owner id unique to this scheduler: host, process and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Scheduler:
    """Runs monitors: on their schedules once :meth:`start` ed, and on demand
    (:meth:`run_now`). Stop it with :meth:`stop` before closing the store."""

    def __init__(
        self,
        store: Store,
        *,
        tick_seconds: float = 30.0,
        lease_seconds: float = 120.0,
        default_embedder: str | None = None,
        embedder: Embedder | None = None,
        policy: RetryPolicy | None = None,
        owner: str | None = None,
        clock: Clock | None = None,
        grace_seconds: float = 30.0,
    ) -> None:
        if tick_seconds <= 0 or lease_seconds <= 0:
            raise ValueError("tick_seconds and lease_seconds must be positive")
        self.store = store
        self.tick_seconds = tick_seconds
        self.lease_seconds = lease_seconds
        self.default_embedder = default_embedder
        self.embedder = embedder
        self.owner = owner or new_owner()
        self.clock = clock or _utcnow
        self.grace_seconds = grace_seconds
        self.alerts = AlertSender(store, self.owner, policy, clock=self.clock)
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Future[_Outcome]] = set()
        self._stopping = False

    @classmethod
    def from_settings(cls, store: Store, settings: Settings) -> Scheduler:
        """A scheduler with the server's tick and default embedder."""
        return cls(
            store, tick_seconds=settings.monitor_tick_seconds, default_embedder=settings.embedder
        )

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the loop on the running event loop; its first tick comes after one
        interval (a short-lived in-process app runs no checks)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name="assay-monitor-scheduler"
            )

    async def stop(self) -> None:
        """Cancel the loop; wait up to ``grace_seconds`` for a check already running in a
        thread (it records its result); let webhook POSTs under way finish."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._inflight:
            log.info("waiting for %d running monitor check(s) to finish", len(self._inflight))
            await asyncio.wait(list(self._inflight), timeout=self.grace_seconds)
            await asyncio.sleep(0)  # let their done-callbacks queue the alerts
        await self.alerts.close()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick_seconds)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad tick (database busy, a bug) must not end the loop
                log.exception("monitor scheduler tick failed; trying again next tick")

    async def tick(self) -> int:
        """Run every due monitor this scheduler can claim, one at a time, and take over
        alerts nobody is delivering. Returns how many monitors ran."""
        ran = 0
        while not self._stopping and ran < MAX_RUNS_PER_TICK:
            now = self.clock()
            monitor = await asyncio.to_thread(
                self.store.claim_monitor,
                self.owner,
                now,
                now + timedelta(seconds=self.lease_seconds),
            )
            if monitor is None:
                break
            scheduled = next_run(monitor.next_run_at, monitor.every_seconds, now)
            await self._run(monitor, now, SCHEDULE, scheduled)
            ran += 1
        if not self._stopping:
            now = self.clock()
            lease = timedelta(seconds=self.alerts.policy.lease_seconds)
            orphans = await asyncio.to_thread(self.store.claim_alerts, self.owner, now, now + lease)
            self.alerts.submit(orphans)
        return ran

    async def run_now(self, project: str, name: str) -> MonitorResult:
        """Run one monitor now (enabled or not) without moving its schedule; raises
        :class:`MonitorNotFoundError`, or :class:`MonitorBusyError` while it runs."""
        now = self.clock()
        monitor = await asyncio.to_thread(
            self.store.claim_monitor,
            self.owner,
            now,
            now + timedelta(seconds=self.lease_seconds),
            project,
            name,
        )
        if monitor is None:
            if await asyncio.to_thread(self.store.get_monitor, project, name) is None:
                raise MonitorNotFoundError(f"no monitor {name!r} in project {project!r}")
            raise MonitorBusyError(
                f"monitor {name!r} is running now; see its result with "
                f"`assay monitors history {name}` when it finishes"
            )
        return await self._run(monitor, now, MANUAL, None)

    async def _run(
        self, monitor: Monitor, now: datetime, trigger: str, next_run_at: datetime | None
    ) -> MonitorResult:
        """The check in a thread; the lease renewed while it runs."""
        alert_lease = now + timedelta(seconds=self.alerts.policy.lease_seconds)

        def work() -> _Outcome:
            return run_monitor(
                self.store,
                monitor,
                self.owner,
                now=now,
                trigger=trigger,
                next_run_at=next_run_at,
                default_embedder=self.default_embedder,
                embedder=self.embedder,
                alert_lease_until=alert_lease,
            )

        future: asyncio.Future[_Outcome] = asyncio.ensure_future(asyncio.to_thread(work))
        self._inflight.add(future)
        future.add_done_callback(self._finished)
        renew_every = self.lease_seconds / 3
        while True:
            done, _ = await asyncio.wait({future}, timeout=renew_every)
            if done:
                break
            until = self.clock() + timedelta(seconds=self.lease_seconds)
            held = await asyncio.to_thread(
                self.store.renew_monitor_lease, monitor.project, monitor.name, self.owner, until
            )
            if not held:
                log.warning("lost the lease on monitor %s while its check ran", monitor.name)
        result, _, owned = future.result()
        if not owned:
            log.warning(
                "monitor %s was deleted, or taken over by another scheduler, while this check "
                "ran: the run did not change the monitor's state",
                monitor.name,
            )
        return result

    def _finished(self, future: asyncio.Future[_Outcome]) -> None:
        # A callback, not code after the await: it runs even when the loop was cancelled
        # while the thread finished the check, so its alerts still go out.
        self._inflight.discard(future)
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            log.error("monitor run could not be recorded", exc_info=exc)
            return
        _, alerts, _ = future.result()
        self.alerts.submit(alerts)
