"""Annotate: the project's labelling queues and a keyboard-first labelling view.

Every action goes through the queue functions the JSON API uses (``claim_next``,
``label_item``, ``skip_item``, ``release_item``), so a label given here is stored exactly
as ``POST /api/v1/queues/{name}/items/{id}/label`` stores it and calibration sees it.

Who labels: a session signed in with an API key labels as that key's id (it cannot be
typed over, so labels on a shared server are attributable); any other session (loopback,
admin key) types a name once, kept in the ``assay_labeller`` cookie.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from assay.model import Feedback, Span
from assay.queues import (
    LABELLED,
    OPEN,
    LabelSpec,
    Queue,
    QueueConflictError,
    QueueError,
    QueueItem,
    QueueNotFoundError,
    QueueProgress,
    check_labeller,
    claim_next,
    get_item,
    get_queue,
    label_item,
    release_item,
    skip_item,
)
from assay.server.pages import PageContext, PageError, check_csrf, context, redirect, render
from assay.store import Store

router = APIRouter(include_in_schema=False)

LABELLER_COOKIE = "assay_labeller"
#: Keys the labelling view keeps for its own actions (never a label option's key).
RESERVED_KEYS = frozenset("scuq?n")
#: Spans of a trace listed on an item (a trace rarely has more; the trace page has all).
MAX_SPANS = 60
#: Characters of a span's text shown inline before "show all" (the item's own text is whole).
SPAN_TEXT = 4000
_DOC = re.compile(r"^retrieval\.documents\.(\d+)\.document\.(id|content|score)$")
#: Feedback rows read to count a queue's label values (a queue has at most 10,000 items).
SUMMARY_LIMIT = 10_000


# --- who labels ------------------------------------------------------------------------------


def labeller_of(ctx: PageContext) -> tuple[str | None, bool]:
    """The labeller's name and whether it is fixed by the sign-in (an API key's id)."""
    if ctx.session.key_id is not None:
        return ctx.session.key_id, True
    raw = ctx.request.cookies.get(LABELLER_COOKIE)
    if raw is None:
        return None, False
    try:
        return check_labeller(raw), False
    except QueueError:
        return None, False


def _remember(response: Response, name: str) -> None:
    response.set_cookie(
        LABELLER_COOKIE, name, max_age=365 * 86400, httponly=True, samesite="lax", path="/"
    )


# --- what a page shows ---------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One choice of the label form: the value posted, its text and its keys."""

    value: str
    text: str
    keys: tuple[str, ...]
    kind: str = ""


def label_options(spec: LabelSpec) -> list[Option]:
    """The label's choices with their shortcut keys; empty for a scale typed as a number
    (a decimal scale, or more than ten whole numbers)."""
    if spec.kind == "boolean":
        return [
            Option("true", "pass", ("p", "1"), "pass"),
            Option("false", "fail", ("f", "2"), "fail"),
        ]
    if spec.kind == "category":
        out: list[Option] = []
        used: set[str] = set()
        for i, value in enumerate(spec.values):
            keys: list[str] = []
            if i < 10:
                keys.append(str((i + 1) % 10))
            first = value[:1].lower()
            unique = sum(v[:1].lower() == first for v in spec.values) == 1
            if first.isalpha() and unique and first not in RESERVED_KEYS and first not in used:
                keys.append(first)
                used.add(first)
            out.append(Option(value, value, tuple(keys)))
        return out
    assert spec.low is not None and spec.high is not None
    if not spec.integer or spec.high - spec.low > 9:
        return []
    values = range(int(spec.low), int(spec.high) + 1)
    # A scale inside 0-9 is typed as itself; others (e.g. -2..2) by position 1, 2, ….
    direct = spec.low >= 0 and spec.high <= 9
    return [
        Option(str(v), str(v), (str(v) if direct else str(i + 1),))
        for i, v in enumerate(values)
    ]


def describe_label(spec: LabelSpec) -> str:
    """The label in a few words: ``helpfulness: pass / fail``."""
    if spec.kind == "boolean":
        return f"{spec.name}: pass / fail"
    if spec.kind == "category":
        return f"{spec.name}: " + " / ".join(spec.values)
    return f"{spec.name}: {spec.describe()}"


def content_text(content: Any) -> str:
    """A chat message's content as text (a string, or a list of parts with text)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, Mapping):
                text = part.get("text") or part.get("content")
                parts.append(content_text(text) if text is not None else f"[{part.get('type')}]")
            else:
                parts.append(str(part))
        return "\n".join(p for p in parts if p)
    if isinstance(content, Mapping):
        return content_text(content.get("text") or content.get("content"))
    return str(content)


def messages_view(messages: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """Chat messages as (role, text, tool calls) for the conversation view."""
    out = []
    for m in messages or ():
        calls = []
        for call in m.get("tool_calls") or ():
            if isinstance(call, Mapping):
                inner = call.get("function")
                fn: Mapping[str, Any] = inner if isinstance(inner, Mapping) else call
                calls.append(
                    {"name": str(fn.get("name") or "tool"), "arguments": fn.get("arguments")}
                )
        out.append(
            {
                "role": str(m.get("role") or "message"),
                "text": content_text(m.get("content")),
                "tool_calls": calls,
            }
        )
    return out


def documents_of(spans: Sequence[Span]) -> list[dict[str, Any]]:
    """Retrieved documents recorded on the trace's spans (OpenInference attributes)."""
    docs = []
    for s in spans:
        found: dict[int, dict[str, Any]] = {}
        for key, value in s.attributes.items():
            m = _DOC.match(key)
            if m:
                found.setdefault(int(m.group(1)), {})[m.group(2)] = value
        for i in sorted(found):
            d = found[i]
            score = d.get("score")
            docs.append(
                {
                    "id": str(d.get("id") or f"#{i + 1}"),
                    "content": content_text(d.get("content")),
                    "score": score if isinstance(score, int | float) else None,
                    "span": s.name,
                }
            )
    return docs


def span_rows(spans: Sequence[Span], item_span: str) -> list[dict[str, Any]]:
    """The trace's spans in tree order with depth and a waterfall offset (percent)."""
    if not spans:
        return []
    ids = {s.span_id for s in spans}
    children: dict[str | None, list[Span]] = {}
    for s in spans:
        parent = s.parent_span_id if s.parent_span_id in ids else None
        children.setdefault(parent, []).append(s)
    t0 = min(s.start_time for s in spans)
    t1 = max(s.end_time for s in spans)
    total = max((t1 - t0).total_seconds(), 1e-6)
    rows: list[dict[str, Any]] = []

    def walk(parent: str | None, depth: int) -> None:
        for s in sorted(children.get(parent, ()), key=lambda x: (x.start_time, x.span_id)):
            if len(rows) >= MAX_SPANS:
                return
            left = (s.start_time - t0).total_seconds() / total
            width = max((s.end_time - s.start_time).total_seconds() / total, 0.004)
            rows.append(
                {
                    "span": s,
                    "depth": depth,
                    "left": round(100 * left, 2),
                    "width": round(100 * min(width, 1 - left), 2),
                    "this": s.span_id == item_span,
                    "input": s.input_text or "",
                    "output": s.output_text or "",
                }
            )
            walk(s.span_id, depth + 1)

    walk(None, 0)
    return rows


def reason_rows(item: QueueItem, queue: Queue) -> list[tuple[str, str]]:
    """Why the strategy chose the item, as (what, value) pairs in words."""
    reason = dict(item.context.get("reason") or {})
    out: list[tuple[str, str]] = [("strategy", queue.strategy)]
    labels = {
        "judge": "judge",
        "judge_score": "judge score",
        "threshold": "threshold",
        "distance": "distance to threshold",
        "scores": "judge scores",
        "disagreement": "disagreement",
        "spread": "spread",
        "decisions": "decisions",
        "drift_feature": "drift feature",
        "drift_score": "drift score",
        "rank": "rank",
        "stratum": "stratum",
    }
    for key, value in reason.items():
        out.append((labels.get(key, key.replace("_", " ")), _short(value)))
    if item.stratum is not None and "stratum" not in reason:
        out.append(("stratum", item.stratum))
    if item.inclusion_probability is not None:
        out.append(("inclusion probability", f"{item.inclusion_probability:.3g}"))
    return out


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list | tuple):
        return ", ".join(_short(v) for v in value)
    return str(value)


def feedback_value(f: Feedback) -> str:
    """A stored label in words."""
    if f.kind == "boolean":
        return "pass" if f.number else "fail"
    if f.category is not None:
        return f.category
    return "–" if f.number is None else f"{f.number:g}"


def label_counts(store: Store, queue: Queue) -> list[tuple[str, int]]:
    """How often each label value was given in this queue, most frequent first."""
    rows = store.list_feedback(
        queue.project, name=queue.label.name, source="reviewer", limit=SUMMARY_LIMIT
    )
    counts = Counter(
        feedback_value(f) for f in rows if (f.metadata or {}).get("queue_id") == queue.queue_id
    )
    return counts.most_common()


def _position(progress: QueueProgress) -> int:
    return min(progress.total, progress.labelled + progress.skipped + 1)


def _mine(progress: QueueProgress, who: str | None) -> dict[str, int]:
    empty = {"labelled": 0, "skipped": 0, "claimed": 0}
    return dict(progress.by_labeller.get(who, empty)) if who else empty


def _queue(ctx: PageContext, name: str) -> Queue:
    try:
        return get_queue(ctx.store, ctx.project, name)
    except QueueNotFoundError:
        raise PageError(
            404, f"no queue named {name!r} in project {ctx.project!r}; see /annotate"
        ) from None


def _item_number(queue: Queue, raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= max(queue.item_count, 1):
        raise PageError(
            404, f"queue {queue.name!r} has no item {raw!r}; its items are 1 to {queue.item_count}"
        )
    return int(raw)


def _item(ctx: PageContext, queue: Queue, item_id: int) -> QueueItem:
    try:
        return get_item(ctx.store, queue, item_id)
    except QueueNotFoundError as exc:
        raise PageError(404, str(exc)) from None


def _url(queue: Queue, item_id: int | None = None, prev: int | None = None) -> str:
    base = f"/annotate/{queue.name}"
    if item_id is None:
        return base
    return f"{base}/items/{item_id}" + (f"?prev={prev}" if prev else "")


def _nothing_free(queue: Queue, progress: QueueProgress) -> str:
    if progress.claimed:
        first = progress.next_expiry
        when = f" (the first at {first:%H:%M:%S} UTC)" if first else ""
        return (
            f"Every open item of {queue.name} is claimed by someone else; claims expire{when} "
            "and the items come free again."
        )
    return f"{queue.name} is done: {progress.labelled} labelled, {progress.skipped} skipped."


# --- pages -------------------------------------------------------------------------------------


@router.get("/annotate")
def queues(request: Request) -> Response:
    """Every queue of the project with its progress."""
    ctx = context(request)
    now = datetime.now(UTC)
    who, fixed = labeller_of(ctx)
    rows = []
    for q in ctx.store.list_queues(ctx.project):
        progress = ctx.store.queue_progress(ctx.project, q.name, now)
        rows.append({"queue": q, "progress": progress, "label": describe_label(q.label)})
    return render(
        request,
        "annotate.html",
        title="Annotate",
        rows=rows,
        labeller=who,
        labeller_fixed=fixed,
    )


@router.get("/annotate/{name}")
def queue_page(request: Request, name: str) -> Response:
    """One queue: progress, instructions, the label, and the button that starts labelling
    (or the summary when it is done)."""
    ctx = context(request)
    queue = _queue(ctx, name)
    progress = ctx.store.queue_progress(ctx.project, queue.name, datetime.now(UTC))
    who, fixed = labeller_of(ctx)
    done = progress.labelled + progress.skipped >= progress.total
    return render(
        request,
        "annotate_queue.html",
        title=f"Annotate · {queue.name}",
        queue=queue,
        progress=progress,
        label=describe_label(queue.label),
        options=label_options(queue.label),
        counts=label_counts(ctx.store, queue),
        labeller=who,
        labeller_fixed=fixed,
        mine=_mine(progress, who),
        done=done,
        position=_position(progress),
    )


@router.post("/annotate/{name}/next")
async def next_item(request: Request, name: str) -> Response:
    """Claim the next item (or renew the one held) and open it."""
    form = await request.form()
    ctx = check_csrf(request, form)
    queue = _queue(ctx, name)
    who, fixed = labeller_of(ctx)
    typed = form.get("labeller")
    if not fixed and isinstance(typed, str) and typed.strip():
        who = typed.strip()
    if who is None:
        raise PageError(400, "say who you are: type your name in the field and press Enter")
    try:
        check_labeller(who)
    except QueueError as exc:
        raise PageError(400, str(exc)) from None
    now = datetime.now(UTC)
    try:
        _, claimed = await asyncio.to_thread(
            claim_next, ctx.store, ctx.project, queue.name, who, now
        )
    except QueueError as exc:  # the queue was removed meanwhile
        raise PageError(404, str(exc)) from None
    if claimed is None:
        progress = await asyncio.to_thread(ctx.store.queue_progress, ctx.project, queue.name, now)
        response = redirect(request, _url(queue), _nothing_free(queue, progress))
    else:
        response = redirect(request, _url(queue, claimed.item_id))
    if not fixed:
        _remember(response, who)
    return response


@router.get("/annotate/{name}/items/{item_id}")
def item_page(request: Request, name: str, item_id: str, prev: str | None = None) -> Response:
    """One item: its input, output and context, and the label form while it is open."""
    ctx = context(request)
    queue = _queue(ctx, name)
    item = _item(ctx, queue, _item_number(queue, item_id))
    now = datetime.now(UTC)
    who, fixed = labeller_of(ctx)
    store = ctx.store
    progress = store.queue_progress(ctx.project, queue.name, now)
    spans = store.get_trace(ctx.project, item.trace_id)
    judged = [
        f
        for f in store.list_feedback(ctx.project, trace_id=item.trace_id, source="judge", limit=50)
        if f.span_id in (None, item.span_id)
    ]
    stored = None
    if item.feedback_id:
        found = store.list_feedback(ctx.project, ids=[item.feedback_id], limit=1)
        stored = found[0] if found else None
    held_by_other = item.claimed(now) and item.claimed_by != who
    can_label = item.status == OPEN and not held_by_other and who is not None
    prev_id = int(prev) if prev and prev.isdigit() and 1 <= int(prev) <= queue.item_count else None
    if item.status != OPEN and prev_id is None and item.item_id > 1:
        prev_id = item.item_id - 1
    own = next((s for s in spans if s.span_id == item.span_id), None)
    return render(
        request,
        "annotate_item.html",
        title=f"{queue.name} · item {item.item_id}",
        queue=queue,
        item=item,
        progress=progress,
        position=_position(progress),
        mine=_mine(progress, who),
        labeller=who,
        labeller_fixed=fixed,
        options=label_options(queue.label),
        label=describe_label(queue.label),
        can_label=can_label,
        held_by_other=held_by_other,
        expired=item.status == OPEN and not item.claimed(now),
        stored=stored,
        stored_value=feedback_value(stored) if stored else None,
        judged=[(f.name, feedback_value(f), f.comment) for f in judged],
        input_messages=messages_view(item.input_messages),
        output_messages=messages_view(item.output_messages),
        spans=span_rows(spans, item.span_id),
        span_count=len(spans),
        span_text=SPAN_TEXT,
        documents=documents_of(spans),
        reasons=reason_rows(item, queue),
        facts=_facts(item, own),
        prev_url=_url(queue, prev_id) if prev_id else None,
        labelled=LABELLED,
    )


def _facts(item: QueueItem, span: Span | None) -> list[tuple[str, str]]:
    c = item.context
    out = [
        ("span", str(c.get("name") or "")),
        ("kind", str(c.get("kind") or "")),
        ("model", str(c.get("model") or "")),
        ("service", str(c.get("service") or "")),
        ("route", str(c.get("route") or "")),
        ("release", str(c.get("release") or "")),
        ("environment", str(c.get("environment") or "")),
        ("status", str(c.get("status") or "")),
        ("user", str(c.get("user_id") or "")),
        ("session", str(c.get("session_id") or "")),
    ]
    duration = c.get("duration_ms")
    if isinstance(duration, int | float):
        out.append(("duration", f"{duration:,.0f} ms"))
    if span is not None and span.status_message:
        out.append(("error", span.status_message))
    return [(k, v) for k, v in out if v]


# --- actions -----------------------------------------------------------------------------------


async def _acting(
    request: Request, name: str, item_id: str
) -> tuple[Any, PageContext, Queue, int, str]:
    form = await request.form()
    ctx = check_csrf(request, form)
    queue = _queue(ctx, name)
    number = _item_number(queue, item_id)
    who, _ = labeller_of(ctx)
    if who is None:
        raise PageError(
            400, f"say who you are first: open /annotate/{queue.name}, type your name, press Enter"
        )
    return form, ctx, queue, number, who


def _conflict(store: Store, queue: Queue, item_id: int, who: str, what: str) -> str:
    try:
        item = get_item(store, queue, item_id)
    except QueueError:
        return f"Item {item_id} changed meanwhile, so your {what} was not stored."
    if item.status != OPEN:
        by = "you" if item.done_by == who else (item.done_by or "someone")
        return (
            f"Item {item_id} was already {item.status} by {by}, so your {what} was not stored. "
            "Here is the next item."
        )
    return (
        f"Item {item_id} is now claimed by {item.claimed_by}, so your {what} was not stored. "
        "Here is the next item."
    )


async def _advance(
    request: Request, ctx: PageContext, queue: Queue, who: str, done_id: int, message: str | None
) -> Response:
    now = datetime.now(UTC)
    try:
        _, claimed = await asyncio.to_thread(
            claim_next, ctx.store, ctx.project, queue.name, who, now
        )
    except QueueError as exc:  # the queue was removed meanwhile
        raise PageError(404, str(exc)) from None
    if claimed is None:
        progress = await asyncio.to_thread(ctx.store.queue_progress, ctx.project, queue.name, now)
        text = _nothing_free(queue, progress)
        return redirect(request, _url(queue), f"{message} {text}" if message else text)
    return redirect(request, _url(queue, claimed.item_id, done_id), message)


def _text(form: Any, key: str, limit: int) -> str | None:
    value = form.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise PageError(400, f"{key} must be text")
    value = value.strip()
    if len(value) > limit:
        raise PageError(400, f"{key} is longer than {limit:,} characters; shorten it")
    return value or None


async def _finish(
    request: Request,
    ctx: PageContext,
    queue: Queue,
    number: int,
    who: str,
    action: str,
    finish: Callable[..., Any],
    *args: Any,
) -> Response:
    """Label or skip an item through the queue function ``finish``, then open the next
    one; losing the item to someone else is a message, not an error."""
    try:
        await asyncio.to_thread(finish, ctx.store, ctx.project, queue.name, number, who, *args)
    except QueueNotFoundError as exc:
        raise PageError(404, str(exc)) from None
    except QueueConflictError:
        message = await asyncio.to_thread(_conflict, ctx.store, queue, number, who, action)
        return await _advance(request, ctx, queue, who, number, message)
    except QueueError as exc:
        raise PageError(400, str(exc)) from None
    return await _advance(request, ctx, queue, who, number, None)


@router.post("/annotate/{name}/items/{item_id}/label")
async def label(request: Request, name: str, item_id: str) -> Response:
    """Store the label (as the API does) and open the next item."""
    form, ctx, queue, number, who = await _acting(request, name, item_id)
    value = _text(form, "value", 500)
    comment = _text(form, "comment", 10_000)
    if value is None:
        raise PageError(
            400,
            f"choose a label before submitting: {queue.label.name} must be "
            f"{queue.label.describe()} (press a number key, then Enter)",
        )
    return await _finish(
        request, ctx, queue, number, who, "label", label_item, value, comment
    )


@router.post("/annotate/{name}/items/{item_id}/skip")
async def skip(request: Request, name: str, item_id: str) -> Response:
    """Mark the item skipped (nobody is offered it again) and open the next one."""
    form, ctx, queue, number, who = await _acting(request, name, item_id)
    reason = _text(form, "comment", 2_000)
    return await _finish(request, ctx, queue, number, who, "skip", skip_item, reason)


@router.post("/annotate/{name}/items/{item_id}/release")
async def release(request: Request, name: str, item_id: str) -> Response:
    """Give the claim back (someone else can take the item now) and leave the queue."""
    _, ctx, queue, number, who = await _acting(request, name, item_id)
    try:
        await asyncio.to_thread(release_item, ctx.store, ctx.project, queue.name, number, who)
    except QueueNotFoundError as exc:
        raise PageError(404, str(exc)) from None
    except QueueConflictError as exc:
        return redirect(request, _url(queue), str(exc).split(";")[0] + ".")
    return redirect(request, _url(queue), f"Released item {number}; it is free for others.")
