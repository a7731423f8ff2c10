"""/api/v1/online: create, read, change, pause, delete rules; 4xx with reasons; the server's
worker scoring new spans end to end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from assay.server import create_app
from assay.settings import Settings
from assay.store.duckdb import DuckDBStore
from online_support import spans

pytestmark = pytest.mark.all_backends

JUDGE = {
    "name": "judge",
    "rubric": "The answer resolves the customer's question.",
    "endpoint": {"base_url": "http://127.0.0.1:9/v1", "model": "gpt-4o-mini"},
}
OK = {"name": "helpful", "scorer": JUDGE, "sample": 0.05, "filters": {"route": "support"}}


async def test_create_list_change_pause_and_delete(client: httpx.AsyncClient) -> None:
    resp = await client.post("/api/v1/online", json={**OK, "budget_usd": 5, "concurrency": 16})
    assert resp.status_code == 201, resp.text
    rule = resp.json()
    assert rule["scorer"] == JUDGE and rule["score_name"] == "helpful"
    assert rule["filters"] == {"route": "support", "kind": "llm"}
    assert (rule["sample"], rule["budget_usd"], rule["budget_period"]) == (0.05, 5.0, "day")
    assert (rule["concurrency"], rule["retries"], rule["enabled"]) == (16, 2, True)
    status = rule["status"]
    assert status["state"] == "waiting" and status["scored"] == 0 and status["spend_usd"] == 0
    assert status["backlog_spans"] == 0 and status["lag_seconds"] == 0.0
    assert {"processed", "errors", "skipped_budget", "queue_depth", "in_flight"} <= set(status)

    listed = (await client.get("/api/v1/online")).json()["items"]
    assert [r["name"] for r in listed] == ["helpful"]
    assert (await client.get("/api/v1/online/helpful")).json()["sample"] == 0.05

    changed = await client.patch(
        "/api/v1/online/helpful",
        json={"sample": 0.2, "filters": {"route": "billing"}, "budget_period": "week"},
    )
    assert changed.status_code == 200, changed.text
    got = changed.json()
    assert got["sample"] == 0.2 and got["filters"] == {"route": "billing", "kind": "llm"}
    assert got["budget_period"] == "week" and got["scorer"] == JUDGE
    assert got["updated_at"] > rule["updated_at"]

    paused = (await client.patch("/api/v1/online/helpful", json={"enabled": False})).json()
    assert paused["enabled"] is False and paused["status"]["state"] == "paused"
    resumed = await client.patch(
        "/api/v1/online/helpful", json={"enabled": True, "budget_usd": None}
    )
    assert resumed.json()["enabled"] is True and resumed.json()["budget_usd"] is None

    assert (await client.delete("/api/v1/online/helpful")).status_code == 204
    assert (await client.get("/api/v1/online/helpful")).status_code == 404
    assert (await client.get("/api/v1/online")).json()["items"] == []


async def test_status_shows_the_backlog_and_its_lag(
    client: httpx.AsyncClient, store: DuckDBStore
) -> None:
    body = {"name": "valid", "scorer": "json_valid", "since": "1h", "filters": {}}
    assert (await client.post("/api/v1/online", json=body)).status_code == 201
    store.insert_spans(spans(7) + spans(3, 100, kind="chain"))
    status = (await client.get("/api/v1/online/valid")).json()["status"]
    assert status["backlog_spans"] == 7 and 0 <= status["lag_seconds"] < 60


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({**OK, "name": "a b"}, 400, "rule name 'a b' must start with a letter"),
        ({"name": "x", "sample": 0.1}, 400, "scorer is missing"),
        ({**OK, "scorer": "nope"}, 400, "scorer: unknown scorer 'nope'"),
        (
            {**OK, "scorer": {"name": "judge", "endpoint": JUDGE["endpoint"]}},
            400,
            "rubric is missing",
        ),
        ({**OK, "scorer": {"name": "exact", "bogus": 1}}, 400, "has no argument 'bogus'"),
        ({**OK, "scorer": {**JUDGE, "name": "pairwise_judge"}}, 400, "cannot score one span"),
        ({**OK, "filters": {"rout": "x"}}, 400, "filter 'rout' is not a span field"),
        ({**OK, "filters": {"status": "bad"}}, 400, "status 'bad' is not one of ok"),
        ({**OK, "since": "yesterday-ish"}, 400, "since 'yesterday-ish' is not a time"),
        ({**OK, "score_name": "has space"}, 400, "score_name 'has space' must be"),
        ({**OK, "sample": 0}, 422, "greater than 0"),
        ({**OK, "sample": 2}, 422, "less than or equal to 1"),
        ({**OK, "concurrency": 0}, 422, "greater than or equal to 1"),
        ({**OK, "budget_usd": -5}, 422, "greater than 0"),
        ({**OK, "budget_period": "year"}, 422, "'hour', 'day', 'week' or 'month'"),
        ({**OK, "sampel": 0.1}, 422, "Extra inputs are not permitted"),
    ],
)
async def test_bad_rules_get_4xx_with_the_reason(
    client: httpx.AsyncClient, body: dict[str, Any], status: int, reason: str
) -> None:
    resp = await client.post("/api/v1/online", json=body)
    assert resp.status_code == status, resp.text
    assert reason in resp.text


async def test_taken_names_and_unknown_rules(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/v1/online", json=OK)).status_code == 201
    again = await client.post("/api/v1/online", json=OK)
    assert again.status_code == 409 and "already exists" in again.json()["detail"]
    for method in ("GET", "PATCH", "DELETE"):
        resp = await client.request(
            method, "/api/v1/online/nope", json={} if method == "PATCH" else None
        )
        assert resp.status_code == 404, (method, resp.text)
        assert "no online rule 'nope'" in resp.json()["detail"]
    bad = await client.patch("/api/v1/online/helpful", json={"scorer": "nope"})
    assert bad.status_code == 400 and "unknown scorer 'nope'" in bad.json()["detail"]
    bad = await client.patch("/api/v1/online/helpful", json={"filters": {"rout": "x"}})
    assert bad.status_code == 400 and "not a span field" in bad.json()["detail"]


@pytest.fixture
async def fast_app(settings: Settings, store: DuckDBStore) -> AsyncIterator[FastAPI]:
    application = create_app(settings.with_(online_poll_seconds=0.02, monitors=False), store=store)
    async with application.router.lifespan_context(application):
        yield application


async def test_the_server_worker_scores_new_spans(fast_app: FastAPI, store: DuckDBStore) -> None:
    transport = httpx.ASGITransport(app=fast_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:7800") as client:
        body = {"name": "valid", "scorer": "json_valid", "sample": 1.0}
        assert (await client.post("/api/v1/online", json=body)).status_code == 201
        await asyncio.sleep(0.01)
        store.insert_spans(spans(4))
        for _ in range(300):
            items = (await client.get("/api/v1/feedback", params={"name": "valid"})).json()
            if len(items["items"]) == 4:
                break
            await asyncio.sleep(0.02)
        assert len(items["items"]) == 4
        # The answers ("answer 3") are not JSON: json_valid scores them 0.
        assert {(f["source"], f["author"], f["value"]) for f in items["items"]} == {
            ("judge", "valid", 0.0)
        }
        for _ in range(100):
            status = (await client.get("/api/v1/online/valid")).json()["status"]
            if status["processed"] == 4:
                break
            await asyncio.sleep(0.02)
        assert status["state"] == "running" and status["worker"] is not None
        assert (status["scored"], status["processed"], status["backlog_spans"]) == (4, 4, 0)
