"""`assay store migrate`: DuckDB -> ClickHouse (chDB) -> DuckDB keeps every row and answer;
an interrupted copy resumes; counts are verified."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from assay.cli import cli
from assay.demo import build_demo
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
    return {
        "traces": close(store.list_traces(flt, 50, None).items),
        "aggregate": close(store.aggregate(flt, None, "model")),
        "runs": sorted(r.run_id for r in runs),
        "trials": sorted(
            (t.case_id, t.trial, t.output.text if t.output else None)
            for t in store.iter_trials("default", runs[0].run_id)
        ),
        "goldens": sorted((v.name, v.version) for v in store.list_golden_versions("default")),
        "monitors": sorted(m.name for m in store.list_monitors("default")),
        "queues": sorted((q.name, q.item_count) for q in queues),
        "feedback": len(store.list_feedback("default", limit=100_000)),
        "calibrators": sorted(c.judge for c in store.list_calibrators("default")),
        "keys": store.list_keys(),
    }


def test_round_trip_keeps_every_answer(demo_file: Path, tmp_path: Path) -> None:
    src = open_store(str(demo_file), read_only=True)
    ch_url = f"chdb://{tmp_path / 'ch'}"
    ch = open_store(ch_url)
    back = open_store(str(tmp_path / "back.duckdb"))
    try:
        before = answers(src)
        report = copy_store(src, ch, str(demo_file), ch_url, batch_rows=500)
        assert report.ok, report
        assert answers(ch) == before
        again = copy_store(ch, back, ch_url, str(tmp_path / "back.duckdb"))
        assert again.ok
        assert answers(back) == before
    finally:
        for store in (src, ch, back):
            store.close()


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
