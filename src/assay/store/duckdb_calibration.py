"""Judge scores paired with human labels, stored calibrators and label provenance in the
DuckDB store (mixed into DuckDBStore)."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import duckdb
import numpy as np
import pyarrow.compute as pc

from assay.calibration import (
    JUDGE_SOURCE,
    LABEL_SOURCES,
    JudgeScore,
    JudgeScores,
    LabelOrigin,
    StoredCalibrator,
)
from assay.query import SpanFilter

# The latest record with a number (or true/false, stored as 1.0/0.0) per (trace, span):
# "latest" is the newest created_at, ties broken by the larger id, so reads are stable.
# The latest record per (trace, span). A trace-level record (no span id) stands for the
# trace's root span when the trace is stored, so a score on the trace pairs with a label
# on its root span (what a trace-unit annotation queue shows) and the other way round.
_LATEST = """
    SELECT f.trace_id, coalesce(f.span_id, r.root) AS span_id,
           arg_max(f.number, (f.created_at, f.feedback_id)) AS value,
           arg_max(f.feedback_id, (f.created_at, f.feedback_id)) AS fid,
           max(f.created_at) AS scored_at
    FROM feedback f
    LEFT JOIN (
        SELECT trace_id, min(span_id) AS root FROM spans
        WHERE project = ? AND parent_span_id IS NULL AND trace_id IN (
            SELECT trace_id FROM feedback
            WHERE project = ? AND name = ? AND span_id IS NULL)
        GROUP BY trace_id
    ) r ON f.span_id IS NULL AND r.trace_id = f.trace_id
    WHERE f.project = ? AND f.name = ? AND list_contains(?, f.source)
      AND f.kind IN ('number', 'boolean') AND f.number IS NOT NULL
    GROUP BY f.trace_id, coalesce(f.span_id, r.root)
"""


def _latest_params(project: str, name: str, sources: list[str]) -> list[Any]:
    """The parameters of one :data:`_LATEST`, in order."""
    return [project, project, name, project, name, sources]


_CAL_COLS = (
    "project, judge, labels, method, params, fitted_at, n, n_fit, n_holdout, ece_before, "
    "ece_after, brier_before, brier_after, window_text"
)


def _window(flt: SpanFilter, alias: str) -> tuple[str, str, list[Any]]:
    """CTEs and a WHERE clause keeping the records whose span (or, for a trace-level
    record, any span of whose trace) matches the filter; nothing when it filters nothing."""
    if flt == SpanFilter(project=flt.project):
        return "", "TRUE", []
    from assay.store.duckdb import _where

    where, params = _where(flt)
    ctes = (
        f", win AS (SELECT DISTINCT trace_id, span_id FROM spans WHERE {where})"
        ", win_traces AS (SELECT DISTINCT trace_id FROM win)"
    )
    clause = (
        f"(({alias}.span_id IS NULL AND {alias}.trace_id IN (SELECT trace_id FROM win_traces))"
        f" OR ({alias}.trace_id, {alias}.span_id) IN (SELECT trace_id, span_id FROM win))"
    )
    return ctes, clause, params


def _calibrator(row: tuple[Any, ...]) -> StoredCalibrator:
    return StoredCalibrator(
        project=row[0],
        judge=row[1],
        labels=row[2],
        method=row[3],
        params=json.loads(row[4]),
        fitted_at=row[5].replace(tzinfo=UTC),
        n=row[6],
        n_fit=row[7],
        n_holdout=row[8],
        ece_before=row[9],
        ece_after=row[10],
        brier_before=row[11],
        brier_after=row[12],
        window=row[13],
    )


class CalibrationTables:
    """The judge-calibration half of :class:`assay.store.duckdb.DuckDBStore`."""

    _write_lock: threading.Lock

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        raise NotImplementedError

    def judge_scores(self, project: str, judge: str, labels: str, flt: SpanFilter) -> JudgeScores:
        """The latest score of ``judge`` per (trace, span) in the window and the latest
        human label named ``labels`` on the same items (see :class:`JudgeScores`)."""
        ctes, clause, wparams = _window(flt, "k")
        sql = f"""
            WITH j AS ({_LATEST}), h AS ({_LATEST}){ctes},
            k AS (
                SELECT coalesce(j.trace_id, h.trace_id) AS trace_id,
                       coalesce(j.span_id, h.span_id) AS span_id,
                       j.value AS score, h.value AS label, h.fid AS label_id
                FROM j FULL OUTER JOIN h
                  ON j.trace_id = h.trace_id AND j.span_id IS NOT DISTINCT FROM h.span_id
            )
            SELECT trace_id, span_id, score, label, label_id FROM k WHERE {clause}
            ORDER BY trace_id, span_id NULLS FIRST
        """
        params = [
            *_latest_params(project, judge, [JUDGE_SOURCE]),
            *_latest_params(project, labels, list(LABEL_SOURCES)),
            *wparams,
        ]
        table = self._cursor().sql(sql, params=params).to_arrow_table()
        has_score = pc.is_valid(table.column("score"))
        has_label = pc.is_valid(table.column("label"))
        scored = table.filter(has_score)
        score = scored.column("score").to_numpy()
        label_mask = pc.is_valid(scored.column("label")).to_numpy(zero_copy_only=False)
        labelled = np.flatnonzero(label_mask).astype(np.int64)
        pairs = scored.filter(pc.is_valid(scored.column("label")))
        label_only = int(pc.sum(pc.and_(has_label, pc.invert(has_score))).as_py() or 0)
        traces = pairs.column("trace_id").to_pylist()
        spans = pairs.column("span_id").to_pylist()
        return JudgeScores(
            project=project,
            judge=judge,
            labels=labels,
            scores=np.asarray(score, dtype=np.float64),
            labelled=labelled,
            human=np.asarray(pairs.column("label").to_numpy(), dtype=np.float64),
            label_ids=tuple(pairs.column("label_id").to_pylist()),
            label_keys=tuple(zip(traces, spans, strict=True)),
            label_only=label_only,
        )

    def list_judge_scores(
        self, project: str, judge: str, flt: SpanFilter, limit: int = 100
    ) -> list[JudgeScore]:
        """The latest score of ``judge`` per (trace, span) in the window, newest first."""
        ctes, clause, wparams = _window(flt, "j")
        sql = f"""
            WITH j AS ({_LATEST}){ctes}
            SELECT trace_id, span_id, value, fid, scored_at FROM j WHERE {clause}
            ORDER BY scored_at DESC, fid DESC LIMIT ?
        """
        rows = (
            self._cursor()
            .execute(sql, [*_latest_params(project, judge, [JUDGE_SOURCE]), *wparams, limit])
            .fetchall()
        )
        return [JudgeScore(r[0], r[1], float(r[2]), r[3], r[4].replace(tzinfo=UTC)) for r in rows]

    def save_calibrator(self, calibrator: StoredCalibrator) -> None:
        """Store a judge's calibrator, replacing the one it had."""
        c = calibrator
        with self._write_lock:
            self._cursor().execute(
                f"INSERT OR REPLACE INTO judge_calibrators ({_CAL_COLS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    c.project,
                    c.judge,
                    c.labels,
                    c.method,
                    json.dumps(c.params),
                    utc_naive(c.fitted_at),
                    c.n,
                    c.n_fit,
                    c.n_holdout,
                    c.ece_before,
                    c.ece_after,
                    c.brier_before,
                    c.brier_after,
                    c.window,
                ],
            )

    def get_calibrator(self, project: str, judge: str) -> StoredCalibrator | None:
        """The calibrator stored for a judge, if any."""
        row = (
            self._cursor()
            .execute(
                f"SELECT {_CAL_COLS} FROM judge_calibrators WHERE project = ? AND judge = ?",
                [project, judge],
            )
            .fetchone()
        )
        return None if row is None else _calibrator(row)

    def list_calibrators(self, project: str) -> list[StoredCalibrator]:
        """Every stored calibrator of a project, by judge name."""
        rows = (
            self._cursor()
            .execute(
                f"SELECT {_CAL_COLS} FROM judge_calibrators WHERE project = ? ORDER BY judge",
                [project],
            )
            .fetchall()
        )
        return [_calibrator(r) for r in rows]

    def delete_calibrator(self, project: str, judge: str) -> bool:
        """Drop a judge's calibrator; False when none was stored."""
        with self._write_lock:
            row = (
                self._cursor()
                .execute(
                    "DELETE FROM judge_calibrators WHERE project = ? AND judge = ? RETURNING judge",
                    [project, judge],
                )
                .fetchone()
            )
        return row is not None

    def label_origins(
        self,
        project: str,
        label_ids: Sequence[str],
        keys: Sequence[tuple[str, str | None]],
    ) -> list[LabelOrigin | None]:
        """The annotation-queue item each label came from (``None``: added outside a queue).

        A label given through a queue names its feedback record on the item; a label
        recorded otherwise for an item a queue selected and had labelled (a correction,
        say) still owes its selection to that queue, so the item is found by its trace
        and span too. Before annotation queues exist (no m007 tables) every label is ad hoc.
        """
        if not label_ids:
            return []
        cur = self._cursor()
        present = cur.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
            "AND table_name IN ('queues', 'queue_items')"
        ).fetchone()
        if not present or present[0] < 2:
            return [None] * len(label_ids)
        traces = [k[0] for k in keys]
        spans = [k[1] for k in keys]
        rows = cur.execute(
            """
            WITH l AS (
                SELECT unnest(?) AS fid, unnest(?) AS trace_id, unnest(?) AS span_id,
                       unnest(range(?)) AS i
            ),
            items AS (
                SELECT qi.*, q.strategy FROM queue_items qi
                JOIN queues q ON q.project = qi.project AND q.name = qi.queue
                WHERE qi.project = ? AND qi.feedback_id IS NOT NULL
            ),
            hit AS (
                SELECT l.i, it.queue, it.strategy, it.inclusion_probability, 0 AS how, it.done_at
                FROM l JOIN items it ON it.feedback_id = l.fid
                UNION ALL
                SELECT l.i, it.queue, it.strategy, it.inclusion_probability, 1 AS how, it.done_at
                FROM l JOIN items it ON it.trace_id = l.trace_id AND it.span_id = l.span_id
            )
            SELECT i, queue, strategy, inclusion_probability FROM hit
            QUALIFY row_number() OVER (
                PARTITION BY i ORDER BY how, done_at DESC NULLS LAST, queue) = 1
            """,
            [list(label_ids), traces, spans, len(label_ids), project],
        ).fetchall()
        out: list[LabelOrigin | None] = [None] * len(label_ids)
        for i, queue, strategy, prob in rows:
            out[int(i)] = LabelOrigin(queue, strategy, None if prob is None else float(prob))
        return out


def utc_naive(dt: datetime) -> datetime:
    """A timestamp as DuckDB's TIMESTAMP column holds it (UTC, no zone)."""
    return dt.astimezone(UTC).replace(tzinfo=None)
