"""Every dashboard page answers bad input with a 4xx page, never a 500."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from assay.demo import build_demo
from assay.server import create_app
from assay.server.pages import (
    annotate,
    calibration,
    drift,
    evals,
    goldens,
    login,
    overview,
    traces,
)
from assay.settings import Settings
from assay.store.duckdb import DuckDBStore

NASTY = ["x", "0", "-1", "99999999999999999999", "%00", "..%2F..%2Fetc", "é" * 300, "' OR 1=1 --"]
QUERY = {
    "page": ["abc", "-3", "0", "1e9"],
    "range": ["1y", ""],
    "version": ["nope", "0" * 64],
    "result": ["nope", "-1"],
    "runs": ["abc", "-5", "100000"],
    "limit": ["abc", "0", "100000"],
    "cursor": ["garbage", "AAAA"],
    "start": ["yesterday-ish", "99999999999999"],
    "min_cost": ["cheap"],
    "status": ["weird"],
    "a": ["nope"],
    "b": ["nope"],
    "old": ["nope"],
    "new": ["nope"],
    "span": ["zz", "0" * 16],
    "show": ["everything"],
    "window": ["since forever"],
    "pass_at": ["high", "2"],
}


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> DuckDBStore:
    path = tmp_path_factory.mktemp("bad") / "demo.duckdb"
    store = DuckDBStore(str(path))
    build_demo(store, Settings(db=str(path)), seed=3, now=datetime.now(UTC), traces=400)
    return store


@pytest.fixture
async def demo_client(demo_store: DuckDBStore) -> httpx.AsyncClient:
    settings = Settings(db="unused.duckdb", decode_workers=0, monitors=False, online=False)
    app: FastAPI = create_app(settings, store=demo_store)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:7800"
    ) as c:
        yield c


def routes(method: str) -> list[APIRoute]:
    """Every route of the page modules that answers ``method``."""
    modules = (login, overview, traces, evals, goldens, drift, annotate, calibration)
    return [
        r
        for m in modules
        for r in m.router.routes
        if isinstance(r, APIRoute) and method in r.methods
    ]


async def test_no_page_answers_garbage_with_a_server_error(demo_client: httpx.AsyncClient) -> None:
    gets = routes("GET")
    assert len(gets) >= 15
    failures = []
    for route in gets:
        params = re.findall(r"{(\w+)}", route.path)
        for values in itertools.islice(itertools.product(NASTY, repeat=len(params)), 12):
            path = route.path
            for name, value in zip(params, values, strict=True):
                path = path.replace("{" + name + "}", value)
            tries = [(None, None), *((k, v) for k, vs in QUERY.items() for v in vs)]
            for key, bad in tries:
                url = path if key is None else f"{path}?{key}={bad}"
                r = await demo_client.get(url)
                if r.status_code >= 500 or r.status_code == 422:
                    failures.append(f"{url} -> {r.status_code}")
    assert not failures, "\n".join(failures[:40])


async def test_a_value_of_the_wrong_type_is_a_400_page_not_json(
    demo_client: httpx.AsyncClient,
) -> None:
    r = await demo_client.get("/goldens/support?page=abc")
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("text/html")
    assert "page" in r.text and "address bar" in r.text
    api = await demo_client.get("/api/v1/traces?limit=abc")
    assert api.status_code == 422 and api.headers["content-type"] == "application/json"


async def test_posts_without_a_csrf_token_change_nothing(demo_client: httpx.AsyncClient) -> None:
    posts = [r for r in routes("POST") if r.path != "/login"]
    assert len(posts) >= 6
    for route in posts:
        path = re.sub(r"{\w+}", "x", route.path)
        r = await demo_client.post(path, data={"value": "pass"})
        assert r.status_code in (403, 404), f"{path} -> {r.status_code}"
