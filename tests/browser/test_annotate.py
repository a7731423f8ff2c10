"""Annotate in a real browser: label three items of the demo queue with the keyboard only,
then check through the server's API that the three labels are stored and progress moved."""

from __future__ import annotations

from typing import Any

import httpx

from browser.conftest import shot

QUEUE = "chat-helpfulness"
WHO = "keyboard-tester"


def queue_state(server: str) -> dict[str, Any]:
    r = httpx.get(f"{server}/api/v1/queues/{QUEUE}", timeout=10)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_label_three_items_with_the_keyboard(page: Any, server: str) -> None:
    before = queue_state(server)["progress"]
    assert before["remaining"] >= 3 and before["labelled"] > 0, "the demo queue has open items"

    page.goto("/annotate")
    row = page.locator(f'#queues tr[data-href="/annotate/{QUEUE}"]')
    assert row.count() == 1
    assert f"{before['labelled'] + before['skipped']} / {before['total']}" in row.inner_text()
    shot(page, "annotate-list")

    page.goto(f"/annotate/{QUEUE}")
    assert page.locator("#labellers tbody tr").count() >= 2
    shot(page, "annotate-queue")
    # The name field has the focus on a first visit; Enter starts.
    page.keyboard.type(WHO)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_selector("#label-form")
    shot(page, "annotate-item")

    page.keyboard.press("?")
    assert page.locator("#help").is_visible()
    page.keyboard.press("Escape")
    assert not page.locator("#help").is_visible()

    labelled = []
    for keys, comment in ((["p"], None), (["f", "c"], "Misses the refund window."), (["1"], None)):
        item = int(page.url.split("/items/")[1].split("?")[0])
        labelled.append(item)
        # Enter before choosing a label does not submit; it asks for one.
        if not labelled[:-1]:
            page.keyboard.press("Enter")
            assert "Choose a label first" in page.locator("#hint").inner_text()
        for key in keys:
            page.keyboard.press(key)
        if comment:
            page.keyboard.type(comment)
        assert page.locator("label.option.chosen").count() == 1
        with page.expect_navigation():
            page.keyboard.press("Enter")
        page.wait_for_selector("#label-form")
        assert f"you: {len(labelled)}" in page.locator("#mine").inner_text()

    # u goes back to the last item, read-only with the stored label.
    with page.expect_navigation():
        page.keyboard.press("u")
    assert page.url.endswith(f"/items/{labelled[-1]}")
    assert f"Item {labelled[-1]} is labelled" in page.locator(".label-panel").inner_text()

    after = queue_state(server)["progress"]
    assert after["labelled"] == before["labelled"] + 3
    assert after["by_labeller"][WHO]["labelled"] == 3
    feedback = httpx.get(
        f"{server}/api/v1/feedback",
        params={"name": "human-helpfulness", "source": "reviewer", "limit": 10_000},
        timeout=10,
    ).json()["items"]
    mine = {f["metadata"]["item"]: f for f in feedback if f["author"] == WHO}
    assert sorted(mine) == sorted(labelled)
    values = [(mine[i]["kind"], mine[i]["value"], mine[i]["comment"]) for i in labelled]
    assert values == [
        ("boolean", True, None),
        ("boolean", False, "Misses the refund window."),
        ("boolean", True, None),
    ]
