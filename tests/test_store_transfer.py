"""`assay store migrate`: DuckDB -> ClickHouse (chDB) -> DuckDB keeps every row and answer;
an interrupted copy resumes; counts are verified."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from assay.cli import cli
from assay.demo import build_demo
from assay.monitors.values import DELIVERED, MonitorAlert
from assay.online import ProgressUpdate, RuleProgress
from assay.query import SpanFilter
from assay.settings import Settings
from assay.store import open_store
from assay.store.duckdb import DuckDBStore
from assay.store.transfer import copy_store
from backends import close

pytest.importorskip("chdb")

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("src") / "demo.duckdb"
    store = DuckDBStore(str(path))
    build_demo(store, Settings(db=str(path)), seed=5, now=NOW, traces=300)
    store.close()
    return path


def answers(store: Any) -> dict[str, Any]:
    """What users see, through the Store protocol only (floats compared approximately:
    engines add them in different orders)."""
    flt = SpanFilter("default")
    runs = store.list_runs("default")
    queues = store.list_queues("default")
    monitors = store.list_monitors("default")
    rules = store.list_online_rules("default")
    return {
        "traces": close(store.list_traces(flt, 50, None).items),
        "aggregate": close(store.aggregate(flt, None, "model")),
        "runs": sorted(r.run_id for r in runs),
        "trials": sorted(
            (t.case_id, t.trial, t.output.text if t.output else None)
            for t in store.iter_trials("default", runs[0].run_id)
        ),
        "goldens": sorted((v.name, v.version) for v in store.list_golden_versions("default")),
        "monitors": close(monitors),
        "monitor_results": {
            m.name: close(store.list_monitor_results("default", m.name, limit=100_000))
            for m in monitors
        },
        "reports": [
            close(store.get_monitor_result("default", m.name, m.last_result_id))
            for m in monitors
            if m.last_result_id
        ],
        "monitor_alerts": {
            m.name: close(store.list_monitor_alerts("default", m.name, limit=100_000))
            for m in monitors
        },
        "online_rules": close(rules),
        "queues": sorted((q.name, q.item_count) for q in queues),
        "feedback": len(store.list_feedback("default", limit=100_000)),
        "calibrators": sorted(c.judge for c in store.list_calibrators("default")),
        "keys": store.list_keys(),
    }


def _with_state(demo_file: Path, path: Path) -> Path:
    """A copy of the demo whose monitor has a state set by a run and a next run, and whose
    online rule has spend in two budget periods and a last error."""
    shutil.copy(demo_file, path)
    store = open_store(str(path))
    try:
        monitor = store.list_monitors("default")[0]
        claimed = store.claim_monitor("w", NOW, NOW + timedelta(minutes=5), "default", monitor.name)
        assert claimed is not None
        last = store.list_monitor_results("default", monitor.name, limit=1)[0]
        run = replace(last, result_id="r-state", ran_at=NOW, trigger="manual", state="drift")
        alerts = [
            MonitorAlert(
                f"a-{n}", "default", monitor.name, run.result_id, url, "drift", None, {"n": n}, NOW
            )
            for n, url in enumerate(monitor.webhooks * 2)
        ]
        until = NOW + timedelta(minutes=5)
        assert store.record_monitor_run(run, "w", NOW + timedelta(hours=2), alerts, until)
        sent = replace(alerts[0], status=DELIVERED, attempts=1, last_status=200, delivered_at=NOW)
        retry = replace(alerts[1], attempts=1, last_status=503, error="unavailable",
                        next_attempt_at=NOW + timedelta(minutes=1))  # fmt: skip
        assert store.save_alert_attempt(sent, "w", None)
        assert store.save_alert_attempt(retry, "w", None)
        rule = store.list_online_rules("default")[0]
        assert store.update_online_rule(replace(rule, enabled=True))  # the demo paused it
        assert store.claim_online_rule("w", NOW, NOW + timedelta(minutes=5)) is not None
        for at, period, spend, error in (
            (NOW, "2026-05", 1.25, "judge timed out"),
            (NOW + timedelta(minutes=1), "2026-06", 0.5, None),
        ):
            update = ProgressUpdate(
                at=at, scored=1, spend_usd=spend, period=period, last_error=error
            )
            assert store.record_online_progress("default", rule.name, "w", update)
        assert store.release_online_rule("default", rule.name, "w")
    finally:
        store.close()
    return path


def test_round_trip_keeps_every_answer(demo_file: Path, tmp_path: Path) -> None:
    src = open_store(str(_with_state(demo_file, tmp_path / "src.duckdb")), read_only=True)
    ch_url = f"chdb://{tmp_path / 'ch'}"
    ch = open_store(ch_url)
    back = open_store(str(tmp_path / "back.duckdb"))
    try:
        before = answers(src)
        # The demo ran monitors and an online rule: the copy has state worth keeping.
        assert before["monitor_results"] and all(before["monitor_results"].values())
        assert all(m.last_run_at and m.next_run_at for m in src.list_monitors("default"))
        assert any(m.state == "drift" for m in src.list_monitors("default"))
        assert sum(map(len, before["monitor_alerts"].values())) == 2 and before["reports"]
        progress = src.list_online_rules("default")[0].progress
        assert progress.scored and progress.spend_total_usd > progress.spend_usd > 0
        report = copy_store(src, ch, str(demo_file), ch_url, batch_rows=500)
        assert report.ok, report
        reshaped = {"monitors", "monitor_results", "monitor_alerts", "online_rules"}
        assert not [t for t in report.tables if t.table in reshaped and t.dropped_columns]
        assert answers(ch) == before
        again = copy_store(ch, back, ch_url, str(tmp_path / "back.duckdb"))
        assert again.ok
        assert answers(back) == before
        # Work goes on where it stopped: a run adds to the monitor's history, a flush in
        # the same budget period adds to its spend.
        monitor = next(m for m in ch.list_monitors("default") if m.state == "drift")
        later = NOW + timedelta(hours=3)
        until = later + timedelta(minutes=5)
        # The alert that was to be retried is still due (nobody holds it on the copy).
        assert [a.alert_id for a in ch.claim_alerts("w", later, until)] == ["a-1"]
        assert ch.claim_monitor("w", later, until, "default", monitor.name) is not None
        runs = ch.list_monitor_results("default", monitor.name, limit=1000)
        assert ch.record_monitor_run(
            replace(runs[0], result_id="r-after", ran_at=later), "w", None, ()
        )
        after = ch.list_monitor_results("default", monitor.name, limit=1000)
        assert [r.result_id for r in after] == ["r-after"] + [r.result_id for r in runs]
        rule = ch.list_online_rules("default")[0]
        assert ch.claim_online_rule("w", later, later + timedelta(minutes=5)) is not None
        update = ProgressUpdate(at=later, scored=1, spend_usd=0.25, period="2026-06")
        assert ch.record_online_progress("default", rule.name, "w", update)
        moved = ch.list_online_rules("default")[0].progress
        assert moved.scored == rule.progress.scored + 1
        assert moved.watermark == rule.progress.watermark
        assert (moved.spend_period, moved.spend_usd) == ("2026-06", pytest.approx(0.75))
        assert moved.spend_total_usd == pytest.approx(rule.progress.spend_total_usd + 0.25)
    finally:
        for store in (src, ch, back):
            store.close()


def test_a_monitor_or_rule_created_again_copies_without_its_old_history(
    demo_file: Path, tmp_path: Path
) -> None:
    src_file = _with_state(demo_file, tmp_path / "src.duckdb")
    src = open_store(str(src_file), read_only=True)
    ch_url = f"chdb://{tmp_path / 'ch'}"
    ch = open_store(ch_url)
    back = open_store(str(tmp_path / "back.duckdb"))
    try:
        assert copy_store(src, ch, str(src_file), ch_url).ok
        monitor = next(m for m in ch.list_monitors("default") if m.state == "drift")
        assert ch.list_monitor_alerts("default", monitor.name)
        rule = ch.list_online_rules("default")[0]
        assert ch.list_monitor_results("default", monitor.name)
        assert rule.progress.scored
        fresh = replace(monitor, state=None, state_since=None, last_run_at=None,
                        last_result_id=None)  # fmt: skip
        assert ch.delete_monitor("default", monitor.name) and ch.create_monitor(fresh)
        assert ch.delete_online_rule("default", rule.name)
        assert ch.create_online_rule(replace(rule, progress=RuleProgress(rule.progress.watermark)))
        start = ch.list_online_rules("default")[0].progress
        assert start.scored == 0 and start.spend_total_usd == 0
        report = copy_store(ch, back, ch_url, str(tmp_path / "back.duckdb"))
        assert report.ok
        counts = {t.table: t.destination_rows for t in report.tables}
        assert counts["monitor_results"] == sum(
            len(back.list_monitor_results("default", m.name, limit=100_000))
            for m in back.list_monitors("default")
        )
        assert back.list_monitor_results("default", monitor.name) == []
        assert back.list_monitor_alerts("default", monitor.name) == []
        assert back.get_monitor("default", monitor.name) == fresh
        copied = back.get_online_rule("default", rule.name)
        assert copied is not None and copied.progress == start
    finally:
        for store in (src, ch, back):
            store.close()


def test_online_rules_have_nothing_new_to_score_after_a_copy(
    demo_file: Path, tmp_path: Path
) -> None:
    src = open_store(str(demo_file), read_only=True)
    ch_url = f"chdb://{tmp_path / 'ch'}"
    ch = open_store(ch_url)
    try:
        assert copy_store(src, ch, str(demo_file), ch_url).ok
        for store in (src, ch):
            rule = store.list_online_rules("default")[0]
            backlog = store.online_backlog(rule.span_filter(), rule.progress.watermark)
            assert backlog == (0, None)
    finally:
        src.close()
        ch.close()


def test_an_interrupted_copy_resumes_and_copies_nothing_twice(
    demo_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = open_store(str(demo_file), read_only=True)
    ch_url = f"chdb://{tmp_path / 'ch'}"
    ch = open_store(ch_url)
    real = type(ch).write_table
    calls = {"n": 0}

    def failing(self: Any, table: str, data: Any) -> None:
        calls["n"] += 1
        if table == "feedback":
            raise RuntimeError("connection lost")
        real(self, table, data)

    try:
        monkeypatch.setattr(type(ch), "write_table", failing)
        with pytest.raises(RuntimeError):
            copy_store(src, ch, str(demo_file), ch_url)
        monkeypatch.setattr(type(ch), "write_table", real)
        report = copy_store(src, ch, str(demo_file), ch_url)
        assert report.ok
        by = {t.table: t for t in report.tables}
        assert by["projects"].skipped and by["projects"].copied_rows == 0
        assert by["feedback"].copied_rows == by["feedback"].source_rows
        assert by["spans"].destination_rows == by["spans"].source_rows
    finally:
        src.close()
        ch.close()


def test_cli_migrate_prints_verified_counts_and_refuses_a_bad_url(
    demo_file: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    out = runner.invoke(
        cli, ["store", "migrate", "--from", str(demo_file), "--to", f"chdb://{tmp_path / 'c'}"]
    )
    assert out.exit_code == 0, out.output
    assert "spans" in out.output and "NO" not in out.output
    bad = runner.invoke(
        cli, ["store", "migrate", "--from", str(demo_file), "--to", "postgres://x/y"]
    )
    assert bad.exit_code == 2 and "not supported" in " ".join(bad.output.split())
