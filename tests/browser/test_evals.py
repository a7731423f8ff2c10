"""Evaluations and golden sets in a real browser on the demo database: compare the demo's
two runs from the runs list, open a run, a golden set and a diff between its versions."""

from __future__ import annotations

import re
from typing import Any

import httpx

from browser.conftest import shot


def demo_runs(server: str) -> tuple[str, str]:
    """(baseline, candidate): the demo's older and newer run of its golden set."""
    items = httpx.get(server + "/api/v1/runs", timeout=10).json()["items"]
    assert len(items) >= 2, items
    newest, older = items[0], items[1]
    assert newest["golden"] == older["golden"]
    return older["run_id"], newest["run_id"]


def test_compare_two_runs_from_the_runs_list(page: Any, server: str) -> None:
    baseline, candidate = demo_runs(server)
    api = httpx.get(
        server + "/api/v1/compare",
        params={"baseline": baseline, "candidate": candidate},
        timeout=30,
    ).json()
    regressed = [k for k, c in api["scorers"].items() if c["verdict"] == "regression"]
    assert regressed, "the demo's candidate should regress on some scorer"
    flipped = sorted({cid for c in api["scorers"].values() for cid in c["flipped_to_fail"]})

    page.goto("/evals")
    page.wait_for_selector("#runs")
    shot(page, "evals-list")
    page.check(f'input[name="a"][value="{baseline}"]')
    page.check(f'input[name="b"][value="{candidate}"]')
    assert page.is_enabled("#compare-button")
    page.click("#compare-button")
    page.wait_for_url(re.compile(r"/evals/compare\?"))
    page.wait_for_selector("#chart-diff .main-svg")
    for key in regressed:
        card = page.locator(f"#verdict-{key}")
        assert "regression" in card.inner_text()
        assert "regression" in page.locator(f"#cmp-{key}").inner_text()
    shown = page.locator("#flips tr.flip").evaluate_all("rows => rows.map(r => r.dataset.case)")
    assert sorted(set(shown)) == flipped and flipped
    first = page.locator("#flips tr.flip").first
    assert first.locator("td").count() == 5  # case, input, expected, output in A, in B
    shot(page, "eval-compare")

    # The picker refuses one run on both sides before anything is sent.
    page.goto("/evals")
    page.check(f'input[name="a"][value="{candidate}"]')
    page.check(f'input[name="b"][value="{candidate}"]')
    assert not page.is_enabled("#compare-button")
    assert "same run" in page.inner_text("#compare-hint")


def test_run_page(page: Any, server: str) -> None:
    _, candidate = demo_runs(server)
    summary = httpx.get(server + f"/api/v1/runs/{candidate}/summary", timeout=30).json()
    page.goto(f"/evals/{candidate}")
    page.wait_for_selector("#chart-means .main-svg")
    for key in summary["scorers"]:
        assert page.locator(f"#scorer-{key}").count() == 1
    assert page.locator("#case-table tbody tr").count() > 0
    page.click("#expand-all")
    assert page.locator("#case-table.expanded").count() == 1
    shot(page, "eval-run")


def test_golden_set_and_its_diff(page: Any, server: str) -> None:
    page.goto("/goldens")
    page.wait_for_selector("#goldens")
    shot(page, "goldens-list")
    name = httpx.get(server + "/api/v1/goldens", timeout=10).json()["items"][0]["name"]
    page.click(f'#goldens a[href="/goldens/{name}"]')
    page.wait_for_selector("#cases")
    promoted = page.locator('#cases a[href^="/traces/"]')
    assert promoted.count() >= 1, "the demo promotes a production trace into the set"
    shot(page, "golden-set")
    page.click("#diff-form button")
    page.wait_for_url(re.compile(rf"/goldens/{name}/diff\?old="))
    page.wait_for_selector(".diff-summary")
    assert "added" in page.inner_text(".diff-summary").lower()
    shot(page, "golden-diff")
