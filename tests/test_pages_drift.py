"""Drift pages in-process: a monitor run on days 1-4 of five days of traffic whose outputs
are twice as long on day 3 (ok, ok, drift, drift: day 4 differs from a reference that
holds day 3), shown with the numbers the monitors API returns, plus 400/404 cases."""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta
from typing import Any

import httpx
import pytest

from assay.monitors.definition import new_monitor
from assay.monitors.runner import run_monitor
from assay.monitors.values import MonitorCheck
from assay.server.pages import fmt_num
from assay.store.duckdb import DuckDBStore
from monitors.monitor_support import DAYS, LONG_DAY, end_of, fill_days

NAME = "lengths"


def figures(page: str) -> dict[str, dict[str, Any]]:
    """Every chart of the page by element id."""
    found = re.findall(r'<div class="chart" id="([^"]+)"[^>]*data-figure="([^"]*)"', page)
    return {i: json.loads(html.unescape(f)) for i, f in found}


@pytest.fixture
def monitored(store: DuckDBStore) -> DuckDBStore:
    """A daily monitor of output length run at the end of each of the five days."""
    fill_days(store)
    check = MonitorCheck(window="1d", reference="3d..1d", features=("output_length",))
    monitor = new_monitor(
        store, "default", NAME, check, "1d", ["http://127.0.0.1:9/hook"], now=end_of(0)
    )
    assert store.create_monitor(monitor)
    for day in range(1, len(DAYS)):
        when = end_of(day)
        claimed = store.claim_monitor("t", when, when + timedelta(minutes=5), "default", NAME)
        assert claimed is not None
        run_monitor(store, claimed, "t", now=when, next_run_at=when + timedelta(days=1))
    return store


async def test_list_shows_each_monitor_with_state_and_latest_value(
    client: httpx.AsyncClient, monitored: DuckDBStore
) -> None:
    api = (await client.get("/api/v1/monitors")).json()["items"]
    resp = await client.get("/drift")
    assert resp.status_code == 200, resp.text
    row = resp.text.split('id="monitors"')[1].split("</table>")[0]
    assert f'href="/drift/monitors/{NAME}"' in row and "output_length" in row
    assert f'badge {api[0]["state"]}"' in row
    # One cell per run in the status strip, the drift day among them.
    assert row.count('class="cell drift"') == 2 and row.count('class="cell ok"') == 2
    latest = (await client.get(f"/api/v1/monitors/{NAME}/results/{api[0]['last_result_id']}"))
    tests = latest.json()["report"]["features"][0]["results"]
    ks = next(t for t in tests if t["test"] == "ks")
    wasserstein = next(t for t in tests if t["test"] == "wasserstein")
    # The headline is the test nearest its limit: either ks's adjusted p or the effect.
    assert (
        f"p_adj {ks['p_adjusted']:.3g}" in row
        or f"{wasserstein['effect']:.3g} &lt; {wasserstein['details']['threshold']:.3g}" in row
    )


async def test_monitor_page_charts_the_apis_results_with_thresholds_and_episodes(
    client: httpx.AsyncClient, monitored: DuckDBStore
) -> None:
    items = (await client.get(f"/api/v1/monitors/{NAME}/results")).json()["items"]
    oldest_first = list(reversed(items))
    resp = await client.get(f"/drift/monitors/{NAME}")
    assert resp.status_code == 200, resp.text
    charts = figures(resp.text)
    by_title = {f["layout"]["title"]["text"]: f for f in charts.values()}
    ks = by_title["output_length · ks: adjusted p-value"]
    assert ks["data"][0]["y"] == [r["features"][0]["tests"][0]["p_adjusted"] for r in oldest_first]
    assert ks["data"][0]["x"] == [r["ran_at"] for r in oldest_first]
    assert ks["layout"]["yaxis"]["type"] == "log"
    alpha_line = [s for s in ks["layout"]["shapes"] if s.get("xref") == "paper"]
    assert [s["y0"] for s in alpha_line] == [0.05]
    w = by_title["output_length · wasserstein: Wasserstein / ref IQR"]
    assert w["data"][0]["y"] == [r["features"][0]["tests"][1]["effect"] for r in oldest_first]
    assert [s["y0"] for s in w["layout"]["shapes"] if s.get("xref") == "paper"] == [0.2]
    # The episode is shaded from the run that found drift to the last run (still drifting).
    assert [r["state"] for r in oldest_first] == ["ok", "ok", "drift", "drift"]
    bands = [s for s in ks["layout"]["shapes"] if s["type"] == "rect"]
    assert [(b["x0"], b["x1"]) for b in bands] == [
        (oldest_first[2]["ran_at"], oldest_first[3]["ran_at"])
    ]
    assert oldest_first[2]["ran_at"].startswith(DAYS[LONG_DAY].date().isoformat())
    episodes = resp.text.split('id="episodes"')[1].split("</table>")[0]
    assert "ongoing" in episodes
    # Alert history: the first run (no alert) and ok -> drift with its pending webhook.
    alerts = resp.text.split('id="alerts"')[1].split("</table>")[0]
    assert alerts.count("pending") == 1 and "not sent (first run)" in alerts
    assert "output_length" in alerts


async def test_the_report_table_and_effects_are_the_stored_reports(
    client: httpx.AsyncClient, monitored: DuckDBStore
) -> None:
    items = (await client.get(f"/api/v1/monitors/{NAME}/results")).json()["items"]
    drift = [r for r in items if r["state"] == "drift"][-1]  # the older of the two
    report = (await client.get(f"/api/v1/monitors/{NAME}/results/{drift['result_id']}")).json()[
        "report"
    ]
    resp = await client.get(f"/drift/monitors/{NAME}", params={"result": drift["result_id"]})
    assert resp.status_code == 200, resp.text
    table = resp.text.split('id="tests"')[1].split("</table>")[0]
    results = report["features"][0]["results"]
    for r in results:
        assert fmt_num(r["effect"]) in table and fmt_num(r["statistic"]) in table
    assert table.count('class="drifted"') == sum(bool(r["drifted"]) for r in results)
    effects = figures(resp.text)["chart-effects"]["data"][0]
    assert effects["x"] == [r["effect"] for r in results if r["drifted"] is not None]
    # Numeric summaries of both windows, as the report recorded them.
    cur = report["features"][0]["summary"]["current"]
    assert fmt_num(cur["mean"]) in resp.text
    # The picker marks the shown run; the latest is a link away.
    assert f'value="{drift["result_id"]}" selected' in resp.text
    assert "latest run →" in resp.text


async def test_unknown_monitor_result_and_bad_runs(
    client: httpx.AsyncClient, monitored: DuckDBStore
) -> None:
    missing = await client.get("/drift/monitors/nope")
    assert missing.status_code == 404 and "no monitor &#39;nope&#39;" in missing.text
    no_result = await client.get(f"/drift/monitors/{NAME}", params={"result": "abc"})
    assert no_result.status_code == 404 and "has no result &#39;abc&#39;" in no_result.text
    bad = await client.get(f"/drift/monitors/{NAME}", params={"runs": "7"})
    assert bad.status_code == 400 and "runs=7 is not one of 30, 100, 500" in bad.text
    not_int = await client.get(f"/drift/monitors/{NAME}", params={"runs": "x"})
    assert 400 <= not_int.status_code < 500


async def test_a_monitor_that_never_ran_and_an_empty_project(
    client: httpx.AsyncClient, store: DuckDBStore
) -> None:
    empty = await client.get("/drift")
    assert empty.status_code == 200 and "No monitors in this project yet" in empty.text
    check = MonitorCheck(window="1d", reference="8d..1d")
    assert store.create_monitor(new_monitor(store, "default", "fresh", check, "1h"))
    listing = await client.get("/drift")
    assert "no runs yet" in listing.text and "badge not-run" in listing.text
    page = await client.get("/drift/monitors/fresh")
    assert page.status_code == 200 and "has not run yet" in page.text


def test_equal_example_texts_are_grouped_highest_score_first() -> None:
    from assay.server.pages.drift import example_groups

    feature = {
        "examples": [
            {"trace_id": "a", "span_id": "1", "score": 0.2, "text": "same"},
            {"trace_id": "b", "span_id": "2", "score": 0.5, "text": "other"},
            {"trace_id": "c", "span_id": "3", "score": 0.3, "text": "same"},
        ]
    }
    groups = example_groups(feature)
    assert [(g["text"], g["score"], g["traces"]) for g in groups] == [
        ("other", 0.5, ["b"]),
        ("same", 0.3, ["a", "c"]),
    ]
    assert example_groups({"examples": []}) == []
