"""Calibration pages in-process: the numbers are the calibration API's for the same data,
too few labels explain themselves, and bad input gets a 4xx naming the fix."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import httpx
import pytest

from assay.calibration import CalibrationError, judge_report, quality_estimate
from assay.calibration import check_sampling as sampling_of
from assay.query import SpanFilter
from assay.server.pages.calibration import QUALITY_MIN_PAIRS, REPORT_MIN_PAIRS
from assay.store.duckdb import DuckDBStore
from calibration_support import (
    P,
    add_queue,
    biased_window,
    bulk_add,
    judge,
    label,
    overconfident,
    table_2x2,
)

LABELS = {"labels": "human-help"}

#: Every test here runs on each store backend (tests/conftest.py).
pytestmark = pytest.mark.all_backends


def figure(page: str, chart_id: str) -> dict[str, Any]:
    """The plotly figure a chart element of the page carries."""
    found = re.search(rf'id="{chart_id}"[^>]*data-figure="([^"]*)"', page)
    assert found, f"no chart {chart_id} on the page"
    out: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return out


async def test_agreement_and_confusion_are_the_apis(
    client: httpx.AsyncClient, store: DuckDBStore
) -> None:
    table_2x2(store)
    api = (await client.get("/api/v1/calibration/help/report", params=LABELS)).json()
    resp = await client.get("/calibration/help", params=LABELS)
    assert resp.status_code == 200, resp.text
    page = resp.text
    assert f"{100 * api['accuracy']:.1f}%" in page  # 70.0%
    assert f"{100 * api['accuracy_low']:.1f}%" in page
    assert f"{api['cohen_kappa']:.3g}" in page and f"{api['scott_pi']:.3g}" in page
    assert f"{api['mean_offset']:+.3f}" in page
    z = figure(page, "chart-confusion")["data"][0]["z"]
    assert z == api["confusion"]["counts"] == [[20, 5], [10, 15]]
    # Pass/fail labels: no probabilities, so no reliability diagram; and the labels did
    # not come from a random queue, so the quality estimate is refused with the way out.
    assert 'id="chart-reliability"' not in page
    assert 'id="quality-refused"' in page and "assume_random=1" in page
    assert "not a random sample of the window" in page


async def test_reliability_matches_the_api(client: httpx.AsyncClient, store: DuckDBStore) -> None:
    overconfident(store, 400)
    api = (await client.get("/api/v1/calibration/help/report", params=LABELS)).json()
    page = (await client.get("/calibration/help", params=LABELS)).text
    fig = figure(page, "chart-reliability")
    judge_trace = fig["data"][1]
    bins = api["reliability"]["bins"]
    assert judge_trace["x"] == [b["mean_confidence"] for b in bins]
    assert judge_trace["y"] == [b["accuracy"] for b in bins]
    assert f"ECE {api['ece']:.3f}" in page


async def test_quality_estimate_is_the_apis_ppi_beside_human_and_judge_only(
    client: httpx.AsyncClient, store: DuckDBStore
) -> None:
    truth = biased_window(store, 600)
    add_queue(store, "rand", "random", [(i, 0.25) for i in range(0, 150)], truth)
    api = (await client.get("/api/v1/quality/help/estimate", params=LABELS)).json()
    assert api["sampling"]["design"] == "random"
    page = (await client.get("/calibration/help", params=LABELS)).text
    points = figure(page, "chart-quality")["data"][0]
    assert points["x"] == [
        api["ppi"]["estimate"],
        api["human_only"]["estimate"],
        api["judge_only"]["estimate"],
    ]
    assert points["error_x"]["arrayminus"][0] == pytest.approx(
        api["ppi"]["estimate"] - api["ppi"]["low"]
    )
    assert points["error_x"]["array"][0] == pytest.approx(
        api["ppi"]["high"] - api["ppi"]["estimate"]
    )
    assert f"{100 * api['ppi']['low']:.1f}% – {100 * api['ppi']['high']:.1f}%" in page


async def test_assume_random_gives_the_apis_assumed_estimate_and_says_so(
    client: httpx.AsyncClient, store: DuckDBStore
) -> None:
    truth = biased_window(store, 600)
    bulk_add(store, [label(i, bool(truth[i])) for i in range(0, 60)])
    api = await client.get(
        "/api/v1/quality/help/estimate", params={**LABELS, "assume_random": "true"}
    )
    page = (await client.get("/calibration/help", params={**LABELS, "assume_random": "1"})).text
    assert "ASSUMED RANDOM" in page
    assert figure(page, "chart-quality")["data"][0]["x"][0] == api.json()["ppi"]["estimate"]


async def test_a_stored_calibrator_adds_the_label_free_estimate_and_the_list_shows_it(
    client: httpx.AsyncClient, store: DuckDBStore
) -> None:
    overconfident(store, 400)
    fit = await client.post("/api/v1/calibration/help/fit", params={**LABELS, "method": "platt"})
    assert fit.status_code == 200, fit.text
    overconfident(store, 40, start=1000, labelled=False)
    bulk_add(store, [judge(5000 + i, 0.7, name="tone") for i in range(3)])
    listing = (await client.get("/calibration")).text
    calibrated = listing.split('id="calibrated"')[1].split("</table>")[0]
    assert "help" in calibrated and "human-help" in calibrated and "platt" in calibrated
    uncalibrated = listing.split('id="uncalibrated"')[1].split("</table>")[0]
    assert "tone" in uncalibrated and f"label {REPORT_MIN_PAIRS} more items" in uncalibrated
    # The judge page reads the calibrator's label name without being told.
    page = (await client.get("/calibration/help")).text
    api = (
        await client.get(
            "/api/v1/quality/help/estimate", params={**LABELS, "assume_random": "true"}
        )
    ).json()
    points = figure(page, "chart-quality") if 'id="chart-quality"' in page else None
    assert 'id="stored"' in page and "platt" in page
    # Labels here are ad hoc (no queue): the estimate needs assume_random.
    assert points is None
    page = (await client.get("/calibration/help", params={"assume_random": "1"})).text
    xs = figure(page, "chart-quality")["data"][0]["x"]
    assert xs[3] == api["label_free"]["estimate"]


async def test_too_few_labels_say_how_many_more_instead_of_failing(
    client: httpx.AsyncClient, store: DuckDBStore
) -> None:
    store.add_feedback([judge(i, 0.8) for i in range(5)] + [label(0, True)])
    resp = await client.get("/calibration/help", params=LABELS)
    assert resp.status_code == 200
    assert 'id="needs-labels"' in resp.text and "label 1 more item" in resp.text
    assert "needs at least 2 labelled pairs" in resp.text
    assert 'id="quality-needs"' in resp.text or 'id="quality-refused"' in resp.text


def test_the_pages_minimums_are_the_library_ones(store: DuckDBStore) -> None:
    """REPORT_MIN_PAIRS / QUALITY_MIN_PAIRS say 'label N more': they must match what
    judge_report and quality_estimate refuse."""
    store.add_feedback([judge(i, 0.8) for i in range(10)])
    n = max(REPORT_MIN_PAIRS, QUALITY_MIN_PAIRS)
    store.add_feedback([label(i, i % 2 == 0) for i in range(n - 1)])
    few = store.judge_scores(P, "help", "human-help", SpanFilter(project=P))
    with pytest.raises(CalibrationError, match=f"at least {REPORT_MIN_PAIRS} labelled"):
        judge_report(few)
    with pytest.raises(CalibrationError, match=f"at least {QUALITY_MIN_PAIRS} labelled"):
        quality_estimate(few, sampling_of([None] * few.n_pairs, assume_random=True))
    store.add_feedback([label(n - 1, True)])
    enough = store.judge_scores(P, "help", "human-help", SpanFilter(project=P))
    judge_report(enough)
    quality_estimate(enough, sampling_of([None] * enough.n_pairs, assume_random=True))


async def test_filters_by_route_and_window_are_passed_on(
    client: httpx.AsyncClient, store: DuckDBStore
) -> None:
    from calibration_support import span

    store.insert_spans([span(i, route="/chat" if i < 30 else "/search") for i in range(50)])
    table_2x2(store)
    api = await client.get("/api/v1/calibration/help/report", params={**LABELS, "route": "/chat"})
    page = await client.get("/calibration/help", params={**LABELS, "route": "/chat"})
    assert api.status_code == page.status_code == 200
    assert figure(page.text, "chart-confusion")["data"][0]["z"] == api.json()["confusion"]["counts"]
    assert api.json()["n_pairs"] == 30
    empty = await client.get("/calibration/help", params={**LABELS, "window": "last 1h"})
    assert empty.status_code == 200 and 'id="needs-labels"' in empty.text


@pytest.mark.parametrize(
    ("path", "params", "status", "reason"),
    [
        ("/calibration/nobody", {}, 404, "no judge &#39;nobody&#39;"),
        ("/calibration/bad name", {}, 400, "judge name"),
        ("/calibration/help", {"pass_at": "2"}, 400, "pass_at"),
        ("/calibration/help", {"pass_at": "x"}, 400, "pass_at"),
        ("/calibration/help", {"window": "yesterday-ish"}, 400, "yesterday-ish"),
        ("/calibration/help", {"labels": "no spaces"}, 400, "labels name"),
        ("/calibration/help", {"assume_random": "maybe"}, 400, "assume_random"),
    ],
)
async def test_bad_input_gets_a_4xx_with_the_reason(
    client: httpx.AsyncClient,
    store: DuckDBStore,
    path: str,
    params: dict[str, str],
    status: int,
    reason: str,
) -> None:
    table_2x2(store)
    resp = await client.get(path, params=params)
    assert resp.status_code == status, resp.text
    assert reason in resp.text


async def test_an_empty_project_explains_where_judges_come_from(
    client: httpx.AsyncClient,
) -> None:
    resp = await client.get("/calibration")
    assert resp.status_code == 200 and "No judge scores in this project yet" in resp.text
