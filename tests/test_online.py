"""Online evaluation: deterministic sampling, filters, the worker scoring stored spans as
feedback, idempotent rescoring, budgets, retries, leases and restarts."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import random
from datetime import UTC, datetime, timedelta

import pytest

from assay.model import ScorerSpec
from assay.online import (
    Mark,
    OnlineError,
    ProgressUpdate,
    feedback_id,
    is_sampled,
    judge_from_yaml,
    new_rule,
    parse_budget,
    parse_filters,
    period_end,
    period_key,
    rule_json,
    sample_point,
)
from assay.scorers.base import ScorerError
from assay.store.duckdb import DuckDBStore
from online_support import (
    RecordingScorer,
    add_rule,
    ids,
    run_until_idle,
    span,
    spans,
    worker,
)
from scripted_llm import ScriptedLLM

pytestmark = pytest.mark.all_backends

# -- sampling ------------------------------------------------------------------------------


def test_sample_point_is_the_md5_of_the_span_ids() -> None:
    # Pinned: changing the function would re-sample every stored rule's traffic.
    expected = int(hashlib.md5(b"0af7651916cd43dd8448eb211c80319c:b7ad6b7169203331")
                   .hexdigest()[:15], 16) / 16**15  # fmt: skip
    assert sample_point("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331") == expected
    assert sample_point("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331") == pytest.approx(
        0.3686455, abs=1e-7
    )


@pytest.mark.parametrize("rate", [0.01, 0.05, 0.3])
def test_sampling_hits_the_rate_and_agrees_on_every_call(rate: float) -> None:
    rng = random.Random(7)
    keys = [(f"{rng.getrandbits(128):032x}", f"{rng.getrandbits(64):016x}") for _ in range(40_000)]
    chosen = [is_sampled(t, s, rate) for t, s in keys]
    share = sum(chosen) / len(keys)
    sd = (rate * (1 - rate) / len(keys)) ** 0.5
    assert abs(share - rate) < 4 * sd, (share, rate)
    # Replicas and resends decide alike; a lower rate samples a subset of a higher one.
    assert chosen == [is_sampled(t, s, rate) for t, s in keys]
    assert all(is_sampled(t, s, 0.5) for (t, s), c in zip(keys, chosen, strict=True) if c)
    assert all(is_sampled(t, s, 1.0) for t, s in keys[:100])


# -- parsing -------------------------------------------------------------------------------


def test_filters_default_to_llm_calls_and_reject_unknown_fields() -> None:
    assert parse_filters(["route=support", "attr.tenant=acme"]) == {
        "route": "support",
        "attr.tenant": "acme",
        "kind": "llm",
    }
    assert parse_filters(["kind=tool"]) == {"kind": "tool"}
    assert parse_filters([], all_kinds=True) == {}
    with pytest.raises(OnlineError, match="'rout' is not a span field; use one of model"):
        parse_filters(["rout=support"])
    with pytest.raises(OnlineError, match="must be key=value"):
        parse_filters(["support"])
    with pytest.raises(OnlineError, match="status 'bad' is not one of ok, error, unset"):
        parse_filters(["status=bad"])
    with pytest.raises(OnlineError, match="given twice"):
        parse_filters(["route=a", "route=b"])


def test_budgets_and_periods() -> None:
    assert parse_budget("5/day") == (5.0, "day")
    assert parse_budget("$2.5/hour") == (2.5, "hour")
    assert parse_budget("20") == (20.0, "day")
    for bad in ("0/day", "five", "5/year", "-1"):
        with pytest.raises(OnlineError, match="budget"):
            parse_budget(bad)
    now = datetime(2026, 3, 4, 13, 30, tzinfo=UTC)  # a Wednesday
    assert [period_key(p, now) for p in ("hour", "day", "week", "month")] == [
        "2026-03-04T13", "2026-03-04", "2026-W10", "2026-03"]  # fmt: skip
    assert period_end("week", now) == datetime(2026, 3, 9, tzinfo=UTC)
    assert period_end("month", datetime(2026, 12, 31, tzinfo=UTC)) == datetime(
        2027, 1, 1, tzinfo=UTC
    )


def test_rubric_file_sets_the_judge_arguments() -> None:
    text = "version: 1\ncriteria: [answers the question, is polite]\nmode: likert\nscale: [1, 5]\n"
    assert judge_from_yaml(text, "r.yaml") == {
        "name": "judge",
        "rubric": "- answers the question\n- is polite",
        "mode": "likert",
        "scale": [1, 5],
    }
    with pytest.raises(
        OnlineError, match=r"r.yaml: 'mdoe' is not a judge option \(did you mean 'mode'"
    ):
        judge_from_yaml("rubric: be kind\nmdoe: likert\n", "r.yaml")
    with pytest.raises(OnlineError, match=r"r\.yaml: `rubric:` is missing"):
        judge_from_yaml("mode: likert\n", "r.yaml")
    with pytest.raises(OnlineError, match=r"r\.yaml: line 2 not valid YAML"):
        judge_from_yaml("rubric: a\n  - : [\n", "r.yaml")


def test_new_rule_checks_its_fields() -> None:
    spec = ScorerSpec("exact")
    for kw, message in [
        ({"sample": 0}, "sample 0 must be in"),
        ({"sample": 1.5}, "sample 1.5 must be in"),
        ({"concurrency": 0}, "concurrency 0 must be 1..256"),
        ({"retries": 11}, "retries 11 must be 0..10"),
        ({"budget_usd": -1.0}, "budget_usd -1.0 must be a positive amount"),
        ({"budget_period": "year"}, "budget_period 'year' must be one of"),
        ({"score_name": "bad name"}, "score_name 'bad name' must be"),
    ]:
        with pytest.raises(OnlineError, match=message):
            new_rule("default", "r", spec, **kw)  # type: ignore[arg-type]
    with pytest.raises(OnlineError, match="rule name 'a/b' must start"):
        new_rule("default", "a/b", spec)


# -- the worker ----------------------------------------------------------------------------


async def test_worker_scores_sampled_matching_spans_as_judge_feedback(store: DuckDBStore) -> None:
    add_rule(store, "helpful", filters=["route=support"], sample=0.5, score_name="helpfulness")
    support = spans(60)
    store.insert_spans(support)
    store.insert_spans(spans(10, 100, route="billing") + spans(10, 200, kind="chain"))
    scorer = RecordingScorer(cost=0.001)
    w = worker(store, scorer)
    await run_until_idle(w)

    wanted = [s for s in support if is_sampled(s.trace_id, s.span_id, 0.5)]
    assert 15 < len(wanted) < 45
    assert set(scorer.calls) == {f"{s.trace_id}:{s.span_id}" for s in wanted}
    assert set(scorer.calls.values()) == {1}
    stored = store.list_feedback("default", name="helpfulness")
    assert len(stored) == len(wanted)
    one = next(f for f in stored if f.span_id == wanted[0].span_id)
    number = int(wanted[0].output_text.split()[-1])  # type: ignore[union-attr]
    assert one.feedback_id == feedback_id("helpful", wanted[0].trace_id, wanted[0].span_id)
    assert (one.source, one.author, one.kind) == ("judge", "helpful", "number")
    assert one.number == (1.0 if number % 2 == 0 else 0.0)
    assert one.comment == f"because answer {number}"
    assert one.metadata["rule"] == "helpful" and one.metadata["cost"] == 0.001
    assert "raw" not in one.metadata

    rule = store.get_online_rule("default", "helpful")
    assert rule is not None
    p = rule.progress
    assert (p.processed, p.sampled, p.scored, p.errors, p.skipped) == (
        60,
        len(wanted),
        len(wanted),
        0,
        0,
    )
    assert p.spend_usd == pytest.approx(0.001 * len(wanted))
    last = max(support, key=lambda s: (s.trace_id, s.span_id))
    assert (p.watermark.trace_id, p.watermark.span_id) == (last.trace_id, last.span_id)

    # Spans arriving later are scored too, from the watermark on.
    store.insert_spans(spans(20, 1000))
    assert await w.wait_idle()
    more = [s for s in spans(20, 1000) if is_sampled(s.trace_id, s.span_id, 0.5)]
    assert len(store.list_feedback("default", name="helpfulness")) == len(wanted) + len(more)
    status = rule_json(store.get_online_rule("default", "helpful"))  # type: ignore[arg-type]
    assert status["status"]["processed"] == 80 and status["status"]["state"] == "running"
    await w.stop()
    stopped = store.get_online_rule("default", "helpful")
    assert stopped is not None and stopped.progress.lease_owner is None


async def test_rule_starts_at_its_creation_and_pause_stops_it(store: DuckDBStore) -> None:
    store.insert_spans(spans(5))
    await asyncio.sleep(0.01)
    rule = new_rule("default", "fresh", ScorerSpec("recording"), filters=parse_filters([]))
    assert store.create_online_rule(rule)
    await asyncio.sleep(0.01)
    store.insert_spans(spans(5, 50))
    scorer = RecordingScorer()
    w = worker(store, scorer)
    await run_until_idle(w)
    assert set(scorer.calls) == {f"{s.trace_id}:{s.span_id}" for s in spans(5, 50)}

    paused = dataclasses.replace(rule, enabled=False, updated_at=datetime.now(UTC))
    assert store.update_online_rule(paused)
    for _ in range(200):  # the run sees the change when it renews its lease
        if not w._runs:
            break
        await asyncio.sleep(0.01)
    assert not w._runs
    assert await w.tick() == 0  # a paused rule is not claimed
    store.insert_spans(spans(3, 90))
    await asyncio.sleep(0.1)
    assert len(scorer.calls) == 5
    await w.stop()


async def test_rescoring_the_same_spans_stores_and_spends_nothing_new(store: DuckDBStore) -> None:
    add_rule(store)
    store.insert_spans(spans(12))
    scorer = RecordingScorer(cost=0.01)
    w = worker(store, scorer)
    await run_until_idle(w)
    await w.stop()
    assert len(store.list_feedback("default")) == 12

    # Re-created from the beginning: every span is read again, none is scored again.
    assert store.delete_online_rule("default", "helpful")
    add_rule(store)
    w2 = worker(store, scorer)
    await run_until_idle(w2)
    await w2.stop()
    assert set(scorer.calls.values()) == {1}
    assert len(store.list_feedback("default")) == 12
    rule = store.get_online_rule("default", "helpful")
    assert rule is not None and rule.progress.processed == 12 and rule.progress.scored == 0


async def test_budget_stops_scoring_for_the_rest_of_the_period(store: DuckDBStore) -> None:
    add_rule(store, budget_usd=1.0, budget_period="day", concurrency=1)
    store.insert_spans(spans(20))
    scorer = RecordingScorer(cost=0.25)
    clock = [datetime(2026, 3, 1, 9, tzinfo=UTC)]
    w = worker(store, scorer, clock=lambda: clock[0])
    await run_until_idle(w)
    assert sum(scorer.calls.values()) == 4
    rule = store.get_online_rule("default", "helpful")
    assert rule is not None
    p = rule.progress
    assert (p.scored, p.skipped, p.processed) == (4, 16, 20)
    assert p.spend_usd == 1.0 and p.spend_period == "2026-03-01"
    status = rule_json(rule, clock[0])["status"]
    assert (
        status["state"] == "over budget"
        and status["budget_resets_at"] == "2026-03-02T00:00:00+00:00"
    )

    # Within the day new spans are skipped; the next day the budget starts again.
    store.insert_spans(spans(3, 100))
    assert await w.wait_idle()
    assert sum(scorer.calls.values()) == 4
    clock[0] += timedelta(days=1)
    store.insert_spans(spans(3, 200))
    assert await w.wait_idle()
    assert sum(scorer.calls.values()) == 7
    await w.stop()
    rule = store.get_online_rule("default", "helpful")
    assert rule is not None
    assert rule.progress.spend_usd == 0.75 and rule.progress.spend_total_usd == 1.75
    assert rule_json(rule, clock[0])["status"]["state"] == "waiting"


async def test_budget_holds_with_concurrent_calls(store: DuckDBStore) -> None:
    add_rule(store, budget_usd=1.0, concurrency=8)
    store.insert_spans(spans(60))
    scorer = RecordingScorer(cost=0.1, delay=0.01)
    w = worker(store, scorer)
    await run_until_idle(w)
    await w.stop()
    rule = store.get_online_rule("default", "helpful")
    assert rule is not None
    # The first calls run before any cost is known; afterwards calls in flight are reserved.
    assert 1.0 - 1e-9 <= rule.progress.spend_usd <= 1.0 + 8 * 0.1
    assert rule.progress.scored + rule.progress.skipped == 60


async def test_failed_spans_are_retried_a_bounded_number_of_times(store: DuckDBStore) -> None:
    add_rule(store, retries=2)
    flaky, broken, fine = spans(3)
    store.insert_spans([flaky, broken, fine])
    scorer = RecordingScorer()
    case = lambda s: f"{s.trace_id}:{s.span_id}"  # noqa: E731
    scorer.fail = {case(flaky): 2, case(broken): 5}
    w = worker(store, scorer)
    await run_until_idle(w)
    await w.stop()
    assert scorer.calls[case(flaky)] == 3 and scorer.calls[case(broken)] == 3
    assert scorer.calls[case(fine)] == 1
    stored = {f.span_id: f for f in store.list_feedback("default")}
    assert set(stored) == {flaky.span_id, fine.span_id}
    assert stored[flaky.span_id].metadata["rule_attempts"] == 3
    rule = store.get_online_rule("default", "helpful")
    assert rule is not None
    assert (rule.progress.scored, rule.progress.errors) == (2, 1)
    assert rule.progress.last_error == "RuntimeError: judge down"
    # The watermark moved past the failed span: it is not retried forever.
    assert rule.progress.processed == 3


async def test_a_misconfigured_scorer_is_not_retried(store: DuckDBStore) -> None:
    add_rule(store, retries=3)
    (one,) = spans(1)
    store.insert_spans([one])
    scorer = RecordingScorer(error=lambda: ScorerError("case has no expected answer"))
    scorer.fail = {f"{one.trace_id}:{one.span_id}": 10}
    w = worker(store, scorer)
    await run_until_idle(w)
    await w.stop()
    assert sum(scorer.calls.values()) == 1
    rule = store.get_online_rule("default", "helpful")
    assert rule is not None and rule.progress.errors == 1
    assert "no expected answer" in (rule.progress.last_error or "")


async def test_concurrency_is_bounded_by_the_rule(store: DuckDBStore) -> None:
    add_rule(store, concurrency=4)
    store.insert_spans(spans(40))
    scorer = RecordingScorer(delay=0.02)
    w = worker(store, scorer)
    await run_until_idle(w)
    await w.stop()
    assert scorer.max_in_flight == 4 and len(scorer.calls) == 40


async def test_two_workers_never_score_one_span_twice(store: DuckDBStore) -> None:
    add_rule(store, "a")
    add_rule(store, "b", sample=0.5)
    store.insert_spans(spans(50))
    scorer_1, scorer_2 = RecordingScorer(delay=0.005), RecordingScorer(delay=0.005)
    w1, w2 = worker(store, scorer_1), worker(store, scorer_2)
    started = await asyncio.gather(w1.tick(), w2.tick())
    # Each rule is started exactly once (which worker takes which depends on timing).
    assert sum(started) == 2
    assert await w1.wait_idle() and await w2.wait_idle()
    await asyncio.gather(w1.stop(), w2.stop())
    by_rule = {
        name: [f for f in store.list_feedback("default") if f.author == name] for name in "ab"
    }
    assert len(by_rule["a"]) == 50
    assert len(by_rule["b"]) == sum(is_sampled(s.trace_id, s.span_id, 0.5) for s in spans(50))
    assert set((scorer_1.calls + scorer_2.calls).values()) <= {1, 2}  # once per rule
    assert sum((scorer_1.calls + scorer_2.calls).values()) == 50 + len(by_rule["b"])


async def test_an_expired_lease_is_taken_over_and_a_held_one_is_not(store: DuckDBStore) -> None:
    add_rule(store)
    store.insert_spans(spans(10))
    now = datetime.now(UTC)
    dead = store.claim_online_rule("crashed-worker", now, now + timedelta(seconds=60))
    assert dead is not None
    scorer = RecordingScorer()
    clock = [now]
    w = worker(store, scorer, clock=lambda: clock[0])
    assert await w.tick() == 0
    clock[0] = now + timedelta(seconds=61)
    await run_until_idle(w)
    await w.stop()
    assert len(scorer.calls) == 10
    # The crashed worker's late flush stores its scores but cannot move the watermark.
    before = store.get_online_rule("default", "helpful")
    assert before is not None and before.progress.processed == 10
    late = ProgressUpdate(
        at=now,
        feedback=(dataclasses.replace(store.list_feedback("default")[0], feedback_id="late"),),
        scored=1,
        watermark=Mark(now + timedelta(days=1)),
        processed=99,
    )
    assert not store.record_online_progress("default", "helpful", "crashed-worker", late)
    after = store.get_online_rule("default", "helpful")
    assert after is not None and after.progress.watermark == before.progress.watermark
    assert after.progress.processed == 10 and after.progress.scored == 11
    assert store.list_feedback("default", ids=["late"])
    assert store.renew_online_lease("default", "helpful", "crashed-worker", now) is None


async def test_the_watermark_survives_a_restart(store: DuckDBStore) -> None:
    add_rule(store)
    store.insert_spans(spans(10))
    scorer = RecordingScorer()
    w = worker(store, scorer)
    await run_until_idle(w)
    await w.stop()
    store.insert_spans(spans(5, 100))
    w2 = worker(store, scorer)
    await run_until_idle(w2)
    await w2.stop()
    assert len(scorer.calls) == 15 and set(scorer.calls.values()) == {1}


async def test_stop_leaves_unfinished_spans_for_the_next_worker(store: DuckDBStore) -> None:
    add_rule(store, concurrency=2)
    store.insert_spans(spans(6))
    slow = RecordingScorer(delay=5.0)
    w = worker(store, slow, grace_seconds=0.05)
    await w.tick()
    for _ in range(100):
        if slow.in_flight == 2:
            break
        await asyncio.sleep(0.01)
    await w.stop()
    rule = store.get_online_rule("default", "helpful")
    assert rule is not None and rule.progress.scored == 0 and rule.progress.processed == 0
    fast = RecordingScorer()
    w2 = worker(store, fast)
    await run_until_idle(w2)
    await w2.stop()
    assert len(fast.calls) == 6 and len(store.list_feedback("default")) == 6


async def test_scan_reads_only_committed_matching_spans_in_commit_order(
    store: DuckDBStore,
) -> None:
    store.insert_spans(spans(3, attributes={"tenant": "acme"}) + spans(3, 10, salt="x"))
    rule = add_rule(store, filters=["attr.tenant=acme"])
    keys = store.scan_online(rule.span_filter(), rule.progress.watermark, 100)
    assert {(k.trace_id, k.span_id) for k in keys} == {ids(i) for i in range(3)}
    assert keys == sorted(keys)
    assert store.scan_online(rule.span_filter(), keys[1], 100) == keys[2:]
    assert (
        store.scan_online(rule.span_filter(), Mark(datetime.now(UTC) + timedelta(hours=1)), 9) == []
    )
    count, oldest = store.online_backlog(rule.span_filter(), keys[0])
    assert count == 2 and oldest == keys[1].at
    got = store.online_spans("default", list(reversed(keys)))
    assert [(s.trace_id, s.span_id) for s in got] == [
        (k.trace_id, k.span_id) for k in reversed(keys)
    ]


async def test_an_llm_judge_scores_spans_and_its_cost_counts(store: DuckDBStore) -> None:
    reply = '{"reasoning": "It answers the question.", "verdict": "pass"}'
    with ScriptedLLM(default=reply) as llm:
        spec = ScorerSpec("judge", {
            "rubric": "The answer addresses the question.",
            "endpoint": {"base_url": llm.base_url + "/v1", "model": "gpt-4o-mini"},
        })  # fmt: skip
        rule = new_rule("default", "judged", spec, filters=parse_filters([]),
                        since=datetime(2000, 1, 1, tzinfo=UTC))  # fmt: skip
        assert store.create_online_rule(rule)
        store.insert_spans([span(1), span(2)])
        from assay.online_worker import OnlineWorker

        w = OnlineWorker(store, poll_seconds=0.02, flush_seconds=0.02)
        await run_until_idle(w)
        await w.stop()
        prompt = llm.requests[0].messages[-1]["content"]
    assert "<input>\n[user] question" in prompt and "<response>\nanswer" in prompt
    stored = store.list_feedback("default", name="judged")
    assert len(stored) == 2 and all(f.number == 1.0 for f in stored)
    assert stored[0].comment == "It answers the question."
    assert stored[0].metadata["cost"] > 0 and stored[0].metadata["judge_model"] == "gpt-4o-mini"
    got = store.get_online_rule("default", "judged")
    assert got is not None and got.progress.spend_usd == pytest.approx(
        sum(f.metadata["cost"] for f in stored)
    )


async def test_a_scorer_that_cannot_be_built_is_reported_and_not_retried_at_once(
    store: DuckDBStore,
) -> None:
    add_rule(store)
    store.insert_spans(spans(2))

    def broken(spec: ScorerSpec) -> RecordingScorer:
        raise ScorerError("scorer 'judge': endpoint: set OPENAI_API_KEY")

    from assay.online_worker import OnlineWorker

    w = OnlineWorker(store, poll_seconds=0.02, scorer_factory=broken)
    assert await w.tick() == 1
    for _ in range(100):
        if not w._runs:
            break
        await asyncio.sleep(0.01)
    rule = store.get_online_rule("default", "helpful")
    assert rule is not None and rule.progress.lease_owner is None
    assert "cannot build the scorer: ScorerError: scorer 'judge'" in (
        rule.progress.last_error or ""
    )
    assert await w.tick() == 0  # cooling down: not claimed again on the next poll
    await w.stop()


async def test_the_watermark_passes_spans_none_of_which_is_sampled(store: DuckDBStore) -> None:
    unsampled = [s for s in spans(200) if not is_sampled(s.trace_id, s.span_id, 0.02)][:30]
    add_rule(store, sample=0.02)
    store.insert_spans(unsampled)
    scorer = RecordingScorer()
    w = worker(store, scorer)
    await run_until_idle(w)
    await w.stop()
    rule = store.get_online_rule("default", "helpful")
    assert rule is not None and not scorer.calls
    assert (rule.progress.processed, rule.progress.sampled) == (30, 0)
    assert store.online_backlog(rule.span_filter(), rule.progress.watermark) == (0, None)
