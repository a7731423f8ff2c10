"""The Annotate pages in-process: the queue list, claiming, labelling, skipping, releasing
and finishing a queue, what each writes to the store (a label exactly as the API stores
it), conflicts with other labellers, CSRF, and 4xx for bad requests."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from assay.keys import create_key
from assay.model import Span
from assay.queues import claim_next, label_item, label_spec
from assay.server import create_app
from assay.server.pages.annotate import LABELLER_COOKIE, label_options
from assay.settings import Settings
from assay.store.duckdb import DuckDBStore
from drift_support import DAY1, traffic

pytestmark = pytest.mark.all_backends

P = "default"


def csrf_of(html: str) -> str:
    found = re.search(r'data-csrf="([^"]+)"', html)
    assert found, "page carries no CSRF token"
    return found.group(1)


@pytest.fixture
def spans(store: DuckDBStore) -> list[Span]:
    out = traffic(40, DAY1, seed=5)
    store.insert_spans(out)
    return out


async def make_queue(
    client: httpx.AsyncClient, name: str = "review", size: int = 4, **label: Any
) -> dict[str, Any]:
    body = {
        "name": name,
        "strategy": "random",
        "size": size,
        "seed": 11,
        "unit": "span",
        "label": {"name": "quality", **(label or {"boolean": True})},
        "instructions": "Pass when the answer is right.",
    }
    r = await client.post("/api/v1/queues", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def token(client: httpx.AsyncClient) -> str:
    r = await client.get("/annotate")
    assert r.status_code == 200
    return csrf_of(r.text)


async def start(client: httpx.AsyncClient, queue: str = "review", who: str = "ana") -> str:
    """Claim the first item as ``who``; returns the item page's URL."""
    r = await client.post(
        f"/annotate/{queue}/next", data={"csrf_token": await token(client), "labeller": who}
    )
    assert r.status_code == 303, r.text
    return str(r.headers["location"])


async def test_list_shows_each_queue_with_progress_and_labellers(
    client: httpx.AsyncClient, store: DuckDBStore, spans: list[Span]
) -> None:
    empty = await client.get("/annotate")
    assert empty.status_code == 200 and "No annotation queues" in empty.text
    await make_queue(client)
    label_item(store, P, "review", 1, "bob", True)
    claim_next(store, P, "review", "cy")
    page = await client.get("/annotate")
    assert page.status_code == 200
    row = page.text[page.text.index('<tr data-href="/annotate/review">') :]
    row = row[: row.index("</tr>")]
    found = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in found]
    # queue, label, strategy, progress, labelled, skipped, open, claimed, labellers
    assert cells[:3] == ["review", "quality: pass / fail", "random"]
    assert cells[3] == "1 / 4" and cells[4:8] == ["1", "0", "2", "1"]
    assert "bob 1" in cells[8] and "cy 0" in cells[8] and "holds 1" in cells[8]


async def test_start_claims_an_item_and_remembers_the_labeller(
    client: httpx.AsyncClient, store: DuckDBStore, spans: list[Span]
) -> None:
    await make_queue(client)
    page = await client.get("/annotate/review")
    assert page.status_code == 200 and "Start labelling" in page.text
    assert 'name="labeller"' in page.text and "Pass when the answer is right." in page.text
    url = await start(client)
    assert url == "/annotate/review/items/1"
    assert client.cookies.get(LABELLER_COOKIE) == "ana"
    item = store.get_queue_item(P, "review", 1)
    assert item is not None and item.claimed_by == "ana" and item.lease_expires_at is not None
    view = await client.get(url)
    assert view.status_code == 200
    assert 'id="label-form"' in view.text and "You label as ana" in view.text
    assert item.output_text and item.output_text[:40] in view.text
    # Asking again renews the same claim instead of taking a second item.
    assert await start(client) == url
    assert store.queue_progress(P, "review", datetime.now(UTC)).claimed == 1


async def test_label_is_stored_exactly_as_the_api_stores_it(
    client: httpx.AsyncClient, store: DuckDBStore, spans: list[Span]
) -> None:
    # Two queues over the same spans with the same seed pick the same items.
    await make_queue(client, "by-page", scale="1-5")
    await make_queue(client, "by-api", scale="1-5")
    url = await start(client, "by-page")
    r = await client.post(
        url + "/label",
        data={"csrf_token": await token(client), "value": "4", "comment": " Close enough. "},
    )
    assert r.status_code == 303 and r.headers["location"] == "/annotate/by-page/items/2?prev=1"
    api = await client.post(
        "/api/v1/queues/by-api/items/1/label",
        json={"labeller": "ana", "value": 4, "comment": "Close enough."},
    )
    assert api.status_code == 200, api.text
    page_item = store.get_queue_item(P, "by-page", 1)
    api_item = store.get_queue_item(P, "by-api", 1)
    assert page_item is not None and api_item is not None
    assert page_item.status == api_item.status == "labelled" and page_item.done_by == "ana"
    (fp,) = store.list_feedback(P, ids=[page_item.feedback_id or ""])
    (fa,) = store.list_feedback(P, ids=[api_item.feedback_id or ""])
    same = ("trace_id", "span_id", "name", "kind", "number", "category", "comment", "source",
            "author")  # fmt: skip
    assert {k: getattr(fp, k) for k in same} == {k: getattr(fa, k) for k in same}
    assert (fp.kind, fp.number, fp.source, fp.author) == ("number", 4.0, "reviewer", "ana")
    meta_p = {k: v for k, v in fp.metadata.items() if k not in ("queue", "queue_id")}
    meta_a = {k: v for k, v in fa.metadata.items() if k not in ("queue", "queue_id")}
    assert meta_p == meta_a and fp.metadata["queue"] == "by-page"
    # The next item is claimed for ana, and the page shows her count.
    nxt = store.get_queue_item(P, "by-page", 2)
    assert nxt is not None and nxt.claimed_by == "ana"
    view = await client.get("/annotate/by-page/items/2?prev=1")
    assert "you: 1" in view.text and 'href="/annotate/by-page/items/1"' in view.text


async def test_skip_release_and_finishing_the_queue(
    client: httpx.AsyncClient, store: DuckDBStore, spans: list[Span]
) -> None:
    await make_queue(client, size=3)
    csrf = await token(client)
    url = await start(client)
    r = await client.post(url + "/skip", data={"csrf_token": csrf, "comment": "unreadable"})
    assert r.status_code == 303 and r.headers["location"] == "/annotate/review/items/2?prev=1"
    skipped = store.get_queue_item(P, "review", 1)
    assert skipped is not None and skipped.status == "skipped"
    assert (skipped.done_by, skipped.skip_reason) == ("ana", "unreadable")
    assert store.list_feedback(P, name="quality") == []

    r = await client.post("/annotate/review/items/2/release", data={"csrf_token": csrf})
    assert r.status_code == 303 and r.headers["location"] == "/annotate/review"
    released = store.get_queue_item(P, "review", 2)
    assert released is not None and released.status == "open" and released.claimed_by is None

    for n, value in ((2, "true"), (3, "false")):
        assert await start(client) == f"/annotate/review/items/{n}"
        r = await client.post(
            f"/annotate/review/items/{n}/label", data={"csrf_token": csrf, "value": value}
        )
    assert r.status_code == 303 and r.headers["location"] == "/annotate/review"
    done = await client.get("/annotate/review")
    assert "This queue is done" in done.text
    assert "review is done: 2 labelled, 1 skipped." in done.text  # the one-time message
    assert 'id="start-form"' not in done.text
    counts = re.findall(r'<span class="badge (\w+)">\w+</span></td><td class="num">(\d)', done.text)
    assert sorted(counts) == [("fail", "1"), ("pass", "1")]
    stored = {f.number for f in store.list_feedback(P, name="quality")}
    assert stored == {0.0, 1.0}
    # Another "next" on a finished queue says so instead of failing.
    r = await client.post("/annotate/review/next", data={"csrf_token": csrf})
    assert r.status_code == 303 and r.headers["location"] == "/annotate/review"
    # A finished item opens read-only with its stored label.
    view = await client.get("/annotate/review/items/3")
    assert "Item 3 is labelled" in view.text and 'class="badge fail"' in view.text
    assert 'id="label-form"' not in view.text


async def test_an_item_taken_by_someone_else_gives_a_message_and_the_next_item(
    client: httpx.AsyncClient, store: DuckDBStore, spans: list[Span]
) -> None:
    await make_queue(client)
    csrf = await token(client)
    url = await start(client)  # ana holds item 1
    store.release_queue_item(P, "review", 1, "ana")
    label_item(store, P, "review", 1, "bob", False)
    r = await client.post(url + "/label", data={"csrf_token": csrf, "value": "pass"})
    assert r.status_code == 303 and r.headers["location"] == "/annotate/review/items/2?prev=1"
    flash = (await client.get(r.headers["location"])).text
    assert "Item 1 was already labelled by bob, so your label was not stored" in flash
    (fb,) = store.list_feedback(P, name="quality")
    assert (fb.author, fb.number) == ("bob", 0.0)

    # A stale claim: bob takes item 2 while ana's page still shows it.
    store.release_queue_item(P, "review", 2, "ana")
    _, bobs = claim_next(store, P, "review", "bob")
    assert bobs is not None and bobs.item_id == 2
    view = await client.get("/annotate/review/items/2")
    assert view.status_code == 200 and "Claimed by bob" in view.text
    assert 'id="label-form"' not in view.text
    r = await client.post("/annotate/review/items/2/skip", data={"csrf_token": csrf})
    assert r.status_code == 303 and r.headers["location"] == "/annotate/review/items/3?prev=2"
    flash = (await client.get(r.headers["location"])).text
    assert "Item 2 is now claimed by bob, so your skip was not stored" in flash
    item = store.get_queue_item(P, "review", 2)
    assert item is not None and item.status == "open" and item.claimed_by == "bob"


async def test_posts_without_the_csrf_token_are_refused_and_write_nothing(
    client: httpx.AsyncClient, store: DuckDBStore, spans: list[Span]
) -> None:
    await make_queue(client)
    url = await start(client)
    for action, data in (
        ("/label", {"value": "true"}),
        ("/label", {"value": "true", "csrf_token": "forged"}),
        ("/skip", {}),
        ("/release", {}),
    ):
        r = await client.post(url + action, data=data)
        assert r.status_code == 403 and "CSRF token" in r.text
    r = await client.post("/annotate/review/next", data={"labeller": "eve"})
    assert r.status_code == 403
    item = store.get_queue_item(P, "review", 1)
    assert item is not None and item.status == "open" and item.claimed_by == "ana"
    assert store.list_feedback(P, name="quality") == []
    progress = store.queue_progress(P, "review", datetime.now(UTC))
    assert progress.labelled == progress.skipped == 0 and progress.by_labeller.keys() == {"ana"}


async def test_bad_requests_are_4xx_with_a_reason(
    client: httpx.AsyncClient, store: DuckDBStore, spans: list[Span]
) -> None:
    await make_queue(client)
    csrf = await token(client)
    assert (await client.get("/annotate/nope")).status_code == 404
    for bad in ("abc", "0", "99", "-1"):
        r = await client.get(f"/annotate/review/items/{bad}")
        assert r.status_code == 404 and "its items are 1 to 4" in r.text
    r = await client.post("/annotate/nope/next", data={"csrf_token": csrf, "labeller": "ana"})
    assert r.status_code == 404 and "no queue named" in r.text
    # No labeller yet: neither a cookie nor a typed name.
    r = await client.post("/annotate/review/next", data={"csrf_token": csrf})
    assert r.status_code == 400 and "say who you are" in r.text
    r = await client.post("/annotate/review/items/1/label", data={"csrf_token": csrf, "value": "1"})
    assert r.status_code == 400 and "say who you are" in r.text
    r = await client.post(
        "/annotate/review/next", data={"csrf_token": csrf, "labeller": "a\u0007b"}
    )
    assert r.status_code == 400 and "labeller" in r.text
    url = await start(client)
    r = await client.post(url + "/label", data={"csrf_token": csrf})
    assert r.status_code == 400 and "choose a label" in r.text
    r = await client.post(url + "/label", data={"csrf_token": csrf, "value": "maybe"})
    assert r.status_code == 400 and "must be pass or fail" in r.text
    long = {"csrf_token": csrf, "value": "1", "comment": "x" * 10_001}
    r = await client.post(url + "/label", data=long)
    assert r.status_code == 400 and "comment is longer" in r.text
    item = store.get_queue_item(P, "review", 1)
    assert item is not None and item.status == "open"
    assert store.list_feedback(P, name="quality") == []


def test_label_options_keys() -> None:
    boolean = label_options(label_spec("q", boolean=True))
    assert [(o.value, o.keys) for o in boolean] == [("true", ("p", "1")), ("false", ("f", "2"))]
    cats = label_options(label_spec("topic", values="billing,shipping,bugs,question,other"))
    # Letters only when unique and not an action key (s skip, u back, c comment, q release).
    assert [o.keys for o in cats] == [("1",), ("2",), ("3",), ("4",), ("5", "o")]
    assert [o.keys for o in label_options(label_spec("s", scale="1-5"))] == [
        (str(i),) for i in range(1, 6)
    ]
    assert [o.keys for o in label_options(label_spec("s", scale="-2-2"))] == [
        (str(i),) for i in range(1, 6)
    ]
    assert label_options(label_spec("s", scale="0.0-1.0")) == []
    assert label_options(label_spec("s", scale="0-100")) == []


@pytest.fixture
async def remote(db_path: str, store: DuckDBStore) -> AsyncIterator[httpx.AsyncClient]:
    """The app on a public address, where a session signs in with an API key."""
    settings = Settings(db=db_path, decode_workers=0, host="0.0.0.0", admin_key="a" * 32,
                        monitors=False, online=False, session_secret="s" * 32)  # fmt: skip
    application: FastAPI = create_app(settings, store=store)
    async with application.router.lifespan_context(application), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://203.0.113.5:7800"
    ) as c:
        yield c


async def test_a_key_session_labels_as_the_key(
    remote: httpx.AsyncClient, store: DuckDBStore, spans: list[Span]
) -> None:
    created = await remote.post(
        "/api/v1/queues",
        headers={"Authorization": "Bearer " + "a" * 32},
        json={"name": "review", "strategy": "random", "size": 3, "seed": 1, "unit": "span",
              "label": {"name": "quality", "boolean": True}},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    key, secret = create_key(store, P)
    assert (await remote.post("/login", data={"key": secret})).status_code == 303
    page = await remote.get("/annotate/review")
    assert f"You label as <strong>{key.key_id}</strong>" in page.text
    assert 'name="labeller"' not in page.text
    csrf = csrf_of(page.text)
    # A typed name cannot override the key.
    r = await remote.post("/annotate/review/next", data={"csrf_token": csrf, "labeller": "boss"})
    assert r.status_code == 303 and r.headers["location"] == "/annotate/review/items/1"
    r = await remote.post(
        "/annotate/review/items/1/label", data={"csrf_token": csrf, "value": "pass"}
    )
    assert r.status_code == 303
    item = store.get_queue_item(P, "review", 1)
    assert item is not None and item.done_by == key.key_id
    (fb,) = store.list_feedback(P, name="quality")
    assert fb.author == key.key_id
