"""Bad query-API input answers 4xx with a reason, never 500."""

from __future__ import annotations

import httpx
import pytest
from receiver_support import (
    PROTOBUF,
    body_of,
    trace_ids,
    trace_spans,
)

from assay.query import encode_cursor

# -- query API input errors ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "params"),
    [
        pytest.param("/api/v1/traces/not-a-trace-id", {}, id="trace-id-not-hex"),
        pytest.param("/api/v1/traces/" + "a" * 31, {}, id="trace-id-short"),
        pytest.param("/api/v1/traces/" + "g" * 32, {}, id="trace-id-bad-char"),
        pytest.param("/api/v1/spans", {"start": "yesterdayish"}, id="bad-start"),
        pytest.param("/api/v1/traces", {"end": "31/12/2025"}, id="bad-end"),
        pytest.param("/api/v1/stats", {"start": "nan"}, id="nan-start"),
        pytest.param("/api/v1/stats", {"start": "-5h"}, id="negative-duration"),
        pytest.param("/api/v1/stats", {"group_by": "attributes"}, id="bad-group-by"),
        pytest.param("/api/v1/stats", {"group_by": "model; drop table spans"}, id="sql-group"),
        pytest.param("/api/v1/stats", {"bucket": "fortnight"}, id="bad-bucket"),
        pytest.param("/api/v1/stats", {"bucket": "0.1s"}, id="bucket-too-narrow"),
        pytest.param("/api/v1/stats", {"bucket": "0m"}, id="bucket-zero"),
        pytest.param(
            "/api/v1/spans",
            {"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
            id="end-before-start",
        ),
        pytest.param("/api/v1/traces", {"start": "1h", "end": "2h"}, id="end-before-start-ago"),
        pytest.param("/api/v1/spans", {"cursor": "!!!not-a-cursor"}, id="cursor-garbage"),
        pytest.param("/api/v1/traces", {"cursor": encode_cursor("x")}, id="cursor-wrong-arity"),
        pytest.param("/api/v1/spans", {"cursor": "e30="}, id="cursor-json-object"),
        pytest.param("/api/v1/spans", {"attr": "no-equals-sign"}, id="attr-without-equals"),
        pytest.param("/api/v1/spans", {"attr": "=value"}, id="attr-empty-key"),
        pytest.param("/api/v1/spans", {"status": "broken"}, id="bad-status"),
        pytest.param("/api/v1/spans", {"limit": "0"}, id="limit-zero"),
        pytest.param("/api/v1/traces", {"limit": "1001"}, id="limit-too-big"),
        pytest.param("/api/v1/spans", {"min_duration_ms": "-1"}, id="negative-duration-ms"),
        pytest.param("/api/v1/spans", {"min_cost": "cheap"}, id="min-cost-text"),
        pytest.param("/api/v1/spans", {"q": "x" * 501}, id="search-too-long"),
        pytest.param(
            "/api/v1/spans",
            {"cursor": encode_cursor("yesterday", "a", "b")},
            id="cursor-bad-timestamp",
        ),
        pytest.param(
            "/api/v1/traces",
            {"cursor": encode_cursor(5, "a")},
            id="cursor-numeric-timestamp",
        ),
        pytest.param("/api/v1/spans", {"start": "1e20"}, id="start-far-future"),
        pytest.param("/api/v1/spans", {"start": "99999999999d"}, id="start-huge-ago"),
        pytest.param("/api/v1/stats", {"bucket": "99999999999d"}, id="bucket-huge"),
    ],
)
async def test_query_api_bad_input_is_4xx(
    client: httpx.AsyncClient, url: str, params: dict[str, str]
) -> None:
    await client.post("/v1/traces", content=body_of(trace_spans(30, 3)), headers=PROTOBUF)
    r = await client.get(url, params=params)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    detail = r.json()["detail"]
    assert detail


async def test_query_api_good_input_for_contrast(client: httpx.AsyncClient) -> None:
    """The same endpoints with valid values answer 200, so the 4xx above are about input."""
    body = body_of(trace_spans(31, 3))
    await client.post("/v1/traces", content=body, headers=PROTOBUF)
    tid = sorted(trace_ids(body))[0]
    assert (await client.get(f"/api/v1/traces/{tid.upper()}")).status_code == 200
    for params in (
        {"start": "2025-11-13T00:00:00Z", "end": "now"},
        {"start": "1763000000", "group_by": "model", "bucket": "1h"},
        {"attr": "gen_ai.request.model=gpt-4o-mini"},
        {"status": "ok", "limit": "1000"},
    ):
        for url in ("/api/v1/spans", "/api/v1/traces", "/api/v1/stats"):
            r = await client.get(url, params=params)
            assert r.status_code == 200, (url, params, r.text)
    page = (await client.get("/api/v1/spans", params={"limit": 5})).json()
    nxt = await client.get("/api/v1/spans", params={"limit": 5, "cursor": page["next_cursor"]})
    assert nxt.status_code == 200
    first = {s["span_id"] for s in page["items"]}
    assert first.isdisjoint({s["span_id"] for s in nxt.json()["items"]})
