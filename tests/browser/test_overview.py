"""Overview page and a sweep of every page in the navigation, in a real browser."""

from __future__ import annotations

from typing import Any

import pytest

from assay.server.pages import NAV
from browser.conftest import shot


def test_overview_draws_every_chart_and_splits_by_another_dimension(page: Any) -> None:
    page.goto("/")
    for chart in ("calls", "errors", "latency", "tokens", "cost"):
        page.wait_for_selector(f"#chart-{chart} .main-svg")
    assert page.locator(".stat").count() >= 6
    assert page.locator("text=Demo data").count() == 1
    assert page.locator("#unpriced tbody tr").count() >= 1
    shot(page, "overview")
    page.select_option("select[name=range]", "30d")
    page.select_option("select[name=group]", "service")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**/?range=30d&group=service*")
    page.wait_for_selector("#chart-calls .main-svg")
    assert page.locator("#by-group th").first.inner_text().lower() == "service"
    assert page.locator("#by-group tbody tr").count() >= 2


@pytest.mark.parametrize("path", [p for p, _ in NAV])
def test_every_page_in_the_navigation_loads_offline_without_console_errors(
    page: Any, server: str, path: str
) -> None:
    elsewhere: list[str] = []

    def record(request: Any) -> None:
        if not request.url.startswith((server, "data:")):
            elsewhere.append(request.url)

    page.on("request", record)
    response = page.goto(path)
    assert response is not None and response.status == 200
    page.wait_for_load_state("networkidle")
    assert page.locator("header.top nav a.active").get_attribute("href") == path
    assert elsewhere == [], "a page needs the network"
