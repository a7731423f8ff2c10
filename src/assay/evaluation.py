"""Run evaluations from Python, the CLI or pytest: store the golden set, run it, and
read the results back — through an assay server's API, remote or in-process.

    import assay
    result = assay.evaluate("goldens/support.yaml", target="app:answer",
                            scorers=["exact", {"contains": {"value": "refund"}}], trials=5)
    print(result.summary.scorers["exact"].estimate)

One path for every caller: when a server answers at ``ASSAY_URL`` the run is recorded
there; otherwise the same app runs in-process on the database file (``ASSAY_DB``). In
process, the per-trial hot path (trials, spans) skips the HTTP layer and goes straight to
that app's store and ingest queue (:class:`LocalRecorder`); everything else is the API.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from assay.goldens import GoldenSet, case_to_dict, load_golden_set
from assay.llm import ResponseCache
from assay.model import EvalRun, Output, Score, ScorerSpec, Trial
from assay.pricing import load_prices
from assay.results import (
    PairwiseSummary,
    RunComparison,
    RunSummary,
    compare_runs,
    summarize,
    summarize_pairwise,
)
from assay.runner import ProgressCallback, RunError, RunOptions, closing, run_eval
from assay.scorers import build as build_scorer
from assay.scorers.base import Scorer
from assay.settings import Settings
from assay.targets import Target, build_target

if TYPE_CHECKING:
    from fastapi import FastAPI


class ApiError(RuntimeError):
    """The assay API refused a request; the message is the server's reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def _check(resp: httpx.Response) -> Any:
    if resp.status_code >= 400:
        try:
            detail = resp.json().get("detail", resp.text)
        except ValueError:
            detail = resp.text
        raise ApiError(resp.status_code, detail if isinstance(detail, str) else str(detail))
    return resp.json() if resp.content else None


@asynccontextmanager
async def api_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An async client for the API: the server at ``settings.url`` if one answers, else
    the app in-process on ``settings.db`` (created if missing)."""
    async with _api(settings) as (client, _):
        yield client


@asynccontextmanager
async def _api(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI | None]]:
    """:func:`api_client`, and the app itself when it runs in this process."""
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    limits = httpx.Limits(max_connections=8)
    async with httpx.AsyncClient(
        base_url=settings.url, headers=headers, timeout=60.0, limits=limits
    ) as remote:
        try:
            up = (await remote.get("/healthz", timeout=1.0)).status_code == 200
        except httpx.HTTPError:
            up = False
        if up:
            yield remote, None
            return
    from assay.server import create_app

    # In-process: decode OTLP in threads (a worker pool per run is not worth its start-up).
    # No scheduled background work (monitors, online scoring) inside a one-off run.
    one_off = settings.with_(host="127.0.0.1", decode_workers=0, monitors=False, online=False)
    app = create_app(one_off)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://127.0.0.1",
            headers=headers,
            timeout=60.0,
        ) as local,
    ):
        yield local, app


def _run_from_json(d: Mapping[str, Any]) -> EvalRun:
    return EvalRun(
        project=d["project"],
        run_id=d["run_id"],
        golden=d["golden"],
        golden_version=d["golden_version"],
        target=d["target"],
        scorers=[ScorerSpec(**s) for s in d["scorers"]],
        trials=int(d["trials"]),
        status=d["status"],
        created_at=datetime.fromisoformat(d["created_at"]),
        finished_at=datetime.fromisoformat(d["finished_at"]) if d.get("finished_at") else None,
        name=d.get("name"),
        metadata=d.get("metadata") or {},
    )


def trial_from_json(d: Mapping[str, Any]) -> Trial:
    """A trial from its API form."""
    return Trial(
        run_id=d["run_id"],
        case_id=d["case_id"],
        trial=int(d["trial"]),
        output=Output(**d["output"]) if d.get("output") else None,
        error=d.get("error"),
        scores={k: Score(**v) for k, v in (d.get("scores") or {}).items()},
        score_errors=d.get("score_errors") or {},
        started_at=datetime.fromisoformat(d["started_at"]),
        finished_at=datetime.fromisoformat(d["finished_at"]),
    )


def _trial_json(t: Trial) -> dict[str, Any]:
    return {
        "case_id": t.case_id,
        "trial": t.trial,
        "output": asdict(t.output) if t.output is not None else None,
        "error": t.error,
        "scores": {k: asdict(s) for k, s in t.scores.items()},
        "score_errors": t.score_errors,
        "started_at": t.started_at.isoformat(),
        "finished_at": t.finished_at.isoformat(),
    }


def _slim(t: Trial) -> Trial:
    if t.output is None:
        return t
    out = replace(t.output, text="", data=None)
    # Judges' cost stays: the summary reports what scoring cost.
    scores = {
        k: replace(v, metadata={"cost": v.metadata["cost"]} if "cost" in v.metadata else {})
        for k, v in t.scores.items()
    }
    return replace(t, output=out, scores=scores)


class ApiRecorder:
    """The runner's :class:`~assay.runner.Recorder` over the HTTP API."""

    def __init__(self, client: httpx.AsyncClient, project: str | None = None) -> None:
        self.client = client
        self.params = {"project": project} if project else {}
        #: Trials recorded through this recorder, outputs dropped (scores, cost, latency).
        self.kept: list[Trial] = []

    async def start_run(self, run: EvalRun) -> EvalRun:
        """Create the run on the server."""
        body = {
            "run_id": run.run_id,
            "name": run.name,
            "golden": run.golden,
            "golden_version": run.golden_version,
            "target": run.target,
            "scorers": [asdict(s) for s in run.scorers],
            "trials": run.trials,
            "created_at": run.created_at.isoformat(),
            "metadata": run.metadata,
        }
        data = _check(await self.client.post("/api/v1/runs", json=body, params=self.params))
        return _run_from_json(data)

    async def get_run(self, run_id: str) -> EvalRun | None:
        """An existing run, or None."""
        resp = await self.client.get(f"/api/v1/runs/{run_id}", params=self.params)
        if resp.status_code == 404:
            return None
        return _run_from_json(_check(resp))

    async def completed(self, run_id: str) -> set[tuple[str, int]]:
        """Trials recorded without a target error."""
        data = _check(await self.client.get(f"/api/v1/runs/{run_id}/completed", params=self.params))
        return {(c, int(k)) for c, k in data["items"]}

    async def record(self, trials: Sequence[Trial]) -> None:
        """Store finished trials (and keep their scores, without outputs, to summarize)."""
        body = {"trials": [_trial_json(t) for t in trials]}
        self.kept.extend(_slim(t) for t in trials)
        run_id = trials[0].run_id
        _check(
            await self.client.post(f"/api/v1/runs/{run_id}/trials", json=body, params=self.params)
        )

    async def spans(self, otlp_protobuf: bytes) -> None:
        """Send the run's own spans to the OTLP endpoint."""
        _check(
            await self.client.post(
                "/v1/traces",
                content=otlp_protobuf,
                headers={"Content-Type": "application/x-protobuf"},
            )
        )

    async def finish(self, run_id: str, status: str, trials: int | None = None) -> None:
        """Mark the run's final status (and its trial count, when a resume raised it)."""
        body: dict[str, Any] = {"status": status}
        if trials is not None:
            body["trials"] = trials
        _check(
            await self.client.post(f"/api/v1/runs/{run_id}/status", json=body, params=self.params)
        )

    # -- reading --------------------------------------------------------------------------

    async def add_golden(self, golden: GoldenSet) -> dict[str, Any]:
        """Store a golden-set version (idempotent)."""
        body = {
            "name": golden.name,
            "description": golden.description,
            "source": golden.source,
            "cases": [case_to_dict(c) for c in golden.cases],
        }
        data: dict[str, Any] = _check(
            await self.client.post("/api/v1/goldens", json=body, params=self.params)
        )
        return data

    async def trials(self, run_id: str) -> list[Trial]:
        """Every trial of a run."""
        data = _check(await self.client.get(f"/api/v1/runs/{run_id}/trials", params=self.params))
        return [trial_from_json(t) for t in data["items"]]

    async def summary(self, run_id: str) -> RunSummary:
        """A run's summary, computed here from its trials (typed values, not JSON)."""
        run = await self.get_run(run_id)
        if run is None:
            raise RunError(f"no run {run_id!r}; `assay eval list` shows runs")
        golden = _check(
            await self.client.get(
                f"/api/v1/goldens/{run.golden}",
                params={**self.params, "version": run.golden_version},
            )
        )
        return summarize(run, await self.trials(run.run_id), int(golden["case_count"]))


class LocalRecorder(ApiRecorder):
    """:class:`ApiRecorder` for the app running in this process: trials and spans, the
    hot path, go straight to its store and ingest queue; everything else is the API.

    A run's trials and spans cross no HTTP or JSON layer here, which is most of what
    recording cost per trial in-process. They land where the API would put them: trials
    in the run's project, spans through the same decoder and durable ingest queue."""

    def __init__(self, client: httpx.AsyncClient, app: FastAPI, project: str | None = None):
        super().__init__(client, project)
        self.app = app
        self._projects: dict[str, str] = {}

    async def start_run(self, run: EvalRun) -> EvalRun:
        """Create the run through the API (which resolves its project)."""
        created = await super().start_run(run)
        self._projects[created.run_id] = created.project
        return created

    async def get_run(self, run_id: str) -> EvalRun | None:
        """An existing run, or None."""
        run = await super().get_run(run_id)
        if run is not None:
            self._projects[run.run_id] = run.project
        return run

    async def record(self, trials: Sequence[Trial]) -> None:
        """Store finished trials in the run's project, in a thread."""
        project = self._projects.get(trials[0].run_id)
        if project is None:  # not a run this recorder created or read: let the API check
            await super().record(trials)
            return
        self.kept.extend(_slim(t) for t in trials)
        await asyncio.to_thread(self.app.state.store.record_trials, project, list(trials))

    async def spans(self, otlp_protobuf: bytes) -> None:
        """Decode and queue the run's spans, returning once they are committed."""
        # Spans go where the OTLP endpoint would put them: a keyless caller's project.
        # With a key the endpoint's own checks decide.
        keyless = not self.client.headers.get("authorization")
        project = self.app.state.auth.anonymous_project() if keyless else None
        if project is None:
            await super().spans(otlp_protobuf)
            return
        decoded = await self.app.state.decoder.decode(otlp_protobuf, False, project)
        await self.app.state.ingestor.submit(decoded.table)


@dataclass(frozen=True, slots=True)
class EvalResult:
    """A finished (or interrupted) run and its summary."""

    run: EvalRun
    summary: RunSummary
    golden: GoldenSet


ScorerConfig = ScorerSpec | str | Mapping[str, Any] | Scorer


def build_scorers(configs: Sequence[ScorerConfig]) -> list[Scorer]:
    """Scorers from specs, names, config mappings or ready scorer objects."""
    out: list[Scorer] = []
    for c in configs:
        if hasattr(c, "score") and hasattr(c, "spec"):
            out.append(c)  # type: ignore[arg-type]
        else:
            out.append(build_scorer(c))  # type: ignore[arg-type]
    if not out:
        raise RunError("no scorers: give at least one, e.g. scorers=['exact']")
    return out


async def aevaluate(
    golden: str | os.PathLike[str] | GoldenSet,
    target: str | Callable[..., Any] | Target,
    scorers: Sequence[ScorerConfig],
    *,
    trials: int = 1,
    concurrency: int = 10,
    timeout_s: float = 120.0,
    name: str | None = None,
    resume: str | None = None,
    target_options: Mapping[str, Any] | None = None,
    cache: str | os.PathLike[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
    progress: ProgressCallback | None = None,
    project: str | None = None,
) -> EvalResult:
    """Async :func:`evaluate`."""
    settings = settings or Settings.from_env()
    golden_set = golden if isinstance(golden, GoldenSet) else load_golden_set(Path(golden))
    options = RunOptions(
        trials=trials,
        concurrency=concurrency,
        timeout_s=timeout_s,
        name=name,
        metadata=dict(metadata or {}),
        resume=resume,
    )
    response_cache = ResponseCache(Path(cache)) if cache else None
    built_scorers = build_scorers(scorers)
    built_target = build_target(
        target,
        target_options,
        cache=response_cache,
        prices=load_prices(settings.prices),
        concurrency=concurrency,
    )
    try:
        async with _api(settings) as (client, app), closing(built_target, built_scorers):
            # In-process the golden set and the run are stored while the first calls are
            # in flight; a remote server is asked first (it may refuse a key or be down).
            prelude: asyncio.Future[Any] | None = None
            if app is None:
                recorder: ApiRecorder = ApiRecorder(client, project)
                await recorder.add_golden(golden_set)
            else:
                recorder = LocalRecorder(client, app, project)
                prelude = asyncio.ensure_future(recorder.add_golden(golden_set))
            try:
                run = await run_eval(
                    golden_set.name,
                    golden_set.version,
                    golden_set.cases,
                    built_target,
                    built_scorers,
                    recorder,
                    options,
                    progress,
                    project=project or settings.default_project,
                    prelude=prelude,
                )
            finally:
                if prelude is not None and not prelude.done():
                    prelude.cancel()
                if prelude is not None:
                    await asyncio.gather(prelude, return_exceptions=True)
            # The stored run has the finish time; the runner's copy has the trial count
            # (raised by a resume with more --trials).
            stored = await recorder.get_run(run.run_id)
            if stored is not None:
                run = replace(stored, trials=run.trials)
            # After a resume earlier sessions' trials are on the server only.
            recorded = await recorder.trials(run.run_id) if resume else recorder.kept
            summary = summarize(run, recorded, len(golden_set.cases))
    finally:
        if response_cache is not None:
            response_cache.close()
    return EvalResult(summary.run, summary, golden_set)


def evaluate(
    golden: str | os.PathLike[str] | GoldenSet,
    target: str | Callable[..., Any] | Target,
    scorers: Sequence[ScorerConfig],
    **kwargs: Any,
) -> EvalResult:
    """Run a golden set against a target K times with the given scorers, record every
    trial in assay, and return the run with its statistics.

    ``target`` is a target string (``openai:gpt-4o-mini``, ``module:function``, an
    http(s) URL), a Python callable, or a :class:`~assay.targets.Target`. ``scorers``
    are names (``"exact"``), config mappings (``{"contains": {"value": "refund"}}``) or
    scorer objects. Keyword arguments as in :func:`aevaluate` (``trials``,
    ``concurrency``, ``timeout_s``, ``resume``, ``cache``, ``settings`` …).
    """
    return asyncio.run(aevaluate(golden, target, scorers, **kwargs))


async def acompare(
    baseline: str,
    candidate: str,
    *,
    settings: Settings | None = None,
    level: float = 0.95,
    power: float = 0.8,
    lower_is_better: Sequence[str] = (),
    project: str | None = None,
) -> RunComparison:
    """Compare two recorded runs (paired, per scorer, BH across scorers)."""
    settings = settings or Settings.from_env()
    async with api_client(settings) as client:
        recorder = ApiRecorder(client, project)
        runs = []
        scores = []
        for run_id in (baseline, candidate):
            run = await recorder.get_run(run_id)
            if run is None:
                raise RunError(f"no run {run_id!r}; `assay eval list` shows runs")
            per: dict[str, dict[str, list[float]]] = {}
            for t in await recorder.trials(run.run_id):
                for key, s in t.scores.items():
                    per.setdefault(key, {}).setdefault(t.case_id, []).append(s.value)
            runs.append(run)
            scores.append(per)
    return compare_runs(
        runs[0],
        runs[1],
        scores[0],
        scores[1],
        level=level,
        power=power,
        lower_is_better=lower_is_better,
    )


def compare(baseline: str, candidate: str, **kwargs: Any) -> RunComparison:
    """Compare two recorded runs; see :func:`acompare`."""
    return asyncio.run(acompare(baseline, candidate, **kwargs))


async def apairwise(
    baseline: str,
    candidate: str,
    judge: ScorerConfig,
    *,
    settings: Settings | None = None,
    concurrency: int = 10,
    level: float = 0.95,
    project: str | None = None,
) -> PairwiseSummary:
    """Judge two recorded runs' outputs against each other, case by case, with a
    pairwise judge that asks in both orders (``{"pairwise_judge": {...}}``)."""
    from assay.goldens import case_from_dict

    settings = settings or Settings.from_env()
    built = build_scorers([judge])[0]
    compare_fn = getattr(built, "compare", None)
    if not callable(compare_fn):
        raise RunError(
            f"scorer {built.spec.name!r} cannot compare two outputs; use a pairwise judge, "
            'e.g. \'{"pairwise_judge": {"rubric": "..."}}\''
        )
    async with api_client(settings) as client:
        recorder = ApiRecorder(client, project)
        runs = []
        outputs: list[dict[str, Output]] = []
        for run_id in (baseline, candidate):
            run = await recorder.get_run(run_id)
            if run is None:
                raise RunError(f"no run {run_id!r}; `assay eval list` shows runs")
            firsts: dict[str, Output] = {}
            for t in sorted(await recorder.trials(run.run_id), key=lambda t: t.trial):
                if t.output is not None:
                    firsts.setdefault(t.case_id, t.output)
            runs.append(run)
            outputs.append(firsts)
        golden = _check(
            await client.get(
                f"/api/v1/goldens/{runs[1].golden}",
                params={**recorder.params, "version": runs[1].golden_version},
            )
        )
    cases = {c["id"]: case_from_dict(c) for c in golden["cases"]}
    shared = sorted(set(outputs[0]) & set(outputs[1]) & set(cases))
    if not shared:
        raise RunError(f"runs {baseline} and {candidate} share no case with an output")
    slots = asyncio.Semaphore(concurrency)
    names = {"a": "baseline", "b": "candidate", "tie": "tie", "inconsistent": "inconsistent"}

    async def one(case_id: str) -> tuple[str, str, float]:
        async with slots:
            try:
                r = await compare_fn(cases[case_id], outputs[0][case_id], outputs[1][case_id])
            except Exception:
                return case_id, "error", 0.0
        return case_id, names.get(r.winner, "tie"), float(r.cost or 0.0)

    try:
        results = await asyncio.gather(*(one(c) for c in shared))
    finally:
        close = getattr(built, "aclose", None)
        if callable(close):
            await close()
    return summarize_pairwise(
        runs[0].run_id,
        runs[1].run_id,
        built.spec.label,
        {c: w for c, w, _ in results},
        cost=sum(cost for _, _, cost in results),
        level=level,
    )
