"""The whole app on the ClickHouse backend (chDB): the demo builds through the real code
paths, and every page and the main API answers as on DuckDB."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from assay.demo import DemoSummary, build_demo
from assay.server import create_app
from assay.settings import Settings
from assay.store import open_store
from assay.store.duckdb import DuckDBStore
from backends import close

pytest.importorskip("chdb")

NOW = datetime.now(UTC)


async def serve(store: Any) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(db="unused.duckdb", decode_workers=0, monitors=False, online=False)
    app = create_app(settings, store=store)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:7800"
    ) as client:
        yield client


def pages(summary: DemoSummary) -> list[str]:
    return [
        "/",
        "/?range=30d&group=route&scope=all",
        "/traces",
        "/traces?q=password",
        f"/traces/{summary.conversation_trace_id}",
        "/evals",
        f"/evals/{summary.candidate_run}",
        f"/evals/compare?a={summary.baseline_run}&b={summary.candidate_run}",
        "/goldens",
        f"/goldens/{summary.golden}",
        "/drift",
        "/annotate",
        f"/annotate/{summary.queue}",
        "/calibration",
        f"/calibration/{summary.judge}",
    ]


@pytest.fixture
def built(tmp_path: Path) -> Iterator[dict[str, tuple[Any, DemoSummary]]]:
    """The demo on DuckDB and on chDB (built outside the test's event loop: the demo runs
    its evaluations with asyncio.run)."""
    out: dict[str, tuple[Any, DemoSummary]] = {}
    try:
        for backend in ("duckdb", "chdb"):
            store: Any = (
                DuckDBStore(str(tmp_path / "d.duckdb"))
                if backend == "duckdb"
                else open_store(f"chdb://{tmp_path / 'ch'}")
            )
            out[backend] = (store, build_demo(store, Settings(db="unused"), seed=4, now=NOW,
                                              traces=300))  # fmt: skip
        yield out
    finally:
        for store, _ in out.values():
            store.close()


async def test_demo_pages_and_api_agree_between_duckdb_and_chdb(
    built: dict[str, tuple[Any, DemoSummary]],
) -> None:
    answers: dict[str, dict[str, Any]] = {}
    for backend, (store, summary) in built.items():
        seen: dict[str, Any] = {}
        async for client in serve(store):
            for url in pages(summary):
                r = await client.get(url)
                assert r.status_code == 200, (backend, url, r.text[-500:])
            stats = await client.get("/api/v1/stats", params={"group_by": "model"})
            seen["stats"] = stats.json()
            traces = await client.get("/api/v1/traces", params={"limit": 20})
            seen["traces"] = [t["trace_id"] for t in traces.json()["items"]]
            compare = await client.get(
                "/api/v1/compare",
                params={"baseline": summary.baseline_run, "candidate": summary.candidate_run},
            )
            assert compare.status_code == 200, compare.text
            seen["compare"] = compare.json()
        answers[backend] = seen
    # Run ids are random per build; the statistics are not.
    for side in answers.values():
        side["compare"].pop("baseline", None)
        side["compare"].pop("candidate", None)
    # Sums of floats differ in the last bits between engines (summation order).
    assert answers["chdb"]["stats"] == close(answers["duckdb"]["stats"])
    assert answers["chdb"]["traces"] == answers["duckdb"]["traces"]
    assert answers["chdb"]["compare"] == close(answers["duckdb"]["compare"])

