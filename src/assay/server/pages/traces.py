"""Traces: a filterable, searchable list with cursor paging, and one trace as a waterfall
with its conversation, tool calls, LLM calls, attributes, scores and feedback.

Actions on a trace (POST with CSRF, then a redirect): add feedback, add the trace to a
hand-picked annotation queue (an existing one, or a new one), promote it to a golden set.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from assay.feedback import FeedbackError, make_feedback, same_content
from assay.model import Feedback, Span, TraceSummary
from assay.pricing import PriceTable
from assay.promotion import (
    MISSING,
    PromotionConflictError,
    PromotionError,
    PromotionNotFoundError,
    case_input,
    promote,
)
from assay.query import QueryError, SpanFilter, parse_time
from assay.queues import (
    HAND_PICKED,
    MAX_SIZE,
    Queue,
    QueueConflictError,
    QueueError,
    QueueNotFoundError,
    QueueSpec,
    add_items,
    create_with_items,
    label_spec,
)
from assay.server.pages import PageContext, PageError, check_csrf, context, query, redirect, render
from assay.store import StoreError

router = APIRouter(include_in_schema=False)

#: Time-range choices of the list: name -> how far back (None: all time).
RANGES: dict[str, timedelta | None] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
    "all": None,
}
DEFAULT_RANGE = "7d"
PAGE_SIZES = (25, 50, 100, 200)
#: Filters that match a span column exactly (the query API's names).
EXACT = (
    "model",
    "provider",
    "service",
    "name",
    "kind",
    "route",
    "release",
    "environment",
    "session_id",
    "user_id",
)
#: Filters offered with suggestions (values seen in the last day: a bounded scan).
SUGGESTED = ("model", "service", "route", "release")
STATUSES = ("ok", "error", "unset")
#: How long after its trace's first span a root span may start and still be looked up.
ROOT_LAG = timedelta(minutes=10)
#: Newer-page cursors kept in the URL (the store pages forward only).
MAX_BACK = 40
#: Spans whose details are rendered into the page (larger traces load one per click).
MAX_DETAILS = 200
#: Recorded as the reason of every item added from this page.
PICKED_HERE = "picked on the trace page"
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_SPAN_ID = re.compile(r"^[0-9a-f]{16}$")
_NUMBER = re.compile(r"^\s*-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\s*$")
_GOLDEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
KNOWN_ROLES = ("system", "user", "assistant", "tool", "developer")


# --- the list ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """The list's filters as typed (for the form and links) and as a SpanFilter."""

    values: dict[str, str]
    flt: SpanFilter
    range_: str


def _number(params: Mapping[str, str], key: str, unit: str, example: str) -> float | None:
    raw = (params.get(key) or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise PageError(
            400, f"{key} {raw!r} is not a number; give {unit}, e.g. {key}={example}"
        ) from None
    if not value >= 0 or value == float("inf"):
        raise PageError(400, f"{key} {raw!r} must be a number >= 0, e.g. {key}={example}")
    return value


def parse_filters(project: str, params: Mapping[str, str], now: datetime) -> Filters:
    """The list's filters from a query string; a bad value is a 400 naming the fix.

    Names and meanings are the query API's (``GET /api/v1/traces``); ``range`` picks a
    preset window unless ``start``/``end`` are given."""
    values: dict[str, str] = {}
    for key in (*EXACT, "q", "start", "end", "min_duration_ms", "min_cost", "status"):
        raw = (params.get(key) or "").strip()
        if raw:
            values[key] = raw
    if len(values.get("q", "")) > 500:
        raise PageError(400, "q is longer than 500 characters; search for a shorter phrase")
    status = values.get("status")
    if status is not None and status not in STATUSES:
        raise PageError(400, f"status {status!r} is not one of {', '.join(STATUSES)}")
    range_ = (params.get("range") or "").strip() or DEFAULT_RANGE
    if range_ not in RANGES and range_ != "custom":
        raise PageError(400, f"range {range_!r} is not one of {', '.join(RANGES)}")
    try:
        start = parse_time(values.get("start"), now, "start")
        end = parse_time(values.get("end"), now, "end")
        if start is None and end is None and range_ != "custom":
            back = RANGES[range_]
            start = None if back is None else now - back
        else:
            range_ = "custom"
        flt = SpanFilter(
            project=project,
            start=start,
            end=end,
            status=status,
            min_duration_ms=_number(params, "min_duration_ms", "milliseconds", "500"),
            min_cost=_number(params, "min_cost", "US dollars", "0.01"),
            text=values.get("q"),
            model=values.get("model"),
            provider=values.get("provider"),
            service=values.get("service"),
            name=values.get("name"),
            kind=values.get("kind"),
            route=values.get("route"),
            release=values.get("release"),
            environment=values.get("environment"),
            session_id=values.get("session_id"),
            user_id=values.get("user_id"),
        )
    except QueryError as exc:
        raise PageError(400, str(exc)) from None
    if range_ != "custom":
        values["range"] = range_
    return Filters(values, flt, range_)


@dataclass(frozen=True)
class TraceRow:
    """One row of the list: the store's summary and its root span's route and text."""

    summary: TraceSummary
    route: str | None
    input_text: str | None
    output_text: str | None
    status: str


def _rows(ctx: PageContext, items: list[TraceSummary]) -> list[TraceRow]:
    if not items:
        return []
    roots = ctx.store.root_span_ids(ctx.project, [t.trace_id for t in items])
    # A root starts with its trace: the time window lets the store skip most of the table
    # (148 -> 27 ms on 1M spans). A root starting much later shows no snippet.
    window = SpanFilter(
        project=ctx.project,
        start=min(t.start_time for t in items),
        end=max(t.start_time for t in items) + ROOT_LAG,
    )
    spans = {s.trace_id: s for s in ctx.store.spans_by_key(window, list(roots.items()))}
    rows = []
    for t in items:
        root = spans.get(t.trace_id)
        rows.append(
            TraceRow(
                t,
                root.route if root else None,
                root.input_text if root else None,
                root.output_text if root else None,
                "error" if t.error_count else (root.status if root else "ok"),
            )
        )
    return rows


def _suggestions(ctx: PageContext, now: datetime) -> dict[str, list[str]]:
    # Values seen recently: the list accepts any value, these only help typing.
    recent = SpanFilter(project=ctx.project, start=now - timedelta(days=1))
    with ThreadPoolExecutor(max_workers=len(SUGGESTED)) as pool:
        futures = {k: pool.submit(ctx.store.aggregate, recent, None, k) for k in SUGGESTED}
    return {
        k: sorted((a.group for a in f.result() if a.group), key=str.lower)[:200]
        for k, f in futures.items()
    }


@router.get("/traces")
def traces(request: Request) -> Response:
    """The trace list: filters, search, newest first, Older/Newer cursor paging."""
    ctx = context(request)
    params = request.query_params
    now = datetime.now(UTC)
    filters = parse_filters(ctx.project, params, now)
    try:
        limit = int(params.get("limit") or 50)
    except ValueError:
        limit = 0
    if limit not in PAGE_SIZES:
        raise PageError(
            400,
            f"limit {params.get('limit')!r} is not one of {', '.join(map(str, PAGE_SIZES))}",
        )
    cursor = params.get("cursor") or None
    back = [c for c in (params.get("back") or "").split(".") if c]
    with ThreadPoolExecutor(max_workers=1) as pool:
        hints = pool.submit(_suggestions, ctx, now)
        try:
            page = ctx.store.list_traces(filters.flt, limit, cursor)
        except QueryError as exc:
            raise PageError(400, f"{exc} (or start again from the first page)") from None
        rows = _rows(ctx, page.items)
        suggestions = hints.result()
    base = dict(filters.values)
    if limit != 50:
        base["limit"] = str(limit)
    older = newer = None
    if page.next_cursor:
        trail = ".".join([*back, cursor or ""][-MAX_BACK:])
        older = query("/traces", base, cursor=page.next_cursor, back=trail)
    if cursor:
        newer = query("/traces", base, cursor=back[-1] if back else None, back=".".join(back[:-1]))
    # Each active filter as a chip whose link drops it.
    chips = [
        (k, v, query("/traces", {x: y for x, y in base.items() if x != k}))
        for k, v in filters.values.items()
        if k != "range"
    ]
    return render(
        request,
        "traces.html",
        title="Traces",
        rows=rows,
        values=filters.values,
        range_=filters.range_,
        ranges=list(RANGES),
        statuses=STATUSES,
        suggestions=suggestions,
        limit=limit,
        page_sizes=PAGE_SIZES,
        older=older,
        newer=newer,
        first=query("/traces", base) if cursor else None,
        chips=chips,
    )


# --- one trace -----------------------------------------------------------------------------


def trace_id_of(raw: str) -> str:
    """A trace id from a URL (any case), or a 400 saying what one looks like."""
    tid = raw.strip().lower()
    if not _TRACE_ID.match(tid):
        raise PageError(
            400,
            f"trace id {raw[:80]!r} is not 32 hexadecimal characters; copy it from the "
            "trace list (/traces)",
        )
    return tid


def _spans_of(ctx: PageContext, tid: str) -> list[Span]:
    spans = ctx.store.get_trace(ctx.project, tid)
    if not spans:
        raise PageError(
            404,
            f"no trace {tid} in project {ctx.project!r}; it may belong to another project "
            "or not have arrived yet (see /traces)",
        )
    return spans


@dataclass(frozen=True)
class WaterfallRow:
    """One span in the waterfall: its depth and where its bar sits (percent of the trace)."""

    span: Span
    depth: int
    offset_ms: float
    left: float
    width: float
    feedback: int


def waterfall(spans: list[Span], feedback: list[Feedback]) -> tuple[list[WaterfallRow], float]:
    """Spans depth-first (children by start time) with bar positions, and the trace's
    length in ms. A span whose parent never arrived is drawn as a root."""
    start = min(s.start_time for s in spans)
    end = max(s.end_time for s in spans)
    total = max((end - start).total_seconds() * 1000, 1e-3)
    ids = {s.span_id for s in spans}
    children: dict[str | None, list[Span]] = {}
    for s in spans:
        parent = s.parent_span_id if s.parent_span_id in ids else None
        children.setdefault(parent, []).append(s)
    per_span: dict[str | None, int] = {}
    for f in feedback:
        per_span[f.span_id] = per_span.get(f.span_id, 0) + 1
    rows: list[WaterfallRow] = []
    seen: set[str] = set()

    def visit(span: Span, depth: int) -> None:
        if span.span_id in seen:  # a cycle of parent ids: draw each span once
            return
        seen.add(span.span_id)
        offset = (span.start_time - start).total_seconds() * 1000
        left = min(100.0, 100 * offset / total)
        width = min(100.0 - left, max(0.4, 100 * span.duration_ms / total))
        rows.append(
            WaterfallRow(span, depth, offset, left, width, per_span.get(span.span_id, 0))
        )
        for child in sorted(children.get(span.span_id, []), key=lambda s: s.start_time):
            visit(child, depth + 1)

    for root in sorted(children.get(None, []), key=lambda s: s.start_time):
        visit(root, 0)
    for s in spans:  # spans only reachable through a cycle
        if s.span_id not in seen:
            visit(s, 0)
    return rows, total


@dataclass(frozen=True)
class ToolCall:
    """A tool call an assistant message asked for."""

    name: str
    arguments: str
    id: str | None


@dataclass(frozen=True)
class Message:
    """A chat message ready to show: role, text, tool calls and tool results."""

    role: str
    css: str
    text: str | None
    name: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    #: (call id, result text) pairs of a tool message.
    tool_results: list[tuple[str | None, str]] = field(default_factory=list)
    #: Keys without a place of their own (finish_reason, tool_call_id, other parts …).
    extra: dict[str, str] = field(default_factory=dict)
    output: bool = False


def _pretty(value: Any) -> str:
    """JSON text indented when it parses; other values as JSON; strings as they are."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in "{[":
            try:
                return json.dumps(json.loads(stripped), indent=2, ensure_ascii=False)
            except json.JSONDecodeError:
                pass
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def message_view(raw: Mapping[str, Any], output: bool = False) -> Message:
    """One stored message (OTel GenAI or OpenInference, as otlp.py maps them) for display."""
    role = str(raw.get("role") or "unknown")
    calls = [
        ToolCall(str(c.get("name") or "?"), _pretty(c.get("arguments") or ""), c.get("id"))
        for c in raw.get("tool_calls") or ()
        if isinstance(c, Mapping)
    ]
    results: list[tuple[str | None, str]] = []
    other_parts: list[Any] = []
    for p in raw.get("parts") or ():
        if isinstance(p, Mapping) and p.get("type") == "tool_call_response":
            results.append((p.get("id"), _pretty(p.get("response", p.get("result", "")))))
        else:
            other_parts.append(p)
    content = raw.get("content")
    text = content if isinstance(content, str) else None
    if content is not None and text is None:
        other_parts.append(content)
    extra = {
        str(k): v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)
        for k, v in raw.items()
        if k not in ("role", "content", "name", "tool_calls", "parts") and v is not None
    }
    if other_parts:
        extra["parts"] = _pretty(other_parts)
    if results and extra.get("id") in {r[0] for r in results}:
        del extra["id"]  # shown with the result it answers
    name = raw.get("name")
    return Message(
        role=role,
        css=role.lower() if role.lower() in KNOWN_ROLES else "other",
        text=text,
        name=str(name) if name is not None else None,
        tool_calls=calls,
        tool_results=results,
        extra=extra,
        output=output,
    )


def conversation(span: Span) -> list[Message]:
    """A span's input messages, then its output messages."""
    return [message_view(m) for m in span.input_messages or () if isinstance(m, Mapping)] + [
        message_view(m, output=True) for m in span.output_messages or () if isinstance(m, Mapping)
    ]


def main_conversation(spans: list[Span]) -> Span | None:
    """The LLM call whose messages tell the most of the story: the most messages, the
    latest on a tie (a later call carries the history of the earlier ones)."""
    best: Span | None = None
    best_key: tuple[int, datetime] | None = None
    for s in spans:
        n = len(s.input_messages or ()) + len(s.output_messages or ())
        if n and (best_key is None or (n, s.start_time) >= best_key):
            best, best_key = s, (n, s.start_time)
    return best


@dataclass(frozen=True)
class LlmCall:
    """An LLM span's tokens, cost and the price the cost came from."""

    span: Span
    price_in: float | None
    price_out: float | None
    price_cached: float | None
    priced_as: str | None


def llm_calls(spans: list[Span], prices: PriceTable) -> list[LlmCall]:
    """Spans with a model or tokens, with their price per million tokens."""
    out = []
    for s in spans:
        if s.kind != "llm" and s.model is None and s.input_tokens is None:
            continue
        p = prices.price(s.model)
        out.append(
            LlmCall(
                s,
                p.input if p else None,
                p.output if p else None,
                p.cached_input if p else None,
                prices.resolve(s.model),
            )
        )
    return out


def feedback_value(f: Feedback) -> str:
    """A feedback record's value in words."""
    if f.kind == "boolean":
        return "✓ up" if f.number == 1.0 else "✗ down"
    if f.kind == "number":
        return f"{f.number:g}" if f.number is not None else "–"
    if f.kind == "category":
        return f.category or ""
    return ""


def _default_expected(feedback: list[Feedback]) -> str:
    # What promote() takes as the expected answer when none is given.
    for f in feedback:
        if f.source == "reviewer" and f.kind in ("category", "comment"):
            return (f.category if f.kind == "category" else f.comment) or ""
    return ""


@router.get("/traces/{trace_id}")
def trace(request: Request, trace_id: str) -> Response:
    """One trace: waterfall, conversation, tool calls, LLM calls, attributes, feedback."""
    ctx = context(request)
    tid = trace_id_of(trace_id)
    spans = _spans_of(ctx, tid)
    feedback = ctx.store.list_feedback(ctx.project, trace_id=tid, limit=1000)
    rows, total_ms = waterfall(spans, feedback)
    by_id = {s.span_id: s for s in spans}
    root = rows[0].span
    selected = (request.query_params.get("span") or "").lower()
    if selected and selected not in by_id:
        raise PageError(
            404 if _SPAN_ID.match(selected) else 400,
            f"span {selected[:40]!r} is not a span of trace {tid}; pick one in the waterfall",
        )
    selected = selected or root.span_id
    detail_ids = (
        [r.span.span_id for r in rows]
        if len(rows) <= MAX_DETAILS
        else [selected]
    )
    main = main_conversation(spans)
    with_input = [s for s in spans if case_input(s) is not None]
    promoted = request.query_params.get("promoted") or ""
    goldens = sorted({g.name for g in ctx.store.list_golden_versions(ctx.project)})
    queues = pick_queues(ctx.store.list_queues(ctx.project))
    errors = sum(1 for s in spans if s.status == "error")
    return render(
        request,
        "trace.html",
        title=f"Trace {root.name}",
        tid=tid,
        root=root,
        spans=spans,
        rows=rows,
        total_ms=total_ms,
        ticks=[total_ms * i / 4 for i in range(5)],
        by_id=by_id,
        selected=selected,
        detail_ids=detail_ids,
        messages={s.span_id: conversation(s) for s in spans if s.span_id in detail_ids},
        main=main,
        main_messages=conversation(main) if main else [],
        tools=[s for s in spans if s.kind == "tool"],
        llm=llm_calls(spans, request.app.state.prices),
        feedback=feedback,
        span_feedback={
            sid: [f for f in feedback if f.span_id == sid] for sid in detail_ids
        },
        feedback_value=feedback_value,
        pretty=_pretty,
        errors=errors,
        tokens=sum((s.input_tokens or 0) + (s.output_tokens or 0) for s in spans),
        cost=sum(s.cost for s in spans if s.cost is not None)
        if any(s.cost is not None for s in spans)
        else None,
        models=sorted({s.model for s in spans if s.model}),
        feedback_id=uuid.uuid4().hex,
        default_expected=_default_expected(feedback),
        with_input=with_input,
        goldens=goldens,
        queues=queues,
        promoted=promoted if _GOLDEN.match(promoted) else "",
    )


# --- actions -------------------------------------------------------------------------------


def _author(ctx: PageContext) -> str:
    """Who acted, as recorded with feedback, queues and promotions."""
    return f"key:{ctx.session.key_id}" if ctx.session.key_id else "dashboard"


def _done(request: Request, url: str, message: str) -> Response:
    return redirect(request, url, flash=message)


def _field(form: Mapping[str, Any], key: str, limit: int = 10_000) -> str:
    value = form.get(key)
    text = value.strip() if isinstance(value, str) else ""
    if len(text) > limit:
        raise PageError(400, f"{key} is longer than {limit:,} characters; shorten it")
    return text


def _span_choice(form: Mapping[str, Any], spans: list[Span]) -> str | None:
    span_id = _field(form, "span_id", 64).lower() or None
    if span_id is not None and span_id not in {s.span_id for s in spans}:
        raise PageError(
            400, f"span_id {span_id!r} is not a span of this trace; pick one from the list"
        )
    return span_id


def _add_feedback(ctx: PageContext, tid: str, form: Mapping[str, Any]) -> tuple[str, str | None]:
    spans = _spans_of(ctx, tid)
    span_id = _span_choice(form, spans)
    action = _field(form, "action", 20)
    comment = _field(form, "comment") or None
    value: float | bool | str | None
    if action in ("up", "down"):
        name, value = "thumbs", action == "up"
    elif action == "label":
        name = _field(form, "name", 200)
        raw = _field(form, "value", 200)
        # A number is a score, other text a category; empty: a comment on its own.
        value = float(raw) if _NUMBER.match(raw) else (raw or None)
        if not name:
            raise PageError(400, "name is empty; say what the label is about, e.g. correctness")
    else:
        raise PageError(400, f"action {action!r} must be up, down or label")
    fid = _field(form, "id", 200) or uuid.uuid4().hex
    try:
        record = make_feedback(
            ctx.project,
            tid,
            name,
            value,
            span_id=span_id,
            comment=comment,
            source="reviewer",
            author=_author(ctx),
            id=fid,
        )
    except FeedbackError as exc:
        raise PageError(400, str(exc)) from None
    existing = ctx.store.list_feedback(ctx.project, ids=[fid], limit=1)
    if existing:
        if not same_content(existing[0], record):
            raise PageError(
                409, f"feedback id {fid!r} already holds other feedback; reload the page"
            )
        return "This feedback was already stored (the form was sent twice).", span_id
    ctx.store.add_feedback([record])
    where = f"span {span_id}" if span_id else "the trace"
    said = {"boolean": "up" if value is True else "down", "number": "a score"}.get(
        record.kind, "a category" if record.kind == "category" else "a comment"
    )
    return f"Feedback stored on {where}: {name} = {said}.", span_id


@router.post("/traces/{trace_id}/feedback")
async def add_feedback(request: Request, trace_id: str) -> Response:
    """Store a thumbs up/down or a label (score, category or comment) as reviewer feedback."""
    form = await request.form()
    ctx = check_csrf(request, form)
    tid = trace_id_of(trace_id)
    message, span_id = await asyncio.to_thread(_add_feedback, ctx, tid, form)
    url = query(f"/traces/{tid}", span=span_id)
    return _done(request, url + "#feedback", message)


def pick_queues(queues: list[Queue]) -> list[Queue]:
    """The queues a trace can be added to: hand-picked ones with room, by name."""
    return sorted(
        (q for q in queues if q.accepts_items and q.item_count < q.size), key=lambda q: q.name
    )


def _queue_error(exc: QueueError) -> PageError:
    if isinstance(exc, QueueNotFoundError):
        return PageError(404, str(exc))
    return PageError(409 if isinstance(exc, QueueConflictError) else 400, str(exc))


def _add_to_queue(ctx: PageContext, tid: str, form: Mapping[str, Any]) -> str:
    name = _field(form, "existing", 200)
    if not name:
        raise PageError(400, "existing is empty; choose a hand-picked queue from the list")
    try:
        done = add_items(ctx.store, ctx.project, name, [(tid, None)], _author(ctx), PICKED_HERE)
    except QueueError as exc:
        raise _queue_error(exc) from None
    if not done.added:
        return f"This trace is already in queue {name!r}; nothing was added."
    return (
        f"Added this trace to queue {name!r} (now {done.queue.item_count:,} items); label it "
        "on the Annotate page."
    )


def _new_queue(ctx: PageContext, tid: str, form: Mapping[str, Any]) -> str:
    name = _field(form, "queue", 200)
    kind = _field(form, "label_kind", 20)
    choices = _field(form, "label_values", 2000)
    try:
        if kind == "boolean":
            label = label_spec(_field(form, "label_name", 200), boolean=True)
        elif kind == "category":
            label = label_spec(_field(form, "label_name", 200), values=choices)
        elif kind == "scale":
            label = label_spec(_field(form, "label_name", 200), scale=choices)
        else:
            raise QueueError(f"label_kind {kind!r} must be boolean, category or scale")
        existing = ctx.store.get_queue(ctx.project, name)
        if existing is not None:
            hint = (
                "choose it under 'Add to an existing queue' to add this trace"
                if existing.accepts_items
                else f"it is a {existing.strategy} queue, whose items are fixed; pick a new name"
            )
            raise QueueConflictError(f"a queue named {name!r} already exists; {hint}")
        spec = QueueSpec(
            name=name,
            strategy=HAND_PICKED,
            size=MAX_SIZE,
            label=label,
            filters=SpanFilter(project=ctx.project),
            instructions=_field(form, "instructions", 20_000) or None,
            created_by=_author(ctx),
        )
        create_with_items(ctx.store, spec, [(tid, None)], _author(ctx), PICKED_HERE)
    except QueueError as exc:
        raise _queue_error(exc) from None
    except StoreError as exc:
        raise PageError(400, str(exc)) from None
    return f"Queue {name!r} created with this trace; label it on the Annotate page."


def _send_to_queue(ctx: PageContext, tid: str, form: Mapping[str, Any]) -> str:
    _spans_of(ctx, tid)
    mode = _field(form, "mode", 20) or "new"
    if mode == "existing":
        return _add_to_queue(ctx, tid, form)
    if mode == "new":
        return _new_queue(ctx, tid, form)
    raise PageError(400, f"mode {mode!r} must be existing or new")


@router.post("/traces/{trace_id}/queue")
async def send_to_queue(request: Request, trace_id: str) -> Response:
    """Add the trace to a hand-picked annotation queue: an existing one (mode=existing,
    existing=NAME) or a new one (mode=new, queue=NAME and the label fields)."""
    form = await request.form()
    ctx = check_csrf(request, form)
    tid = trace_id_of(trace_id)
    message = await asyncio.to_thread(_send_to_queue, ctx, tid, form)
    return _done(request, f"/traces/{tid}", message)


def _promote(ctx: PageContext, tid: str, form: Mapping[str, Any]) -> tuple[str, str]:
    spans = _spans_of(ctx, tid)
    golden = _field(form, "golden", 200)
    if not _GOLDEN.match(golden):
        raise PageError(
            400,
            f"golden set name {golden!r} must be 1-100 letters, digits, '_', '.' or '-', "
            "e.g. support",
        )
    span_id = _span_choice(form, spans)
    expected_text = _field(form, "expected", 100_000)
    feedback = ctx.store.list_feedback(ctx.project, trace_id=tid, source="reviewer", limit=1000)
    # Left as the label said (or empty): promote() takes it from the label and records so.
    expected: Any = (
        MISSING
        if not expected_text or expected_text == _default_expected(feedback)
        else expected_text
    )
    try:
        result = promote(
            ctx.store,
            ctx.project,
            tid,
            golden,
            expected=expected,
            case_id=_field(form, "case_id", 200) or None,
            span_id=span_id,
            author=_author(ctx),
        )
    except PromotionNotFoundError as exc:
        raise PageError(404, str(exc)) from None
    except PromotionConflictError as exc:
        raise PageError(409, str(exc)) from None
    except (PromotionError, StoreError) as exc:
        raise PageError(400, str(exc)) from None
    g = result.golden
    if not result.created:
        return (
            f"Already in golden set {g.name} version {g.short} as case {result.case.id!r}; "
            "nothing new was stored."
        ), g.name
    return (
        f"Promoted to golden set {g.name}: new version {g.short} with {g.case_count} cases "
        f"(case {result.case.id!r})."
    ), g.name


@router.post("/traces/{trace_id}/promote")
async def promote_trace(request: Request, trace_id: str) -> Response:
    """Add the trace as a case to a golden set (its next version), with provenance."""
    form = await request.form()
    ctx = check_csrf(request, form)
    tid = trace_id_of(trace_id)
    message, golden = await asyncio.to_thread(_promote, ctx, tid, form)
    return _done(request, query(f"/traces/{tid}", promoted=golden), message)
