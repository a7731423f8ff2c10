"""Store contracts of monitors on every backend: leases (claim, renew, release, takeover,
racing replicas), run records, alert leases, edits and deletes."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from assay.monitors.definition import new_monitor
from assay.monitors.values import MonitorAlert, MonitorCheck, MonitorResult

NOW = datetime(2026, 3, 5, 12, tzinfo=UTC)
CHECK = MonitorCheck(window="1d", reference="3d..2d", features=("output_length",))
MIN = timedelta(minutes=1)


def add(store: Any, name: str = "m", now: datetime = NOW) -> None:
    assert store.create_monitor(new_monitor(store, "default", name, CHECK, "1h", now=now))


def result(
    rid: str, state: str | None = "ok", at: datetime = NOW, name: str = "m"
) -> MonitorResult:
    return MonitorResult(
        result_id=rid, project="default", monitor=name, ran_at=at, trigger="schedule",
        verdict="no drift", state=state, previous_state=None, window_start=at - 24 * 60 * MIN,
        window_end=at, reference="3d..2d", reference_start=None, reference_end=None,
        drifted=(), features=({"feature": "output_length"},), error=None, elapsed_ms=1.5,
        report={"features": []},
    )  # fmt: skip


def alert(aid: str, rid: str, url: str = "http://127.0.0.1:9/hook") -> MonitorAlert:
    return MonitorAlert(
        alert_id=aid, project="default", monitor="m", result_id=rid, url=url, state="drift",
        previous_state="ok", payload={"state": "drift"}, created_at=NOW,
    )  # fmt: skip


def test_a_held_monitor_is_claimed_by_nobody_else_until_its_lease_ends(store: Any) -> None:
    add(store)
    a = store.claim_monitor("a", NOW, NOW + 2 * MIN)
    assert a is not None and a.lease_owner == "a" and a.lease_expires_at == NOW + 2 * MIN
    assert store.claim_monitor("b", NOW + MIN, NOW + 3 * MIN) is None
    # A manual run is refused while it runs, even for the holder itself.
    assert store.claim_monitor("b", NOW + MIN, NOW + 3 * MIN, "default", "m") is None
    assert store.claim_monitor("a", NOW + MIN, NOW + 3 * MIN, "default", "m") is None
    assert not store.renew_monitor_lease("default", "m", "b", NOW + 5 * MIN)
    assert not store.release_monitor("default", "m", "b")
    assert store.renew_monitor_lease("default", "m", "a", NOW + 5 * MIN)
    assert store.claim_monitor("b", NOW + 4 * MIN, NOW + 6 * MIN) is None
    shown = store.get_monitor("default", "m")
    assert shown.lease_owner == "a" and shown.running(NOW + 4 * MIN)
    assert store.release_monitor("default", "m", "a")
    assert not store.release_monitor("default", "m", "a")
    assert store.get_monitor("default", "m").lease_owner is None
    b = store.claim_monitor("b", NOW + 4 * MIN, NOW + 6 * MIN, "default", "m")
    assert b is not None and b.lease_owner == "b"


def test_an_expired_lease_is_renewable_until_someone_takes_it_over(store: Any) -> None:
    add(store)
    assert store.claim_monitor("a", NOW, NOW + MIN) is not None
    # Expired, but nobody claimed it since: still a's to renew (as DuckDB's lease_owner).
    assert store.renew_monitor_lease("default", "m", "a", NOW + 10 * MIN)
    assert store.claim_monitor("b", NOW + 5 * MIN, NOW + 12 * MIN) is None
    taken = store.claim_monitor("b", NOW + 11 * MIN, NOW + 13 * MIN)
    assert taken is not None and taken.lease_owner == "b"
    assert not store.renew_monitor_lease("default", "m", "a", NOW + 20 * MIN)
    # The late run of a: its result is kept, the state is not its to move.
    assert not store.record_monitor_run(result("late", "drift"), "a", NOW + 2 * MIN, [])
    m = store.get_monitor("default", "m")
    assert m.state is None and m.lease_owner == "b" and m.next_run_at == NOW
    assert [r.result_id for r in store.list_monitor_results("default", "m")] == ["late"]
    assert store.record_monitor_run(result("r1", "drift", NOW + 11 * MIN), "b", NOW + 70 * MIN, [])
    m = store.get_monitor("default", "m")
    assert (m.state, m.state_since, m.last_result_id) == ("drift", NOW + 11 * MIN, "r1")
    assert m.next_run_at == NOW + 70 * MIN and m.lease_owner is None


def test_state_since_moves_only_on_a_change_and_none_keeps_the_state(store: Any) -> None:
    add(store)
    for i, state in enumerate(["ok", "ok", None, "drift"]):
        at = NOW + i * 60 * MIN
        assert store.claim_monitor("a", at, at + MIN, "default", "m") is not None
        nxt = None if state is None else at + 60 * MIN
        assert store.record_monitor_run(result(f"r{i}", state, at), "a", nxt, [])
    m = store.get_monitor("default", "m")
    assert (m.state, m.state_since, m.last_run_at) == ("drift", NOW + 180 * MIN, NOW + 180 * MIN)
    assert m.next_run_at == NOW + 240 * MIN
    results = store.list_monitor_results("default", "m")
    assert [r.result_id for r in results] == ["r3", "r2", "r1", "r0"]
    assert results[0].report is None
    assert store.get_monitor_result("default", "m", "r3").report == {"features": []}
    since = store.list_monitor_results("default", "m", since=NOW + 120 * MIN)
    assert [r.result_id for r in since] == ["r3", "r2"]
    assert [r.result_id for r in store.list_monitor_results("default", "m", limit=1)] == ["r3"]


def test_an_edit_keeps_state_and_lease_and_the_latest_schedule_wins(store: Any) -> None:
    add(store)
    assert store.claim_monitor("a", NOW, NOW + MIN) is not None
    assert store.record_monitor_run(result("r0", "ok"), "a", NOW + 60 * MIN, [])
    m = store.get_monitor("default", "m")
    edited = replace(m, every_seconds=900, enabled=False, next_run_at=None,
                     updated_at=NOW + 5 * MIN, webhooks=("http://127.0.0.1:9/x",))  # fmt: skip
    assert store.update_monitor(edited)
    m = store.get_monitor("default", "m")
    assert (m.every_seconds, m.enabled, m.next_run_at, m.state) == (900, False, None, "ok")
    assert m.webhooks == ("http://127.0.0.1:9/x",) and m.created_at == NOW
    assert store.claim_monitor("a", NOW + 2 * 60 * MIN, NOW + 3 * 60 * MIN) is None  # disabled
    assert store.update_monitor(replace(m, enabled=True, next_run_at=NOW + 10 * MIN))
    assert store.get_monitor("default", "m").next_run_at == NOW + 10 * MIN
    assert not store.update_monitor(replace(m, name="nope"))
    assert not store.create_monitor(m)


def test_the_most_overdue_due_monitor_is_claimed_first(store: Any) -> None:
    add(store, "late", NOW - 30 * MIN)
    add(store, "later", NOW - 10 * MIN)
    add(store, "future", NOW + 10 * MIN)
    order = [store.claim_monitor(o, NOW, NOW + MIN) for o in ("a", "b", "c")]
    assert [m and m.name for m in order] == ["late", "later", None]
    assert [m.name for m in store.list_monitors("default")] == ["future", "late", "later"]
    assert store.list_monitors("other") == []


def test_a_deleted_monitor_comes_back_with_no_history_and_no_lease(store: Any) -> None:
    add(store)
    assert store.claim_monitor("a", NOW, NOW + 60 * MIN) is not None
    assert store.record_monitor_run(result("r0", "ok"), "a", NOW + 60 * MIN,
                                    [alert("al0", "r0")], NOW + 5 * MIN)  # fmt: skip
    assert store.claim_monitor("a", NOW + 60 * MIN, NOW + 120 * MIN) is not None
    assert store.delete_monitor("default", "m")
    assert not store.delete_monitor("default", "m")
    assert store.get_monitor("default", "m") is None
    # The run that was under way finishes: nothing of it is kept.
    assert not store.record_monitor_run(result("r1", "drift"), "a", None, [])
    add(store)
    assert store.list_monitor_results("default", "m") == []
    assert store.get_monitor_result("default", "m", "r0") is None
    assert store.list_monitor_alerts("default", "m") == []
    assert store.claim_alerts("z", NOW + 100 * MIN, NOW + 110 * MIN) == []
    fresh = store.claim_monitor("b", NOW + 61 * MIN, NOW + 62 * MIN, "default", "m")
    assert fresh is not None and fresh.state is None


def test_alerts_queued_with_a_run_are_leased_to_its_owner(store: Any) -> None:
    add(store)
    assert store.claim_monitor("a", NOW, NOW + MIN) is not None
    alerts = [alert("al0", "r0", "http://127.0.0.1:9/a"), alert("al1", "r0", "http://127.0.0.1:9/b")]
    assert store.record_monitor_run(result("r0", "drift"), "a", NOW + 60 * MIN, alerts,
                                    NOW + 5 * MIN)  # fmt: skip
    assert [a.alert_id for a in store.list_monitor_alerts("default", "m")] == ["al1", "al0"]
    assert store.claim_alerts("b", NOW + MIN, NOW + 10 * MIN) == []
    sent = replace(alerts[0], status="delivered", attempts=1, last_status=200,
                   delivered_at=NOW + MIN)  # fmt: skip
    assert not store.save_alert_attempt(sent, "b", None)
    assert store.save_alert_attempt(sent, "a", None)
    retry = replace(alerts[1], attempts=1, last_status=500, next_attempt_at=NOW + 2 * MIN)
    assert store.save_alert_attempt(retry, "a", NOW + 3 * MIN)
    # a stopped: once its lease ends, b takes the pending one over when it is due.
    assert store.claim_alerts("b", NOW + 2 * MIN, NOW + 10 * MIN) == []
    (taken,) = store.claim_alerts("b", NOW + 4 * MIN, NOW + 10 * MIN)
    assert (taken.alert_id, taken.attempts, taken.last_status) == ("al1", 1, 500)
    assert not store.save_alert_attempt(taken, "a", None)
    assert store.claim_alerts("c", NOW + 5 * MIN, NOW + 10 * MIN) == []
    rows = {a.alert_id: a for a in store.list_monitor_alerts("default", "m")}
    assert rows["al0"].status == "delivered" and rows["al0"].delivered_at == NOW + MIN
    assert store.list_monitor_alerts("default", "m", limit=1)[0].alert_id == "al1"


def test_racing_replicas_never_both_hold_a_monitor(store: Any) -> None:
    """Several schedulers (threads with their own owner ids) claim the due monitors at the
    same moments; each monitor is won by at most one of them per round."""
    for i in range(3):
        add(store, f"m{i}")
    owners = [f"replica-{i}" for i in range(4)]
    lock = threading.Lock()
    for round_ in range(4):
        at = NOW + round_ * 120 * MIN
        won: dict[str, list[str]] = {}
        start = threading.Barrier(len(owners))

        def run(owner: str, at: datetime = at, won: Any = won, start: Any = start) -> None:
            start.wait()
            while (m := store.claim_monitor(owner, at, at + 5 * MIN)) is not None:
                with lock:
                    won.setdefault(m.name, []).append(owner)

        threads = [threading.Thread(target=run, args=(o,)) for o in owners]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(won) == ["m0", "m1", "m2"] and all(len(v) == 1 for v in won.values())
        for name, (owner,) in won.items():
            assert store.get_monitor("default", name).lease_owner == owner
            others = [o for o in owners if o != owner]
            assert not any(store.renew_monitor_lease("default", name, o, at + 9 * MIN)
                           for o in others)  # fmt: skip
            rid = f"{name}-{round_}"
            assert store.record_monitor_run(result(rid, "ok", at, name), owner, at + 60 * MIN, [])
