"""API keys on the receiver and the query API: who may write and read which project."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from receiver_support import (
    ADMIN,
    JSON_CT,
    PROTOBUF,
    bearer,
    body_of,
    rpc_status,
    serve,
    span_keys,
    trace_ids,
    trace_spans,
)

from assay.keys import create_key
from assay.settings import Settings
from assay.store.duckdb import DuckDBStore

# -- authentication and project isolation ------------------------------------------------


@pytest.fixture
async def exposed(store: DuckDBStore, db_path: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app bound beyond loopback (keys required), with an admin key."""
    async with serve(Settings(db=db_path, host="0.0.0.0", admin_key=ADMIN), store) as c:
        yield c


async def test_non_loopback_requires_a_key(exposed: httpx.AsyncClient, store: DuckDBStore) -> None:
    body = body_of(trace_spans(20))
    r = await exposed.post("/v1/traces", content=body, headers=PROTOBUF)
    assert r.status_code == 401
    assert rpc_status(r).code == 16  # UNAUTHENTICATED
    assert "API key" in rpc_status(r).message
    r = await exposed.post("/v1/traces", content=b"{}", headers=JSON_CT)
    assert r.status_code == 401
    assert r.json()["code"] == 16
    for headers in (bearer("assay_000000000000_" + "x" * 43), {"x-api-key": "nonsense"}):
        r = await exposed.post("/v1/traces", content=body, headers={**PROTOBUF, **headers})
        assert r.status_code == 401
    r = await exposed.get("/api/v1/traces")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert store.count_spans() == 0


async def test_keys_write_to_and_read_their_own_project(
    exposed: httpx.AsyncClient, store: DuckDBStore
) -> None:
    _, key_a = create_key(store, "proj-a")
    _, key_b = create_key(store, "proj-b")
    body_a = body_of(trace_spans(21, 2))
    body_b = body_of(trace_spans(22, 2))
    r = await exposed.post("/v1/traces", content=body_a, headers={**PROTOBUF, **bearer(key_a)})
    assert r.status_code == 200
    r = await exposed.post("/v1/traces", content=body_b, headers={**PROTOBUF, "x-api-key": key_b})
    assert r.status_code == 200
    assert store.count_spans("proj-a") == 8
    assert store.count_spans("proj-b") == 8
    assert store.count_spans("default") == 0

    # A's listings show only A's spans and traces.
    spans_a = (await exposed.get("/api/v1/spans", headers=bearer(key_a))).json()["items"]
    assert {(s["trace_id"], s["span_id"]) for s in spans_a} == span_keys(body_a)
    assert {s["project"] for s in spans_a} == {"proj-a"}
    traces_a = (await exposed.get("/api/v1/traces", headers=bearer(key_a))).json()["items"]
    assert {t["trace_id"] for t in traces_a} == trace_ids(body_a)
    # Naming its own project is fine; naming another is 403.
    own = await exposed.get("/api/v1/traces", params={"project": "proj-a"}, headers=bearer(key_a))
    assert own.status_code == 200
    r = await exposed.get("/api/v1/traces", params={"project": "proj-b"}, headers=bearer(key_a))
    assert r.status_code == 403
    assert "proj-b" in r.json()["detail"]
    r = await exposed.get("/api/v1/stats", params={"project": "proj-b"}, headers=bearer(key_a))
    assert r.status_code == 403
    # B's trace does not exist as far as A is concerned.
    for tid in trace_ids(body_b):
        r = await exposed.get(f"/api/v1/traces/{tid}", headers=bearer(key_a))
        assert r.status_code == 404
        r = await exposed.get(
            f"/api/v1/traces/{tid}", params={"project": "proj-b"}, headers=bearer(key_a)
        )
        assert r.status_code == 403
        r = await exposed.get(f"/api/v1/traces/{tid}", headers=bearer(key_b))
        assert r.status_code == 200
        assert r.json()["project"] == "proj-b"
    # Keys cannot administer.
    assert (await exposed.get("/api/v1/keys", headers=bearer(key_a))).status_code == 403
    # The admin key may read any project.
    r = await exposed.get("/api/v1/traces", params={"project": "proj-b"}, headers=bearer(ADMIN))
    assert r.status_code == 200
    assert {t["trace_id"] for t in r.json()["items"]} == trace_ids(body_b)


async def test_same_span_ids_in_two_projects_are_kept_apart(
    exposed: httpx.AsyncClient, store: DuckDBStore
) -> None:
    _, key_a = create_key(store, "proj-a")
    _, key_b = create_key(store, "proj-b")
    body = body_of(trace_spans(23))
    for key in (key_a, key_b):
        r = await exposed.post("/v1/traces", content=body, headers={**PROTOBUF, **bearer(key)})
        assert r.status_code == 200
    assert store.count_spans("proj-a") == store.count_spans("proj-b") == 4


async def test_revoked_key_is_401(exposed: httpx.AsyncClient, store: DuckDBStore) -> None:
    key, secret = create_key(store, "proj-a")
    body = body_of(trace_spans(24))
    headers = {**PROTOBUF, **bearer(secret)}
    assert (await exposed.post("/v1/traces", content=body, headers=headers)).status_code == 200

    # Only the admin may revoke.
    r = await exposed.delete(f"/api/v1/keys/{key.key_id}", headers=bearer(secret))
    assert r.status_code == 403
    r = await exposed.delete(f"/api/v1/keys/{key.key_id}")
    assert r.status_code == 401
    r = await exposed.delete("/api/v1/keys/000000000000", headers=bearer(ADMIN))
    assert r.status_code == 404
    r = await exposed.delete(f"/api/v1/keys/{key.key_id}", headers=bearer(ADMIN))
    assert r.status_code == 204

    # The key was cached by the first request; revocation still takes effect at once.
    r = await exposed.post("/v1/traces", content=body_of(trace_spans(25)), headers=headers)
    assert r.status_code == 401
    assert (await exposed.get("/api/v1/traces", headers=bearer(secret))).status_code == 401
    assert store.count_spans("proj-a") == 4
    records = (await exposed.get("/api/v1/keys", headers=bearer(ADMIN))).json()
    assert [(k["key_id"], k["revoked"]) for k in records] == [(key.key_id, True)]


async def test_admin_api_creates_a_working_key(
    exposed: httpx.AsyncClient, store: DuckDBStore
) -> None:
    r = await exposed.post("/api/v1/projects/proj-c/keys", headers=bearer(ADMIN))
    assert r.status_code == 201
    secret = r.json()["secret"]
    body = body_of(trace_spans(26))
    r = await exposed.post("/v1/traces", content=body, headers={**PROTOBUF, **bearer(secret)})
    assert r.status_code == 200
    assert store.count_spans("proj-c") == 4
    r = await exposed.post("/api/v1/projects/Not A Name/keys", headers=bearer(ADMIN))
    assert r.status_code == 400


async def test_loopback_without_key_writes_to_default(
    client: httpx.AsyncClient, store: DuckDBStore
) -> None:
    body = body_of(trace_spans(27))
    assert (await client.post("/v1/traces", content=body, headers=PROTOBUF)).status_code == 200
    assert store.count_spans("default") == 4
    # A key still selects its project on loopback, and a wrong key is refused.
    _, key = create_key(store, "proj-a")
    other = body_of(trace_spans(28))
    r = await client.post("/v1/traces", content=other, headers={**PROTOBUF, **bearer(key)})
    assert r.status_code == 200
    assert store.count_spans("proj-a") == 4
    r = await client.post("/v1/traces", content=other, headers={**PROTOBUF, **bearer("wrong")})
    assert r.status_code == 401
    assert store.count_spans() == 8
