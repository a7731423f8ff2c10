"""Retention: each project may keep its spans for a number of days; the server deletes
older ones on a schedule (both store backends, the same rule).

Deleting is idempotent, so several replicas applying it at once do no harm; each pass
deletes per project whatever started before ``now - days``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from assay.store import Store

log = logging.getLogger("assay.retention")

#: Shortest and longest retention periods accepted (days).
MIN_DAYS, MAX_DAYS = 1 / 24, 100 * 365


class RetentionError(ValueError):
    """A retention period assay cannot use; the message says which and how to fix it."""


def check_days(days: float | None) -> float | None:
    """``days`` if it is a usable retention period (None: keep forever)."""
    if days is None:
        return None
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise RetentionError(
            f"retention of {days:g} days is out of range; give between 1 hour (0.042) and "
            f"{MAX_DAYS:,} days, or turn retention off"
        )
    return float(days)


def apply_retention(store: Store, now: datetime | None = None) -> dict[str, int]:
    """Delete every project's spans older than its retention; spans deleted per project."""
    now = now or datetime.now(UTC)
    deleted = {}
    for project, days in sorted(store.retention().items()):
        n = store.delete_spans_before(project, now - timedelta(days=days))
        if n:
            log.info("retention: deleted %d spans of %s older than %g days", n, project, days)
        deleted[project] = n
    return deleted


class RetentionTask:
    """Applies retention every ``interval`` seconds inside ``assay serve``."""

    def __init__(
        self,
        store: Store,
        interval: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.interval = interval
        self.clock = clock
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the schedule (the first pass after one interval)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name="assay-retention"
            )

    async def stop(self) -> None:
        """Stop the schedule; a pass under way is cancelled (it resumes next time)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await asyncio.to_thread(apply_retention, self.store, self.clock())
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed pass (database busy) must not end the schedule
                log.exception("retention pass failed; trying again next interval")
