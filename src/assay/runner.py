"""The eval runner: every case of a golden set K times against a target, scored as each
trial finishes, written as it finishes, resumable, with its own calls traced.

Concurrency is a fixed pool of worker tasks pulling (case, trial) pairs from a generator,
so memory does not grow with the number of cases. Finished trials go to one writer task
that records whatever has accumulated in one request: at low load each trial is written
at once, under load writes batch up by themselves. The run's own spans are sent by a
separate task, so a trial's write never waits behind them. A worker starts a call only
while fewer than ``BACKLOG_FACTOR`` × concurrency trials are started and not yet
written: a store slower than the target slows the run down instead of piling up results.
A run interrupted by Ctrl-C is flushed and marked ``interrupted``; after a crash or
``kill`` the trials lost are those finished but not yet written (usually the write in
flight, never more than ``BACKLOG_FACTOR`` × concurrency), and ``--resume`` repeats only
what was not recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.trace import Status, StatusCode

from assay import __version__
from assay.model import Case, EvalRun, Output, Score, Trial
from assay.scorers.base import Scorer
from assay.targets import Target

#: Trials started but not yet written are at most this many times the concurrency.
BACKLOG_FACTOR = 2


class RunError(RuntimeError):
    """A run cannot start or resume (unknown run, different golden set …); says why."""


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How to run: trials per case, calls in flight, per-trial timeout, and labels."""

    trials: int = 1
    concurrency: int = 10
    timeout_s: float = 120.0
    name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    #: Resume this run id instead of starting a new run.
    resume: str | None = None
    #: Trace the target and judge calls into the store (GenAI spans).
    trace: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.trials, int) and 1 <= self.trials <= 1000):
            raise RunError(f"trials={self.trials!r} must be a whole number from 1 to 1000")
        if not (isinstance(self.concurrency, int) and 1 <= self.concurrency <= 10_000):
            raise RunError(f"concurrency={self.concurrency!r} must be from 1 to 10000")
        if not self.timeout_s > 0:
            raise RunError(f"timeout_s={self.timeout_s!r} must be > 0 seconds")


class Recorder(Protocol):
    """Where a run's results go (the API of an assay server, remote or in-process)."""

    async def start_run(self, run: EvalRun) -> EvalRun:
        """Create the run."""
        ...

    async def get_run(self, run_id: str) -> EvalRun | None:
        """An existing run, to resume it."""
        ...

    async def completed(self, run_id: str) -> set[tuple[str, int]]:
        """Trials already recorded without a target error."""
        ...

    async def record(self, trials: Sequence[Trial]) -> None:
        """Durably store finished trials."""
        ...

    async def spans(self, otlp_protobuf: bytes) -> None:
        """Store the spans of the run's own calls (an OTLP protobuf request body)."""
        ...

    async def finish(self, run_id: str, status: str, trials: int | None = None) -> None:
        """Mark the run finished, interrupted or failed."""
        ...


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a run stands, passed to the progress callback after each trial."""

    done: int
    total: int
    failed: int
    cost: float
    elapsed_s: float


ProgressCallback = Callable[[Progress], None]


class _Collector(SpanProcessor):
    """Keeps finished spans until the writer sends them."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)

    def drain(self) -> list[ReadableSpan]:
        out, self.spans = self.spans, []
        return out


_freezes = 0


@contextlib.contextmanager
def _gc_frozen() -> Iterator[None]:
    """Keep objects that exist before a run out of the cyclic GC's passes during it.

    A process that has imported an app holds ~10^5 tracked objects, and every full
    collection the run's allocations trigger walks all of them on the event loop (about a
    tenth of the runner's overhead at concurrency 100). Nothing is kept alive by this;
    frozen objects return to the collector when the last run ends. A process that
    froze objects itself is left alone.
    """
    global _freezes
    if _freezes == 0 and gc.get_freeze_count():
        yield
        return
    if _freezes == 0:
        gc.freeze()
    _freezes += 1
    try:
        yield
    finally:
        _freezes -= 1
        if _freezes == 0:
            gc.unfreeze()


def new_run_id() -> str:
    """A run id that sorts by creation time: ``YYYYMMDD-HHMMSS-xxxx``."""
    now = datetime.now(UTC)
    return f"{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"


def _order(cases: Sequence[Case], trials: int, done: set[tuple[str, int]]) -> Iterator[Any]:
    # Trial-major: after the first pass every case has a result, so a run stopped early
    # still covers the whole golden set.
    for k in range(trials):
        for case in cases:
            if (case.id, k) not in done:
                yield case, k


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _score(scorer: Scorer, case: Case, output: Output) -> Score:
    return await scorer.score(case, output)


class _Run:
    def __init__(
        self,
        run: EvalRun,
        cases: Sequence[Case],
        target: Target,
        scorers: Sequence[Scorer],
        recorder: Recorder,
        options: RunOptions,
        todo: int,
        progress: ProgressCallback | None,
    ) -> None:
        self.run = run
        self.cases = cases
        self.target = target
        self.scorers = scorers
        self.recorder = recorder
        self.options = options
        self.progress = progress
        self.queue: asyncio.Queue[Trial | None] = asyncio.Queue()
        # A trial holds a slot from the start of its call until it is written, so a store
        # slower than the target cannot pile up finished trials that a crash would lose.
        self.unwritten = asyncio.Semaphore(BACKLOG_FACTOR * options.concurrency)
        self.spans_wanted = asyncio.Event()
        self.spans_done = False
        self.collector = _Collector()
        self.provider = TracerProvider(
            resource=Resource.create(
                {
                    "service.name": "assay-eval",
                    "service.version": __version__,
                    "assay.eval.run_id": run.run_id,
                    "assay.eval.golden": run.golden,
                }
            )
        )
        self.provider.add_span_processor(self.collector)
        self.tracer = self.provider.get_tracer("assay.runner", __version__)
        for obj in (target, *scorers):
            use = getattr(obj, "use_tracer_provider", None)
            if options.trace and callable(use):
                use(self.provider)
        self.state = Progress(0, todo, 0, 0.0, 0.0)
        #: The run's creation, when it overlaps the first calls: nothing is written before.
        self.created: asyncio.Future[EvalRun] | None = None
        self.t0 = time.monotonic()

    async def trial(self, case: Case, k: int) -> Trial:
        started = datetime.now(UTC)
        attrs: dict[str, str | int] = {
            "assay.eval.run_id": self.run.run_id,
            "assay.eval.case_id": case.id,
            "assay.eval.trial": k,
        }
        with self.tracer.start_as_current_span(f"eval {case.id}#{k}", attributes=attrs) as span:
            output: Output | None = None
            error: str | None = None
            try:
                async with asyncio.timeout(self.options.timeout_s):
                    output = await self.target.run(case)
            except TimeoutError:
                error = f"no answer within timeout_s={self.options.timeout_s:g}"
            except Exception as exc:
                error = _error_text(exc)
            scores: dict[str, Score] = {}
            failures: dict[str, str] = {}
            if output is not None:
                trace_id = f"{span.get_span_context().trace_id:032x}"
                output = replace(output, trace_id=output.trace_id or trace_id)
                results = await asyncio.gather(
                    *(_score(s, case, output) for s in self.scorers), return_exceptions=True
                )
                for s, r in zip(self.scorers, results, strict=True):
                    if isinstance(r, Exception):
                        failures[s.spec.label] = _error_text(r)
                    elif isinstance(r, BaseException):
                        raise r
                    else:
                        scores[s.spec.label] = r
            else:
                span.set_status(Status(StatusCode.ERROR, error))
        return Trial(
            run_id=self.run.run_id,
            case_id=case.id,
            trial=k,
            output=output,
            error=error,
            scores=scores,
            score_errors=failures,
            started_at=started,
            finished_at=datetime.now(UTC),
        )

    async def worker(self, work: Iterator[Any]) -> None:
        for case, k in work:
            await self.unwritten.acquire()
            try:
                trial = await self.trial(case, k)
            except BaseException:
                self.unwritten.release()
                raise
            await self.queue.put(trial)
            cost = (trial.output.cost or 0.0) if trial.output else 0.0
            self.state = Progress(
                self.state.done + 1,
                self.state.total,
                self.state.failed + (trial.error is not None),
                self.state.cost + cost,
                time.monotonic() - self.t0,
            )
            if self.progress is not None:
                self.progress(self.state)

    async def writer(self) -> None:
        if self.created is not None:
            await self.created
        # Spans go out from their own task: a trial's write never waits behind them.
        spans = asyncio.create_task(self.span_sender())
        try:
            while True:
                item = await self.queue.get()
                batch: list[Trial] = []
                stop = item is None
                if item is not None:
                    batch.append(item)
                while not self.queue.empty():
                    more = self.queue.get_nowait()
                    if more is None:
                        stop = True
                    else:
                        batch.append(more)
                if batch:
                    await self.recorder.record(batch)
                    for _ in batch:
                        self.unwritten.release()
                    self.spans_wanted.set()
                if stop:
                    break
        except BaseException:
            spans.cancel()
            await asyncio.gather(spans, return_exceptions=True)
            raise
        self.spans_done = True
        self.spans_wanted.set()
        await spans

    async def span_sender(self) -> None:
        while True:
            await self.spans_wanted.wait()
            self.spans_wanted.clear()
            # Read before sending: spans that end during the send get one more round.
            last = self.spans_done
            await self.flush_spans()
            if last:
                return

    async def flush_spans(self) -> None:
        spans = self.collector.drain()
        if spans and self.options.trace:
            from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

            await self.recorder.spans(encode_spans(spans).SerializeToString())


async def run_eval(
    golden: str,
    golden_version: str,
    cases: Sequence[Case],
    target: Target,
    scorers: Sequence[Scorer],
    recorder: Recorder,
    options: RunOptions | None = None,
    progress: ProgressCallback | None = None,
    project: str = "default",
    prelude: Awaitable[object] | None = None,
) -> EvalRun:
    """Run (or resume) an evaluation and return the run as recorded.

    Every trial is recorded as it finishes. On cancellation (Ctrl-C) the trials that
    finished are recorded, the run is marked ``interrupted`` and the cancellation goes on.

    With ``prelude`` (setup the run's creation depends on, such as storing the golden
    set) a new run is created while the first calls are in flight instead of before
    them: nothing is written until it exists, and if creating it fails the run stops with
    that error, having spent at most ``BACKLOG_FACTOR`` × concurrency calls. Only for a
    recorder that cannot refuse for reasons a first call would reveal (the in-process
    app, not a remote server that may reject a key).
    """
    options = options or RunOptions()
    if not cases:
        raise RunError(f"golden set {golden!r} has no cases")
    ids = [c.id for c in cases]
    if len(set(ids)) != len(ids):
        raise RunError(f"golden set {golden!r} has duplicate case ids")
    specs = [s.spec for s in scorers]
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise RunError(
            f"two scorers report under the same name ({labels}); give one a 'key' to tell "
            "them apart"
        )
    if options.resume:
        existing = await recorder.get_run(options.resume)
        if existing is None:
            raise RunError(f"no run {options.resume!r} to resume; `assay eval list` shows runs")
        if existing.golden_version != golden_version:
            raise RunError(
                f"run {existing.run_id} evaluated golden set {existing.golden} version "
                f"{existing.golden_version[:12]}, not {golden_version[:12]}; resume with the "
                "same version (assay goldens show) or start a new run"
            )
        if [s.label for s in existing.scorers] != labels:
            raise RunError(
                f"run {existing.run_id} was scored by {[s.label for s in existing.scorers]}, "
                f"not {labels}; resume with the same scorers or start a new run"
            )
        run = existing
        trials = max(run.trials, options.trials)
        done = await recorder.completed(run.run_id)
    else:
        run = EvalRun(
            project=project,
            run_id=new_run_id(),
            name=options.name,
            golden=golden,
            golden_version=golden_version,
            target=target.describe(),
            scorers=list(specs),
            trials=options.trials,
            status="running",
            created_at=datetime.now(UTC),
            metadata=dict(options.metadata),
        )
        trials = run.trials
        done = set()
        if prelude is None:
            run = await recorder.start_run(run)
    if prelude is not None and options.resume:
        await prelude
    todo = sum(1 for _ in _order(cases, trials, done))
    state = _Run(run, cases, target, scorers, recorder, options, todo, progress)
    if prelude is not None and not options.resume:

        async def create(new: EvalRun, before: Awaitable[object]) -> EvalRun:
            await before
            return await recorder.start_run(new)

        state.created = asyncio.ensure_future(create(run, prelude))
    work = _order(cases, trials, done)
    writer = asyncio.create_task(state.writer())
    workers = [
        asyncio.create_task(state.worker(work)) for _ in range(min(options.concurrency, todo))
    ]
    all_workers = asyncio.gather(*workers)
    status = "failed"
    frozen = contextlib.ExitStack()
    frozen.enter_context(_gc_frozen())
    try:
        await asyncio.wait(
            [cast("asyncio.Future[Any]", all_workers), writer], return_when=asyncio.FIRST_COMPLETED
        )
        if writer.done():
            # The writer only ends early when recording failed: stop, nothing more can be kept.
            writer.result()
        all_workers.result()
        status = "finished"
        if state.created is not None:
            run = await state.created
    except asyncio.CancelledError:
        status = "interrupted"
        raise
    finally:
        all_workers.cancel()
        await asyncio.gather(all_workers, return_exceptions=True)
        if not writer.done():
            await state.queue.put(None)
            # What finished must be written even while we are being cancelled.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(writer)
        if state.created is not None and not state.created.done():
            state.created.cancel()
            await asyncio.gather(state.created, return_exceptions=True)
        with contextlib.suppress(Exception):
            await recorder.finish(run.run_id, status, trials)
        state.provider.shutdown()
        frozen.close()
    if run.trials != trials:
        run = replace(run, trials=trials)
    return replace(run, status=status)


@contextlib.asynccontextmanager
async def closing(target: Target, scorers: Sequence[Scorer]) -> AsyncIterator[None]:
    """Close a target and any scorers that hold connections when the block ends."""
    try:
        yield
    finally:
        await target.aclose()
        for s in scorers:
            close = getattr(s, "aclose", None)
            if callable(close):
                with contextlib.suppress(Exception):
                    await close()


def options_from(mapping: Mapping[str, Any]) -> RunOptions:
    """RunOptions from a mapping of its field names (unknown names are an error)."""
    known = set(RunOptions.__dataclass_fields__)
    unknown = set(mapping) - known
    if unknown:
        raise RunError(f"unknown run option(s) {sorted(unknown)}; known: {sorted(known)}")
    return RunOptions(**mapping)
