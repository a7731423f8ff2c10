"""Drift windows: range syntax, filters, golden references, and the bounded sample."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from assay.drift.windows import (
    GoldenNotFoundError,
    GoldenWindow,
    SpanWindow,
    WindowError,
    golden_window,
    load_window,
    parse_range,
    span_window,
    windows_overlap,
)
from assay.query import QueryError, SpanFilter
from assay.store import Store
from drift_support import DAY1, traffic

# Windows and the embedding cache behave alike on every store backend.
pytestmark = pytest.mark.all_backends

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("7d ago..1d ago", NOW - 7 * DAY, NOW - DAY),
        ("30d..1d", NOW - 30 * DAY, NOW - DAY),
        ("last 1d", NOW - DAY, NOW),
        ("last 90m", NOW - timedelta(minutes=90), NOW),
        ("2d", NOW - 2 * DAY, NOW),
        (" 2h ago .. now ", NOW - timedelta(hours=2), NOW),
        (
            "2026-03-01..2026-03-08T12:00Z",
            datetime(2026, 3, 1, tzinfo=UTC),
            datetime(2026, 3, 8, 12, tzinfo=UTC),
        ),
        ("2026-03-01T00:00:00+01:00..", datetime(2026, 2, 28, 23, tzinfo=UTC), NOW),
        ("..1d ago", None, NOW - DAY),
        ("2026-03-09", datetime(2026, 3, 9, tzinfo=UTC), NOW),
        (
            "1773000000..1773086400",
            datetime.fromtimestamp(1773000000, UTC),
            datetime.fromtimestamp(1773086400, UTC),
        ),
    ],
)
def test_range_forms(text: str, start: datetime | None, end: datetime) -> None:
    assert parse_range(text, NOW) == (start, end)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("1d ago..7d ago", "write the older time first"),
        ("yesterday..now", "START..END"),
        ("last week", "START..END"),
        ("", "window is empty"),
        ("7x..1d", "is not a time"),
    ],
)
def test_bad_ranges_say_what_works(text: str, reason: str) -> None:
    with pytest.raises(WindowError) as info:
        parse_range(text, NOW, "reference")
    assert reason in str(info.value)
    assert isinstance(info.value, QueryError)  # the API answers 400 for these


def test_span_window_carries_the_query_filters() -> None:
    w = span_window(
        "last 1d", "p", {"model": "gpt-4o", "route": None}, {"tenant": "acme"}, NOW, "current"
    )
    assert w.filter == SpanFilter(
        "p", start=NOW - DAY, end=NOW, model="gpt-4o", attributes={"tenant": "acme"}
    )
    assert w.filters() == {"model": "gpt-4o", "attributes": {"tenant": "acme"}}
    with pytest.raises(WindowError, match=r"unknown filter.*colour"):
        span_window("last 1d", "p", {"colour": "red"}, now=NOW)
    with pytest.raises(QueryError, match="status"):
        span_window("last 1d", "p", {"status": "fine"}, now=NOW)


def test_golden_reference_syntax() -> None:
    assert golden_window("support", "p") == GoldenWindow("p", "support", None)
    assert golden_window("support@ABC123", "p") == GoldenWindow("p", "support", "abc123")
    with pytest.raises(WindowError, match="NAME@VERSION"):
        golden_window("support@not-a-hash", "p")


def test_overlap_is_about_time_ranges() -> None:
    a = span_window("7d ago..1d ago", "p", now=NOW)
    b = span_window("last 1d", "p", now=NOW)
    c = span_window("last 2d", "p", now=NOW)
    assert not windows_overlap(a, b)
    assert windows_overlap(a, c) and windows_overlap(b, c)
    assert not windows_overlap(a, GoldenWindow("p", "g"))


@pytest.fixture
def filled(store: Store) -> Store:
    # 300 traces over 300 minutes: 600 LLM spans.
    store.insert_spans(traffic(300, DAY1, seed=1))
    return store


def _window(text: str = "2026-03-01..2026-03-02") -> SpanWindow:
    return span_window(text, "default", {"kind": "llm"})


def test_a_large_window_is_sampled_uniformly_and_the_same_way_every_time(
    filled: Store,
) -> None:
    data = load_window(filled, _window(), ["start_time", "duration_ms"], limit=200, seed=7)
    assert data.total == 600 and data.table.num_rows == 200 and data.sampled
    again = load_window(filled, _window(), ["duration_ms"], limit=200, seed=7)
    ids = data.table.column("span_id").to_pylist()
    assert again.table.column("span_id").to_pylist() == ids
    # Any prefix is the smaller sample: growing the cap keeps the spans already read.
    smaller = load_window(filled, _window(), ["duration_ms"], limit=50, seed=7)
    assert smaller.table.column("span_id").to_pylist() == ids[:50]
    other = load_window(filled, _window(), ["duration_ms"], limit=200, seed=8)
    assert len(set(other.table.column("span_id").to_pylist()) & set(ids)) < 120
    # Uniform over time, not the first or last 200 spans: about a third in each third.
    starts = data.table.column("start_time").to_pylist()
    minutes = [(t.replace(tzinfo=UTC) - DAY1).total_seconds() / 60 for t in starts]
    thirds = [sum(lo <= m < lo + 100 for m in minutes) for lo in (0, 100, 200)]
    assert all(45 <= n <= 90 for n in thirds), thirds


def test_small_window_is_read_whole_with_only_the_asked_fields(filled: Store) -> None:
    data = load_window(
        filled,
        _window("2026-03-01T00:00Z..2026-03-01T00:10Z"),
        ["model", "tools", "input_length"],
        ["llm.token_count.total"],
    )
    assert data.total == 20 and not data.sampled
    assert data.table.column_names == [
        "trace_id",
        "span_id",
        "model",
        "tools",
        "input_length",
        "attr:llm.token_count.total",
    ]


def test_golden_window_reads_inputs_and_expected_answers(store: Store) -> None:
    cases = [
        {"id": "a", "input": "where is my parcel", "expected": "It ships today."},
        {
            "id": "b",
            "input": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "refund please"},
            ],
            "expected": {"action": "refund"},
        },
        {"id": "c", "input": "no answer given"},
    ]
    store.save_golden_set("default", "support", "f" * 64, cases)
    data = load_window(
        store,
        golden_window("support@ffff", "default"),
        ["input_text", "output_length", "duration_ms"],
    )
    assert data.golden == f"support@{'f' * 64}" and data.total == 3
    assert data.fields == ("input_text", "output_length")  # no latency in a golden set
    rows = data.table.to_pylist()
    assert [r["input_text"] for r in rows] == [
        "where is my parcel",
        "refund please",
        "no answer given",
    ]
    assert [r["output_length"] for r in rows] == [15.0, len('{"action": "refund"}'), None]
    assert {r["trace_id"] for r in rows} == {f"golden:support@{'f' * 64}"}
    with pytest.raises(GoldenNotFoundError, match="assay goldens add"):
        load_window(store, golden_window("nope", "default"), ["input_text"])


def test_a_duration_outside_the_calendar_is_a_window_error() -> None:
    from assay.drift.windows import WindowError, parse_range

    with pytest.raises(WindowError, match="outside the calendar"):
        parse_range("999999d", what="current")
