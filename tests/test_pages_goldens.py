"""Golden-set pages in-process: versions, one version's cases with provenance, and the
diff between versions (the same diff as GET /api/v1/goldens/{name}/diff)."""

from __future__ import annotations

import html
import re

import httpx
import pytest

from assay.store import Store
from test_pages_evals import PROJECT, save_golden, section, seed, text_of

pytestmark = pytest.mark.all_backends


@pytest.fixture
def versions(store: Store) -> tuple[str, str]:
    """(old, new) version hashes of golden set ``qa``."""
    seed(store)
    found = store.list_golden_versions(PROJECT, "qa")
    return found[1].version, found[0].version


async def test_goldens_list_shows_every_version(
    client: httpx.AsyncClient, versions: tuple[str, str]
) -> None:
    old, new = versions
    r = await client.get("/goldens")
    assert r.status_code == 200, r.text
    table = section(r.text, "goldens")
    assert table.index(new[:12]) < table.index(old[:12])  # newest first
    assert "qa" in table and "other" in table and "goldens/qa.yaml" in table
    rows = text_of(table)
    assert f"{new[:12]} latest 30" in rows and f"{old[:12]} 30" in rows
    assert "2 versions" in rows and "2 runs" in rows
    assert f"/goldens/qa/diff?old={old[:12]}&amp;new={new[:12]}" in table


async def test_golden_set_page_shows_cases_with_provenance(
    client: httpx.AsyncClient, versions: tuple[str, str]
) -> None:
    old, new = versions
    r = await client.get("/goldens/qa")
    assert r.status_code == 200, r.text
    assert f"{new[:12]}" in r.text and "latest" in r.text
    api = (await client.get("/api/v1/goldens/qa")).json()
    ids = re.findall(r'<tr id="case-([\w-]+)"', r.text)
    assert ids == [c["id"] for c in api["cases"]]
    assert "c30" in ids and "c29" not in ids
    chat = text_of(section(r.text, "case-c01"))
    assert "system Be brief." in chat and "user What is one plus one?" in chat
    assert "contains" in chat and '"value": "two"' in chat and "2" in chat
    promoted = section(r.text, "case-c02")
    assert f'href="/traces/{"ab" * 16}"' in promoted
    assert "by ana" in promoted and "refunds" in promoted
    assert '"trace_id"' not in promoted  # provenance shows once, not again as metadata
    older = await client.get("/goldens/qa", params={"version": old[:8]})
    assert older.status_code == 200
    ids = re.findall(r'<tr id="case-([\w-]+)"', older.text)
    assert "c29" in ids and "c30" not in ids
    assert "older version" in older.text
    picker = section(older.text, "version-picker")
    assert f'value="{old[:12]}" selected' in picker and f'value="{new[:12]}"' in picker


async def test_golden_diff_page_matches_the_diff_api(
    client: httpx.AsyncClient, versions: tuple[str, str]
) -> None:
    old, new = versions
    r = await client.get("/goldens/qa/diff", params={"old": old[:12], "new": new[:12]})
    assert r.status_code == 200, r.text
    api = (await client.get("/api/v1/goldens/qa/diff", params={"old": old[:12]})).json()
    assert api["added"] == ["c30"] and api["removed"] == ["c29"]
    page = text_of(r.text)
    assert "Added 1 Removed 1 Changed 1 Unchanged 28" in page
    assert re.findall(r'<tr class="diff-new-row">\s*<td class="mono">(\w+)', r.text) == ["c30"]
    assert re.findall(r'<tr class="diff-old-row">\s*<td class="mono">(\w+)', r.text) == ["c29"]
    changed = text_of(section(r.text, "changed"))
    (change,) = api["changed"]
    assert change["id"] == "c01"
    for f in change["changes"]:
        assert f"{f['field']} {f['old']} {f['new']}" in changed
    # Without ``new`` the diff goes to the newest version.
    default = await client.get("/goldens/qa/diff", params={"old": old[:12]})
    assert "Added 1 Removed 1 Changed 1 Unchanged 28" in text_of(default.text)
    same = await client.get("/goldens/qa/diff", params={"old": new[:12], "new": new[:12]})
    assert "The two versions hold the same cases." in html.unescape(same.text)


@pytest.mark.parametrize(
    ("url", "status", "reason"),
    [
        ("/goldens/nope", 404, "no golden set 'nope'"),
        ("/goldens/qa?version=ffffffff", 404, "no version 'ffffffff' of golden set 'qa'"),
        ("/goldens/qa?page=5", 400, "past the last page"),
        ("/goldens/qa/diff", 400, "give the old version"),
        ("/goldens/qa/diff?old=ffffffff", 404, "no version 'ffffffff'"),
        ("/goldens/nope/diff?old=ab", 404, "no golden set 'nope'"),
    ],
)
async def test_bad_input_is_a_4xx_page(
    client: httpx.AsyncClient, versions: tuple[str, str], url: str, status: int, reason: str
) -> None:
    r = await client.get(url)
    assert r.status_code == status, r.text
    assert reason in html.unescape(r.text)


async def test_ambiguous_version_prefix_is_a_400(
    client: httpx.AsyncClient, store: Store
) -> None:
    # 17 versions: two of them must start with the same hex digit.
    hashes = [save_golden(store, "many", [{"id": "a", "input": f"v{i}"}]) for i in range(17)]
    digit = next(d for d in "0123456789abcdef" if sum(h.startswith(d) for h in hashes) > 1)
    r = await client.get("/goldens/many", params={"version": digit})
    assert r.status_code == 400 and "ambiguous" in r.text


async def test_goldens_list_is_empty_with_a_hint(client: httpx.AsyncClient) -> None:
    r = await client.get("/goldens")
    assert r.status_code == 200 and "assay goldens add" in r.text
