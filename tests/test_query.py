"""Parsing what users type: times, durations, buckets, group-bys, cursors, settings."""

from __future__ import annotations

import pathlib
from datetime import UTC, datetime, timedelta

import pytest

from assay.query import (
    QueryError,
    SpanFilter,
    check_group,
    decode_cursor,
    encode_cursor,
    parse_bucket,
    parse_time,
)
from assay.settings import Settings, SettingsError, is_loopback

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20T10:00:00Z", datetime(2026, 11, 20, 10, tzinfo=UTC)),
        ("2026-11-20T10:00:00", datetime(2026, 11, 20, 10, tzinfo=UTC)),
        ("2026-11-20T12:00:00+02:00", datetime(2026, 11, 20, 10, tzinfo=UTC)),
        ("1h", NOW - timedelta(hours=1)),
        ("7d ago", NOW - timedelta(days=7)),
        ("now", NOW),
        ("0", datetime(1970, 1, 1, tzinfo=UTC)),
    ],
)
def test_parse_time_forms(text: str, expected: datetime) -> None:
    assert parse_time(text, now=NOW) == expected


def test_parse_time_errors_say_what_works() -> None:
    with pytest.raises(QueryError, match="ISO-8601"):
        parse_time("yesterdayish", now=NOW)
    assert parse_time(None) is None


def test_bucket_and_group() -> None:
    assert parse_bucket("5m") == timedelta(minutes=5)
    assert parse_bucket(None) is None
    with pytest.raises(QueryError, match="unit"):
        parse_bucket("5 parsecs")
    assert check_group("model") == "model" and check_group(None) is None
    with pytest.raises(QueryError, match="use one of"):
        check_group("colour; DROP TABLE spans")


def test_filter_validation() -> None:
    with pytest.raises(QueryError, match="not after start"):
        SpanFilter("p", start=NOW, end=NOW - timedelta(hours=1))
    with pytest.raises(QueryError, match="status"):
        SpanFilter("p", status="failed")
    with pytest.raises(QueryError, match="32 lower-case hex"):
        SpanFilter("p", trace_id="xyz")


def test_cursor_round_trip_and_tampering() -> None:
    c = encode_cursor("2026-01-01T00:00:00+00:00", "ab")
    assert decode_cursor(c, 2) == ["2026-01-01T00:00:00+00:00", "ab"]
    with pytest.raises(QueryError, match="next_cursor"):
        decode_cursor("not-a-cursor!!", 2)
    with pytest.raises(QueryError):
        decode_cursor(c, 3)


def test_settings_from_env_and_errors() -> None:
    s = Settings.from_env({"ASSAY_PORT": "9000", "ASSAY_DB": "x.duckdb", "ASSAY_HOST": "0.0.0.0"})
    assert (s.port, s.db, s.loopback, s.require_keys) == (9000, "x.duckdb", False, True)
    assert Settings.from_env({}, port=7801).port == 7801
    with pytest.raises(SettingsError, match="ASSAY_PORT='abc' is not a number"):
        Settings.from_env({"ASSAY_PORT": "abc"})
    with pytest.raises(SettingsError, match="ASSAY_PORT=70000"):
        Settings.from_env({"ASSAY_PORT": "70000"})
    with pytest.raises(SettingsError, match="ASSAY_PRICES"):
        Settings.from_env({"ASSAY_PRICES": "/nonexistent/prices.json"})
    with pytest.raises(SettingsError, match=r"ASSAY_DUCKDB_CHECKPOINT_THRESHOLD='lots'.*64MB"):
        Settings.from_env({"ASSAY_DUCKDB_CHECKPOINT_THRESHOLD": "lots"})
    with pytest.raises(SettingsError, match="ASSAY_DUCKDB_MEMORY_LIMIT"):
        Settings.from_env({"ASSAY_DUCKDB_MEMORY_LIMIT": "512"})
    big = Settings.from_env({"ASSAY_DUCKDB_CHECKPOINT_THRESHOLD": "1.5GiB"})
    assert big.duckdb_checkpoint_threshold == "1.5GiB"
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.5")


def test_the_checkpoint_threshold_reaches_duckdb(tmp_path: pathlib.Path) -> None:
    from assay.store import open_store

    store = open_store(str(tmp_path / "c.duckdb"), checkpoint_threshold="48MB")
    try:
        value = store._cursor().execute("SELECT current_setting('checkpoint_threshold')")  # type: ignore[attr-defined]
        assert value.fetchall()[0][0] == "45.7 MiB"  # 48 MB in DuckDB's binary units
    finally:
        store.close()


def test_row_group_size_setting_and_its_errors() -> None:
    from assay.store.duckdb import DEFAULT_ROW_GROUP_SIZE

    assert Settings().duckdb_row_group_size == DEFAULT_ROW_GROUP_SIZE
    assert Settings.from_env({"ASSAY_DUCKDB_ROW_GROUP_SIZE": "122880"}).duckdb_row_group_size == (
        122880
    )
    for bad in ("1000", "0", "2097152"):
        with pytest.raises(SettingsError, match=rf"ASSAY_DUCKDB_ROW_GROUP_SIZE={bad} .*2048"):
            Settings.from_env({"ASSAY_DUCKDB_ROW_GROUP_SIZE": bad})

