"""The storage contract. Backend-specific SQL lives only in this package."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from assay.model import (
    Aggregate,
    AggregateSets,
    ApiKey,
    EvalRun,
    Feedback,
    GoldenVersion,
    Project,
    Span,
    TraceSummary,
    Trial,
    UnpricedModel,
)
from assay.pricing import PriceTable
from assay.query import Page, SpanFilter

if TYPE_CHECKING:
    from assay.calibration import JudgeScore, JudgeScores, LabelOrigin, StoredCalibrator
    from assay.monitors.values import Monitor, MonitorAlert, MonitorResult
    from assay.online import Mark, OnlineRule, ProgressUpdate
    from assay.queues.values import Queue, QueueItem, QueueProgress


class StoreError(RuntimeError):
    """The store cannot do what was asked (locked file, closed, corrupt); says why."""


class StoreLockedError(StoreError):
    """Another process (usually ``assay serve``) holds the database file."""


@runtime_checkable
class Store(Protocol):
    """Everything assay persists. Implementations: :mod:`assay.store.duckdb`."""

    def insert_spans(self, spans: Sequence[Span]) -> int:
        """Durably store spans; ones already present (same project, trace, span id) are
        skipped. Returns how many were new. Returns only after commit."""
        ...

    def insert_arrow(self, table: pa.Table) -> int:
        """Like :meth:`insert_spans` for a table in :data:`assay.batch.SCHEMA`."""
        ...

    def list_spans(self, flt: SpanFilter, limit: int, cursor: str | None) -> Page[Span]:
        """Spans matching a filter, newest first."""
        ...

    def list_traces(self, flt: SpanFilter, limit: int, cursor: str | None) -> Page[TraceSummary]:
        """Traces with at least one span matching the filter, newest first."""
        ...

    def get_trace(self, project: str, trace_id: str) -> list[Span]:
        """Every span of one trace in start order (empty when unknown)."""
        ...

    def aggregate(
        self, flt: SpanFilter, bucket: timedelta | None, group_by: str | None
    ) -> list[Aggregate]:
        """Counts, errors, latency percentiles, tokens and cost per bucket and group."""
        ...

    def aggregate_sets(
        self, flt: SpanFilter, bucket: timedelta | None, group_by: str | None
    ) -> AggregateSets:
        """The aggregates per (bucket, group), per bucket, per group and in total, read in
        one pass (the dashboard overview)."""
        ...

    def unpriced_models(self, flt: SpanFilter) -> list[UnpricedModel]:
        """Models that appear in spans with tokens but no cost."""
        ...

    def reprice(self, prices: PriceTable) -> int:
        """Fill in the cost of spans whose model has gained a price; returns spans updated."""
        ...

    def count_spans(self, project: str | None = None) -> int:
        """Number of stored spans (of one project, or all)."""
        ...

    def create_project(self, name: str) -> Project:
        """Create a project (idempotent)."""
        ...

    def list_projects(self) -> list[Project]:
        """Every project."""
        ...

    def add_key(self, key: ApiKey, key_hash: str) -> None:
        """Record an API key by its hash."""
        ...

    def get_key(self, key_id: str) -> tuple[ApiKey, str] | None:
        """A key's public record and stored hash, if the key exists."""
        ...

    def list_keys(self, project: str | None = None) -> list[ApiKey]:
        """Keys (public records only), of one project or all."""
        ...

    def set_retention(self, project: str, days: float | None) -> None:
        """Keep ``project``'s spans for ``days`` (None: forever)."""
        ...

    def retention(self) -> dict[str, float]:
        """Every project that has a retention period, with its days."""
        ...

    def delete_spans_before(self, project: str, before: datetime) -> int:
        """Delete ``project``'s spans that started before ``before`` (and their cached
        embeddings); returns how many spans went."""
        ...

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key; False when no such key exists."""
        ...

    def save_golden_set(
        self,
        project: str,
        name: str,
        version: str,
        cases: Sequence[dict[str, Any]],
        description: str | None = None,
        source: str | None = None,
    ) -> tuple[GoldenVersion, bool]:
        """Store an immutable golden-set version; returns it and whether it was new."""
        ...

    def list_golden_versions(self, project: str, name: str | None = None) -> list[GoldenVersion]:
        """Versions of one golden set (or all), newest first."""
        ...

    def resolve_golden(
        self, project: str, name: str, version: str | None = None
    ) -> GoldenVersion | None:
        """The newest version of a set, or the one whose hash starts with ``version``."""
        ...

    def golden_cases(self, project: str, name: str, version: str) -> list[dict[str, Any]]:
        """The cases of one stored version, in file order."""
        ...

    def create_run(self, run: EvalRun) -> EvalRun:
        """Record a new eval run."""
        ...

    def get_run(self, project: str, run_id: str) -> EvalRun | None:
        """One run by id or unique id prefix."""
        ...

    def list_runs(self, project: str, golden: str | None = None, limit: int = 50) -> list[EvalRun]:
        """Runs, newest first."""
        ...

    def set_run_status(
        self, project: str, run_id: str, status: str, trials: int | None = None
    ) -> None:
        """Mark a run running, finished, interrupted or failed (and raise its trials)."""
        ...

    def record_trials(self, project: str, trials: Sequence[Trial]) -> int:
        """Durably store finished trials of one run with their scores; idempotent."""
        ...

    def completed_trials(self, project: str, run_id: str) -> set[tuple[str, int]]:
        """(case id, trial) pairs that finished without a target error."""
        ...

    def iter_trials(self, project: str, run_id: str) -> Iterator[Trial]:
        """A run's trials with scores, by case then trial, streamed."""
        ...

    def sample_window(
        self,
        flt: SpanFilter,
        fields: Sequence[str],
        attributes: Sequence[str] = (),
        limit: int = 20_000,
        seed: int = 0,
    ) -> tuple[pa.Table, int]:
        """A drift window: up to ``limit`` matching spans (the ones with the smallest
        seeded hash of their ids, in that order) with ``trace_id``, ``span_id``, the named
        fields and ``attr:KEY`` numeric attributes; and how many spans matched in all."""
        ...

    def load_embeddings(
        self,
        project: str,
        embedder: str,
        field: str,
        trace_ids: Sequence[str],
        span_ids: Sequence[str],
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Cached vectors of these spans: positions that have one, and their vectors."""
        ...

    def save_embeddings(
        self,
        project: str,
        embedder: str,
        field: str,
        trace_ids: Sequence[str],
        span_ids: Sequence[str],
        vectors: NDArray[np.float32],
    ) -> int:
        """Cache one vector per span (kept when already cached); returns how many were new."""
        ...

    def create_monitor(self, monitor: Monitor) -> bool:
        """Store a new monitor; False when the project already has one of that name."""
        ...

    def get_monitor(self, project: str, name: str) -> Monitor | None:
        """One monitor by name."""
        ...

    def list_monitors(self, project: str | None = None) -> list[Monitor]:
        """Monitors of one project (or all), by name."""
        ...

    def update_monitor(self, monitor: Monitor) -> bool:
        """Rewrite a monitor's definition, schedule, webhooks and enabled flag (state,
        history and lease are kept); False when it does not exist."""
        ...

    def delete_monitor(self, project: str, name: str) -> bool:
        """Remove a monitor with its results and alerts; False when it does not exist."""
        ...

    def claim_monitor(
        self,
        owner: str,
        now: datetime,
        lease_until: datetime,
        project: str | None = None,
        name: str | None = None,
    ) -> Monitor | None:
        """Lease the most overdue due monitor (or the named one, due or not) with a
        conditional update, so that no two schedulers run one monitor at once."""
        ...

    def renew_monitor_lease(
        self, project: str, name: str, owner: str, lease_until: datetime
    ) -> bool:
        """Extend a held lease; False when ``owner`` no longer holds it."""
        ...

    def release_monitor(self, project: str, name: str, owner: str) -> bool:
        """Give up a held lease without recording a run."""
        ...

    def record_monitor_run(
        self,
        result: MonitorResult,
        owner: str,
        next_run_at: datetime | None,
        alerts: Sequence[MonitorAlert],
        alert_lease_until: datetime | None = None,
    ) -> bool:
        """Atomically store a run's result and, while ``owner`` holds the lease, update the
        monitor's state and next run, release the lease and queue the alerts."""
        ...

    def list_monitor_results(
        self, project: str, name: str, limit: int = 100, since: datetime | None = None
    ) -> list[MonitorResult]:
        """A monitor's results (its drift time series), newest first, without reports."""
        ...

    def get_monitor_result(self, project: str, name: str, result_id: str) -> MonitorResult | None:
        """One result with its full drift report."""
        ...

    def claim_alerts(
        self, owner: str, now: datetime, lease_until: datetime, limit: int = 20
    ) -> list[MonitorAlert]:
        """Lease pending alerts that nobody is delivering and whose next attempt is due."""
        ...

    def save_alert_attempt(
        self, alert: MonitorAlert, owner: str, lease_until: datetime | None
    ) -> bool:
        """Record a delivery attempt of a held alert; ``lease_until`` None releases it."""
        ...

    def list_monitor_alerts(self, project: str, name: str, limit: int = 50) -> list[MonitorAlert]:
        """A monitor's alerts with their delivery status, newest first."""
        ...

    def add_feedback(self, items: Sequence[Feedback]) -> list[Feedback]:
        """Store feedback records (idempotent by id); returns what is stored for each id."""
        ...

    def list_feedback(
        self,
        project: str,
        *,
        trace_id: str | None = None,
        name: str | None = None,
        source: str | None = None,
        ids: Sequence[str] | None = None,
        limit: int = 1000,
    ) -> list[Feedback]:
        """Feedback of a project, newest first."""
        ...

    def judge_scores(self, project: str, judge: str, labels: str, flt: SpanFilter) -> JudgeScores:
        """A judge's latest score per (trace, span) in a window, with the latest human label
        named ``labels`` on the same items."""
        ...

    def list_judge_scores(
        self, project: str, judge: str, flt: SpanFilter, limit: int = 100
    ) -> list[JudgeScore]:
        """A judge's latest score per (trace, span) in a window, newest first."""
        ...

    def save_calibrator(self, calibrator: StoredCalibrator) -> None:
        """Store a judge's calibrator, replacing the one it had."""
        ...

    def get_calibrator(self, project: str, judge: str) -> StoredCalibrator | None:
        """The calibrator stored for a judge, if any."""
        ...

    def list_calibrators(self, project: str) -> list[StoredCalibrator]:
        """Every stored calibrator of a project."""
        ...

    def delete_calibrator(self, project: str, judge: str) -> bool:
        """Drop a judge's calibrator; False when none was stored."""
        ...

    def label_origins(
        self, project: str, label_ids: Sequence[str], keys: Sequence[tuple[str, str | None]]
    ) -> list[LabelOrigin | None]:
        """The annotation queue each label came from, with its sampling (None: no queue)."""
        ...

    def queue_population(
        self, flt: SpanFilter, unit: str, stratify_by: str | None = None
    ) -> dict[str | None, int]:
        """Sampling units (``trace``: traces with a matching span; ``span``: matching spans)
        per value of ``stratify_by`` (one None key when not stratified)."""
        ...

    def sample_queue_keys(
        self,
        flt: SpanFilter,
        unit: str,
        quotas: Mapping[str | None, int],
        seed: int,
        stratify_by: str | None = None,
    ) -> list[tuple[str, str, str | None]]:
        """A seeded simple random sample of units per stratum, as (trace_id, span_id,
        stratum); a trace is given by its root span."""
        ...

    def queue_judge_scores(
        self, flt: SpanFilter, name: str
    ) -> list[tuple[str, str | None, float | None, str | None]]:
        """Judge feedback named ``name`` on matching spans (or their traces) as (trace_id,
        span_id, number, category)."""
        ...

    def root_span_ids(self, project: str, trace_ids: Sequence[str]) -> dict[str, str]:
        """Each stored trace's root span id."""
        ...

    def spans_by_key(self, flt: SpanFilter, keys: Sequence[tuple[str, str]]) -> list[Span]:
        """The spans among (trace_id, span_id) keys that are stored and match ``flt``."""
        ...

    def create_queue(self, queue: Queue, items: Sequence[QueueItem]) -> bool:
        """Store an annotation queue with its items; False when the name is taken."""
        ...

    def add_queue_items(self, project: str, name: str, items: Sequence[QueueItem]) -> int:
        """Append items to a queue in one transaction, numbered after its last item, and
        grow its item count and population by as many; an item whose (trace_id, span_id)
        the queue already holds is left out. Returns how many were added. StoreError when
        the queue does not exist or would hold more than its size."""
        ...

    def get_queue(self, project: str, name: str) -> Queue | None:
        """One annotation queue by name."""
        ...

    def list_queues(self, project: str) -> list[Queue]:
        """A project's annotation queues, newest first."""
        ...

    def delete_queue(self, project: str, name: str) -> bool:
        """Remove a queue and its items (labels stay as feedback); False when unknown."""
        ...

    def queue_progress(self, project: str, name: str, now: datetime) -> QueueProgress:
        """A queue's items by state and per labeller."""
        ...

    def list_queue_items(
        self, project: str, name: str, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[QueueItem]:
        """A queue's items in order."""
        ...

    def get_queue_item(self, project: str, name: str, item_id: int) -> QueueItem | None:
        """One queue item by number."""
        ...

    def claim_queue_item(
        self, project: str, name: str, labeller: str, now: datetime, lease_until: datetime
    ) -> QueueItem | None:
        """Lease the item ``labeller`` holds (renewed) or the first free open item."""
        ...

    def release_queue_item(self, project: str, name: str, item_id: int, labeller: str) -> bool:
        """Drop ``labeller``'s claim on an item."""
        ...

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
        """Mark an open item labelled (storing its feedback atomically) or skipped, unless
        another labeller holds it."""
        ...

    def create_online_rule(self, rule: OnlineRule) -> bool:
        """Store a new online-evaluation rule; False when the name is taken."""
        ...

    def get_online_rule(self, project: str, name: str) -> OnlineRule | None:
        """One online-evaluation rule with its progress."""
        ...

    def list_online_rules(self, project: str | None = None) -> list[OnlineRule]:
        """Online-evaluation rules of one project (or all), by name."""
        ...

    def update_online_rule(self, rule: OnlineRule) -> bool:
        """Rewrite a rule's definition and enabled flag (progress and lease kept)."""
        ...

    def delete_online_rule(self, project: str, name: str) -> bool:
        """Remove a rule (its stored scores stay); False when it does not exist."""
        ...

    def claim_online_rule(
        self,
        owner: str,
        now: datetime,
        lease_until: datetime,
        skip: Sequence[tuple[str, str]] = (),
    ) -> OnlineRule | None:
        """Lease an enabled rule nobody holds, so no two workers score one rule at once."""
        ...

    def renew_online_lease(
        self, project: str, name: str, owner: str, lease_until: datetime
    ) -> OnlineRule | None:
        """Extend a held lease; the rule as stored now, or None when the lease is lost."""
        ...

    def release_online_rule(self, project: str, name: str, owner: str) -> bool:
        """Give up a held lease."""
        ...

    def scan_online(self, flt: SpanFilter, after: Mark, limit: int) -> list[Mark]:
        """Keys of committed spans matching a filter after a watermark, in commit order;
        none can later appear before the last one returned."""
        ...

    def online_spans(self, project: str, keys: Sequence[Mark]) -> list[Span]:
        """The spans at these keys, in key order."""
        ...

    def online_backlog(self, flt: SpanFilter, after: Mark) -> tuple[int, datetime | None]:
        """Matching spans committed after a watermark, and the time of the oldest."""
        ...

    def record_online_progress(
        self, project: str, name: str, owner: str, update: ProgressUpdate
    ) -> bool:
        """Store scores as feedback and add counters; move the watermark only while
        ``owner`` holds the lease (returned)."""
        ...

    def get_meta(self, key: str) -> str | None:
        """A database-level fact (for example the ``demo`` marker), or None when unset."""
        ...

    def set_meta(self, key: str, value: str) -> None:
        """Set a database-level fact, replacing its previous value."""
        ...

    def close(self) -> None:
        """Release the database."""
        ...


def open_store(
    url: str,
    read_only: bool = False,
    memory_limit: str | None = None,
    threads: int = 0,
    checkpoint_threshold: str | None = None,
    row_group_size: int | None = None,
) -> Store:
    """Open the store a URL or path names: a path or ``duckdb:///path`` is DuckDB;
    ``clickhouse://``, ``clickhouses://`` and ``chdb://`` are ClickHouse (the
    ``assay[clickhouse]`` extra)."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme in ("clickhouse", "clickhouses", "chdb"):
        from assay.store.clickhouse_store import ClickHouseStore

        return ClickHouseStore(url)
    from assay.store.duckdb import DuckDBStore

    path = url.removeprefix("duckdb://") if scheme == "duckdb" else url
    if "://" in path:
        raise StoreError(
            f"store {url!r}: scheme {scheme!r} is not supported; use a file path such as "
            "./assay.duckdb, clickhouse://user:pass@host:8123/db or chdb:///path/to/dir"
        )
    # None keeps DuckDBStore's own default (DEFAULT_ROW_GROUP_SIZE).
    sizing: dict[str, Any] = {} if row_group_size is None else {"row_group_size": row_group_size}
    return DuckDBStore(
        path,
        read_only=read_only,
        memory_limit=memory_limit,
        threads=threads,
        checkpoint_threshold=checkpoint_threshold,
        **sizing,
    )


def is_url(location: str) -> bool:
    """Whether a store location is a URL (``clickhouse://…``) rather than a file path."""
    return "://" in location and not location.startswith("duckdb://")


def redact(location: str) -> str:
    """A store location fit for logs: a URL's password replaced by ``***``."""
    from urllib.parse import urlsplit, urlunsplit

    if "://" not in location:
        return location
    parts = urlsplit(location)
    if parts.password is None:
        return location
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


__all__ = ["Store", "StoreError", "StoreLockedError", "is_url", "open_store", "redact"]
