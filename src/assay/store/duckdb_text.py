"""The trigram text index (:mod:`assay.store.text_index`) kept up on a DuckDB store.

Sketching a block costs ~4 µs a span, which on the ingest path would add to every OTLP
request's latency. So a write only numbers its spans' blocks (inside its transaction);
a sketcher thread computes the bitmaps after the commit, from the batch still in memory,
and writes them in a small transaction of its own. Until a block's sketch is written the
block is *pending* and every search reads it; after a crash, blocks without a sketch are
found at the next open and sketched from the stored texts.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from assay.query import SpanFilter
from assay.store.text_index import (
    MAX_CANDIDATES,
    assign,
    candidates_sql,
    sketch_blocks,
    term_slots,
)

log = logging.getLogger("assay.store")

#: Spans of batches kept in memory for the sketcher (~2 s of ingest at 20k spans/s, ~60 MB
#: of text); when it falls further behind, batches are re-read from the store instead.
MAX_QUEUED_SPANS = 40_000
#: Seconds without work after which the sketcher thread ends (a new write starts another).
IDLE_EXIT_SECONDS = 5.0
#: Seconds the sketcher collects batches before writing their sketches together.
FLUSH_SECONDS = 0.5
#: Pending blocks listed one by one in a search; beyond, "every block from the oldest".
_MAX_LISTED_PENDING = 256


class TextIndex:
    """Block numbering, background sketching and search conditions for one store."""

    def __init__(
        self,
        cursor: Callable[[], duckdb.DuckDBPyConnection],
        write_lock: threading.Lock,
        read_only: bool,
    ) -> None:
        self._cursor = cursor
        self._write_lock = write_lock
        self._lock = threading.Lock()  # guards _pending, _next, _queued
        self._pending: set[int] = set()
        self._queued = 0
        self._idle = threading.Condition(self._lock)
        self._jobs: queue.SimpleQueue[tuple[np.ndarray, pa.Table | None] | None] = (
            queue.SimpleQueue()
        )
        cur = cursor()
        unsketched = [
            int(r[0])
            for r in cur.execute(
                "SELECT DISTINCT text_block FROM spans WHERE text_block IS NOT NULL "
                "EXCEPT SELECT block_id FROM span_text_blocks"
            ).fetchall()
        ]
        top = cur.execute(
            "SELECT greatest((SELECT max(block_id) FROM span_text_blocks), "
            "(SELECT max(text_block) FROM spans))"
        ).fetchall()
        self._next = int(top[0][0] or 0) + 1
        self._pending.update(unsketched)
        self._writable = not read_only
        self._closed = False
        # Started on demand and gone when idle, so an idle or forgotten store holds no
        # thread (and no reference to its connection) until the interpreter exits.
        self._thread: threading.Thread | None = None
        if self._writable and unsketched:
            log.info("sketching %d text-index blocks left from the last run", len(unsketched))
            self._submit((np.array(sorted(unsketched), dtype=np.int64), None))

    # -- writing -----------------------------------------------------------------------

    def number(self, table: pa.Table) -> tuple[pa.Table, np.ndarray]:
        """``table`` with a ``text_block`` column of new block ids (call under the store's
        write lock, then :meth:`written` or :meth:`abandoned`)."""
        local = assign(table)
        with self._lock:
            first = self._next
            count = int(local[-1]) + 1 if local.size else 0
            self._next += count
            blocks = local + first
            self._pending.update(range(first, first + count))
        if "text_block" in table.column_names:
            table = table.drop_columns(["text_block"])
        return table.append_column("text_block", pa.array(blocks, pa.int32())), blocks

    def written(self, table: pa.Table, blocks: np.ndarray) -> None:
        """The spans are committed: sketch their blocks in the background."""
        if not self._writable:
            return
        keep = None
        with self._lock:
            if self._queued + table.num_rows <= MAX_QUEUED_SPANS:
                self._queued += table.num_rows
                keep = table.select(["project", "start_time", "input_text", "output_text"])
        self._submit((blocks, keep))

    def _submit(self, job: tuple[np.ndarray, pa.Table | None]) -> None:
        with self._lock:
            if self._closed:
                return  # left pending: the next open sketches them from the stored texts
            self._jobs.put(job)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="assay-sketcher", daemon=True
                )
                self._thread.start()

    def abandoned(self, blocks: np.ndarray) -> None:
        """The write failed: its block ids name no spans."""
        with self._lock:
            self._pending.difference_update(int(b) for b in np.unique(blocks))
            self._idle.notify_all()

    def _run(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=IDLE_EXIT_SECONDS)
            except queue.Empty:
                with self._lock:  # a job submitted now sees no thread and starts one
                    if self._jobs.empty():
                        self._thread = None
                        return
                continue
            if job is None:
                return
            # Batches that arrive within FLUSH_SECONDS share one transaction: a commit per
            # batch would double the store's commits (and its WAL syncs) under load.
            jobs = [job]
            deadline = time.monotonic() + FLUSH_SECONDS
            stop = False
            while (left := deadline - time.monotonic()) > 0:
                try:
                    nxt = self._jobs.get(timeout=left)
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                jobs.append(nxt)
            try:
                self._sketch(jobs)
            except Exception:  # the blocks stay pending: searches read them; next open retries
                log.exception("sketching text-index blocks failed")
            finally:
                with self._lock:
                    self._queued -= sum(t.num_rows for _, t in jobs if t is not None)
                    self._idle.notify_all()
            if stop:
                return

    def _sketch(self, jobs: list[tuple[np.ndarray, pa.Table | None]]) -> None:
        parts = []
        done: set[int] = set()
        for blocks, table in jobs:
            if table is None:  # re-read the texts (a batch not kept in memory, or a crash)
                ids = [int(b) for b in np.unique(blocks)]
                done.update(ids)  # ids whose spans are gone (deleted) need no sketch
                table = (
                    self._cursor()
                    .sql(
                        "SELECT text_block, project, start_time, input_text, output_text "
                        "FROM spans WHERE text_block IN (SELECT unnest(?::BIGINT[])) "
                        "ORDER BY text_block",
                        params=[ids],
                    )
                    .to_arrow_table()
                )
                blocks = table["text_block"].to_numpy()
            if table.num_rows:
                parts.append(sketch_blocks(table, blocks))
        if parts:
            rows = pa.concat_tables(parts)
            with self._write_lock:
                cur = self._cursor()
                try:
                    cur.register("assay_sketches", rows)
                    cur.execute(
                        "INSERT OR REPLACE INTO span_text_blocks SELECT block_id, project, "
                        "min_start, max_start, spans, sketch::BIT FROM assay_sketches"
                    )
                finally:
                    cur.close()
            done.update(int(b) for b in rows["block_id"].to_pylist())
        with self._lock:
            self._pending.difference_update(done)

    def wait(self, timeout: float = 30.0) -> bool:
        """Wait until every committed block is sketched; False on timeout."""
        with self._lock:
            return self._idle.wait_for(lambda: not self._pending, timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Sketch what is queued (up to ``timeout``), then stop the thread."""
        with self._lock:
            self._closed = True
            thread = self._thread
            if thread is not None:
                self._jobs.put(None)
        if thread is not None:
            thread.join(timeout)

    # -- searching ----------------------------------------------------------------------

    def condition(self, con: duckdb.DuckDBPyConnection, flt: SpanFilter) -> str | None:
        """A ``text_block`` condition that skips blocks unable to hold ``flt.text``, or
        None when the index cannot narrow the search (short or common term)."""
        slots = term_slots(flt.text) if flt.text else None
        if not slots:
            return None
        with self._lock:  # read before the sketches: a block sketched meanwhile is in both
            pending = sorted(self._pending)
        where = ["project = ?", candidates_sql(slots)]
        params: list[Any] = [flt.project]
        if flt.start is not None:
            where.append("max_start >= ?")
            params.append(flt.start)
        if flt.end is not None:
            where.append("min_start < ?")
            params.append(flt.end)
        rows = con.execute(
            f"SELECT block_id FROM span_text_blocks WHERE {' AND '.join(where)} "
            f"LIMIT {MAX_CANDIDATES + 1}",
            params,
        ).fetchall()
        if len(rows) > MAX_CANDIDATES:
            return None
        # Constant lists: DuckDB prunes row groups on them before reading any text.
        ors = ["text_block IS NULL"]
        if len(pending) > _MAX_LISTED_PENDING:
            ors.append(f"text_block >= {pending[0]}")
            listed = [int(r[0]) for r in rows if r[0] < pending[0]]
        else:
            listed = [int(r[0]) for r in rows] + pending
        if listed:
            ors.append(f"text_block IN ({', '.join(str(b) for b in sorted(set(listed)))})")
        return "(" + " OR ".join(ors) + ")"


def stop(index: TextIndex | None) -> None:
    """Stop a store's sketcher if it has one."""
    if index is not None:
        with contextlib.suppress(Exception):
            index.close()
