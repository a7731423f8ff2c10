"""Store behaviour every backend must share (parametrized by the `store` fixture)."""

from __future__ import annotations

import statistics
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from assay import synthetic
from assay.model import Span
from assay.otlp import decode_request
from assay.pricing import Price, PriceTable, load_prices
from assay.query import SpanFilter
from assay.store import Store, StoreError, StoreLockedError
from assay.store.duckdb import DuckDBStore
from assay.store.migrations import MIGRATIONS

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def span(i: int, project: str = "p", **kw: object) -> Span:
    start = T0 + timedelta(minutes=i)
    values: dict[str, object] = dict(
        project=project,
        trace_id=f"{i // 3 + 1:032x}",
        span_id=f"{i + 1:016x}",
        parent_span_id=None,
        service="svc",
        name=f"op{i % 2}",
        kind="llm",
        otel_kind="client",
        start_time=start,
        end_time=start + timedelta(milliseconds=10 * (i + 1)),
        duration_ms=10.0 * (i + 1),
        status="error" if i % 5 == 0 else "ok",
        model="m-a" if i % 2 else "m-b",
        input_tokens=i,
        output_tokens=2 * i,
        cost=0.001 * i,
        input_text=f"question number {i}",
        output_text="ANSWER 100% done_ok",
        route="/r1" if i < 30 else "/r2",
        attributes={"tenant": f"t{i % 3}", "n": i},
    )
    values.update(kw)
    return Span(**values)  # type: ignore[arg-type]


@pytest.fixture
def filled(store: Store) -> Store:
    store.insert_spans([span(i) for i in range(60)])
    store.insert_spans([span(i, project="other") for i in range(10)])
    return store


def test_insert_is_idempotent_and_returns_new_count(store: Store) -> None:
    batch = [span(i) for i in range(10)]
    assert store.insert_spans(batch) == 10
    assert store.insert_spans([*batch, span(10)]) == 1
    assert store.insert_spans(batch[:3] + batch[:3]) == 0  # duplicates inside one batch too
    assert store.count_spans("p") == 11


def test_round_trip_keeps_every_field(store: Store) -> None:
    s = span(
        7,
        input_messages=[{"role": "user", "content": "hé"}],
        events=[{"name": "e"}],
        resource_attributes={"service.name": "svc"},
        cached_input_tokens=3,
    )
    store.insert_spans([s])
    (back,) = store.get_trace("p", s.trace_id)
    assert back == s


def test_aggregates_match_a_direct_computation(filled: Store) -> None:
    rows = filled.aggregate(SpanFilter("p"), None, "model")
    by = {r.group: r for r in rows}
    for model, parity in (("m-a", 1), ("m-b", 0)):
        own = [span(i) for i in range(60) if i % 2 == parity]
        r = by[model]
        assert r.calls == len(own)
        assert r.errors == sum(s.status == "error" for s in own)
        durations = [s.duration_ms for s in own]
        assert r.p50_ms == pytest.approx(statistics.median(durations))
        assert r.p95_ms == pytest.approx(
            statistics.quantiles(durations, n=100, method="inclusive")[94]
        )
        assert r.p99_ms == pytest.approx(
            statistics.quantiles(durations, n=100, method="inclusive")[98]
        )
        assert r.input_tokens == sum(s.input_tokens or 0 for s in own)
        assert r.cost == pytest.approx(sum(s.cost or 0 for s in own))
    hourly = filled.aggregate(SpanFilter("p"), timedelta(hours=1), None)
    assert [r.bucket for r in hourly] == [T0]  # 60 one-minute spans → one hour bucket
    by_15 = filled.aggregate(SpanFilter("p"), timedelta(minutes=15), None)
    assert [r.calls for r in by_15] == [15, 15, 15, 15]


def test_aggregate_sets_equal_separate_aggregates_at_every_level(filled: Store) -> None:
    flt = SpanFilter("p")
    width = timedelta(minutes=15)
    # A group whose value is NULL must stay apart from the rolled-up rows.
    filled.insert_spans([span(100 + i, route=None) for i in range(3)])
    sets = filled.aggregate_sets(flt, width, "route")

    def same(a: list[Any], b: list[Any]) -> None:
        # One engine may add the same floats in another order than the other query did.
        assert [replace(x, cost=round(x.cost, 9)) for x in a] == [
            replace(x, cost=round(x.cost, 9)) for x in b
        ]

    same(sets.by_bucket_group, filled.aggregate(flt, width, "route"))
    same(sets.by_bucket, filled.aggregate(flt, width, None))
    same(sets.by_group, filled.aggregate(flt, None, "route"))
    same([sets.total], filled.aggregate(flt, None, None))
    assert None in {a.group for a in sets.by_group}
    only_groups = filled.aggregate_sets(flt, None, "model")
    assert only_groups.by_bucket_group == [] and only_groups.by_bucket == []
    same(only_groups.by_group, filled.aggregate(flt, None, "model"))
    assert filled.aggregate_sets(SpanFilter("nobody"), width, "model").total is None


def test_filters_narrow_results(filled: Store) -> None:
    def n(**kw: object) -> int:
        return sum(r.calls for r in filled.aggregate(SpanFilter("p", **kw), None, None))  # type: ignore[arg-type]

    assert n() == 60
    assert n(status="error") == 12
    assert n(route="/r2") == 30
    assert n(min_duration_ms=500) == 11
    assert n(min_cost=0.05) == 10
    assert n(start=T0 + timedelta(minutes=50)) == 10
    assert n(end=T0 + timedelta(minutes=5)) == 5
    assert n(text="NUMBER 1") == 11  # case-insensitive: 1, 10..19
    assert n(text="100%") == 60 and n(text="done_ok") == 60 and n(text="1%") == 0  # literal
    assert n(attributes={"tenant": "t1"}) == 20
    assert n(model="m-a", status="error") == 6


def test_projects_are_isolated(filled: Store) -> None:
    assert filled.count_spans("other") == 10
    assert sum(r.calls for r in filled.aggregate(SpanFilter("other"), None, None)) == 10
    assert filled.get_trace("other", f"{21:032x}") == []


def test_span_pagination_is_complete_and_ordered(filled: Store) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        page = filled.list_spans(SpanFilter("p"), 7, cursor)
        seen += [s.span_id for s in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == 60 and len(set(seen)) == 60
    assert seen == [f"{i + 1:016x}" for i in reversed(range(60))]


def test_trace_pagination_and_summaries(filled: Store) -> None:
    ids: list[str] = []
    cursor = None
    while True:
        page = filled.list_traces(SpanFilter("p"), 4, cursor)
        ids += [t.trace_id for t in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(ids) == 20 and len(set(ids)) == 20
    first = filled.list_traces(SpanFilter("p", trace_id=f"{1:032x}"), 10, None).items[0]
    assert (first.span_count, first.error_count, first.models) == (3, 1, ["m-a", "m-b"])
    assert first.duration_ms == pytest.approx(2 * 60_000 + 30)
    assert first.cost == pytest.approx(0.003)


def test_unpriced_models_and_reprice(store: Store) -> None:
    prices = load_prices()
    reqs = list(synthetic.batches(400, 200, seed=3))
    for r in reqs:
        store.insert_spans(decode_request(r, "p", prices).spans)
    missing = store.unpriced_models(SpanFilter("p"))
    assert [m.model for m in missing] == ["llama-3-70b-local"]
    table = PriceTable(prices.models | {"llama-3-70b-local": Price(1.0, 2.0)})
    updated = store.reprice(table)
    assert updated == missing[0].spans
    assert store.unpriced_models(SpanFilter("p")) == []
    llama = store.list_spans(SpanFilter("p", model="llama-3-70b-local"), 1, None).items[0]
    assert llama.cost == pytest.approx(
        ((llama.input_tokens or 0) * 1.0 + (llama.output_tokens or 0) * 2.0) / 1e6
    )


def test_migrations_apply_once(db_path: str) -> None:
    first = DuckDBStore(db_path)
    applied = first.applied_migrations()
    first.close()
    again = DuckDBStore(db_path)
    assert again.applied_migrations() == applied == [name for name, _ in MIGRATIONS]
    again.close()


def test_duckdb_writes_row_groups_of_the_configured_size(tmp_path: Path) -> None:
    path = str(tmp_path / "rg.duckdb")
    store = DuckDBStore(path, row_group_size=2048)
    try:
        assert store.insert_spans([span(i) for i in range(10_000)]) == 10_000
        store._cursor().execute("CHECKPOINT")
    finally:
        store.close()
    # The size is an open option, not stored in the file: any later open reads it all.
    reader = DuckDBStore(path, read_only=True)
    try:
        groups = reader._cursor().execute(
            "SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('spans')"
        )
        # 10,000 rows: one row group at DuckDB's default size, at least five at 2,048.
        assert groups.fetchall()[0][0] >= 5
        assert reader.count_spans() == 10_000
        assert "spans" in reader.transfer_tables()
        assert "duration_ms" in reader.transfer_columns("spans")
    finally:
        reader.close()


def test_duckdb_file_held_by_another_process_names_the_way_out(tmp_path: Path) -> None:
    path = tmp_path / "held.duckdb"
    DuckDBStore(str(path)).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from assay.store.duckdb import DuckDBStore; "
            f"s = DuckDBStore({str(path)!r}); print('open', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(StoreLockedError, match="held by another process"):
            DuckDBStore(str(path))
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    with pytest.raises(StoreError, match="cannot open database"):
        DuckDBStore(str(tmp_path))  # a directory is not a database file


@pytest.mark.parametrize("window", [1, 8])
def test_duckdb_trace_list_pages_match_grouping_everything(window: int) -> None:
    import random

    rng = random.Random(window)
    spans = []
    for t in range(300):
        start = T0 + timedelta(minutes=rng.randrange(0, 1440))
        for k in range(rng.randint(1, 5)):
            # Some traces run for hours, so their late spans sit among the newest spans
            # while the trace itself started long before.
            at = start + timedelta(minutes=rng.choice([0, 1, 2, 90, 600]) * k)
            spans.append(
                replace(
                    span(0),
                    trace_id=f"{t + 1:032x}",
                    span_id=f"{t * 8 + k + 1:016x}",
                    start_time=at,
                    end_time=at + timedelta(seconds=1),
                    model=rng.choice(["m-a", "m-b"]),
                )
            )
    store = DuckDBStore(":memory:")
    store.TRACE_WINDOW = window  # type: ignore[misc]
    try:
        store.insert_spans(spans)
        for model in (None, "m-a"):
            firsts: dict[str, datetime] = {}
            for s in spans:
                if model is None or s.model == model:
                    firsts[s.trace_id] = min(firsts.get(s.trace_id, s.start_time), s.start_time)
            expected = sorted(firsts, key=lambda t: (firsts[t], t), reverse=True)
            got: list[str] = []
            cursor = None
            while True:
                page = store.list_traces(SpanFilter(project="p", model=model), 7, cursor)
                got += [t.trace_id for t in page.items]
                if model is None:  # a summary's start is its whole trace's
                    assert [t.start_time for t in page.items] == [
                        firsts[t.trace_id] for t in page.items
                    ]
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert got == expected
    finally:
        store.close()
