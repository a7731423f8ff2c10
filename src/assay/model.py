"""Values that flow through assay: frozen dataclasses, no behaviour beyond conversion."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: Column order of a span row; the store schema and the Arrow batches follow it.
SPAN_COLUMNS: tuple[str, ...] = (
    "project",
    "trace_id",
    "span_id",
    "parent_span_id",
    "service",
    "name",
    "kind",
    "otel_kind",
    "start_time",
    "end_time",
    "duration_ms",
    "status",
    "status_message",
    "operation",
    "provider",
    "model",
    "request_model",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "total_tokens",
    "cost",
    "input_text",
    "output_text",
    "input_messages",
    "output_messages",
    "finish_reason",
    "session_id",
    "user_id",
    "release",
    "route",
    "environment",
    "scope",
    "attributes",
    "resource_attributes",
    "events",
)


@dataclass(frozen=True, slots=True)
class Span:
    """One span in assay's schema, whatever convention (GenAI, OpenInference) it came in."""

    project: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    service: str | None
    name: str
    kind: str
    otel_kind: str
    start_time: datetime
    end_time: datetime
    duration_ms: float
    status: str
    status_message: str | None = None
    operation: str | None = None
    provider: str | None = None
    model: str | None = None
    request_model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    total_tokens: int | None = None
    cost: float | None = None
    input_text: str | None = None
    output_text: str | None = None
    input_messages: list[dict[str, Any]] | None = None
    output_messages: list[dict[str, Any]] | None = None
    finish_reason: str | None = None
    session_id: str | None = None
    user_id: str | None = None
    release: str | None = None
    route: str | None = None
    environment: str | None = None
    scope: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    resource_attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Project:
    """A tenant: every span, key and (later) golden set belongs to exactly one."""

    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key's public record; the secret itself is never stored."""

    key_id: str
    project: str
    prefix: str
    created_at: datetime
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """One trace in a listing: its root, size, outcome, tokens and cost."""

    project: str
    trace_id: str
    name: str | None
    service: str | None
    start_time: datetime
    duration_ms: float
    span_count: int
    error_count: int
    input_tokens: int | None
    output_tokens: int | None
    cost: float | None
    models: list[str]


@dataclass(frozen=True, slots=True)
class Aggregate:
    """Counts, latency percentiles, tokens and cost for one (time bucket, group)."""

    bucket: datetime | None
    group: str | None
    calls: int
    errors: int
    error_rate: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    input_tokens: int
    output_tokens: int
    cost: float
    unpriced_calls: int


@dataclass(frozen=True, slots=True)
class AggregateSets:
    """One scan's aggregates at every level: per (bucket, group), per bucket, per group and
    over everything (what a dashboard overview shows at once)."""

    by_bucket_group: list[Aggregate]
    by_bucket: list[Aggregate]
    by_group: list[Aggregate]
    total: Aggregate | None


@dataclass(frozen=True, slots=True)
class UnpricedModel:
    """A model seen in spans that the price table does not know."""

    model: str
    provider: str | None
    spans: int
    input_tokens: int
    output_tokens: int
    last_seen: datetime


# --- Evaluation values (issue 3) -------------------------------------------------------

#: A case input: plain text, or chat messages ``[{"role": ..., "content": ...}, ...]``.
CaseInput = str | list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Case:
    """One golden case: an input, an optional expected answer, and per-case options.

    ``options`` maps a scorer name to keyword overrides for that scorer on this case
    only (for example ``{"contains": {"value": "refund"}}``).
    """

    id: str
    input: CaseInput
    expected: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Output:
    """What a target answered for one trial, with what it cost to get it."""

    text: str
    #: The structured answer when there is one (parsed JSON, tool calls, a callable's value).
    data: Any = None
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: float | None = None
    latency_ms: float = 0.0
    trace_id: str | None = None


@dataclass(frozen=True, slots=True)
class Score:
    """One scorer's verdict on one output.

    ``value`` is what statistics average: 1.0/0.0 for pass/fail scorers, a number in the
    scorer's own range otherwise. ``passed`` is set when the scorer has a pass threshold.
    """

    value: float
    passed: bool | None = None
    label: str | None = None
    explanation: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ScorerSpec:
    """How to rebuild a scorer: its registry name and the arguments it was built with."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)
    #: The key its scores are reported under (defaults to ``name``; two configurations
    #: of one scorer need different keys, e.g. ``judge_tone`` and ``judge_facts``).
    key: str | None = None

    @property
    def label(self) -> str:
        """The name scores are reported under."""
        return self.key or self.name


@dataclass(frozen=True, slots=True)
class GoldenVersion:
    """One stored version of a golden set (its cases are fetched separately)."""

    project: str
    name: str
    #: Full sha256 of the canonical cases; shown shortened like a git hash.
    version: str
    description: str | None
    case_count: int
    created_at: datetime
    source: str | None = None

    @property
    def short(self) -> str:
        """The version as users type it."""
        return self.version[:12]


@dataclass(frozen=True, slots=True)
class EvalRun:
    """An evaluation run: a golden-set version × a target × scorers × K trials."""

    project: str
    run_id: str
    golden: str
    golden_version: str
    target: dict[str, Any]
    scorers: list[ScorerSpec]
    trials: int
    status: str  # running | finished | interrupted | failed
    created_at: datetime
    finished_at: datetime | None = None
    name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Trial:
    """One attempt of one case in a run: the output (or the error) and its scores.

    ``scores`` holds successful scores by scorer label; ``score_errors`` the scorers that
    failed on this output (a failed judge is not a zero).
    """

    run_id: str
    case_id: str
    trial: int
    output: Output | None
    error: str | None
    scores: dict[str, Score]
    started_at: datetime
    finished_at: datetime
    score_errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Feedback:
    """A score, label or comment on a trace (or one span of it), with who gave it.

    ``kind`` says which value column holds it: ``number`` (a score), ``boolean`` (1.0 or
    0.0 in ``number``), ``category`` (``category``) or ``comment`` (only ``comment``).
    ``feedback_id`` is the client's idempotency key.
    """

    project: str
    feedback_id: str
    trace_id: str
    span_id: str | None
    name: str
    kind: str
    number: float | None
    category: str | None
    comment: str | None
    source: str
    author: str | None
    created_at: datetime
    metadata: dict[str, Any] = field(default_factory=dict)
