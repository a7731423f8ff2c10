"""`assay demo`: the example project every dashboard page shows, built once per module."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from assay.calibration import check_sampling, judge_report, quality_estimate
from assay.cli import cli
from assay.demo import DemoError, DemoSummary, build_demo, check_empty
from assay.query import SpanFilter
from assay.results import compare_runs
from assay.server.evals_api import case_scores
from assay.settings import Settings
from assay.store import Store
from assay.store.duckdb import DuckDBStore

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
# Small enough to build in a few seconds, large enough for the monitors to see the episode.
SIZE: dict[str, Any] = {"seed": 11, "now": NOW, "weeks": 3, "traces": 1500}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DuckDBStore, DemoSummary]]:
    path = str(tmp_path_factory.mktemp("demo") / "demo.duckdb")
    store = DuckDBStore(path)
    summary = build_demo(store, Settings(db=path), **SIZE)
    yield store, summary
    store.close()


def test_marked_as_demo_data(built: tuple[DuckDBStore, DemoSummary]) -> None:
    store, s = built
    marker = json.loads(store.get_meta("demo") or "{}")
    assert marker["seed"] == 11 and marker["now"].startswith("2026-03-02")
    assert "assay demo" in marker["note"]
    flt = SpanFilter(project=s.project)
    envs = store.aggregate(flt, None, "environment")
    assert [a.group for a in envs] == ["demo"]


def test_traces_look_like_production(built: tuple[DuckDBStore, DemoSummary]) -> None:
    store, s = built
    assert s.traces == 1500 and 3 * s.traces <= s.spans <= 5 * s.traces
    flt = SpanFilter(project=s.project)
    roots = store.aggregate(flt.with_(kind="agent"), None, None)[0]
    assert 0.01 < roots.error_rate < 0.08
    first = min(a.bucket for a in store.aggregate(flt, timedelta(days=1), None) if a.bucket)
    assert NOW - timedelta(weeks=3, days=1) <= first < NOW - timedelta(weeks=3) + timedelta(days=1)
    models = {a.group for a in store.aggregate(flt.with_(kind="llm"), None, "model")}
    assert len(models) >= 4
    assert {a.group for a in store.aggregate(flt, None, "release")} >= {"v1.8.2", "v1.9.0"}
    assert [u.model for u in store.unpriced_models(flt)] == [s.unpriced_model]
    # The drift episode: the new release answers longer, slower and dearer.
    llm = flt.with_(kind="llm", route="/chat")
    old = store.aggregate(llm.with_(release="v1.8.2"), None, None)[0]
    new = store.aggregate(llm.with_(release="v1.9.0"), None, None)[0]
    assert new.p50_ms is not None and old.p50_ms is not None and new.p50_ms > 1.3 * old.p50_ms
    assert new.output_tokens / new.calls > 1.5 * old.output_tokens / old.calls
    assert new.cost / new.calls > 3 * old.cost / old.calls


def test_conversation_is_renderable(built: tuple[DuckDBStore, DemoSummary]) -> None:
    store, s = built
    spans = store.get_trace(s.project, s.conversation_trace_id)
    kinds = [sp.kind for sp in spans]
    assert kinds[0] == "agent" and "retriever" in kinds and "llm" in kinds
    answer = [sp for sp in spans if sp.kind == "llm" and sp.output_messages][-1]
    roles = [m["role"] for m in answer.input_messages or []]
    assert roles[0] == "system" and roles.count("user") >= 2 and "assistant" in roles
    assert answer.cost is not None and answer.input_tokens and answer.output_tokens
    root = spans[0]
    assert root.session_id and root.user_id and root.route == "/chat" and root.release


def test_golden_versions_and_promotion(built: tuple[DuckDBStore, DemoSummary]) -> None:
    store, s = built
    versions = store.list_golden_versions(s.project, s.golden)
    assert len(versions) == len(s.golden_versions) >= 2
    newest = store.golden_cases(s.project, s.golden, versions[0].version)
    promoted = [c for c in newest if c["id"] == s.promoted_case_id]
    assert promoted and promoted[0]["metadata"]["provenance"]["trace_id"] == s.promoted_trace_id
    assert promoted[0]["expected"] == "2 months free"
    first = {c["id"]: c for c in store.golden_cases(s.project, s.golden, s.golden_versions[0])}
    second = {c["id"]: c for c in store.golden_cases(s.project, s.golden, s.golden_versions[1])}
    assert set(second) - set(first), "the second version adds cases"
    assert any(first[k] != second[k] for k in first), "and edits some"


def _compare(store: Store, s: DemoSummary) -> Any:
    a = store.get_run(s.project, s.baseline_run)
    b = store.get_run(s.project, s.candidate_run)
    assert a is not None and b is not None
    assert a.status == b.status == "finished" and a.trials == b.trials == 3
    return compare_runs(a, b, case_scores(store, s.project, a), case_scores(store, s.project, b))


def test_candidate_regresses_on_one_scorer_only(built: tuple[DuckDBStore, DemoSummary]) -> None:
    store, s = built
    result = _compare(store, s)
    assert result.scorers[s.regression_scorer].verdict == "regression"
    assert result.scorers[s.steady_scorer].verdict == "no detectable change"
    assert result.regressions == [s.regression_scorer]
    # Some cases are flaky: they pass on some trials and fail on others.
    scores = case_scores(store, s.project, store.get_run(s.project, s.baseline_run))  # type: ignore[arg-type]
    flaky = [c for c, v in scores[s.regression_scorer].items() if 0 < sum(v) < len(v)]
    assert flaky


def test_monitors_alert_in_the_drift_episode(built: tuple[DuckDBStore, DemoSummary]) -> None:
    store, s = built
    assert {m.name for m in store.list_monitors(s.project)} == set(s.monitors)
    results = store.list_monitor_results(s.project, s.drift_monitor, limit=500)
    assert len(results) >= 10
    drifted = [r for r in results if r.verdict == "drift"]
    assert drifted and all(r.ran_at >= s.rollout_start for r in drifted)
    quiet = [r for r in results if r.ran_at < s.rollout_start]
    assert quiet and all(r.verdict != "drift" for r in quiet)
    alerts = store.list_monitor_alerts(s.project, s.drift_monitor)
    to_drift = [a for a in alerts if a.state == "drift"]
    assert to_drift and to_drift[-1].created_at >= s.rollout_start
    assert all(a.status == "delivered" for a in alerts)
    assert s.alerts >= len(alerts)


def test_queue_has_open_and_labelled_items(built: tuple[DuckDBStore, DemoSummary]) -> None:
    store, s = built
    progress = store.queue_progress(s.project, s.queue, NOW)
    assert progress.labelled == s.queue_labelled > 0
    assert progress.remaining == s.queue_open > 0
    assert len([who for who, n in progress.by_labeller.items() if n["labelled"]]) == 2


def test_judge_is_calibrated(built: tuple[DuckDBStore, DemoSummary]) -> None:
    store, s = built
    stored = store.get_calibrator(s.project, s.judge)
    assert stored is not None and stored.labels == s.labels and stored.n == s.queue_labelled
    data = store.judge_scores(s.project, s.judge, s.labels, SpanFilter(project=s.project))
    assert data.n_scored == s.judge_scores and data.n_pairs == s.queue_labelled
    report = judge_report(data, stored=stored)
    assert report.diagram is not None and report.offset.mean > 0  # a lenient judge
    origins = store.label_origins(s.project, data.label_ids, data.label_keys)
    sampling = check_sampling(origins)
    assert sampling.design == "random"
    estimate = quality_estimate(data, sampling=sampling)
    assert estimate.ppi.low < estimate.ppi.high
    rule = store.get_online_rule(s.project, s.judge)
    assert rule is not None and not rule.enabled


def test_feedback_on_traces(built: tuple[DuckDBStore, DemoSummary]) -> None:
    store, s = built
    thumbs = store.list_feedback(s.project, name="thumbs", limit=10_000)
    assert thumbs and {f.source for f in thumbs} == {"user"}
    assert {f.number for f in thumbs} == {0.0, 1.0}


def test_refuses_a_database_with_data(built: tuple[DuckDBStore, DemoSummary]) -> None:
    store, _ = built
    before = store.count_spans()
    with pytest.raises(DemoError, match="new --db path"):
        build_demo(store, Settings(), **SIZE)
    assert store.count_spans() == before


def test_same_seed_and_now_give_the_same_data(
    built: tuple[DuckDBStore, DemoSummary], tmp_path: Path
) -> None:
    store, s = built
    other = DuckDBStore(str(tmp_path / "again.duckdb"))
    try:
        t = build_demo(other, Settings(), **SIZE)
        assert (t.traces, t.spans, t.feedback, t.judge_scores) == (
            s.traces,
            s.spans,
            s.feedback,
            s.judge_scores,
        )
        assert t.golden_versions == s.golden_versions
        assert (t.conversation_trace_id, t.promoted_trace_id) == (
            s.conversation_trace_id,
            s.promoted_trace_id,
        )
        assert (t.queue_labelled, t.queue_open, t.monitor_results, t.alerts) == (
            s.queue_labelled,
            s.queue_open,
            s.monitor_results,
            s.alerts,
        )
        flt = SpanFilter(project=s.project)
        assert store.get_trace(s.project, s.conversation_trace_id) == other.get_trace(
            t.project, t.conversation_trace_id
        )
        def daily(st: Store) -> list[tuple[Any, ...]]:
            # Costs rounded: DuckDB may add a group's floats in another order each time.
            return [
                (a.bucket, a.group, a.calls, a.errors, a.p50_ms, a.output_tokens, round(a.cost, 9))
                for a in st.aggregate(flt, timedelta(days=1), "model")
            ]

        assert daily(store) == daily(other)
        for run in ("baseline_run", "candidate_run"):
            a = store.get_run(s.project, getattr(s, run))
            b = other.get_run(t.project, getattr(t, run))
            assert a is not None and b is not None
            assert case_scores(store, s.project, a) == case_scores(other, t.project, b)
        verdicts = [
            (r.ran_at, r.verdict, r.drifted)
            for r in store.list_monitor_results(s.project, s.drift_monitor, limit=500)
        ]
        again = [
            (r.ran_at, r.verdict, r.drifted)
            for r in other.list_monitor_results(t.project, t.drift_monitor, limit=500)
        ]
        assert verdicts == again
    finally:
        other.close()


def test_check_empty_accepts_a_new_store(tmp_path: Path) -> None:
    store = DuckDBStore(str(tmp_path / "new.duckdb"))
    try:
        check_empty(store)
    finally:
        store.close()


def test_cli_builds_then_refuses_the_same_file(tmp_path: Path) -> None:
    db = str(tmp_path / "cli.duckdb")
    runner = CliRunner()
    args = ["demo", "--db", db, "--traces", "300", "--weeks", "2", "--seed", "3"]
    first = runner.invoke(cli, args, auto_envvar_prefix="ASSAY")
    assert first.exit_code == 0, first.output
    assert "demo data" in first.output.lower()
    assert f"assay serve --db {db}" in first.output
    again = runner.invoke(cli, args, auto_envvar_prefix="ASSAY")
    assert again.exit_code == 2
    assert "new --db path" in again.output
    store = DuckDBStore(db, read_only=True)
    try:
        assert store.count_spans() > 0 and store.get_meta("demo")
    finally:
        store.close()


def test_cli_refuses_another_database_and_leaves_it_alone(tmp_path: Path) -> None:
    db = str(tmp_path / "real.duckdb")
    store = DuckDBStore(db)
    store.create_project("default")
    store.set_meta("owner", "me")
    from assay.feedback import make_feedback

    store.add_feedback([make_feedback("default", "a" * 32, "thumbs", True)])
    store.close()
    result = CliRunner().invoke(cli, ["demo", "--db", db], auto_envvar_prefix="ASSAY")
    assert result.exit_code == 2
    assert "already holds data" in result.output and "--db" in result.output
    store = DuckDBStore(db, read_only=True)
    try:
        assert store.get_meta("demo") is None and store.get_meta("owner") == "me"
        assert len(store.list_feedback("default")) == 1
    finally:
        store.close()


def test_bad_sizes_are_refused(tmp_path: Path) -> None:
    store = DuckDBStore(str(tmp_path / "x.duckdb"))
    try:
        with pytest.raises(DemoError, match="traces"):
            build_demo(store, Settings(), traces=10)
        with pytest.raises(DemoError, match="weeks"):
            build_demo(store, Settings(), weeks=1)
    finally:
        store.close()
