"""Requests- and tokens-per-minute limits for LLM calls, shared by concurrent calls.

Used by :class:`assay.llm.ChatClient`; re-exported from :mod:`assay.llm`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any


class _Gate:
    """Generic cell rate algorithm: ``rate`` units per second, bursts of ``burst`` units.

    Reservations are taken in call order, so waiting calls are served first come first
    served, and a cost above the burst waits until the bucket is full, then goes into debt.
    """

    def __init__(self, per_minute: float, clock: Callable[[], float]) -> None:
        self.interval = 60.0 / per_minute  # seconds per unit
        self.burst = max(1.0, per_minute / 60.0)  # one second's worth
        self.clock = clock
        self.tat = clock()  # theoretical arrival time of the next unit

    def reserve(self, cost: float) -> float:
        now = self.clock()
        start = max(self.tat, now)
        self.tat = start + cost * self.interval
        tolerance = max(self.burst, cost) * self.interval
        return max(0.0, self.tat - tolerance - now)

    def adjust(self, delta: float) -> None:
        self.tat += delta * self.interval


class RateLimiter:
    """Requests-per-minute and tokens-per-minute limits shared by concurrent calls.

    Calls are spread evenly (bursts of at most one second's worth); a call's tokens are
    estimated before it is sent and corrected with the usage the server reports.
    """

    def __init__(
        self,
        rpm: float | None = None,
        tpm: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._requests = _Gate(rpm, clock) if rpm else None
        self._tokens = _Gate(tpm, clock) if tpm else None

    async def acquire(self, tokens: int = 0) -> None:
        """Wait until one request of about ``tokens`` tokens may be sent."""
        wait = 0.0
        if self._requests is not None:
            wait = self._requests.reserve(1)
        if self._tokens is not None and tokens > 0:
            wait = max(wait, self._tokens.reserve(tokens))
        if wait > 0:
            await asyncio.sleep(wait)

    def correct(self, estimated: int, actual: int) -> None:
        """Replace a call's estimated tokens by the ``actual`` count the server reported."""
        if self._tokens is not None:
            self._tokens.adjust(actual - estimated)


def estimate_tokens(messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]) -> int:
    """A rough token count for rate limiting: ~4 characters a token, plus the output cap."""
    chars = len(json.dumps(list(messages), ensure_ascii=False, default=str))
    cap = params.get("max_completion_tokens", params.get("max_tokens"))
    return chars // 4 + (int(cap) if isinstance(cap, int) else 0)
