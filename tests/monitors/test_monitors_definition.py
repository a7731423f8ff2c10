"""Monitor definitions: schedules, relative windows, webhooks and when to alert."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from assay.monitors.definition import (
    format_seconds,
    new_monitor,
    next_run,
    parse_every,
)
from assay.monitors.values import MonitorCheck, MonitorError, should_alert
from assay.settings import Settings, SettingsError
from assay.store.duckdb import DuckDBStore

pytestmark = pytest.mark.all_backends

NOW = datetime(2026, 3, 5, 12, tzinfo=UTC)
CHECK = MonitorCheck(window="1d", reference="30d..1d")


def test_schedules_are_durations_of_at_least_a_minute() -> None:
    assert parse_every("1h") == 3600 and parse_every("90m") == 5400 and parse_every(60) == 60
    assert [format_seconds(s) for s in (3600, 5400, 86_400, 604_800, 61)] == [
        "1h", "90m", "1d", "1w", "61s",
    ]  # fmt: skip
    with pytest.raises(MonitorError, match="minimum of 1m"):
        parse_every("30s")
    with pytest.raises(MonitorError, match="not a duration"):
        parse_every("hourly")
    with pytest.raises(MonitorError, match="maximum of 90d"):
        parse_every("20w")


def test_next_run_keeps_the_cadence_and_skips_missed_slots() -> None:
    start = datetime(2026, 3, 5, tzinfo=UTC)
    assert next_run(start, 3600, start + timedelta(minutes=1)) == start + timedelta(hours=1)
    late = start + timedelta(hours=5, minutes=30)
    assert next_run(start, 3600, late) == start + timedelta(hours=6)
    assert next_run(None, 3600, late) == late + timedelta(hours=1)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"name": "bad name!"}, "monitor name 'bad name!'"),
        ({"every": "10s"}, "minimum of 1m"),
        ({"webhooks": ["ftp://example.com/x"]}, "not an http(s) URL"),
        ({"webhooks": ["https://"]}, "not an http(s) URL"),
        ({"check": MonitorCheck(window="2026-03-01..2026-03-02", reference="30d..1d")},
         "has a fixed time"),
        ({"check": MonitorCheck(window="1d", reference="2026-01-01..1d")}, "has a fixed time"),
        ({"check": MonitorCheck(window="..1d", reference="30d..1d")}, "has no start"),
        ({"check": MonitorCheck(window="1d..7d", reference="30d..1d")}, "older time first"),
        ({"check": MonitorCheck(window="1d")}, "exactly one reference"),
        ({"check": MonitorCheck(window="1d", reference="30d..1d", reference_goldens="g")},
         "one reference"),
        ({"check": MonitorCheck(window="1d", reference="30d..1d", features=("latency",))},
         "unknown drift feature 'latency'"),
        ({"check": MonitorCheck(window="1d", reference="30d..1d", embedder="word2vec")},
         "embedder"),
        ({"check": MonitorCheck(window="1d", reference="30d..1d", filters={"colour": "red"})},
         "unknown filter"),
        ({"check": MonitorCheck(window="1d", reference="30d..1d", alpha=1.5)}, "alpha"),
        ({"check": MonitorCheck(window="1d", reference_goldens="support")},
         "golden set 'support' is not stored"),
    ],
)  # fmt: skip
def test_bad_definitions_are_refused_with_the_reason(
    store: DuckDBStore, changes: dict[str, object], reason: str
) -> None:
    args: dict[str, object] = {"name": "m", "check": CHECK, "every": "1h", "webhooks": ()}
    args.update(changes)
    with pytest.raises(MonitorError, match=re.escape(reason)):
        new_monitor(store, "default", now=NOW, **args)  # type: ignore[arg-type]


def test_a_good_definition_is_due_at_once_unless_disabled(store: DuckDBStore) -> None:
    urls = ["https://hooks.example.com/a", "https://hooks.example.com/a", "http://10.0.0.2:9/b"]
    monitor = new_monitor(store, "default", "input-drift", CHECK, "1h", urls, now=NOW)
    assert monitor.next_run_at == NOW and monitor.every_seconds == 3600
    assert monitor.webhooks == ("https://hooks.example.com/a", "http://10.0.0.2:9/b")
    assert new_monitor(store, "default", "m", CHECK, "1h", enabled=False).next_run_at is None
    store.save_golden_set("default", "support", "c" * 64, [{"id": "a", "input": "hi"}])
    golden = MonitorCheck(window="6h", reference_goldens="support@ccc")
    assert new_monitor(store, "default", "g", golden, "15m").check.reference_goldens


@pytest.mark.parametrize(
    ("previous", "state", "alert"),
    [
        (None, "ok", False),  # the first healthy run is not news
        (None, "drift", True),
        (None, "error", True),
        ("ok", "drift", True),
        ("drift", "ok", True),
        ("ok", "error", True),
        ("error", "ok", True),
        ("drift", "drift", False),
        ("ok", "ok", False),
        ("drift", None, False),  # inconclusive: state unchanged
    ],
)
def test_alerts_only_on_a_change_of_state(previous: str | None, state: str | None,
                                          alert: bool) -> None:  # fmt: skip
    assert should_alert(previous, state) is alert


def test_monitor_settings() -> None:
    assert Settings.from_env({}).monitors is True
    off = Settings.from_env({"ASSAY_MONITORS": "false", "ASSAY_MONITOR_TICK_SECONDS": "0.5"})
    assert off.monitors is False and off.monitor_tick_seconds == 0.5
    with pytest.raises(SettingsError, match="ASSAY_MONITORS='maybe' is not a boolean"):
        Settings.from_env({"ASSAY_MONITORS": "maybe"})
    with pytest.raises(SettingsError, match=r"ASSAY_MONITOR_TICK_SECONDS=0\.0 must be between"):
        Settings.from_env({"ASSAY_MONITOR_TICK_SECONDS": "0"})
