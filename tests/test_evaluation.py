"""End to end: golden set → target × K trials → scores → stored run → statistics."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from assay.evaluation import aevaluate, api_client, compare
from assay.goldens import golden_set_from_cases
from assay.model import Case
from assay.query import SpanFilter
from assay.runner import RunError
from assay.settings import Settings
from assay.store import open_store
from backends import BACKENDS, store_url
from scripted_llm import ScriptedLLM

CASES = [Case(id=f"c{i:02d}", input=f"question {i}", expected=f"answer {i}") for i in range(12)]
GOLDEN = golden_set_from_cases("qa", CASES)


@pytest.fixture(params=BACKENDS)
def eval_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings of a fresh store on each backend (runs go through the API to the store)."""
    backend: str = request.param
    if backend != "duckdb":
        need = "chdb" if backend == "chdb" else "clickhouse_connect"
        pytest.importorskip(need, reason='ClickHouse backend: pip install "assay[clickhouse]"')
    db = store_url(backend, tmp_path)
    # Port 9 (discard) never answers: the in-process app on the store is used.
    yield Settings(db=db, url="http://127.0.0.1:9", decode_workers=0)
    if backend == "clickhouse":
        st = open_store(db)
        try:
            st.cmd(f"DROP DATABASE IF EXISTS `{st.database}`")  # type: ignore[attr-defined]
        finally:
            st.close()


class Counting:
    """A target that answers right except for the cases given, and counts calls."""

    def __init__(self, wrong: set[str] = frozenset(), fail: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.wrong = wrong
        self.fail = fail
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, case: Case) -> str:
        with self.lock:
            self.calls[case.id] = self.calls.get(case.id, 0) + 1
        if case.id in self.fail:
            raise RuntimeError("backend down")
        n = case.id[1:].lstrip("0") or "0"
        return "wrong" if case.id in self.wrong else f"answer {n}"


async def test_run_records_trials_scores_and_statistics(eval_settings: Settings) -> None:
    target = Counting(wrong={"c00", "c01", "c02"})
    result = await aevaluate(
        GOLDEN,
        target,
        ["exact", {"contains": {"value": "answer"}}],
        trials=3,
        settings=eval_settings,
    )
    s = result.summary
    assert result.run.status == "finished"
    assert s.trials_done == 36 and s.trials_failed == 0
    assert sum(target.calls.values()) == 36
    exact = s.scorers["exact"].estimate
    assert exact.mean == pytest.approx(9 / 12)
    assert exact.low < exact.mean < exact.high
    assert s.scorers["exact"].agreement.flaky == ()
    assert s.scorers["exact"].pass_at_k[3] == pytest.approx(9 / 12)
    assert s.scorers["contains"].estimate.mean == pytest.approx(9 / 12)
    store = open_store(eval_settings.db)
    try:
        # Each trial is a span in the store: the cost and latency of evaluation are visible.
        assert store.count_spans() >= 36
        assert len(store.completed_trials("default", result.run.run_id)) == 36
    finally:
        store.close()


async def test_failed_trials_are_recorded_and_resume_retries_only_them(
    eval_settings: Settings,
) -> None:
    flaky = Counting(fail={"c03", "c04"})
    first = await aevaluate(GOLDEN, flaky, ["exact"], trials=2, settings=eval_settings)
    assert first.summary.trials_failed == 4
    assert "backend down" in (first.summary.first_failure or "")
    fixed = Counting()
    again = await aevaluate(
        GOLDEN, fixed, ["exact"], trials=2, resume=first.run.run_id, settings=eval_settings
    )
    assert fixed.calls == {"c03": 2, "c04": 2}  # nothing that finished is repeated
    assert again.run.run_id == first.run.run_id
    assert again.summary.trials_done == 24 and again.summary.trials_failed == 0


async def test_cancelled_run_is_interrupted_and_resumes_without_repeats(
    eval_settings: Settings,
) -> None:
    started = asyncio.Event()
    calls: list[str] = []

    async def slow(case: Case) -> str:
        calls.append(case.id)
        if len(calls) >= 6:
            started.set()
            await asyncio.sleep(30)
        return "x"

    task = asyncio.create_task(
        aevaluate(GOLDEN, slow, ["exact"], concurrency=2, settings=eval_settings, name="slow")
    )
    await asyncio.wait_for(started.wait(), 10)
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    store = open_store(eval_settings.db)
    try:
        (run,) = store.list_runs("default")
        assert run.status == "interrupted"
        done = store.completed_trials("default", run.run_id)
    finally:
        store.close()
    assert len(done) == 5  # the five that finished were written before stopping

    resumed_calls: list[str] = []

    async def quick(case: Case) -> str:
        resumed_calls.append(case.id)
        return "x"

    result = await aevaluate(GOLDEN, quick, ["exact"], resume=run.run_id, settings=eval_settings)
    assert sorted(resumed_calls) == sorted(c.id for c in CASES if c.id not in {d for d, _ in done})
    assert result.summary.trials_done == 12 and result.run.status == "finished"


async def test_resume_refuses_a_different_golden_version(eval_settings: Settings) -> None:
    first = await aevaluate(GOLDEN, Counting(), ["exact"], settings=eval_settings)
    changed = golden_set_from_cases("qa", [*CASES, Case(id="new", input="q")])
    with pytest.raises(RunError, match="same version"):
        await aevaluate(
            changed, Counting(), ["exact"], resume=first.run.run_id, settings=eval_settings
        )


async def test_chat_target_against_scripted_model(eval_settings: Settings) -> None:
    with ScriptedLLM(default="answer 1") as llm:
        result = await aevaluate(
            GOLDEN,
            "openai:test-model",
            ["exact"],
            trials=2,
            concurrency=4,
            target_options={"base_url": llm.base_url + "/v1", "system": "Be brief."},
            settings=eval_settings,
        )
        assert len(llm.requests) == 24
        first = llm.requests[0].body
    assert first["messages"][0] == {"role": "system", "content": "Be brief."}
    assert result.summary.scorers["exact"].estimate.mean == pytest.approx(1 / 12)
    assert result.run.target["model"] == "test-model"
    assert "api_key" not in result.run.target
    store = open_store(eval_settings.db)
    try:
        # Every target call is an LLM span of service assay-eval, child of its trial span.
        llm_calls = SpanFilter(project="default", service="assay-eval", kind="llm")
        (calls,) = store.aggregate(llm_calls, None, None)
        assert calls.calls == 24
        (trace,) = {
            s.trace_id
            for s in store.list_spans(SpanFilter(project="default", kind="llm"), 1, None).items
        }
        spans = store.get_trace("default", trace)
    finally:
        store.close()
    assert sorted(s.kind for s in spans) == ["llm", "span"]
    assert {s.name for s in spans if s.kind == "span"} <= {
        f"eval {c.id}#{k}" for c in CASES for k in (0, 1)
    }


def test_compare_two_runs_finds_the_regression(eval_settings: Settings) -> None:
    many = [Case(id=f"k{i:03d}", input=str(i), expected=str(i)) for i in range(60)]
    golden = golden_set_from_cases("many", many)
    from assay.evaluation import evaluate

    good = evaluate(golden, lambda input: input, ["exact"], settings=eval_settings)
    worse = evaluate(
        golden,
        lambda input: "no" if int(input) % 3 == 0 else input,
        ["exact"],
        settings=eval_settings,
    )
    result = compare(good.run.run_id, worse.run.run_id, settings=eval_settings)
    c = result.scorers["exact"]
    assert c.verdict == "regression"
    assert c.test == "mcnemar-exact"
    assert len(c.flipped_to_fail) == 20
    same = compare(good.run.run_id, good.run.run_id, settings=eval_settings)
    assert same.scorers["exact"].verdict == "no detectable change"


async def test_api_client_falls_back_to_the_app_in_process(
    eval_settings: Settings,
) -> None:
    async with api_client(eval_settings) as client:
        assert str(client.base_url).startswith("http://127.0.0.1")
        assert (await client.get("/healthz")).status_code == 200


def test_pairwise_judge_prefers_the_better_run(eval_settings: Settings) -> None:
    import json

    from assay.evaluation import apairwise, evaluate

    many = [Case(id=f"p{i:02d}", input=str(i), expected=str(i)) for i in range(30)]
    golden = golden_set_from_cases("pairs", many)
    base = evaluate(golden, lambda input: "meh", ["exact"], settings=eval_settings)
    cand = evaluate(golden, lambda input: f"great {input}", ["exact"], settings=eval_settings)

    def prefers_great(body: dict[str, object]) -> str:
        prompt = str(body["messages"][-1]["content"])  # type: ignore[index]
        first = prompt.split("<response_A>")[1].split("</response_A>")[0]
        return json.dumps({"reasoning": "r", "winner": "A" if "great" in first else "B"})

    with ScriptedLLM(default=prefers_great) as llm:
        judge = {
            "pairwise_judge": {
                "endpoint": {"base_url": llm.base_url + "/v1", "model": "judge-model"}
            }
        }
        result = asyncio.run(
            apairwise(base.run.run_id, cand.run.run_id, judge, settings=eval_settings)
        )
        assert len(llm.requests) == 60  # every case judged in both orders
    assert (result.candidate_wins, result.baseline_wins, result.inconsistent) == (30, 0, 0)
    assert result.verdict == "candidate preferred" and result.low is not None
    assert result.low > 0.85
    with pytest.raises(RunError, match="cannot compare two outputs"):
        asyncio.run(apairwise(base.run.run_id, cand.run.run_id, "exact", settings=eval_settings))


async def test_in_process_run_lands_where_the_api_would_put_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process, trials and spans skip HTTP, yet land exactly where the API puts them:
    trials in the run's project, spans in the keyless caller's (default) project."""
    import assay.evaluation as ev

    remote_calls: list[str] = []
    record, spans = ev.ApiRecorder.record, ev.ApiRecorder.spans

    async def api_record(self: ev.ApiRecorder, trials: list) -> None:  # type: ignore[type-arg]
        remote_calls.append("record")
        await record(self, trials)

    async def api_spans(self: ev.ApiRecorder, body: bytes) -> None:
        remote_calls.append("spans")
        await spans(self, body)

    monkeypatch.setattr(ev.ApiRecorder, "record", api_record)
    monkeypatch.setattr(ev.ApiRecorder, "spans", api_spans)
    settings = Settings(db=str(tmp_path / "a.duckdb"), url="http://127.0.0.1:9", decode_workers=0)
    api = open_store(settings.db)
    api.create_project("team")
    api.close()
    result = await aevaluate(GOLDEN, Counting(), ["exact"], settings=settings, project="team")
    assert remote_calls == []  # the hot path never went through HTTP
    store = open_store(settings.db)
    try:
        assert result.run.project == "team"
        assert len(store.completed_trials("team", result.run.run_id)) == 12
        assert store.count_spans("default") >= 12 and store.count_spans("team") == 0
    finally:
        store.close()


async def test_in_process_run_with_required_keys_sends_spans_through_the_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import assay.evaluation as ev

    sent: list[int] = []
    spans = ev.ApiRecorder.spans

    async def api_spans(self: ev.ApiRecorder, body: bytes) -> None:
        sent.append(len(body))
        await spans(self, body)

    monkeypatch.setattr(ev.ApiRecorder, "spans", api_spans)
    settings = Settings(
        db=str(tmp_path / "k.duckdb"), url="http://127.0.0.1:9", decode_workers=0,
        keys_required=True, admin_key="admin-secret-0123456789", api_key="admin-secret-0123456789",
    )
    result = await aevaluate(GOLDEN, Counting(), ["exact"], settings=settings)
    assert result.summary.trials_done == 12
    assert sent  # a keyed caller's spans are the OTLP endpoint's to place


def test_gc_freeze_is_undone_after_a_run_and_left_alone_if_the_app_froze() -> None:
    import gc

    from assay.runner import _gc_frozen

    assert gc.get_freeze_count() == 0
    with _gc_frozen():
        assert gc.get_freeze_count() > 0
        with _gc_frozen():
            pass
        assert gc.get_freeze_count() > 0  # an inner run does not thaw the outer one
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        with _gc_frozen():
            pass
        assert gc.get_freeze_count() == before  # the process's own freeze stays
    finally:
        gc.unfreeze()


async def test_in_process_run_stops_with_the_error_if_storing_the_golden_set_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process the golden set is stored while the first calls run; if that fails the run
    stops with the store's error after at most BACKLOG_FACTOR x concurrency calls."""
    import assay.evaluation as ev

    async def broken(self: ev.ApiRecorder, golden: object) -> dict[str, object]:
        await asyncio.sleep(0.05)
        raise ev.ApiError(507, "disk full")

    monkeypatch.setattr(ev.LocalRecorder, "add_golden", broken)
    settings = Settings(db=str(tmp_path / "f.duckdb"), url="http://127.0.0.1:9", decode_workers=0)
    target = Counting()
    with pytest.raises(ev.ApiError, match="disk full"):
        await aevaluate(GOLDEN, target, ["exact"], settings=settings, concurrency=2, trials=3)
    from assay.runner import BACKLOG_FACTOR

    # Nothing can be written before the run exists, so the backlog bound stops the workers.
    assert 0 < sum(target.calls.values()) <= BACKLOG_FACTOR * 2
    store = open_store(settings.db)
    try:
        assert store.list_runs("default", None, 10) == []
    finally:
        store.close()
