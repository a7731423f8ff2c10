"""Semantic conventions (GenAI, OpenInference, legacy) map onto one span schema."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from assay.otlp import OtlpDecodeError, decode, parse_json, response_body
from assay.pricing import load_prices
from assay.synthetic import kv

TID = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
SID = bytes.fromhex("b7ad6b7169203331")
PRICES = load_prices()


def one_span(
    attrs: dict[str, Any],
    resource: dict[str, Any] | None = None,
    events: list[tuple[str, dict[str, Any]]] = (),
    **fields: Any,
) -> ExportTraceServiceRequest:  # type: ignore[assignment]
    sp = PbSpan(
        trace_id=TID,
        span_id=SID,
        name=fields.pop("name", "call"),
        start_time_unix_nano=1_700_000_000_000_000_000,
        end_time_unix_nano=1_700_000_001_500_000_000,
        **fields,
    )
    sp.attributes.extend(kv(k, v) for k, v in attrs.items())
    for name, eattrs in events:
        ev = sp.events.add(name=name, time_unix_nano=1_700_000_000_100_000_000)
        ev.attributes.extend(kv(k, v) for k, v in eattrs.items())
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend(kv(k, v) for k, v in (resource or {}).items())
    rs.scope_spans.add().spans.append(sp)
    return req


def mapped(req: ExportTraceServiceRequest):  # type: ignore[no-untyped-def]
    result = decode(req.SerializeToString(), False, "p", PRICES)
    assert result.rejected == 0, result.errors
    (span,) = result.spans
    return span


def test_genai_attributes_map_to_columns_and_cost() -> None:
    s = mapped(
        one_span(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.usage.input_tokens": 1000,
                "gen_ai.usage.output_tokens": 200,
                "gen_ai.usage.cache_read.input_tokens": 400,
                "gen_ai.response.finish_reasons": ["stop"],
                "gen_ai.input.messages": json.dumps(
                    [
                        {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
                        {"role": "user", "parts": [{"type": "text", "content": "hi there"}]},
                    ]
                ),
                "gen_ai.output.messages": json.dumps(
                    [
                        {
                            "role": "assistant",
                            "parts": [{"type": "text", "content": "hello"}],
                            "finish_reason": "stop",
                        }
                    ]
                ),
                "gen_ai.conversation.id": "conv-1",
                "http.route": "/chat",
            },
            resource={
                "service.name": "bot",
                "service.version": "v2",
                "deployment.environment.name": "prod",
            },
        )
    )
    assert (s.kind, s.operation, s.provider) == ("llm", "chat", "openai")
    assert (s.model, s.request_model) == ("gpt-4o-2024-08-06", "gpt-4o")
    assert (s.input_tokens, s.output_tokens, s.cached_input_tokens, s.total_tokens) == (
        1000,
        200,
        400,
        1200,
    )
    # gpt-4o: 2.50 in, 1.25 cached, 10.00 out per 1M; cached tokens are part of input.
    assert s.cost == pytest.approx((600 * 2.5 + 400 * 1.25 + 200 * 10.0) / 1e6)
    assert s.input_text == "hi there" and s.output_text == "hello"
    assert [m["role"] for m in s.input_messages] == ["system", "user"]
    assert s.finish_reason == "stop"
    assert (s.session_id, s.route, s.release, s.environment, s.service) == (
        "conv-1",
        "/chat",
        "v2",
        "prod",
        "bot",
    )
    assert s.duration_ms == pytest.approx(1500.0)
    assert s.attributes["gen_ai.request.model"] == "gpt-4o"  # every attribute kept


def test_openinference_attributes_map_to_columns() -> None:
    s = mapped(
        one_span(
            {
                "openinference.span.kind": "LLM",
                "llm.model_name": "gpt-4o-mini",
                "llm.provider": "openai",
                "llm.token_count.prompt": 10,
                "llm.token_count.completion": 5,
                "llm.token_count.total": 15,
                "llm.input_messages.0.message.role": "system",
                "llm.input_messages.0.message.content": "sys",
                "llm.input_messages.1.message.role": "user",
                "llm.input_messages.1.message.content": "what is 2+2?",
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "calc",
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": (
                    '{"x": 2}'
                ),
                "input.value": '{"messages": []}',
                "input.mime_type": "application/json",
                "output.value": "4",
                "session.id": "s1",
                "user.id": "u1",
            }
        )
    )
    assert (s.kind, s.model, s.provider) == ("llm", "gpt-4o-mini", "openai")
    assert (s.input_tokens, s.output_tokens, s.total_tokens) == (10, 5, 15)
    assert s.input_text == "what is 2+2?"  # readable text, not the JSON request
    assert s.output_text == "4"
    assert s.output_messages[0]["tool_calls"] == [{"name": "calc", "arguments": '{"x": 2}'}]
    assert (s.session_id, s.user_id) == ("s1", "u1")
    assert s.cost == pytest.approx((10 * 0.15 + 5 * 0.60) / 1e6)


def test_openinference_chain_keeps_plain_values() -> None:
    s = mapped(
        one_span({"openinference.span.kind": "CHAIN", "input.value": "q", "output.value": "a"})
    )
    assert (s.kind, s.input_text, s.output_text, s.model, s.cost) == ("chain", "q", "a", None, None)


def test_genai_messages_in_events() -> None:
    s = mapped(
        one_span(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.system": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
            },
            events=[
                ("gen_ai.system.message", {"content": "sys"}),
                ("gen_ai.user.message", {"content": "question?"}),
                (
                    "gen_ai.choice",
                    {
                        "message": json.dumps({"role": "assistant", "content": "answer"}),
                        "finish_reason": "stop",
                    },
                ),
            ],
        )
    )
    assert s.provider == "openai"
    assert s.input_text == "question?" and s.output_text == "answer"
    assert s.finish_reason == "stop"
    assert [e["name"] for e in s.events] == [
        "gen_ai.system.message",
        "gen_ai.user.message",
        "gen_ai.choice",
    ]


def test_legacy_prompt_completion_attributes() -> None:
    s = mapped(
        one_span(
            {
                "gen_ai.system": "anthropic",
                "gen_ai.request.model": "claude-3-5-haiku",
                "gen_ai.usage.prompt_tokens": 7,
                "gen_ai.usage.completion_tokens": 3,
                "gen_ai.prompt.0.role": "user",
                "gen_ai.prompt.0.content": "ping",
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.content": "pong",
            }
        )
    )
    assert (s.kind, s.input_text, s.output_text, s.input_tokens) == ("llm", "ping", "pong", 7)


def test_unknown_model_has_no_cost_and_tool_kind() -> None:
    s = mapped(one_span({"gen_ai.request.model": "my-local-model", "gen_ai.usage.input_tokens": 5}))
    assert s.model == "my-local-model" and s.cost is None
    t = mapped(one_span({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}))
    assert t.kind == "tool"


def test_status_kind_parent_and_times() -> None:
    req = one_span({}, kind=PbSpan.SPAN_KIND_CLIENT, parent_span_id=b"\x01" * 8)
    req.resource_spans[0].scope_spans[0].spans[0].status.code = 2
    req.resource_spans[0].scope_spans[0].spans[0].status.message = "boom"
    s = mapped(req)
    assert (s.status, s.status_message, s.otel_kind, s.kind) == ("error", "boom", "client", "span")
    assert s.parent_span_id == "01" * 8
    assert s.start_time.isoformat() == "2023-11-14T22:13:20+00:00"


def test_invalid_spans_are_counted_with_reasons() -> None:
    req = one_span({})
    spans = req.resource_spans[0].scope_spans[0].spans
    spans.add(
        trace_id=b"\x00" * 16,
        span_id=SID,
        name="zero trace",
        start_time_unix_nano=1,
        end_time_unix_nano=2,
    )
    spans.add(
        trace_id=TID,
        span_id=b"\x01" * 3,
        name="short span id",
        start_time_unix_nano=1,
        end_time_unix_nano=2,
    )
    spans.add(
        trace_id=TID,
        span_id=b"\x02" * 8,
        name="backwards",
        start_time_unix_nano=5,
        end_time_unix_nano=2,
    )
    result = decode(req.SerializeToString(), False, "p", PRICES)
    assert len(result.spans) == 1 and result.rejected == 3
    msg = result.error_message()
    assert "zero trace" in msg and "short span id" in msg and "end time is before" in msg
    assert b"rejected" in response_body(result.rejected, result.error_message(), json_encoding=True)


def test_json_encoding_with_hex_ids() -> None:
    body = json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]
                    },
                    "scopeSpans": [
                        {
                            "scope": {"name": "x"},
                            "spans": [
                                {
                                    "traceId": TID.hex(),
                                    "spanId": SID.hex(),
                                    "name": "j",
                                    "kind": 3,
                                    "startTimeUnixNano": "1700000000000000000",
                                    "endTimeUnixNano": "1700000000200000000",
                                    "attributes": [
                                        {
                                            "key": "gen_ai.usage.input_tokens",
                                            "value": {"intValue": "12"},
                                        },
                                        {
                                            "key": "gen_ai.request.model",
                                            "value": {"stringValue": "gpt-4o"},
                                        },
                                    ],
                                    "someFutureField": 1,
                                }
                            ],
                        }
                    ],
                }
            ]
        }
    ).encode()
    (s,) = decode(body, True, "p", PRICES).spans
    assert (s.trace_id, s.span_id, s.service, s.otel_kind, s.input_tokens) == (
        TID.hex(),
        SID.hex(),
        "svc",
        "client",
        12,
    )


@pytest.mark.parametrize("body", [b"\xff\xfe garbage", b"\x0a\xff\xff\xff\xff\x0f"])
def test_garbage_protobuf_raises_decode_error(body: bytes) -> None:
    with pytest.raises(OtlpDecodeError):
        decode(body, False, "p", PRICES)


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"resourceSpans": 5}'])
def test_bad_json_raises_decode_error(body: bytes) -> None:
    with pytest.raises(OtlpDecodeError):
        parse_json(body)


def test_message_attributes_live_once_in_message_columns() -> None:
    s = mapped(
        one_span(
            {
                "openinference.span.kind": "LLM",
                "llm.model_name": "gpt-4o",
                "llm.input_messages.0.message.role": "user",
                "llm.input_messages.0.message.content": "hello",
                "llm.input_messages.0.message.contents.0.message_content.type": "text",
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.content": "hi",
                "input.value": '{"model": "gpt-4o"}',
                "input.mime_type": "application/json",
                "output.value": "hi",
                "custom.flag": True,
            }
        )
    )
    # No flattened message keys left: their content (every sub-key) is in the messages.
    assert not [k for k in s.attributes if k.startswith("llm.input_messages.")]
    assert s.input_messages == [
        {"role": "user", "content": "hello", "contents.0.message_content.type": "text"}
    ]
    # input.value differs from input_text (raw request JSON), so it stays; output.value
    # equals output_text, so it lives only in the column.
    assert s.attributes["input.value"] == '{"model": "gpt-4o"}'
    assert "output.value" not in s.attributes and s.output_text == "hi"
    assert s.attributes["custom.flag"] is True


def test_openinference_request_model_comes_from_invocation_parameters() -> None:
    s = mapped(
        one_span(
            {
                "openinference.span.kind": "LLM",
                "llm.model_name": "gpt-4o-mini-2024-07-18",
                "llm.invocation_parameters": '{"model": "gpt-4o-mini", "temperature": 0}',
            }
        )
    )
    assert (s.model, s.request_model) == ("gpt-4o-mini-2024-07-18", "gpt-4o-mini")
