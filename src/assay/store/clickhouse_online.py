"""Online-evaluation rules on ClickHouse (mixed into ClickHouseStore).

- ``online_rules``: the definition, a ReplacingMergeTree row per (project, name) written
  by the API (``deleted = 1`` removes it; each creation is a new ``generation``).
- ``online_progress``: an AggregatingMergeTree of what workers did, one row per flush,
  merged per (project, name, generation, budget period): counters and spend are
  ``sum``, the watermark the ``max`` of (ingested_at, trace_id, span_id), the last score
  and last error the ``max`` by time. Increments from several workers never overwrite
  each other, and the table stays a few rows per rule and period once merged. The spend
  of the current period is that of the latest period written (periods follow time).
- Leases on rules are the lease log (scope ``online``), as for monitors.

Reading new spans (:meth:`OnlineTables.scan_online`): the watermark is a position in
commit order, (ingested_at, trace_id, span_id), ``ingested_at`` being stamped by the
server (``now64(6)``) when it runs the insert. A span must never become visible *behind*
a watermark already handed out, so a scan returns only spans stamped before a horizon
that every insert stamped earlier has finished by. On chDB (one process) the horizon is
the server clock read under the store's write lock, which every span insert holds: no
insert is under way, and later ones stamp a time at or after it (spans of one
microsecond are ordered by trace and span id, and all of them are visible or none). A
server is also written by other replicas, so the horizon trails the clock by
:data:`VISIBILITY_LAG` seconds: an insert must be visible that long after its stamp (a
single server; on a cluster, synchronous distributed inserts and quorum writes, see
docs). Two racing replicas can both store one span; the copy with the later
``ingested_at`` survives the merge, so that span may be scored once more, which stores
nothing twice (feedback ids are per rule, trace and span).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from assay.model import ScorerSpec, Span
from assay.online import Mark, OnlineRule, ProgressUpdate, RuleProgress
from assay.query import SpanFilter
from assay.store.clickhouse import TIME, ClickHouseBase, Params, Schema, one_of
from assay.store.clickhouse_leases import HeldLeases, lease_key
from assay.store.rows import utc

if TYPE_CHECKING:
    from assay.model import Feedback

#: Seconds a span insert may take, from its ``ingested_at`` stamp to being visible to
#: every reader, by store kind (chDB reads the horizon under the write lock instead).
VISIBILITY_LAG = {"chdb": 0.0, "http": 10.0}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NTIME = f"Nullable({TIME})"


def _ddl(schema: Schema) -> list[str]:
    spans = "spans_local" if schema.cluster else "spans"
    return [
        *schema.table(
            "online_rules",
            f"""project String, name String, generation String, scorer String,
            score_name String, sample_rate Float64, filters String,
            budget_usd Nullable(Float64), budget_period LowCardinality(String),
            concurrency Int64, retries Int64, enabled UInt8, created_at {TIME},
            updated_at {TIME}, deleted UInt8, version UInt64""",
            version="version",
            order_by="(project, name)",
        ),
        *schema.table(
            "online_progress",
            f"""project String, name String, generation String, period String,
            processed SimpleAggregateFunction(sum, Int64),
            sampled SimpleAggregateFunction(sum, Int64),
            scored SimpleAggregateFunction(sum, Int64),
            errors SimpleAggregateFunction(sum, Int64),
            skipped SimpleAggregateFunction(sum, Int64),
            unpriced SimpleAggregateFunction(sum, Int64),
            spend SimpleAggregateFunction(sum, Float64),
            written SimpleAggregateFunction(max, UInt64),
            watermark SimpleAggregateFunction(max, Tuple({TIME}, String, String)),
            last_scored_at SimpleAggregateFunction(max, {_NTIME}),
            last_error SimpleAggregateFunction(max, Tuple({TIME}, String))""",
            engine="AggregatingMergeTree",
            order_by="(project, name, generation, period)",
        ),
        # Scans read spans by commit time: a min/max index on it skips the parts (written in
        # time order) that hold only older spans.
        f"ALTER TABLE `{schema.database}`.`{spans}`{schema.on_cluster()} "
        "ADD INDEX IF NOT EXISTS ingested_idx ingested_at TYPE minmax GRANULARITY 1",
    ]


#: (migration name, DDL builder taking a Schema), applied in name order with the rest.
MIGRATIONS: list[tuple[str, Any]] = [("m009_online", _ddl)]
#: Copied inside the portable ``online_rules`` rows (see :meth:`OnlineTables.transfer_view`).
TRANSFER_PARTS = frozenset({"online_progress"})

_DEF_COLS = (
    "project, name, generation, scorer, score_name, sample_rate, filters, budget_usd, "
    "budget_period, concurrency, retries, enabled, created_at, updated_at, version"
)
_PROGRESS_COLS = (
    "project, name, generation, period, processed, sampled, scored, errors, skipped, "
    "unpriced, spend, written, watermark, last_scored_at, last_error"
)


def _cols(spec: str) -> list[str]:
    return [c.strip() for c in spec.split(",")]


@dataclass(frozen=True)
class _Def:
    rule: OnlineRule
    generation: str
    version: int

    @property
    def key(self) -> str:
        return lease_key(self.rule.project, self.rule.name, self.generation)


def _def(row: Sequence[Any]) -> _Def:
    scorer = json.loads(row[3])
    rule = OnlineRule(
        project=row[0],
        name=row[1],
        scorer=ScorerSpec(scorer["name"], dict(scorer.get("args") or {}), scorer.get("key")),
        score_name=row[4],
        sample_rate=float(row[5]),
        filters=json.loads(row[6]),
        budget_usd=None if row[7] is None else float(row[7]),
        budget_period=row[8],
        concurrency=int(row[9]),
        retries=int(row[10]),
        enabled=bool(row[11]),
        created_at=utc(row[12]) or row[12],
        updated_at=utc(row[13]) or row[13],
        progress=RuleProgress(watermark=Mark(_EPOCH)),
    )
    return _Def(rule, row[2], int(row[14]))


class OnlineTables(ClickHouseBase):
    """The online methods of :class:`assay.store.Store` on ClickHouse."""

    if TYPE_CHECKING:  # provided by FeedbackTables in ClickHouseStore

        def write_feedback(self, items: Sequence[Feedback]) -> None: ...

    def _online_leases(self) -> HeldLeases:
        return HeldLeases(self, "online")

    # -- reading ----------------------------------------------------------------------

    def _rule_defs(self, project: str | None = None, name: str | None = None) -> list[_Def]:
        p = Params()
        sql = f"SELECT {_DEF_COLS} FROM {{db}}.online_rules FINAL WHERE deleted = 0"
        if project is not None:
            sql += f" AND project = {p(project, 'String')}"
        if name is not None:
            sql += f" AND name = {p(name, 'String')}"
        return [_def(r) for r in self.q(sql + " ORDER BY project, name", p)]

    def _rules(self, defs: Sequence[_Def]) -> list[OnlineRule]:
        """Rules with their progress and current lease."""
        if not defs:
            return []
        p = Params()
        keys = [(d.rule.project, d.rule.name, d.generation) for d in defs]
        rows = self.q(
            f"""
            SELECT project, name, generation, sum(processed), sum(sampled), sum(scored),
                   sum(errors), sum(skipped), sum(unpriced), argMax(period, written),
                   argMax(spend, written), sum(spend), max(watermark), max(last_scored_at),
                   max(last_error)
            FROM (
                SELECT project, name, generation, period, sum(processed) AS processed,
                       sum(sampled) AS sampled, sum(scored) AS scored, sum(errors) AS errors,
                       sum(skipped) AS skipped, sum(unpriced) AS unpriced,
                       sum(spend) AS spend, max(written) AS written,
                       max(watermark) AS watermark, max(last_scored_at) AS last_scored_at,
                       max(last_error) AS last_error
                FROM {{db}}.online_progress
                WHERE (project, name, generation) IN
                      {p(keys, 'Array(Tuple(String, String, String))')}
                GROUP BY project, name, generation, period
            )
            GROUP BY project, name, generation
            """,
            p,
        )
        progress = {(r[0], r[1], r[2]): r for r in rows}
        leases = self._online_leases().current([d.key for d in defs])
        out = []
        for d in defs:
            r = progress.get((d.rule.project, d.rule.name, d.generation))
            lease = leases.get(d.key)
            if r is None:  # written with the definition; absent only mid-creation
                prog = RuleProgress(watermark=Mark(d.rule.created_at))
            else:
                wm_at, wm_trace, wm_span = r[12]
                err_at, err = r[14]
                prog = RuleProgress(
                    watermark=Mark(utc(wm_at) or _EPOCH, wm_trace, wm_span),
                    processed=int(r[3]),
                    sampled=int(r[4]),
                    scored=int(r[5]),
                    errors=int(r[6]),
                    skipped=int(r[7]),
                    unpriced=int(r[8]),
                    spend_period=r[9] or None,
                    spend_usd=float(r[10]),
                    spend_total_usd=float(r[11]),
                    last_scored_at=utc(r[13]),
                    last_error=err or None,
                    last_error_at=utc(err_at) if err else None,
                )
            prog = replace(
                prog,
                lease_owner=None if lease is None else lease.owner,
                lease_expires_at=None if lease is None else lease.expires_at,
            )
            out.append(replace(d.rule, progress=prog))
        return out

    def _write_rule(
        self, rule: OnlineRule, generation: str, created_at: datetime, deleted: bool = False
    ) -> None:
        spec = {"name": rule.scorer.name, "args": rule.scorer.args, "key": rule.scorer.key}
        self.insert_rows(
            "online_rules",
            [*_cols(_DEF_COLS), "deleted"],
            [
                [
                    rule.project,
                    rule.name,
                    generation,
                    json.dumps(spec, default=str),
                    rule.score_name,
                    rule.sample_rate,
                    json.dumps(dict(rule.filters)),
                    rule.budget_usd,
                    rule.budget_period,
                    rule.concurrency,
                    rule.retries,
                    int(rule.enabled),
                    created_at,
                    rule.updated_at,
                    self.version(),
                    int(deleted),
                ]
            ],
        )

    def _progress(
        self,
        d: _Def,
        *,
        period: str = "",
        counts: Sequence[int] = (0, 0, 0, 0, 0, 0),
        spend: float = 0.0,
        written: int = 0,
        watermark: Mark | None = None,
        last_scored_at: datetime | None = None,
        last_error: tuple[datetime, str] | None = None,
    ) -> None:
        wm = Mark(_EPOCH) if watermark is None else watermark
        self.insert_rows(
            "online_progress",
            _cols(_PROGRESS_COLS),
            [
                [
                    d.rule.project,
                    d.rule.name,
                    d.generation,
                    period,
                    *counts,
                    spend,
                    written,
                    (_naive(wm.at), wm.trace_id, wm.span_id),
                    last_scored_at,
                    (_naive(last_error[0]), last_error[1]) if last_error else (_naive(_EPOCH), ""),
                ]
            ],
        )

    # -- definitions --------------------------------------------------------------------

    def create_online_rule(self, rule: OnlineRule) -> bool:
        """Store a new rule; False when the project already has one of that name."""
        with self._write_lock:
            if self._rule_defs(rule.project, rule.name):
                return False
            d = _Def(rule, uuid.uuid4().hex, 0)
            # The starting watermark first: a rule is never visible without it.
            self._progress(d, watermark=rule.progress.watermark)
            self._write_rule(rule, d.generation, rule.created_at)
        return True

    def get_online_rule(self, project: str, name: str) -> OnlineRule | None:
        """One rule with its progress."""
        found = self._rules(self._rule_defs(project, name))
        return found[0] if found else None

    def list_online_rules(self, project: str | None = None) -> list[OnlineRule]:
        """Rules of one project (or all), by name."""
        return self._rules(self._rule_defs(project))

    def update_online_rule(self, rule: OnlineRule) -> bool:
        """Rewrite a rule's definition and enabled flag; progress and lease are kept (a
        worker holding it sees the new ``updated_at`` and restarts on the new definition).
        False when it does not exist."""
        with self._write_lock:
            found = self._rule_defs(rule.project, rule.name)
            if not found:
                return False
            self._write_rule(rule, found[0].generation, found[0].rule.created_at)
        return True

    def delete_online_rule(self, project: str, name: str) -> bool:
        """Remove a rule (the scores it stored stay); False when it does not exist."""
        with self._write_lock:
            found = self._rule_defs(project, name)
            if not found:
                return False
            d = found[0]
            self._write_rule(d.rule, d.generation, d.rule.created_at, deleted=True)
        return True

    # -- leases -------------------------------------------------------------------------

    def claim_online_rule(
        self,
        owner: str,
        now: datetime,
        lease_until: datetime,
        skip: Sequence[tuple[str, str]] = (),
    ) -> OnlineRule | None:
        """Lease an enabled rule nobody holds (or whose holder's lease ran out), other than
        the (project, name) pairs in ``skip``; None when there is none."""
        skipped = set(skip)
        defs = [
            d
            for d in self._rule_defs()
            if d.rule.enabled and (d.rule.project, d.rule.name) not in skipped
        ]
        leases = self._online_leases()
        held = leases.holders(now, [d.key for d in defs])
        for d in defs:
            if d.key in held or not leases.take(d.key, owner, now, lease_until):
                continue
            fresh = self._rule_defs(d.rule.project, d.rule.name)
            if not fresh or fresh[0].generation != d.generation or not fresh[0].rule.enabled:
                leases.drop(d.key, owner)  # paused or replaced between the read and the claim
                continue
            rule = self._rules(fresh)[0]
            return replace(
                rule,
                progress=replace(rule.progress, lease_owner=owner, lease_expires_at=lease_until),
            )
        return None

    def renew_online_lease(
        self, project: str, name: str, owner: str, lease_until: datetime
    ) -> OnlineRule | None:
        """Extend a held lease and return the rule as stored now (to see a pause or a
        change); None when ``owner`` no longer holds it or the rule is gone."""
        found = self._rule_defs(project, name)
        if not found or not self._online_leases().extend(found[0].key, owner, lease_until):
            return None
        rules = self._rules(self._rule_defs(project, name))
        return rules[0] if rules else None

    def release_online_rule(self, project: str, name: str, owner: str) -> bool:
        """Give up a held lease."""
        found = self._rule_defs(project, name)
        return bool(found) and self._online_leases().drop(found[0].key, owner)

    # -- spans --------------------------------------------------------------------------

    def _horizon(self) -> datetime:
        """A commit time before which every span insert is visible (see the module doc)."""
        with self._write_lock:
            row = self.q("SELECT now64(6, 'UTC')")
        now = utc(row[0][0]) or datetime.now(UTC)
        return now - timedelta(seconds=VISIBILITY_LAG.get(self.target.kind, 10.0))

    def scan_online(self, flt: SpanFilter, after: Mark, limit: int) -> list[Mark]:
        """Keys of committed spans matching ``flt`` (its time range ignored) after ``after``
        in commit order (ingested_at, trace_id, span_id), at most ``limit``; none can later
        appear before the last one returned (only spans stamped before the horizon)."""
        from assay.store.clickhouse_spans import where

        horizon = self._horizon()
        p = Params()
        cond = where(flt.with_(start=None, end=None), p)
        at = p(after.at, TIME)
        rows = self.q(
            f"""
            SELECT min(ingested_at) AS at, trace_id, span_id FROM {{db}}.spans
            WHERE {cond} AND ingested_at >= {at} AND ingested_at < {p(horizon, TIME)}
            GROUP BY trace_id, span_id
            HAVING (at, trace_id, span_id) >
                   ({at}, {p(after.trace_id, 'String')}, {p(after.span_id, 'String')})
            ORDER BY at, trace_id, span_id
            LIMIT {p(max(limit, 0), 'UInt64')}
            """,
            p,
        )
        return [Mark(utc(r[0]) or after.at, r[1], r[2]) for r in rows]

    def online_spans(self, project: str, keys: Sequence[Mark]) -> list[Span]:
        """The spans at these keys, in key order (missing ones left out)."""
        if not keys:
            return []
        from assay.model import SPAN_COLUMNS
        from assay.store.rows import span_from_row

        p = Params()
        pairs = sorted({(k.trace_id, k.span_id) for k in keys})
        rows = self.q(
            f"SELECT {', '.join(SPAN_COLUMNS)} FROM {{db}}.spans FINAL "
            f"WHERE project = {p(project, 'String')} "
            f"AND trace_id IN {one_of(p, sorted({t for t, _ in pairs}))} "
            f"AND (trace_id, span_id) IN {one_of(p, pairs, 'Tuple(String, String)')}",
            p,
        )
        spans = {(s.trace_id, s.span_id): s for s in map(span_from_row, rows)}
        return [spans[(k.trace_id, k.span_id)] for k in keys if (k.trace_id, k.span_id) in spans]

    def online_backlog(self, flt: SpanFilter, after: Mark) -> tuple[int, datetime | None]:
        """How many spans matching ``flt`` were committed after ``after``, and when the
        oldest of them was (None when there are none)."""
        from assay.store.clickhouse_spans import where

        p = Params()
        cond = where(flt.with_(start=None, end=None), p)
        at = p(after.at, TIME)
        rows = self.q(
            f"""
            SELECT count(), min(at) FROM (
                SELECT min(ingested_at) AS at, trace_id, span_id FROM {{db}}.spans
                WHERE {cond} AND ingested_at >= {at}
                GROUP BY trace_id, span_id
                HAVING (at, trace_id, span_id) >
                       ({at}, {p(after.trace_id, 'String')}, {p(after.span_id, 'String')})
            )
            """,
            p,
        )
        if not rows or not rows[0][0]:
            return 0, None
        return int(rows[0][0]), utc(rows[0][1])

    # -- progress -----------------------------------------------------------------------

    def record_online_progress(
        self, project: str, name: str, owner: str, update: ProgressUpdate
    ) -> bool:
        """While the rule exists: store its scores as feedback (an id already stored is
        kept), add the counters and spend (the spend restarts when the period changes),
        note the last error; and, only while ``owner`` holds the lease, move the watermark
        and count the spans it passed. Returns whether ``owner`` holds the lease.

        Feedback is written before the progress: a crash in between rescores those spans,
        which stores nothing twice."""
        found = self._rule_defs(project, name)
        if not found:
            return False
        d = found[0]
        held = self._online_leases().held(d.key, owner) is not None
        if update.feedback:
            self.write_feedback(update.feedback)
        wm = update.watermark if held else None
        self._progress(
            d,
            period=update.period or "",
            counts=(
                update.processed if wm is not None else 0,
                update.sampled if wm is not None else 0,
                update.scored,
                update.errors,
                update.skipped,
                update.unpriced,
            ),
            spend=update.spend_usd,
            written=self.version(),
            watermark=wm,
            last_scored_at=update.at if update.scored else None,
            last_error=(update.at, update.last_error) if update.last_error else None,
        )
        return held

    # -- whole-store copy (assay.store.transfer) ----------------------------------------

    def transfer_view(self, table: str) -> tuple[dict[str, str], str] | None:
        """Rules in their portable form: the definition with its progress summed as
        :meth:`_rules` does (no lease)."""
        if table != "online_rules":
            return super().transfer_view(table)
        db = f"`{self.database}`"
        return _RULE_TYPES, f"""
            SELECT d.project AS project, d.name AS name, d.scorer AS scorer,
                   d.score_name AS score_name, d.sample_rate AS sample_rate,
                   d.filters AS filters, d.budget_usd AS budget_usd,
                   toString(d.budget_period) AS budget_period, d.concurrency AS concurrency,
                   d.retries AS retries, d.enabled AS enabled, d.created_at AS created_at,
                   d.updated_at AS updated_at,
                   if(p.has = 1, p.wm.1, d.created_at) AS watermark_at,
                   if(p.has = 1, p.wm.2, '') AS watermark_trace,
                   if(p.has = 1, p.wm.3, '') AS watermark_span,
                   p.n_processed AS processed, p.n_sampled AS sampled, p.n_scored AS scored,
                   p.n_errors AS errors, p.n_skipped AS skipped, p.n_unpriced AS unpriced,
                   nullIf(p.cur_period, '') AS spend_period, p.cur_spend AS spend_usd,
                   p.all_spend AS spend_total_usd, p.scored_at AS last_scored_at,
                   nullIf(p.err.2, '') AS last_error,
                   if(p.err.2 = '', NULL, p.err.1) AS last_error_at,
                   CAST(NULL AS Nullable(String)) AS lease_owner,
                   CAST(NULL AS {_NTIME}) AS lease_expires_at
            FROM (SELECT * FROM {db}.online_rules FINAL WHERE deleted = 0) AS d
            LEFT JOIN (
                SELECT project, name, generation, toUInt8(1) AS has,
                       sum(processed) AS n_processed, sum(sampled) AS n_sampled,
                       sum(scored) AS n_scored, sum(errors) AS n_errors,
                       sum(skipped) AS n_skipped, sum(unpriced) AS n_unpriced,
                       argMax(period, written) AS cur_period,
                       argMax(spend, written) AS cur_spend, sum(spend) AS all_spend,
                       max(watermark) AS wm, max(last_scored_at) AS scored_at,
                       max(last_error) AS err
                FROM (
                    SELECT project, name, generation, period, sum(processed) AS processed,
                           sum(sampled) AS sampled, sum(scored) AS scored,
                           sum(errors) AS errors, sum(skipped) AS skipped,
                           sum(unpriced) AS unpriced, sum(spend) AS spend,
                           max(written) AS written, max(watermark) AS watermark,
                           max(last_scored_at) AS last_scored_at, max(last_error) AS last_error
                    FROM {db}.online_progress
                    GROUP BY project, name, generation, period
                )
                GROUP BY project, name, generation
            ) AS p
            ON p.project = d.project AND p.name = d.name AND p.generation = d.generation
        """

    def transfer_write(self, table: str, data: Any) -> bool:
        """Write portable rules with their watermark, counters and spend. Each gets a new
        generation: progress rows are summed, so writing them again under a generation
        that has some (a resumed copy) would count everything twice."""
        if table != "online_rules":
            return super().transfer_write(table, data)
        progress: list[list[Any]] = []
        defs: list[list[Any]] = []
        for r in data.to_pylist():
            generation = uuid.uuid4().hex
            key = [r["project"], r["name"], generation]
            period = r["spend_period"] or ""
            earlier = float(r["spend_total_usd"]) - float(r["spend_usd"])
            if earlier > 0:
                # Spend of past periods: a period of its own, written at 0 so the current
                # period (the latest written) stays the one whose spend is "this period's".
                progress.append(
                    [*key, _EARLIER, 0, 0, 0, 0, 0, 0, earlier, 0, _mark(Mark(_EPOCH)),
                     None, (_naive(_EPOCH), "")]
                )  # fmt: skip
            error = r["last_error"]
            progress.append(
                [
                    *key,
                    period,
                    *(int(r[c]) for c in _COUNTERS),
                    float(r["spend_usd"]),
                    self.version(),
                    _mark(Mark(r["watermark_at"], r["watermark_trace"], r["watermark_span"])),
                    r["last_scored_at"],
                    (_naive(r["last_error_at"] or _EPOCH), error) if error else
                    (_naive(_EPOCH), ""),
                ]
            )  # fmt: skip
            defs.append(
                [
                    *key,
                    _json_text(r["scorer"]),
                    r["score_name"],
                    float(r["sample_rate"]),
                    _json_text(r["filters"]),
                    r["budget_usd"],
                    r["budget_period"],
                    int(r["concurrency"]),
                    int(r["retries"]),
                    int(bool(r["enabled"])),
                    r["created_at"],
                    r["updated_at"],
                    self.version(),
                    0,
                ]
            )
        with self._write_lock:
            # Progress first, as create_online_rule: a rule is never visible without it.
            self.insert_rows("online_progress", _cols(_PROGRESS_COLS), progress)
            self.insert_rows("online_rules", [*_cols(_DEF_COLS), "deleted"], defs)
        return True


#: The counters of a rule's progress, in ``online_progress`` order.
_COUNTERS = ("processed", "sampled", "scored", "errors", "skipped", "unpriced")
#: The period a copied rule's spend of earlier periods is kept under.
_EARLIER = "(earlier)"

_RULE_TYPES = {
    "project": "String",
    "name": "String",
    "scorer": "String",
    "score_name": "String",
    "sample_rate": "Float64",
    "filters": "String",
    "budget_usd": "Nullable(Float64)",
    "budget_period": "String",
    "concurrency": "Int64",
    "retries": "Int64",
    "enabled": "UInt8",
    "created_at": TIME,
    "updated_at": TIME,
    "watermark_at": TIME,
    "watermark_trace": "String",
    "watermark_span": "String",
    **{c: "Int64" for c in _COUNTERS},
    "spend_period": "Nullable(String)",
    "spend_usd": "Float64",
    "spend_total_usd": "Float64",
    "last_scored_at": _NTIME,
    "last_error": "Nullable(String)",
    "last_error_at": _NTIME,
    "lease_owner": "Nullable(String)",
    "lease_expires_at": _NTIME,
}


def _mark(m: Mark) -> tuple[datetime, str, str]:
    return (_naive(m.at), m.trace_id, m.span_id)


def _json_text(value: Any) -> str:
    """A JSON column's value as text (a backend may hand it over parsed)."""
    return value if isinstance(value, str) else json.dumps(value)


def _naive(dt: datetime) -> datetime:
    # Values inside tuples are not converted by insert_rows: store UTC wall time.
    return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo else dt
