"""Property: any valid span sent as OTLP (protobuf or JSON) comes back unchanged from
GET /api/v1/traces/{trace_id}: ids, parent, name, times (to the microsecond), status,
attributes, model and token counts."""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from assay.server import create_app
from assay.settings import Settings
from assay.store.duckdb import DuckDBStore
from assay.synthetic import any_value

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
U64 = 2**64 - 1
I64 = (-(2**63), 2**63 - 1)
# Attribute keys with a meaning to the semantic-convention mapping are set explicitly below.
RESERVED = (
    "gen_ai.",
    "llm.",
    "input.",
    "output.",
    "openinference.",
    "session.",
    "user.",
    "enduser.",
    "assay.",
    "http.",
    "route",
    "release",
    "deployment.",
)

# -- strategies -----------------------------------------------------------------------------

texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)  # any valid UTF-8
nonzero8 = st.binary(min_size=8, max_size=8).filter(any)
nonzero16 = st.binary(min_size=16, max_size=16).filter(any)
attr_keys = texts.filter(lambda k: not k.startswith(RESERVED))
attr_values = st.one_of(
    texts,
    st.integers(*I64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.lists(texts, max_size=4),
)
token_counts = st.integers(0, 2**40)


@dataclass
class GenSpan:
    span_id: bytes
    parent: bytes | None
    name: str
    start_ns: int
    end_ns: int
    status_code: int
    status_message: str
    attributes: dict[str, Any]
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    input_value: Any = None
    output_value: Any = None
    all_attributes: dict[str, Any] = field(default_factory=dict)


@st.composite
def gen_span(draw: st.DrawFn, span_id: bytes, parents: list[bytes]) -> GenSpan:
    start = draw(st.integers(1, U64))
    end = draw(st.one_of(st.just(start), st.integers(start, U64)))
    parent = draw(st.one_of(st.none(), nonzero8, *([st.sampled_from(parents)] if parents else [])))
    span = GenSpan(
        span_id=span_id,
        parent=parent,
        name=draw(texts),
        start_ns=start,
        end_ns=end,
        status_code=draw(st.sampled_from([0, 1, 2])),
        status_message=draw(texts),
        attributes=draw(st.dictionaries(attr_keys, attr_values, max_size=6)),
        model=draw(st.one_of(st.none(), texts.filter(bool))),
        input_tokens=draw(st.one_of(st.none(), token_counts)),
        output_tokens=draw(st.one_of(st.none(), token_counts)),
        input_value=draw(st.one_of(st.none(), texts, attr_values)),
        output_value=draw(st.one_of(st.none(), texts, attr_values)),
    )
    extra: dict[str, Any] = {}
    if span.model is not None:
        extra["gen_ai.request.model"] = span.model
    if span.input_tokens is not None:
        extra["gen_ai.usage.input_tokens"] = span.input_tokens
    if span.output_tokens is not None:
        extra["gen_ai.usage.output_tokens"] = span.output_tokens
    if span.input_value is not None:
        extra["input.value"] = span.input_value
    if span.output_value is not None:
        extra["output.value"] = span.output_value
    span.all_attributes = {**span.attributes, **extra}
    return span


@st.composite
def gen_trace(draw: st.DrawFn) -> tuple[bytes, list[GenSpan], str | None]:
    trace_id = draw(nonzero16)
    span_ids = draw(st.lists(nonzero8, min_size=1, max_size=4, unique=True))
    spans = [draw(gen_span(sid, span_ids[:i])) for i, sid in enumerate(span_ids)]
    service = draw(st.one_of(st.none(), texts))
    return trace_id, spans, service


# -- encoding ----------------------------------------------------------------------------


def to_request(
    trace_id: bytes, spans: list[GenSpan], service: str | None
) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    if service is not None:
        rs.resource.attributes.append(KeyValue(key="service.name", value=any_value(service)))
    ss = rs.scope_spans.add()
    ss.scope.name = "property"
    for g in spans:
        sp = PbSpan(
            trace_id=trace_id,
            span_id=g.span_id,
            name=g.name,
            start_time_unix_nano=g.start_ns,
            end_time_unix_nano=g.end_ns,
        )
        if g.parent is not None:
            sp.parent_span_id = g.parent
        sp.status.code = g.status_code  # type: ignore[assignment]
        sp.status.message = g.status_message
        sp.attributes.extend(
            KeyValue(key=k, value=any_value(v)) for k, v in g.all_attributes.items()
        )
        ss.spans.append(sp)
    return req


def to_otlp_json(req: ExportTraceServiceRequest) -> bytes:
    """OTLP/JSON: lowerCamelCase, integer enums, hex (not base64) trace and span ids."""
    obj = json_format.MessageToDict(req, use_integers_for_enums=True)
    for rs in obj.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for sp in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in sp:
                        sp[key] = base64.b64decode(sp[key]).hex()
    return json.dumps(obj, ensure_ascii=False).encode()


# -- comparison --------------------------------------------------------------------------


def same(a: Any, b: Any) -> bool:
    """Equal with the same JSON types (True is not 1, 1.0 is not 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return bool(a == b)


def as_text(value: Any) -> str | None:
    """input_text/output_text for an input.value/output.value attribute."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def expected_attributes(g: GenSpan) -> dict[str, Any]:
    """What was sent, less input.value/output.value when a text column holds them verbatim
    (docs/schema.md: such attributes are stored once, in the column)."""
    folded = {
        key
        for key, value in (("input.value", g.input_value), ("output.value", g.output_value))
        if isinstance(value, str)
    }
    return {k: v for k, v in g.all_attributes.items() if k not in folded}


def at_us(ns: int) -> datetime:
    return EPOCH + timedelta(microseconds=ns // 1000)


def check_span(got: dict[str, Any], g: GenSpan, trace_id: bytes, service: str | None) -> None:
    assert got["trace_id"] == trace_id.hex()
    assert got["span_id"] == g.span_id.hex()
    assert got["parent_span_id"] == (g.parent.hex() if g.parent is not None else None)
    assert got["name"] == g.name
    assert got["service"] == service
    assert datetime.fromisoformat(got["start_time"]) == at_us(g.start_ns)
    assert datetime.fromisoformat(got["end_time"]) == at_us(g.end_ns)
    assert got["duration_ms"] == (g.end_ns - g.start_ns) / 1e6
    assert got["status"] == ("unset", "ok", "error")[g.status_code]
    assert got["status_message"] == (g.status_message or None)
    expected = expected_attributes(g)
    assert same(got["attributes"], expected), (got["attributes"], expected)
    assert got["model"] == g.model
    assert got["request_model"] == g.model
    assert got["kind"] == ("llm" if g.model is not None else "span")
    assert got["input_tokens"] == g.input_tokens
    assert got["output_tokens"] == g.output_tokens
    if g.input_tokens is None and g.output_tokens is None:
        assert got["total_tokens"] is None
    else:
        assert got["total_tokens"] == (g.input_tokens or 0) + (g.output_tokens or 0)
    assert got["input_text"] == as_text(g.input_value)
    assert got["output_text"] == as_text(g.output_value)


# -- the property -------------------------------------------------------------------------


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(trace=gen_trace(), encoding=st.sampled_from(["protobuf", "json"]))
def test_spans_round_trip_through_otlp_and_the_api(
    trace: tuple[bytes, list[GenSpan], str | None], encoding: str
) -> None:
    trace_id, spans, service = trace
    req = to_request(trace_id, spans, service)
    if encoding == "json":
        body, ctype = to_otlp_json(req), "application/json"
    else:
        body, ctype = req.SerializeToString(), "application/x-protobuf"

    store = DuckDBStore(":memory:")  # a fresh store per example: ids may repeat across them
    try:
        with TestClient(create_app(Settings(db=":memory:"), store=store)) as client:
            r = client.post("/v1/traces", content=body, headers={"content-type": ctype})
            assert r.status_code == 200, r.content
            if encoding == "json":
                assert "partialSuccess" not in r.json()
            else:
                resp = ExportTraceServiceResponse.FromString(r.content)
                assert not resp.HasField("partial_success"), resp
            got = client.get(f"/api/v1/traces/{trace_id.hex()}")
            assert got.status_code == 200, got.text
            tree = got.json()
        assert store.count_spans() == len(spans)
    finally:
        store.close()

    assert tree["trace_id"] == trace_id.hex()
    by_id = {s["span_id"]: s for s in tree["spans"]}
    assert by_id.keys() == {g.span_id.hex() for g in spans}
    for g in spans:
        check_span(by_id[g.span_id.hex()], g, trace_id, service)
    # Spans come back in start order.
    starts = [datetime.fromisoformat(s["start_time"]) for s in tree["spans"]]
    assert starts == sorted(starts)
