"""Realistic synthetic LLM traces as OTLP requests, for benchmarks, tests and demos.

Each trace is a root ``chain`` span with three children: a retriever, an LLM call
with OpenInference attributes and an LLM call with OpenTelemetry GenAI attributes,
carrying ~500-character inputs and outputs.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status

_WORDS = [
    "account",
    "order",
    "refund",
    "shipping",
    "invoice",
    "password",
    "delivery",
    "billing",
    "subscription",
    "upgrade",
    "cancel",
    "return",
    "warranty",
    "payment",
    "card",
    "address",
    "email",
    "login",
    "error",
    "page",
    "app",
    "mobile",
    "desktop",
    "discount",
    "coupon",
    "plan",
    "premium",
    "basic",
    "support",
    "agent",
    "ticket",
    "status",
    "tracking",
    "package",
    "carrier",
    "delay",
    "damaged",
    "missing",
    "item",
    "size",
    "color",
    "exchange",
    "policy",
    "days",
    "receipt",
    "charge",
    "twice",
    "bank",
    "statement",
    "currency",
    "tax",
    "region",
    "store",
    "pickup",
]
MODELS = ("gpt-4o-mini", "gpt-4o", "claude-3-5-haiku", "llama-3-70b-local")
ROUTES = ("/chat", "/search", "/summarize")
RELEASES = ("v1.4.0", "v1.5.0")


def any_value(value: Any) -> AnyValue:
    """A Python value (bool, int, float, list, else text) as an OTLP AnyValue."""
    v = AnyValue()
    if isinstance(value, bool):
        v.bool_value = value
    elif isinstance(value, int):
        v.int_value = value
    elif isinstance(value, float):
        v.double_value = value
    elif isinstance(value, list):
        v.array_value.SetInParent()  # an empty list is still a (present) array
        v.array_value.values.extend(any_value(x) for x in value)
    else:
        v.string_value = str(value)
    return v


def kv(key: str, value: Any) -> KeyValue:
    """One OTLP attribute."""
    return KeyValue(key=key, value=any_value(value))


def text(rng: random.Random, chars: int = 500) -> str:
    """Plausible support-chat text of about ``chars`` characters."""
    out: list[str] = []
    n = 0
    while n < chars:
        w = rng.choice(_WORDS)
        out.append(w)
        n += len(w) + 1
    return " ".join(out)[:chars]


def trace_spans(rng: random.Random, start_ns: int, error_rate: float = 0.02) -> list[PbSpan]:
    """The four spans of one synthetic trace starting at ``start_ns``."""
    trace_id = rng.getrandbits(128).to_bytes(16, "big")
    root_id = rng.getrandbits(64).to_bytes(8, "big")
    route = rng.choice(ROUTES)
    question = text(rng)
    answer = text(rng)
    t = start_ns
    spans = []
    root = PbSpan(
        trace_id=trace_id,
        span_id=root_id,
        name=f"POST {route}",
        kind=PbSpan.SPAN_KIND_SERVER,
        start_time_unix_nano=t,
    )
    root.attributes.extend(
        [
            kv("openinference.span.kind", "CHAIN"),
            kv("input.value", question),
            kv("output.value", answer),
            kv("http.route", route),
            kv("session.id", f"s{rng.randrange(5000)}"),
            kv("user.id", f"u{rng.randrange(1000)}"),
        ]
    )
    spans.append(root)
    retr = PbSpan(
        trace_id=trace_id,
        span_id=rng.getrandbits(64).to_bytes(8, "big"),
        parent_span_id=root_id,
        name="retrieve",
        start_time_unix_nano=t + 1_000_000,
    )
    retr.end_time_unix_nano = retr.start_time_unix_nano + int(rng.lognormvariate(17, 0.4))
    retr.attributes.extend(
        [kv("openinference.span.kind", "RETRIEVER"), kv("input.value", question[:120])]
    )
    spans.append(retr)
    model = rng.choice(MODELS)
    llm = PbSpan(
        trace_id=trace_id,
        span_id=rng.getrandbits(64).to_bytes(8, "big"),
        parent_span_id=root_id,
        name="ChatCompletion",
        kind=PbSpan.SPAN_KIND_CLIENT,
        start_time_unix_nano=retr.end_time_unix_nano,
    )
    llm.end_time_unix_nano = llm.start_time_unix_nano + int(rng.lognormvariate(20.5, 0.5))
    tin, tout = rng.randint(200, 1500), rng.randint(50, 400)
    llm.attributes.extend(
        [
            kv("openinference.span.kind", "LLM"),
            kv("llm.model_name", model),
            kv("llm.provider", "openai"),
            kv("llm.token_count.prompt", tin),
            kv("llm.token_count.completion", tout),
            kv("llm.token_count.total", tin + tout),
            kv("llm.input_messages.0.message.role", "system"),
            kv("llm.input_messages.0.message.content", "You are a helpful support agent."),
            kv("llm.input_messages.1.message.role", "user"),
            kv("llm.input_messages.1.message.content", question),
            kv("llm.output_messages.0.message.role", "assistant"),
            kv("llm.output_messages.0.message.content", answer),
            kv("input.value", json.dumps({"messages": [{"role": "user", "content": question}]})),
            kv("input.mime_type", "application/json"),
            kv("output.value", answer),
        ]
    )
    if rng.random() < error_rate:
        llm.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message="rate limited"))
    spans.append(llm)
    judge = PbSpan(
        trace_id=trace_id,
        span_id=rng.getrandbits(64).to_bytes(8, "big"),
        parent_span_id=root_id,
        name="chat gpt-4o-mini",
        kind=PbSpan.SPAN_KIND_CLIENT,
        start_time_unix_nano=llm.end_time_unix_nano,
    )
    judge.end_time_unix_nano = judge.start_time_unix_nano + int(rng.lognormvariate(19.5, 0.4))
    judge.attributes.extend(
        [
            kv("gen_ai.operation.name", "chat"),
            kv("gen_ai.provider.name", "openai"),
            kv("gen_ai.request.model", "gpt-4o-mini"),
            kv("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
            kv("gen_ai.usage.input_tokens", rng.randint(100, 600)),
            kv("gen_ai.usage.output_tokens", rng.randint(5, 60)),
            kv("gen_ai.response.finish_reasons", ["stop"]),
            kv(
                "gen_ai.input.messages",
                json.dumps(
                    [
                        {
                            "role": "user",
                            "parts": [
                                {
                                    "type": "text",
                                    "content": "Is this answer helpful? " + answer[:200],
                                }
                            ],
                        }
                    ]
                ),
            ),
            kv(
                "gen_ai.output.messages",
                json.dumps(
                    [
                        {
                            "role": "assistant",
                            "parts": [{"type": "text", "content": "yes"}],
                            "finish_reason": "stop",
                        }
                    ]
                ),
            ),
        ]
    )
    spans.append(judge)
    root.end_time_unix_nano = judge.end_time_unix_nano + 500_000
    return spans


def request(
    spans: list[PbSpan], service: str = "support-bot", release: str = "v1.5.0"
) -> ExportTraceServiceRequest:
    """Wrap spans in an ExportTraceServiceRequest with one resource and scope."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend(
        [
            kv("service.name", service),
            kv("service.version", release),
            kv("deployment.environment.name", "production"),
        ]
    )
    ss = rs.scope_spans.add()
    ss.scope.name = "assay.synthetic"
    ss.spans.extend(spans)
    return req


def batches(
    n_spans: int,
    batch_size: int,
    seed: int = 0,
    start_ns: int = 1_763_000_000 * 10**9,
    step_ns: int = 50_000_000,
) -> Iterator[ExportTraceServiceRequest]:
    """Requests of ``batch_size`` spans (whole traces) until ``n_spans`` are produced."""
    rng = random.Random(seed)
    made = 0
    t = start_ns
    while made < n_spans:
        spans: list[PbSpan] = []
        while len(spans) < batch_size and made + len(spans) < n_spans:
            spans.extend(trace_spans(rng, t))
            t += step_ns
        made += len(spans)
        yield request(spans, release=RELEASES[(t // (86400 * 10**9)) % len(RELEASES)])
