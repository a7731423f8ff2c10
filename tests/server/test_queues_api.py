"""/api/v1/queues and /api/v1/goldens/{name}/promote over HTTP: a labelling session as the
web page will run it, drift queues from a check and from a monitor, and 4xx with a
reason for every bad request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from assay.feedback import make_feedback
from assay.model import Span
from assay.store.duckdb import DuckDBStore
from drift_support import DAY1, traffic

pytestmark = pytest.mark.all_backends

LABEL = {"name": "topic", "values": ["billing", "shipping", "other"]}
STRATIFIED = {
    "name": "by-route",
    "strategy": "stratified",
    "field": "route",
    "allocation": "equal",
    "size": 9,
    "seed": 4,
    "label": LABEL,
    "instructions": "What is the customer asking about?",
    "created_by": "lead",
}


@pytest.fixture
def spans(store: DuckDBStore) -> list[Span]:
    out = traffic(60, DAY1, seed=3)
    store.insert_spans(out)
    return out


async def test_a_labelling_session(client: httpx.AsyncClient, spans: list[Span]) -> None:
    created = await client.post("/api/v1/queues", json=STRATIFIED)
    assert created.status_code == 201, created.text
    queue = created.json()
    assert queue["strategy"] == "stratified" and queue["seed"] == 4 and queue["items"] == 9
    assert queue["probability_sample"] and queue["population"] == 60
    assert [s["allocated"] for s in queue["params"]["strata"]] == [3, 3, 3]
    assert queue["progress"]["remaining"] == 9

    a = (await client.post("/api/v1/queues/by-route/next", json={"labeller": "ana"})).json()
    b = (await client.post("/api/v1/queues/by-route/next", json={"labeller": "bob"})).json()
    item = a["item"]
    assert (item["id"], b["item"]["id"]) == (1, 2)
    # Everything a labelling page shows comes with the item.
    assert a["queue"]["label"] == {"name": "topic", "kind": "category", "values": LABEL["values"]}
    assert a["queue"]["instructions"] == STRATIFIED["instructions"]
    assert item["claimed_by"] == "ana" and item["lease_expires_at"]
    assert item["input"]["text"] and item["output"]["text"] and item["label_on"] == "span"
    assert {"name", "route", "start_time", "trace_url", "reason"} <= item["context"].keys()
    assert item["inclusion_probability"] == pytest.approx(3 / item_count(queue, item["stratum"]))
    assert a["queue"]["progress"]["claimed"] == 1 and b["queue"]["progress"]["claimed"] == 2

    labelled = await client.post(
        "/api/v1/queues/by-route/items/1/label",
        json={"labeller": "ana", "value": "Billing", "comment": "asks about a charge"},
    )
    assert labelled.status_code == 200, labelled.text
    out = labelled.json()
    assert out["feedback"]["value"] == "billing" and out["feedback"]["source"] == "reviewer"
    assert out["feedback"]["author"] == "ana" and out["feedback"]["name"] == "topic"
    assert out["item"]["status"] == "labelled" and out["progress"]["labelled"] == 1
    stored = (await client.get("/api/v1/feedback", params={"source": "reviewer"})).json()
    assert [f["id"] for f in stored["items"]] == [out["feedback"]["id"]]

    skipped = await client.post(
        "/api/v1/queues/by-route/items/2/skip", json={"labeller": "bob", "reason": "spam"}
    )
    assert skipped.json()["item"]["skip_reason"] == "spam"
    c = (await client.post("/api/v1/queues/by-route/next", json={"labeller": "cy"})).json()
    assert c["item"]["id"] == 3
    released = await client.post("/api/v1/queues/by-route/items/3/release", json={"labeller": "cy"})
    assert released.json()["open"] and released.json()["item"]["claimed_by"] is None

    shown = (await client.get("/api/v1/queues/by-route")).json()
    assert shown["progress"]["by_labeller"] == {
        "ana": {"labelled": 1, "skipped": 0, "claimed": 0},
        "bob": {"labelled": 0, "skipped": 1, "claimed": 0},
    }
    done = (await client.get("/api/v1/queues/by-route/items", params={"status": "labelled"})).json()
    assert [i["id"] for i in done["items"]] == [1]
    one = (await client.get("/api/v1/queues/by-route/items/2")).json()
    assert one["status"] == "skipped" and one["done_by"] == "bob"
    listed = (await client.get("/api/v1/queues")).json()["items"]
    assert [q["name"] for q in listed] == ["by-route"] and listed[0]["progress"]["done"] == 2
    assert (await client.delete("/api/v1/queues/by-route")).status_code == 204
    assert (await client.get("/api/v1/queues")).json() == {"items": []}


def item_count(queue: dict[str, Any], stratum: str) -> int:
    return next(s["population"] for s in queue["params"]["strata"] if s["value"] == stratum)


async def test_next_says_why_nothing_is_offered(
    client: httpx.AsyncClient, spans: list[Span]
) -> None:
    body = {
        "name": "tiny",
        "strategy": "random",
        "size": 1,
        "label": {"name": "ok", "boolean": True},
    }
    assert (await client.post("/api/v1/queues", json=body)).status_code == 201
    await client.post("/api/v1/queues/tiny/next", json={"labeller": "ana"})
    busy = (await client.post("/api/v1/queues/tiny/next", json={"labeller": "bob"})).json()
    assert busy["item"] is None and "claimed by someone else" in busy["message"]
    await client.post("/api/v1/queues/tiny/items/1/label", json={"labeller": "ana", "value": True})
    done = (await client.post("/api/v1/queues/tiny/next", json={"labeller": "bob"})).json()
    assert done["item"] is None and "tiny is done: 1 labelled, 0 skipped" in done["message"]


async def test_judge_strategies_over_http(
    client: httpx.AsyncClient, store: DuckDBStore, spans: list[Span]
) -> None:
    llm = [s for s in spans if s.name == "ChatCompletion"]
    store.add_feedback(
        [
            make_feedback("default", s.trace_id, "helpful", v, span_id=s.span_id, source="judge")
            for s, values in zip(llm[:3], ((0.9, 0.2), (0.52,), (0.1, 0.15)), strict=True)
            for v in values
        ]
    )
    scale = {"name": "helpful", "scale": "1-5"}
    low = {"strategy": "low-confidence", "judge": "helpful", "size": 2, "label": scale}
    resp = await client.post("/api/v1/queues", json={"name": "low", **low})
    assert resp.status_code == 201, resp.text
    items = (await client.get("/api/v1/queues/low/items")).json()["items"]
    assert [i["span_id"] for i in items] == [llm[1].span_id, llm[0].span_id]
    assert all(i["inclusion_probability"] is None for i in items)
    dis = {**low, "strategy": "disagreement"}
    resp = await client.post("/api/v1/queues", json={"name": "dis", **dis})
    items = (await client.get("/api/v1/queues/dis/items")).json()["items"]
    assert [i["span_id"] for i in items] == [llm[0].span_id]
    assert items[0]["context"]["reason"]["decisions"] == {"pass": 1, "fail": 1}
    bad = await client.post(
        "/api/v1/queues/low/items/1/label", json={"labeller": "ana", "value": 7}
    )
    assert bad.status_code == 400 and "a whole number from 1 to 5" in bad.text


async def test_drift_queue_from_a_check_and_from_a_monitor(
    client: httpx.AsyncClient, store: DuckDBStore
) -> None:
    now = datetime.now(UTC)
    store.insert_spans(traffic(80, now - timedelta(days=2) + timedelta(hours=1), seed=1))
    store.insert_spans(
        traffic(80, now - timedelta(days=1) + timedelta(hours=1), seed=2, new_topic=0.5)
    )
    check = {"reference": "2d ago..1d ago", "current": "last 1d",
             "features": ["input_embedding"], "embedder": "hashing"}  # fmt: skip
    ok = {"name": "ok", "boolean": True}
    body = {"name": "moved", "strategy": "drift", "size": 15, "label": ok}
    resp = await client.post("/api/v1/queues", json={**body, "drift": {"check": check}})
    assert resp.status_code == 201, resp.text
    queue = resp.json()
    assert queue["items"] == 15 and queue["params"]["drifted"] == ["input_embedding"]
    assert "drift check run at creation" in queue["params"]["source"]
    items = (await client.get("/api/v1/queues/moved/items")).json()["items"]
    # The farthest examples of the new traffic are the injected new topic.
    assert sum("crypto" in (i["input"]["text"] or "") or "wallet" in (i["input"]["text"] or "")
               for i in items) >= 12  # fmt: skip
    assert all(i["context"]["reason"]["drift_feature"] == "input_embedding" for i in items)

    monitor = {"name": "topics", "every": "1h", "window": "1d", "reference": "2d..1d",
               "features": ["input_embedding"], "embedder": "hashing", "examples": 5}  # fmt: skip
    assert (await client.post("/api/v1/monitors", json=monitor)).status_code == 201
    assert (await client.post("/api/v1/monitors/topics/run")).json()["verdict"] == "drift"
    resp = await client.post(
        "/api/v1/queues", json={**body, "name": "from-monitor", "drift": {"monitor": "topics"}}
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["items"] == 5 and resp.json()["params"]["source"].startswith(
        "monitor topics"
    )


async def test_promote_over_http(client: httpx.AsyncClient, spans: list[Span]) -> None:
    trace = spans[0].trace_id
    body = {"trace_id": trace, "expected": {"topic": "billing"}, "author": "ana"}
    first = await client.post("/api/v1/goldens/support/promote", json=body)
    assert first.status_code == 201, first.text
    out = first.json()
    assert out["created"] and out["previous_version"] is None
    assert out["case"]["expected"] == {"topic": "billing"}
    again = await client.post("/api/v1/goldens/support/promote", json=body)
    assert again.status_code == 200 and not again.json()["created"]
    golden = (await client.get("/api/v1/goldens/support")).json()
    assert golden["version"] == out["golden"]["version"]
    (case,) = golden["cases"]
    assert case["metadata"]["provenance"]["trace_id"] == trace
    assert case["metadata"]["provenance"]["promoted_by"] == "ana"
    # An explicit null expects nothing, even when the trace has a reviewer label.
    await client.post(
        "/api/v1/feedback",
        json={"items": [{"trace_id": spans[4].trace_id, "name": "t", "value": "x",
                         "source": "reviewer"}]},
    )  # fmt: skip
    none = await client.post(
        "/api/v1/goldens/support/promote", json={"trace_id": spans[4].trace_id, "expected": None}
    )
    assert none.json()["case"]["expected"] is None
    assert none.json()["previous_version"] == out["golden"]["version"]


QUEUE = {"name": "q", "strategy": "random", "label": {"name": "ok", "boolean": True}}
BAD_CREATE = [
    ({"strategy": "random"}, 422, "label"),
    ({**QUEUE, "strategy": "clever"}, 422, "strategy"),
    ({**QUEUE, "size": 0}, 422, "size"),
    ({**QUEUE, "extra": 1}, 422, "extra"),
    ({**QUEUE, "filters": {"colour": "red"}}, 422, "colour"),
    ({**QUEUE, "name": "no spaces"}, 400, "queue name"),
    ({**QUEUE, "label": {"name": "ok", "boolean": True, "values": "a,b"}}, 400, "once"),
    ({**QUEUE, "label": {"name": "ok", "scale": "5-1"}}, 400, "LOW must be below HIGH"),
    ({**QUEUE, "strategy": "stratified"}, 400, "needs --field"),
    ({**QUEUE, "strategy": "low-confidence"}, 400, "needs --judge"),
    ({**QUEUE, "strategy": "low-confidence", "judge": "h"}, 400, "no judge scores named 'h'"),
    ({**QUEUE, "strategy": "disagreement", "judge": "h"}, 400, "no judge scores named 'h'"),
    ({**QUEUE, "strategy": "drift"}, 400, "drift needs a drift report"),
    ({**QUEUE, "drift": {"monitor": "m"}}, 400, "only for strategy drift"),
    ({**QUEUE, "strategy": "drift", "drift": {}}, 400, "exactly one of"),
    ({**QUEUE, "strategy": "drift", "drift": {"monitor": "m"}}, 404, "no monitor named 'm'"),
    ({**QUEUE, "strategy": "drift", "drift": {"report": {"x": 1}}}, 400, "no features list"),
    ({**QUEUE, "strategy": "drift", "drift": {"check": {"colour": 1}}}, 422, "drift.check"),
    ({**QUEUE, "strategy": "drift", "drift": {"check": {"current": "last 1d"}}}, 400, "reference"),
    ({**QUEUE, "filters": {"start": "yesterday"}}, 400, "not a time"),
    ({**QUEUE, "filters": {"attr": ["novalue"]}}, 400, "key=value"),
    ({**QUEUE, "filters": {"model": "gpt-9"}}, 400, "no traces match the filters"),
    ({**QUEUE, "lease_seconds": 5}, 422, "lease_seconds"),
]


async def test_create_refusals(client: httpx.AsyncClient, spans: list[Span]) -> None:
    # One app for the whole matrix: each case is a separate request.
    for body, status, reason in BAD_CREATE:
        resp = await client.post("/api/v1/queues", json=body)
        assert (resp.status_code, reason in resp.text) == (status, True), (body, resp.text)
    assert (await client.get("/api/v1/queues")).json() == {"items": []}


BAD_WORK = [
    ("POST", "/api/v1/queues", QUEUE, 409, "already exists"),
    ("GET", "/api/v1/queues/nope", None, 404, "no queue named 'nope'"),
    ("DELETE", "/api/v1/queues/nope", None, 404, "no queue named 'nope'"),
    ("GET", "/api/v1/queues/q/items?status=done", None, 400, "status 'done'"),
    ("GET", "/api/v1/queues/q/items/0", None, 422, "item_id"),
    ("GET", "/api/v1/queues/q/items/99", None, 404, "numbered 1 to 3"),
    ("GET", "/api/v1/queues/q/items/x", None, 422, "item_id"),
    ("POST", "/api/v1/queues/q/next", {}, 422, "labeller"),
    ("POST", "/api/v1/queues/q/next", {"labeller": " ana"}, 400, "surrounding spaces"),
    ("POST", "/api/v1/queues/nope/next", {"labeller": "ana"}, 404, "no queue"),
    ("POST", "/api/v1/queues/q/items/1/label", {"labeller": "bob", "value": True}, 409,
     "claimed by ana"),
    ("POST", "/api/v1/queues/q/items/2/label", {"labeller": "bob", "value": "perhaps"}, 400,
     "must be pass or fail"),
    ("POST", "/api/v1/queues/q/items/2/label", {"labeller": "bob", "value": [1]}, 422, "value"),
    ("POST", "/api/v1/queues/q/items/3/label", {"labeller": "bob", "value": False}, 409,
     "already skipped by cy"),
    ("POST", "/api/v1/queues/q/items/3/skip", {"labeller": "bob"}, 409, "already skipped"),
    ("POST", "/api/v1/queues/q/items/1/skip", {"labeller": "bob", "reason": "x" * 3000}, 422,
     "reason"),
    ("POST", "/api/v1/queues/q/items/1/release", {"labeller": "bob"}, 409, "only the holder"),
    ("POST", "/api/v1/goldens/g/promote", {"trace_id": "nothex"}, 400, "32 hex characters"),
    ("POST", "/api/v1/goldens/g/promote", {"trace_id": "ab" * 16}, 404, "no trace"),
    ("POST", "/api/v1/goldens/g/promote", {"trace_id": "TRACE", "span_id": "12"}, 400,
     "16 hex characters"),
    ("POST", "/api/v1/goldens/bad name/promote", {"trace_id": "TRACE"}, 400,
     "golden set name"),
    ("POST", "/api/v1/goldens/g/promote", {"trace_id": "TRACE", "colour": 1}, 422, "colour"),
]  # fmt: skip


async def test_work_refusals(client: httpx.AsyncClient, spans: list[Span]) -> None:
    made = await client.post("/api/v1/queues", json={**QUEUE, "size": 3})
    assert made.status_code == 201
    await client.post("/api/v1/queues/q/next", json={"labeller": "ana"})
    await client.post("/api/v1/queues/q/items/3/skip", json={"labeller": "cy"})
    trace = spans[0].trace_id
    for method, url, body, status, reason in BAD_WORK:
        if body is not None:
            body = {k: trace if v == "TRACE" else v for k, v in body.items()}
        resp = await client.request(method, url, json=body)
        assert (resp.status_code, reason in resp.text) == (status, True), (url, body, resp.text)
    # Nothing above changed the queue.
    progress = (await client.get("/api/v1/queues/q")).json()["progress"]
    assert (progress["labelled"], progress["skipped"], progress["claimed"]) == (0, 1, 1)
