"""Judge scores paired with human labels, stored calibrators and label provenance in the
ClickHouse store (mixed into ClickHouseStore).

The pairing reads ``feedback`` (see :mod:`assay.store.clickhouse_feedback`) exactly as the
DuckDB store does: the latest record per (trace, span), a trace-level record standing for
the trace's root span. ``judge_calibrators`` is a ReplacingMergeTree keyed by (project,
judge); a refit writes a newer version, a delete a newer version marked ``deleted``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from assay.calibration import (
    JUDGE_SOURCE,
    LABEL_SOURCES,
    JudgeScore,
    JudgeScores,
    LabelOrigin,
    StoredCalibrator,
)
from assay.query import SpanFilter
from assay.store.clickhouse import TIME, ClickHouseBase, Params, Schema
from assay.store.clickhouse_spans import where
from assay.store.rows import utc

_CAL_COLS = (
    "project",
    "judge",
    "labels",
    "method",
    "params",
    "fitted_at",
    "n",
    "n_fit",
    "n_holdout",
    "ece_before",
    "ece_after",
    "brier_before",
    "brier_after",
    "window_text",
)
_CAL_SELECT = ", ".join(_CAL_COLS)


def _calibrators_ddl(schema: Schema) -> list[str]:
    return schema.table(
        "judge_calibrators",
        f"""
        project LowCardinality(String),
        judge String,
        labels String,
        method LowCardinality(String),
        params String,
        fitted_at {TIME},
        n Int32,
        n_fit Int32,
        n_holdout Int32,
        ece_before Nullable(Float64),
        ece_after Float64,
        brier_before Nullable(Float64),
        brier_after Float64,
        window_text String,
        deleted UInt8,
        version UInt64
        """,
        version="version",
        order_by="(project, judge)",
    )


#: (migration name, DDL builder taking a Schema), applied in name order with the rest.
MIGRATIONS: list[tuple[str, Any]] = [("m008_calibrators", _calibrators_ddl)]


def _latest(p: Params, project: str, name: str, sources: Sequence[str]) -> str:
    """The latest record with a number (or true/false, stored as 1.0/0.0) per (trace, span):
    "latest" is the newest created_at, ties broken by the larger id, so reads are stable.
    A trace-level record (no span id) stands for the trace's root span when the trace is
    stored, so a score on the trace pairs with a label on its root span and the other way
    round."""
    proj, nm = p(project, "String"), p(name, "String")
    # root is Nullable, so a trace without stored spans joins to NULL (not '').
    return f"""
        SELECT f.trace_id AS trace_id, coalesce(f.span_id, r.root) AS span_id,
               argMax(assumeNotNull(f.number), (f.created_at, f.feedback_id)) AS value,
               argMax(f.feedback_id, (f.created_at, f.feedback_id)) AS fid,
               max(f.created_at) AS scored_at
        FROM {{db}}.feedback AS f FINAL
        LEFT JOIN (
            SELECT trace_id, CAST(min(span_id) AS Nullable(String)) AS root
            FROM {{db}}.spans FINAL
            WHERE project = {proj} AND parent_span_id IS NULL AND trace_id IN (
                SELECT trace_id FROM {{db}}.feedback FINAL
                WHERE project = {proj} AND name = {nm} AND span_id IS NULL)
            GROUP BY trace_id
        ) AS r ON r.trace_id = f.trace_id
        WHERE f.project = {proj} AND f.name = {nm}
          AND f.source IN {p(list(sources), "Array(String)")}
          AND f.kind IN ('number', 'boolean') AND f.number IS NOT NULL
        GROUP BY f.trace_id, coalesce(f.span_id, r.root)
    """


def _window(flt: SpanFilter, p: Params) -> tuple[str, str]:
    """A CTE and a condition keeping the records whose span (or, for a trace-level record,
    any span of whose trace) matches the filter; nothing when it filters nothing."""
    if flt == SpanFilter(project=flt.project):
        return "", "1"
    cte = (
        ", win AS (SELECT DISTINCT trace_id, span_id FROM {db}.spans FINAL "
        f"WHERE {where(flt, p)})"
    )
    clause = (
        "((span_id IS NULL AND trace_id IN (SELECT trace_id FROM win))"
        " OR (trace_id, assumeNotNull(span_id)) IN (SELECT trace_id, span_id FROM win))"
    )
    return cte, clause


def _calibrator(row: Sequence[Any]) -> StoredCalibrator:
    return StoredCalibrator(
        project=row[0],
        judge=row[1],
        labels=row[2],
        method=row[3],
        params=json.loads(row[4]),
        fitted_at=utc(row[5]),  # type: ignore[arg-type]  # NOT NULL column
        n=int(row[6]),
        n_fit=int(row[7]),
        n_holdout=int(row[8]),
        ece_before=None if row[9] is None else float(row[9]),
        ece_after=float(row[10]),
        brier_before=None if row[11] is None else float(row[11]),
        brier_after=float(row[12]),
        window=row[13],
    )


class CalibrationTables(ClickHouseBase):
    """The calibration methods of :class:`assay.store.Store` on ClickHouse."""

    def judge_scores(self, project: str, judge: str, labels: str, flt: SpanFilter) -> JudgeScores:
        """The latest score of ``judge`` per (trace, span) in the window and the latest
        human label named ``labels`` on the same items (see :class:`JudgeScores`)."""
        p = Params()
        j = _latest(p, project, judge, [JUDGE_SOURCE])
        h = _latest(p, project, labels, list(LABEL_SOURCES))
        cte, clause = _window(flt, p)
        # One row per (trace, span) from either side: GROUP BY treats NULL span ids as one
        # key (what DuckDB's FULL JOIN ... IS NOT DISTINCT FROM does), and each side has at
        # most one row per key, so any() picks it (skipping the other side's NULL).
        rows = self.q(
            f"""
            WITH j AS ({j}), h AS ({h}){cte},
            k AS (
                SELECT trace_id, span_id, any(score) AS score, any(label) AS label,
                       any(label_id) AS label_id
                FROM (
                    SELECT trace_id, span_id, CAST(value AS Nullable(Float64)) AS score,
                           CAST(NULL AS Nullable(Float64)) AS label,
                           CAST(NULL AS Nullable(String)) AS label_id
                    FROM j
                    UNION ALL
                    SELECT trace_id, span_id, CAST(NULL AS Nullable(Float64)),
                           CAST(value AS Nullable(Float64)), CAST(fid AS Nullable(String))
                    FROM h
                )
                GROUP BY trace_id, span_id
            )
            SELECT trace_id, span_id, score, label, label_id FROM k WHERE {clause}
            ORDER BY trace_id, span_id NULLS FIRST
            """,
            p,
        )
        scored = [r for r in rows if r[2] is not None]
        pairs = [r for r in scored if r[3] is not None]
        return JudgeScores(
            project=project,
            judge=judge,
            labels=labels,
            scores=np.asarray([r[2] for r in scored], dtype=np.float64),
            labelled=np.asarray(
                [i for i, r in enumerate(scored) if r[3] is not None], dtype=np.int64
            ),
            human=np.asarray([r[3] for r in pairs], dtype=np.float64),
            label_ids=tuple(r[4] for r in pairs),
            label_keys=tuple((r[0], r[1]) for r in pairs),
            label_only=sum(1 for r in rows if r[2] is None and r[3] is not None),
        )

    def list_judge_scores(
        self, project: str, judge: str, flt: SpanFilter, limit: int = 100
    ) -> list[JudgeScore]:
        """The latest score of ``judge`` per (trace, span) in the window, newest first."""
        p = Params()
        j = _latest(p, project, judge, [JUDGE_SOURCE])
        cte, clause = _window(flt, p)
        rows = self.q(
            f"""
            WITH j AS ({j}){cte}
            SELECT trace_id, span_id, value, fid, scored_at FROM j WHERE {clause}
            ORDER BY scored_at DESC, fid DESC LIMIT {p(max(limit, 0), "UInt64")}
            """,
            p,
        )
        return [
            JudgeScore(r[0], r[1], float(r[2]), r[3], utc(r[4]))  # type: ignore[arg-type]
            for r in rows
        ]

    def _write_calibrator(self, c: StoredCalibrator, deleted: bool) -> None:
        self.insert_rows(
            "judge_calibrators",
            [*_CAL_COLS, "deleted", "version"],
            [
                [
                    c.project,
                    c.judge,
                    c.labels,
                    c.method,
                    json.dumps(c.params),
                    c.fitted_at,
                    c.n,
                    c.n_fit,
                    c.n_holdout,
                    c.ece_before,
                    c.ece_after,
                    c.brier_before,
                    c.brier_after,
                    c.window,
                    int(deleted),
                    self.version(),
                ]
            ],
        )

    def save_calibrator(self, calibrator: StoredCalibrator) -> None:
        """Store a judge's calibrator, replacing the one it had."""
        with self._write_lock:
            self._write_calibrator(calibrator, deleted=False)

    def _calibrators(self, project: str, judge: str | None) -> list[StoredCalibrator]:
        p = Params()
        cond = f"project = {p(project, 'String')}"
        if judge is not None:
            cond += f" AND judge = {p(judge, 'String')}"
        # deleted is filtered outside FINAL, so a delete hides every older version.
        rows = self.q(
            f"SELECT {_CAL_SELECT} FROM ("
            f"SELECT {_CAL_SELECT}, deleted FROM {{db}}.judge_calibrators FINAL WHERE {cond}"
            ") WHERE deleted = 0 ORDER BY judge",
            p,
        )
        return [_calibrator(r) for r in rows]

    def get_calibrator(self, project: str, judge: str) -> StoredCalibrator | None:
        """The calibrator stored for a judge, if any."""
        found = self._calibrators(project, judge)
        return found[0] if found else None

    def list_calibrators(self, project: str) -> list[StoredCalibrator]:
        """Every stored calibrator of a project, by judge name."""
        return self._calibrators(project, None)

    def delete_calibrator(self, project: str, judge: str) -> bool:
        """Drop a judge's calibrator; False when none was stored."""
        with self._write_lock:
            found = self.get_calibrator(project, judge)
            if found is None:
                return False
            self._write_calibrator(found, deleted=True)
        return True

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
        and span too (the queue that labelled it last, then by name).
        """
        if not label_ids:
            return []
        p = Params()
        present = self.q(
            f"SELECT count() FROM system.tables WHERE database = {p(self.database, 'String')} "
            "AND name IN ('queues', 'queue_items')",
            p,
        )
        if not present or int(present[0][0]) < 2:
            # Like a DuckDB file from before m007: no queue tables, every label is ad hoc.
            return [None] * len(label_ids)
        p = Params()
        proj = p(project, "String")
        labels = (
            f"arrayZip({p(list(label_ids), 'Array(String)')}, "
            f"{p([k[0] for k in keys], 'Array(String)')}, "
            f"{p([k[1] for k in keys], 'Array(Nullable(String))')}, "
            f"range({p(len(label_ids), 'UInt64')}))"
        )
        rows = self.q(
            f"""
            WITH l AS (
                SELECT x.1 AS fid, x.2 AS trace_id, x.3 AS span_id, x.4 AS i
                FROM (SELECT arrayJoin({labels}) AS x)
            ),
            items AS (
                SELECT qi.queue AS queue, qi.trace_id AS trace_id, qi.span_id AS span_id,
                       qi.feedback_id AS feedback_id, qi.done_at AS done_at,
                       qi.inclusion_probability AS inclusion_probability,
                       q.strategy AS strategy
                FROM {{db}}.queue_items AS qi FINAL
                JOIN (SELECT name, strategy FROM {{db}}.queues FINAL WHERE project = {proj}) AS q
                  ON q.name = qi.queue
                WHERE qi.project = {proj} AND qi.feedback_id IS NOT NULL
            )
            SELECT i, queue, strategy, inclusion_probability FROM (
                SELECT l.i AS i, it.queue AS queue, it.strategy AS strategy,
                       it.inclusion_probability AS inclusion_probability, 0 AS how,
                       it.done_at AS done_at
                FROM l JOIN items AS it ON it.feedback_id = l.fid
                UNION ALL
                SELECT l.i, it.queue, it.strategy, it.inclusion_probability, 1, it.done_at
                FROM l JOIN items AS it
                  ON it.trace_id = l.trace_id AND it.span_id = l.span_id
            )
            ORDER BY i, how, done_at DESC NULLS LAST, queue
            LIMIT 1 BY i
            """,
            p,
        )
        out: list[LabelOrigin | None] = [None] * len(label_ids)
        for i, queue, strategy, prob in rows:
            out[int(i)] = LabelOrigin(queue, strategy, None if prob is None else float(prob))
        return out
