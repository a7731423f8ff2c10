"""/api/v1/calibration and /api/v1/quality: the numbers over HTTP, the stored calibrator
applied on read, refusal of non-random labels, and 4xx with a reason for bad input."""

from __future__ import annotations

import httpx
import pytest

from assay.stats import calibrator_from_dict
from assay.store.duckdb import DuckDBStore
from calibration_support import (
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


async def test_report_carries_the_reference_values(
    client: httpx.AsyncClient, store: DuckDBStore
) -> None:
    table_2x2(store)
    resp = await client.get("/api/v1/calibration/help/report", params=LABELS)
    assert resp.status_code == 200, resp.text
    r = resp.json()
    assert r["confusion"] == {
        "rows": "judge",
        "columns": "human",
        "labels": ["fail", "pass"],
        "counts": [[20, 5], [10, 15]],
    }
    assert r["n_pairs"] == 50 and r["accuracy"] == pytest.approx(0.7)
    assert r["cohen_kappa"] == pytest.approx(0.4)
    assert r["scott_pi"] == pytest.approx(0.394, abs=5e-4)
    assert r["mean_offset"] == pytest.approx(0.1)
    assert r["reliability"] is None and r["calibrator"] is None
    assert r["sampling"]["design"] == "not_random"
    assert r["sampling"]["message"].startswith("note: 50 of 50 labels")


async def test_fit_is_stored_and_later_scores_come_back_calibrated(
    client: httpx.AsyncClient, store: DuckDBStore
) -> None:
    overconfident(store, 400)
    resp = await client.post(
        "/api/v1/calibration/help/fit", params={**LABELS, "method": "isotonic"}
    )
    assert resp.status_code == 200, resp.text
    fitted = resp.json()["fitted"]
    assert fitted["method"] == "isotonic" and fitted["n"] == 400 and fitted["n_holdout"] == 120
    assert fitted["ece_after"] < fitted["ece_before"]
    overconfident(store, 6, start=1000, labelled=False)
    got = (await client.get("/api/v1/calibration/help", params={"limit": 6})).json()
    assert got["calibrator"]["params"] == fitted["params"]
    model = calibrator_from_dict(fitted["params"])
    assert len(got["scores"]) == 6
    for s in got["scores"]:
        assert s["calibrated"] == pytest.approx(model.predict([s["raw"]])[0])
    listed = (await client.get("/api/v1/calibration")).json()["items"]
    assert [c["judge"] for c in listed] == ["help"]
    report = (await client.get("/api/v1/calibration/help/report", params=LABELS)).json()
    assert report["calibrator"]["fitted_at"] == fitted["fitted_at"]
    assert report["reliability"]["strategy"] == "mass"
    q = (
        await client.get(
            "/api/v1/quality/help/estimate", params={**LABELS, "assume_random": "true"}
        )
    ).json()
    assert q["label_free"]["n"] == 406 and "holds only while" in q["label_free"]["caveat"]
    assert (await client.delete("/api/v1/calibration/help")).status_code == 204
    after = (await client.get("/api/v1/calibration/help", params={"limit": 1})).json()
    assert after["calibrator"] is None and after["scores"][0]["calibrated"] is None


async def test_quality_refuses_ad_hoc_labels_and_weights_a_stratified_queue(
    client: httpx.AsyncClient, store: DuckDBStore
) -> None:
    truth = biased_window(store, 600)
    bulk_add(store, [label(i, bool(truth[i])) for i in range(0, 60)])
    resp = await client.get("/api/v1/quality/help/estimate", params=LABELS)
    assert resp.status_code == 422
    assert "not a random sample of the window" in resp.json()["detail"]
    assert "--assume-random" in resp.json()["detail"]
    ok = await client.get(
        "/api/v1/quality/help/estimate", params={**LABELS, "assume_random": "true"}
    )
    assert ok.status_code == 200 and ok.json()["sampling"]["design"] == "assumed"
    assert ok.json()["sampling"]["message"].startswith("ASSUMED RANDOM")
    # Labels from a stratified queue only (another label name): weighted, not refused.
    add_queue(
        store,
        "strat",
        "stratified",
        [(i, 0.5 if i % 2 else 0.1) for i in range(100, 300)],
        truth,
        label_name="human-strat",
    )
    q = await client.get("/api/v1/quality/help/estimate", params={"labels": "human-strat"})
    assert q.status_code == 200, q.text
    body = q.json()
    assert body["sampling"]["design"] == "weighted" and body["sampling"]["weighted"]
    assert body["n_labelled"] == 200 and body["n_scored"] == 600
    assert body["ppi"]["low"] <= body["ppi"]["estimate"] <= body["ppi"]["high"]


async def test_threshold_answers_and_says_when_no_threshold_works(
    client: httpx.AsyncClient, store: DuckDBStore
) -> None:
    wrong = {i for i in range(100) if (i % 4 == 0 and i < 60) or i in (72, 91)}
    bulk_add(
        store,
        [judge(i, i / 100) for i in range(100)] + [label(i, i not in wrong) for i in range(100)],
    )
    t = (
        await client.get("/api/v1/calibration/help/threshold", params={**LABELS, "risk": 0.05})
    ).json()
    assert t["threshold"] == 0.49 and t["answer_rate"] == 0.51 and not t["abstain_all"]
    none = await client.get("/api/v1/calibration/help/threshold", params={**LABELS, "risk": 0.001})
    assert none.status_code == 200
    assert none.json()["threshold"] is None and none.json()["abstain_all"]
    assert none.json()["message"].startswith("no threshold can hold")


@pytest.mark.parametrize(
    ("method", "url", "params", "status", "reason"),
    [
        ("GET", "/api/v1/calibration/bad name/report", {}, 400, "judge name 'bad name'"),
        ("GET", "/api/v1/calibration/help/report", {"labels": "a b"}, 400, "labels name"),
        (
            "GET",
            "/api/v1/calibration/help/report",
            {"window": "last 7d", "start": "1d"},
            400,
            "either window or start/end",
        ),
        ("GET", "/api/v1/calibration/help/report", {"window": "soon"}, 400, "window"),
        ("GET", "/api/v1/calibration/help/report", {"pass_at": 0}, 422, "pass_at"),
        ("GET", "/api/v1/calibration/help/report", {"bins": 0}, 422, "bins"),
        ("GET", "/api/v1/calibration/nobody/report", {}, 422, "at least 2 labelled pairs"),
        ("GET", "/api/v1/calibration/help/report", {"labels": "stars"}, 422, "outside"),
        ("POST", "/api/v1/calibration/help/fit", {"method": "spline"}, 400, "isotonic, platt"),
        ("POST", "/api/v1/calibration/help/fit", {"holdout": 1}, 422, "holdout"),
        ("POST", "/api/v1/calibration/nobody/fit", {}, 422, "labelled pairs: the window has 0"),
        ("GET", "/api/v1/calibration/help/threshold", {}, 422, "risk"),
        ("GET", "/api/v1/calibration/help/threshold", {"risk": 1.5}, 422, "risk"),
        ("GET", "/api/v1/quality/help/estimate", {}, 422, "not a random sample"),
        ("GET", "/api/v1/quality/help/estimate", {"level": 1}, 422, "level"),
        (
            "GET",
            "/api/v1/quality/help/estimate",
            {"window": "2020-01-01..2020-01-02", "assume_random": "true"},
            422,
            "at least 2 labelled pairs",
        ),
        ("GET", "/api/v1/calibration/nobody", {}, 404, "no scores"),
        ("DELETE", "/api/v1/calibration/help", {}, 404, "no calibrator"),
        ("DELETE", "/api/v1/calibration/bad name", {}, 400, "judge name"),
    ],
)
async def test_bad_requests_get_4xx_with_a_reason(
    client: httpx.AsyncClient,
    store: DuckDBStore,
    method: str,
    url: str,
    params: dict[str, object],
    status: int,
    reason: str,
) -> None:
    bulk_add(
        store,
        [judge(i, i / 10) for i in range(10)]
        + [label(i, i > 4, name="help") for i in range(10)]
        + [label(i, 4.0, name="stars") for i in range(10)],
    )
    resp = await client.request(method, url, params=params)
    assert resp.status_code == status, resp.text
    assert reason in resp.text
