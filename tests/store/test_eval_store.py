"""Golden sets, runs, trials and scores: behaviour every backend must share."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from assay.model import EvalRun, Output, Score, ScorerSpec, Trial
from assay.store import Store, StoreError

NOW = datetime(2026, 3, 1, tzinfo=UTC)
CASES = [{"id": "b", "input": "hi"}, {"id": "a", "input": [{"role": "user", "content": "yo"}]}]


def run(run_id: str = "r1", **kw: object) -> EvalRun:
    values: dict[str, object] = dict(
        project="p",
        run_id=run_id,
        golden="support",
        golden_version="ab" * 32,
        target={"kind": "openai", "model": "m"},
        scorers=[ScorerSpec("exact"), ScorerSpec("judge", {"mode": "likert"}, key="tone")],
        trials=2,
        status="running",
        created_at=NOW,
    )
    values.update(kw)
    return EvalRun(**values)  # type: ignore[arg-type]


def trial(case: str, k: int, *, error: str | None = None, value: float = 1.0) -> Trial:
    return Trial(
        run_id="r1",
        case_id=case,
        trial=k,
        output=None if error else Output(text=f"{case}{k}", latency_ms=12.5, cost=0.001),
        error=error,
        scores={} if error else {"exact": Score(value, passed=value == 1.0, explanation="x")},
        score_errors={} if error else {"tone": "judge reply malformed after 3 attempts"},
        started_at=NOW,
        finished_at=NOW,
    )


def test_golden_versions_are_immutable_and_resolvable(store: Store) -> None:
    v1, new = store.save_golden_set("p", "support", "a" * 64, CASES, description="d")
    assert new and v1.case_count == 2 and v1.short == "a" * 12
    again, new_again = store.save_golden_set("p", "support", "a" * 64, CASES[:1])
    assert not new_again and again.case_count == 2  # a stored version never changes
    store.save_golden_set("p", "support", "ab" + "c" * 62, CASES[:1])
    assert [c["id"] for c in store.golden_cases("p", "support", "a" * 64)] == ["b", "a"]
    assert store.resolve_golden("p", "support", "aaaa") == v1
    assert store.resolve_golden("p", "support").version == "ab" + "c" * 62  # type: ignore[union-attr]
    assert store.resolve_golden("p", "nope") is None
    assert store.resolve_golden("q", "support") is None  # projects are isolated
    with pytest.raises(StoreError, match="ambiguous"):
        store.resolve_golden("p", "support", "a")
    assert len(store.list_golden_versions("p", "support")) == 2


def test_runs_round_trip_and_prefix_lookup(store: Store) -> None:
    store.create_run(run())
    store.create_run(run("r2-long"))
    got = store.get_run("p", "r1")
    assert got == run()
    assert got.scorers[1].label == "tone"  # type: ignore[union-attr]
    assert store.get_run("p", "r2") is not None and store.get_run("q", "r1") is None
    with pytest.raises(StoreError, match="already exists"):
        store.create_run(run())
    store.set_run_status("p", "r1", "finished")
    finished = store.get_run("p", "r1")
    assert finished is not None and finished.status == "finished" and finished.finished_at
    assert {r.run_id for r in store.list_runs("p")} == {"r1", "r2-long"}


def test_trials_are_idempotent_and_failed_ones_are_retried(store: Store) -> None:
    store.create_run(run())
    assert store.record_trials("p", [trial("a", 0), trial("a", 1, error="timeout")]) == 2
    assert store.completed_trials("p", "r1") == {("a", 0)}
    # A resend of a finished trial adds nothing; a retried failure replaces the error.
    assert store.record_trials("p", [trial("a", 0, value=0.0), trial("a", 1)]) == 1
    trials = list(store.iter_trials("p", "r1"))
    assert [(t.case_id, t.trial, t.error) for t in trials] == [("a", 0, None), ("a", 1, None)]
    assert trials[0].scores["exact"].value == 1.0  # the first write won
    assert trials[0].score_errors == {"tone": "judge reply malformed after 3 attempts"}
    assert trials[0].output == Output(text="a0", latency_ms=12.5, cost=0.001)
    assert store.completed_trials("p", "r1") == {("a", 0), ("a", 1)}


def test_iter_trials_streams_in_pages(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    import assay.store.clickhouse_evals as ch_evals
    import assay.store.duckdb_evals as evals

    # Small pages on every backend, so paging itself is what is tested.
    monkeypatch.setattr(evals, "_TRIAL_PAGE", 3)
    monkeypatch.setattr(ch_evals, "_TRIAL_PAGE", 3)
    store.create_run(run())
    store.record_trials("p", [trial(f"c{i}", k) for i in range(4) for k in range(2)])
    got = [(t.case_id, t.trial) for t in store.iter_trials("p", "r1")]
    assert got == [(f"c{i}", k) for i in range(4) for k in range(2)]
    assert all(t.scores for t in store.iter_trials("p", "r1"))


def test_a_retried_failure_takes_its_own_scores_and_a_finished_trial_gains_new_ones(
    store: Store,
) -> None:
    store.create_run(run())
    failed = Trial(
        run_id="r1",
        case_id="a",
        trial=0,
        output=None,
        error="timeout",
        scores={},
        score_errors={"judge": "no output to judge"},
        started_at=NOW,
        finished_at=NOW,
    )
    assert store.record_trials("p", [failed]) == 1
    # A second failure replaces the first; so does the success after it.
    assert store.record_trials("p", [replace(failed, error="rate limited")]) == 1
    assert [t.error for t in store.iter_trials("p", "r1")] == ["rate limited"]
    assert store.record_trials("p", [trial("a", 0)]) == 1
    (got,) = store.iter_trials("p", "r1")
    assert got.error is None and set(got.score_errors) == {"tone"}  # the failure's are gone
    # A resend of a finished trial keeps it, but records a scorer it had no score from.
    extra = replace(trial("a", 0, value=0.0), scores={"exact": Score(0.0), "len": Score(2.0)})
    assert store.record_trials("p", [extra]) == 0
    (got,) = store.iter_trials("p", "r1")
    assert got.scores["exact"].value == 1.0 and got.scores["len"] == Score(2.0)
    with pytest.raises(ValueError, match="one run"):
        store.record_trials("p", [trial("a", 1), replace(trial("a", 2), run_id="r2")])
    assert store.record_trials("p", []) == 0


def test_run_status_raises_trials_and_listing_filters(store: Store) -> None:
    store.create_run(run())
    store.create_run(run("r2", golden="other", created_at=NOW + timedelta(hours=1)))
    store.set_run_status("p", "r1", "interrupted", trials=5)
    store.set_run_status("p", "r1", "running", trials=3)  # never lowered
    got = store.get_run("p", "r1")
    assert got is not None and got.trials == 5 and got.status == "running"
    assert got.finished_at is None and got.created_at == NOW
    store.set_run_status("p", "missing", "finished")  # nothing to mark: no error, no run
    assert store.get_run("p", "missing") is None
    assert [r.run_id for r in store.list_runs("p")] == ["r2", "r1"]  # newest first
    assert [r.run_id for r in store.list_runs("p", golden="support")] == ["r1"]
    assert [r.run_id for r in store.list_runs("p", limit=1)] == ["r2"]
    store.create_run(run("r10"))
    with pytest.raises(StoreError, match="ambiguous"):
        store.get_run("p", "r")
    assert store.get_run("p", "r1") is not None  # an exact id wins over its prefix matches


def test_golden_cases_keep_file_order_and_sets_are_listed_per_name(store: Store) -> None:
    cases = [{"id": f"case-{i:03d}", "input": f"q{i}", "tags": ["x"]} for i in range(30, 0, -1)]
    store.save_golden_set("p", "big", "d" * 64, cases, source="cases.yaml")
    store.save_golden_set("p", "small", "e" * 64, CASES)
    assert store.golden_cases("p", "big", "d" * 64) == cases
    assert store.golden_cases("p", "big", "e" * 64) == []
    assert [v.name for v in store.list_golden_versions("p")] == ["small", "big"]
    (big,) = store.list_golden_versions("p", "big")
    assert big.source == "cases.yaml" and big.case_count == 30 and big.description is None


def test_a_replica_with_a_slow_clock_still_moves_runs_and_retries_on(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    import assay.store.clickhouse_evals as ch_evals

    store.create_run(run())
    store.record_trials("p", [trial("a", 0, error="timeout")])
    # Another replica writes next, its clock an hour behind (no effect on DuckDB).
    hour_ago = time.time_ns() - 3_600 * 10**9
    monkeypatch.setattr(ch_evals, "_last_tick", 0)
    monkeypatch.setattr(ch_evals.time, "time_ns", lambda: hour_ago)
    store.set_run_status("p", "r1", "interrupted")
    assert store.get_run("p", "r1").status == "interrupted"  # type: ignore[union-attr]
    assert store.record_trials("p", [trial("a", 0, error="rate limited")]) == 1
    assert [t.error for t in store.iter_trials("p", "r1")] == ["rate limited"]
    assert store.record_trials("p", [trial("a", 0)]) == 1
    assert store.completed_trials("p", "r1") == {("a", 0)}
