"""Browser tests: Playwright driving Debian's chromium against `assay serve` on a demo DB.

The browser is the system's (/usr/bin/chromium, installed by .ci/run); nothing is
downloaded. Every page a test opens fails the test if the browser logs a console error
or a page error, and ``shot(page, name)`` saves a screenshot under
test-artifacts/screenshots/.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium_path() -> str | None:
    """The system chromium, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo database, built once per test session."""
    path = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    subprocess.run(
        [sys.executable, "-m", "assay", "demo", "--db", str(path), "--seed", "7"],
        check=True,
        cwd=path.parent,
        env={**os.environ, "ASSAY_DB": str(path)},
        capture_output=True,
        timeout=240,
    )
    return path


@contextlib.contextmanager
def serving(db: Path, log: Path, **env: str) -> Iterator[str]:
    """`assay serve` on ``db`` on a free loopback port, with extra ``ASSAY_*`` settings;
    yields its base URL and stops it afterwards."""
    port = _free_port()
    full_env = {
        **os.environ,
        "ASSAY_DB": str(db),
        "ASSAY_PORT": str(port),
        "ASSAY_HOST": "127.0.0.1",
        "ASSAY_MONITORS": "false",
        "ASSAY_ONLINE": "false",
        "ASSAY_DECODE_WORKERS": "0",
        "ASSAY_LOG_LEVEL": "warning",
        **env,
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "assay", "serve"],
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("assay serve did not start:\n" + log.read_text())
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def server(demo_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`assay serve` on the demo database, on a free loopback port; yields its base URL."""
    with serving(demo_db, tmp_path_factory.mktemp("serve") / "serve.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless chromium from the system, driven by Playwright.

    Per module, not per session: while Playwright's sync API is active its event loop
    counts as running in the main thread, and later tests that call asyncio.run() fail."""
    exe = chromium_path()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=CHROMIUM_FLAGS)
        try:
            yield b
        finally:
            b.close()


class ConsoleErrors(list[str]):
    """Console and page errors seen by one page."""


@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Any]:
    """A fresh browser page on the demo server that must log no console errors."""
    context = browser.new_context(base_url=server, viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    errors = ConsoleErrors()
    pg.on(
        "console",
        lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )
    pg.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    pg.console_errors = errors
    pg.set_default_timeout(15_000)
    try:
        yield pg
    finally:
        context.close()
    assert not errors, "the browser logged errors:\n" + "\n".join(errors)


def shot(page: Any, name: str) -> Path:
    """Save a full-page screenshot as test-artifacts/screenshots/NAME.png."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
