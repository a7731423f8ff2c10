"""Evaluation pages in-process: the runs list, a run page and the compare page show the
numbers the summary and compare APIs give for the same runs; bad input is a 4xx page."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from assay.goldens import case_from_dict, case_to_dict, golden_set_from_cases
from assay.model import EvalRun, Output, Score, ScorerSpec, Trial
from assay.server.pages import fmt_num
from assay.store import Store

pytestmark = pytest.mark.all_backends

PROJECT = "default"
T0 = datetime(2026, 3, 1, tzinfo=UTC)
N_CASES = 30
#: Cases the candidate run gets wrong on every trial (the regression).
REGRESSED = [f"c{i:02d}" for i in range(12)]
#: Cases whose baseline trials disagree.
FLAKY = ["c20", "c21"]


def case_dicts(version: int = 1) -> list[dict[str, Any]]:
    """Golden cases; version 2 changes c01's expected, drops c29 and adds c30."""
    cases: list[dict[str, Any]] = []
    for i in range(N_CASES + (1 if version == 2 else 0)):
        cid = f"c{i:02d}"
        if version == 2 and cid == "c29":
            continue
        case: dict[str, Any] = {"id": cid, "input": f"question {i}?", "expected": f"answer {i}"}
        if i == 1:
            case["input"] = [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What is one plus one?"},
            ]
            case["expected"] = "two" if version == 1 else "2"
            case["options"] = {"contains": {"value": "two"}}
        if i == 2:
            case["metadata"] = {
                "topic": "refunds",
                "provenance": {
                    "trace_id": "ab" * 16,
                    "span_id": "cd" * 8,
                    "promoted_by": "ana",
                    "promoted_at": "2026-02-20T10:00:00+00:00",
                    "expected_from": "given",
                    "label": None,
                },
            }
        cases.append(case)
    return cases


def save_golden(store: Store, name: str, cases: list[dict[str, Any]]) -> str:
    """Store a golden-set version the way the API does; returns its hash."""
    golden = golden_set_from_cases(name, [case_from_dict(c) for c in cases])
    store.save_golden_set(
        PROJECT,
        name,
        golden.version,
        [case_to_dict(c) for c in golden.cases],
        description=f"{name} cases",
        source=f"goldens/{name}.yaml",
    )
    return golden.version


def add_run(
    store: Store,
    run_id: str,
    golden: str,
    version: str,
    exact: dict[str, list[float]],
    *,
    at: datetime,
    sim: float = 0.8,
) -> EvalRun:
    """A finished run with an ``exact`` pass/fail and a continuous ``sim`` scorer."""
    run = EvalRun(
        project=PROJECT,
        run_id=run_id,
        golden=golden,
        golden_version=version,
        target={"kind": "chat", "model": f"model-{run_id}", "base_url": "http://127.0.0.1:1"},
        scorers=[ScorerSpec("exact"), ScorerSpec("embedding_similarity", key="sim")],
        trials=3,
        status="running",
        created_at=at,
    )
    store.create_run(run)
    trials = []
    for n, (cid, values) in enumerate(sorted(exact.items())):
        for k, v in enumerate(values):
            trials.append(
                Trial(
                    run_id=run_id,
                    case_id=cid,
                    trial=k,
                    output=Output(
                        text=f"{run_id} says {'right' if v else 'wrong'} for {cid} #{k}",
                        latency_ms=100.0 + n + k,
                        cost=0.001,
                        input_tokens=10,
                        output_tokens=5,
                        trace_id=f"{n:032x}",
                    ),
                    error=None,
                    scores={
                        "exact": Score(v, passed=v == 1.0),
                        "sim": Score(round(sim + 0.01 * (n % 5), 4)),
                    },
                    started_at=at,
                    finished_at=at + timedelta(seconds=1),
                )
            )
    store.record_trials(PROJECT, trials)
    store.set_run_status(PROJECT, run_id, "finished")
    found = store.get_run(PROJECT, run_id)
    assert found is not None
    return found


def seed(store: Store) -> tuple[str, str]:
    """Two versions of golden set ``qa`` and two runs of v1: ``base`` and ``cand`` (the
    candidate fails REGRESSED on every trial); plus golden set ``other`` with run ``solo``."""
    v1 = save_golden(store, "qa", case_dicts(1))
    save_golden(store, "qa", case_dicts(2))
    ids = [f"c{i:02d}" for i in range(N_CASES)]
    base = {c: [0.0, 1.0, 1.0] if c in FLAKY else [1.0, 1.0, 1.0] for c in ids}
    cand = {c: [0.0, 0.0, 0.0] if c in REGRESSED else [1.0, 1.0, 1.0] for c in ids}
    add_run(store, "base", "qa", v1, base, at=T0)
    add_run(store, "cand", "qa", v1, cand, at=T0 + timedelta(hours=1))
    other = save_golden(store, "other", [{"id": "x1", "input": "hello"}])
    add_run(store, "solo", "other", other, {"x1": [1.0, 1.0, 1.0]}, at=T0 + timedelta(hours=2))
    return v1, other


def text_of(page: str) -> str:
    """The page's visible text, tags dropped and whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def section(page: str, element_id: str) -> str:
    """The HTML of the element with this id up to its closing table/section/div tag."""
    start = page.index(f'id="{element_id}"')
    tag = page.rfind("<", 0, start)
    name = re.match(r"<(\w+)", page[tag:])
    assert name is not None
    end = page.index(f"</{name.group(1)}>", start)
    return page[tag:end]


@pytest.fixture
def seeded(store: Store) -> tuple[str, str]:
    return seed(store)


async def test_runs_list_shows_runs_with_the_summary_means(
    client: httpx.AsyncClient, seeded: tuple[str, str]
) -> None:
    r = await client.get("/evals")
    assert r.status_code == 200, r.text
    table = section(r.text, "runs")
    # Newest first, with the newest two of one golden set preselected as B and A.
    assert table.index("/evals/solo") < table.index("/evals/cand") < table.index("/evals/base")
    # The newest run with an older run of its golden set is B, that older run A.
    assert re.findall(r'name="a" value="(\w+)"[^>]*checked', table) == ["base"]
    assert re.findall(r'name="b" value="(\w+)"[^>]*checked', table) == ["cand"]
    for run_id in ("base", "cand"):
        summary = (await client.get(f"/api/v1/runs/{run_id}/summary")).json()
        exact = summary["scorers"]["exact"]["estimate"]
        row = text_of(table.split(f'data-href="/evals/{run_id}"')[1].split("</tr>")[0])
        low, high = fmt_num(exact["low"]), fmt_num(exact["high"])
        assert f"exact {fmt_num(exact['mean'])} [{low}, {high}]" in row
        assert "model-" + run_id in row and "finished" in row and "$0.09" in row
    only = await client.get("/evals", params={"golden": "other"})
    assert "/evals/solo" in only.text and "/evals/base" not in only.text


async def test_run_page_matches_the_summary_api(
    client: httpx.AsyncClient, seeded: tuple[str, str]
) -> None:
    r = await client.get("/evals/base")
    assert r.status_code == 200, r.text
    api = (await client.get("/api/v1/runs/base/summary")).json()
    scorers = text_of(section(r.text, "scorers"))
    for key in ("exact", "sim"):
        e = api["scorers"][key]["estimate"]
        assert f"{key}" in scorers
        low, high = fmt_num(e["low"]), fmt_num(e["high"])
        assert f"{fmt_num(e['mean'])} [{low}, {high}] {e['method']}" in scorers
    exact = api["scorers"]["exact"]
    assert exact["agreement"]["flaky"] == FLAKY
    assert f"pass@3 {100 * exact['pass_at_k']['3']:.1f}%" in scorers
    assert f"pass^3 {100 * exact['pass_hat_k']['3']:.1f}%" in scorers
    assert "2 (7%)" in scorers  # two flaky cases of 30
    page = text_of(r.text)
    assert "Latency p50 " + f"{api['latency_p50_ms']:,.0f} ms" in page
    assert f"Trials {api['trials_done']}" in page
    # The chart's bars are the summary's means with the interval as error bars.
    assert 'id="chart-means"' in r.text and "error_x" in html.unescape(r.text)
    for cid in FLAKY:
        assert f'href="/evals/base?show=flaky#case-{cid}"' in r.text
    # Per-case outputs across trials: the chat input, the expected answer, each trial.
    cases = section(r.text, "case-table")
    assert "What is one plus one?" in cases and "two" in cases
    assert "base says right for c00 #2" in cases and "/traces/" in cases
    flaky = await client.get("/evals/base", params={"show": "flaky"})
    ids = re.findall(r'<tr id="case-(c\d+)"', flaky.text)
    assert ids == FLAKY
    # Per-case agreement: two of three trials agree with the majority.
    per_case = exact["agreement"]["per_case"]["c20"]
    assert f"exact {100 * per_case:.0f}%" in text_of(section(flaky.text, "case-c20"))


async def test_run_page_paginates_cases_and_filters_failing(
    client: httpx.AsyncClient, seeded: tuple[str, str]
) -> None:
    first = await client.get("/evals/cand")
    assert re.findall(r'<tr id="case-(c\d+)"', first.text)[:2] == ["c00", "c01"]
    assert len(re.findall(r'<tr id="case-', first.text)) == 25
    assert "page 1 of 2" in first.text and 'href="/evals/cand?page=2#cases"' in first.text
    second = await client.get("/evals/cand", params={"page": 2})
    assert re.findall(r'<tr id="case-(c\d+)"', second.text) == [f"c{i}" for i in range(25, 30)]
    failing = await client.get("/evals/cand", params={"show": "failing"})
    assert re.findall(r'<tr id="case-(c\d+)"', failing.text) == REGRESSED
    assert "exact passed 0%" in failing.text


@pytest.mark.parametrize(
    ("url", "status", "reason"),
    [
        ("/evals/nope", 404, "no run 'nope'"),
        ("/evals/base?show=odd", 400, "show='odd' is not one of"),
        ("/evals/base?page=9", 400, "past the last page"),
        ("/evals/base?page=0", 400, "1 or more"),
        ("/evals?golden=nope", 404, "no golden set 'nope'"),
        ("/evals?limit=0", 400, "between 1 and 1000"),
        ("/evals/compare", 400, "choose two runs"),
        ("/evals/compare?a=base", 400, "choose two runs"),
        ("/evals/compare?a=base&b=base", 400, "two different runs"),
        ("/evals/compare?a=base&b=nope", 404, "no run 'nope'"),
        ("/evals/compare?a=base&b=solo", 400, "same golden set"),
    ],
)
async def test_bad_input_is_a_4xx_page(
    client: httpx.AsyncClient, seeded: tuple[str, str], url: str, status: int, reason: str
) -> None:
    r = await client.get(url)
    assert r.status_code == status, r.text
    assert reason in html.unescape(r.text)
    assert 'class="error"' in r.text


async def test_compare_without_shared_cases_is_a_400(
    client: httpx.AsyncClient, store: Store, seeded: tuple[str, str]
) -> None:
    _, other = seeded
    add_run(store, "solo2", "other", other, {}, at=T0 + timedelta(hours=3))
    r = await client.get("/evals/compare", params={"a": "solo", "b": "solo2"})
    assert r.status_code == 400 and "share no scored cases" in r.text


async def test_compare_page_matches_the_compare_api(
    client: httpx.AsyncClient, seeded: tuple[str, str]
) -> None:
    r = await client.get("/evals/compare", params={"a": "base", "b": "cand"})
    assert r.status_code == 200, r.text
    api = (await client.get("/api/v1/compare", params={"baseline": "base", "candidate": "cand"}))
    cmp = api.json()["scorers"]
    assert cmp["exact"]["verdict"] == "regression"
    assert cmp["sim"]["verdict"] == "no detectable change"
    table = text_of(section(r.text, "comparison"))
    for key, c in cmp.items():
        row = text_of(section(r.text, f"cmp-{key}"))
        assert f"{c['diff']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]" in row
        assert f"{c['p_value']:.3g}" in row and f"{c['p_adjusted']:.3g}" in row
        assert c["verdict"] in row and c["test"] in row
        assert f"{fmt_num(c['baseline_mean'])} → {fmt_num(c['candidate_mean'])}" in row
    assert f"MDE ±{fmt_num(cmp['sim']['mde'])}" in table
    assert "Benjamini–Hochberg" in r.text
    assert re.search(r'id="verdict-exact">\s*<div class="label">exact</div>\s*'
                     r'<div class="value"><span class="badge regression">regression', r.text)
    # The flipped cases side by side: input, expected, A's output, B's output.
    flips = section(r.text, "flips")
    shown = re.findall(r'data-case="(c\d+)"', flips)
    assert shown == sorted(cmp["exact"]["flipped_to_fail"]) == REGRESSED
    row = flips.split('data-case="c01"')[1].split("</tr>")[0]
    assert "What is one plus one?" in row and "two" in row
    assert "base says right for c01 #0" in row and "cand says wrong for c01 #0" in row
    swapped = await client.get("/evals/compare", params={"a": "cand", "b": "base"})
    assert "improvement" in text_of(section(swapped.text, "cmp-exact"))


async def test_one_shared_case_gives_pages_without_infinite_numbers(
    client: httpx.AsyncClient, store: Store, seeded: tuple[str, str]
) -> None:
    _, other = seeded
    add_run(store, "solo2", "other", other, {"x1": [0.0, 1.0, 0.0]}, at=T0 + timedelta(hours=3))
    for url in ("/evals/compare?a=solo&b=solo2", "/evals/solo2", "/evals"):
        r = await client.get(url)
        assert r.status_code == 200, r.text
        for figure in re.findall(r'data-figure="([^"]*)"', r.text):
            json.loads(html.unescape(figure), parse_constant=pytest.fail)
        assert "inf" not in re.sub(r"<[^>]*>", " ", r.text).split()
    compare = html.unescape((await client.get("/evals/compare?a=solo&b=solo2")).text)
    assert "±inf" not in compare
    assert "no change is detectable with 1 case" in compare


async def test_a_resumed_run_is_not_served_from_the_cache(
    client: httpx.AsyncClient, store: Store, seeded: tuple[str, str]
) -> None:
    before = (await client.get("/api/v1/runs/solo/summary")).json()["scorers"]["exact"]
    assert "exact 1 [" in text_of((await client.get("/evals")).text)
    store.set_run_status(PROJECT, "solo", "running", 4)
    failed = Trial(
        run_id="solo",
        case_id="x1",
        trial=3,
        output=Output(text="no", latency_ms=1.0),
        error=None,
        scores={"exact": Score(0.0, passed=False)},
        started_at=T0,
        finished_at=T0,
    )
    store.record_trials(PROJECT, [failed])
    store.set_run_status(PROJECT, "solo", "finished")
    after = (await client.get("/api/v1/runs/solo/summary")).json()["scorers"]["exact"]
    assert after["estimate"]["mean"] == 0.75 != before["estimate"]["mean"]
    assert "exact 0.75 [" in text_of((await client.get("/evals")).text)
    assert "0.75" in text_of(section((await client.get("/evals/solo")).text, "scorers"))


async def test_runs_list_is_empty_with_a_hint(client: httpx.AsyncClient) -> None:
    r = await client.get("/evals")
    assert r.status_code == 200 and "assay eval run" in r.text
