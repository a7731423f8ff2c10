"""Traces in a real browser on the demo database: filtering the list, opening a trace
(waterfall and conversation), and promoting a trace to a golden set end to end."""

from __future__ import annotations

from typing import Any

from browser.conftest import shot


def test_filtering_traces_updates_the_table_and_every_row_matches(page: Any) -> None:
    page.goto("/traces")
    page.wait_for_selector("#traces tbody tr")
    page.fill("input[name=model]", "gpt-4.1-mini")
    page.fill("input[name=q]", "sso")
    with page.expect_navigation():
        page.select_option("select[name=status]", "ok")  # a select submits the form
    assert "model=gpt-4.1-mini" in page.url and "q=sso" in page.url and "status=ok" in page.url
    rows = page.locator("#traces tbody tr")
    ids = [rows.nth(i).get_attribute("data-trace") for i in range(rows.count())]
    assert ids, "the demo has SSO questions answered by gpt-4.1-mini"
    for i in range(rows.count()):
        row = rows.nth(i)
        assert "gpt-4.1-mini" in (row.get_attribute("data-models") or "").split()
        assert row.get_attribute("data-status") == "ok"
    # The same filters through the query API select the same traces.
    api = page.request.get(
        "/api/v1/traces", params={"model": "gpt-4.1-mini", "q": "sso", "status": "ok",
                                  "start": "7d", "limit": 50},
    )  # fmt: skip
    assert [t["trace_id"] for t in api.json()["items"]] == ids
    assert page.locator(".chip", has_text="model = gpt-4.1-mini").count() == 1
    shot(page, "traces-list")


def test_opening_a_trace_shows_the_waterfall_and_the_conversation(page: Any) -> None:
    page.goto("/traces?kind=tool&range=all")
    first = page.locator("#traces tbody tr").first
    trace_id = first.get_attribute("data-trace")
    with page.expect_navigation():
        first.locator("td").nth(4).click()  # anywhere in the row opens the trace
    assert page.url.endswith(f"/traces/{trace_id}")
    rows = page.locator("#waterfall .wf-row")
    assert rows.count() >= 4
    assert page.locator("#conversation .msg.role-user").first.is_visible()
    assert page.locator("#conversation .tool-call").first.is_visible()
    assert page.locator(".span-detail:visible").count() == 1
    # Clicking a span shows its details in place, and j moves to the next span.
    tool = page.locator("#waterfall .wf-row.kind-tool").first
    span_id = tool.get_attribute("data-span")
    tool.click()
    detail = page.locator(f"#span-{span_id}")
    assert detail.is_visible() and page.locator(".span-detail:visible").count() == 1
    assert f"span={span_id}" in page.url
    assert detail.locator("table.attrs").is_visible()
    page.keyboard.press("k")
    assert not detail.is_visible()
    page.locator("#waterfall .wf-row").nth(1).click()
    page.locator("#act-promote summary").click()
    shot(page, "trace-detail")


def test_promoting_a_trace_to_a_golden_set(page: Any) -> None:
    page.goto("/traces?route=/answer&range=all")
    first = page.locator("#traces tbody tr").first
    trace_id = first.get_attribute("data-trace")
    page.goto(f"/traces/{trace_id}")
    page.locator("#act-promote summary").click()
    page.fill("#promote-form input[name=golden]", "browser-promoted")
    page.click("#copy-output")
    output = page.input_value("#expected")
    assert output
    with page.expect_navigation():
        page.click("#promote-form button[type=submit]")
    flash = page.locator(".banner.flash")
    assert "Promoted to golden set browser-promoted: new version" in flash.inner_text()
    link = page.locator("#promoted a")
    assert link.get_attribute("href") == "/goldens/browser-promoted"
    golden = page.request.get("/api/v1/goldens/browser-promoted").json()
    [case] = golden["cases"]
    assert case["expected"] == output
    assert case["metadata"]["provenance"]["trace_id"] == trace_id
    assert golden["short"] in flash.inner_text()


def test_sending_traces_to_a_hand_picked_queue(page: Any) -> None:
    page.goto("/traces?route=/answer&range=all")
    rows = page.locator("#traces tbody tr")
    first, second = (rows.nth(i).get_attribute("data-trace") for i in range(2))
    page.goto(f"/traces/{first}")
    page.locator("#act-queue summary").click()
    page.fill("#queue-form input[name=queue]", "browser-picked")
    page.select_option("#queue-form select[name=label_kind]", "scale")
    page.fill("#queue-form input[name=label_values]", "1-5")
    with page.expect_navigation():
        page.click("#queue-form button[type=submit]")
    flash = page.locator(".banner.flash")
    assert "Queue 'browser-picked' created with this trace" in flash.inner_text()
    # The next trace goes into the same queue, chosen from the list.
    page.goto(f"/traces/{second}")
    page.locator("#act-queue summary").click()
    page.select_option("#queue-add-form select[name=existing]", "browser-picked")
    shot(page, "trace-queue")
    with page.expect_navigation():
        page.click("#queue-add-form button[type=submit]")
    assert "Added this trace to queue 'browser-picked' (now 2 items)" in (
        page.locator(".banner.flash").inner_text()
    )
    items = page.request.get("/api/v1/queues/browser-picked/items").json()["items"]
    assert [i["trace_id"] for i in items] == [first, second]
