"""POST /api/v1/drift/check: a report for good input, 4xx with a reason for bad input."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from assay.store import Store
from drift_support import CURRENT, DAY1, DAY2, REFERENCE, traffic

pytestmark = pytest.mark.all_backends

OK = {"reference": REFERENCE, "current": CURRENT, "embedder": "hashing"}


@pytest.fixture
def filled(store: Store) -> Store:
    store.insert_spans(traffic(60, DAY1, seed=1))
    store.insert_spans(traffic(60, DAY2, seed=2, longer_outputs=True))
    return store


async def test_check_returns_the_report(client: httpx.AsyncClient, filled: Store) -> None:
    body = {
        **OK,
        "features": ["output_length", "output_embedding", "model"],
        "service": "support-bot",
    }
    resp = await client.post("/api/v1/drift/check", json=body)
    assert resp.status_code == 200, resp.text
    report = resp.json()
    assert report["version"] == 1 and report["project"] == "default"
    assert report["current"]["filters"] == {"kind": "llm", "service": "support-bot"}
    assert [f["feature"] for f in report["features"]] == [
        "output_length",
        "output_embedding",
        "model",
    ]
    length = report["features"][0]
    assert length["verdict"] == "drift" and report["drifted"][0] == "output_length"
    assert {r["test"] for r in length["results"]} == {"ks", "wasserstein"}
    listed = (await client.get("/api/v1/drift/features")).json()["items"]
    assert {"name": "tools", "kind": "categorical"}.items() <= listed[-1].items()


async def test_now_makes_relative_windows_reproducible(
    client: httpx.AsyncClient, filled: Store
) -> None:
    body = {
        "reference": "2d ago..1d ago",
        "current": "last 1d",
        "now": "2026-03-03T00:00:00Z",
        "features": ["latency_ms"],
    }
    report = (await client.post("/api/v1/drift/check", json=body)).json()
    assert report["reference"]["start"] == "2026-03-01T00:00:00+00:00"
    assert report["current"]["total"] == 120


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({"current": CURRENT}, 400, "exactly one reference"),
        ({**OK, "reference_goldens": "g"}, 400, "exactly one reference"),
        ({**OK, "reference": "yesterday..today"}, 400, "START..END"),
        ({**OK, "current": "1d ago..7d ago"}, 400, "write the older time first"),
        ({**OK, "features": ["latency"]}, 400, "unknown drift feature 'latency'"),
        ({**OK, "embedder": "word2vec"}, 400, "embedder"),
        ({**OK, "embedder": "hashing:4"}, 400, "dim must be"),
        ({**OK, "now": "tomorrow"}, 400, "now 'tomorrow' is not a time"),
        ({"reference_goldens": "nope", "current": CURRENT}, 404, "no golden set 'nope'"),
        ({"reference_goldens": "bad name!", "current": CURRENT}, 400, "NAME@VERSION"),
        ({**OK, "colour": "red"}, 422, "colour"),
        ({**OK, "alpha": 2}, 422, "alpha"),
        ({**OK, "correction": "bonferroni"}, 422, "correction"),
        ({**OK, "status": "fine"}, 422, "status"),
        ({**OK, "max_samples": 1}, 422, "max_samples"),
        ({**OK, "features": "latency_ms"}, 422, "features"),
    ],
)
async def test_bad_input_is_4xx_with_a_reason(
    client: httpx.AsyncClient, body: dict[str, Any], status: int, reason: str
) -> None:
    resp = await client.post("/api/v1/drift/check", json=body)
    assert resp.status_code == status, resp.text
    assert reason in resp.text


async def test_a_failing_embedding_endpoint_is_502(
    client: httpx.AsyncClient, filled: Store
) -> None:
    # Nothing listens on port 9; the request fails after the embedder's retries.
    body = {**OK, "embedder": "openai:m", "features": ["input_embedding"]}
    from assay.drift import features

    broken = features.get_embedder(
        {"name": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1", "max_retries": 0}
    )
    features._cache["openai:m"] = broken
    try:
        resp = await client.post("/api/v1/drift/check", json=body)
    finally:
        features._cache.pop("openai:m", None)
    assert resp.status_code == 502 and "embedding failed" in resp.text
