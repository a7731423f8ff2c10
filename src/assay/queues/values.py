"""Annotation-queue values: the label a queue collects, the queue, its items and progress,
the errors, and their JSON forms. Imports nothing heavy (the store builds these)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from assay.query import GROUP_FIELDS

RANDOM = "random"
STRATIFIED = "stratified"
DRIFT = "drift"
LOW_CONFIDENCE = "low-confidence"
DISAGREEMENT = "disagreement"
#: Items chosen by a person, one trace at a time (``assay queues add``, the trace page):
#: no inclusion probability, so estimates never treat its labels as a random sample.
HAND_PICKED = "hand-picked"
STRATEGIES: tuple[str, ...] = (
    RANDOM,
    STRATIFIED,
    DRIFT,
    LOW_CONFIDENCE,
    DISAGREEMENT,
    HAND_PICKED,
)
#: Strategies whose items are a probability sample (each has an inclusion probability).
PROBABILITY_SAMPLES: tuple[str, ...] = (RANDOM, STRATIFIED)
#: Strategies whose queues take items after creation (``add_items``). The others hold
#: exactly what their rule selected, which their parameters and population describe.
ACCEPTS_ITEMS: tuple[str, ...] = (HAND_PICKED,)
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
#: Characters of a span's input/output text kept in an item's snapshot.
SNAPSHOT_CHARS = 100_000
#: How the random and stratified strategies draw (stored in a queue's params).
SAMPLING_METHOD = (
    "simple random sample without replacement: the units with the smallest "
    "hash('SEED:TRACE_ID[:SPAN_ID]') (per stratum when stratified)"
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
#: A feedback (label or judge) name.
LABEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")
_SCALE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:-|\.\.)\s*(-?\d+(?:\.\d+)?)\s*$")
_TRUE = ("true", "yes", "pass", "1", "up", "y")
_FALSE = ("false", "no", "fail", "0", "down", "n")


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
    if not isinstance(name, str) or not LABEL_NAME.match(name):
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

    @property
    def accepts_items(self) -> bool:
        """True when items may be added after creation (hand-picked queues)."""
        return self.strategy in ACCEPTS_ITEMS


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
        "accepts_items": queue.accepts_items,
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
