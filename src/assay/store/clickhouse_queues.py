"""Annotation queues and their items on ClickHouse (see :mod:`assay.store.clickhouse`).

``queues`` and ``queue_items`` keep the DuckDB tables' names and columns, plus ``version``
and ``deleted``: both are ``ReplacingMergeTree(version, deleted)``, so a change is a new
full row with a higher version, a delete is a row with ``deleted = 1``, and a read with
``FINAL`` sees each record's latest state (deleted records not at all).

Who labels an item is decided by the lease log (:mod:`assay.store.clickhouse_leases`,
scope ``queue-item``, key ``lease_key(project, queue, item_id)``): a labeller holds an item
only while it holds that lease, so two labellers on different replicas never get one item.
The item row's ``claimed_by`` / ``lease_expires_at`` repeat the lease for reading; only
the lease holder writes them. Creating, growing and deleting a queue hold a lease on the
queue's name (scope ``queue``), so two replicas cannot number items alike or both create
one name. ClickHouse has no transactions: writes are ordered so that a crash leaves a
readable state (a label is stored before its item is marked labelled, with an id that
makes the retry a no-op; items before the queue row that announces them).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

from assay.model import Feedback, Span
from assay.query import GROUP_FIELDS, SpanFilter
from assay.queues.values import (
    LABELLED,
    OPEN,
    SKIPPED,
    Queue,
    QueueItem,
    QueueProgress,
)
from assay.store import StoreError
from assay.store.clickhouse import TIME, ClickHouseBase, Params, Schema, one_of
from assay.store.clickhouse_leases import Leases, lease_key
from assay.store.clickhouse_spans import where
from assay.store.rows import dumps as _dumps
from assay.store.rows import item_from_row as _item
from assay.store.rows import item_row as _item_row
from assay.store.rows import queue_from_row as _queue
from assay.store.rows import span_from_row, utc

#: Lease scopes: one labeller per item; one writer of a queue's rows at a time.
ITEM_SCOPE = "queue-item"
QUEUE_SCOPE = "queue"
#: How long a queue writer may hold the queue's lease, and how long others wait for it.
_QUEUE_LOCK_SECONDS = 60
_QUEUE_WAIT_SECONDS = 30.0
#: How long a labeller finishing an item nobody holds keeps the lease it takes to do so.
_FINISH_SECONDS = 60
#: Stands for a missing stratum value where SQL needs a non-null key.
_NULL = "\x00"

_QUEUE_COLS = (
    "project",
    "name",
    "queue_id",
    "strategy",
    "params",
    "seed",
    "label",
    "instructions",
    "size",
    "item_count",
    "population",
    "lease_seconds",
    "notes",
    "created_by",
    "created_at",
)
_ITEM_COLS = (
    "project",
    "queue",
    "item_id",
    "trace_id",
    "span_id",
    "stratum",
    "inclusion_probability",
    "score",
    "input_text",
    "output_text",
    "input_messages",
    "output_messages",
    "context",
    "status",
    "claimed_by",
    "claimed_at",
    "lease_expires_at",
    "done_by",
    "done_at",
    "feedback_id",
    "skip_reason",
)
_I = {c: n for n, c in enumerate(_ITEM_COLS)}
_Q = {c: n for n, c in enumerate(_QUEUE_COLS)}
_QSEL = ", ".join(_QUEUE_COLS)
_ISEL = ", ".join(_ITEM_COLS)


def _queues_ddl(schema: Schema) -> list[str]:
    # A queue's definition and counts; (project, name) is the record. item_count and
    # population change when a hand-picked queue grows (a new version of the row).
    queues = schema.table(
        "queues",
        f"""project String, name String, queue_id String,
        strategy LowCardinality(String), params String, seed Int64, label String,
        instructions Nullable(String), size Int32, item_count Int32, population Int64,
        lease_seconds Int32, notes String, created_by Nullable(String),
        created_at {TIME}, version UInt64, deleted UInt8 DEFAULT 0""",
        version="version, deleted",
        order_by="(project, name)",
    )
    # Items snapshot their span's text so a later change cannot move them. Status, claim
    # and result change: each change is a new version of the whole row.
    items = schema.table(
        "queue_items",
        f"""project String, queue String, item_id Int32, trace_id String, span_id String,
        stratum Nullable(String), inclusion_probability Nullable(Float64),
        score Nullable(Float64), input_text Nullable(String), output_text Nullable(String),
        input_messages Nullable(String), output_messages Nullable(String), context String,
        status LowCardinality(String), claimed_by Nullable(String),
        claimed_at Nullable({TIME}), lease_expires_at Nullable({TIME}),
        done_by Nullable(String), done_at Nullable({TIME}), feedback_id Nullable(String),
        skip_reason Nullable(String), version UInt64, deleted UInt8 DEFAULT 0""",
        version="version, deleted",
        order_by="(project, queue, item_id)",
    )
    return queues + items


#: (migration name, DDL builder taking a Schema), applied in name order with the rest.
MIGRATIONS: list[tuple[str, Any]] = [("m007_queues", _queues_ddl)]


def _stratum_sql(stratify_by: str | None) -> str:
    if stratify_by is None:
        return "CAST(NULL AS Nullable(String))"
    if stratify_by not in GROUP_FIELDS:
        raise StoreError(
            f"cannot stratify by {stratify_by!r}; use one of {', '.join(GROUP_FIELDS)}"
        )
    return f"CAST({stratify_by} AS Nullable(String))"


def _units_sql(flt: SpanFilter, unit: str, stratify_by: str | None, p: Params) -> str:
    """A query of (trace_id, span_id, stratum) rows, one per sampling unit. A trace's
    stratum is the first non-null value of the field among its matching spans; its span
    is filled in after sampling."""
    stratum = _stratum_sql(stratify_by)
    if unit == "span":
        cond = where(flt, p)
        return (
            f"SELECT trace_id, span_id, {stratum} AS stratum "
            f"FROM {{db}}.spans FINAL WHERE {cond}"
        )
    if unit != "trace":
        raise StoreError(f"unit {unit!r} must be trace or span")
    cond = where(flt, p)
    return (
        "SELECT trace_id, '' AS span_id, argMinIf(v, start_time, v IS NOT NULL) AS stratum "
        f"FROM (SELECT trace_id, start_time, {stratum} AS v FROM {{db}}.spans FINAL "
        f"WHERE {cond}) GROUP BY trace_id"
    )


class _Feedback(Protocol):
    def add_feedback(self, items: Sequence[Feedback]) -> list[Feedback]: ...


class QueuesTables(ClickHouseBase):
    """Annotation queues and items: the queue methods of :class:`assay.store.Store`."""

    # -- selection ----------------------------------------------------------------------

    def queue_population(
        self, flt: SpanFilter, unit: str, stratify_by: str | None = None
    ) -> dict[str | None, int]:
        """How many sampling units (traces with a matching span, or matching spans) there
        are, per value of ``stratify_by`` (one None key when not stratified)."""
        p = Params()
        units = _units_sql(flt, unit, stratify_by, p)
        rows = self.q(f"SELECT stratum, count() FROM ({units}) GROUP BY stratum", p)
        return {r[0]: int(r[1]) for r in rows}

    def sample_queue_keys(
        self,
        flt: SpanFilter,
        unit: str,
        quotas: Mapping[str | None, int],
        seed: int,
        stratify_by: str | None = None,
    ) -> list[tuple[str, str, str | None]]:
        """Per stratum, the ``quotas[stratum]`` units with the smallest seeded hash (a
        simple random sample without replacement within each stratum), as (trace_id,
        span_id, stratum); a trace unit's span is its root (else its earliest) span."""
        p = Params()
        units = _units_sql(flt, unit, stratify_by, p)
        wanted = {(_NULL if k is None else k): int(n) for k, n in quotas.items() if int(n) > 0}
        if not wanted:
            return []
        strata = p(list(wanted), "Array(String)")
        sizes = p(list(wanted.values()), "Array(UInt64)")
        null = p(_NULL, "String")
        # sipHash64 of one string holding the seed and the unit: a well-mixed order that
        # is a fresh uniform permutation for every seed.
        key = "trace_id" if unit == "trace" else "concat(trace_id, ':', span_id)"
        order = f"sipHash64(concat({p(str(int(seed)), 'String')}, ':', {key}))"
        rows = self.q(
            f"""
            SELECT trace_id, span_id, stratum FROM (
                SELECT trace_id, span_id, stratum, coalesce(stratum, {null}) AS s,
                       row_number() OVER (PARTITION BY s
                                          ORDER BY {order}, trace_id, span_id) AS rn
                FROM ({units})
                WHERE has({strata}, coalesce(stratum, {null})))
            WHERE rn <= arrayElement({sizes}, indexOf({strata}, s))
            ORDER BY s, rn
            """,
            p,
        )
        if unit == "span":
            return [(r[0], r[1], r[2]) for r in rows]
        roots = self.root_span_ids(flt.project, [r[0] for r in rows])
        return [(r[0], roots[r[0]], r[2]) for r in rows if r[0] in roots]

    def queue_judge_scores(
        self, flt: SpanFilter, name: str
    ) -> list[tuple[str, str | None, float | None, str | None]]:
        """Judge feedback (source ``judge``) named ``name`` as (trace_id, span_id, number,
        category), oldest first: records on a span matching the filter, and records on a
        whole trace (span_id None) with any span matching it."""
        p = Params()
        cond = where(flt, p)
        rows = self.q(
            f"""
            WITH win AS (SELECT trace_id, span_id FROM {{db}}.spans FINAL WHERE {cond})
            SELECT trace_id, span_id, number, category FROM {{db}}.feedback FINAL
            WHERE project = {p(flt.project, 'String')} AND name = {p(name, 'String')}
              AND source = 'judge' AND trace_id IN (SELECT trace_id FROM win)
              AND (span_id IS NULL
                   OR (trace_id, assumeNotNull(span_id)) IN (SELECT trace_id, span_id FROM win))
            ORDER BY trace_id, span_id NULLS FIRST, created_at, feedback_id
            """,
            p,
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def root_span_ids(self, project: str, trace_ids: Sequence[str]) -> dict[str, str]:
        """Each stored trace's root span (a span without a parent; else its earliest)."""
        if not trace_ids:
            return {}
        p = Params()
        rows = self.q(
            f"""
            SELECT trace_id,
                   argMin(span_id, (parent_span_id IS NOT NULL, start_time, span_id))
            FROM {{db}}.spans FINAL
            WHERE project = {p(project, 'String')}
              AND trace_id IN {one_of(p, trace_ids)}
            GROUP BY trace_id
            """,
            p,
        )
        return {r[0]: r[1] for r in rows}

    def spans_by_key(self, flt: SpanFilter, keys: Sequence[tuple[str, str]]) -> list[Span]:
        """The spans among ``keys`` (trace_id, span_id) that are stored and match ``flt``."""
        from assay.model import SPAN_COLUMNS

        if not keys:
            return []
        p = Params()
        cond = where(flt, p)
        traces = p([k[0] for k in keys], "Array(String)")
        spans = p([k[1] for k in keys], "Array(String)")
        rows = self.q(
            f"SELECT {', '.join(SPAN_COLUMNS)} FROM {{db}}.spans FINAL "
            f"WHERE {cond} AND trace_id IN (SELECT arrayJoin({traces})) "
            f"AND (trace_id, span_id) IN (SELECT arrayJoin(arrayZip({traces}, {spans})))",
            p,
        )
        return [span_from_row(r) for r in rows]

    # -- queues ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _queue_lock(self, project: str, name: str) -> Iterator[None]:
        """Hold the queue's lease while writing its rows (waits for another writer)."""
        leases = Leases(self, QUEUE_SCOPE)
        key = lease_key(project, name)
        owner = uuid.uuid4().hex
        deadline = time.monotonic() + _QUEUE_WAIT_SECONDS
        while True:
            now = datetime.now(UTC)
            if leases.claim(key, owner, now, now + timedelta(seconds=_QUEUE_LOCK_SECONDS)):
                break
            if time.monotonic() > deadline:
                raise StoreError(
                    f"queue {name!r} of project {project!r} is being changed by another "
                    "writer; try again in a minute"
                )
            time.sleep(0.05)
        try:
            yield
        finally:
            leases.release(key, owner, datetime.now(UTC))

    def _queue_row(self, project: str, name: str) -> list[Any] | None:
        """The queue's columns (``_QUEUE_COLS``) and, last, its version."""
        p = Params()
        rows = self.q(
            f"SELECT {_QSEL}, version FROM {{db}}.queues FINAL "
            f"WHERE project = {p(project, 'String')} AND name = {p(name, 'String')}",
            p,
        )
        return list(rows[0]) if rows else None

    def _next_version(self, stored: int | None) -> int:
        """A version above ``stored``: the write time, unless this host's clock is behind
        the one that wrote the stored row (replicas' clocks differ)."""
        now = self.version()
        return now if stored is None else max(now, int(stored) + 1)

    def _write_queue(self, row: Sequence[Any], stored: int | None = None) -> None:
        self.insert_rows(
            "queues",
            [*_QUEUE_COLS, "version"],
            [[*row[: len(_QUEUE_COLS)], self._next_version(stored)]],
        )

    def _write_items(self, rows: Sequence[Sequence[Any]], stored: int | None = None) -> None:
        version = self._next_version(stored)
        self.insert_rows(
            "queue_items",
            [*_ITEM_COLS, "version"],
            [[*r[: len(_ITEM_COLS)], version] for r in rows],
        )

    def _drop_items(self, project: str, name: str) -> None:
        """Write a deleted version of every item the queue holds."""
        p = Params()
        self.cmd(
            "INSERT INTO {db}.queue_items (project, queue, item_id, trace_id, span_id, "
            "context, status, version, deleted) "
            f"SELECT project, queue, item_id, trace_id, span_id, '{{}}', status, "
            f"greatest({p(self.version(), 'UInt64')}, version + 1), 1 "
            "FROM {db}.queue_items FINAL "
            f"WHERE project = {p(project, 'String')} AND queue = {p(name, 'String')}",
            p,
        )

    def create_queue(self, queue: Queue, items: Sequence[QueueItem]) -> bool:
        """Store a queue with its items; False when the name is taken. Items are written
        before the queue row, and leftovers of an interrupted create are dropped first."""
        with self._queue_lock(queue.project, queue.name):
            if self._queue_row(queue.project, queue.name) is not None:
                return False
            self._drop_items(queue.project, queue.name)
            if items:
                self._write_items([_item_row(i, i.item_id) for i in items])
            self._write_queue(
                [
                    queue.project,
                    queue.name,
                    queue.queue_id,
                    queue.strategy,
                    _dumps(queue.params),
                    queue.seed,
                    _dumps(queue.label.to_json()),
                    queue.instructions,
                    queue.size,
                    queue.item_count,
                    queue.population,
                    queue.lease_seconds,
                    _dumps(list(queue.notes)),
                    queue.created_by,
                    queue.created_at,
                ]
            )
        return True

    def add_queue_items(self, project: str, name: str, items: Sequence[QueueItem]) -> int:
        """Append items after the queue's last one, skipping any whose (trace_id, span_id)
        it already holds (so resending adds nothing); the queue's item count and
        population grow by the number added, which is returned. All or nothing: a batch
        that does not fit stores no item."""
        with self._queue_lock(project, name):
            row = self._queue_row(project, name)
            if row is None:
                raise StoreError(f"no queue named {name!r} in project {project!r}")
            p = Params()
            held_rows = self.q(
                f"SELECT item_id, trace_id, span_id FROM {{db}}.queue_items FINAL "
                f"WHERE project = {p(project, 'String')} AND queue = {p(name, 'String')}",
                p,
            )
            size = int(row[_Q["size"]])
            last = max((int(r[0]) for r in held_rows), default=0)
            held = {(r[1], r[2]) for r in held_rows}
            new: list[QueueItem] = []
            for item in items:
                key = (item.trace_id, item.span_id)
                if key not in held:
                    held.add(key)  # a key twice in one call is added once
                    new.append(item)
            if last + len(new) > size:
                raise StoreError(
                    f"queue {name!r} holds {last} items and may hold {size}; "
                    f"{len(new)} more do not fit"
                )
            if new:
                self._write_items([_item_row(i, last + n) for n, i in enumerate(new, start=1)])
                row[_Q["item_count"]] = int(row[_Q["item_count"]]) + len(new)
                row[_Q["population"]] = int(row[_Q["population"]]) + len(new)
                self._write_queue(row, stored=row[len(_QUEUE_COLS)])
        return len(new)

    def get_queue(self, project: str, name: str) -> Queue | None:
        """One queue by name."""
        row = self._queue_row(project, name)
        return None if row is None else _queue(row)

    def list_queues(self, project: str) -> list[Queue]:
        """A project's queues, newest first."""
        p = Params()
        rows = self.q(
            f"SELECT {_QSEL} FROM {{db}}.queues FINAL WHERE project = {p(project, 'String')} "
            "ORDER BY created_at DESC, name",
            p,
        )
        return [_queue(r) for r in rows]

    def delete_queue(self, project: str, name: str) -> bool:
        """Remove a queue and its items (the labels stay, as feedback) and end any claims
        on its items, so a new queue of the same name starts free."""
        with self._queue_lock(project, name):
            row = self._queue_row(project, name)
            if row is None:
                return False
            # The queue row first: a crash after it leaves items that the next create of
            # this name drops.
            self.insert_rows(
                "queues",
                ["project", "name", "version", "deleted"],
                [[project, name, self._next_version(row[len(_QUEUE_COLS)]), 1]],
            )
            p = Params()
            ids = [
                int(r[0])
                for r in self.q(
                    f"SELECT item_id FROM {{db}}.queue_items FINAL "
                    f"WHERE project = {p(project, 'String')} AND queue = {p(name, 'String')}",
                    p,
                )
            ]
            self._drop_items(project, name)
            self._end_claims([lease_key(project, name, str(i)) for i in ids])
        return True

    def _end_claims(self, keys: Sequence[str]) -> None:
        """Release every unreleased claim on ``keys``, expired or not (expiries can be
        test or replay times, so no clock says which are over)."""
        leases = Leases(self, ITEM_SCOPE)
        epoch = datetime(1970, 1, 2, tzinfo=UTC)
        for _ in range(100):
            holders = leases.holders(epoch, keys)
            if not holders:
                return
            for key, lease in holders.items():
                leases.release(key, lease.owner, epoch)

    def queue_progress(self, project: str, name: str, now: datetime) -> QueueProgress:
        """Items by state, per labeller, and when the first current claim expires."""
        p = Params()
        at = p(now, TIME)
        base = f"project = {p(project, 'String')} AND queue = {p(name, 'String')}"
        live = f"status = '{OPEN}' AND lease_expires_at > {at}"
        rows = self.q(
            f"""
            SELECT count(), countIf(status = '{LABELLED}'), countIf(status = '{SKIPPED}'),
                   countIf({live}), minIf(lease_expires_at, {live}), countIf({live}) > 0
            FROM {{db}}.queue_items FINAL WHERE {base}
            """,
            p,
        )
        total, labelled, skipped, claimed = (int(x) for x in rows[0][:4])
        by: dict[str, dict[str, int]] = {}
        for who, status, n in self.q(
            f"""
            SELECT coalesce(done_by, claimed_by) AS who, status, count()
            FROM {{db}}.queue_items FINAL
            WHERE {base} AND (status <> '{OPEN}' OR lease_expires_at > {at})
            GROUP BY who, status ORDER BY who, status
            """,
            p,
        ):
            key = {LABELLED: "labelled", SKIPPED: "skipped", OPEN: "claimed"}[status]
            counts = by.setdefault(who or "", {"labelled": 0, "skipped": 0, "claimed": 0})
            counts[key] = int(n)
        return QueueProgress(
            total=total,
            labelled=labelled,
            skipped=skipped,
            claimed=claimed,
            remaining=total - labelled - skipped - claimed,
            by_labeller=by,
            next_expiry=utc(rows[0][4]) if rows[0][5] else None,
        )

    # -- items -----------------------------------------------------------------------------

    def list_queue_items(
        self,
        project: str,
        name: str,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[QueueItem]:
        """A queue's items in order (optionally of one status)."""
        p = Params()
        sql = (
            f"SELECT {_ISEL} FROM {{db}}.queue_items FINAL "
            f"WHERE project = {p(project, 'String')} AND queue = {p(name, 'String')}"
        )
        if status is not None:
            sql += f" AND status = {p(status, 'String')}"
        sql += (
            f" ORDER BY item_id LIMIT {p(max(int(limit), 0), 'UInt64')} "
            f"OFFSET {p(max(int(offset), 0), 'UInt64')}"
        )
        return [_item(r) for r in self.q(sql, p)]

    def _item_raw(self, project: str, name: str, item_id: int) -> list[Any] | None:
        """The item's columns (``_ITEM_COLS``) and, last, its version."""
        p = Params()
        rows = self.q(
            f"SELECT {_ISEL}, version FROM {{db}}.queue_items FINAL "
            f"WHERE project = {p(project, 'String')} AND queue = {p(name, 'String')} "
            f"AND item_id = {p(int(item_id), 'Int64')}",
            p,
        )
        return list(rows[0]) if rows else None

    def get_queue_item(self, project: str, name: str, item_id: int) -> QueueItem | None:
        """One item by number."""
        row = self._item_raw(project, name, item_id)
        return None if row is None else _item(row)

    def _update_open_item(
        self, project: str, name: str, item_id: int, change: Callable[[list[Any]], None]
    ) -> QueueItem | None:
        """Write a new version of an open item changed by ``change``; None when the item is
        gone or no longer open. Callers hold the item's lease, so no other replica writes
        it meanwhile; the lock keeps this process's threads apart."""
        with self._write_lock:
            row = self._item_raw(project, name, item_id)
            if row is None or row[_I["status"]] != OPEN:
                return None
            change(row)
            self._write_items([row], stored=row[len(_ITEM_COLS)])
        return _item(row)

    def claim_queue_item(
        self, project: str, name: str, labeller: str, now: datetime, lease_until: datetime
    ) -> QueueItem | None:
        """Lease the open item ``labeller`` already holds (renewed), else the first open
        item nobody holds; None when there is none. The item's lease decides."""
        leases = Leases(self, ITEM_SCOPE)
        p = Params()
        base = (
            f"project = {p(project, 'String')} AND queue = {p(name, 'String')} "
            f"AND status = '{OPEN}'"
        )
        at = p(now, TIME)
        held = self.q(
            f"SELECT item_id FROM {{db}}.queue_items FINAL WHERE {base} "
            f"AND claimed_by = {p(labeller, 'String')} AND lease_expires_at > {at} "
            "ORDER BY item_id LIMIT 1",
            p,
        )

        def renew(row: list[Any]) -> None:
            row[_I["lease_expires_at"]] = lease_until

        def take(row: list[Any]) -> None:
            row[_I["claimed_by"]] = labeller
            row[_I["claimed_at"]] = now
            row[_I["lease_expires_at"]] = lease_until

        for (item_id,) in held:
            key = lease_key(project, name, str(item_id))
            if leases.claim(key, labeller, now, lease_until):
                item = self._update_open_item(project, name, int(item_id), renew)
                if item is not None:
                    return item
                leases.release(key, labeller, now)
        after = 0
        while True:
            p2 = Params()
            page = [
                int(r[0])
                for r in self.q(
                    f"SELECT item_id FROM {{db}}.queue_items FINAL "
                    f"WHERE project = {p2(project, 'String')} AND queue = {p2(name, 'String')} "
                    f"AND status = '{OPEN}' AND item_id > {p2(after, 'Int64')} "
                    f"AND (lease_expires_at IS NULL OR lease_expires_at <= {p2(now, TIME)}) "
                    "ORDER BY item_id LIMIT 64",
                    p2,
                )
            ]
            if not page:
                return None
            keys = {i: lease_key(project, name, str(i)) for i in page}
            busy = leases.holders(now, list(keys.values()))
            for item_id in page:
                key = keys[item_id]
                if key in busy and busy[key].owner != labeller:
                    continue
                if not leases.claim(key, labeller, now, lease_until):
                    continue  # another labeller won the race for it
                item = self._update_open_item(project, name, item_id, take)
                if item is not None:
                    return item
                leases.release(key, labeller, now)  # finished meanwhile
            after = page[-1]

    def release_queue_item(self, project: str, name: str, item_id: int, labeller: str) -> bool:
        """Drop ``labeller``'s claim on an open item; False when they do not hold it."""
        row = self._item_raw(project, name, item_id)
        if row is None or row[_I["status"]] != OPEN or row[_I["claimed_by"]] != labeller:
            return False
        # The lease as of the claim (no clock is passed in, and expiries may be test times).
        since = utc(row[_I["claimed_at"]]) or datetime.now(UTC)
        Leases(self, ITEM_SCOPE).release(lease_key(project, name, str(item_id)), labeller, since)

        def free(r: list[Any]) -> None:
            if r[_I["claimed_by"]] == labeller:
                r[_I["claimed_by"]] = r[_I["claimed_at"]] = r[_I["lease_expires_at"]] = None

        item = self._update_open_item(project, name, item_id, free)
        return item is not None and item.claimed_by is None

    def finish_queue_item(
        self,
        project: str,
        name: str,
        item_id: int,
        labeller: str,
        status: str,
        now: datetime,
        feedback: Feedback | None = None,
        reason: str | None = None,
    ) -> bool:
        """Mark an open item labelled (storing ``feedback`` first) or skipped, when nobody
        else holds its lease; False otherwise (nothing is stored). A labeller without a
        claim takes the item's lease for the moment it needs."""
        if status not in (LABELLED, SKIPPED):
            raise StoreError(f"an item finishes as labelled or skipped, not {status!r}")
        leases = Leases(self, ITEM_SCOPE)
        key = lease_key(project, name, str(item_id))
        holder = leases.holder(key, now)
        if holder is not None and holder.owner != labeller:
            return False
        if holder is None and not leases.claim(
            key, labeller, now, now + timedelta(seconds=_FINISH_SECONDS)
        ):
            return False
        try:
            row = self._item_raw(project, name, item_id)
            if row is None or row[_I["status"]] != OPEN:
                return False
            if feedback is not None:
                # Before the item: a crash in between leaves the item open with its label
                # stored under a stable id, so labelling it again stores nothing twice.
                cast(_Feedback, self).add_feedback([feedback])

            def done(r: list[Any]) -> None:
                r[_I["status"]] = status
                r[_I["done_by"]] = labeller
                r[_I["done_at"]] = now
                r[_I["feedback_id"]] = feedback.feedback_id if feedback else None
                r[_I["skip_reason"]] = reason
                r[_I["lease_expires_at"]] = None

            return self._update_open_item(project, name, item_id, done) is not None
        finally:
            leases.release(key, labeller, now)
