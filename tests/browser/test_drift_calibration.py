"""Drift and calibration pages in a real browser on the demo database: charts drawn, no
console errors, a click on a chart point opens that run's report; screenshots of each."""

from __future__ import annotations

from typing import Any

from browser.conftest import shot


def test_drift_list_and_a_monitor_in_a_drift_episode(page: Any) -> None:
    page.goto("/drift")
    page.wait_for_selector("#monitors")
    assert page.locator("#monitors tbody tr").count() >= 4
    assert page.locator("#monitors .cell.drift").count() > 0  # the demo's drift episode
    shot(page, "drift-list")

    page.locator('#monitors a[href="/drift/monitors/input-drift"]').click()
    page.wait_for_selector("#chart-0 .main-svg")
    assert page.locator("#series .chart").count() >= 4
    assert page.locator("#alerts tbody tr").count() >= 2
    # The latest drifted run is a link away; a run whose input meaning drifted (picked in
    # the run picker) lists the example inputs most unlike the reference.
    page.locator("#last-drift").click()
    page.wait_for_selector("#chart-effects .main-svg")
    assert page.locator("#tests tr.drifted").count() >= 1
    run = page.locator("#result-picker option", has_text="input_embedding").first
    page.select_option("#result-picker select", run.get_attribute("value"))
    page.wait_for_selector("table.examples")
    page.wait_for_selector("#chart-effects .main-svg")
    assert page.locator("table.examples tbody tr").count() >= 1
    shot(page, "drift-monitor")


def test_clicking_a_chart_point_opens_that_runs_report(page: Any) -> None:
    page.goto("/drift/monitors/latency")
    page.wait_for_selector("#chart-0 .main-svg")
    before = page.locator("#result-picker select").input_value()
    page.wait_for_function(
        "document.querySelectorAll('#series .chart[data-bound]').length > 0"
    )
    point = page.locator("#chart-0 .scatterlayer .point").first
    point.click(force=True)
    page.wait_for_url("**result=*")
    assert page.locator("#result-picker select").input_value() != before


def test_calibration_list_and_the_demo_judge(page: Any) -> None:
    page.goto("/calibration")
    page.wait_for_selector("#calibrated")
    assert "helpfulness" in page.locator("#calibrated").inner_text()
    shot(page, "calibration-list")

    page.locator('#calibrated a[href="/calibration/helpfulness"]').click()
    for chart in ("chart-confusion", "chart-reliability", "chart-quality"):
        page.wait_for_selector(f"#{chart} .main-svg")
    assert "PPI++" in page.locator("#quality").inner_text()
    assert page.locator("#agreement .stat").count() >= 6
    shot(page, "calibration-judge")
