"""OTLP trace decoding and semantic-convention mapping onto assay's one span schema.

Both OpenTelemetry GenAI (``gen_ai.*``) and OpenInference (``llm.*``, ``input.value`` …)
spans end up as the same :class:`~assay.model.Span`; every attribute is also kept
verbatim in ``attributes`` so nothing the app sent is lost.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from assay.model import Span
from assay.pricing import PriceTable

log = logging.getLogger("assay.otlp")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_OTEL_KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")
_STATUS = ("unset", "ok", "error")
_GENAI_OPERATION_KIND = {
    "chat": "llm",
    "text_completion": "llm",
    "generate_content": "llm",
    "completion": "llm",
    "embeddings": "embedding",
    "execute_tool": "tool",
    "invoke_agent": "agent",
    "create_agent": "agent",
}
_OI_INPUT = re.compile(r"^llm\.input_messages\.(\d+)\.message\.(.+)$")
_OI_OUTPUT = re.compile(r"^llm\.output_messages\.(\d+)\.message\.(.+)$")
_LEGACY_PROMPT = re.compile(r"^gen_ai\.(prompt|completion)\.(\d+)\.(.+)$")
_GENAI_MESSAGE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


class OtlpDecodeError(ValueError):
    """The request body is not a valid OTLP ExportTraceServiceRequest."""


@dataclass
class DecodeResult:
    """Spans mapped from one request, and the spans that were rejected with why."""

    spans: list[Span] = field(default_factory=list)
    rejected: int = 0
    errors: list[str] = field(default_factory=list)

    def error_message(self) -> str:
        """A short summary of why spans were rejected (first few reasons)."""
        if not self.rejected:
            return ""
        shown = "; ".join(self.errors[:5])
        hidden = self.rejected - len(self.errors[:5])  # errors may hold only the first few
        more = f" (and {hidden} more)" if hidden > 0 else ""
        return f"{self.rejected} span(s) rejected: {shown}{more}"


def parse_protobuf(body: bytes) -> ExportTraceServiceRequest:
    """Parse an OTLP/protobuf body or raise :class:`OtlpDecodeError`."""
    try:
        return ExportTraceServiceRequest.FromString(body)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise OtlpDecodeError(
            f"body is not a valid OTLP protobuf ExportTraceServiceRequest: {exc}"
        ) from None


def _hex_ids_to_base64(obj: Any) -> None:
    # OTLP/JSON carries ids as hex, proto3 JSON expects base64: rewrite them in place.
    for rs in obj.get("resourceSpans") or ():
        for ss in rs.get("scopeSpans") or ():
            for sp in ss.get("spans") or ():
                for key in ("traceId", "spanId", "parentSpanId"):
                    if sp.get(key):
                        sp[key] = _hex_to_b64(sp[key])
                for link in sp.get("links") or ():
                    for key in ("traceId", "spanId"):
                        if link.get(key):
                            link[key] = _hex_to_b64(link[key])


def _hex_to_b64(value: Any) -> str:
    if not isinstance(value, str):
        raise OtlpDecodeError(f"span id {value!r} must be a hex string")
    try:
        return base64.b64encode(bytes.fromhex(value)).decode()
    except ValueError:
        # Not hex: leave invalid ids to the per-span validation (rejected, not a 400).
        return base64.b64encode(value.encode("utf-8", "replace")).decode()


def parse_json(body: bytes) -> ExportTraceServiceRequest:
    """Parse an OTLP/JSON body (hex ids, lowerCamelCase) or raise :class:`OtlpDecodeError`."""
    try:
        obj = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OtlpDecodeError(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise OtlpDecodeError("body is not valid OTLP/JSON: nested too deeply") from None
    if not isinstance(obj, dict):
        raise OtlpDecodeError('OTLP/JSON body must be an object with "resourceSpans"')
    try:
        _hex_ids_to_base64(obj)
        return json_format.ParseDict(obj, ExportTraceServiceRequest(), ignore_unknown_fields=True)
    except (json_format.ParseError, AttributeError, TypeError, RecursionError) as exc:
        raise OtlpDecodeError(
            f"body is not a valid OTLP/JSON ExportTraceServiceRequest: {exc}"
        ) from None


def response_body(rejected: int, error_message: str, json_encoding: bool) -> bytes:
    """The ExportTraceServiceResponse for a request, in the request's encoding."""
    resp = ExportTraceServiceResponse()
    if rejected:
        resp.partial_success.rejected_spans = rejected
        resp.partial_success.error_message = error_message
    if json_encoding:
        return json_format.MessageToJson(resp, indent=None).encode()
    return resp.SerializeToString()


def any_value(v: AnyValue) -> Any:
    """An OTLP AnyValue as a plain JSON-ready Python value."""
    which = v.WhichOneof("value")
    if which == "string_value":
        return v.string_value
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        return v.double_value
    if which == "bool_value":
        return v.bool_value
    if which == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return None


_SCALAR_VALUES = frozenset({"string_value", "int_value", "double_value", "bool_value"})


def attributes(kvs: Iterable[KeyValue]) -> dict[str, Any]:
    """OTLP attributes as a dict; a later duplicate key wins, as in the SDKs."""
    out: dict[str, Any] = {}
    for kv in kvs:
        # Scalars are nearly every attribute; reading them inline halves decode time here.
        v = kv.value
        which = v.WhichOneof("value")
        out[kv.key] = getattr(v, which) if which in _SCALAR_VALUES else any_value(v)
    return out


def _first(attrs: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        v = attrs.get(k)
        if v is not None and v != "":
            return v
    return None


_INT64_MAX = 2**63 - 1


def _int(value: Any) -> int | None:
    """A token count: a non-negative int64, else None (a bad count must not fail the batch)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        n = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return n if 0 <= n <= _INT64_MAX else None


def _str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _content_text(content: Any) -> str | None:
    """Text of a message content that may be a string, a list of parts, or absent."""
    if content is None:
        return None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict):
                t = part.get("content", part.get("text"))
                if isinstance(t, str):
                    texts.append(t)
            elif isinstance(part, str):
                texts.append(part)
        return "\n".join(texts) if texts else None
    if isinstance(content, dict):
        return _content_text(content.get("content", content.get("text")))
    return str(content)


def _openinference_messages(
    attrs: dict[str, Any], pattern: re.Pattern[str]
) -> list[dict[str, Any]]:
    by_index: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        if not key.startswith("llm."):
            continue
        m = pattern.match(key)
        if m is None:
            continue
        msg = by_index.setdefault(int(m.group(1)), {})
        rest = m.group(2)
        if rest == "role":
            msg["role"] = value
        elif rest == "content":
            msg["content"] = value
        elif rest == "name":
            msg["name"] = value
        elif rest.startswith("contents.") and rest.endswith(".message_content.text"):
            msg.setdefault("_parts", {})[int(rest.split(".")[1])] = value
        elif rest.startswith("tool_calls."):
            parts = rest.split(".")
            call = msg.setdefault("_calls", {}).setdefault(int(parts[1]), {})
            if rest.endswith("function.name"):
                call["name"] = value
            elif rest.endswith("function.arguments"):
                call["arguments"] = value
            elif rest.endswith("tool_call.id"):
                call["id"] = value
            else:
                call[".".join(parts[2:])] = value
        else:
            msg[rest] = value
    out = []
    for _, msg in sorted(by_index.items()):
        parts = msg.pop("_parts", None)
        if parts and "content" not in msg:
            msg["content"] = "\n".join(str(v) for _, v in sorted(parts.items()))
        calls = msg.pop("_calls", None)
        if calls:
            msg["tool_calls"] = [c for _, c in sorted(calls.items())]
        out.append(msg)
    return out


def _legacy_genai_messages(
    attrs: dict[str, Any],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    found: dict[str, dict[int, dict[str, Any]]] = {"prompt": {}, "completion": {}}
    for key, value in attrs.items():
        if not (key.startswith("gen_ai.prompt.") or key.startswith("gen_ai.completion.")):
            continue
        m = _LEGACY_PROMPT.match(key)
        if m is None:
            continue
        found[m.group(1)].setdefault(int(m.group(2)), {})[m.group(3)] = value
    return (
        [v for _, v in sorted(found["prompt"].items())],
        [v for _, v in sorted(found["completion"].items())],
    )


def _genai_json_messages(raw: Any) -> list[dict[str, Any]] | None:
    """``gen_ai.input.messages`` / ``gen_ai.output.messages``: JSON (string or value)."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            return [{"role": "user", "content": raw}]
    if not isinstance(raw, list):
        return None
    out = []
    for m in raw:
        if not isinstance(m, dict):
            continue
        # Keep every original key; "parts" only when it holds more than text and tool calls.
        msg: dict[str, Any] = {k: v for k, v in m.items() if k not in ("parts", "content")}
        msg["role"] = m.get("role")
        parts = m.get("parts")
        if isinstance(parts, list) and any(
            not isinstance(p, dict) or p.get("type") not in ("text", "tool_call") for p in parts
        ):
            msg["parts"] = parts
        text = _content_text(m.get("parts", m.get("content")))
        if text is not None:
            msg["content"] = text
        calls = [
            {"name": p.get("name"), "arguments": _str(p.get("arguments")), "id": p.get("id")}
            for p in m.get("parts") or ()
            if isinstance(p, dict) and p.get("type") == "tool_call"
        ]
        if calls:
            msg["tool_calls"] = calls
        out.append(msg)
    return out


def _event_messages(
    events: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    inputs: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    for ev in events:
        name = ev["name"]
        attrs = ev["attributes"]
        if name in _GENAI_MESSAGE_EVENTS:
            content = attrs.get("content", attrs.get("gen_ai.event.content"))
            if isinstance(content, str) and name == "gen_ai.user.message" and content[:1] == "{":
                with contextlib.suppress(json.JSONDecodeError, AttributeError):
                    content = json.loads(content).get("content", content)
            inputs.append(
                {
                    "role": attrs.get("role", _GENAI_MESSAGE_EVENTS[name]),
                    "content": _content_text(content),
                }
            )
        elif name == "gen_ai.choice":
            message = attrs.get("message")
            if isinstance(message, str):
                try:
                    message = json.loads(message)
                except json.JSONDecodeError:
                    message = {"content": message}
            msg: dict[str, Any] = {"role": "assistant"}
            if isinstance(message, dict):
                msg["role"] = message.get("role") or "assistant"
                msg["content"] = _content_text(message.get("content"))
            if attrs.get("finish_reason"):
                msg["finish_reason"] = attrs["finish_reason"]
            outputs.append(msg)
        elif name == "gen_ai.client.inference.operation.details":
            inputs.extend(_genai_json_messages(attrs.get("gen_ai.input.messages")) or ())
            outputs.extend(_genai_json_messages(attrs.get("gen_ai.output.messages")) or ())
    return inputs, outputs


def _last_user_text(messages: list[dict[str, Any]]) -> str | None:
    for m in reversed(messages):
        if m.get("role") == "user" and m.get("content"):
            return _content_text(m["content"])
    for m in reversed(messages):
        if m.get("content"):
            return _content_text(m["content"])
    return None


def _assistant_text(messages: list[dict[str, Any]]) -> str | None:
    texts = [_content_text(m.get("content")) for m in messages if m.get("content")]
    joined = "\n".join(t for t in texts if t)
    return joined or None


def _unpromoted(
    attrs: dict[str, Any],
    absorbed: tuple[str, ...],
    input_text: str | None,
    output_text: str | None,
) -> dict[str, Any]:
    """Attributes minus those whose content now lives in a column.

    Chat messages are the bulk of an LLM span; storing them twice halves ingest speed.
    Message attributes go once their messages are in input/output_messages (every sub-key
    is kept there); input.value/output.value only when identical to the text columns.
    """
    in_value = attrs.get("input.value")
    out_value = attrs.get("output.value")
    drop_in_value = in_value is not None and in_value == input_text
    drop_out_value = out_value is not None and out_value == output_text
    if not (absorbed or drop_in_value or drop_out_value):
        return attrs
    kept = {}
    for key, value in attrs.items():
        if absorbed and key.startswith(absorbed):
            continue
        if (drop_in_value and key == "input.value") or (drop_out_value and key == "output.value"):
            continue
        kept[key] = value
    return kept


def _invocation_model(attrs: dict[str, Any]) -> Any:
    """The model an OpenInference app asked for (``llm.model_name`` is the one that answered)."""
    raw = attrs.get("llm.invocation_parameters")
    if isinstance(raw, str) and raw[:1] == "{":
        with contextlib.suppress(json.JSONDecodeError):
            params = json.loads(raw)
            return params.get("model") if isinstance(params, dict) else None
    return None


def _time(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1000)


def map_span(
    project: str,
    sp: Any,
    attrs: dict[str, Any],
    resource: dict[str, Any],
    scope: str | None,
    prices: PriceTable | None,
) -> Span:
    """Map one decoded OTLP span (already validated) onto assay's schema."""
    events = [
        {
            "name": ev.name,
            "time": _time(ev.time_unix_nano).isoformat(),
            "attributes": attributes(ev.attributes),
        }
        for ev in sp.events
    ]
    operation = _first(attrs, "gen_ai.operation.name")
    oi_kind = attrs.get("openinference.span.kind")
    model = _first(attrs, "gen_ai.response.model", "llm.model_name", "gen_ai.request.model")
    request_model = (
        _first(attrs, "gen_ai.request.model")
        or _invocation_model(attrs)
        or attrs.get("llm.model_name")
    )
    if isinstance(oi_kind, str) and oi_kind:
        kind = oi_kind.lower()
    elif operation in _GENAI_OPERATION_KIND:
        kind = _GENAI_OPERATION_KIND[operation]
    elif model is not None:
        kind = "llm"
    else:
        kind = "span"

    input_messages: list[dict[str, Any]] | None = None
    output_messages: list[dict[str, Any]] | None = None
    absorbed: list[str] = []  # attribute keys/prefixes whose content the message columns hold
    if (
        "llm.input_messages.0.message.role" in attrs
        or "llm.input_messages.0.message.content" in attrs
    ):
        input_messages = _openinference_messages(attrs, _OI_INPUT)
        absorbed.append("llm.input_messages.")
    if (
        "llm.output_messages.0.message.role" in attrs
        or "llm.output_messages.0.message.content" in attrs
    ):
        output_messages = _openinference_messages(attrs, _OI_OUTPUT)
        absorbed.append("llm.output_messages.")
    if input_messages is None and "gen_ai.input.messages" in attrs:
        input_messages = _genai_json_messages(attrs["gen_ai.input.messages"])
        absorbed.append("gen_ai.input.messages")
    if output_messages is None and "gen_ai.output.messages" in attrs:
        output_messages = _genai_json_messages(attrs["gen_ai.output.messages"])
        absorbed.append("gen_ai.output.messages")
    if (input_messages is None or output_messages is None) and (
        "gen_ai.prompt.0.content" in attrs or "gen_ai.completion.0.content" in attrs
    ):
        legacy_in, legacy_out = _legacy_genai_messages(attrs)
        if input_messages is None and legacy_in:
            input_messages = legacy_in
            absorbed.append("gen_ai.prompt.")
        if output_messages is None and legacy_out:
            output_messages = legacy_out
            absorbed.append("gen_ai.completion.")
    if events and (input_messages is None or output_messages is None):
        ev_in, ev_out = _event_messages(events)
        input_messages = input_messages or ev_in or None
        output_messages = output_messages or ev_out or None

    input_text = _str(attrs.get("input.value"))
    if input_messages and (
        input_text is None or attrs.get("input.mime_type") == "application/json"
    ):
        input_text = _last_user_text(input_messages) or input_text
    output_text = _str(attrs.get("output.value"))
    if output_messages and (
        output_text is None or attrs.get("output.mime_type") == "application/json"
    ):
        output_text = _assistant_text(output_messages) or output_text

    finish = attrs.get("gen_ai.response.finish_reasons")
    if isinstance(finish, list):
        finish = finish[0] if finish else None
    if finish is None and output_messages:
        finish = output_messages[-1].get("finish_reason")

    input_tokens = _int(
        _first(
            attrs,
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.prompt_tokens",
            "llm.token_count.prompt",
        )
    )
    output_tokens = _int(
        _first(
            attrs,
            "gen_ai.usage.output_tokens",
            "gen_ai.usage.completion_tokens",
            "llm.token_count.completion",
        )
    )
    cached = _int(
        _first(
            attrs,
            "gen_ai.usage.cache_read.input_tokens",
            "gen_ai.usage.cache_read_input_tokens",
            "llm.token_count.prompt_details.cache_read",
        )
    )
    total = _int(attrs.get("llm.token_count.total"))
    if total is None and (input_tokens is not None or output_tokens is not None):
        total = _int((input_tokens or 0) + (output_tokens or 0))
    kept = _unpromoted(attrs, tuple(absorbed), input_text, output_text)
    start_ns = sp.start_time_unix_nano
    end_ns = sp.end_time_unix_nano
    status_code = sp.status.code
    provider = _first(attrs, "gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
    return Span(
        project=project,
        trace_id=sp.trace_id.hex(),
        span_id=sp.span_id.hex(),
        parent_span_id=sp.parent_span_id.hex() or None,
        service=_str(resource.get("service.name")),
        name=sp.name,
        kind=kind,
        otel_kind=_OTEL_KINDS[sp.kind] if 0 <= sp.kind < len(_OTEL_KINDS) else "unspecified",
        start_time=_time(start_ns),
        end_time=_time(end_ns),
        duration_ms=(end_ns - start_ns) / 1e6,
        status=_STATUS[status_code] if 0 <= status_code < 3 else "unset",
        status_message=sp.status.message or None,
        operation=_str(operation),
        provider=_str(provider),
        model=_str(model),
        request_model=_str(request_model),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_input_tokens=cached,
        total_tokens=total,
        cost=prices.cost(_str(model), input_tokens, output_tokens, cached) if prices else None,
        input_text=input_text,
        output_text=output_text,
        input_messages=input_messages,
        output_messages=output_messages,
        finish_reason=_str(finish),
        session_id=_str(_first(attrs, "session.id", "gen_ai.conversation.id")),
        user_id=_str(_first(attrs, "user.id", "enduser.id")),
        release=_str(
            _first(attrs, "assay.release", "release")
            or _first(resource, "assay.release", "service.version")
        ),
        route=_str(
            _first(attrs, "assay.route", "http.route", "route") or resource.get("assay.route")
        ),
        environment=_str(
            _first(attrs, "deployment.environment.name", "deployment.environment")
            or _first(resource, "deployment.environment.name", "deployment.environment")
        ),
        scope=scope,
        attributes=kept,
        resource_attributes=resource,
        events=events,
    )


def _invalid_reason(sp: Any) -> str | None:
    if len(sp.trace_id) != 16 or not any(sp.trace_id):
        return f"span {sp.name!r}: trace_id must be 16 non-zero bytes (got {len(sp.trace_id)})"
    if len(sp.span_id) != 8 or not any(sp.span_id):
        return f"span {sp.name!r}: span_id must be 8 non-zero bytes (got {len(sp.span_id)})"
    if sp.parent_span_id and len(sp.parent_span_id) != 8:
        return f"span {sp.name!r}: parent_span_id must be 8 bytes"
    if sp.start_time_unix_nano == 0:
        return f"span {sp.name!r} ({sp.span_id.hex()}): start_time_unix_nano is missing"
    if sp.end_time_unix_nano < sp.start_time_unix_nano:
        return f"span {sp.name!r} ({sp.span_id.hex()}): end time is before start time"
    return None


def decode_request(
    request: ExportTraceServiceRequest, project: str, prices: PriceTable | None
) -> DecodeResult:
    """Map every span of a request; invalid spans are counted and explained, not raised."""
    result = DecodeResult()
    for rs in request.resource_spans:
        resource = attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            scope = ss.scope.name or None
            for sp in ss.spans:
                reason = _invalid_reason(sp)
                if reason is not None:
                    result.rejected += 1
                    result.errors.append(reason)
                    continue
                try:
                    result.spans.append(
                        map_span(project, sp, attributes(sp.attributes), resource, scope, prices)
                    )
                except (ValueError, TypeError, OverflowError) as exc:
                    result.rejected += 1
                    result.errors.append(f"span {sp.name!r}: cannot be mapped ({exc})")
    return result


def decode(
    body: bytes, json_encoding: bool, project: str, prices: PriceTable | None
) -> DecodeResult:
    """Parse an OTLP body (protobuf or JSON) and map its spans."""
    request = parse_json(body) if json_encoding else parse_protobuf(body)
    try:
        return decode_request(request, project, prices)
    except Exception as exc:
        # A body that trips a mapping bug is still the sender's bad request (a 400 with
        # the reason), not a server error; the traceback goes to the log.
        log.exception("mapping an OTLP request failed")
        raise OtlpDecodeError(
            f"body could not be decoded ({type(exc).__name__}: {exc})"
        ) from None


__all__ = [
    "DecodeResult",
    "OtlpDecodeError",
    "attributes",
    "decode",
    "decode_request",
    "map_span",
    "parse_json",
    "parse_protobuf",
    "response_body",
]
