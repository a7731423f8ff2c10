"""POST /api/v1/queues/{name}/items over HTTP: an empty hand-picked queue filled trace by
trace, counts of added and already-present items, and 4xx with a reason (404 unknown
queue or trace, 409 a sampled queue, 400 a bad id)."""

from __future__ import annotations

import httpx
import pytest

from assay.model import Span
from assay.store.duckdb import DuckDBStore
from drift_support import DAY1, traffic

pytestmark = pytest.mark.all_backends

LABEL = {"name": "quality", "scale": "1-5"}


@pytest.fixture
def spans(store: DuckDBStore) -> list[Span]:
    out = traffic(10, DAY1, seed=3)
    store.insert_spans(out)
    return out


def roots(spans: list[Span]) -> list[Span]:
    return [s for s in spans if s.parent_span_id is None]


async def test_fill_a_hand_picked_queue(client: httpx.AsyncClient, spans: list[Span]) -> None:
    created = await client.post(
        "/api/v1/queues",
        json={"name": "picked", "strategy": "hand-picked", "label": LABEL, "created_by": "ana"},
    )
    assert created.status_code == 201, created.text
    queue = created.json()
    assert queue["strategy"] == "hand-picked" and queue["items"] == 0
    assert queue["size"] == 10_000 and queue["accepts_items"] is True
    assert not queue["probability_sample"] and queue["progress"]["total"] == 0

    a, b, c = roots(spans)[:3]
    child = next(s for s in spans if s.trace_id == c.trace_id and s.parent_span_id)
    r = await client.post(
        "/api/v1/queues/picked/items",
        json={
            "trace_ids": [a.trace_id, b.trace_id.upper()],
            "spans": [{"trace_id": c.trace_id, "span_id": child.span_id}],
            "added_by": "ana",
            "reason": "customer escalated",
        },
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["added"], out["already_present"]) == (3, 0)
    assert out["queue"]["items"] == 3 and out["queue"]["progress"]["remaining"] == 3

    again = await client.post(
        "/api/v1/queues/picked/items", json={"trace_ids": [a.trace_id, c.trace_id]}
    )
    assert again.status_code == 200
    assert (again.json()["added"], again.json()["already_present"]) == (1, 1)

    items = (await client.get("/api/v1/queues/picked/items")).json()["items"]
    assert [(i["id"], i["trace_id"], i["span_id"]) for i in items] == [
        (1, a.trace_id, a.span_id),
        (2, b.trace_id, b.span_id),
        (3, c.trace_id, child.span_id),
        (4, c.trace_id, c.span_id),
    ]
    assert items[0]["context"]["reason"]["added_by"] == "ana"
    assert items[0]["context"]["reason"]["why"] == "customer escalated"
    assert items[0]["input"]["text"] == a.input_text and items[0]["inclusion_probability"] is None

    # Items added by hand are labelled like any other.
    claimed = (await client.post("/api/v1/queues/picked/next", json={"labeller": "bo"})).json()
    assert claimed["item"]["id"] == 1
    labelled = await client.post(
        "/api/v1/queues/picked/items/1/label", json={"labeller": "bo", "value": 4}
    )
    assert labelled.status_code == 200
    assert labelled.json()["feedback"]["metadata"]["strategy"] == "hand-picked"


async def test_refusals(client: httpx.AsyncClient, spans: list[Span]) -> None:
    root = roots(spans)[0]
    body = {"trace_ids": [root.trace_id]}
    r = await client.post("/api/v1/queues/nope/items", json=body)
    assert r.status_code == 404 and "no queue named 'nope'" in r.json()["detail"]

    sample = {"name": "sample", "strategy": "random", "size": 3, "seed": 1, "label": LABEL}
    assert (await client.post("/api/v1/queues", json=sample)).status_code == 201
    r = await client.post("/api/v1/queues/sample/items", json=body)
    assert r.status_code == 409
    detail = r.json()["detail"]
    assert "is a random sample" in detail and "weights wrong" in detail
    assert "--strategy hand-picked --label quality --scale 1-5" in detail

    picked = {"name": "picked", "strategy": "hand-picked", "size": 2, "label": LABEL}
    assert (await client.post("/api/v1/queues", json=picked)).status_code == 201
    cases = [
        ({"trace_ids": ["xyz"]}, 400, "trace id 'xyz' must be 32 hex characters"),
        ({"spans": [{"trace_id": root.trace_id, "span_id": "zz"}]}, 400, "16 hex characters"),
        ({}, 400, "give at least one trace id"),
        ({"trace_ids": ["f" * 32]}, 404, f"no trace {'f' * 32}"),
        ({"spans": [{"trace_id": root.trace_id, "span_id": "e" * 16}]}, 404, "has no span"),
        ({"trace_ids": [s.trace_id for s in roots(spans)[:3]]}, 409, "may hold at most 2"),
        ({"trace_ids": [root.trace_id], "labeller": "x"}, 422, "extra"),
    ]
    for payload, status, message in cases:
        r = await client.post("/api/v1/queues/picked/items", json=payload)
        assert r.status_code == status, (payload, r.text)
        assert message in r.text, (payload, r.text)
    assert (await client.get("/api/v1/queues/picked")).json()["items"] == 0

    # A hand-picked queue selects nothing, so it takes no filters or seed.
    bad = {**picked, "name": "p2", "filters": {"route": "/chat"}, "seed": 3}
    r = await client.post("/api/v1/queues", json=bad)
    assert r.status_code == 400 and "takes no filters or seed (got route, seed)" in r.text
