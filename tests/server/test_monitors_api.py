"""/api/v1/monitors: create, read, change, run, results, alerts, delete; 4xx with reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from assay.store.duckdb import DuckDBStore
from drift_support import traffic

pytestmark = pytest.mark.all_backends

OK = {"name": "lengths", "every": "1h", "window": "1d", "reference": "2d..1d",
      "features": ["output_length", "latency_ms"]}  # fmt: skip


@pytest.fixture
def recent(store: DuckDBStore) -> DuckDBStore:
    """Two days of traffic; yesterday's answers twice as long as the day before's."""
    now = datetime.now(UTC)
    store.insert_spans(traffic(40, now - timedelta(days=2) + timedelta(hours=1), seed=1))
    store.insert_spans(
        traffic(40, now - timedelta(days=1) + timedelta(hours=1), seed=2, longer_outputs=True)
    )
    return store


async def test_create_list_change_and_delete(client: httpx.AsyncClient) -> None:
    body = {**OK, "webhooks": ["https://hooks.example.com/a"], "filters": {"route": "/chat"}}
    resp = await client.post("/api/v1/monitors", json=body)
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["every"] == "1h" and created["every_seconds"] == 3600
    assert created["filters"] == {"route": "/chat"} and created["state"] is None
    assert created["enabled"] and created["next_run_at"] is not None

    listed = (await client.get("/api/v1/monitors")).json()["items"]
    assert [m["name"] for m in listed] == ["lengths"]
    assert (await client.get("/api/v1/monitors/lengths")).json()["webhooks"] == body["webhooks"]

    changed = await client.patch("/api/v1/monitors/lengths", json={"every": "15m", "alpha": 0.01})
    assert changed.status_code == 200, changed.text
    got = changed.json()
    assert got["every"] == "15m" and got["alpha"] == 0.01 and got["filters"] == {"route": "/chat"}
    off = (await client.patch("/api/v1/monitors/lengths", json={"enabled": False})).json()
    assert off["enabled"] is False and off["next_run_at"] is None
    on = (await client.patch("/api/v1/monitors/lengths", json={"enabled": True})).json()
    assert on["next_run_at"] is not None

    assert (await client.delete("/api/v1/monitors/lengths")).status_code == 204
    assert (await client.get("/api/v1/monitors/lengths")).status_code == 404
    assert (await client.delete("/api/v1/monitors/lengths")).status_code == 404


async def test_run_stores_a_result_readable_with_its_report(
    client: httpx.AsyncClient, recent: DuckDBStore
) -> None:
    assert (await client.post("/api/v1/monitors", json=OK)).status_code == 201
    resp = await client.post("/api/v1/monitors/lengths/run")
    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert result["trigger"] == "manual" and result["verdict"] == "drift"
    assert result["state"] == "drift" and result["previous_state"] is None
    assert result["drifted"] == ["output_length"] and result["report"]["version"] == 1
    assert [f["feature"] for f in result["features"]] == ["output_length", "latency_ms"]

    items = (await client.get("/api/v1/monitors/lengths/results")).json()["items"]
    assert [r["result_id"] for r in items] == [result["result_id"]]
    assert "report" not in items[0]
    one = await client.get(f"/api/v1/monitors/lengths/results/{result['result_id']}")
    assert one.json()["report"]["drifted"] == ["output_length"]
    monitor = (await client.get("/api/v1/monitors/lengths")).json()
    assert monitor["state"] == "drift" and monitor["last_result_id"] == result["result_id"]
    # A manual run does not move the schedule: the first scheduled run is still due.
    assert datetime.fromisoformat(monitor["next_run_at"]) <= datetime.now(UTC)
    assert (await client.get("/api/v1/monitors/lengths/alerts")).json() == {"items": []}
    since = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    later = await client.get("/api/v1/monitors/lengths/results", params={"since": since})
    assert later.json()["items"] == []


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({**OK, "every": "10s"}, 400, "minimum of 1m"),
        ({**OK, "every": 10**400}, 400, "maximum of 90d"),
        ({**OK, "window": "999999d"}, 400, "outside the calendar"),
        ({**OK, "webhooks": ["http://[::1"]}, 400, "not an http(s) URL"),
        ({**OK, "name": "no spaces"}, 400, "monitor name 'no spaces'"),
        ({**OK, "window": "2026-03-01..2026-03-02"}, 400, "fixed time"),
        ({**OK, "reference": "1d..2d"}, 400, "write the older time first"),
        ({**OK, "reference": None}, 400, "exactly one reference"),
        ({**OK, "reference_goldens": "support"}, 400, "one reference"),
        ({**{k: v for k, v in OK.items() if k != "reference"}, "reference_goldens": "nope"},
         400, "golden set 'nope' is not stored"),
        ({**OK, "features": ["latency"]}, 400, "unknown drift feature 'latency'"),
        ({**OK, "filters": {"colour": "red"}}, 400, "unknown filter"),
        ({**OK, "embedder": "word2vec"}, 400, "embedder"),
        ({**OK, "webhooks": ["not a url"]}, 400, "not an http(s) URL"),
        ({**OK, "webhooks": [f"https://h.example/{i}" for i in range(11)]}, 422, "webhooks"),
        ({**OK, "colour": "red"}, 422, "colour"),
        ({**OK, "alpha": 2}, 422, "alpha"),
        ({**{k: v for k, v in OK.items() if k != "name"}}, 422, "name"),
    ],
)  # fmt: skip
async def test_bad_definitions_get_4xx_with_the_reason(
    client: httpx.AsyncClient, body: dict[str, Any], status: int, reason: str
) -> None:
    resp = await client.post("/api/v1/monitors", json=body)
    assert resp.status_code == status, resp.text
    assert reason in resp.text
    assert (await client.get("/api/v1/monitors")).json()["items"] == []


async def test_conflicts_and_unknown_monitors(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/v1/monitors", json=OK)).status_code == 201
    again = await client.post("/api/v1/monitors", json=OK)
    assert again.status_code == 409 and "already exists" in again.text
    bad_patch = await client.patch("/api/v1/monitors/lengths", json={"window": "7d..1d ago x"})
    assert bad_patch.status_code == 400 and "current window" in bad_patch.text
    unknown = await client.patch("/api/v1/monitors/lengths", json={"name": "other"})
    assert unknown.status_code == 422
    for method, path in [
        ("GET", "/api/v1/monitors/nope"),
        ("PATCH", "/api/v1/monitors/nope"),
        ("POST", "/api/v1/monitors/nope/run"),
        ("GET", "/api/v1/monitors/nope/results"),
        ("GET", "/api/v1/monitors/lengths/results/nope"),
        ("GET", "/api/v1/monitors/nope/alerts"),
    ]:
        resp = await client.request(method, path, json={} if method == "PATCH" else None)
        assert resp.status_code == 404, (method, path, resp.text)
        assert "nope" in resp.json()["detail"]
    bad_since = await client.get("/api/v1/monitors/lengths/results", params={"since": "then"})
    assert bad_since.status_code == 400 and "since" in bad_since.text


async def test_only_the_admin_may_set_webhooks(store: DuckDBStore, db_path: str) -> None:
    from receiver_support import ADMIN, bearer, serve

    from assay.keys import create_key
    from assay.settings import Settings

    _, key = create_key(store, "default")
    hook = {**OK, "webhooks": ["http://10.0.0.1/internal"]}
    async with serve(Settings(db=db_path, host="0.0.0.0", admin_key=ADMIN), store) as c:
        denied = await c.post("/api/v1/monitors", json=hook, headers=bearer(key))
        assert denied.status_code == 403 and "admin key" in denied.text
        plain = await c.post("/api/v1/monitors", json=OK, headers=bearer(key))
        assert plain.status_code == 201
        patch = await c.patch(
            "/api/v1/monitors/lengths", json={"webhooks": hook["webhooks"]}, headers=bearer(key)
        )
        assert patch.status_code == 403
        admin = await c.patch(
            "/api/v1/monitors/lengths", json={"webhooks": hook["webhooks"]}, headers=bearer(ADMIN)
        )
        assert admin.status_code == 200, admin.text
