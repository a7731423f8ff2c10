"""Webhook delivery: retried with backoff on 5xx, 429 (after Retry-After) and connection
errors, not on other 4xx; every attempt recorded; order kept; orphans taken over."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from monitor_support import FAST, Receiver, receiver

from assay.monitors.alerts import AlertSender, RetryPolicy, parse_retry_after
from assay.monitors.definition import new_monitor
from assay.monitors.scheduler import Scheduler
from assay.monitors.values import MonitorAlert, MonitorCheck, MonitorResult
from assay.store.duckdb import DuckDBStore

pytestmark = pytest.mark.all_backends

NOW = datetime(2026, 3, 5, tzinfo=UTC)


@pytest.fixture
def hook() -> Iterator[Receiver]:
    yield from receiver()


def queue_alerts(
    store: DuckDBStore, urls: list[str], owner: str = "me", lease: timedelta = timedelta(hours=1)
) -> list[MonitorAlert]:
    """Alerts as a run that changed state ok -> drift leaves them: pending, leased to owner."""
    check = MonitorCheck(window="1d", reference="3d..2d", features=("output_length",))
    monitor = new_monitor(store, "default", "m", check, "1h", urls, now=NOW)
    if store.get_monitor("default", "m") is None:
        assert store.create_monitor(monitor)
    claimed = store.claim_monitor(owner, NOW, NOW + timedelta(minutes=2), "default", "m")
    assert claimed is not None
    result = MonitorResult(
        result_id=f"r{len(store.list_monitor_results('default', 'm'))}",
        project="default", monitor="m", ran_at=NOW, trigger="schedule", verdict="drift",
        state="drift", previous_state="ok", window_start=None, window_end=None,
        reference="3d..2d", reference_start=None, reference_end=None, drifted=("x",),
        features=(), error=None, elapsed_ms=1.0,
    )  # fmt: skip
    alerts = [
        MonitorAlert(
            alert_id=f"{result.result_id}-{i}",
            project="default",
            monitor="m",
            result_id=result.result_id,
            url=url,
            state="drift",
            previous_state="ok",
            payload={"result_id": result.result_id, "state": "drift"},
            created_at=NOW,
        )
        for i, url in enumerate(urls)
    ]
    assert store.record_monitor_run(result, owner, NOW + timedelta(hours=1), alerts, NOW + lease)
    return alerts


def stored(store: DuckDBStore) -> MonitorAlert:
    (alert,) = store.list_monitor_alerts("default", "m")
    return alert


async def test_a_500_is_retried_until_delivered(store: DuckDBStore, hook: Receiver) -> None:
    (alert,) = queue_alerts(store, [hook.url])
    hook.answer((500, {}), (503, {}))
    sender = AlertSender(store, "me", FAST, clock=lambda: NOW)
    final = await sender.deliver(alert)
    assert len(hook.posts) == 3 and final.status == "delivered"
    assert hook.bodies() == [{"result_id": "r0", "state": "drift"}] * 3
    assert {p.headers["x-assay-alert-id"] for p in hook.posts} == {alert.alert_id}
    row = stored(store)
    assert (row.status, row.attempts, row.last_status, row.error) == ("delivered", 3, 200, None)
    assert row.delivered_at == NOW
    # Backoff grows: the second wait is at least as long as half its cap (equal jitter).
    gaps = [b.at - a.at for a, b in zip(hook.posts, hook.posts[1:], strict=False)]
    assert gaps[0] >= 0.025 and gaps[1] >= 0.05
    await sender.close()


async def test_a_429_waits_for_retry_after(store: DuckDBStore, hook: Receiver) -> None:
    (alert,) = queue_alerts(store, [hook.url])
    hook.answer((429, {"Retry-After": "1"}))
    sender = AlertSender(store, "me", FAST, clock=lambda: NOW)
    final = await sender.deliver(alert)
    assert final.status == "delivered" and final.attempts == 2
    first, second = hook.posts
    assert second.at - first.at >= 0.95  # FAST backoff alone would wait under 0.05 s
    await sender.close()


async def test_other_4xx_fail_at_once_and_attempts_are_bounded(
    store: DuckDBStore, hook: Receiver
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    refused, gone = queue_alerts(store, [hook.url, dead])
    hook.answer((404, {}))
    sender = AlertSender(store, "me", FAST, clock=lambda: NOW)
    a = await sender.deliver(refused)
    b = await sender.deliver(gone)
    assert (a.status, a.attempts, a.last_status, a.error) == (
        "failed",
        1,
        404,
        "HTTP 404 Not Found",
    )
    assert (b.status, b.attempts, b.last_status) == ("failed", FAST.max_attempts, None)
    assert b.error is not None and "ConnectError" in b.error
    rows = {r.url: r for r in store.list_monitor_alerts("default", "m")}
    assert rows[dead].status == "failed" and rows[dead].attempts == FAST.max_attempts
    assert len(hook.posts) == 1
    await sender.close()


async def test_alerts_to_one_url_arrive_in_order_despite_retries(
    store: DuckDBStore, hook: Receiver
) -> None:
    (first,) = queue_alerts(store, [hook.url])
    (second,) = queue_alerts(store, [hook.url])
    hook.answer((500, {}))
    sender = AlertSender(store, "me", FAST, clock=lambda: NOW)
    sender.submit([first, second])
    await sender.wait()
    assert [b["result_id"] for b in hook.bodies()] == ["r0", "r0", "r1"]
    await sender.close()


async def test_an_orphaned_alert_is_delivered_by_the_next_scheduler(
    store: DuckDBStore, hook: Receiver
) -> None:
    # A server queued an alert and stopped before sending it; its lease ran out.
    queue_alerts(store, [hook.url], owner="gone", lease=timedelta(minutes=10))
    early = Scheduler(store, clock=lambda: NOW + timedelta(minutes=5), policy=FAST)
    await early.tick()
    await early.alerts.wait()
    assert hook.posts == []  # still leased to its owner
    later = Scheduler(store, clock=lambda: NOW + timedelta(minutes=11), policy=FAST)
    await later.tick()
    await later.alerts.wait()
    assert len(hook.posts) == 1 and stored(store).status == "delivered"
    await early.stop()
    await later.stop()


async def test_closing_releases_an_alert_waiting_for_a_retry(
    store: DuckDBStore, hook: Receiver
) -> None:
    (alert,) = queue_alerts(store, [hook.url])
    hook.answer((503, {"Retry-After": "600"}))
    sender = AlertSender(store, "me", FAST, clock=lambda: NOW)
    sender.submit([alert])
    await asyncio.to_thread(hook.wait_for, 1)
    await sender.close()
    row = stored(store)
    assert (row.status, row.attempts, row.last_status) == ("pending", 1, 503)
    assert row.next_attempt_at == NOW + timedelta(seconds=600)
    # Released: another scheduler may take it once the retry is due.
    due = NOW + timedelta(seconds=601)
    assert [a.alert_id for a in store.claim_alerts("next", due, due + timedelta(minutes=5))] == [
        alert.alert_id
    ]


def test_retry_after_and_backoff() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Thu, 05 Mar 2026 00:00:30 GMT", NOW) == 30.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0, max_retry_after=60.0)
    rng = random.Random(0)
    for attempt, cap in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delays = [policy.delay(attempt, None, rng) for _ in range(200)]
        assert cap / 2 <= min(delays) and max(delays) <= cap
        assert max(delays) - min(delays) > cap / 4  # jittered, not fixed
    assert policy.delay(1, 30.0, rng) == 30.0 and policy.delay(1, 3600.0, rng) == 60.0
