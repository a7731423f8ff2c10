"""The traces pages in-process: the list's filters and cursor paging, the trace page, and
its actions (feedback, an existing or new hand-picked annotation queue, promotion) with
their CSRF checks."""

from __future__ import annotations

import html
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from assay.feedback import make_feedback
from assay.model import Span
from assay.query import SpanFilter
from assay.queues import HAND_PICKED, QueueSpec, create_queue, label_spec
from assay.server.pages.traces import (
    main_conversation,
    message_view,
    waterfall,
)
from assay.store.duckdb import DuckDBStore

NOW = datetime.now(UTC).replace(microsecond=0)
MODELS = ("gpt-4o-mini", "gpt-4o")
ROUTES = ("/chat", "/answer")


def tid(i: int) -> str:
    return f"{i:032x}"


def sid(i: int, j: int) -> str:
    return f"{i:08x}{j:08x}"


def make_trace(i: int, *, error: bool = False, minutes_ago: float | None = None) -> list[Span]:
    """Trace ``i``: an agent root, an LLM call (GenAI-style tool call) and a tool span."""
    start = NOW - timedelta(minutes=minutes_ago if minutes_ago is not None else 200 - i)
    model = MODELS[i % 2]
    route = ROUTES[i % 2]
    question = f"question {i} about {'refunds' if i % 3 == 0 else 'passwords'}"
    common: dict[str, Any] = {
        "project": "default",
        "trace_id": tid(i),
        "service": "support-bot" if i % 4 else "docs-search",
        "route": route,
        "release": "v2" if i % 5 == 0 else "v1",
        "otel_kind": "internal",
    }
    root = Span(
        span_id=sid(i, 1),
        parent_span_id=None,
        name="support-agent",
        kind="agent",
        start_time=start,
        end_time=start + timedelta(milliseconds=1000 + 10 * i),
        duration_ms=1000.0 + 10 * i,
        status="error" if error else "ok",
        input_text=question,
        output_text=f"answer {i}",
        attributes={"topic": "refund", "http.route": route},
        resource_attributes={"service.version": "1.2.3"},
        **common,
    )
    llm = Span(
        span_id=sid(i, 2),
        parent_span_id=root.span_id,
        name=f"chat {model}",
        kind="llm",
        start_time=start + timedelta(milliseconds=100),
        end_time=start + timedelta(milliseconds=600),
        duration_ms=500.0,
        status="error" if error else "ok",
        status_message="rate limited" if error else None,
        model=model,
        provider="openai",
        input_tokens=100 + i,
        output_tokens=20,
        cost=0.001 * (i + 1),
        input_text=question,
        output_text=f"answer {i}",
        input_messages=[
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": question},
            {
                "role": "assistant",
                "tool_calls": [{"name": "lookup", "arguments": '{"order": 7}', "id": "c1"}],
            },
            {
                "role": "tool",
                "id": "c1",
                "parts": [{"type": "tool_call_response", "id": "c1", "response": "shipped"}],
            },
        ],
        output_messages=[{"role": "assistant", "content": f"answer {i}", "finish_reason": "stop"}],
        attributes={"gen_ai.request.model": model, "gen_ai.usage.input_tokens": 100 + i},
        **common,
    )
    tool = Span(
        span_id=sid(i, 3),
        parent_span_id=root.span_id,
        name="execute_tool lookup",
        kind="tool",
        start_time=start + timedelta(milliseconds=650),
        end_time=start + timedelta(milliseconds=700),
        duration_ms=50.0,
        status="ok",
        input_text='{"order": 7}',
        output_text='{"status": "shipped"}',
        **common,
    )
    return [root, llm, tool]


@pytest.fixture
def seeded(store: DuckDBStore) -> DuckDBStore:
    spans: list[Span] = []
    for i in range(60):
        spans.extend(make_trace(i, error=i % 7 == 0))
    store.insert_spans(spans)
    return store


def trace_ids(page: str) -> list[str]:
    return re.findall(r'data-trace="([0-9a-f]{32})"', page)


def csrf_of(page: str) -> str:
    found = re.search(r'data-csrf="([^"]+)"', page)
    assert found
    return found.group(1)


def link(page: str, rel: str) -> str | None:
    found = re.search(rf'<a href="([^"]+)" rel="{rel}"', page)
    return html.unescape(found.group(1)) if found else None


class CallLog:
    """A store that records the methods pages call on it."""

    def __init__(self, inner: DuckDBStore) -> None:
        self.inner = inner
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if not callable(target):
            return target

        def call(*args: Any, **kw: Any) -> Any:
            self.calls.append((name, args))
            return target(*args, **kw)

        return call


# --- the list --------------------------------------------------------------------------


async def test_list_shows_newest_first_with_the_columns(
    client: httpx.AsyncClient, seeded: DuckDBStore
) -> None:
    r = await client.get("/traces")
    assert r.status_code == 200
    ids = trace_ids(r.text)
    assert ids == [tid(i) for i in range(59, 9, -1)]  # 50 per page, newest first
    for needle in ("support-agent", "support-bot", "/answer", "1,590 ms", "question 59"):
        assert needle in r.text
    assert f'href="/traces/{tid(59)}"' in r.text
    assert "2 errors" in r.text  # trace 56: the root and its LLM call failed


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"model": "gpt-4o"}, [i for i in range(60) if i % 2 == 1]),
        ({"status": "error"}, [i for i in range(60) if i % 7 == 0]),
        ({"route": "/chat"}, [i for i in range(60) if i % 2 == 0]),
        ({"service": "docs-search"}, [i for i in range(60) if i % 4 == 0]),
        ({"release": "v2"}, [i for i in range(60) if i % 5 == 0]),
        ({"q": "REFUNDS"}, [i for i in range(60) if i % 3 == 0]),
        ({"min_duration_ms": "1500"}, list(range(50, 60))),
        ({"min_cost": "0.055"}, list(range(54, 60))),
        ({"model": "gpt-4o-mini", "status": "error", "q": "refunds"}, [0, 42]),
        ({"start": "30m", "range": "all"}, []),
        ({"range": "1h"}, list(range(140, 60))),
    ],
)
async def test_filters_select_exactly_the_matching_traces(
    client: httpx.AsyncClient, seeded: DuckDBStore, params: dict[str, str], expected: list[int]
) -> None:
    r = await client.get("/traces", params={**params, "limit": "100"})
    assert r.status_code == 200, r.text
    assert trace_ids(r.text) == [tid(i) for i in sorted(expected, reverse=True)]
    for key, value in params.items():
        if key not in ("range", "start"):
            assert f"{key} = {value}" in r.text  # an active-filter chip


async def test_paging_has_no_overlap_comes_back_and_never_counts(
    app: FastAPI, client: httpx.AsyncClient, seeded: DuckDBStore
) -> None:
    log = CallLog(seeded)
    app.state.store = log
    first = await client.get("/traces", params={"limit": 25, "model": "gpt-4o-mini"})
    one = trace_ids(first.text)
    assert len(one) == 25 and link(first.text, "prev") is None
    older = link(first.text, "next")
    assert older is not None and "model=gpt-4o-mini" in older
    second = await client.get(older)
    two = trace_ids(second.text)
    assert len(two) == 5 and not set(one) & set(two)
    assert one + two == [tid(i) for i in range(58, -1, -2)]
    assert link(second.text, "next") is None
    newer = link(second.text, "prev")
    assert newer is not None
    assert trace_ids((await client.get(newer)).text) == one
    # Three pages deep and back again: each Newer link returns the page before.
    pages = [trace_ids((await client.get("/traces?limit=25")).text)]
    url = link((await client.get("/traces?limit=25")).text, "next")
    while url:
        page = await client.get(url)
        pages.append(trace_ids(page.text))
        back = link(page.text, "prev")
        assert back is not None
        assert trace_ids((await client.get(back)).text) == pages[-2]
        url = link(page.text, "next")
    assert [len(p) for p in pages] == [25, 25, 10]
    names = [name for name, _ in log.calls]
    assert "count_spans" not in names
    for name, args in log.calls:
        if name == "list_traces":
            assert args[1] == 25  # a page at a time
        if name == "aggregate":  # suggestions read the last day only
            assert args[0].start is not None and NOW - args[0].start <= timedelta(days=1, minutes=1)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=bad", "status 'bad' is not one of ok, error, unset"),
        ("min_cost=abc", "min_cost 'abc' is not a number; give US dollars, e.g. min_cost=0.01"),
        ("min_duration_ms=-5", "min_duration_ms '-5' must be a number &gt;= 0"),
        ("start=yesterday", "start 'yesterday' is not a time; use ISO-8601"),
        ("start=1h&end=2h", "is not after start"),
        ("range=3d", "range '3d' is not one of 1h, 24h, 7d, 30d, 90d, all"),
        ("limit=7", "limit '7' is not one of 25, 50, 100, 200"),
        ("cursor=bm9wZQ", "cursor is not one this API issued"),
    ],
)
async def test_bad_filters_are_a_400_naming_the_fix(
    client: httpx.AsyncClient, seeded: DuckDBStore, query: str, message: str
) -> None:
    r = await client.get(f"/traces?{query}")
    assert r.status_code == 400
    assert message in html.unescape(r.text).replace(">=", "&gt;=") or message in r.text


async def test_empty_list_says_what_to_do(client: httpx.AsyncClient) -> None:
    r = await client.get("/traces")
    assert r.status_code == 200 and "No traces match" in r.text and "/v1/traces" in r.text


# --- one trace -----------------------------------------------------------------------------


async def test_trace_page_shows_waterfall_conversation_tools_prices_and_feedback(
    client: httpx.AsyncClient, seeded: DuckDBStore
) -> None:
    seeded.add_feedback(
        [
            make_feedback("default", tid(7), "helpfulness", 0.25, span_id=sid(7, 2),
                          source="judge", author="judge-v1", comment="too vague"),
            make_feedback("default", tid(7), "thumbs", False, source="user"),
        ]
    )  # fmt: skip
    r = await client.get(f"/traces/{tid(7).upper()}")
    assert r.status_code == 200
    page = r.text
    # Waterfall: one row per span, children indented, the error span marked.
    rows = re.findall(r'<a class="wf-row ([^"]*)" href="\?span=([0-9a-f]+)#detail"', page)
    assert [s for _, s in rows] == [sid(7, 1), sid(7, 2), sid(7, 3)]
    assert all("is-error" in cls for cls, _ in rows[:2]) and "is-error" not in rows[2][0]
    assert "padding-left: 22px" in page  # depth 1
    assert "rate limited" in page
    # Conversation: roles, the tool call with its arguments and the tool's result.
    for role in ("role-system", "role-user", "role-assistant", "role-tool"):
        assert role in page
    assert "→ calls" in page and "lookup" in page and "&#34;order&#34;: 7" in page
    assert "← result" in page and "shipped" in page
    # LLM calls with price per million tokens; the tool call table; attributes.
    assert "$2.5 / $10" in page and "$0.00800" in page
    assert 'id="tool-calls"' in page and "execute_tool lookup" in page
    assert "gen_ai.usage.input_tokens" in page and "service.version" in page
    # Feedback of the trace and of its spans.
    assert "helpfulness" in page and "0.25" in page and "too vague" in page
    assert "✗ down" in page
    # A span picked by ?span= is the one shown.
    r = await client.get(f"/traces/{tid(7)}", params={"span": sid(7, 3)})
    detail = r'<section class="span-detail" id="span-([0-9a-f]+)"[^>]*?(hidden)?>'
    shown = re.findall(detail, r.text)
    assert [s for s, hidden in shown if not hidden] == [sid(7, 3)]


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        (f"/traces/{'ab' * 16}", 404, "no trace abababab"),
        ("/traces/not-a-trace", 400, "is not 32 hexadecimal characters"),
        (f"/traces/{'0' * 31}7?span=zz", 400, "is not a span of trace"),
        (f"/traces/{'0' * 31}7?span={'1' * 16}", 404, "is not a span of trace"),
    ],
)
async def test_trace_page_errors(
    client: httpx.AsyncClient, seeded: DuckDBStore, path: str, status: int, message: str
) -> None:
    r = await client.get(path)
    assert r.status_code == status and message in r.text


def test_waterfall_positions_and_orphans() -> None:
    spans = make_trace(3)
    orphan = replace(spans[2], span_id="f" * 16, parent_span_id="e" * 16)
    rows, total = waterfall([*spans, orphan], [])
    assert total == pytest.approx(1030.0)
    assert [(r.span.span_id, r.depth) for r in rows] == [
        (sid(3, 1), 0), (sid(3, 2), 1), (sid(3, 3), 1), ("f" * 16, 0)
    ]  # fmt: skip
    llm = rows[1]
    assert llm.left == pytest.approx(100 * 100 / 1030) and llm.width == pytest.approx(
        100 * 500 / 1030
    )


def test_messages_from_both_conventions() -> None:
    # OpenInference: tool calls as name/arguments/id, a tool message with tool_call_id.
    oi = message_view({"role": "tool", "content": "42", "tool_call_id": "x"})
    assert (oi.css, oi.text, oi.extra) == ("tool", "42", {"tool_call_id": "x"})
    # GenAI JSON: a non-text part is kept for display.
    gen = message_view({"role": "user", "parts": [{"type": "image", "uri": "a.png"}]})
    assert gen.text is None and "a.png" in gen.extra["parts"]
    odd = message_view({"role": "critic", "content": ["a", "b"]}, output=True)
    assert odd.css == "other" and odd.output and '"a"' in odd.extra["parts"]
    spans = make_trace(1)
    assert main_conversation(spans) is spans[1]


# --- actions -------------------------------------------------------------------------------


async def _token(client: httpx.AsyncClient, trace: str) -> str:
    return csrf_of((await client.get(f"/traces/{trace}")).text)


async def test_feedback_actions_store_what_they_say(
    client: httpx.AsyncClient, seeded: DuckDBStore
) -> None:
    t = tid(5)
    token = await _token(client, t)
    r = await client.post(
        f"/traces/{t}/feedback",
        data={"csrf_token": token, "action": "up", "comment": "spot on", "id": "f-1"},
    )
    assert r.status_code == 303 and r.headers["location"] == f"/traces/{t}#feedback"
    page = await client.get(r.headers["location"])
    assert "Feedback stored on the trace: thumbs = up." in page.text
    [up] = seeded.list_feedback("default", trace_id=t)
    assert (up.name, up.kind, up.number, up.comment, up.source, up.author) == (
        "thumbs", "boolean", 1.0, "spot on", "reviewer", "dashboard"
    )  # fmt: skip
    # The same form sent twice stores nothing new.
    again = await client.post(
        f"/traces/{t}/feedback",
        data={"csrf_token": token, "action": "up", "comment": "spot on", "id": "f-1"},
    )
    assert again.status_code == 303
    assert len(seeded.list_feedback("default", trace_id=t)) == 1
    for value, kind in (("4", "number"), ("billing", "category"), ("", "comment")):
        r = await client.post(
            f"/traces/{t}/feedback",
            data={"csrf_token": token, "action": "label", "name": "quality", "value": value,
                  "comment": "noted", "span_id": sid(5, 2)},
        )  # fmt: skip
        assert r.status_code == 303 and f"span={sid(5, 2)}" in r.headers["location"]
        latest = seeded.list_feedback("default", trace_id=t, name="quality")[0]
        assert latest.kind == kind and latest.span_id == sid(5, 2)
    assert len(seeded.list_feedback("default", trace_id=t, name="quality")) == 3


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        ({"action": "label", "name": "bad name!", "value": "x"}, 400, "name &#39;bad name!&#39;"),
        ({"action": "label", "name": "q", "value": ""}, 400, "give a value"),
        ({"action": "label", "name": "", "value": "1"}, 400, "name is empty"),
        ({"action": "maybe"}, 400, "must be up, down or label"),
        ({"action": "up", "span_id": "0" * 16}, 400, "is not a span of this trace"),
    ],
)
async def test_bad_feedback_is_a_4xx_and_stores_nothing(
    client: httpx.AsyncClient,
    seeded: DuckDBStore,
    data: dict[str, str],
    status: int,
    message: str,
) -> None:
    t = tid(5)
    token = await _token(client, t)
    r = await client.post(f"/traces/{t}/feedback", data={"csrf_token": token, **data})
    assert r.status_code == status and message in r.text
    assert seeded.list_feedback("default", trace_id=t) == []


async def test_feedback_on_an_unknown_trace_is_a_404(
    client: httpx.AsyncClient, seeded: DuckDBStore
) -> None:
    token = await _token(client, tid(5))
    r = await client.post(
        f"/traces/{'c' * 32}/feedback", data={"csrf_token": token, "action": "up"}
    )
    assert r.status_code == 404
    assert seeded.list_feedback("default", trace_id="c" * 32) == []


@pytest.mark.parametrize("action", ["feedback", "queue", "promote"])
@pytest.mark.parametrize("token", [None, "forged"])
async def test_actions_without_the_csrf_token_are_403_and_write_nothing(
    client: httpx.AsyncClient, seeded: DuckDBStore, action: str, token: str | None
) -> None:
    t = tid(4)
    await client.get(f"/traces/{t}")
    data = {"action": "up", "queue": "q1", "label_name": "ok", "label_kind": "boolean",
            "golden": "support"}  # fmt: skip
    if token:
        data["csrf_token"] = token
    r = await client.post(f"/traces/{t}/{action}", data=data)
    assert r.status_code == 403 and "CSRF" in r.text
    assert seeded.list_feedback("default", trace_id=t) == []
    assert seeded.list_queues("default") == []
    assert seeded.list_golden_versions("default") == []


async def test_send_to_queue_makes_a_hand_picked_queue_of_the_trace(
    client: httpx.AsyncClient, seeded: DuckDBStore
) -> None:
    t = tid(8)
    token = await _token(client, t)
    data = {"csrf_token": token, "queue": "review-8", "label_name": "quality",
            "label_kind": "category", "label_values": "good,bad",
            "instructions": "look"}  # fmt: skip
    r = await client.post(f"/traces/{t}/queue", data=data)
    assert r.status_code == 303
    assert "Queue &#39;review-8&#39; created" in (await client.get(r.headers["location"])).text
    queue = seeded.get_queue("default", "review-8")
    assert queue is not None
    assert queue.strategy == HAND_PICKED and not queue.probability_sample
    assert queue.label.values == ("good", "bad") and queue.instructions == "look"
    [item] = seeded.list_queue_items("default", "review-8")
    assert (item.trace_id, item.span_id) == (t, sid(8, 1))
    # Labelled on the root span, like random queues (where calibration meets judge scores).
    assert item.inclusion_probability is None and item.label_span_id == sid(8, 1)
    assert item.input_text == "question 8 about passwords"
    # The name is taken now; bad label specs say what to give.
    r = await client.post(f"/traces/{t}/queue", data=data)
    assert r.status_code == 409 and "already exists" in r.text
    r = await client.post(f"/traces/{t}/queue", data={**data, "queue": "q2", "label_values": ""})
    assert r.status_code == 400 and "--values" in r.text
    r = await client.post(f"/traces/{t}/queue", data={**data, "queue": "bad name"})
    assert r.status_code == 400
    assert [q.name for q in seeded.list_queues("default")] == ["review-8"]


def queue_choices(page: str) -> list[str]:
    """The queues offered under 'Add to an existing queue' (none: no such form)."""
    found = re.search(r'<form[^>]*id="queue-add-form".*?</form>', page, re.S)
    return re.findall(r'<option value="([^"]+)"', found.group(0)) if found else []


async def test_add_to_an_existing_hand_picked_queue(
    client: httpx.AsyncClient, seeded: DuckDBStore
) -> None:
    assert queue_choices((await client.get(f"/traces/{tid(9)}")).text) == []
    ok = label_spec("ok", boolean=True)
    create_queue(seeded, QueueSpec("sample", "random", 3, ok, SpanFilter("default"), seed=1))
    create_queue(seeded, QueueSpec("full", HAND_PICKED, 1, ok, SpanFilter("default")))
    token = await _token(client, tid(8))
    new = {"csrf_token": token, "mode": "new", "queue": "review-8", "label_name": "quality",
           "label_kind": "boolean"}  # fmt: skip
    assert (await client.post(f"/traces/{tid(8)}/queue", data=new)).status_code == 303
    full = {"csrf_token": token, "mode": "existing", "existing": "full"}
    assert (await client.post(f"/traces/{tid(8)}/queue", data=full)).status_code == 303

    # Only hand-picked queues with room are offered: not the sample, not the full one.
    t = tid(9)
    page = (await client.get(f"/traces/{t}")).text
    assert queue_choices(page) == ["review-8"]
    assert "review-8 · quality · 1 item<" in html.unescape(page)
    data = {"csrf_token": csrf_of(page), "mode": "existing", "existing": "review-8"}
    r = await client.post(f"/traces/{t}/queue", data=data)
    assert r.status_code == 303
    shown = html.unescape((await client.get(r.headers["location"])).text)
    assert "Added this trace to queue 'review-8' (now 2 items)" in shown
    items = seeded.list_queue_items("default", "review-8")
    assert [(i.item_id, i.trace_id, i.span_id) for i in items] == [
        (1, tid(8), sid(8, 1)),
        (2, t, sid(9, 1)),
    ]
    assert items[1].input_text == "question 9 about refunds" and items[1].label_span_id
    assert items[1].context["reason"]["added_by"] == "dashboard"
    assert items[1].context["reason"]["why"] == "picked on the trace page"

    # Again: nothing is added, and the message says so.
    r = await client.post(f"/traces/{t}/queue", data=data)
    shown = html.unescape((await client.get(r.headers["location"])).text)
    assert "This trace is already in queue 'review-8'; nothing was added." in shown
    assert len(seeded.list_queue_items("default", "review-8")) == 2

    cases = [
        ({"existing": "sample"}, 409, "is a random sample"),
        ({"existing": "full"}, 409, "may hold at most 1"),
        ({"existing": "nope"}, 404, "no queue named 'nope'"),
        ({"existing": ""}, 400, "choose a hand-picked queue"),
        ({"mode": "other"}, 400, "mode 'other' must be existing or new"),
    ]
    for extra, status, message in cases:
        r = await client.post(f"/traces/{t}/queue", data={**data, **extra})
        assert r.status_code == status, (extra, r.text)
        assert message in html.unescape(r.text), (extra, r.text)
    # A new queue under a hand-picked queue's name points at the list.
    r = await client.post(f"/traces/{t}/queue", data={**new, "csrf_token": data["csrf_token"]})
    assert r.status_code == 409 and "choose it under" in html.unescape(r.text)
    r = await client.post(
        f"/traces/{t}/queue", data={**new, "queue": "sample", "csrf_token": data["csrf_token"]}
    )
    assert r.status_code == 409 and "random queue, whose items are fixed" in html.unescape(r.text)
    # Without the CSRF token nothing is added.
    r = await client.post(f"/traces/{tid(10)}/queue", data={**data, "csrf_token": "forged"})
    assert r.status_code == 403
    assert len(seeded.list_queue_items("default", "review-8")) == 2
    sample = seeded.get_queue("default", "sample")
    assert sample is not None and sample.item_count == 3


async def test_promote_adds_a_case_with_provenance_and_links_the_golden_set(
    client: httpx.AsyncClient, seeded: DuckDBStore
) -> None:
    t = tid(9)
    token = await _token(client, t)
    r = await client.post(
        f"/traces/{t}/promote",
        data={"csrf_token": token, "golden": "support", "expected": "a refund in 5 days"},
    )
    assert r.status_code == 303
    assert r.headers["location"] == f"/traces/{t}?promoted=support"
    [version] = seeded.list_golden_versions("default", "support")
    page = (await client.get(r.headers["location"])).text
    assert f"new version {version.short} with 1 cases" in page
    assert '<a href="/goldens/support">' in page
    [case] = seeded.golden_cases("default", "support", version.version)
    assert case["expected"] == "a refund in 5 days"
    prov = case["metadata"]["provenance"]
    assert (prov["trace_id"], prov["span_id"], prov["expected_from"], prov["promoted_by"]) == (
        t, sid(9, 1), "given", "dashboard"
    )  # fmt: skip
    # Again: nothing new. Another span of another trace: a second version.
    r = await client.post(f"/traces/{t}/promote", data={"csrf_token": token, "golden": "support"})
    assert "nothing new was stored" in (await client.get(r.headers["location"])).text
    assert len(seeded.list_golden_versions("default", "support")) == 1
    r = await client.post(
        f"/traces/{tid(10)}/promote",
        data={"csrf_token": token, "golden": "support", "span_id": sid(10, 2)},
    )
    assert r.status_code == 303
    assert len(seeded.list_golden_versions("default", "support")) == 2
    newest = seeded.list_golden_versions("default", "support")[0]
    cases = {c["id"]: c for c in seeded.golden_cases("default", "support", newest.version)}
    assert cases[f"trace-{tid(10)[:16]}-{sid(10, 2)[:8]}"]["input"] == "question 10 about passwords"


async def test_promote_takes_the_expected_answer_from_a_reviewer_label(
    client: httpx.AsyncClient, seeded: DuckDBStore
) -> None:
    t = tid(11)
    seeded.add_feedback(
        [make_feedback("default", t, "answer", comment="ship it", source="reviewer")]
    )
    page = (await client.get(f"/traces/{t}")).text
    assert ">ship it</textarea>" in page  # the default, shown for editing
    r = await client.post(
        f"/traces/{t}/promote",
        data={"csrf_token": csrf_of(page), "golden": "g1", "expected": "ship it"},
    )
    assert r.status_code == 303
    [version] = seeded.list_golden_versions("default", "g1")
    [case] = seeded.golden_cases("default", "g1", version.version)
    assert case["expected"] == "ship it"
    assert case["metadata"]["provenance"]["expected_from"] == "label"


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        ({"golden": "no spaces"}, 400, "golden set name"),
        ({"golden": "g", "span_id": "0" * 16}, 400, "is not a span of this trace"),
    ],
)
async def test_bad_promotions_are_4xx_and_store_nothing(
    client: httpx.AsyncClient,
    seeded: DuckDBStore,
    data: dict[str, str],
    status: int,
    message: str,
) -> None:
    t = tid(12)
    token = await _token(client, t)
    r = await client.post(f"/traces/{t}/promote", data={"csrf_token": token, **data})
    assert r.status_code == status and message in r.text
    assert seeded.list_golden_versions("default") == []


async def test_promote_of_an_unknown_trace_is_a_404(
    client: httpx.AsyncClient, seeded: DuckDBStore
) -> None:
    token = await _token(client, tid(1))
    r = await client.post(f"/traces/{'d' * 32}/promote", data={"csrf_token": token, "golden": "g"})
    assert r.status_code == 404
    assert parse_qs(urlsplit(str(r.url)).query) == {}


async def test_flash_messages_survive_text_outside_latin_1(
    client: httpx.AsyncClient, seeded: DuckDBStore
) -> None:
    token = await _token(client, tid(14))
    data = {"csrf_token": token, "golden": "g", "case_id": "caf\u00e9-\u2713"}
    r = await client.post(f"/traces/{tid(14)}/promote", data=data)
    assert r.status_code == 303
    page = html.unescape((await client.get(r.headers["location"])).text)
    assert "case 'caf\u00e9-\u2713'" in page


async def test_promote_under_a_taken_case_id_is_a_409(
    client: httpx.AsyncClient, seeded: DuckDBStore
) -> None:
    token = await _token(client, tid(12))
    data = {"csrf_token": token, "golden": "g", "case_id": "same"}
    assert (await client.post(f"/traces/{tid(12)}/promote", data=data)).status_code == 303
    r = await client.post(f"/traces/{tid(13)}/promote", data=data)
    assert r.status_code == 409 and "already has a case" in html.unescape(r.text)
    assert len(seeded.list_golden_versions("default", "g")) == 1
