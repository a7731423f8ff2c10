"""Golden sets, eval runs, trials and scores in the DuckDB store (mixed into DuckDBStore)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from typing import Any

import duckdb
import pyarrow as pa

from assay.model import EvalRun, GoldenVersion, Output, Score, Trial
from assay.store import StoreError
from assay.store.rows import golden_from_row as _golden
from assay.store.rows import now as _now
from assay.store.rows import run_from_row as _run
from assay.store.rows import utc as _utc

_TRIAL_COLUMNS = (
    "case_id",
    "trial",
    "output",
    "error",
    "latency_ms",
    "input_tokens",
    "output_tokens",
    "cost",
    "started_at",
    "finished_at",
)
_TRIAL_SCHEMA = pa.schema(
    [
        ("case_id", pa.string()),
        ("trial", pa.int32()),
        ("output", pa.string()),
        ("error", pa.string()),
        ("latency_ms", pa.float64()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("cost", pa.float64()),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")),
    ]
)
_SCORE_COLUMNS = (
    "case_id",
    "trial",
    "scorer",
    "value",
    "passed",
    "label",
    "explanation",
    "metadata",
    "error",
)
_SCORE_SCHEMA = pa.schema(
    [
        ("case_id", pa.string()),
        ("trial", pa.int32()),
        ("scorer", pa.string()),
        ("value", pa.float64()),
        ("passed", pa.bool_()),
        ("label", pa.string()),
        ("explanation", pa.string()),
        ("metadata", pa.string()),
        ("error", pa.string()),
    ]
)

#: Trials read per query when streaming a run's results (memory stays flat in run size).
_TRIAL_PAGE = 2_000


_GOLDEN_COLS = "project, name, version, description, case_count, source, created_at"
_RUN_COLS = (
    "project, run_id, name, golden, golden_version, target, scorers, trials, status, "
    "created_at, finished_at, metadata"
)


class EvalTables:
    """The eval half of :class:`assay.store.duckdb.DuckDBStore`."""

    _write_lock: threading.Lock

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        raise NotImplementedError

    # -- golden sets --------------------------------------------------------------------

    def save_golden_set(
        self,
        project: str,
        name: str,
        version: str,
        cases: Sequence[dict[str, Any]],
        description: str | None = None,
        source: str | None = None,
    ) -> tuple[GoldenVersion, bool]:
        """Store a golden-set version (cases as JSON-ready dicts with an ``id``); a version
        already stored is left as it is. Returns the version and whether it is new."""
        with self._write_lock:
            cur = self._cursor()
            existing = cur.execute(
                f"SELECT {_GOLDEN_COLS} FROM golden_sets WHERE project = ? AND name = ? "
                "AND version = ?",
                [project, name, version],
            ).fetchone()
            if existing is not None:
                return _golden(existing), False
            cur.execute("BEGIN")
            try:
                cur.execute(
                    f"INSERT INTO golden_sets ({_GOLDEN_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [project, name, version, description, len(cases), source, _now()],
                )
                body = pa.table(
                    {
                        "position": pa.array(range(len(cases)), pa.int32()),
                        "case_id": [str(c["id"]) for c in cases],
                        "body": [json.dumps(c, ensure_ascii=False) for c in cases],
                    }
                )
                cur.register("assay_cases", body)
                try:
                    cur.execute(
                        "INSERT INTO golden_cases (project, name, version, position, case_id, "
                        "body) SELECT ?, ?, ?, position, case_id, body FROM assay_cases",
                        [project, name, version],
                    )
                finally:
                    cur.unregister("assay_cases")
                cur.execute("COMMIT")
            except duckdb.Error:
                cur.execute("ROLLBACK")
                raise
            row = cur.execute(
                f"SELECT {_GOLDEN_COLS} FROM golden_sets WHERE project = ? AND name = ? "
                "AND version = ?",
                [project, name, version],
            ).fetchone()
        assert row is not None
        return _golden(row), True

    def list_golden_versions(self, project: str, name: str | None = None) -> list[GoldenVersion]:
        """Versions of one golden set (or of all), newest first."""
        sql = f"SELECT {_GOLDEN_COLS} FROM golden_sets WHERE project = ?"
        params: list[Any] = [project]
        if name is not None:
            sql += " AND name = ?"
            params.append(name)
        rows = self._cursor().execute(sql + " ORDER BY created_at DESC, name", params).fetchall()
        return [_golden(r) for r in rows]

    def resolve_golden(
        self, project: str, name: str, version: str | None = None
    ) -> GoldenVersion | None:
        """The newest version of a set, or the one whose hash starts with ``version``.

        Raises :class:`StoreError` when a version prefix matches several versions.
        """
        sql = f"SELECT {_GOLDEN_COLS} FROM golden_sets WHERE project = ? AND name = ?"
        params: list[Any] = [project, name]
        if version:
            sql += " AND starts_with(version, ?)"
            params.append(version.lower())
        rows = self._cursor().execute(sql + " ORDER BY created_at DESC", params).fetchall()
        if not rows:
            return None
        if version and len(rows) > 1:
            raise StoreError(
                f"version {version!r} of golden set {name!r} is ambiguous "
                f"({len(rows)} versions start with it); type more characters"
            )
        return _golden(rows[0])

    def golden_cases(self, project: str, name: str, version: str) -> list[dict[str, Any]]:
        """The cases of one stored version, in file order."""
        rows = (
            self._cursor()
            .execute(
                "SELECT body FROM golden_cases WHERE project = ? AND name = ? AND version = ? "
                "ORDER BY position",
                [project, name, version],
            )
            .fetchall()
        )
        return [json.loads(r[0]) for r in rows]

    # -- runs ---------------------------------------------------------------------------

    def create_run(self, run: EvalRun) -> EvalRun:
        """Record a new run; an existing run id is an error (resume with :meth:`get_run`)."""
        with self._write_lock:
            cur = self._cursor()
            try:
                cur.execute(
                    f"INSERT INTO eval_runs ({_RUN_COLS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        run.project,
                        run.run_id,
                        run.name,
                        run.golden,
                        run.golden_version,
                        json.dumps(run.target),
                        json.dumps([asdict(s) for s in run.scorers]),
                        run.trials,
                        run.status,
                        run.created_at,
                        run.finished_at,
                        json.dumps(run.metadata),
                    ],
                )
            except duckdb.ConstraintException:
                raise StoreError(f"run {run.run_id!r} already exists") from None
        return run

    def get_run(self, project: str, run_id: str) -> EvalRun | None:
        """One run by id, or by a unique id prefix."""
        rows = (
            self._cursor()
            .execute(
                f"SELECT {_RUN_COLS} FROM eval_runs WHERE project = ? "
                "AND starts_with(run_id, ?) ORDER BY run_id LIMIT 2",
                [project, run_id],
            )
            .fetchall()
        )
        exact = [r for r in rows if r[1] == run_id]
        if exact:
            return _run(exact[0])
        if len(rows) > 1:
            raise StoreError(f"run id {run_id!r} is ambiguous; type more characters")
        return _run(rows[0]) if rows else None

    def list_runs(self, project: str, golden: str | None = None, limit: int = 50) -> list[EvalRun]:
        """Runs, newest first."""
        sql = f"SELECT {_RUN_COLS} FROM eval_runs WHERE project = ?"
        params: list[Any] = [project]
        if golden is not None:
            sql += " AND golden = ?"
            params.append(golden)
        rows = (
            self._cursor()
            .execute(sql + " ORDER BY created_at DESC LIMIT ?", [*params, limit])
            .fetchall()
        )
        return [_run(r) for r in rows]

    def set_run_status(
        self, project: str, run_id: str, status: str, trials: int | None = None
    ) -> None:
        """Mark a run running, finished, interrupted or failed; ``trials`` records a trial
        count raised by a resume."""
        finished = None if status == "running" else _now()
        with self._write_lock:
            self._cursor().execute(
                "UPDATE eval_runs SET status = ?, finished_at = ?, "
                "trials = greatest(trials, coalesce(?, trials)) WHERE project = ? AND run_id = ?",
                [status, finished, trials, project, run_id],
            )

    # -- trials -------------------------------------------------------------------------

    def record_trials(self, project: str, trials: Sequence[Trial]) -> int:
        """Store finished trials of one run with their scores in one transaction. A trial
        already stored is replaced only if the stored one had failed (a retried error)."""
        if not trials:
            return 0
        if len({t.run_id for t in trials}) > 1:
            raise ValueError("record_trials: every trial of one call must belong to one run")
        run_id = trials[0].run_id
        trial_cols: dict[str, list[Any]] = {c: [] for c in _TRIAL_COLUMNS}
        score_cols: dict[str, list[Any]] = {c: [] for c in _SCORE_COLUMNS}
        for t in trials:
            out = t.output
            for c, v in zip(
                _TRIAL_COLUMNS,
                (
                    t.case_id,
                    t.trial,
                    json.dumps(asdict(out), ensure_ascii=False, default=str) if out else None,
                    t.error,
                    out.latency_ms if out else None,
                    out.input_tokens if out else None,
                    out.output_tokens if out else None,
                    out.cost if out else None,
                    t.started_at,
                    t.finished_at,
                ),
                strict=True,
            ):
                trial_cols[c].append(v)
            rows: list[tuple[Any, ...]] = [
                (
                    label,
                    s.value,
                    s.passed,
                    s.label,
                    s.explanation,
                    json.dumps(s.metadata, ensure_ascii=False, default=str),
                    None,
                )
                for label, s in t.scores.items()
            ]
            rows += [
                (label, None, None, None, None, None, e) for label, e in t.score_errors.items()
            ]
            for row in rows:
                score_cols["case_id"].append(t.case_id)
                score_cols["trial"].append(t.trial)
                for c, v in zip(_SCORE_COLUMNS[2:], row, strict=True):
                    score_cols[c].append(v)
        # Bulk through Arrow: DuckDB's executemany runs one statement per row.
        batch = pa.Table.from_pydict(trial_cols, schema=_TRIAL_SCHEMA)
        scores = pa.Table.from_pydict(score_cols, schema=_SCORE_SCHEMA)
        with self._write_lock:
            cur = self._cursor()
            cur.register("assay_trials", batch)
            cur.register("assay_scores", scores)
            cur.execute("BEGIN")
            try:
                key = [project, run_id]
                # Earlier failed attempts of these trials give way to the new ones. Only a
                # resumed run has any, so one lookup usually spares both deletes.
                failed = cur.execute(
                    "SELECT 1 FROM eval_trials e SEMI JOIN assay_trials b "
                    "ON e.case_id = b.case_id AND e.trial = b.trial "
                    "WHERE e.project = ? AND e.run_id = ? AND e.error IS NOT NULL LIMIT 1",
                    key,
                ).fetchone()
                if failed:
                    cur.execute(
                        "DELETE FROM eval_scores s USING assay_trials b, eval_trials e "
                        "WHERE s.project = ? AND s.run_id = ? AND s.case_id = b.case_id "
                        "AND s.trial = b.trial AND e.project = s.project "
                        "AND e.run_id = s.run_id AND e.case_id = s.case_id "
                        "AND e.trial = s.trial AND e.error IS NOT NULL",
                        key,
                    )
                    cur.execute(
                        "DELETE FROM eval_trials e USING assay_trials b WHERE e.project = ? "
                        "AND e.run_id = ? AND e.case_id = b.case_id AND e.trial = b.trial "
                        "AND e.error IS NOT NULL",
                        key,
                    )
                inserted = cur.execute(
                    "INSERT OR IGNORE INTO eval_trials (project, run_id, case_id, trial, output, "
                    "error, latency_ms, input_tokens, output_tokens, cost, started_at, "
                    "finished_at) SELECT ?, ?, case_id, trial, output, error, latency_ms, "
                    "input_tokens, output_tokens, cost, started_at, finished_at "
                    "FROM assay_trials",
                    key,
                ).fetchone()
                added = int(inserted[0]) if inserted else 0
                cur.execute(
                    "INSERT OR IGNORE INTO eval_scores (project, run_id, case_id, trial, "
                    "scorer, value, passed, label, explanation, metadata, error) "
                    "SELECT ?, ?, case_id, trial, scorer, value, passed, label, explanation, "
                    "metadata, error FROM assay_scores",
                    key,
                )
                cur.execute("COMMIT")
            except duckdb.Error:
                cur.execute("ROLLBACK")
                raise
            finally:
                cur.unregister("assay_trials")
                cur.unregister("assay_scores")
                cur.close()
        return added

    def completed_trials(self, project: str, run_id: str) -> set[tuple[str, int]]:
        """(case id, trial index) of the trials that finished without a target error."""
        rows = (
            self._cursor()
            .execute(
                "SELECT case_id, trial FROM eval_trials WHERE project = ? AND run_id = ? "
                "AND error IS NULL",
                [project, run_id],
            )
            .fetchall()
        )
        return {(r[0], int(r[1])) for r in rows}

    def iter_trials(self, project: str, run_id: str) -> Iterator[Trial]:
        """Every stored trial of a run with its scores, by case id then trial index."""
        cur = self._cursor()
        after: tuple[str, int] = ("", -1)
        while True:
            rows = cur.execute(
                "SELECT case_id, trial, output, error, started_at, finished_at FROM eval_trials "
                f"WHERE project = ? AND run_id = ? AND {_AFTER} ORDER BY case_id, trial LIMIT ?",
                [project, run_id, *after_params(after), _TRIAL_PAGE],
            ).fetchall()
            if not rows:
                return
            last = (rows[-1][0], int(rows[-1][1]))
            scores: dict[tuple[str, int], list[tuple[Any, ...]]] = {}
            for s in cur.execute(
                "SELECT case_id, trial, scorer, value, passed, label, explanation, metadata, "
                "error FROM eval_scores WHERE project = ? AND run_id = ? "
                f"AND {_AFTER} AND {_UP_TO}",
                [project, run_id, *after_params(after), last[0], last[0], last[1]],
            ).fetchall():
                scores.setdefault((s[0], int(s[1])), []).append(s)
            for r in rows:
                key = (r[0], int(r[1]))
                ok: dict[str, Score] = {}
                failed: dict[str, str] = {}
                for s in scores.get(key, []):
                    if s[8] is not None:
                        failed[s[2]] = s[8]
                    else:
                        ok[s[2]] = Score(
                            value=float(s[3]),
                            passed=s[4],
                            label=s[5],
                            explanation=s[6],
                            metadata=json.loads(s[7]) if s[7] else {},
                        )
                yield Trial(
                    run_id=run_id,
                    case_id=key[0],
                    trial=key[1],
                    output=Output(**json.loads(r[2])) if r[2] else None,
                    error=r[3],
                    scores=ok,
                    score_errors=failed,
                    started_at=_utc(r[4]) or _now(),
                    finished_at=_utc(r[5]) or _now(),
                )
            after = last


# Row-value comparisons spelled out: DuckDB rewrites (a, b) > (?, ?) pairs into an
# unsupported tuple BETWEEN.
_AFTER = "(case_id > ? OR (case_id = ? AND trial > ?))"
_UP_TO = "(case_id < ? OR (case_id = ? AND trial <= ?))"


def after_params(key: tuple[str, int]) -> list[Any]:
    """Parameters of :data:`_AFTER` for a (case id, trial) key."""
    return [key[0], key[0], key[1]]
