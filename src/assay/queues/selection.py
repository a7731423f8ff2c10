"""Choosing a queue's items: the strategies (random, stratified, drift, low-confidence,
disagreement; a hand-picked queue starts empty), allocation across strata, snapshots of
the chosen spans. See docs/queues.md."""

from __future__ import annotations

import hashlib
import math
import statistics
import uuid
from collections import Counter, defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from assay.model import Span
from assay.query import SpanFilter
from assay.queues.values import (
    ALLOCATIONS,
    DEFAULT_LEASE_SECONDS,
    DISAGREEMENT,
    DRIFT,
    HAND_PICKED,
    LABEL_NAME,
    LOW_CONFIDENCE,
    MAX_SIZE,
    RANDOM,
    SAMPLING_METHOD,
    SNAPSHOT_CHARS,
    STRATA_FIELDS,
    STRATEGIES,
    STRATIFIED,
    UNITS,
    LabelSpec,
    Queue,
    QueueConflictError,
    QueueError,
    QueueItem,
    QueueNotFoundError,
    check_queue_name,
)

if TYPE_CHECKING:
    from assay.store import Store

#: Most strata a stratified queue splits into.
MAX_STRATA = 200
K = TypeVar("K", bound=Hashable)


# --- the spec of a new queue -------------------------------------------------------------------


@dataclass(frozen=True)
class QueueSpec:
    """What a user asks for when creating a queue (validated on construction)."""

    name: str
    strategy: str
    size: int
    label: LabelSpec
    filters: SpanFilter
    seed: int | None = None
    #: random/stratified: sample whole traces (item = the root span) or single spans.
    unit: str = "trace"
    field: str | None = None
    allocation: str = "proportional"
    judge: str | None = None
    threshold: float = 0.5
    #: drift: a drift report (its JSON form) and where it came from, in words.
    drift_report: Mapping[str, Any] | None = None
    drift_source: str | None = None
    lease_seconds: int = DEFAULT_LEASE_SECONDS
    instructions: str | None = None
    created_by: str | None = None

    def __post_init__(self) -> None:
        check_queue_name(self.name)
        if self.strategy not in STRATEGIES:
            raise QueueError(f"strategy {self.strategy!r} must be one of {', '.join(STRATEGIES)}")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise QueueError(f"size {self.size!r} must be a whole number, e.g. 200")
        if not 1 <= self.size <= MAX_SIZE:
            raise QueueError(f"size {self.size} must be between 1 and {MAX_SIZE:,}")
        if self.seed is not None and (isinstance(self.seed, bool) or not 0 <= self.seed < 2**63):
            raise QueueError(f"seed {self.seed!r} must be a whole number >= 0")
        if self.unit not in UNITS:
            raise QueueError(f"unit {self.unit!r} must be trace or span")
        if self.strategy == STRATIFIED:
            if self.field not in STRATA_FIELDS:
                raise QueueError(
                    f"stratified needs --field, one of {', '.join(STRATA_FIELDS)} "
                    f"(got {self.field!r})"
                )
            if self.allocation not in ALLOCATIONS:
                raise QueueError(f"allocation {self.allocation!r} must be proportional or equal")
        elif self.field is not None:
            raise QueueError("--field is only for --strategy stratified")
        if self.strategy in (LOW_CONFIDENCE, DISAGREEMENT):
            if not self.judge or not LABEL_NAME.match(self.judge):
                raise QueueError(
                    f"{self.strategy} needs --judge NAME: the feedback name of the judge's "
                    "scores (source judge), e.g. --judge helpfulness"
                )
        elif self.judge is not None:
            raise QueueError("--judge is only for the low-confidence and disagreement strategies")
        if not (isinstance(self.threshold, int | float) and math.isfinite(self.threshold)):
            raise QueueError(f"threshold {self.threshold!r} must be a number, e.g. 0.5")
        if self.strategy == HAND_PICKED:
            given = _filters_json(self.filters)
            if given or self.seed is not None:
                what = ", ".join([*given, *(["seed"] if self.seed is not None else [])])
                raise QueueError(
                    f"a hand-picked queue selects nothing by itself, so it takes no filters "
                    f"or seed (got {what}); create it empty and add traces with "
                    "`assay queues add NAME TRACE_ID...`"
                )
        if self.strategy == DRIFT and self.drift_report is None:
            raise QueueError(
                "drift needs a drift report: --monitor NAME (its latest drifted result), "
                "--drift-report FILE.json (from `assay drift check --json`) or "
                "--drift-reference RANGE (run a check now)"
            )
        if self.strategy != DRIFT and self.drift_report is not None:
            raise QueueError("a drift report is only for --strategy drift")
        if isinstance(self.lease_seconds, bool) or not 10 <= self.lease_seconds <= 7 * 86_400:
            raise QueueError(
                f"lease {self.lease_seconds!r} s must be between 10 seconds and 7 days"
            )
        if self.instructions is not None and len(self.instructions) > 20_000:
            raise QueueError("instructions are longer than 20,000 characters")


# --- selection -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pick:
    trace_id: str
    span_id: str
    stratum: str | None = None
    probability: float | None = None
    score: float | None = None
    reason: Mapping[str, Any] = field(default_factory=dict)
    #: The label goes on the whole trace (span_id None), not on the span shown.
    whole_trace: bool = False


@dataclass
class _Selection:
    picks: list[_Pick]
    population: int
    params: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def seeded_rank(seed: int, *parts: str) -> int:
    """A stable pseudo-random rank for a unit: ties are broken by it, reproducibly."""
    digest = hashlib.blake2b(":".join((str(seed), *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _stratum_order(key: object) -> tuple[int, str]:
    return (0, "") if key is None else (1, str(key))


def allocate(counts: Mapping[K, int], size: int, allocation: str) -> dict[K, int]:
    """Items per stratum for a sample of ``size`` from strata of ``counts`` units.

    ``proportional``: n_h = size·N_h/N rounded by largest remainder (ties: larger stratum,
    then name), so small strata may get none. ``equal``: size/H each, a stratum smaller
    than its share gives all its units and the rest is shared among the others; what does
    not divide evenly goes one by one to the largest strata. Never more than N_h.
    """
    keys = sorted(counts, key=_stratum_order)
    total = sum(counts[k] for k in keys)
    if size >= total:
        return {k: counts[k] for k in keys}
    out: dict[K, int] = dict.fromkeys(keys, 0)
    by_size = sorted(keys, key=lambda k: (-counts[k], _stratum_order(k)))
    if allocation == "proportional":
        exact = {k: size * counts[k] / total for k in keys}
        for k in keys:
            out[k] = math.floor(exact[k])
        left = size - sum(out.values())
        order = sorted(keys, key=lambda k: (-(exact[k] - out[k]), -counts[k], _stratum_order(k)))
        for k in order[:left]:
            out[k] += 1
        return out
    if allocation != "equal":
        raise QueueError(f"allocation {allocation!r} must be proportional or equal")
    left = size
    open_ = [k for k in keys if counts[k] > 0]
    while left > 0 and open_:
        share = left // len(open_)
        if share == 0:
            for k in [k for k in by_size if k in open_][:left]:
                out[k] += 1
            break
        for k in open_:
            give = min(share, counts[k] - out[k])
            out[k] += give
            left -= give
        open_ = [k for k in open_ if out[k] < counts[k]]
    return out


def _filters_json(flt: SpanFilter) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in SpanFilter.__dataclass_fields__:
        value = getattr(flt, name)
        if name == "project" or value in (None, {}):
            continue
        out[name] = value.isoformat() if isinstance(value, datetime) else value
    return out


def _select_random(store: Store, spec: QueueSpec, seed: int) -> _Selection:
    by = spec.field if spec.strategy == STRATIFIED else None
    counts = store.queue_population(spec.filters, spec.unit, by)
    population = sum(counts.values())
    if population == 0:
        raise QueueError(
            f"no {spec.unit}s match the filters {_filters_json(spec.filters) or '(none)'}; "
            "widen --since/--until or drop a filter (see `assay traces list` with the same "
            "options)"
        )
    params: dict[str, Any] = {"unit": spec.unit, "method": SAMPLING_METHOD}
    notes: list[str] = []
    quotas: dict[str | None, int]
    probability: dict[str | None, float]
    if by is None:
        quotas = {None: min(spec.size, population)}
        probability = {None: quotas[None] / population}
    else:
        if len(counts) > MAX_STRATA:
            raise QueueError(
                f"{by} has {len(counts)} values among the matching {spec.unit}s; stratify by "
                f"a field with at most {MAX_STRATA} values (e.g. route, model, release)"
            )
        quotas = allocate(counts, spec.size, spec.allocation)
        probability = {k: quotas[k] / counts[k] for k in counts}
        params.update(field=by, allocation=spec.allocation)
        params["strata"] = [
            {
                "value": k,
                "population": counts[k],
                "allocated": quotas[k],
                "inclusion_probability": probability[k],
            }
            for k in sorted(counts, key=_stratum_order)
        ]
        empty = [k for k in counts if quotas[k] == 0]
        if empty:
            notes.append(
                f"{len(empty)} stratum/strata got no items under proportional allocation "
                f"({', '.join(str(k) for k in empty[:5])}); labels say nothing about them — "
                "use --allocation equal to cover every stratum"
            )
    if sum(quotas.values()) < spec.size:
        notes.append(
            f"only {population:,} {spec.unit}s match the filters: the queue holds all of them"
        )
    keys = store.sample_queue_keys(spec.filters, spec.unit, quotas, seed, by)
    picks = [
        _Pick(
            trace_id=t,
            span_id=s,
            stratum=st,
            probability=probability[st],
            reason={"stratum": st} if by else {},
        )
        for t, s, st in keys
    ]
    picks.sort(key=lambda p: seeded_rank(seed, p.trace_id, p.span_id))
    return _Selection(picks, population, params, notes)


_Scores = list[tuple[float | None, str | None]]


def _judge_groups(store: Store, spec: QueueSpec) -> dict[tuple[str, str | None], _Scores]:
    """Judge scores per judged (trace, span); span None when the judge scored the trace."""
    assert spec.judge is not None
    groups: dict[tuple[str, str | None], _Scores] = defaultdict(list)
    for trace_id, span_id, number, category in store.queue_judge_scores(spec.filters, spec.judge):
        groups[(trace_id, span_id)].append((number, category))
    if not groups:
        raise QueueError(
            f"no judge scores named {spec.judge!r} (feedback with source judge) on spans "
            "matching the filters; check `assay feedback list --name "
            f"{spec.judge} --source judge` and the filters"
        )
    return groups


def _select_low_confidence(store: Store, spec: QueueSpec, seed: int) -> _Selection:
    groups = _judge_groups(store, spec)
    numeric = {k: [n for n, _ in v if n is not None] for k, v in groups.items()}
    numeric = {k: v for k, v in numeric.items() if v}
    if not numeric:
        raise QueueError(
            f"judge scores named {spec.judge!r} are categories, not numbers: low-confidence "
            "needs scores (or probabilities) to compare with --threshold; use --strategy "
            "disagreement or random"
        )
    ranked = []
    for (t, s), values in numeric.items():
        mean = statistics.fmean(values)
        distance = abs(mean - spec.threshold)
        ranked.append((distance, seeded_rank(seed, t, s or ""), t, s, mean, len(values)))
    ranked.sort(key=lambda r: r[:2])
    picks = [
        _Pick(
            t,
            s or "",
            whole_trace=s is None,
            score=d,
            reason={
                "judge": spec.judge,
                "judge_score": mean,
                "threshold": spec.threshold,
                "distance": d,
                "scores": n,
            },
        )
        for d, _, t, s, mean, n in ranked[: spec.size]
    ]
    params = {
        "judge": spec.judge,
        "threshold": spec.threshold,
        "rule": "smallest |mean judge score - threshold| first; ties by seeded rank",
    }
    notes = []
    if len(groups) > len(numeric):
        notes.append(f"{len(groups) - len(numeric)} judged spans had no numeric score")
    return _Selection(_roots(store, spec, picks), len(numeric), params, notes)


def disagreement(
    scores: Sequence[tuple[float | None, str | None]], threshold: float
) -> tuple[float, float, dict[str, int]]:
    """How much several judge scores of one span disagree: ``1 - (share of the most
    common decision)`` (0 when unanimous, 0.5 for an even pass/fail split), the standard
    deviation of the numeric scores, and the decisions counted. A number's decision is
    ``pass`` when it is >= ``threshold``, else ``fail``; a category is its own decision."""
    decisions: Counter[str] = Counter()
    numbers = []
    for number, category in scores:
        if number is not None:
            numbers.append(number)
            decisions["pass" if number >= threshold else "fail"] += 1
        elif category is not None:
            decisions[category] += 1
    m = sum(decisions.values())
    if m == 0:
        return 0.0, 0.0, {}
    share = 1.0 - max(decisions.values()) / m
    spread = statistics.pstdev(numbers) if len(numbers) > 1 else 0.0
    return share, spread, dict(decisions)


def _select_disagreement(store: Store, spec: QueueSpec, seed: int) -> _Selection:
    groups = _judge_groups(store, spec)
    several = {k: v for k, v in groups.items() if len(v) >= 2}
    ranked = []
    for (t, s), scores in several.items():
        share, spread, decisions = disagreement(scores, spec.threshold)
        if share > 0:
            rank = seeded_rank(seed, t, s or "")
            ranked.append((-share, -spread, rank, t, s, scores, decisions))
    if not ranked:
        raise QueueError(
            f"no span has judge scores named {spec.judge!r} that disagree: {len(several):,} "
            f"of {len(groups):,} judged spans have 2 or more scores and they all agree at "
            f"threshold {spec.threshold}; score each span several times (trials) or use "
            "--strategy low-confidence"
        )
    ranked.sort(key=lambda r: r[:3])
    picks = [
        _Pick(
            t,
            s or "",
            whole_trace=s is None,
            score=-neg,
            reason={
                "judge": spec.judge,
                "disagreement": -neg,
                "spread": -neg_spread,
                "decisions": decisions,
                "scores": [n if n is not None else c for n, c in scores],
            },
        )
        for neg, neg_spread, _, t, s, scores, decisions in ranked[: spec.size]
    ]
    params = {
        "judge": spec.judge,
        "threshold": spec.threshold,
        "rule": "spans with 2+ judge scores whose decisions differ; largest disagreement "
        "(1 - majority share) first, then largest spread, then seeded rank",
    }
    return _Selection(_roots(store, spec, picks), len(several), params)


def _roots(store: Store, spec: QueueSpec, picks: list[_Pick]) -> list[_Pick]:
    """Trace-level picks shown by their root span (traces not stored are dropped)."""
    whole = [p.trace_id for p in picks if p.whole_trace]
    roots = store.root_span_ids(spec.filters.project, whole) if whole else {}
    out = []
    for p in picks:
        if p.whole_trace:
            if p.trace_id not in roots:
                continue
            p = replace(p, span_id=roots[p.trace_id])
        out.append(p)
    return out


def _select_drift(store: Store, spec: QueueSpec, seed: int) -> _Selection:
    report = spec.drift_report or {}
    features = report.get("features") if isinstance(report, Mapping) else None
    if not isinstance(features, list):
        raise QueueError(
            "the drift report has no features list; give the JSON `assay drift check --json` "
            "prints (or POST /api/v1/drift/check answers)"
        )
    lists: list[tuple[str, list[Mapping[str, Any]]]] = []
    for f in features:
        if isinstance(f, Mapping) and f.get("verdict") == "drift" and f.get("examples"):
            lists.append((str(f.get("feature")), [e for e in f["examples"] if _example(e)]))
    if not lists:
        raise QueueError(
            "the drift report lists no examples of drifted spans (only drifted embedding "
            "features such as input_embedding have examples); pick another report or "
            "strategy"
        )
    seen: dict[tuple[str, str], _Pick] = {}
    depth = max(len(ex) for _, ex in lists)
    for rank in range(depth):  # round robin: every drifted feature shows its farthest first
        for feature, examples in lists:
            if rank >= len(examples):
                continue
            e = examples[rank]
            key = (str(e["trace_id"]), str(e["span_id"]))
            if key not in seen:
                score = float(e.get("score") or 0.0)
                seen[key] = _Pick(
                    key[0],
                    key[1],
                    score=score,
                    reason={"drift_feature": feature, "drift_score": score, "rank": rank + 1},
                )
    matching = {(s.trace_id, s.span_id) for s in store.spans_by_key(spec.filters, list(seen))}
    picks = [p for k, p in seen.items() if k in matching][: spec.size]
    notes = []
    if len(matching) < len(seen):
        notes.append(
            f"{len(seen) - len(matching)} example span(s) of the report are not stored or do "
            "not match the queue's filters"
        )
    if not picks:
        raise QueueError(
            "none of the drift report's example spans is stored in this project and matches "
            "the filters"
        )
    if len(seen) < spec.size:
        notes.append(
            f"the report lists {len(seen)} example spans; run a check with more examples "
            "(--drift-reference with the queue's --size) for a fuller queue"
        )
    current = report.get("current")
    current = current if isinstance(current, Mapping) else {}
    params = {
        "source": spec.drift_source,
        "report_created_at": report.get("created_at"),
        "drifted": [name for name, _ in lists],
        "current_window": {k: current.get(k) for k in ("text", "start", "end")},
        "rule": "the report's farthest examples, round robin over drifted features",
    }
    return _Selection(picks, len(seen), params, notes)


def _example(e: Any) -> bool:
    return isinstance(e, Mapping) and bool(e.get("trace_id")) and bool(e.get("span_id"))


def _select_hand_picked(store: Store, spec: QueueSpec, seed: int) -> _Selection:
    """Nothing: people add the items later (see :func:`assay.queues.add_items`)."""
    params = {
        "rule": "items chosen by a person (assay queues add, POST /api/v1/queues/NAME/items, "
        "the trace page); not a probability sample",
        "max_items": spec.size,
    }
    return _Selection([], 0, params, [HAND_PICKED_NOTE])


#: The note every hand-picked queue carries.
HAND_PICKED_NOTE = (
    "hand-picked: people chose these items, so they are not a random sample of traffic; "
    "quality estimates do not treat its labels as one"
)

_SELECT = {
    HAND_PICKED: _select_hand_picked,
    RANDOM: _select_random,
    STRATIFIED: _select_random,
    LOW_CONFIDENCE: _select_low_confidence,
    DISAGREEMENT: _select_disagreement,
    DRIFT: _select_drift,
}


def _clip(text: str | None) -> str | None:
    return text if text is None or len(text) <= SNAPSHOT_CHARS else text[:SNAPSHOT_CHARS]


def _context(span: Span, reason: Mapping[str, Any], whole_trace: bool) -> dict[str, Any]:
    keys = ("name", "kind", "model", "provider", "service", "route", "release", "environment")
    out: dict[str, Any] = {k: getattr(span, k) for k in keys}
    out.update(
        start_time=span.start_time.isoformat(),
        duration_ms=span.duration_ms,
        status=span.status,
        cost=span.cost,
        session_id=span.session_id,
        user_id=span.user_id,
        trace_url=f"/api/v1/traces/{span.trace_id}",
        label_on="trace" if whole_trace else "span",
        reason=dict(reason),
    )
    return out


def snapshot_item(
    queue: str,
    item_id: int,
    span: Span,
    reason: Mapping[str, Any],
    *,
    whole_trace: bool = False,
    stratum: str | None = None,
    probability: float | None = None,
    score: float | None = None,
) -> QueueItem:
    """An open item showing ``span``: a snapshot of its text and messages, and its context
    with ``reason`` (why it was chosen). ``whole_trace`` puts the label on the trace."""
    return QueueItem(
        project=span.project,
        queue=queue,
        item_id=item_id,
        trace_id=span.trace_id,
        span_id=span.span_id,
        input_text=_clip(span.input_text),
        output_text=_clip(span.output_text),
        input_messages=span.input_messages,
        output_messages=span.output_messages,
        context=_context(span, reason, whole_trace),
        stratum=stratum,
        inclusion_probability=probability,
        score=score,
    )


def build_queue(
    store: Store, spec: QueueSpec, now: datetime | None = None
) -> tuple[Queue, list[QueueItem]]:
    """Select the items of a new queue (nothing is stored)."""
    now = now or datetime.now(UTC)
    seed = spec.seed if spec.seed is not None else int.from_bytes(uuid.uuid4().bytes[:4], "big")
    if spec.strategy == HAND_PICKED:
        seed = 0  # nothing is drawn
    selection = _SELECT[spec.strategy](store, spec, seed)
    spans = {
        (s.trace_id, s.span_id): s
        for s in store.spans_by_key(
            SpanFilter(project=spec.filters.project),
            [(p.trace_id, p.span_id) for p in selection.picks],
        )
    }
    items: list[QueueItem] = []
    for p in selection.picks:
        span = spans.get((p.trace_id, p.span_id))
        if span is None:  # pragma: no cover - picks come from stored spans
            continue
        items.append(
            snapshot_item(
                spec.name,
                len(items) + 1,
                span,
                p.reason,
                whole_trace=p.whole_trace,
                stratum=p.stratum,
                probability=p.probability,
                score=p.score,
            )
        )
    params = {"filters": _filters_json(spec.filters), **selection.params}
    queue = Queue(
        project=spec.filters.project,
        name=spec.name,
        queue_id=uuid.uuid4().hex[:16],
        strategy=spec.strategy,
        params=params,
        seed=seed,
        label=spec.label,
        size=spec.size,
        item_count=len(items),
        population=selection.population,
        lease_seconds=spec.lease_seconds,
        created_at=now,
        created_by=spec.created_by,
        instructions=spec.instructions,
        notes=tuple(selection.notes),
    )
    return queue, items


def create_queue(store: Store, spec: QueueSpec, now: datetime | None = None) -> Queue:
    """Select and store a new queue; :class:`QueueConflictError` when the name is taken."""
    if store.get_queue(spec.filters.project, spec.name) is not None:
        raise _taken(spec.name)
    queue, items = build_queue(store, spec, now)
    if not store.create_queue(queue, items):
        raise _taken(spec.name)
    return queue


def _taken(name: str) -> QueueConflictError:
    return QueueConflictError(
        f"a queue named {name!r} already exists; pick another name or remove it with "
        f"`assay queues rm {name}`"
    )


def latest_drift_report(store: Store, project: str, monitor: str) -> tuple[Mapping[str, Any], str]:
    """The report of a monitor's most recent drifted run, and a description of it."""
    if store.get_monitor(project, monitor) is None:
        raise QueueNotFoundError(
            f"no monitor named {monitor!r} in project {project!r}; see `assay monitors list`"
        )
    for result in store.list_monitor_results(project, monitor, limit=100):
        if result.verdict == "drift":
            full = store.get_monitor_result(project, monitor, result.result_id)
            if full is not None and full.report:
                return full.report, (
                    f"monitor {monitor} result {result.result_id} ({result.ran_at.isoformat()})"
                )
    raise QueueError(
        f"monitor {monitor!r} has no drifted result among its last 100 runs; run it with "
        f"`assay monitors run {monitor}` or pick another source"
    )
