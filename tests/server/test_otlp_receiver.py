"""POST /v1/traces: the status-code matrix, partial success, idempotence and backpressure.

Everything runs in-process through ``httpx.ASGITransport``; apps with non-default
settings are built the way the ``app`` fixture in ``tests/conftest.py`` builds its own.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import tracemalloc
import zlib
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from receiver_support import (
    JSON_CT,
    PROTOBUF,
    T0,
    BrokenStore,
    SlowStore,
    body_of,
    chunked,
    rpc_status,
    serve,
    span_keys,
    trace_ids,
    trace_spans,
)

from assay import synthetic
from assay.model import Span
from assay.settings import MIB, Settings
from assay.store.duckdb import DuckDBStore

# -- success paths ---------------------------------------------------------------------


async def test_protobuf_export_is_acknowledged_and_queryable(
    client: httpx.AsyncClient, store: DuckDBStore
) -> None:
    spans = trace_spans(seed=1, n_traces=3)
    body = body_of(spans)
    r = await client.post("/v1/traces", content=body, headers=PROTOBUF)

    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-protobuf"
    resp = ExportTraceServiceResponse.FromString(r.content)
    assert not resp.HasField("partial_success")
    assert store.count_spans() == 12
    assert store.count_spans("default") == 12

    listed = (await client.get("/api/v1/spans", params={"limit": 100})).json()
    assert {(s["trace_id"], s["span_id"]) for s in listed["items"]} == span_keys(body)
    assert listed["next_cursor"] is None

    root = spans[0]
    tid = root.trace_id.hex()
    tree = (await client.get(f"/api/v1/traces/{tid}")).json()
    assert tree["trace_id"] == tid
    assert tree["project"] == "default"
    assert len(tree["spans"]) == 4
    assert [n["span_id"] for n in tree["roots"]] == [root.span_id.hex()]
    children = {c["span_id"] for c in tree["roots"][0]["children"]}
    assert children == {sp.span_id.hex() for sp in spans[1:4]}
    by_id = {s["span_id"]: s for s in tree["spans"]}
    llm = by_id[spans[2].span_id.hex()]
    assert llm["kind"] == "llm"
    assert llm["service"] == "support-bot"
    assert llm["parent_span_id"] == root.span_id.hex()
    assert llm["input_tokens"] > 0


async def test_json_export_is_acknowledged_and_queryable(
    client: httpx.AsyncClient, store: DuckDBStore
) -> None:
    tid = "5b8efff798038103d269b633813fc60c"
    payload = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "manual"},
                        "spans": [
                            {
                                "traceId": tid,
                                "spanId": "eee19b7ec3c1b174",
                                "parentSpanId": "eee19b7ec3c1b173",
                                "name": "chat gpt-4o",
                                "kind": 3,
                                "startTimeUnixNano": "1763000000000000000",
                                "endTimeUnixNano": "1763000001500000000",
                                "attributes": [
                                    {
                                        "key": "gen_ai.request.model",
                                        "value": {"stringValue": "gpt-4o"},
                                    },
                                    {
                                        "key": "gen_ai.usage.input_tokens",
                                        "value": {"intValue": "120"},
                                    },
                                    {
                                        "key": "gen_ai.usage.output_tokens",
                                        "value": {"intValue": "30"},
                                    },
                                    {"key": "retries", "value": {"intValue": "2"}},
                                ],
                                "status": {"code": 2, "message": "boom"},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    r = await client.post("/v1/traces", content=json.dumps(payload), headers=JSON_CT)

    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert "partialSuccess" not in r.json()
    assert store.count_spans() == 1

    listed = (await client.get("/api/v1/spans")).json()["items"]
    assert [(s["trace_id"], s["span_id"]) for s in listed] == [(tid, "eee19b7ec3c1b174")]

    tree = (await client.get(f"/api/v1/traces/{tid}")).json()
    (span,) = tree["spans"]
    assert span["parent_span_id"] == "eee19b7ec3c1b173"
    assert span["service"] == "json-svc"
    assert span["otel_kind"] == "client"
    assert span["kind"] == "llm"
    assert span["model"] == "gpt-4o"
    assert span["input_tokens"] == 120
    assert span["output_tokens"] == 30
    assert span["total_tokens"] == 150
    assert span["status"] == "error"
    assert span["status_message"] == "boom"
    assert span["duration_ms"] == pytest.approx(1500.0)
    assert span["attributes"]["retries"] == 2  # intValue "2" became the integer 2
    # The parent was never received: the orphan becomes a root of the tree.
    assert [n["span_id"] for n in tree["roots"]] == ["eee19b7ec3c1b174"]


async def test_gzip_protobuf_is_accepted(client: httpx.AsyncClient, store: DuckDBStore) -> None:
    body = body_of(trace_spans(seed=2, n_traces=20))
    compressed = gzip.compress(body)
    assert len(compressed) > 4 * 1024  # arrives in several chunks below
    r = await client.post(
        "/v1/traces",
        content=chunked(compressed, 1000),
        headers={**PROTOBUF, "content-encoding": "gzip"},
    )
    assert r.status_code == 200, r.content
    assert not ExportTraceServiceResponse.FromString(r.content).HasField("partial_success")
    assert store.count_spans() == 80


async def test_gzip_json_is_accepted(client: httpx.AsyncClient, store: DuckDBStore) -> None:
    payload = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "0af7651916cd43dd8448eb211c80319c",
                                "spanId": "b7ad6b7169203331",
                                "name": "gz",
                                "startTimeUnixNano": "1763000000000000000",
                                "endTimeUnixNano": "1763000000000001000",
                            }
                        ]
                    }
                ]
            }
        ]
    }
    r = await client.post(
        "/v1/traces",
        content=gzip.compress(json.dumps(payload).encode()),
        headers={**JSON_CT, "content-encoding": "gzip"},
    )
    assert r.status_code == 200, r.text
    assert store.count_spans() == 1


async def test_multi_member_gzip_keeps_every_member(
    client: httpx.AsyncClient, store: DuckDBStore
) -> None:
    a, b = body_of(trace_spans(40)), body_of(trace_spans(41))
    content = gzip.compress(a) + gzip.compress(b)  # RFC 1952: a gzip file may have members
    assert gzip.decompress(content) == a + b  # concatenated protobuf = merged request
    r = await client.post(
        "/v1/traces", content=content, headers={**PROTOBUF, "content-encoding": "gzip"}
    )
    assert r.status_code in (200, 400)  # either decode it all or refuse it; never drop spans
    if r.status_code == 200:
        assert store.count_spans() == 8


# -- 400 / 415 / 413 ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "content"),
    [
        pytest.param(PROTOBUF, b"\x07garbage, not protobuf", id="protobuf-garbage"),
        pytest.param(JSON_CT, b'{"resourceSpans": [', id="json-truncated"),
        pytest.param(JSON_CT, b"\xff\xfe not utf-8", id="json-not-utf8"),
        pytest.param(JSON_CT, b"[1, 2, 3]", id="json-not-object"),
        pytest.param(JSON_CT, b'{"resourceSpans": "nope"}', id="json-wrong-shape"),
        pytest.param(
            JSON_CT,
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 7}]}]}]}',
            id="json-numeric-id",
        ),
        pytest.param(
            JSON_CT,
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 5, '
            b'"startTimeUnixNano": "soon"}]}]}]}',
            id="json-wrong-types",
        ),
        pytest.param(
            {**PROTOBUF, "content-encoding": "gzip"}, b"plainly not gzip", id="gzip-garbage"
        ),
        pytest.param(
            {**PROTOBUF, "content-encoding": "gzip"},
            gzip.compress(body_of(trace_spans(seed=3)))[:-20],
            id="gzip-truncated",
        ),
        pytest.param(
            {**JSON_CT, "content-encoding": "gzip"}, b"\x1f\x8b not really", id="gzip-json-garbage"
        ),
    ],
)
async def test_undecodable_body_is_400_with_rpc_status(
    client: httpx.AsyncClient, store: DuckDBStore, headers: dict[str, str], content: bytes
) -> None:
    r = await client.post("/v1/traces", content=content, headers=headers)
    assert r.status_code == 400
    expected_ctype = headers["content-type"]
    assert r.headers["content-type"].split(";")[0] == expected_ctype
    status = rpc_status(r)
    assert status.code == 3  # INVALID_ARGUMENT
    assert status.message
    assert store.count_spans() == 0


async def test_deeply_nested_json_is_400(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/traces", content=b"[" * 100_000, headers=JSON_CT)
    assert r.status_code == 400


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"content-type": "text/plain"}, id="text-plain"),
        pytest.param({"content-type": "application/grpc"}, id="grpc"),
        pytest.param({}, id="no-content-type"),
        pytest.param({**PROTOBUF, "content-encoding": "br"}, id="brotli"),
        pytest.param({**PROTOBUF, "content-encoding": "deflate"}, id="deflate"),
    ],
)
async def test_unsupported_encoding_is_415(
    client: httpx.AsyncClient, store: DuckDBStore, headers: dict[str, str]
) -> None:
    r = await client.post("/v1/traces", content=body_of(trace_spans(seed=4)), headers=headers)
    assert r.status_code == 415
    assert rpc_status(r).message
    assert store.count_spans() == 0


async def test_content_type_parameters_are_ignored(
    client: httpx.AsyncClient, store: DuckDBStore
) -> None:
    r = await client.post(
        "/v1/traces",
        content=body_of(trace_spans(seed=5)),
        headers={"content-type": "Application/X-Protobuf; charset=binary"},
    )
    assert r.status_code == 200
    assert store.count_spans() == 4


async def test_raw_body_over_limit_is_413(store: DuckDBStore, db_path: str) -> None:
    limit = 32 * 1024
    async with serve(Settings(db=db_path, max_body_bytes=limit), store) as client:
        # Exactly the limit is read and decoded (400: not protobuf); one byte more is 413.
        at_limit = await client.post("/v1/traces", content=b"\x07" * limit, headers=PROTOBUF)
        assert at_limit.status_code == 400
        over = await client.post(
            "/v1/traces", content=chunked(b"\x07" * (limit + 1), 1000), headers=PROTOBUF
        )
        assert over.status_code == 413
        status = rpc_status(over)
        assert status.code == 8  # RESOURCE_EXHAUSTED
        assert str(limit) in status.message
        big_json = await client.post("/v1/traces", content=b" " * (limit * 3), headers=JSON_CT)
        assert big_json.status_code == 413
        assert big_json.headers["content-type"].startswith("application/json")
        assert rpc_status(big_json).code == 8
        # A small real batch still fits.
        small = body_of(trace_spans(6))
        assert len(small) < limit
        ok = await client.post("/v1/traces", content=small, headers=PROTOBUF)
        assert ok.status_code == 200
    assert store.count_spans() == 4


async def test_gzip_over_limit_after_decompression_is_413(store: DuckDBStore, db_path: str) -> None:
    limit = 4096
    async with serve(Settings(db=db_path, max_body_bytes=limit), store) as client:
        headers = {**PROTOBUF, "content-encoding": "gzip"}
        exact = await client.post(
            "/v1/traces", content=gzip.compress(b"\x07" * limit), headers=headers
        )
        assert exact.status_code == 400  # decompressed to exactly the limit: decoded
        over = await client.post(
            "/v1/traces", content=gzip.compress(b"\x07" * (limit + 1)), headers=headers
        )
        assert over.status_code == 413
        assert len(gzip.compress(b"\x07" * (limit + 1))) < limit  # small on the wire


def gzip_bomb(uncompressed: int, chunk: int = MIB) -> bytes:
    """``uncompressed`` zero bytes, gzip-compressed without ever holding them in memory."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(chunk)
    parts = [comp.compress(zeros) for _ in range(uncompressed // chunk)]
    parts.append(comp.flush())
    return b"".join(parts)


async def test_gzip_bomb_is_413_without_inflating_it(store: DuckDBStore, db_path: str) -> None:
    bomb = gzip_bomb(200 * MIB)
    assert len(bomb) < 1 * MIB
    settings = Settings(db=db_path)
    assert settings.max_body_bytes == 20 * MIB
    async with serve(settings, store) as client:
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            before, _ = tracemalloc.get_traced_memory()
            r = await client.post(
                "/v1/traces",
                content=chunked(bomb),
                headers={**PROTOBUF, "content-encoding": "gzip"},
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert r.status_code == 413
        assert rpc_status(r).code == 8
        grew = peak - before
        assert grew < 60 * MIB, f"the request grew traced memory by {grew / MIB:.0f} MiB"
        # The server is fine afterwards.
        ok = await client.post("/v1/traces", content=body_of(trace_spans(7)), headers=PROTOBUF)
        assert ok.status_code == 200
    assert store.count_spans() == 4


# -- partial success and idempotence ---------------------------------------------------------


def bad_and_good_spans() -> tuple[list[PbSpan], list[PbSpan]]:
    good = trace_spans(seed=8)
    short_trace = PbSpan(
        trace_id=b"\x01" * 15,
        span_id=b"\x02" * 8,
        name="short-trace-id",
        start_time_unix_nano=T0,
        end_time_unix_nano=T0 + 1000,
    )
    zero_span = PbSpan(
        trace_id=b"\x03" * 16,
        span_id=bytes(8),
        name="zero-span-id",
        start_time_unix_nano=T0,
        end_time_unix_nano=T0 + 1000,
    )
    backwards = PbSpan(
        trace_id=b"\x04" * 16,
        span_id=b"\x05" * 8,
        name="ends-before-start",
        start_time_unix_nano=T0 + 10_000,
        end_time_unix_nano=T0,
    )
    return [short_trace, zero_span, backwards], good


async def test_partial_success_protobuf(client: httpx.AsyncClient, store: DuckDBStore) -> None:
    bad, good = bad_and_good_spans()
    mixed = [bad[0], good[0], bad[1], good[1], good[2], bad[2], good[3]]
    r = await client.post("/v1/traces", content=body_of(mixed), headers=PROTOBUF)

    assert r.status_code == 200
    resp = ExportTraceServiceResponse.FromString(r.content)
    assert resp.partial_success.rejected_spans == 3
    message = resp.partial_success.error_message
    assert "short-trace-id" in message
    assert "zero-span-id" in message
    assert "ends-before-start" in message
    assert store.count_spans() == 4
    tid = good[0].trace_id.hex()
    assert len((await client.get(f"/api/v1/traces/{tid}")).json()["spans"]) == 4
    for t in (b"\x03" * 16, b"\x04" * 16):
        assert (await client.get(f"/api/v1/traces/{t.hex()}")).status_code == 404


async def test_partial_success_json(client: httpx.AsyncClient, store: DuckDBStore) -> None:
    def span(trace_id: str, span_id: str, name: str) -> dict[str, Any]:
        return {
            "traceId": trace_id,
            "spanId": span_id,
            "name": name,
            "startTimeUnixNano": str(T0),
            "endTimeUnixNano": str(T0 + 5),
        }

    payload = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            span("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", "ok"),
                            span("0af7651916cd43dd8448eb211c8031", "b7ad6b7169203332", "short"),
                            span("zz" * 16, "b7ad6b7169203333", "not-hex"),
                        ]
                    }
                ]
            }
        ]
    }
    r = await client.post("/v1/traces", content=json.dumps(payload), headers=JSON_CT)
    assert r.status_code == 200
    partial = r.json()["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 2
    assert partial["errorMessage"]
    assert store.count_spans() == 1


async def test_only_invalid_spans_is_200_with_all_rejected(
    client: httpx.AsyncClient, store: DuckDBStore
) -> None:
    bad, _ = bad_and_good_spans()
    r = await client.post("/v1/traces", content=body_of(bad), headers=PROTOBUF)
    assert r.status_code == 200
    assert ExportTraceServiceResponse.FromString(r.content).partial_success.rejected_spans == 3
    assert store.count_spans() == 0


async def test_resending_a_batch_stores_no_duplicates(
    client: httpx.AsyncClient, store: DuckDBStore
) -> None:
    body = body_of(trace_spans(seed=9, n_traces=5))
    for _ in range(3):
        r = await client.post("/v1/traces", content=body, headers=PROTOBUF)
        assert r.status_code == 200
        assert store.count_spans() == 20
    # Same spans inside one request, and gzip vs identity: still one row each.
    doubled = body_of(trace_spans(seed=9, n_traces=5) * 2)
    gz = {**PROTOBUF, "content-encoding": "gzip"}
    r = await client.post("/v1/traces", content=gzip.compress(doubled), headers=gz)
    assert r.status_code == 200
    assert store.count_spans() == 20
    page = (await client.get("/api/v1/spans", params={"limit": 1000})).json()
    keys = [(s["trace_id"], s["span_id"]) for s in page["items"]]
    assert len(keys) == len(set(keys)) == 20


# -- backpressure and store failures -----------------------------------------------------


async def test_overload_answers_503_with_retry_after(store: DuckDBStore, db_path: str) -> None:
    slow = SlowStore(store, delay=1.5)
    settings = Settings(db=db_path, max_pending_spans=8, retry_after_seconds=7)
    bodies = [body_of(trace_spans(seed=100 + i)) for i in range(6)]  # 4 spans each
    async with serve(settings, slow) as client:
        responses = await asyncio.gather(
            *(client.post("/v1/traces", content=b, headers=PROTOBUF) for b in bodies)
        )
        statuses = [r.status_code for r in responses]
        assert set(statuses) <= {200, 503}, statuses
        accepted = [b for b, r in zip(bodies, responses, strict=True) if r.status_code == 200]
        refused = [(b, r) for b, r in zip(bodies, responses, strict=True) if r.status_code == 503]
        # Queue holds 8 spans: the first request always gets in, at most two fit.
        assert 1 <= len(accepted) <= 2, statuses
        assert refused, statuses
        for _, r in refused:
            assert r.headers["retry-after"] == "7"
            status = rpc_status(r)
            assert status.code == 14  # UNAVAILABLE
            assert "busy" in status.message
        health = (await client.get("/healthz")).json()
        assert health["rejected_requests"] == len(refused)

        # A 200 means committed: every acknowledged span is there right away …
        stored = {(s.trace_id, s.span_id) for b in accepted for s in _stored(store, b)}
        assert stored == set().union(*(span_keys(b) for b in accepted))
        # … and nothing of a refused request was written.
        for b, _ in refused:
            assert _stored(store, b) == []

        # Once the writer has caught up, the retries are accepted.
        slow.delay = 0
        for b, _ in refused:
            retry = await client.post("/v1/traces", content=b, headers=PROTOBUF)
            assert retry.status_code == 200
    assert store.count_spans() == 24


def _stored(store: DuckDBStore, body: bytes) -> list[Span]:
    return [s for tid in trace_ids(body) for s in store.get_trace("default", tid)]


async def test_one_oversized_request_is_admitted_into_an_empty_queue(
    store: DuckDBStore, db_path: str
) -> None:
    settings = Settings(db=db_path, max_pending_spans=2)
    async with serve(settings, store) as client:
        r = await client.post("/v1/traces", content=body_of(trace_spans(10, 3)), headers=PROTOBUF)
        assert r.status_code == 200
    assert store.count_spans() == 12


async def test_store_failure_is_503_never_500(store: DuckDBStore, db_path: str) -> None:
    settings = Settings(db=db_path, retry_after_seconds=3)
    async with serve(settings, BrokenStore(store)) as client:
        for headers in (PROTOBUF, JSON_CT):
            content = (
                body_of(trace_spans(11))
                if headers is PROTOBUF
                else json.dumps(
                    {
                        "resourceSpans": [
                            {
                                "scopeSpans": [
                                    {
                                        "spans": [
                                            {
                                                "traceId": "0af7651916cd43dd8448eb211c80319c",
                                                "spanId": "b7ad6b7169203331",
                                                "name": "x",
                                                "startTimeUnixNano": str(T0),
                                                "endTimeUnixNano": str(T0),
                                            }
                                        ]
                                    }
                                ]
                            }
                        ]
                    }
                ).encode()
            )
            r = await client.post("/v1/traces", content=content, headers=headers)
            assert r.status_code == 503
            assert r.headers["retry-after"] == "3"
            status = rpc_status(r)
            assert status.code == 14
            assert "No space left on device" in status.message
        assert (await client.get("/healthz")).status_code == 200
    assert store.count_spans() == 0


async def test_commit_timeout_is_503_and_the_retry_does_not_duplicate(
    store: DuckDBStore, db_path: str
) -> None:
    slow = SlowStore(store, delay=1.0)
    settings = Settings(db=db_path, ingest_timeout_seconds=0.2)
    body = body_of(trace_spans(12))
    async with serve(settings, slow) as client:
        r = await client.post("/v1/traces", content=body, headers=PROTOBUF)
        assert r.status_code == 503
        assert r.headers["retry-after"] == "2"
        assert rpc_status(r).code == 14
        assert "not stored" in rpc_status(r).message
        slow.delay = 0
        await asyncio.sleep(1.2)  # the slow write still lands
        retry = await client.post("/v1/traces", content=body, headers=PROTOBUF)
        assert retry.status_code == 200
    assert store.count_spans() == 4


async def test_token_counts_near_int64_max_do_not_poison_the_batch(
    client: httpx.AsyncClient, store: DuckDBStore
) -> None:
    sp = PbSpan(
        trace_id=b"\x11" * 16,
        span_id=b"\x22" * 8,
        name="huge",
        start_time_unix_nano=T0,
        end_time_unix_nano=T0 + 1,
    )
    sp.attributes.extend(
        [
            synthetic.kv("gen_ai.request.model", "m"),
            synthetic.kv("gen_ai.usage.input_tokens", 2**63 - 1),
            synthetic.kv("gen_ai.usage.output_tokens", 1),
        ]
    )
    r = await client.post("/v1/traces", content=body_of([sp]), headers=PROTOBUF)
    assert r.status_code == 200


def test_gzip_bomb_helper_is_what_it_claims() -> None:
    """gzip_bomb(n) inflates to exactly n zero bytes (checked by streaming it)."""
    bomb = gzip_bomb(8 * MIB)
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    total = 0
    data = bomb
    while data:
        total += len(d.decompress(data, MIB))
        data = d.unconsumed_tail
    total += len(d.flush())
    assert total == 8 * MIB
    assert d.eof


async def test_a_body_that_trips_a_mapping_bug_is_400_not_500(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import assay.otlp

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("surprise")

    monkeypatch.setattr(assay.otlp, "map_span", broken)
    body = next(synthetic.batches(8, 8)).SerializeToString()
    r = await client.post("/v1/traces", content=body, headers=PROTOBUF)
    assert r.status_code == 400
    assert "could not be decoded (KeyError" in rpc_status(r).message
