"""``assay demo``: fill a fresh database with a realistic example project.

Everything is made through the code real use goes through: OTLP requests decoded, mapped
and priced like the server's ingest; feedback and queue labels through the feedback and
queue functions; an online judge rule scored by the online worker; golden sets versioned
and a production trace promoted with its provenance; two eval runs by the eval runner with
K trials; monitors run at past times by the monitor runner, their alerts delivered by the
alert sender; a judge calibrator fitted like ``assay calibrate judge --fit``.

Nothing calls a network: the LLM answers, the judge and the webhook receiver are simulated
in-process, seeded, so the same ``seed`` and ``now`` give the same data.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import httpx

from assay.calibration import fit_judge_calibrator
from assay.demo_evals import (
    GOLDEN_DESCRIPTION,
    TARGET_REF,
    StoreRecorder,
    cases_v1,
    cases_v2,
    demo_app_for,
    dropped_cases,
)
from assay.demo_traces import (
    ENVIRONMENT,
    NEW_RELEASE,
    OLD_RELEASE,
    UNPRICED_MODEL,
    DemoTrace,
    generate,
    rollout,
)
from assay.feedback import make_feedback
from assay.goldens import GoldenSet, case_from_dict, case_to_dict, golden_set_from_cases
from assay.model import Case, Feedback, Output, Score, ScorerSpec
from assay.monitors.alerts import AlertSender, RetryPolicy
from assay.monitors.definition import new_monitor
from assay.monitors.runner import run_monitor
from assay.monitors.values import MonitorCheck
from assay.online import new_rule
from assay.online_worker import OnlineWorker
from assay.otlp import decode_request
from assay.pricing import PriceTable, load_prices
from assay.promotion import promote
from assay.query import SpanFilter
from assay.queues import QueueSpec, create_queue, label_item, label_spec, skip_item
from assay.runner import RunOptions, run_eval
from assay.scorers import build as build_scorer
from assay.settings import Settings
from assay.store import Store
from assay.targets import CallableTarget

#: Meta key of the marker the pages read to show a "demo data" banner.
META_KEY = "demo"
GOLDEN = "support"
QUEUE = "chat-helpfulness"
JUDGE = "helpfulness"
LABELS = "human-helpfulness"
LABELLERS = ("alice", "bob")
#: The eval scorer the candidate regresses on, and the one it leaves alone.
REGRESSION_SCORER = "key_fact"
STEADY_SCORER = "cites_source"
MONITORS = ("latency", "cost", "errors", "input-drift")
DRIFT_MONITOR = "input-drift"
#: A closed local port: the demo never posts anywhere real, even after `assay serve`.
WEBHOOK = "http://127.0.0.1:9/assay-demo-webhook"
DEFAULT_TRACES = 4000
DEFAULT_WEEKS = 4

Progress = Callable[[str], None]


class DemoError(RuntimeError):
    """The demo cannot be built here (the database already holds data); says the fix."""


@dataclass(frozen=True)
class DemoSummary:
    """What :func:`build_demo` made: counts, names and ids to open in the pages."""

    project: str
    seed: int
    generated_at: datetime
    traces: int
    spans: int
    first_trace_at: datetime
    rollout_start: datetime
    old_release: str
    new_release: str
    unpriced_model: str
    #: A /chat trace with several turns and a tool call: a conversation to render.
    conversation_trace_id: str
    error_trace_id: str
    feedback: int
    judge: str
    judge_scores: int
    golden: str
    golden_versions: tuple[str, ...]
    promoted_case_id: str
    promoted_trace_id: str
    baseline_run: str
    candidate_run: str
    regression_scorer: str
    steady_scorer: str
    monitors: tuple[str, ...]
    drift_monitor: str
    monitor_results: int
    alerts: int
    queue: str
    queue_items: int
    queue_labelled: int
    queue_open: int
    labels: str
    calibrator_method: str


def _noop(_: str) -> None:
    pass


def check_empty(store: Store) -> None:
    """Raise :class:`DemoError` unless the database holds no data at all."""
    if store.get_meta(META_KEY) is not None:
        raise DemoError("this database already holds the demo; pass a new --db path")
    projects = [p.name for p in store.list_projects()]
    used = [
        p
        for p in projects
        if store.count_spans(p)
        or store.list_golden_versions(p)
        or store.list_runs(p, limit=1)
        or store.list_monitors(p)
        or store.list_queues(p)
        or store.list_feedback(p, limit=1)
    ]
    if used or store.count_spans():
        raise DemoError(
            f"the database already holds data (project(s) {', '.join(used) or '?'}); the demo "
            "only fills a fresh database and never touches existing data. Pass a new path, "
            "e.g. `assay demo --db assay-demo.duckdb`"
        )


def build_demo(
    store: Store,
    settings: Settings,
    *,
    seed: int = 7,
    now: datetime | None = None,
    weeks: int = DEFAULT_WEEKS,
    traces: int = DEFAULT_TRACES,
    progress: Progress | None = None,
) -> DemoSummary:
    """Fill an empty store with the demo project (``settings.default_project``)."""
    if not 2 <= weeks <= 52:
        # Monitors compare a day with the week before it: two weeks give them a history.
        raise DemoError(f"weeks={weeks} must be between 2 and 52")
    if not 200 <= traces <= 200_000:
        raise DemoError(f"traces={traces} must be between 200 and 200000")
    check_empty(store)
    say = progress or _noop
    now = (now or datetime.now(UTC)).astimezone(UTC)
    project = settings.default_project
    prices = load_prices(settings.prices)
    store.create_project(project)
    built = _Build(store, project, prices, seed, now, weeks, traces, say)
    return built.run()


class _Build:
    def __init__(
        self,
        store: Store,
        project: str,
        prices: PriceTable,
        seed: int,
        now: datetime,
        weeks: int,
        traces: int,
        say: Progress,
    ) -> None:
        self.store = store
        self.project = project
        self.prices = prices
        self.seed = seed
        self.now = now
        self.weeks = weeks
        self.n_traces = traces
        self.say = say
        self.traces: list[DemoTrace] = []
        self.by_id: dict[str, DemoTrace] = {}

    def rng(self, *parts: object) -> random.Random:
        """A generator of its own per purpose, so one part's draws never shift another's."""
        return random.Random(":".join(str(p) for p in (self.seed, *parts)))

    def run(self) -> DemoSummary:
        started = datetime.now(UTC)
        spans = self.ingest()
        feedback = self.add_feedback()
        scored = asyncio.run(self.judge(started - timedelta(seconds=1)))
        queue_items, labelled, open_items = self.annotate()
        method = self.calibrate()
        versions, promoted_case, promoted_trace = self.goldens()
        baseline, candidate = asyncio.run(self.evals())
        results, alerts = asyncio.run(self.monitors())
        r0, _ = rollout(self.seed, self.now, self.weeks, self.n_traces)
        marker = {
            "generated_at": started.isoformat(timespec="seconds"),
            "seed": self.seed,
            "now": self.now.isoformat(timespec="seconds"),
            "weeks": self.weeks,
            "traces": self.n_traces,
            "note": "example data made by `assay demo`; not from a real application",
        }
        self.store.set_meta(META_KEY, json.dumps(marker))
        chats = [t for t in self.traces if t.route == "/chat" and not t.error]
        rich = max(chats, key=lambda t: (t.turns, t.tool is not None, t.start))
        return DemoSummary(
            project=self.project,
            seed=self.seed,
            generated_at=started,
            traces=len(self.traces),
            spans=spans,
            first_trace_at=self.traces[0].start,
            rollout_start=r0,
            old_release=OLD_RELEASE,
            new_release=NEW_RELEASE,
            unpriced_model=UNPRICED_MODEL,
            conversation_trace_id=rich.trace_id,
            error_trace_id=next(t.trace_id for t in reversed(self.traces) if t.error),
            feedback=feedback,
            judge=JUDGE,
            judge_scores=scored,
            golden=GOLDEN,
            golden_versions=versions,
            promoted_case_id=promoted_case,
            promoted_trace_id=promoted_trace,
            baseline_run=baseline,
            candidate_run=candidate,
            regression_scorer=REGRESSION_SCORER,
            steady_scorer=STEADY_SCORER,
            monitors=MONITORS,
            drift_monitor=DRIFT_MONITOR,
            monitor_results=results,
            alerts=alerts,
            queue=QUEUE,
            queue_items=queue_items,
            queue_labelled=labelled,
            queue_open=open_items,
            labels=LABELS,
            calibrator_method=method,
        )

    # -- traces --------------------------------------------------------------------------

    def ingest(self) -> int:
        self.say(f"traces: {self.n_traces:,} over {self.weeks} weeks")
        stored = 0
        for request, infos in generate(self.seed, self.now, self.weeks, self.n_traces):
            decoded = decode_request(request, self.project, self.prices)
            if decoded.rejected:  # pragma: no cover - the generator makes valid spans
                raise DemoError(f"demo spans were rejected: {decoded.error_message()}")
            stored += self.store.insert_spans(decoded.spans)
            self.traces.extend(infos)
        self.by_id = {t.trace_id: t for t in self.traces}
        return stored

    def add_feedback(self) -> int:
        self.say("feedback: thumbs from users, resolutions from the app")
        rng = self.rng("feedback")
        items: list[Feedback] = []
        for t in self.traces:
            if t.route == "/summarize":
                continue
            if rng.random() < 0.08:
                up = rng.random() < (0.88 if t.good else 0.22)
                comment = None
                if not up and rng.random() < 0.4:
                    comment = rng.choice(
                        (
                            "Didn't answer my question.",
                            "Way too long, I just wanted the number.",
                            "Wrong, the help center says something else.",
                            "Had to ask a human in the end.",
                        )
                    )
                items.append(
                    make_feedback(
                        self.project,
                        t.trace_id,
                        "thumbs",
                        up,
                        comment=comment,
                        source="user",
                        author=t.user_id,
                        id=f"demo-thumbs-{t.trace_id}",
                        created_at=t.start + timedelta(seconds=rng.uniform(20, 600)),
                    )
                )
            if t.route == "/chat" and rng.random() < 0.15:
                items.append(
                    make_feedback(
                        self.project,
                        t.trace_id,
                        "resolved",
                        t.good and rng.random() < 0.9,
                        source="code",
                        author="support-bot",
                        id=f"demo-resolved-{t.trace_id}",
                        created_at=t.start + timedelta(minutes=rng.uniform(5, 90)),
                    )
                )
        return len(self.store.add_feedback(items))

    # -- online judge ---------------------------------------------------------------------

    async def judge(self, since: datetime) -> int:
        self.say(f"online judge: {JUDGE!r} scores every /chat conversation")
        rule = new_rule(
            self.project,
            JUDGE,
            ScorerSpec(
                "judge",
                {
                    "rubric": "Is the answer helpful, correct and grounded in the documents?",
                    "model": "gpt-4o-mini",
                },
            ),
            filters={"kind": "agent", "route": "/chat"},
            score_name=JUDGE,
            since=since,
            now=self.now,
        )
        self.store.create_online_rule(rule)
        judge = _SimulatedJudge(self.seed, self.by_id)
        worker = OnlineWorker(
            self.store,
            poll_seconds=0.05,
            lease_seconds=120.0,
            scorer_factory=lambda spec: _SpecJudge(spec, judge),
            scan_limit=5000,
            flush_seconds=0.05,
        )
        await worker.tick()
        if not await worker.wait_idle(timeout=120.0):  # pragma: no cover - a stuck worker
            raise DemoError("the online judge did not finish scoring the demo traces")
        await worker.stop()
        # Disabled afterwards: the rule names an LLM judge, which the demo never calls.
        stored = self.store.get_online_rule(self.project, JUDGE)
        assert stored is not None
        self.store.update_online_rule(replace(stored, enabled=False))
        return stored.progress.scored

    # -- annotation queue and calibration -------------------------------------------------

    def annotate(self) -> tuple[int, int, int]:
        self.say(f"annotation queue {QUEUE!r}: a random sample, two labellers")
        created = self.now - timedelta(days=3)
        window = SpanFilter(
            project=self.project,
            kind="agent",
            route="/chat",
            start=self.now - timedelta(days=self.weeks * 7),
            end=created,
        )
        size = max(30, min(240, self.n_traces // 16))
        queue = create_queue(
            self.store,
            QueueSpec(
                name=QUEUE,
                strategy="random",
                size=size,
                label=label_spec(LABELS, boolean=True),
                filters=window,
                seed=self.seed,
                unit="span",
                instructions=(
                    "Pass when the answer is correct, grounded in the documents and solves the "
                    "user's problem; fail otherwise. Shortcuts: p pass, f fail, s skip."
                ),
                created_by="alice",
            ),
            now=created,
        )
        rng = self.rng("labels")
        items = self.store.list_queue_items(self.project, QUEUE, limit=size)
        todo = round(len(items) * 0.7)
        at = created + timedelta(minutes=30)
        labelled = 0
        for item in items[:todo]:
            who = LABELLERS[0] if rng.random() < 0.6 else LABELLERS[1]
            at += timedelta(seconds=rng.uniform(25, 240))
            if rng.random() < 0.03:
                skip_item(self.store, self.project, QUEUE, item.item_id, who, "unclear", now=at)
                continue
            truth = self.by_id[item.trace_id]
            value = truth.good if rng.random() > 0.06 else not truth.good
            comment = None
            if not value and rng.random() < 0.3:
                comment = rng.choice(
                    (
                        "Misses the key fact from the docs.",
                        "Vague; should have answered directly.",
                        "Error instead of an answer.",
                    )
                )
            label_item(self.store, self.project, QUEUE, item.item_id, who, value, comment, now=at)
            labelled += 1
        progress = self.store.queue_progress(self.project, QUEUE, self.now)
        del queue, progress
        return len(items), labelled, len(items) - todo

    def calibrate(self) -> str:
        self.say(f"calibration: judge {JUDGE!r} against {LABELS!r}")
        data = self.store.judge_scores(
            self.project, JUDGE, LABELS, SpanFilter(project=self.project)
        )
        fitted = fit_judge_calibrator(
            data, "isotonic", seed=self.seed, window="all time", now=self.now
        )
        self.store.save_calibrator(fitted)
        return fitted.method

    # -- golden sets and evals ------------------------------------------------------------

    def goldens(self) -> tuple[tuple[str, ...], str, str]:
        self.say(f"golden set {GOLDEN!r}: two versions and a promoted production trace")
        v1 = golden_set_from_cases(
            GOLDEN, [case_from_dict(c) for c in cases_v1()], description=GOLDEN_DESCRIPTION
        )
        self._save(v1, "goldens/support.yaml")
        v2 = golden_set_from_cases(
            GOLDEN, [case_from_dict(c) for c in cases_v2()], description=GOLDEN_DESCRIPTION
        )
        self._save(v2, "goldens/support.yaml")
        # A production failure a reviewer corrected becomes a case, with its provenance.
        pick = [
            t
            for t in self.traces
            if t.route == "/chat" and t.topic == "annual-plan" and not t.good and not t.error
        ]
        failure = pick[-1] if pick else next(t for t in reversed(self.traces) if t.route == "/chat")
        at = min(self.now - timedelta(hours=20), failure.start + timedelta(hours=2))
        review = make_feedback(
            self.project,
            failure.trace_id,
            "correct-answer",
            comment="2 months free",
            source="reviewer",
            author="alice",
            id=f"demo-review-{failure.trace_id}",
            created_at=at,
        )
        self.store.add_feedback([review])
        promoted = promote(
            self.store,
            self.project,
            failure.trace_id,
            GOLDEN,
            case_id="prod-annual-plan-savings",
            author="alice",
            label="correct-answer",
            now=at + timedelta(minutes=5),
        )
        versions = tuple(
            v.version for v in reversed(self.store.list_golden_versions(self.project, GOLDEN))
        )
        return versions, promoted.case.id, failure.trace_id

    def _save(self, golden: GoldenSet, source: str) -> None:
        self.store.save_golden_set(
            self.project,
            golden.name,
            golden.version,
            [case_to_dict(c) for c in golden.cases],
            description=golden.description,
            source=source,
        )

    async def evals(self) -> tuple[str, str]:
        newest = self.store.resolve_golden(self.project, GOLDEN)
        assert newest is not None
        cases = [
            case_from_dict(c) for c in self.store.golden_cases(self.project, GOLDEN, newest.version)
        ]
        ids = []
        for variant, release in (("baseline", OLD_RELEASE), ("candidate", NEW_RELEASE)):
            self.say(f"eval run: {variant} ({release} prompt), {len(cases)} cases x 3 trials")
            app = demo_app_for(self.seed, variant, self.prices, dropped_cases(self.seed, cases))
            target = CallableTarget(app, ref=TARGET_REF)
            scorers = [
                build_scorer({"contains": {"key": REGRESSION_SCORER}}),
                build_scorer(
                    {"regex": {"pattern": r"\[doc-\d+\]", "key": STEADY_SCORER}},
                ),
            ]
            run = await run_eval(
                GOLDEN,
                newest.version,
                cases,
                target,
                scorers,
                StoreRecorder(self.store, self.project, self.prices),
                RunOptions(
                    trials=3,
                    concurrency=4,
                    name=f"{variant}: support bot {release}",
                    metadata={"release": release, "demo": True, "prompt": f"support-{release}"},
                    trace=False,
                ),
                project=self.project,
            )
            await target.aclose()
            ids.append(run.run_id)
        return ids[0], ids[1]

    # -- monitors ----------------------------------------------------------------------------

    async def monitors(self) -> tuple[int, int]:
        checks = {
            "latency": MonitorCheck(features=("latency_ms",), filters={"service": "support-bot"}),
            "cost": MonitorCheck(
                features=("cost", "output_tokens"), filters={"service": "support-bot"}
            ),
            "errors": MonitorCheck(features=("status",), all_kinds=False),
            DRIFT_MONITOR: MonitorCheck(
                features=("input_embedding", "input_length", "output_length"),
                filters={"route": "/chat", "kind": "agent"},
                embedder="hashing",
            ),
        }

        def every_day(check: MonitorCheck) -> MonitorCheck:
            # The current day against the week before it, re-read at each run.
            return replace(
                check, window="1d", reference="8d..1d", max_embeddings=600, seed=self.seed
            )

        begin = self.now - timedelta(days=self.weeks * 7)
        first = begin + timedelta(days=8, hours=1)
        times: list[datetime] = []
        t = first
        while t <= self.now:
            times.append(t)
            t += timedelta(days=1)
        self.say(f"monitors: {len(checks)} drift checks, {len(times)} daily runs each")
        delivered_at = [first]
        receiver = httpx.MockTransport(lambda request: httpx.Response(204))
        sender = AlertSender(
            self.store,
            "assay-demo",
            policy=RetryPolicy(),
            transport=receiver,
            seed=self.seed,
            clock=lambda: delivered_at[0],
        )
        results = alerts = 0
        try:
            for name, check in checks.items():
                check = every_day(check)
                monitor = new_monitor(
                    self.store, self.project, name, check, "1d", [WEBHOOK], now=first
                )
                self.store.create_monitor(monitor)
                for when in times:
                    claimed = self.store.claim_monitor(
                        "assay-demo", when, when + timedelta(minutes=10), self.project, name
                    )
                    assert claimed is not None
                    result, queued, _ = run_monitor(
                        self.store,
                        claimed,
                        "assay-demo",
                        now=when,
                        next_run_at=when + timedelta(days=1),
                        alert_lease_until=when + timedelta(minutes=10),
                    )
                    results += 1
                    if queued:
                        delivered_at[0] = when + timedelta(seconds=2)
                        sender.submit(queued)
                        await sender.wait()
                        alerts += len(queued)
                    del result
        finally:
            await sender.close()
        return results, alerts


# -- the simulated judge ---------------------------------------------------------------------


class _SimulatedJudge:
    """A lenient judge: scores good answers high and gives bad ones too much credit, so its
    raw scores need the calibration the demo fits."""

    def __init__(self, seed: int, truth: dict[str, DemoTrace]) -> None:
        self.seed = seed
        self.truth = truth

    def score(self, trace_id: str) -> Score:
        t = self.truth.get(trace_id)
        rng = random.Random(f"{self.seed}:judge:{trace_id}")
        if t is None or t.error:
            p = rng.uniform(0.02, 0.2)
        elif t.good:
            p = min(0.99, max(0.3, rng.gauss(0.86, 0.09)))
        else:
            p = min(0.95, max(0.05, rng.gauss(0.58, 0.17)))
        p = round(p, 3)
        verdict = "helpful" if p >= 0.5 else "unhelpful"
        return Score(
            value=p,
            passed=p >= 0.5,
            label=verdict,
            explanation=f"(demo judge) The answer looks {verdict}.",
            metadata={"model": "gpt-4o-mini", "simulated": True},
        )


class _SpecJudge:
    """The online rule's scorer: the simulated judge under the rule's spec."""

    def __init__(self, spec: ScorerSpec, judge: _SimulatedJudge) -> None:
        self.spec = spec
        self.judge = judge

    async def score(self, case: Case, output: Output) -> Score:
        return self.judge.score(str(case.metadata.get("trace_id") or output.trace_id))


__all__ = [
    "DEFAULT_TRACES",
    "DEFAULT_WEEKS",
    "ENVIRONMENT",
    "META_KEY",
    "DemoError",
    "DemoSummary",
    "build_demo",
    "check_empty",
]
