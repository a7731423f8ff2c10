"""The scheduler: due monitors run once (leases), results form a time series, alerts go out
once per change of state, and stopping is clean."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest
from monitor_support import DAYS, FAST, Clock, Receiver, end_of, fill_days, receiver, states
from numpy.typing import NDArray

from assay.embedders import EmbedderError, HashingEmbedder
from assay.monitors.definition import new_monitor
from assay.monitors.runner import run_monitor
from assay.monitors.scheduler import Scheduler
from assay.monitors.values import MonitorBusyError, MonitorCheck
from assay.server import create_app
from assay.settings import Settings
from assay.store.duckdb import DuckDBStore
from drift_support import traffic

pytestmark = pytest.mark.all_backends

LENGTHS = MonitorCheck(window="1d", reference="3d..2d", features=("output_length",))


@pytest.fixture
def hook() -> Iterator[Receiver]:
    yield from receiver()


def state_of(store: DuckDBStore, name: str) -> str | None:
    monitor = store.get_monitor("default", name)
    assert monitor is not None
    return monitor.state


def add(store: DuckDBStore, name: str, check: MonitorCheck, webhooks: Sequence[str] = (),
        now: datetime = DAYS[0], every: str = "1h") -> None:  # fmt: skip
    assert store.create_monitor(
        new_monitor(store, "default", name, check, every, webhooks, now=now)
    )


async def test_state_changes_alert_once_each_and_results_form_a_time_series(
    store: DuckDBStore, hook: Receiver
) -> None:
    fill_days(store)
    add(store, "lengths", LENGTHS, [hook.url])
    clock = Clock(end_of(2))
    scheduler = Scheduler(store, clock=clock, policy=FAST)
    # Day 2 vs day 0: no drift. Day 3 (long answers) vs day 1: drift. Day 4 vs day 2: ok.
    # A second run on day 4, when it is next due, finds the same: no alert.
    expected = [(2, 0, "ok"), (3, 0, "drift"), (4, 0, "ok"), (4, 1, "ok")]
    for day, minutes, state in expected:
        clock.now = end_of(day) + timedelta(minutes=minutes)
        assert await scheduler.tick() == 1
        assert state_of(store, "lengths") == state
    await scheduler.alerts.wait()
    await scheduler.stop()

    # The first "ok" is not news; ok -> drift and drift -> ok are, once each.
    assert states(hook.posts) == [("ok", "drift"), ("drift", "ok")]
    alert = hook.posts[0]
    body = alert.body
    assert body["monitor"] == "lengths" and body["project"] == "default"
    assert body["drifted"][0]["feature"] == "output_length"
    ks = next(t for t in body["drifted"][0]["tests"] if t["test"] == "ks")
    assert ks["effect_name"] == "KS D" and ks["effect"] > 0.3 and ks["p_adjusted"] < 1e-3
    assert "DRIFT in output_length" in body["text"]
    assert alert.headers["x-assay-alert-id"] == body["alert_id"]

    results = store.list_monitor_results("default", "lengths")
    assert [r.state for r in reversed(results)] == [s for _, _, s in expected]
    drift = results[2]
    assert drift.result_id == body["result_id"] and drift.drifted == ("output_length",)
    assert (drift.window_start, drift.window_end) == (DAYS[3] - timedelta(minutes=1), end_of(3))
    assert drift.reference == "3d..2d" and drift.reference_end == DAYS[2] - timedelta(minutes=1)
    tests = {t["test"]: t for t in drift.features[0]["tests"]}
    assert tests["ks"]["drifted"] is True and tests["ks"]["statistic"] > 0.3
    assert tests["wasserstein"]["p_adjusted"] is None
    full = store.get_monitor_result("default", "lengths", drift.result_id)
    assert full is not None and full.report is not None and full.report["verdict"] == "drift"
    alerts = store.list_monitor_alerts("default", "lengths")
    assert {(a.status, a.attempts, a.last_status) for a in alerts} == {("delivered", 1, 200)}


async def test_a_run_moves_the_schedule_and_skips_missed_slots(store: DuckDBStore) -> None:
    fill_days(store)
    add(store, "lengths", LENGTHS, now=DAYS[0])
    clock = Clock(DAYS[0] + timedelta(hours=5, minutes=30))
    scheduler = Scheduler(store, clock=clock)
    assert await scheduler.tick() == 1
    # Created at 00:00, every 1h, run late at 05:30: next at 06:00, not five catch-up runs.
    assert store.get_monitor("default", "lengths").next_run_at == (  # type: ignore[union-attr]
        DAYS[0] + timedelta(hours=6)
    )
    assert await scheduler.tick() == 0
    clock.now = DAYS[0] + timedelta(hours=6)
    assert await scheduler.tick() == 1
    await scheduler.stop()


class BlockingEmbedder:
    """Hashing vectors, but each call waits until released (a slow embedding model)."""

    name = "blocking:64"
    dim: int | None = 64

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self._inner = HashingEmbedder(dim=64)

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.entered.set()
        assert self.release.wait(10)
        return self._inner.embed(texts)


EMBEDDINGS = MonitorCheck(window="1d", reference="3d..2d", features=("output_embedding",),
                          examples=0)  # fmt: skip


async def test_two_schedulers_on_one_store_never_run_a_monitor_twice(store: DuckDBStore) -> None:
    fill_days(store)
    add(store, "slow", EMBEDDINGS)
    clock = Clock(end_of(2))
    embedder = BlockingEmbedder()
    a = Scheduler(store, clock=clock, embedder=embedder)
    b = Scheduler(store, clock=clock, embedder=embedder)
    running = asyncio.create_task(a.tick())
    assert await asyncio.to_thread(embedder.entered.wait, 10)
    # a holds the lease while its check runs: b finds nothing to claim, and a manual run
    # is refused rather than run alongside.
    assert await b.tick() == 0
    with pytest.raises(MonitorBusyError, match="running now"):
        await b.run_now("default", "slow")
    assert store.get_monitor("default", "slow").running(clock.now)  # type: ignore[union-attr]
    embedder.release.set()
    assert await running == 1
    assert await b.tick() == 0  # done, and not due for an hour
    assert len(store.list_monitor_results("default", "slow")) == 1
    await a.stop()
    await b.stop()


async def test_a_monitor_deleted_while_it_runs_leaves_no_history(store: DuckDBStore) -> None:
    fill_days(store)
    add(store, "slow", EMBEDDINGS)
    embedder = BlockingEmbedder()
    scheduler = Scheduler(store, clock=Clock(end_of(2)), embedder=embedder)
    running = asyncio.create_task(scheduler.tick())
    assert await asyncio.to_thread(embedder.entered.wait, 10)
    assert store.delete_monitor("default", "slow")
    embedder.release.set()
    assert await running == 1
    add(store, "slow", EMBEDDINGS)
    assert store.list_monitor_results("default", "slow") == []
    await scheduler.stop()


async def test_an_expired_lease_is_taken_over_and_the_late_run_changes_nothing(
    store: DuckDBStore,
) -> None:
    fill_days(store)
    add(store, "lengths", LENGTHS)
    now = end_of(3)
    crashed = store.claim_monitor("crashed", now, now + timedelta(minutes=2))
    assert crashed is not None
    soon = now + timedelta(minutes=1)
    assert store.claim_monitor("other", soon, soon + timedelta(minutes=2)) is None
    later = now + timedelta(minutes=5)
    scheduler = Scheduler(store, clock=Clock(later), owner="other")
    assert await scheduler.tick() == 1
    assert state_of(store, "lengths") == "drift"
    # The first owner's result arrives after all: stored, but the state is not its to move.
    result, alerts, owned = await asyncio.to_thread(run_monitor, store, crashed, "crashed", now=now)
    assert not owned and alerts == []
    assert len(store.list_monitor_results("default", "lengths")) == 2
    monitor = store.get_monitor("default", "lengths")
    assert monitor is not None and monitor.last_result_id != result.result_id
    await scheduler.stop()


class FailingEmbedder:
    name = "failing:8"
    dim: int | None = 8

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        raise EmbedderError("embedding endpoint answered 503 three times")


async def test_a_failing_check_is_an_error_state_with_one_alert(
    store: DuckDBStore, hook: Receiver
) -> None:
    fill_days(store)
    add(store, "embed", EMBEDDINGS, [hook.url])
    clock = Clock(end_of(2))
    scheduler = Scheduler(store, clock=clock, embedder=FailingEmbedder(), policy=FAST)
    for minutes in (0, 70):
        clock.now = end_of(2) + timedelta(minutes=minutes)
        assert await scheduler.tick() == 1
    await scheduler.alerts.wait()
    await scheduler.stop()
    assert states(hook.posts) == [(None, "error")]
    assert "503 three times" in hook.posts[0].body["error"]
    results = store.list_monitor_results("default", "embed")
    assert [r.state for r in results] == ["error", "error"]
    assert results[0].verdict is None and results[0].window_end == clock.now


def _recent(store: DuckDBStore) -> None:
    now = datetime.now(UTC)
    store.insert_spans(traffic(40, now - timedelta(days=2) + timedelta(hours=1), seed=1))
    store.insert_spans(traffic(40, now - timedelta(days=1) + timedelta(hours=1), seed=2))


async def test_the_servers_scheduler_runs_due_monitors_on_its_tick(
    store: DuckDBStore, db_path: str
) -> None:
    _recent(store)
    check = MonitorCheck(window="1d", reference="2d..1d", features=("output_length",))
    add(store, "recent", check, now=datetime.now(UTC))
    settings = Settings(db=db_path, decode_workers=0, monitor_tick_seconds=0.05)
    app = create_app(settings, store=store)
    async with app.router.lifespan_context(app):
        for _ in range(200):
            if store.list_monitor_results("default", "recent"):
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # more ticks: the monitor is not due again for an hour
    (result,) = store.list_monitor_results("default", "recent")
    assert result.trigger == "schedule" and result.state == "ok"
    monitor = store.get_monitor("default", "recent")
    assert monitor is not None and not monitor.running(datetime.now(UTC))
    assert monitor.next_run_at is not None and monitor.next_run_at > datetime.now(UTC)


async def test_monitors_disabled_in_settings_do_not_run(store: DuckDBStore, db_path: str) -> None:
    _recent(store)
    add(store, "recent", LENGTHS, now=datetime.now(UTC))
    settings = Settings.from_env(
        {"ASSAY_MONITORS": "false", "ASSAY_MONITOR_TICK_SECONDS": "0.02"}, db=db_path
    )
    app = create_app(settings.with_(decode_workers=0), store=store)
    async with app.router.lifespan_context(app):
        await asyncio.sleep(0.2)
        assert not app.state.monitors.running
        # Manual runs still work through the API.
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:7800"
        ) as client:
            resp = await client.post("/api/v1/monitors/recent/run")
            assert resp.status_code == 200, resp.text
    assert [r.trigger for r in store.list_monitor_results("default", "recent")] == ["manual"]


async def test_stop_waits_for_a_running_check_and_records_it(store: DuckDBStore) -> None:
    fill_days(store)
    add(store, "slow", EMBEDDINGS)
    embedder = BlockingEmbedder()
    scheduler = Scheduler(store, clock=Clock(end_of(2)), embedder=embedder, tick_seconds=0.01)
    scheduler.start()
    assert await asyncio.to_thread(embedder.entered.wait, 10)
    threading.Timer(0.2, embedder.release.set).start()
    await scheduler.stop()
    assert not scheduler.running
    (result,) = store.list_monitor_results("default", "slow")
    assert result.state == "ok"
    monitor = store.get_monitor("default", "slow")
    assert monitor is not None and monitor.lease_owner is None
