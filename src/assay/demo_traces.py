"""Production traffic for ``assay demo``: seeded OTLP requests of a support app over weeks.

The spans are built as OpenTelemetry protobuf messages (GenAI ``gen_ai.*`` attributes,
message events and OpenInference ``llm.*`` attributes, as real instrumentation sends them)
and go through the same decoding, mapping and pricing as an OTLP request to the server.
A new release of the support bot rolls out in the third week and changes the traffic: the
drift episode the demo's monitors find.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Status
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

#: Every demo span carries this environment (resource ``deployment.environment.name``).
ENVIRONMENT = "demo"
OLD_RELEASE = "v1.8.2"
NEW_RELEASE = "v1.9.0"
DOCS_RELEASE = "2.4.1"
#: A self-hosted model the price table does not know: the "unpriced models" list.
UNPRICED_MODEL = "acme-router-8b"

_SYSTEM = (
    "You are the support assistant of Acme Cloud. Answer from the documents given, cite "
    "them as [doc-N], and hand over to a human when you are unsure."
)


@dataclass(frozen=True)
class Topic:
    """A kind of question users ask: how to ask it, the fact a good answer holds, the doc."""

    name: str
    questions: tuple[str, ...]
    fact: str
    answer: str
    doc: str
    #: Share of questions before and after the new release (the input drift).
    before: float
    after: float


TOPICS: tuple[Topic, ...] = (
    Topic(
        "refund",
        (
            "How do I get a refund for order {order}?",
            "I was charged for order {order} but never received it. Can I get my money back?",
            "What's your refund policy? I bought the wrong plan yesterday.",
        ),
        "within 14 days",
        "You can ask for a full refund within 14 days of purchase from Billing > Orders; "
        "the money is back on your card in 5 business days.",
        "Refund policy: full refunds within 14 days of purchase.",
        0.22,
        0.12,
    ),
    Topic(
        "shipping",
        (
            "Where is my package? Order {order} was supposed to arrive {days} days ago.",
            "My order {order} still says 'label created'. Is it lost?",
            "Can you ship to Norway, and how long does it take?",
        ),
        "tracking link",
        "Orders ship within 2 business days; the tracking link in your confirmation email "
        "shows where the parcel is. If it has not moved for 5 days we send a new one.",
        "Shipping: dispatched in 2 business days, tracking link in the confirmation email.",
        0.2,
        0.1,
    ),
    Topic(
        "password",
        (
            "I can't log in, how do I reset my password?",
            "The password reset email never arrives. What now?",
            "My account is locked after too many attempts.",
        ),
        "reset link",
        "Use 'Forgot password' on the sign-in page; the reset link is valid for 30 minutes. "
        "Check your spam folder, and a locked account unlocks itself after 15 minutes.",
        "Accounts: reset link valid 30 minutes; lockout lasts 15 minutes.",
        0.18,
        0.1,
    ),
    Topic(
        "billing",
        (
            "Why was I charged twice this month?",
            "Can I get an invoice with my company's VAT number?",
            "My card was declined but I still see a pending charge.",
        ),
        "invoice",
        "A second charge is usually a pending authorisation that drops off in 3 days. You "
        "can download every invoice, with your VAT number, under Billing > Invoices.",
        "Billing: authorisations expire in 3 days; invoices under Billing > Invoices.",
        0.16,
        0.1,
    ),
    Topic(
        "api",
        (
            "What is the rate limit of the API?",
            "I keep getting HTTP 429 from /v2/deploy. How do I avoid it?",
            "Is there a sandbox for testing the API?",
        ),
        "600 requests per minute",
        "The API allows 600 requests per minute per key; a 429 comes with Retry-After, so "
        "back off for that many seconds. Sandbox keys start with sk_test_.",
        "API: 600 requests per minute per key, Retry-After on 429.",
        0.2,
        0.12,
    ),
    Topic(
        "annual-plan",
        (
            "Can I switch to the new annual plan and keep my discount?",
            "Is the annual plan billed up front? What if I cancel after 3 months?",
            "How much do I save with the annual plan for {seats} seats?",
        ),
        "2 months free",
        "The annual plan gives you 2 months free compared with monthly billing and is "
        "billed up front; existing discounts carry over when you switch.",
        "Annual plan: 2 months free, billed up front, discounts carry over.",
        0.02,
        0.24,
    ),
    Topic(
        "sso",
        (
            "How do I set up SSO with Okta for my team?",
            "Does SSO work with Azure AD, and is it on the Team plan?",
            "After enabling SSO our contractors can't sign in.",
        ),
        "SAML",
        "SSO uses SAML 2.0 and works with Okta, Azure AD and Google; turn it on under "
        "Settings > Security. Guests outside your domain keep password sign-in.",
        "SSO: SAML 2.0 with Okta, Azure AD and Google, under Settings > Security.",
        0.02,
        0.22,
    ),
)

#: (route, service, share of traffic).
ROUTES = (
    ("/chat", "support-bot", 0.55),
    ("/answer", "support-bot", 0.25),
    ("/summarize", "docs-search", 0.2),
)
_TOOLS = ("lookup_order", "create_ticket")
_ERRORS = (
    ("RateLimitError: 429 Too Many Requests (retry after 2s)", 0.4),
    ("APITimeoutError: the model did not answer within 30 s", 0.45),
    ("BadRequestError: 400 context_length_exceeded", 0.15),
)


@dataclass
class DemoTrace:
    """What the generator knows about one trace (the store holds the spans)."""

    trace_id: str
    root_span_id: str
    start: datetime
    route: str
    service: str
    release: str
    topic: str
    user_id: str
    session_id: str
    error: bool
    #: Whether the answer is good (the truth the simulated judge and labellers see noisily).
    good: bool
    question: str
    answer: str
    turns: int = 1
    tool: str | None = None


@dataclass
class Traffic:
    """The generated traces, in start order, and the time the new release rolled out."""

    traces: list[DemoTrace] = field(default_factory=list)
    rollout_start: datetime | None = None
    rollout_end: datetime | None = None


def _value(v: Any) -> AnyValue:
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, list | tuple):
        return AnyValue(array_value=ArrayValue(values=[_value(x) for x in v]))
    return AnyValue(string_value=str(v))


def _attrs(d: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=_value(v)) for k, v in d.items() if v is not None]


def _ns(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000) * 1000


class _Builder:
    """Seeded spans of one trace at a time."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def span_id(self) -> bytes:
        return self.rng.getrandbits(64).to_bytes(8, "big") or b"\x01" * 8

    def span(
        self,
        trace_id: bytes,
        parent: bytes | None,
        name: str,
        start: datetime,
        ms: float,
        attrs: dict[str, Any],
        *,
        kind: int = 1,
        error: str | None = None,
        events: list[tuple[str, datetime, dict[str, Any]]] = (),  # type: ignore[assignment]
        span_id: bytes | None = None,
    ) -> PbSpan:
        end = start + timedelta(milliseconds=ms)
        sp = PbSpan(
            trace_id=trace_id,
            span_id=span_id or self.span_id(),
            parent_span_id=parent or b"",
            name=name,
            kind=kind,  # type: ignore[arg-type]
            start_time_unix_nano=_ns(start),
            end_time_unix_nano=_ns(end),
            attributes=_attrs(attrs),
            status=Status(code=Status.STATUS_CODE_ERROR, message=error)
            if error
            else Status(code=Status.STATUS_CODE_OK),
        )
        for ev_name, ev_time, ev_attrs in events:
            ev = sp.events.add()
            ev.name = ev_name
            ev.time_unix_nano = _ns(ev_time)
            ev.attributes.extend(_attrs(ev_attrs))
        return sp


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


def _tokens(text: str) -> int:
    return max(1, round(len(text) / 4))


def _pick_topic(rng: random.Random, new: bool) -> Topic:
    weights = [t.after if new else t.before for t in TOPICS]
    return rng.choices(TOPICS, weights)[0]


def _question(rng: random.Random, topic: Topic) -> str:
    return rng.choice(topic.questions).format(
        order=f"A-{rng.randrange(10_000, 99_999)}",
        days=rng.randrange(3, 12),
        seats=rng.choice((5, 12, 40)),
    )


def _answer(rng: random.Random, topic: Topic, new: bool, good: bool, doc: int) -> str:
    if good:
        text = f"{topic.answer} [doc-{doc}]"
    else:
        text = (
            "I'm not sure about that. It may depend on your plan; please check the help "
            "center or contact our team."
        )
    if new:
        # The v1.9 prompt asks for "thorough, friendly" answers: longer, more tokens.
        text = (
            "Thanks for reaching out, happy to help with that! "
            + text
            + " To summarise the steps: open your account settings, find the section named "
            "above, and follow the prompts there. If anything looks different on your "
            "screen, reply here with a screenshot and I'll walk you through it. Is there "
            "anything else I can help you with today?"
        )
    return text


def _day_weight(t: datetime) -> float:
    # Busier in working hours (UTC) and on weekdays.
    hour = t.hour + t.minute / 60
    daily = 0.35 + math.exp(-(((hour - 14.0) / 4.5) ** 2))
    return daily * (0.55 if t.weekday() >= 5 else 1.0)


def plan_traffic(
    rng: random.Random, now: datetime, weeks: int, count: int
) -> tuple[list[datetime], datetime, datetime]:
    """Start times of ``count`` traces over the last ``weeks`` weeks (diurnal, weekly
    shape), and when the new release's rollout starts and ends."""
    span_s = weeks * 7 * 86_400
    starts: list[datetime] = []
    begin = now - timedelta(seconds=span_s)
    while len(starts) < count:
        t = begin + timedelta(seconds=rng.uniform(60, span_s - 60))
        if rng.random() * 1.4 < _day_weight(t):
            starts.append(t)
    starts.sort()
    # Week 3 of 4 (the same share of a longer or shorter history): a canary day, then all.
    rollout_start = begin + timedelta(seconds=span_s * 0.55)
    return starts, rollout_start, rollout_start + timedelta(days=1)


def _is_new(rng: random.Random, t: datetime, r0: datetime, r1: datetime) -> bool:
    if t < r0:
        return False
    if t >= r1:
        return True
    return rng.random() < 0.1 + 0.9 * (t - r0) / (r1 - r0)


def generate(
    seed: int, now: datetime, weeks: int, count: int, batch: int = 400
) -> Iterator[tuple[ExportTraceServiceRequest, list[DemoTrace]]]:
    """OTLP requests of ``batch`` traces each, with what each trace is about."""
    rng = random.Random(seed)
    starts, r0, r1 = plan_traffic(rng, now, weeks, count)
    users = [f"user-{rng.randrange(16**6):06x}" for _ in range(max(20, count // 12))]
    builder = _Builder(rng)
    for lo in range(0, len(starts), batch):
        groups: dict[tuple[str, str], list[PbSpan]] = {}
        infos: list[DemoTrace] = []
        for t in starts[lo : lo + batch]:
            route, service, _ = rng.choices(ROUTES, [w for _, _, w in ROUTES])[0]
            new = service == "support-bot" and _is_new(rng, t, r0, r1)
            release = (
                DOCS_RELEASE if service == "docs-search" else (NEW_RELEASE if new else OLD_RELEASE)
            )
            spans, info = _trace(builder, rng, t, route, service, release, new, users)
            groups.setdefault((service, release), []).extend(spans)
            infos.append(info)
        yield _request(groups), infos


def rollout(seed: int, now: datetime, weeks: int, count: int) -> tuple[datetime, datetime]:
    """When the new release's rollout starts and ends (as :func:`generate` plans it)."""
    _, r0, r1 = plan_traffic(random.Random(seed), now, weeks, count)
    return r0, r1


def _request(groups: dict[tuple[str, str], list[PbSpan]]) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    for (service, release), spans in groups.items():
        rs = ResourceSpans(
            resource=Resource(
                attributes=_attrs(
                    {
                        "service.name": service,
                        "service.version": release,
                        "deployment.environment.name": ENVIRONMENT,
                        "telemetry.sdk.language": "python",
                        "assay.demo": True,
                    }
                )
            ),
            scope_spans=[
                ScopeSpans(
                    scope=InstrumentationScope(name="opentelemetry.instrumentation.openai"),
                    spans=spans,
                )
            ],
        )
        req.resource_spans.append(rs)
    return req


def _trace(
    b: _Builder,
    rng: random.Random,
    t: datetime,
    route: str,
    service: str,
    release: str,
    new: bool,
    users: list[str],
) -> tuple[list[PbSpan], DemoTrace]:
    trace_id = rng.getrandbits(128).to_bytes(16, "big")
    root_id = b.span_id()
    user = rng.choice(users)
    session = f"sess-{rng.getrandbits(40):010x}"
    topic = _pick_topic(rng, new) if service == "support-bot" else rng.choice(TOPICS)
    question = _question(rng, topic)
    # The new prompt drops the key fact more often, and the new topics are harder.
    p_good = 0.86 - (0.14 if new else 0.0) - (0.12 if topic.after > topic.before else 0.0)
    good = rng.random() < p_good
    p_error = 0.065 if new else (0.02 if service == "support-bot" else 0.025)
    error = rng.choices(_ERRORS, [w for _, w in _ERRORS])[0][0] if rng.random() < p_error else None
    doc = rng.randrange(1, 40)
    answer = _answer(rng, topic, new, good, doc)
    common = {"session.id": session, "user.id": user, "assay.route": route}
    spans: list[PbSpan] = []
    cursor = t + timedelta(milliseconds=rng.uniform(2, 8))
    turns = 1
    tool: str | None = None

    # Retriever.
    docs = [
        (f"doc-{doc}", topic.doc, round(rng.uniform(0.78, 0.93), 3)),
        (f"doc-{rng.randrange(40, 90)}", rng.choice(TOPICS).doc, round(rng.uniform(0.5, 0.75), 3)),
    ]
    r_ms = _lognormal(rng, 85.0, 0.35)
    r_attrs: dict[str, Any] = {
        "openinference.span.kind": "RETRIEVER",
        "input.value": question,
        **common,
    }
    for i, (did, content, score) in enumerate(docs):
        r_attrs[f"retrieval.documents.{i}.document.id"] = did
        r_attrs[f"retrieval.documents.{i}.document.content"] = content
        r_attrs[f"retrieval.documents.{i}.document.score"] = score
    spans.append(b.span(trace_id, root_id, "retrieve-docs", cursor, r_ms, r_attrs))
    cursor += timedelta(milliseconds=r_ms + rng.uniform(1, 5))
    context = "\n".join(f"[{d}] {c}" for d, c, _ in docs)

    if route == "/chat":
        if rng.random() < 0.35:
            # A routing step on a self-hosted model (OpenInference attributes, no price).
            names = ", ".join(x.name for x in TOPICS)
            prompt = f"Classify the support request into one of: {names}.\n\n{question}"
            in_tok, out_tok = _tokens(prompt) + 40, 3
            ms = _lognormal(rng, 140.0, 0.3)
            spans.append(
                b.span(
                    trace_id,
                    root_id,
                    "classify-intent",
                    cursor,
                    ms,
                    {
                        "openinference.span.kind": "LLM",
                        "llm.model_name": UNPRICED_MODEL,
                        "llm.provider": "vllm",
                        "llm.input_messages.0.message.role": "user",
                        "llm.input_messages.0.message.content": prompt,
                        "llm.output_messages.0.message.role": "assistant",
                        "llm.output_messages.0.message.content": topic.name,
                        "llm.token_count.prompt": in_tok,
                        "llm.token_count.completion": out_tok,
                        **common,
                    },
                    kind=3,
                )
            )
            cursor += timedelta(milliseconds=ms + 2)
        history: list[dict[str, Any]] = [
            {
                "role": "system",
                "parts": [{"type": "text", "content": f"{_SYSTEM}\n\nDocuments:\n{context}"}],
            }
        ]
        turns = rng.choice((1, 1, 1, 2, 3))
        for _ in range(turns - 1):
            other = rng.choice(TOPICS)
            history.append(
                {"role": "user", "parts": [{"type": "text", "content": _question(rng, other)}]}
            )
            history.append(
                {"role": "assistant", "parts": [{"type": "text", "content": other.answer}]}
            )
        history.append({"role": "user", "parts": [{"type": "text", "content": question}]})
        model = "gpt-4.1" if new else "gpt-4o-mini"
        response_model = "gpt-4.1-2025-04-14" if new else "gpt-4o-mini-2024-07-18"
        if error is None and topic.name in ("refund", "shipping") and rng.random() < 0.45:
            # The model asks for a tool; the app runs it and calls the model again.
            tool = rng.choice(_TOOLS)
            args = json.dumps({"order_id": f"A-{rng.randrange(10_000, 99_999)}"})
            call_id = f"call_{rng.getrandbits(48):012x}"
            out = [
                {
                    "role": "assistant",
                    "parts": [
                        {"type": "tool_call", "id": call_id, "name": tool, "arguments": args}
                    ],
                    "finish_reason": "tool_calls",
                }
            ]
            in_tok = sum(_tokens(json.dumps(m)) for m in history) + 120
            ms = _lognormal(rng, 420.0 if not new else 650.0, 0.3)
            spans.append(
                _genai_llm(
                    b,
                    trace_id,
                    root_id,
                    cursor,
                    ms,
                    model,
                    response_model,
                    history,
                    out,
                    in_tok,
                    24,
                    "tool_calls",
                    common,
                )
            )
            cursor += timedelta(milliseconds=ms + 1)
            tool_ms = _lognormal(rng, 60.0, 0.5)
            result = json.dumps(
                {
                    "status": rng.choice(("shipped", "processing", "refunded")),
                    "eta_days": rng.randrange(1, 6),
                }
            )
            spans.append(
                b.span(
                    trace_id,
                    root_id,
                    f"execute_tool {tool}",
                    cursor,
                    tool_ms,
                    {
                        "gen_ai.operation.name": "execute_tool",
                        "gen_ai.tool.name": tool,
                        "gen_ai.tool.call.id": call_id,
                        "input.value": args,
                        "output.value": result,
                        **common,
                    },
                )
            )
            cursor += timedelta(milliseconds=tool_ms + 1)
            history = [
                *history,
                *out,
                {
                    "role": "tool",
                    "id": call_id,
                    "parts": [{"type": "tool_call_response", "id": call_id, "response": result}],
                },
            ]
        out_msgs = [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": answer}],
                "finish_reason": "stop",
            }
        ]
        in_tok = sum(_tokens(json.dumps(m)) for m in history) + 40
        out_tok = _tokens(answer)
        ms = _lognormal(rng, 380.0, 0.25) + out_tok * (24.0 if new else 13.0) * _lognormal(
            rng, 1.0, 0.2
        )
        if error is not None:
            ms = 30_000.0 if "Timeout" in error else _lognormal(rng, 250.0, 0.3)
        spans.append(
            _genai_llm(
                b,
                trace_id,
                root_id,
                cursor,
                ms,
                model,
                response_model,
                history,
                None if error else out_msgs,
                in_tok,
                None if error else out_tok,
                None if error else "stop",
                common,
                error=error,
            )
        )
        cursor += timedelta(milliseconds=ms)
        root_name, root_kind = "support-agent", "AGENT"
    elif route == "/answer":
        model = "gpt-4.1-mini"
        prompt = f"{_SYSTEM}\n\nDocuments:\n{context}\n\nQuestion: {question}"
        out_tok = _tokens(answer)
        in_tok = _tokens(prompt)
        ms = _lognormal(rng, 300.0, 0.25) + out_tok * (15.0 if new else 11.0) * _lognormal(
            rng, 1.0, 0.2
        )
        if error is not None:
            ms = 30_000.0 if "Timeout" in error else _lognormal(rng, 250.0, 0.3)
        attrs: dict[str, Any] = {
            "openinference.span.kind": "LLM",
            "llm.model_name": model,
            "llm.provider": "openai",
            "llm.invocation_parameters": json.dumps({"model": model, "temperature": 0.2}),
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": f"{_SYSTEM}\n\nDocuments:\n{context}",
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.content": question,
            "llm.token_count.prompt": in_tok,
            **common,
        }
        if error is None:
            attrs["llm.output_messages.0.message.role"] = "assistant"
            attrs["llm.output_messages.0.message.content"] = answer
            attrs["llm.token_count.completion"] = out_tok
        spans.append(
            b.span(trace_id, root_id, "ChatCompletion", cursor, ms, attrs, kind=3, error=error)
        )
        cursor += timedelta(milliseconds=ms)
        root_name, root_kind = "answer-question", "CHAIN"
    else:
        model = "claude-3-5-haiku-20241022"
        answer = f"Summary: {topic.doc} {topic.answer}"
        good = True
        prompt = f"Summarise these documents for the question '{question}':\n{context}"
        in_tok, out_tok = _tokens(prompt) + 30, _tokens(answer)
        ms = _lognormal(rng, 450.0, 0.25) + out_tok * 16.0 * _lognormal(rng, 1.0, 0.2)
        if error is not None:
            ms = 30_000.0 if "Timeout" in error else _lognormal(rng, 250.0, 0.3)
        events: list[tuple[str, datetime, dict[str, Any]]] = [
            ("gen_ai.user.message", cursor, {"content": prompt})
        ]
        if error is None:
            events.append(
                (
                    "gen_ai.choice",
                    cursor + timedelta(milliseconds=ms),
                    {
                        "message": json.dumps({"role": "assistant", "content": answer}),
                        "finish_reason": "end_turn",
                        "index": 0,
                    },
                )
            )
        attrs = {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "anthropic",
            "gen_ai.request.model": "claude-3-5-haiku-latest",
            "gen_ai.response.model": model,
            "gen_ai.request.max_tokens": 512,
            "gen_ai.usage.input_tokens": in_tok,
            **common,
        }
        if error is None:
            attrs["gen_ai.usage.output_tokens"] = out_tok
            attrs["gen_ai.response.finish_reasons"] = ["end_turn"]
        spans.append(
            b.span(
                trace_id,
                root_id,
                "chat claude-3-5-haiku",
                cursor,
                ms,
                attrs,
                kind=3,
                error=error,
                events=events,
            )
        )
        cursor += timedelta(milliseconds=ms)
        root_name, root_kind = "summarize-docs", "CHAIN"

    total = (cursor - t) / timedelta(milliseconds=1) + rng.uniform(3, 15)
    root_attrs = {
        "openinference.span.kind": root_kind,
        "input.value": question,
        "output.value": None if error else answer,
        "http.route": route,
        "topic": topic.name,
        **common,
    }
    root_error = f"agent failed: {error}" if error else None
    spans.insert(
        0,
        b.span(
            trace_id,
            None,
            root_name,
            t,
            total,
            root_attrs,
            kind=2,
            error=root_error,
            span_id=root_id,
        ),
    )
    info = DemoTrace(
        trace_id=trace_id.hex(),
        root_span_id=root_id.hex(),
        start=t,
        route=route,
        service=service,
        release=release,
        topic=topic.name,
        user_id=user,
        session_id=session,
        error=error is not None,
        good=good and error is None,
        question=question,
        answer="" if error else answer,
        turns=turns,
        tool=tool,
    )
    return spans, info


def _genai_llm(
    b: _Builder,
    trace_id: bytes,
    parent: bytes,
    start: datetime,
    ms: float,
    model: str,
    response_model: str,
    messages: list[dict[str, Any]],
    output: list[dict[str, Any]] | None,
    in_tok: int,
    out_tok: int | None,
    finish: str | None,
    common: dict[str, Any],
    error: str | None = None,
) -> PbSpan:
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.request.temperature": 0.3,
        "gen_ai.usage.input_tokens": in_tok,
        "gen_ai.input.messages": json.dumps(messages),
        **common,
    }
    if error is None:
        attrs["gen_ai.response.model"] = response_model
        attrs["gen_ai.response.id"] = f"chatcmpl-{b.rng.getrandbits(64):016x}"
        attrs["gen_ai.usage.output_tokens"] = out_tok
        attrs["gen_ai.output.messages"] = json.dumps(output)
        attrs["gen_ai.response.finish_reasons"] = [finish]
        if in_tok > 1024:
            attrs["gen_ai.usage.cache_read.input_tokens"] = (in_tok // 2 // 128) * 128
    else:
        attrs["error.type"] = error.split(":", 1)[0]
    return b.span(trace_id, parent, f"chat {model}", start, ms, attrs, kind=3, error=error)
