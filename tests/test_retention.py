"""Per-project retention, on every store backend: set, list, delete what is past it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from click.testing import CliRunner

from assay.cli import cli
from assay.retention import RetentionError, apply_retention, check_days
from assay.store.duckdb import DuckDBStore
from online_support import span

pytestmark = pytest.mark.all_backends

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def aged(n: int, project: str = "default") -> list:  # type: ignore[type-arg]
    """Spans 0..n-1 days old."""
    out = []
    for i in range(n):
        s = replace(span(i, salt=project), project=project)
        start = NOW - timedelta(days=i, minutes=1)
        out.append(replace(s, start_time=start, end_time=start + timedelta(seconds=1)))
    return out


def test_each_project_keeps_its_own_period(store: DuckDBStore) -> None:
    store.insert_spans(aged(10) + aged(10, "other"))
    store.set_retention("default", 3)
    store.set_retention("other", 7)
    assert store.retention() == {"default": 3.0, "other": 7.0}
    assert apply_retention(store, NOW) == {"default": 7, "other": 3}
    assert store.count_spans("default") == 3 and store.count_spans("other") == 7
    assert apply_retention(store, NOW) == {"default": 0, "other": 0}  # idempotent
    store.set_retention("other", None)
    assert store.retention() == {"default": 3.0}


def test_bad_periods_are_refused_with_the_range() -> None:
    assert check_days(None) is None and check_days(30) == 30.0
    for bad in (0, -1, 0.001, 1e9):
        with pytest.raises(RetentionError, match="out of range"):
            check_days(bad)


async def test_api_sets_shows_and_applies_retention(
    client: httpx.AsyncClient, store: DuckDBStore
) -> None:
    store.create_project("default")
    store.insert_spans(aged(5))
    r = await client.put("/api/v1/projects/default/retention", json={"days": 2})
    assert r.status_code == 200 and r.json() == {"project": "default", "days": 2.0}
    assert (await client.get("/api/v1/projects/default/retention")).json()["days"] == 2.0
    bad = await client.put("/api/v1/projects/default/retention", json={"days": 0})
    assert bad.status_code == 400 and "out of range" in bad.text
    missing = await client.put("/api/v1/projects/nope/retention", json={"days": 2})
    assert missing.status_code == 404
    applied = await client.post("/api/v1/retention/apply")
    # The newest spans are minutes old by the real clock's standard, the rest older.
    assert applied.status_code == 200 and applied.json()["default"] >= 3
    off = await client.put("/api/v1/projects/default/retention", json={"days": None})
    assert off.json()["days"] is None


def test_cli_retention(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ASSAY_DB", str(tmp_path / "a.duckdb"))
    monkeypatch.setenv("ASSAY_URL", "http://127.0.0.1:9")
    runner = CliRunner()
    out = runner.invoke(cli, ["projects", "retention", "default", "--days", "30"])
    assert out.exit_code == 0, out.output
    assert "keeps spans for 30 days" in out.output
    out = runner.invoke(cli, ["projects", "retention", "default", "--off", "--apply"])
    assert out.exit_code == 0 and "forever" in out.output and "deleted 0" in out.output
