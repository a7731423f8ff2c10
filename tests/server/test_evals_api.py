"""The golden-set and run API: round trips, and 4xx with a reason for bad input."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.all_backends

CASES = [{"id": "a", "input": "hi", "expected": "hello"}, {"id": "b", "input": "yo"}]
NOW = "2026-03-01T00:00:00+00:00"


async def add_golden(client: httpx.AsyncClient, cases: list[dict[str, Any]] = CASES) -> str:
    resp = await client.post("/api/v1/goldens", json={"name": "g", "cases": cases})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["version"])


def run_body(version: str, run_id: str = "r1") -> dict[str, Any]:
    return {
        "run_id": run_id,
        "golden": "g",
        "golden_version": version,
        "target": {"kind": "python", "callable": "app:answer"},
        "scorers": [{"name": "exact"}],
        "trials": 1,
        "created_at": NOW,
    }


def trial(case: str, value: float, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "case_id": case,
        "trial": 0,
        "output": {"text": "x", "latency_ms": 5.0},
        "scores": {"exact": {"value": value, "passed": value == 1.0}},
        "started_at": NOW,
        "finished_at": NOW,
    }
    out.update(kw)
    return out


async def test_golden_versions_round_trip_and_diff(client: httpx.AsyncClient) -> None:
    v1 = await add_golden(client)
    again = await client.post("/api/v1/goldens", json={"name": "g", "cases": CASES[::-1]})
    assert again.json()["version"] == v1 and again.json()["created"] is False
    v2 = await add_golden(client, [*CASES, {"id": "c", "input": "new"}])
    got = (await client.get("/api/v1/goldens/g", params={"version": v1[:8]})).json()
    assert [c["id"] for c in got["cases"]] == ["a", "b"]
    diff = (await client.get("/api/v1/goldens/g/diff", params={"old": v1[:8]})).json()
    assert diff["added"] == ["c"] and diff["new_version"] == v2
    listed = (await client.get("/api/v1/goldens")).json()["items"]
    assert {g["version"] for g in listed} == {v1, v2}


async def test_run_trials_summary_and_compare(client: httpx.AsyncClient) -> None:
    version = await add_golden(client)
    for run_id, values in (("base", (1.0, 1.0)), ("cand", (1.0, 0.0))):
        assert (
            await client.post("/api/v1/runs", json=run_body(version, run_id))
        ).status_code == 200
        trials = [trial("a", values[0]), trial("b", values[1])]
        resp = await client.post(f"/api/v1/runs/{run_id}/trials", json={"trials": trials})
        assert resp.json() == {"added": 2}
    summary = (await client.get("/api/v1/runs/cand/summary")).json()
    assert summary["scorers"]["exact"]["estimate"]["mean"] == 0.5
    assert summary["n_cases"] == 2
    cmp = await client.get("/api/v1/compare", params={"baseline": "base", "candidate": "cand"})
    assert cmp.status_code == 200
    exact = cmp.json()["scorers"]["exact"]
    assert exact["flipped_to_fail"] == ["b"] and exact["verdict"] == "no detectable change"
    done = (await client.get("/api/v1/runs/cand/completed")).json()["items"]
    assert done == [["a", 0], ["b", 0]]


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "reason"),
    [
        ("post", "/api/v1/goldens", {"name": "g", "cases": []}, 422, "at least 1"),
        ("post", "/api/v1/goldens", {"name": "g", "cases": [{"input": "x"}]}, 422, "id"),
        (
            "post",
            "/api/v1/goldens",
            {"name": "g", "cases": [{"id": "a", "input": "x", "expectd": 1}]},
            422,
            "expected",
        ),
        ("post", "/api/v1/goldens", {"name": "bad name!", "cases": CASES}, 422, "name"),
        ("get", "/api/v1/goldens/nope", None, 404, "assay goldens add"),
        ("get", "/api/v1/goldens/g/diff?old=ffff", None, 404, "version"),
        ("get", "/api/v1/runs/nope", None, 404, "assay eval list"),
        ("get", "/api/v1/runs/nope/summary", None, 404, "nope"),
        ("get", "/api/v1/compare?baseline=nope&candidate=r1", None, 404, "nope"),
        ("post", "/api/v1/runs/nope/status", {"status": "finished"}, 404, "nope"),
    ],
)
async def test_bad_input_is_4xx_with_a_reason(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    body: dict[str, Any] | None,
    status: int,
    reason: str,
) -> None:
    await add_golden(client)
    resp = await client.request(method, url, json=body)
    assert resp.status_code == status, resp.text
    assert reason in resp.text


async def test_run_and_trial_errors(client: httpx.AsyncClient) -> None:
    version = await add_golden(client)
    unknown = run_body("f" * 64)
    resp = await client.post("/api/v1/runs", json=unknown)
    assert resp.status_code == 404 and "POST it to /api/v1/goldens" in resp.text
    assert (await client.post("/api/v1/runs", json=run_body(version))).status_code == 200
    assert (await client.post("/api/v1/runs", json=run_body(version))).status_code == 409
    both = trial("a", 1.0, error="boom")
    resp = await client.post("/api/v1/runs/r1/trials", json={"trials": [both]})
    assert resp.status_code == 422 and "exactly one of output and error" in resp.text
    odd = trial("a", 1.0, output={"txt": "x"})
    resp = await client.post("/api/v1/runs/r1/trials", json={"trials": [odd]})
    assert resp.status_code == 422 and "unknown output fields ['txt']" in resp.text
    resp = await client.post("/api/v1/runs/r1/status", json={"status": "done"})
    assert resp.status_code == 422
    resp = await client.get("/api/v1/runs/r1/summary", params={"level": 2})
    assert resp.status_code == 422


async def test_runs_are_isolated_by_project(client: httpx.AsyncClient) -> None:
    version = await add_golden(client)
    assert (await client.post("/api/v1/runs", json=run_body(version))).status_code == 200
    other = await client.get("/api/v1/runs/r1", params={"project": "other"})
    assert other.status_code == 404
    golden = await client.get("/api/v1/goldens/g", params={"project": "other"})
    assert golden.status_code == 404
