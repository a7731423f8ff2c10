"""Drift windows and the embedding cache: behaviour every backend must share."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from assay.model import Span
from assay.query import SpanFilter
from assay.store import Store, StoreError

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def span(i: int, **kw: object) -> Span:
    values: dict[str, object] = dict(
        project="p",
        trace_id=f"{i // 2:032x}",
        span_id=f"{i:016x}",
        parent_span_id=None,
        service="svc",
        name="chat",
        kind="llm",
        otel_kind="client",
        start_time=T0 + timedelta(seconds=i),
        end_time=T0 + timedelta(seconds=i, milliseconds=250),
        duration_ms=250.0 + i,
        status="unset",
        model="m-a" if i % 3 else "m-b",
        input_text="héllo" * (1 + i % 4),
        output_text=f"answer {i}",
        input_tokens=10 + i,
    )
    values.update(kw)
    return Span(**values)  # type: ignore[arg-type]


@pytest.fixture
def filled(store: Store) -> Store:
    store.insert_spans([span(i) for i in range(120)])
    return store


def _ids(table: pa.Table) -> list[str]:
    return [str(s) for s in table.column("span_id").to_pylist()]


def test_a_sample_is_fixed_by_its_seed_and_any_prefix_is_a_smaller_sample(
    filled: Store,
) -> None:
    flt = SpanFilter("p")
    table, total = filled.sample_window(flt, ["duration_ms"], limit=40, seed=3)
    assert total == 120 and table.num_rows == 40
    assert _ids(filled.sample_window(flt, ["duration_ms"], limit=40, seed=3)[0]) == _ids(table)
    assert _ids(filled.sample_window(flt, ["model"], limit=10, seed=3)[0]) == _ids(table)[:10]
    other = _ids(filled.sample_window(flt, ["duration_ms"], limit=40, seed=4)[0])
    assert other != _ids(table) and len(set(other) & set(_ids(table))) < 30
    whole, total = filled.sample_window(flt, [], limit=1_000, seed=3)
    assert total == 120 and sorted(_ids(whole)) == sorted(f"{i:016x}" for i in range(120))
    # The filter narrows both the sample and the count.
    later = SpanFilter("p", start=T0 + timedelta(seconds=100), model="m-a")
    table, total = filled.sample_window(later, ["model"], limit=5)
    assert total == 14 and table.num_rows == 5 and set(table.column("model").to_pylist()) == {
        "m-a"
    }


def test_window_columns_have_the_same_names_and_types_everywhere(filled: Store) -> None:
    fields = ["start_time", "kind", "input_length", "input_tokens", "duration_ms", "tools"]
    table, _ = filled.sample_window(
        SpanFilter("p", end=T0 + timedelta(seconds=2)), fields, ["score"], limit=10
    )
    assert table.schema == pa.schema(
        [
            ("trace_id", pa.string()),
            ("span_id", pa.string()),
            ("start_time", pa.timestamp("us")),
            ("kind", pa.string()),
            ("input_length", pa.float64()),
            ("input_tokens", pa.float64()),
            ("duration_ms", pa.float64()),
            ("tools", pa.string()),
            ("attr:score", pa.float64()),
        ]
    )
    rows = sorted(table.to_pylist(), key=lambda r: r["span_id"])
    # Naive, in UTC, as the DuckDB store gives them.
    assert [r["start_time"] for r in rows] == [datetime(2026, 3, 1), datetime(2026, 3, 1, 0, 0, 1)]
    assert [r["input_length"] for r in rows] == [5.0, 10.0]  # characters, not bytes
    assert [r["input_tokens"] for r in rows] == [10.0, 11.0]
    assert [r["tools"] for r in rows] == [None, None] and [r["attr:score"] for r in rows] == [
        None,
        None,
    ]


def test_bad_window_requests_say_what_is_allowed(filled: Store) -> None:
    with pytest.raises(StoreError, match=r"unknown drift field\(s\) 'colour'.*known: start_time"):
        filled.sample_window(SpanFilter("p"), ["colour"])
    with pytest.raises(StoreError, match="limit must be >= 1"):
        filled.sample_window(SpanFilter("p"), ["model"], limit=0)
    empty, total = filled.sample_window(SpanFilter("nobody"), ["model"], ["x"])
    assert total == 0 and empty.num_rows == 0 and empty.column_names == [
        "trace_id",
        "span_id",
        "model",
        "attr:x",
    ]


def test_numeric_attributes_and_tools(store: Store) -> None:
    store.insert_spans(
        [
            span(0, attributes={"score": 4, "tool.name": "ignored"}),
            span(1, attributes={"score": "0.5"}),
            span(2, attributes={"score": "n/a"}),
            span(3, kind="tool", name="run lookup", attributes={"tool.name": "lookup"}),
            span(
                4,
                output_messages=[
                    {"role": "assistant", "tool_calls": [{"function": {"name": "b"}}]},
                    {"role": "assistant", "tool_calls": [{"name": "a"}, {"name": "b"}]},
                ],
            ),
            span(5, kind="tool", name="bare"),
        ]
    )
    table, _ = store.sample_window(SpanFilter("p"), ["tools"], ["score"], limit=10)
    got = {r["span_id"][-1]: (r["tools"], r["attr:score"]) for r in table.to_pylist()}
    assert got == {
        "0": (None, 4.0),
        "1": (None, 0.5),
        "2": (None, None),
        "3": ("lookup", None),
        "4": ("a+b", None),
        "5": ("bare", None),
    }


def test_embeddings_are_cached_once_per_key_and_found_by_position(store: Store) -> None:
    vectors = np.arange(12, dtype=np.float32).reshape(4, 3)
    traces, spans = ["t1", "t1", "t2", "t3"], ["s1", "s2", "s1", "s1"]
    assert store.save_embeddings("p", "emb", "input", traces, spans, vectors) == 4
    # Cached vectors are kept: a resend adds nothing and changes nothing.
    assert store.save_embeddings("p", "emb", "input", traces[:2], spans[:2], vectors[:2] + 1) == 0
    positions, found = store.load_embeddings(
        "p", "emb", "input", ["t9", "t3", "t1", "t1", "t3"], ["s9", "s1", "s2", "s1", "s1"]
    )
    assert positions.tolist() == [1, 2, 3, 4] and positions.dtype == np.int64
    assert found.dtype == np.float32
    assert np.array_equal(found, vectors[[3, 1, 0, 3]])
    # Another project, embedder or field is another cache.
    for key in (("q", "emb", "input"), ("p", "other", "input"), ("p", "emb", "output")):
        pos, vec = store.load_embeddings(*key, traces, spans)
        assert len(pos) == 0 and vec.shape == (0, 0)
    pos, vec = store.load_embeddings("p", "emb", "input", [], [])
    assert len(pos) == 0 and vec.shape == (0, 0)
    # Repeated keys in one call are stored once.
    assert store.save_embeddings("p", "emb", "x", ["a", "a"], ["b", "b"], vectors[:2]) == 1
    assert np.array_equal(store.load_embeddings("p", "emb", "x", ["a"], ["b"])[1], vectors[:1])


def test_bad_embedding_calls_are_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="differ in length"):
        store.load_embeddings("p", "emb", "input", ["t"], [])
    with pytest.raises(StoreError, match="2-d vector array"):
        store.save_embeddings("p", "emb", "input", ["t"], ["s"], np.zeros(3, dtype=np.float32))
    with pytest.raises(StoreError, match="2-d vector array"):
        store.save_embeddings("p", "emb", "input", ["t", "u"], ["s"], np.zeros((2, 3)))
    assert store.save_embeddings("p", "emb", "input", [], [], np.zeros((0, 3))) == 0


def test_a_sample_reads_each_span_once_after_a_resend(store: Store) -> None:
    spans = [span(i) for i in range(10)]
    store.insert_spans(spans)
    store.insert_spans([dataclasses.replace(s, duration_ms=1.0) for s in spans[:5]])
    table, total = store.sample_window(SpanFilter("p"), ["duration_ms"], limit=100)
    assert total == 10 and len(set(_ids(table))) == 10
