"""DuckDB's trigram text index: a search narrowed by it returns exactly what a full scan
returns, whatever the text, the case, the term or the filters."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from assay.model import Span
from assay.query import SpanFilter
from assay.store.duckdb import DuckDBStore, _where
from assay.store.migrations import MIGRATIONS
from assay.store.text_index import BLOCK_SPANS, term_slots

T0 = datetime(2026, 3, 1, tzinfo=UTC)
# Letters whose lower case differs in width or maps into ASCII, wildcards LIKE would
# interpret, and text a trigram of which spans two code points.
ALPHABET = [
    *"abcdeABCDE xyz-%_\\",
    *("\u0130", "\u212a", "\u00df", "\u03a3", "\u03c2", "\u00c9", "\u00e9", "\u65e5\u672c"),
    *("\U0001f642", "\u01c5", "i\u0307", "\u1e9e"),
]


def span(i: int, text: str, project: str = "p", minutes: int | None = None) -> Span:
    start = T0 + timedelta(minutes=i if minutes is None else minutes)
    return Span(
        project=project,
        trace_id=f"{i + 1:032x}",
        span_id=f"{i + 1:016x}",
        parent_span_id=None,
        service="svc",
        name="op",
        kind="llm",
        otel_kind="client",
        start_time=start,
        end_time=start + timedelta(seconds=1),
        duration_ms=1000.0,
        status="ok",
        input_text=text,
        output_text=text[::-1] if i % 3 else None,
    )


def scan_ids(store: DuckDBStore, flt: SpanFilter) -> set[str]:
    """What the search finds without the index (the plain ILIKE scan)."""
    where, params = _where(flt)
    rows = store._cursor().execute(f"SELECT span_id FROM spans WHERE {where}", params)
    return {r[0] for r in rows.fetchall()}


def search_ids(store: DuckDBStore, flt: SpanFilter) -> set[str]:
    page = store.list_spans(flt, 10_000, None)
    return {s.span_id for s in page.items}


@pytest.fixture
def db() -> Iterator[DuckDBStore]:
    st = DuckDBStore(":memory:")
    yield st
    st.close()


def test_indexed_search_equals_a_full_scan_on_random_texts_and_terms(db: DuckDBStore) -> None:
    rng = random.Random(7)
    texts = ["".join(rng.choices(ALPHABET, k=rng.randint(0, 60))) for _ in range(3000)]
    # Several inserts, two projects interleaved: blocks never mix projects.
    spans = [span(i, t, project="p" if i % 7 else "q") for i, t in enumerate(texts)]
    for k in range(0, len(spans), 700):
        db.insert_spans(spans[k : k + 700])
    narrowed = 0
    for _ in range(250):
        source = rng.choice(texts)
        if source and rng.random() < 0.8:
            a = rng.randrange(len(source))
            term = source[a : a + rng.randint(1, 8)]
            term = "".join(c.upper() if rng.random() < 0.3 else c for c in term)
        else:
            term = "".join(rng.choices(ALPHABET, k=rng.randint(1, 6)))
        for project in ("p", "q"):
            flt = SpanFilter(project, text=term)
            narrowed += db._narrow(flt) is not None
            assert search_ids(db, flt) == scan_ids(db, flt), (term, project)
    assert narrowed > 100  # the index was actually used, not bypassed


def test_a_term_found_nowhere_reads_no_indexed_block(db: DuckDBStore) -> None:
    db.insert_spans([span(i, f"the refund policy {i}") for i in range(2 * BLOCK_SPANS)])
    assert db.wait_text_index()
    flt = SpanFilter("p", text="zebra-unicorn")
    assert db._narrow(flt) == "(text_block IS NULL)"
    assert search_ids(db, flt) == set()
    hit = SpanFilter("p", text="REFUND POLICY 17")
    assert search_ids(db, hit) == scan_ids(db, hit) and len(search_ids(db, hit)) == 111


def test_short_terms_and_time_windows(db: DuckDBStore) -> None:
    db.insert_spans([span(i, f"alpha {i}", minutes=i) for i in range(3000)])
    assert db.wait_text_index()
    assert term_slots("ab") is None  # under three bytes the index says nothing
    assert search_ids(db, SpanFilter("p", text="a 1")) == scan_ids(
        db, SpanFilter("p", text="a 1")
    )
    window = SpanFilter("p", text="alpha 2", start=T0 + timedelta(minutes=2500))
    found = search_ids(db, window)
    assert found == scan_ids(db, window) and len(found) == 500
    # Blocks wholly before the window are not candidates at all.
    cond = db._narrow(window) or ""
    assert "text_block IN (1," not in cond


def test_spans_stored_before_the_index_are_still_found(tmp_path: Path) -> None:
    path = str(tmp_path / "old.duckdb")
    con = duckdb.connect(path)
    con.execute("CREATE TABLE assay_migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)")
    for name, fn in MIGRATIONS:
        if name == "m012_text_index":
            break
        fn(con)
        con.execute("INSERT INTO assay_migrations VALUES (?, now())", [name])
    con.close()
    old = DuckDBStore(path)
    try:
        # Written by the old schema's path: no block.
        old._cursor().execute(
            "INSERT INTO spans (project, trace_id, span_id, name, kind, otel_kind, start_time, "
            "end_time, duration_ms, status, input_text) VALUES ('p', 'aa', 'bb', 'op', 'llm', "
            "'client', ?, ?, 1.0, 'ok', 'legacy refund text')",
            [T0, T0],
        )
        old.insert_spans([span(5, "new refund text")])
        found = search_ids(old, SpanFilter("p", text="Refund"))
        assert found == {"bb", f"{6:016x}"}
    finally:
        old.close()


def test_retention_drops_blocks_wholly_past_the_cutoff(db: DuckDBStore) -> None:
    db.insert_spans([span(i, "kept text", minutes=i) for i in range(BLOCK_SPANS)])
    db.insert_spans([span(BLOCK_SPANS + i, "kept text", minutes=10_000 + i) for i in range(5)])
    assert db.wait_text_index()
    db.delete_spans_before("p", T0 + timedelta(minutes=5_000))
    rows = db._cursor().execute("SELECT count(*) FROM span_text_blocks").fetchall()
    assert rows[0][0] == 1
    assert len(search_ids(db, SpanFilter("p", text="kept"))) == 5


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("x\u212ay kelvin", "xky"),  # KELVIN SIGN lower-cases into ASCII
        ("\u0130stanbul trip", "istanbul"),  # dotted capital I
        ("gro\u1e9e street", "gro\u00df"),  # capital sharp s
        ("\u03a3\u03bf\u03c6\u03b9\u03b1", "\u03c3\u03bf\u03c6"),  # Greek capital sigma
        ("na\u00efve caf\u00e9", "CAF\u00c9"),
    ],
)
def test_case_folding_that_changes_bytes_still_finds_the_span(
    db: DuckDBStore, text: str, term: str
) -> None:
    db.insert_spans([span(1, text)])
    assert db.wait_text_index()
    flt = SpanFilter("p", text=term)
    assert db._narrow(flt) is not None
    assert search_ids(db, flt) == scan_ids(db, flt) == {f"{2:016x}"}


def test_blocks_not_sketched_yet_are_read_and_a_crash_leaves_none_behind(tmp_path: Path) -> None:
    path = str(tmp_path / "s.duckdb")
    st = DuckDBStore(path)
    try:
        st.insert_spans([span(i, f"mango lassi {i}") for i in range(3 * BLOCK_SPANS)])
        # Found at once, whether or not the sketcher has caught up.
        flt = SpanFilter("p", text="mango lassi 77")
        assert search_ids(st, flt) == scan_ids(st, flt) != set()
        assert st.wait_text_index()
        # A crash between a commit and its sketch: the sketches are missing.
        st._cursor().execute("DELETE FROM span_text_blocks WHERE block_id > 1")
    finally:
        st.close()
    st = DuckDBStore(path)
    try:
        assert search_ids(st, flt) == scan_ids(st, flt) != set()  # pending: read
        assert st.wait_text_index()
        rows = st._cursor().execute("SELECT count(*) FROM span_text_blocks").fetchall()
        assert rows[0][0] == 3
        assert st._narrow(SpanFilter("p", text="papaya")) == "(text_block IS NULL)"
    finally:
        st.close()


def test_a_read_only_open_reads_unsketched_blocks(tmp_path: Path) -> None:
    path = str(tmp_path / "r.duckdb")
    st = DuckDBStore(path)
    st.insert_spans([span(i, f"kiwi {i}") for i in range(10)])
    st.wait_text_index()
    st._cursor().execute("DELETE FROM span_text_blocks")
    st.close()
    ro = DuckDBStore(path, read_only=True)
    try:
        assert len(search_ids(ro, SpanFilter("p", text="kiwi 3"))) == 1
    finally:
        ro.close()


def test_batches_beyond_the_sketcher_queue_are_read_back_and_indexed(
    db: DuckDBStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import assay.store.duckdb_text as duckdb_text

    # Only the first batch fits in memory; the others are sketched from the stored texts.
    monkeypatch.setattr(duckdb_text, "MAX_QUEUED_SPANS", 300)
    spans = [span(i, f"needle {i} " + "x" * (i % 50)) for i in range(2000)]
    for k in range(0, len(spans), 250):
        db.insert_spans(spans[k : k + 250])
    assert db.wait_text_index()
    covered = db._cursor().execute("SELECT sum(spans) FROM span_text_blocks").fetchall()
    assert covered[0][0] == 2000
    for term in ("needle 1999", "needle 7 x", "absent-term"):
        flt = SpanFilter(project="p", text=term)
        assert search_ids(db, flt) == scan_ids(db, flt)
