"""Online evaluation: rules that score a sample of new production spans in the background.

A rule says which spans (filters), what share of them (a deterministic hash of the span's
ids against the rate, so replicas and resent batches agree), which scorer (any scorer the
registry builds, LLM judges included) and how much it may spend per period. The
:class:`OnlineWorker` runs inside ``assay serve``: it leases each enabled rule in the
store, reads spans committed after the rule's watermark, scores the sampled ones with
bounded concurrency, retries failures with backoff, stops at the budget, and stores each
score as feedback (``source=judge``) with an id made of (rule, trace, span) so a rescore
is idempotent. This module holds the rules, the sampler and the conversions; the worker
is :mod:`assay.online_worker`. See docs/online.md.

Why polling and not a hook in the ingest path: the writer already commits spans with an
``ingested_at`` time; reading them back after the watermark costs ingest nothing (no
queue to fill, nothing dropped under load), a backlog is just a watermark that lags, and
the watermark in the store survives restarts and moves between servers with the lease.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from assay.model import Case, Feedback, Output, Score, ScorerSpec, Span
from assay.query import QueryError, SpanFilter, parse_time

#: Budget periods (UTC calendar: a week starts on Monday).
PERIODS = ("hour", "day", "week", "month")
#: Span columns a rule filters on; ``attr.KEY`` filters on an attribute.
FILTER_FIELDS = (
    "model",
    "provider",
    "service",
    "route",
    "release",
    "environment",
    "kind",
    "name",
    "status",
    "session_id",
    "user_id",
)
MAX_CONCURRENCY = 256
MAX_RETRIES = 10
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_SCORE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")
_HASH_SPACE = 16**15  # the first 15 hex digits of an md5: exact in a float and a BIGINT
#: Score metadata not copied into feedback (the judge's raw reply repeats its reasoning).
_DROPPED_METADATA = frozenset({"raw"})


class OnlineError(ValueError):
    """A rule or request that cannot be used; the message names the field and the fix."""


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, order=True)
class Mark:
    """A position in the order spans were committed: (ingested_at, trace_id, span_id)."""

    at: datetime
    trace_id: str = ""
    span_id: str = ""


@dataclass(frozen=True)
class RuleProgress:
    """What a rule has done: its watermark (every span up to it is handled), counters,
    the spend of its current budget period, and who holds its lease."""

    watermark: Mark
    processed: int = 0
    sampled: int = 0
    scored: int = 0
    errors: int = 0
    skipped: int = 0
    unpriced: int = 0
    spend_period: str | None = None
    spend_usd: float = 0.0
    spend_total_usd: float = 0.0
    last_scored_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None


@dataclass(frozen=True)
class OnlineRule:
    """A saved rule: which spans, what share, which scorer, within what budget."""

    project: str
    name: str
    scorer: ScorerSpec
    score_name: str
    sample_rate: float
    filters: Mapping[str, str]
    budget_usd: float | None
    budget_period: str
    concurrency: int
    retries: int
    enabled: bool
    created_at: datetime
    updated_at: datetime
    progress: RuleProgress

    def span_filter(self) -> SpanFilter:
        """The rule's filters as a query filter."""
        return to_span_filter(self.project, self.filters)

    def spend(self, now: datetime) -> float:
        """What the rule has spent in the budget period containing ``now``."""
        current = period_key(self.budget_period, now)
        return self.progress.spend_usd if self.progress.spend_period == current else 0.0


@dataclass(frozen=True)
class ProgressUpdate:
    """One flush of a worker: scores to store, counter increments, spend, watermark."""

    at: datetime
    feedback: tuple[Feedback, ...] = ()
    scored: int = 0
    errors: int = 0
    skipped: int = 0
    unpriced: int = 0
    spend_usd: float = 0.0
    #: Budget period the spend belongs to (the stored spend restarts when it changes).
    period: str = ""
    #: The new watermark with the spans it covers; None leaves it (and these) unchanged.
    watermark: Mark | None = None
    processed: int = 0
    sampled: int = 0
    last_error: str | None = None


# --------------------------------------------------------------------------- parsing


def check_rule_name(name: Any) -> str:
    """A rule name: letters, digits, ``_``, ``.``, ``-`` (it appears in URLs and ids)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise OnlineError(
            f"rule name {name!r} must start with a letter or digit and use only letters, "
            "digits, '_', '.' and '-' (at most 128), e.g. helpfulness"
        )
    return name


def check_score_name(name: Any) -> str:
    """The feedback name scores are stored under."""
    if not isinstance(name, str) or not _SCORE_NAME.match(name):
        raise OnlineError(
            f"score_name {name!r} must be 1-128 letters, digits, '_', '.', ':' or '-' "
            "(e.g. helpfulness)"
        )
    return name


def check_sample(rate: Any) -> float:
    """A sampling rate in (0, 1]."""
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate):
        raise OnlineError(f"sample {rate!r} must be a number in (0, 1], e.g. 0.05 for 5%")
    if not 0 < rate <= 1:
        raise OnlineError(f"sample {rate!r} must be in (0, 1], e.g. 0.05 for 5% of the spans")
    return float(rate)


def parse_filters(
    items: Iterable[str] | Mapping[str, str], all_kinds: bool = False
) -> dict[str, str]:
    """Filters from ``key=value`` strings (or a mapping): span columns of
    :data:`FILTER_FIELDS` and ``attr.KEY``. Without a ``kind`` filter a rule scores LLM
    calls only (``kind=llm``) unless ``all_kinds``."""
    pairs: list[tuple[str, str]] = []
    if isinstance(items, Mapping):
        pairs = [(str(k), v) for k, v in items.items()]
    else:
        for item in items:
            key, sep, value = str(item).partition("=")
            if not sep:
                raise OnlineError(
                    f"filter {item!r} must be key=value, e.g. route=support or attr.tenant=acme"
                )
            pairs.append((key.strip(), value.strip()))
    out: dict[str, str] = {}
    for key, value in pairs:
        if not isinstance(value, str) or not value:
            raise OnlineError(f"filter {key!r} needs a value, e.g. {key}=support")
        attr = key.removeprefix("attr.").removeprefix("attributes.")
        if attr != key:
            if not attr:
                raise OnlineError("filter 'attr.' needs an attribute name, e.g. attr.tenant=acme")
            key = "attr." + attr
        elif key not in FILTER_FIELDS:
            raise OnlineError(
                f"filter {key!r} is not a span field; use one of {', '.join(FILTER_FIELDS)} "
                "or attr.KEY for an attribute"
            )
        if key in out and out[key] != value:
            raise OnlineError(f"filter {key!r} is given twice ({out[key]!r} and {value!r})")
        out[key] = value
    if "kind" not in out and not all_kinds:
        out["kind"] = "llm"
    to_span_filter("-", out)  # the query layer's own checks (status values …)
    return out


def to_span_filter(project: str, filters: Mapping[str, str]) -> SpanFilter:
    """A rule's filters as a :class:`~assay.query.SpanFilter`."""
    columns = {k: v for k, v in filters.items() if not k.startswith("attr.")}
    attributes = {k[5:]: v for k, v in filters.items() if k.startswith("attr.")}
    try:
        return SpanFilter(project=project, attributes=attributes, **columns)  # type: ignore[arg-type]
    except QueryError as exc:
        raise OnlineError(f"filter: {exc}") from None
    except TypeError:
        raise OnlineError(f"filters {dict(filters)!r} name an unknown field") from None


def parse_budget(text: str | float) -> tuple[float, str]:
    """``5/day`` → (5.0, "day"); a bare amount is per day. Periods: hour, day, week, month."""
    raw = str(text).strip().removeprefix("$")
    amount_text, _, period = raw.partition("/")
    period = period.strip().lower() or "day"
    try:
        amount = float(amount_text)
    except ValueError:
        amount = math.nan
    if not math.isfinite(amount) or amount <= 0:
        raise OnlineError(
            f"budget {text!r} must be a positive amount of USD per period, e.g. 5/day or 20/week"
        )
    if period not in PERIODS:
        raise OnlineError(f"budget {text!r}: period {period!r} must be one of {', '.join(PERIODS)}")
    return amount, period


def check_period(period: Any) -> str:
    """A budget period name."""
    if period not in PERIODS:
        raise OnlineError(f"budget_period {period!r} must be one of {', '.join(PERIODS)}")
    return str(period)


def period_key(period: str, now: datetime) -> str:
    """The UTC calendar period containing ``now``: ``2026-03-01T13``, ``2026-03-01``,
    ``2026-W09`` or ``2026-03``."""
    now = now.astimezone(UTC)
    if period == "hour":
        return now.strftime("%Y-%m-%dT%H")
    if period == "week":
        year, week, _ = now.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return now.strftime("%Y-%m")
    return now.strftime("%Y-%m-%d")


def period_end(period: str, now: datetime) -> datetime:
    """When the period containing ``now`` ends (the budget starts again)."""
    now = now.astimezone(UTC)
    if period == "hour":
        return now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day + timedelta(days=1)
    if period == "week":
        return day + timedelta(days=7 - day.weekday())
    if day.month == 12:
        return day.replace(year=day.year + 1, month=1, day=1)
    return day.replace(month=day.month + 1, day=1)


def judge_from_yaml(text: str, source: str = "rubric") -> dict[str, Any]:
    """A judge scorer config from a rubric file (see docs/online.md): a mapping with
    ``rubric`` (or a ``criteria`` list) and any option of the ``judge`` scorer."""
    from assay.scorers.judge import judge

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise OnlineError(f"{source}:{where} not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise OnlineError(
            f"{source}: expected a mapping with `rubric: <what a good answer does>` and judge "
            "options (mode, scale, threshold, endpoint …)"
        )
    data = dict(data)
    version = data.pop("version", 1)
    if version != 1:
        raise OnlineError(f"{source}: version {version!r} is not supported; use version: 1")
    criteria = data.pop("criteria", None)
    if criteria is not None:
        if "rubric" in data:
            raise OnlineError(f"{source}: give rubric or criteria, not both")
        if not (
            isinstance(criteria, list) and criteria and all(isinstance(c, str) for c in criteria)
        ):
            raise OnlineError(f"{source}: criteria must be a non-empty list of strings")
        data["rubric"] = "\n".join(f"- {c}" for c in criteria)
    if "rubric_file" in data:
        raise OnlineError(
            f"{source}: rubric_file is not allowed here; write the rubric text in this file "
            "(the server may not see your files)"
        )
    if not isinstance(data.get("rubric"), str) or not data["rubric"].strip():
        raise OnlineError(f"{source}: `rubric:` is missing; write what a good answer does")
    from assay.scorers.base import did_you_mean

    options = [p for p in inspect.signature(judge).parameters if p != "rubric_file"]
    for key in data:
        if key not in options:
            raise OnlineError(
                f"{source}: {key!r} is not a judge option{did_you_mean(str(key), options)}; "
                f"use {', '.join(['version', 'criteria', *options])}"
            )
    return {"name": "judge", **data}


def check_scorer(config: Any) -> ScorerSpec:
    """Build the scorer a rule names (so a bad config fails now, with its reason) and
    return its spec as stored."""
    from assay.scorers.base import ScorerError
    from assay.scorers.registry import build, to_spec

    try:
        spec = to_spec(config)
        made = build(spec)
    except ScorerError as exc:
        raise OnlineError(f"scorer: {exc}") from None
    if spec.name == "pairwise_judge":
        raise OnlineError(
            "scorer: pairwise_judge compares two outputs and cannot score one span; use judge"
        )
    del made
    return spec


def new_rule(
    project: str,
    name: str,
    scorer: ScorerSpec,
    *,
    sample: float = 1.0,
    filters: Mapping[str, str] | None = None,
    score_name: str | None = None,
    budget_usd: float | None = None,
    budget_period: str = "day",
    concurrency: int = 8,
    retries: int = 2,
    enabled: bool = True,
    since: datetime | None = None,
    now: datetime | None = None,
) -> OnlineRule:
    """A validated rule whose watermark starts at ``since`` (default: now, so only spans
    ingested from now on are scored). ``filters`` are taken as already parsed."""
    now = now or datetime.now(UTC)
    check_rule_name(name)
    if budget_usd is not None and (
        isinstance(budget_usd, bool) or not math.isfinite(budget_usd) or budget_usd <= 0
    ):
        raise OnlineError(f"budget_usd {budget_usd!r} must be a positive amount, e.g. 5")
    if isinstance(concurrency, bool) or not 1 <= concurrency <= MAX_CONCURRENCY:
        raise OnlineError(f"concurrency {concurrency!r} must be 1..{MAX_CONCURRENCY}")
    if isinstance(retries, bool) or not 0 <= retries <= MAX_RETRIES:
        raise OnlineError(f"retries {retries!r} must be 0..{MAX_RETRIES}")
    flt = dict(filters) if filters is not None else parse_filters(())
    to_span_filter(project, flt)
    return OnlineRule(
        project=project,
        name=name,
        scorer=scorer,
        score_name=check_score_name(score_name or name),
        sample_rate=check_sample(sample),
        filters=flt,
        budget_usd=None if budget_usd is None else float(budget_usd),
        budget_period=check_period(budget_period),
        concurrency=concurrency,
        retries=retries,
        enabled=enabled,
        created_at=now,
        updated_at=now,
        progress=RuleProgress(watermark=Mark(since or now)),
    )


def parse_since(text: str | None, now: datetime) -> datetime | None:
    """Where a new rule starts reading: a time or a duration ago (``1h``); None = now."""
    try:
        return parse_time(text, now, "since")
    except QueryError as exc:
        raise OnlineError(str(exc)) from None


# --------------------------------------------------------------------------- sampling


def sample_point(trace_id: str, span_id: str) -> float:
    """A span's fixed point in [0, 1): the first 15 hex digits of md5("trace:span")."""
    digest = hashlib.md5(f"{trace_id}:{span_id}".encode(), usedforsecurity=False).hexdigest()
    return int(digest[:15], 16) / _HASH_SPACE


def is_sampled(trace_id: str, span_id: str, rate: float) -> bool:
    """Whether a rule with this rate scores this span. The same answer on every server and
    for every resend; a span sampled at a rate is sampled at every higher rate."""
    return rate >= 1.0 or sample_point(trace_id, span_id) < rate


def feedback_id(rule: str, trace_id: str, span_id: str) -> str:
    """The id of a rule's score on a span: storing it again stores nothing new."""
    return f"online:{rule}:{trace_id}:{span_id}"


def span_case(span: Span) -> Case:
    """A span as the case a scorer reads: its messages (or input text) as the input."""
    data: Any = span.input_messages or span.input_text or ""
    return Case(
        id=f"{span.trace_id}:{span.span_id}",
        input=data,
        metadata={
            "trace_id": span.trace_id,
            "span_id": span.span_id,
            "name": span.name,
            "model": span.model,
            "route": span.route,
            "release": span.release,
        },
    )


def span_output(span: Span) -> Output:
    """A span's answer: its output text, else the last output message's content."""
    text = span.output_text
    if not text and span.output_messages:
        content = span.output_messages[-1].get("content")
        text = content if isinstance(content, str) else None
    return Output(
        text=text or "",
        data=span.output_messages,
        model=span.model,
        input_tokens=span.input_tokens,
        output_tokens=span.output_tokens,
        cost=span.cost,
        latency_ms=span.duration_ms,
        trace_id=span.trace_id,
    )


def score_feedback(
    rule: OnlineRule, span: Span, score: Score, attempts: int, now: datetime
) -> Feedback:
    """A score as the feedback record the rule stores (source judge, author the rule)."""
    meta = {k: v for k, v in score.metadata.items() if k not in _DROPPED_METADATA}
    meta.update(
        rule=rule.name,
        scorer=rule.scorer.label,
        passed=score.passed,
        label=score.label,
        rule_attempts=attempts,
    )
    comment = score.explanation[:10_000] if score.explanation else None
    value = float(score.value)
    return Feedback(
        project=rule.project,
        feedback_id=feedback_id(rule.name, span.trace_id, span.span_id),
        trace_id=span.trace_id,
        span_id=span.span_id,
        name=rule.score_name,
        kind="number",
        number=value if math.isfinite(value) else None,
        category=None,
        comment=comment,
        source="judge",
        author=rule.name,
        created_at=now,
        metadata=meta,
    )


# --------------------------------------------------------------------------- JSON


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.isoformat()


def rule_json(
    rule: OnlineRule,
    now: datetime | None = None,
    live: Mapping[str, Any] | None = None,
    backlog: tuple[int, datetime | None] | None = None,
) -> dict[str, Any]:
    """A rule as the API returns it: its definition, then ``status``."""
    now = now or datetime.now(UTC)
    p = rule.progress
    spend = rule.spend(now)
    over = rule.budget_usd is not None and spend >= rule.budget_usd
    held = p.lease_owner is not None and p.lease_expires_at is not None and p.lease_expires_at > now
    state = (
        "paused"
        if not rule.enabled
        else "over budget"
        if over
        else "running"
        if held
        else "waiting"
    )
    status: dict[str, Any] = {
        "state": state,
        "processed": p.processed,
        "sampled": p.sampled,
        "scored": p.scored,
        "errors": p.errors,
        "skipped_budget": p.skipped,
        "unpriced": p.unpriced,
        "spend_usd": spend,
        "spend_total_usd": p.spend_total_usd,
        "period": period_key(rule.budget_period, now),
        "budget_resets_at": _iso(period_end(rule.budget_period, now)),
        "watermark": _iso(p.watermark.at),
        "last_scored_at": _iso(p.last_scored_at),
        "last_error": p.last_error,
        "last_error_at": _iso(p.last_error_at),
        "worker": p.lease_owner if held else None,
        "queue_depth": int(live.get("queue_depth", 0)) if live else 0,
        "in_flight": int(live.get("in_flight", 0)) if live else 0,
    }
    if backlog is not None:
        count, oldest = backlog
        status["backlog_spans"] = count
        status["lag_seconds"] = 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())
    return {
        "project": rule.project,
        "name": rule.name,
        "scorer": {"name": rule.scorer.name, **rule.scorer.args},
        "score_name": rule.score_name,
        "sample": rule.sample_rate,
        "filters": dict(rule.filters),
        "budget_usd": rule.budget_usd,
        "budget_period": rule.budget_period,
        "concurrency": rule.concurrency,
        "retries": rule.retries,
        "enabled": rule.enabled,
        "created_at": _iso(rule.created_at),
        "updated_at": _iso(rule.updated_at),
        "status": status,
    }


__all__ = [
    "FILTER_FIELDS",
    "PERIODS",
    "Mark",
    "OnlineError",
    "OnlineRule",
    "ProgressUpdate",
    "RuleProgress",
    "check_rule_name",
    "check_sample",
    "check_scorer",
    "feedback_id",
    "is_sampled",
    "judge_from_yaml",
    "new_rule",
    "parse_budget",
    "parse_filters",
    "period_end",
    "period_key",
    "rule_json",
    "sample_point",
    "score_feedback",
    "span_case",
    "span_output",
]
