"""Golden sets, eval runs, trials and scores on ClickHouse (see :mod:`assay.store.clickhouse`).

ClickHouse has no unique keys or transactions, so the DuckDB store's constraints become
ReplacingMergeTree versions chosen so that ``FINAL`` keeps the row DuckDB would keep:

* golden-set versions and cached scores are *first write wins* (the version falls with
  time), so a resent or racing write never changes what was stored;
* runs are mutable records (status, trials): the newest version wins;
* a trial's ``attempt`` orders any success above any failure, earlier successes above
  later ones and later failures above earlier ones: a retried failure replaces the
  failed attempt, a finished trial is never replaced. Scores carry the attempt they
  belong to, and are read only with the attempt that won, so a replaced failure's
  scores vanish with it without a delete.

Writes go in the order that leaves a readable state after a crash: cases before the
golden-set row that makes them visible, scores before the trial row that selects them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from typing import Any

from assay.model import EvalRun, GoldenVersion, Output, Score, Trial
from assay.store import StoreError
from assay.store.clickhouse import TIME, ClickHouseBase, Params, Schema, one_of
from assay.store.rows import golden_from_row as _golden
from assay.store.rows import now as _now
from assay.store.rows import run_from_row as _run
from assay.store.rows import utc

#: Trials read per query when streaming a run's results (memory stays flat in run size).
_TRIAL_PAGE = 2_000
#: Keys per lookup query (parameters travel in the request).
_KEY_CHUNK = 5_000

_GOLDEN_COLS = "project, name, version, description, case_count, source, created_at"
_RUN_COLS = (
    "project, run_id, name, golden, golden_version, target, scorers, trials, status, "
    "created_at, finished_at, metadata"
)
_TRIAL_COLS = (
    "project",
    "run_id",
    "case_id",
    "trial",
    "attempt",
    "output",
    "error",
    "latency_ms",
    "input_tokens",
    "output_tokens",
    "cost",
    "started_at",
    "finished_at",
)
_SCORE_COLS = (
    "project",
    "run_id",
    "case_id",
    "trial",
    "attempt",
    "scorer",
    "value",
    "passed",
    "label",
    "explanation",
    "metadata",
    "error",
    "precedence",
)

# Nanosecond clocks fit in 61 bits until 2043; these offsets keep every class of version
# apart: failures below 2**62, successes above 2**63.
_SUCCESS = 1 << 63
_FIRST = 1 << 62
_clock_lock = threading.Lock()
_last_tick = 0


def tick() -> int:
    """A strictly increasing nanosecond clock (two calls never return the same value)."""
    global _last_tick
    with _clock_lock:
        _last_tick = max(time.time_ns(), _last_tick + 1)
        return _last_tick


def first_wins() -> int:
    """A ReplacingMergeTree version that is larger for earlier writes, so ``FINAL`` keeps
    the first row written under a key."""
    return _FIRST - tick()


def attempt_version(succeeded: bool, failed_before: int = 0) -> int:
    """The version of a new trial attempt: any success beats any failure; among successes
    the first, among failures the last (above ``failed_before``, the stored failure's
    attempt, even when this replica's clock is behind the one that wrote it)."""
    return _SUCCESS + first_wins() if succeeded else max(tick(), failed_before + 1)


def _migration(schema: Schema) -> list[str]:
    return (
        # Versions are immutable and named by the hash of their cases.
        schema.table(
            "golden_sets",
            f"""project String, name String, version String, description Nullable(String),
            case_count UInt32, source Nullable(String), created_at {TIME},
            precedence UInt64""",
            version="precedence",
            order_by="(project, name, version)",
        )
        + schema.table(
            "golden_cases",
            "project String, name String, version String, position UInt32, case_id String, "
            "body String",
            order_by="(project, name, version, case_id)",
        )
        + schema.table(
            "eval_runs",
            f"""project String, run_id String, name Nullable(String), golden String,
            golden_version String, target String, scorers String, trials Int32,
            status LowCardinality(String), created_at {TIME}, finished_at Nullable({TIME}),
            metadata Nullable(String), version UInt64""",
            version="version",
            order_by="(project, run_id)",
        )
        # Keyed by (run, case, trial): a resumed run repeats nothing that finished.
        + schema.table(
            "eval_trials",
            f"""project String, run_id String, case_id String, trial Int32, attempt UInt64,
            output Nullable(String), error Nullable(String), latency_ms Nullable(Float64),
            input_tokens Nullable(Int64), output_tokens Nullable(Int64),
            cost Nullable(Float64), started_at {TIME}, finished_at {TIME}""",
            version="attempt",
            order_by="(project, run_id, case_id, trial)",
        )
        + schema.table(
            "eval_scores",
            """project String, run_id String, case_id String, trial Int32, attempt UInt64,
            scorer String, value Nullable(Float64), passed Nullable(Bool),
            label Nullable(String), explanation Nullable(String), metadata Nullable(String),
            error Nullable(String), precedence UInt64""",
            version="precedence",
            order_by="(project, run_id, case_id, trial, attempt, scorer)",
        )
    )


#: (migration name, DDL builder taking a Schema), applied in name order with the rest.
MIGRATIONS: list[tuple[str, Any]] = [("m003_evals", _migration)]


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class EvalsTables(ClickHouseBase):
    """The evals methods of :class:`assay.store.Store` on ClickHouse."""

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
        ids = [str(c["id"]) for c in cases]
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            raise StoreError(
                f"golden set {name!r}: case id(s) {', '.join(map(repr, dup))} appear more "
                "than once; give every case a unique id"
            )
        with self._write_lock:
            existing = self._golden_row(project, name, version)
            if existing is not None:
                return _golden(existing), False
            # Cases first: they are invisible until the golden_sets row names the version,
            # so a crash in between leaves nothing half-stored (a retry rewrites them).
            for chunk in _chunks(list(enumerate(zip(ids, cases, strict=True))), 10_000):
                self.insert_rows(
                    "golden_cases",
                    ["project", "name", "version", "position", "case_id", "body"],
                    [
                        [project, name, version, pos, cid, json.dumps(c, ensure_ascii=False)]
                        for pos, (cid, c) in chunk
                    ],
                )
            written = (project, name, version, description, len(cases), source, _now())
            self.insert_rows(
                "golden_sets", [*_GOLDEN_COLS.split(", "), "precedence"], [[*written, first_wins()]]
            )
            # Read back: a replica that saved the same version first keeps its record.
            row = self._golden_row(project, name, version)
        return _golden(row or written), True

    def _golden_row(self, project: str, name: str, version: str) -> tuple[Any, ...] | None:
        p = Params()
        rows = self.q(
            f"SELECT {_GOLDEN_COLS} FROM {{db}}.golden_sets FINAL "
            f"WHERE project = {p(project, 'String')} AND name = {p(name, 'String')} "
            f"AND version = {p(version, 'String')}",
            p,
        )
        return rows[0] if rows else None

    def list_golden_versions(self, project: str, name: str | None = None) -> list[GoldenVersion]:
        """Versions of one golden set (or of all), newest first."""
        p = Params()
        sql = f"SELECT {_GOLDEN_COLS} FROM {{db}}.golden_sets FINAL WHERE project = "
        sql += p(project, "String")
        if name is not None:
            sql += f" AND name = {p(name, 'String')}"
        rows = self.q(sql + " ORDER BY created_at DESC, name", p)
        return [_golden(r) for r in rows]

    def resolve_golden(
        self, project: str, name: str, version: str | None = None
    ) -> GoldenVersion | None:
        """The newest version of a set, or the one whose hash starts with ``version``.

        Raises :class:`StoreError` when a version prefix matches several versions.
        """
        p = Params()
        sql = (
            f"SELECT {_GOLDEN_COLS} FROM {{db}}.golden_sets FINAL "
            f"WHERE project = {p(project, 'String')} AND name = {p(name, 'String')}"
        )
        if version:
            sql += f" AND startsWith(version, {p(version.lower(), 'String')})"
        rows = self.q(sql + " ORDER BY created_at DESC", p)
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
        if self._golden_row(project, name, version) is None:
            # Cases of a save that never finished are not a version yet.
            return []
        p = Params()
        rows = self.q(
            "SELECT body FROM {db}.golden_cases FINAL "
            f"WHERE project = {p(project, 'String')} AND name = {p(name, 'String')} "
            f"AND version = {p(version, 'String')} ORDER BY position",
            p,
        )
        return [json.loads(r[0]) for r in rows]

    # -- runs ---------------------------------------------------------------------------

    def _run_row(self, project: str, run_id: str) -> tuple[Any, ...] | None:
        """A run's columns in :data:`_RUN_COLS` order, then its row version."""
        p = Params()
        rows = self.q(
            f"SELECT {_RUN_COLS}, version FROM {{db}}.eval_runs FINAL "
            f"WHERE project = {p(project, 'String')} AND run_id = {p(run_id, 'String')}",
            p,
        )
        return rows[0] if rows else None

    def _write_run(self, row: Sequence[Any], stored_version: int = 0) -> None:
        # Above the stored version even when this replica's clock is behind the writer's.
        version = max(tick(), stored_version + 1)
        self.insert_rows("eval_runs", [*_RUN_COLS.split(", "), "version"], [[*row, version]])

    def create_run(self, run: EvalRun) -> EvalRun:
        """Record a new run; an existing run id is an error (resume with :meth:`get_run`)."""
        with self._write_lock:
            if self._run_row(run.project, run.run_id) is not None:
                raise StoreError(f"run {run.run_id!r} already exists")
            self._write_run(
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
                ]
            )
        return run

    def get_run(self, project: str, run_id: str) -> EvalRun | None:
        """One run by id, or by a unique id prefix."""
        p = Params()
        rows = self.q(
            f"SELECT {_RUN_COLS} FROM {{db}}.eval_runs FINAL "
            f"WHERE project = {p(project, 'String')} "
            f"AND startsWith(run_id, {p(run_id, 'String')}) ORDER BY run_id LIMIT 2",
            p,
        )
        exact = [r for r in rows if r[1] == run_id]
        if exact:
            return _run(exact[0])
        if len(rows) > 1:
            raise StoreError(f"run id {run_id!r} is ambiguous; type more characters")
        return _run(rows[0]) if rows else None

    def list_runs(self, project: str, golden: str | None = None, limit: int = 50) -> list[EvalRun]:
        """Runs, newest first."""
        p = Params()
        sql = f"SELECT {_RUN_COLS} FROM {{db}}.eval_runs FINAL WHERE project = "
        sql += p(project, "String")
        if golden is not None:
            sql += f" AND golden = {p(golden, 'String')}"
        rows = self.q(sql + f" ORDER BY created_at DESC LIMIT {p(max(limit, 0), 'UInt64')}", p)
        return [_run(r) for r in rows]

    def set_run_status(
        self, project: str, run_id: str, status: str, trials: int | None = None
    ) -> None:
        """Mark a run running, finished, interrupted or failed; ``trials`` records a trial
        count raised by a resume. An unknown run is left alone, as an UPDATE would."""
        finished = None if status == "running" else _now()
        with self._write_lock:
            row = self._run_row(project, run_id)
            if row is None:
                return
            new = list(row[:-1])
            new[7] = max(int(row[7]), trials if trials is not None else int(row[7]))
            new[8] = status
            new[10] = finished
            self._write_run(new, int(row[-1]))

    # -- trials -------------------------------------------------------------------------

    def _stored_attempts(
        self, project: str, run_id: str, case_ids: Sequence[str]
    ) -> dict[tuple[str, int], tuple[int, bool]]:
        """(case, trial) → (winning attempt, finished without error) of stored trials."""
        out: dict[tuple[str, int], tuple[int, bool]] = {}
        for chunk in _chunks(sorted(set(case_ids)), _KEY_CHUNK):
            p = Params()
            for case_id, k, attempt, ok in self.q(
                "SELECT case_id, trial, attempt, error IS NULL FROM {db}.eval_trials FINAL "
                f"WHERE project = {p(project, 'String')} AND run_id = {p(run_id, 'String')} "
                f"AND case_id IN {one_of(p, chunk)}",
                p,
            ):
                out[case_id, int(k)] = (int(attempt), bool(ok))
        return out

    def _stored_scorers(
        self, project: str, run_id: str, attempts: Sequence[tuple[str, int, int]]
    ) -> set[tuple[str, int, str]]:
        """(case, trial, scorer) of the scores stored under these (case, trial, attempt)."""
        out: set[tuple[str, int, str]] = set()
        for chunk in _chunks(attempts, _KEY_CHUNK):
            p = Params()
            rows = self.q(
                "SELECT case_id, trial, scorer FROM {db}.eval_scores "
                f"WHERE project = {p(project, 'String')} AND run_id = {p(run_id, 'String')} "
                f"AND (case_id, trial, attempt) IN "
                f"{p([tuple(a) for a in chunk], 'Array(Tuple(String, Int32, UInt64))')}",
                p,
            )
            out.update((str(c), int(k), str(sc)) for c, k, sc in rows)
        return out

    def record_trials(self, project: str, trials: Sequence[Trial]) -> int:
        """Store finished trials of one run with their scores. A trial already stored is
        replaced only if the stored one had failed (a retried error); scores of a stored
        finished trial are added only under scorers it has none for."""
        if not trials:
            return 0
        if len({t.run_id for t in trials}) > 1:
            raise ValueError("record_trials: every trial of one call must belong to one run")
        run_id = trials[0].run_id
        unique: dict[tuple[str, int], Trial] = {}
        for t in trials:
            unique.setdefault((t.case_id, t.trial), t)
        with self._write_lock:
            stored = self._stored_attempts(project, run_id, [c for c, _ in unique])
            finished = [(*k, a) for k, (a, ok) in stored.items() if ok and k in unique]
            scored = self._stored_scorers(project, run_id, finished)
            trial_rows: list[list[Any]] = []
            score_rows: list[list[Any]] = []
            for key, t in unique.items():
                previous = stored.get(key)
                if previous is not None and previous[1]:
                    # Finished: kept as it is; only scorers it has nothing from are added.
                    attempt = previous[0]
                    rows = _score_rows(project, t, attempt)
                    score_rows += [r for r in rows if (*key, r[5]) not in scored]
                    continue
                attempt = attempt_version(t.error is None, previous[0] if previous else 0)
                trial_rows.append(_trial_row(project, t, attempt))
                score_rows += _score_rows(project, t, attempt)
            # Scores first: they count only once the trial row naming their attempt lands.
            for chunk in _chunks(score_rows, 50_000):
                self.insert_rows("eval_scores", _SCORE_COLS, chunk)
            for chunk in _chunks(trial_rows, 50_000):
                self.insert_rows("eval_trials", _TRIAL_COLS, chunk)
        return len(trial_rows)

    def completed_trials(self, project: str, run_id: str) -> set[tuple[str, int]]:
        """(case id, trial index) of the trials that finished without a target error."""
        p = Params()
        rows = self.q(
            "SELECT case_id, trial FROM {db}.eval_trials FINAL "
            f"WHERE project = {p(project, 'String')} AND run_id = {p(run_id, 'String')} "
            "AND error IS NULL",
            p,
        )
        return {(r[0], int(r[1])) for r in rows}

    def iter_trials(self, project: str, run_id: str) -> Iterator[Trial]:
        """Every stored trial of a run with its scores, by case id then trial index."""
        after: tuple[str, int] = ("", -1)
        while True:
            p = Params()
            key = f"project = {p(project, 'String')} AND run_id = {p(run_id, 'String')}"
            rows = self.q(
                "SELECT case_id, trial, attempt, output, error, started_at, finished_at "
                f"FROM {{db}}.eval_trials FINAL WHERE {key} "
                f"AND (case_id, trial) > ({p(after[0], 'String')}, {p(after[1], 'Int32')}) "
                f"ORDER BY case_id, trial LIMIT {p(_TRIAL_PAGE, 'UInt32')}",
                p,
            )
            if not rows:
                return
            last = (rows[-1][0], int(rows[-1][1]))
            scores: dict[tuple[str, int, int], list[tuple[Any, ...]]] = {}
            for s in self.q(
                "SELECT case_id, trial, attempt, scorer, value, passed, label, explanation, "
                f"metadata, error FROM {{db}}.eval_scores FINAL WHERE {key} "
                f"AND (case_id, trial) > ({p(after[0], 'String')}, {p(after[1], 'Int32')}) "
                f"AND (case_id, trial) <= ({p(last[0], 'String')}, {p(last[1], 'Int32')}) "
                "ORDER BY case_id, trial, scorer",
                p,
            ):
                scores.setdefault((s[0], int(s[1]), int(s[2])), []).append(s)
            for r in rows:
                ok: dict[str, Score] = {}
                failed: dict[str, str] = {}
                # Only the scores of the attempt that won; a replaced failure's are ignored.
                for s in scores.get((r[0], int(r[1]), int(r[2])), []):
                    if s[9] is not None:
                        failed[s[3]] = s[9]
                    else:
                        ok[s[3]] = Score(
                            value=float(s[4]),
                            passed=None if s[5] is None else bool(s[5]),
                            label=s[6],
                            explanation=s[7],
                            metadata=json.loads(s[8]) if s[8] else {},
                        )
                yield Trial(
                    run_id=run_id,
                    case_id=r[0],
                    trial=int(r[1]),
                    output=Output(**json.loads(r[3])) if r[3] else None,
                    error=r[4],
                    scores=ok,
                    score_errors=failed,
                    started_at=utc(r[5]) or _now(),
                    finished_at=utc(r[6]) or _now(),
                )
            after = last


def _trial_row(project: str, t: Trial, attempt: int) -> list[Any]:
    out = t.output
    return [
        project,
        t.run_id,
        t.case_id,
        t.trial,
        attempt,
        json.dumps(asdict(out), ensure_ascii=False, default=str) if out else None,
        t.error,
        out.latency_ms if out else None,
        out.input_tokens if out else None,
        out.output_tokens if out else None,
        out.cost if out else None,
        t.started_at,
        t.finished_at,
    ]


def _score_rows(project: str, t: Trial, attempt: int) -> list[list[Any]]:
    head = [project, t.run_id, t.case_id, t.trial, attempt]
    rows = [
        [
            *head,
            label,
            float(s.value),
            s.passed,
            s.label,
            s.explanation,
            json.dumps(s.metadata, ensure_ascii=False, default=str),
            None,
            first_wins(),
        ]
        for label, s in t.scores.items()
    ]
    rows += [
        [*head, label, None, None, None, None, None, e, first_wins()]
        for label, e in t.score_errors.items()
    ]
    return rows
