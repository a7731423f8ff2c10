"""Store contracts of online evaluation on every backend: scans in commit order that
never skip or repeat a span (also while spans are being inserted), rule leases under
racing workers, progress that only the lease holder moves, deletes."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from assay.model import ScorerSpec
from assay.online import Mark, ProgressUpdate, new_rule, parse_filters
from assay.query import SpanFilter
from online_support import span, spans

NOW = datetime(2026, 3, 5, 12, tzinfo=UTC)
MIN = timedelta(minutes=1)
START = Mark(datetime(2000, 1, 1, tzinfo=UTC))


def add(store: Any, name: str = "r", **kw: Any) -> None:
    rule = new_rule("default", name, ScorerSpec("recording"), filters=parse_filters([]),
                    since=START.at, **kw)  # fmt: skip
    assert store.create_online_rule(rule)


def drain(store: Any, flt: SpanFilter, after: Mark, limit: int = 7) -> tuple[list[Mark], Mark]:
    out: list[Mark] = []
    while batch := store.scan_online(flt, after, limit):
        assert batch == sorted(batch) and batch[0] > after
        out += batch
        after = batch[-1]
    return out, after


def test_scans_page_through_spans_in_commit_order_once_each(store: Any) -> None:
    flt = SpanFilter(project="default")
    # One insert stamps its spans in the same microsecond or close: ties go by ids.
    store.insert_spans(spans(30))
    store.insert_spans(spans(5, 30, route="billing"))
    seen, mark = drain(store, flt, START)
    assert len(seen) == 35 == len({(m.trace_id, m.span_id) for m in seen})
    assert store.online_backlog(flt, START)[0] == 35
    assert store.online_backlog(flt, mark) == (0, None)
    billing = SpanFilter(project="default", route="billing")
    assert len(drain(store, billing, START)[0]) == 5
    got = store.online_spans("default", seen[3:6])
    assert [(s.trace_id, s.span_id) for s in got] == [(m.trace_id, m.span_id) for m in seen[3:6]]
    store.insert_spans(spans(30))  # resent: nothing new to score
    assert store.scan_online(flt, mark, 10) == []
    store.insert_spans(spans(3, 100))
    count, oldest = store.online_backlog(flt, mark)
    assert count == 3 and oldest is not None and oldest >= mark.at
    assert len(drain(store, flt, mark)[0]) == 3


def test_scanning_while_spans_arrive_skips_none_and_repeats_none(store: Any) -> None:
    flt = SpanFilter(project="default")
    done = threading.Event()

    def insert() -> None:
        for i in range(40):
            store.insert_spans([span(1000 + 5 * i + k) for k in range(5)])
        done.set()

    writer = threading.Thread(target=insert)
    writer.start()
    seen: list[Mark] = []
    mark = START
    while not done.is_set():
        batch = store.scan_online(flt, mark, 13)
        seen += batch
        mark = batch[-1] if batch else mark
    writer.join(30)
    rest, _ = drain(store, flt, mark)
    seen += rest
    keys = [(m.trace_id, m.span_id) for m in seen]
    assert len(keys) == 200 == len(set(keys))


def test_only_the_lease_holder_moves_the_watermark(store: Any) -> None:
    add(store)
    a = store.claim_online_rule("a", NOW, NOW + MIN)
    assert a is not None and a.progress.lease_owner == "a"
    assert store.claim_online_rule("b", NOW, NOW + MIN) is None
    wm = Mark(NOW, "t1", "s1")
    step = ProgressUpdate(at=NOW, scored=2, errors=1, spend_usd=0.5, period="2026-03-05",
                          watermark=wm, processed=10, sampled=3,
                          last_error="judge down")  # fmt: skip
    assert store.record_online_progress("default", "r", "a", step)
    late = replace(step, watermark=Mark(NOW + MIN, "t2", "s2"), last_error=None, at=NOW + MIN)
    assert not store.record_online_progress("default", "r", "b", late)  # counters, no watermark
    p = store.get_online_rule("default", "r").progress
    assert (p.watermark, p.processed, p.sampled, p.scored, p.errors) == (wm, 10, 3, 4, 2)
    assert (p.spend_period, p.spend_usd, p.spend_total_usd) == ("2026-03-05", 1.0, 1.0)
    assert (p.last_error, p.last_error_at, p.last_scored_at) == ("judge down", NOW, NOW + MIN)
    nxt = ProgressUpdate(at=NOW + 2 * MIN, spend_usd=0.25, period="2026-03-06")
    assert store.record_online_progress("default", "r", "a", nxt)
    p = store.get_online_rule("default", "r").progress
    assert (p.spend_period, p.spend_usd, p.spend_total_usd) == ("2026-03-06", 0.25, 1.25)
    assert not store.record_online_progress("default", "gone", "a", nxt)


def test_rule_leases_pause_delete_and_takeover(store: Any) -> None:
    add(store, "r1")
    add(store, "r2")
    assert store.claim_online_rule("a", NOW, NOW + MIN, skip=[("default", "r1")]).name == "r2"
    assert store.claim_online_rule("a", NOW, NOW + MIN).name == "r1"
    assert store.claim_online_rule("b", NOW, NOW + MIN) is None
    r1 = store.get_online_rule("default", "r1")
    assert store.update_online_rule(replace(r1, enabled=False, updated_at=NOW + MIN))
    renewed = store.renew_online_lease("default", "r1", "a", NOW + 2 * MIN)
    assert renewed is not None and not renewed.enabled
    assert store.renew_online_lease("default", "r1", "b", NOW + 2 * MIN) is None
    assert store.release_online_rule("default", "r1", "a")
    assert not store.release_online_rule("default", "r1", "a")
    taken = store.claim_online_rule("b", NOW + 2 * MIN, NOW + 3 * MIN)
    assert taken is not None and taken.name == "r2"  # r1 paused; r2's lease ran out
    assert store.renew_online_lease("default", "r2", "a", NOW + 4 * MIN) is None
    assert store.delete_online_rule("default", "r2")
    assert not store.delete_online_rule("default", "r2")
    assert store.renew_online_lease("default", "r2", "b", NOW + 4 * MIN) is None
    add(store, "r2")
    fresh = store.get_online_rule("default", "r2")
    assert fresh.progress.lease_owner is None and fresh.progress.scored == 0
    assert [r.name for r in store.list_online_rules("default")] == ["r1", "r2"]


def test_racing_workers_never_both_hold_a_rule(store: Any) -> None:
    for i in range(3):
        add(store, f"r{i}")
    won: dict[str, list[str]] = {}
    lock = threading.Lock()
    start = threading.Barrier(4)

    def run(owner: str) -> None:
        start.wait()
        while (rule := store.claim_online_rule(owner, NOW, NOW + MIN)) is not None:
            with lock:
                won.setdefault(rule.name, []).append(owner)

    threads = [threading.Thread(target=run, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(won) == ["r0", "r1", "r2"] and all(len(v) == 1 for v in won.values())
    for name, (owner,) in won.items():
        assert store.get_online_rule("default", name).progress.lease_owner == owner
