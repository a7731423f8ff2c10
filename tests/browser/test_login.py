"""Sign-in in a real browser, on a server that requires keys (ASSAY_KEYS_REQUIRED)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browser.conftest import serving, shot

ADMIN = "browser-admin-key-0123456789"


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server on a fresh database that treats every request as remote."""
    where: Path = tmp_path_factory.mktemp("locked")
    with serving(
        where / "locked.duckdb",
        where / "serve.log",
        ASSAY_KEYS_REQUIRED="true",
        ASSAY_ADMIN_KEY=ADMIN,
        ASSAY_SESSION_SECRET="a-session-secret-for-tests",
    ) as url:
        yield url


def test_pages_ask_for_a_key_and_a_session_cookie_lets_the_user_in(
    browser: Any, locked: str
) -> None:
    context = browser.new_context(base_url=locked)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto("/traces")
        assert page.url.endswith("/login?next=%2Ftraces")
        shot(page, "login")
        page.fill("input[name=key]", "assay_000000000000_not-a-real-key-at-all")
        page.click("button[type=submit]")
        assert "unknown or revoked" in page.inner_text("p.error")
        page.fill("input[name=key]", ADMIN)
        page.click("button[type=submit]")
        page.wait_for_url("**/traces")
        cookie = next(c for c in context.cookies() if c["name"] == "assay_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        assert ADMIN not in cookie["value"]
        page.click("header.top a[href='/']")
        page.wait_for_selector("h1:has-text('Overview')")
        page.click("text=Sign out")
        page.wait_for_url("**/login")
        page.goto("/")
        assert "/login" in page.url
        assert not errors
    finally:
        context.close()
