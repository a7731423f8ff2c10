"""Annotation queues: choose which spans people should label, hand the items out one at a
time under a lease, and store every label as reviewer feedback.

A queue is made once, from span filters and a strategy (see docs/queues.md):

- ``random``: a simple random sample without replacement (seeded);
- ``stratified``: a random sample within each value of a field, with proportional or
  equal allocation;
- ``drift``: the examples a drift report found most unlike its reference;
- ``low-confidence``: judge scores closest to the decision threshold;
- ``disagreement``: spans whose several judge scores of one name disagree.

The strategy, its resolved parameters and the seed are stored with the queue, and each
item of a probability sample (random, stratified) carries its inclusion probability, so
an estimate from the labels can weight them (inverse-probability weights).
"""

from __future__ import annotations

import hashlib
import math
import re
import statistics
import uuid
from collections import Counter, defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from assay.feedback import FeedbackError, make_feedback
from assay.model import Feedback, Span
from assay.query import GROUP_FIELDS, SpanFilter

if TYPE_CHECKING:
    from assay.store import Store

RANDOM = "random"
STRATIFIED = "stratified"
DRIFT = "drift"
LOW_CONFIDENCE = "low-confidence"
DISAGREEMENT = "disagreement"
STRATEGIES: tuple[str, ...] = (RANDOM, STRATIFIED, DRIFT, LOW_CONFIDENCE, DISAGREEMENT)
#: Strategies whose items are a probability sample (each has an inclusion probability).
PROBABILITY_SAMPLES: tuple[str, ...] = (RANDOM, STRATIFIED)
ALLOCATIONS: tuple[str, ...] = ("proportional", "equal")
#: What a random or stratified queue samples: whole traces (their root span) or spans.
UNITS: tuple[str, ...] = ("trace", "span")
#: Fields a stratified queue can split on (span columns).
STRATA_FIELDS: tuple[str, ...] = GROUP_FIELDS
LABEL_KINDS: tuple[str, ...] = ("boolean", "category", "scale")
#: Item status; an open item is *claimed* while its lease has not expired.
OPEN, LABELLED, SKIPPED = "open", "labelled", "skipped"
STATUSES: tuple[str, ...] = (OPEN, LABELLED, SKIPPED)
DEFAULT_LEASE_SECONDS = 30 * 60
MAX_SIZE = 10_000
MAX_STRATA = 200
#: Characters of a span's input/output text kept in an item's snapshot.
SNAPSHOT_CHARS = 100_000
#: How the random and stratified strategies draw (stored in a queue's params).
SAMPLING_METHOD = (
    "simple random sample without replacement: the units with the smallest "
    "hash('SEED:TRACE_ID[:SPAN_ID]') (per stratum when stratified)"
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")
_SCALE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:-|\.\.)\s*(-?\d+(?:\.\d+)?)\s*$")
_TRUE = ("true", "yes", "pass", "1", "up", "y")
_FALSE = ("false", "no", "fail", "0", "down", "n")
K = TypeVar("K", bound=Hashable)


class QueueError(ValueError):
    """A queue request that cannot be done; the message names the problem and the fix."""


class QueueNotFoundError(QueueError):
    """No such queue (or item) in the project."""


class QueueConflictError(QueueError):
    """The request collides with the queue's state: name taken, item claimed or done."""


# --- values ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelSpec:
    """The one label a queue collects: its feedback name and the values allowed.

    ``boolean`` takes pass/fail (stored as feedback ``boolean``), ``category`` one of
    ``values`` (stored as ``category``), ``scale`` a number in ``[low, high]`` (stored as
    ``number``; whole numbers only when ``integer``).
    """

    name: str
    kind: str
    values: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    integer: bool = True

    def to_json(self) -> dict[str, Any]:
        """The stored and API form."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.kind == "category":
            out["values"] = list(self.values)
        if self.kind == "scale":
            out.update(low=self.low, high=self.high, integer=self.integer)
        if self.kind == "boolean":
            out["values"] = [True, False]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LabelSpec:
        """The inverse of :meth:`to_json`."""
        kind = str(data["kind"])
        return cls(
            name=str(data["name"]),
            kind=kind,
            values=tuple(data.get("values") or ()) if kind == "category" else (),
            low=data.get("low"),
            high=data.get("high"),
            integer=bool(data.get("integer", True)),
        )

    def describe(self) -> str:
        """The allowed values in words, e.g. ``pass or fail``."""
        if self.kind == "boolean":
            return "pass or fail (true/false, yes/no, 1/0)"
        if self.kind == "category":
            return "one of " + ", ".join(self.values)
        what = "a whole number" if self.integer else "a number"
        return f"{what} from {_num(self.low)} to {_num(self.high)}"

    def parse(self, value: Any) -> bool | int | float | str:
        """The label value as stored, or :class:`QueueError` saying what is allowed."""
        bad = QueueError(f"value {value!r} for label {self.name!r} must be {self.describe()}")
        if value is None:
            raise bad
        if self.kind == "boolean":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if isinstance(value, int | float) and value in (0, 1):
                return bool(value)
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise bad
        if self.kind == "category":
            if isinstance(value, bool):
                raise bad
            text = str(value).strip()
            if text in self.values:
                return text
            folded = [v for v in self.values if v.casefold() == text.casefold()]
            if len(folded) == 1:
                return folded[0]
            raise bad
        if isinstance(value, bool):
            raise bad
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise bad from None
        assert self.low is not None and self.high is not None
        if not math.isfinite(number) or not self.low <= number <= self.high:
            raise bad
        if self.integer:
            if not number.is_integer():
                raise bad
            return int(number)
        return number


def _num(x: float | None) -> str:
    return "" if x is None else (str(int(x)) if float(x).is_integer() else str(x))


def label_spec(
    name: str,
    *,
    values: str | Sequence[str] | None = None,
    scale: str | None = None,
    boolean: bool = False,
) -> LabelSpec:
    """A label from what a user types: ``values="pass,fail"``, ``scale="1-5"`` (whole
    numbers; ``0.0-1.0`` allows any number) or ``boolean=True``; exactly one of them."""
    if not isinstance(name, str) or not _LABEL_NAME.match(name):
        raise QueueError(
            f"label name {name!r} must be 1-128 letters, digits, '_', '.', ':' or '-' "
            "(e.g. helpfulness); it is the feedback name the labels are stored under"
        )
    given = [x for x in (values, scale, boolean or None) if x not in (None, "", ())]
    if len(given) != 1:
        raise QueueError(
            "give the label's allowed values once: --values pass,fail (categories), "
            "--scale 1-5 (numbers) or --boolean (pass/fail)"
        )
    if boolean:
        return LabelSpec(name, "boolean")
    if values not in (None, "", ()):
        items = values.split(",") if isinstance(values, str) else list(values)
        cleaned = [str(v).strip() for v in items]
        if any(not v or len(v) > 200 for v in cleaned) or len(set(cleaned)) != len(cleaned):
            raise QueueError(
                f"values {values!r} must be 2-100 distinct non-empty names separated by "
                "commas, e.g. pass,fail or billing,shipping,other"
            )
        if not 2 <= len(cleaned) <= 100:
            raise QueueError(f"values {values!r} must list 2-100 choices, e.g. pass,fail")
        return LabelSpec(name, "category", tuple(cleaned))
    m = _SCALE.match(str(scale))
    if m is None:
        raise QueueError(f"scale {scale!r} must look like LOW-HIGH, e.g. 1-5 or 0.0-1.0")
    low, high = float(m.group(1)), float(m.group(2))
    if not low < high:
        raise QueueError(f"scale {scale!r}: LOW must be below HIGH, e.g. 1-5")
    integer = "." not in m.group(1) + m.group(2)
    return LabelSpec(name, "scale", low=low, high=high, integer=integer)


@dataclass(frozen=True)
class Queue:
    """A queue's definition: how its items were chosen and what label it collects."""

    project: str
    name: str
    queue_id: str
    strategy: str
    #: The resolved strategy parameters (filters, field, allocation, strata sizes, judge,
    #: threshold, drift source, sampling method) that explain the selection.
    params: Mapping[str, Any]
    seed: int
    label: LabelSpec
    #: Items asked for, items selected, and the candidates they were chosen from.
    size: int
    item_count: int
    population: int
    lease_seconds: int
    created_at: datetime
    created_by: str | None = None
    instructions: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def probability_sample(self) -> bool:
        """True when every item has a known inclusion probability (random, stratified)."""
        return self.strategy in PROBABILITY_SAMPLES


@dataclass(frozen=True)
class QueueItem:
    """One span to label, with a snapshot of its text and context, and who has it."""

    project: str
    queue: str
    #: 1, 2, … in the order items are handed out.
    item_id: int
    trace_id: str
    span_id: str
    input_text: str | None
    output_text: str | None
    input_messages: list[dict[str, Any]] | None
    output_messages: list[dict[str, Any]] | None
    #: Span fields a labeller may need (name, model, route …) and ``reason``: why the
    #: strategy chose it (judge scores, drift distance, stratum).
    context: Mapping[str, Any]
    stratum: str | None = None
    #: P(this unit was selected) under the queue's sampling design; None for strategies
    #: that are not probability samples.
    inclusion_probability: float | None = None
    #: The strategy's ranking score (distance to the threshold, disagreement, drift score).
    score: float | None = None
    status: str = OPEN
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    lease_expires_at: datetime | None = None
    done_by: str | None = None
    done_at: datetime | None = None
    feedback_id: str | None = None
    skip_reason: str | None = None

    @property
    def label_span_id(self) -> str | None:
        """The span a label is stored on: None when the item stands for its whole trace."""
        return None if self.context.get("label_on") == "trace" else self.span_id

    def claimed(self, now: datetime) -> bool:
        """True while an open item's lease holds."""
        return (
            self.status == OPEN
            and self.lease_expires_at is not None
            and self.lease_expires_at > now
        )


@dataclass(frozen=True)
class QueueProgress:
    """How far a queue is: items by state, and per labeller."""

    total: int
    labelled: int
    skipped: int
    claimed: int
    remaining: int
    #: labeller → {"labelled": n, "skipped": n, "claimed": n}
    by_labeller: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    #: When the first current claim expires (items come free again then).
    next_expiry: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """The API form."""
        return {
            "total": self.total,
            "labelled": self.labelled,
            "skipped": self.skipped,
            "claimed": self.claimed,
            "remaining": self.remaining,
            "done": self.labelled + self.skipped,
            "by_labeller": {k: dict(v) for k, v in self.by_labeller.items()},
            "next_expiry": _iso(self.next_expiry),
        }


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.isoformat()


def check_queue_name(name: str) -> str:
    """A queue name: letters, digits, ``_``, ``.``, ``-`` (it appears in URLs)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise QueueError(
            f"queue name {name!r} must start with a letter or digit and use only letters, "
            "digits, '_', '.' and '-' (at most 128), e.g. support-review"
        )
    return name


def check_labeller(who: str | None) -> str:
    """Who labels: a non-empty name without control characters (at most 128)."""
    if not isinstance(who, str) or not who.strip():
        raise QueueError("say who you are: --as NAME (or labeller in the request body)")
    if who != who.strip() or len(who) > 128 or any(ord(c) < 32 for c in who):
        raise QueueError(
            f"labeller {who!r} must be 1-128 characters on one line without surrounding spaces"
        )
    return who


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
            if not self.judge or not _LABEL_NAME.match(self.judge):
                raise QueueError(
                    f"{self.strategy} needs --judge NAME: the feedback name of the judge's "
                    "scores (source judge), e.g. --judge helpfulness"
                )
        elif self.judge is not None:
            raise QueueError("--judge is only for the low-confidence and disagreement strategies")
        if not (isinstance(self.threshold, int | float) and math.isfinite(self.threshold)):
            raise QueueError(f"threshold {self.threshold!r} must be a number, e.g. 0.5")
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
            whole_trace=spec.unit == "trace",
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


_SELECT = {
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


def build_queue(
    store: Store, spec: QueueSpec, now: datetime | None = None
) -> tuple[Queue, list[QueueItem]]:
    """Select the items of a new queue (nothing is stored)."""
    now = now or datetime.now(UTC)
    seed = spec.seed if spec.seed is not None else int.from_bytes(uuid.uuid4().bytes[:4], "big")
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
            QueueItem(
                project=spec.filters.project,
                queue=spec.name,
                item_id=len(items) + 1,
                trace_id=p.trace_id,
                span_id=p.span_id,
                input_text=_clip(span.input_text),
                output_text=_clip(span.output_text),
                input_messages=span.input_messages,
                output_messages=span.output_messages,
                context=_context(span, p.reason, p.whole_trace),
                stratum=p.stratum,
                inclusion_probability=p.probability,
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


# --- working on a queue ------------------------------------------------------------------------


def get_queue(store: Store, project: str, name: str) -> Queue:
    """A queue or :class:`QueueNotFoundError`."""
    queue = store.get_queue(project, name)
    if queue is None:
        raise QueueNotFoundError(
            f"no queue named {name!r} in project {project!r}; see `assay queues list`"
        )
    return queue


def get_item(store: Store, queue: Queue, item_id: int) -> QueueItem:
    """An item of a queue or :class:`QueueNotFoundError`."""
    item = store.get_queue_item(queue.project, queue.name, item_id)
    if item is None:
        raise QueueNotFoundError(
            f"queue {queue.name!r} has no item {item_id}; its items are numbered 1 to "
            f"{queue.item_count}"
        )
    return item


def claim_next(
    store: Store, project: str, name: str, labeller: str, now: datetime | None = None
) -> tuple[Queue, QueueItem | None]:
    """Claim the next unclaimed open item for ``labeller`` (or renew the one they hold)
    for the queue's lease; None when nothing is free."""
    check_labeller(labeller)
    queue = get_queue(store, project, name)
    now = now or datetime.now(UTC)
    until = now + timedelta(seconds=queue.lease_seconds)
    return queue, store.claim_queue_item(project, name, labeller, now, until)


def _busy(item: QueueItem, labeller: str, now: datetime) -> None:
    if item.status != OPEN:
        by = f" by {item.done_by}" if item.done_by else ""
        at = f" at {item.done_at:%Y-%m-%d %H:%M} UTC" if item.done_at else ""
        raise QueueConflictError(
            f"item {item.item_id} of queue {item.queue!r} was already {item.status}{by}{at}; "
            "take another with `assay queues next`"
        )
    if item.claimed(now) and item.claimed_by != labeller:
        assert item.lease_expires_at is not None
        raise QueueConflictError(
            f"item {item.item_id} of queue {item.queue!r} is claimed by {item.claimed_by} "
            f"until {item.lease_expires_at:%H:%M:%S} UTC; take another with "
            "`assay queues next`"
        )


def feedback_id(queue: Queue, item_id: int) -> str:
    """The feedback id of an item's label (stable, so a resent label is not stored twice)."""
    return f"queue-{queue.queue_id}-{item_id}"


def label_item(
    store: Store,
    project: str,
    name: str,
    item_id: int,
    labeller: str,
    value: Any,
    comment: str | None = None,
    now: datetime | None = None,
) -> tuple[QueueItem, Feedback]:
    """Store ``labeller``'s label of an item as reviewer feedback and mark it labelled.
    Sending the same label again answers the stored one; a different one is a conflict."""
    check_labeller(labeller)
    now = now or datetime.now(UTC)
    queue = get_queue(store, project, name)
    item = get_item(store, queue, item_id)
    parsed = queue.label.parse(value)
    fid = feedback_id(queue, item_id)
    if item.status == LABELLED and item.done_by == labeller:
        stored = store.list_feedback(project, ids=[fid], limit=1)
        if stored and _same_value(stored[0], parsed) and stored[0].comment == (comment or None):
            return item, stored[0]
    _busy(item, labeller, now)
    try:
        fb = make_feedback(
            project,
            item.trace_id,
            queue.label.name,
            parsed,
            span_id=item.label_span_id,
            comment=comment or None,
            source="reviewer",
            author=labeller,
            id=fid,
            created_at=now,
            metadata={
                "queue": queue.name,
                "queue_id": queue.queue_id,
                "item": item_id,
                "strategy": queue.strategy,
                "inclusion_probability": item.inclusion_probability,
                "stratum": item.stratum,
            },
        )
    except FeedbackError as exc:
        raise QueueError(str(exc)) from None
    if not store.finish_queue_item(project, name, item_id, labeller, LABELLED, now, feedback=fb):
        _busy(get_item(store, queue, item_id), labeller, now)
        raise QueueConflictError(f"item {item_id} changed while labelling; try again")
    return get_item(store, queue, item_id), fb


def _same_value(f: Feedback, value: bool | int | float | str) -> bool:
    if isinstance(value, bool):
        return f.kind == "boolean" and f.number == (1.0 if value else 0.0)
    if isinstance(value, str):
        return f.category == value
    return f.number == float(value)


def skip_item(
    store: Store,
    project: str,
    name: str,
    item_id: int,
    labeller: str,
    reason: str | None = None,
    now: datetime | None = None,
) -> QueueItem:
    """Mark an item skipped by ``labeller`` (it is then done: nobody is offered it again)."""
    check_labeller(labeller)
    if reason is not None and len(reason) > 2_000:
        raise QueueError("reason is longer than 2,000 characters")
    now = now or datetime.now(UTC)
    queue = get_queue(store, project, name)
    item = get_item(store, queue, item_id)
    if item.status == SKIPPED and item.done_by == labeller:
        return item
    _busy(item, labeller, now)
    if not store.finish_queue_item(
        project, name, item_id, labeller, SKIPPED, now, reason=reason or None
    ):
        _busy(get_item(store, queue, item_id), labeller, now)
        raise QueueConflictError(f"item {item_id} changed while skipping; try again")
    return get_item(store, queue, item_id)


def release_item(store: Store, project: str, name: str, item_id: int, labeller: str) -> QueueItem:
    """Give back a claim before its lease ends (the item is offered to the next caller)."""
    check_labeller(labeller)
    queue = get_queue(store, project, name)
    item = get_item(store, queue, item_id)
    if item.status == OPEN and item.claimed_by not in (None, labeller):
        raise QueueConflictError(
            f"item {item_id} is claimed by {item.claimed_by}, not {labeller}; only the holder "
            "can release it"
        )
    store.release_queue_item(project, name, item_id, labeller)
    return get_item(store, queue, item_id)


# --- JSON forms ----------------------------------------------------------------------------------


def queue_json(queue: Queue, progress: QueueProgress | None = None) -> dict[str, Any]:
    """The API form of a queue (with its progress when given)."""
    out: dict[str, Any] = {
        "name": queue.name,
        "project": queue.project,
        "queue_id": queue.queue_id,
        "strategy": queue.strategy,
        "params": dict(queue.params),
        "seed": queue.seed,
        "probability_sample": queue.probability_sample,
        "label": queue.label.to_json(),
        "instructions": queue.instructions,
        "size": queue.size,
        "items": queue.item_count,
        "population": queue.population,
        "lease_seconds": queue.lease_seconds,
        "created_at": queue.created_at.isoformat(),
        "created_by": queue.created_by,
        "notes": list(queue.notes),
    }
    if progress is not None:
        out["progress"] = progress.to_json()
    return out


def item_json(item: QueueItem, now: datetime | None = None) -> dict[str, Any]:
    """The API form of an item: everything a labelling page shows."""
    now = now or datetime.now(UTC)
    return {
        "id": item.item_id,
        "queue": item.queue,
        "trace_id": item.trace_id,
        "span_id": item.span_id,
        "label_on": "trace" if item.label_span_id is None else "span",
        "status": item.status,
        "claimed": item.claimed(now),
        "claimed_by": item.claimed_by if item.claimed(now) else None,
        "lease_expires_at": _iso(item.lease_expires_at) if item.claimed(now) else None,
        "done_by": item.done_by,
        "done_at": _iso(item.done_at),
        "feedback_id": item.feedback_id,
        "skip_reason": item.skip_reason,
        "stratum": item.stratum,
        "inclusion_probability": item.inclusion_probability,
        "score": item.score,
        "input": {"text": item.input_text, "messages": item.input_messages},
        "output": {"text": item.output_text, "messages": item.output_messages},
        "context": dict(item.context),
    }


__all__ = [
    "ALLOCATIONS",
    "LABEL_KINDS",
    "STRATEGIES",
    "LabelSpec",
    "Queue",
    "QueueConflictError",
    "QueueError",
    "QueueItem",
    "QueueNotFoundError",
    "QueueProgress",
    "QueueSpec",
    "allocate",
    "build_queue",
    "claim_next",
    "create_queue",
    "disagreement",
    "item_json",
    "label_item",
    "label_spec",
    "latest_drift_report",
    "queue_json",
    "release_item",
    "skip_item",
]
