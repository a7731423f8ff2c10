"""Dashboard sign-in, sessions, CSRF and the overview page, in-process."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from assay.keys import create_key
from assay.server import create_app
from assay.server.pages.overview import movers
from assay.settings import Settings
from assay.store.duckdb import DuckDBStore
from online_support import span

ADMIN = "an-admin-key-that-is-long-enough"


def csrf_of(html: str) -> str:
    found = re.search(r'data-csrf="([^"]+)"', html)
    assert found, "page carries no CSRF token"
    return found.group(1)


@pytest.fixture
async def remote_app(db_path: str, store: DuckDBStore) -> AsyncIterator[FastAPI]:
    """The app as if bound to a public address: every page needs a sign-in."""
    settings = Settings(db=db_path, decode_workers=0, host="0.0.0.0", admin_key=ADMIN,
                        monitors=False, online=False, session_secret="s" * 32)  # fmt: skip
    application = create_app(settings, store=store)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def remote(remote_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=remote_app), base_url="http://203.0.113.5:7800"
    ) as c:
        yield c


async def test_loopback_pages_open_without_sign_in_and_set_an_httponly_session(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/")
    assert r.status_code == 200
    cookie = r.headers["set-cookie"]
    assert "assay_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert "Sign out" not in r.text


async def test_non_loopback_redirects_to_login_and_a_key_signs_in(
    remote: httpx.AsyncClient, store: DuckDBStore
) -> None:
    r = await remote.get("/?range=24h")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2F"
    form = await remote.get("/login")
    assert form.status_code == 200 and 'type="password"' in form.text
    bad = await remote.post("/login", data={"key": "assay_000000000000_nope-nope-nope-nope"})
    assert bad.status_code == 401 and "unknown or revoked" in bad.text
    store.create_project("team-a")
    key, secret = create_key(store, "team-a")
    ok = await remote.post("/login", data={"key": secret, "next": "/traces"})
    assert ok.status_code == 303 and ok.headers["location"] == "/traces"
    page = await remote.get("/")
    assert page.status_code == 200
    assert "<strong>team-a</strong>" in page.text and "Sign out" in page.text
    # Revoking the key ends the session at the next page load.
    store.revoke_key(key.key_id)
    r = await remote.get("/")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


async def test_login_never_redirects_off_site(remote: httpx.AsyncClient) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        r = await remote.post("/login", data={"key": ADMIN, "next": target})
        assert r.status_code == 303 and r.headers["location"] == "/"
    r = await remote.post(
        "/login", data={"key": ADMIN}, headers={"origin": "https://evil.example"}
    )
    assert r.status_code == 403


async def test_forged_or_tampered_cookie_is_not_a_session(remote: httpx.AsyncClient) -> None:
    await remote.post("/login", data={"key": ADMIN})
    value = remote.cookies["assay_session"]
    payload, _, sig = value.partition(".")
    remote.cookies.set("assay_session", payload + "." + sig[::-1], domain="203.0.113.5.local")
    remote.cookies.clear()
    remote.cookies.set("assay_session", payload + "x." + sig)
    r = await remote.get("/")
    assert r.status_code == 303


async def test_state_changes_need_the_csrf_token(remote: httpx.AsyncClient) -> None:
    await remote.post("/login", data={"key": ADMIN})
    page = await remote.get("/")
    token = csrf_of(page.text)
    r = await remote.post("/logout", data={})
    assert r.status_code == 403 and "CSRF" in r.text
    r = await remote.post("/logout", data={"csrf_token": "wrong"})
    assert r.status_code == 403
    r = await remote.post("/logout", data={"csrf_token": token})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert (await remote.get("/")).status_code == 303


async def test_admin_switches_project_but_a_project_key_cannot(
    remote: httpx.AsyncClient, store: DuckDBStore
) -> None:
    store.create_project("team-b")
    await remote.post("/login", data={"key": ADMIN})
    token = csrf_of((await remote.get("/")).text)
    r = await remote.post("/project", data={"csrf_token": token, "project": "team-b"})
    assert r.status_code == 303
    assert "<option selected>team-b</option>" in (await remote.get("/")).text
    r = await remote.post("/project", data={"csrf_token": token, "project": "missing"})
    assert r.status_code == 400 and "no project named" in r.text
    _, secret = create_key(store, "team-b")
    remote.cookies.clear()
    await remote.post("/login", data={"key": secret})
    token = csrf_of((await remote.get("/")).text)
    r = await remote.post("/project", data={"csrf_token": token, "project": "default"})
    assert r.status_code == 403


async def test_plotly_bundle_is_served_from_the_wheel_compressed_and_cacheable(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/static/vendor/plotly.min.js", headers={"accept-encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "gzip"
    assert "immutable" in r.headers["cache-control"]
    assert b"plotly" in r.content[:2000].lower()


async def test_overview_shows_totals_movers_and_unpriced_models(
    client: httpx.AsyncClient, store: DuckDBStore
) -> None:
    now = datetime.now(UTC)
    rows = []
    for i in range(60):
        s = span(i, salt="ov")
        start = now - timedelta(hours=1 + i % 40)
        rows.append(replace(s, start_time=start, end_time=start + timedelta(seconds=1),
                            input_tokens=100, output_tokens=20,
                            model="gpt-4o-mini" if i % 3 else "house-model-x",
                            status="error" if i % 20 == 0 else "ok"))  # fmt: skip
    store.insert_spans(rows)
    r = await client.get("/?range=7d&group=model")
    assert r.status_code == 200
    assert 'id="movers"' in r.text and "house-model-x" in r.text
    assert re.search(r'<div class="label">Calls</div><div class="value">60</div>', r.text)
    assert 'class="chart"' in r.text
    for bad in ("range=1y", "group=colour", "scope=some"):
        r = await client.get("/?" + bad)
        assert r.status_code == 400 and "is not one of" in r.text


def test_movers_rank_a_big_group_that_changed_above_a_tiny_one_that_doubled() -> None:
    from assay.model import Aggregate

    def agg(group: str, calls: int, cost: float) -> Aggregate:
        return Aggregate(None, group, calls, 0, 0.0, 100.0, 200.0, 300.0, 0, 0, cost, 0)

    before = [agg("big", 1000, 10.0), agg("tiny", 2, 0.02), agg("steady", 500, 5.0)]
    after = [agg("big", 1400, 14.0), agg("tiny", 4, 0.04), agg("steady", 500, 5.0)]
    ranked = [m.group for m in movers(after, before)]
    assert ranked[0] == "big"
    assert "steady" not in ranked


async def test_keys_required_locks_a_loopback_server_for_api_and_pages(
    db_path: str, store: DuckDBStore
) -> None:
    settings = Settings(db=db_path, decode_workers=0, keys_required=True, monitors=False,
                        online=False)  # fmt: skip
    assert settings.loopback and settings.require_keys
    application = create_app(settings, store=store)
    async with application.router.lifespan_context(application), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://127.0.0.1:7800"
    ) as c:
        assert (await c.get("/api/v1/traces")).status_code == 401
        assert (await c.get("/")).status_code == 303
        _, secret = create_key(store, "default")
        r = await c.get("/api/v1/traces", headers={"authorization": f"Bearer {secret}"})
        assert r.status_code == 200
