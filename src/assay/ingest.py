"""Bounded ingest queue with one writer thread and backpressure.

Request handlers decode spans, then :meth:`Ingestor.submit` and await the commit:
the writer drains several requests into one transaction, commits, and only then
resolves their futures, so an OTLP 200 always means "durable". When more than
``max_pending_spans`` wait, submit refuses at once (the server answers 503 with
Retry-After) instead of letting memory grow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import marshal
import queue
import sys
import threading
import time
from dataclasses import dataclass

import anyio
import pyarrow as pa

from assay import decode_worker
from assay.batch import columns_to_arrow, spans_to_arrow
from assay.otlp import OtlpDecodeError, decode
from assay.pricing import PriceTable
from assay.store import Store

log = logging.getLogger("assay.ingest")


class OverloadedError(RuntimeError):
    """The writer is behind; retry after ``retry_after`` seconds."""

    def __init__(self, pending: int, retry_after: int) -> None:
        super().__init__(f"store is busy ({pending} spans waiting to be written)")
        self.retry_after = retry_after


class WriteFailedError(RuntimeError):
    """The store rejected a batch (disk full, closed …); nothing of it was acknowledged."""


@dataclass
class _Item:
    table: pa.Table
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[int]


@dataclass(frozen=True)
class Decoded:
    """One request decoded: accepted spans as a table, and what was rejected and why."""

    table: pa.Table
    rejected: int
    error_message: str


def _decode_here(body: bytes, json_encoding: bool, project: str, prices: PriceTable) -> Decoded:
    result = decode(body, json_encoding, project, prices)
    return Decoded(spans_to_arrow(result.spans), result.rejected, result.error_message())


class _Worker:
    """One ``python -m assay.decode_worker`` child, used by one request at a time."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def call(
        self, body: bytes, json_encoding: bool, project: str
    ) -> tuple[int, int, str, bytes]:
        stdin, stdout = self.proc.stdin, self.proc.stdout
        assert stdin is not None and stdout is not None
        name = project.encode()
        stdin.write(decode_worker.REQUEST.pack(len(body), int(json_encoding), len(name)) + name)
        stdin.write(body)
        await stdin.drain()
        head = await stdout.readexactly(decode_worker.RESPONSE.size)
        status, rejected, text_len, payload_len = decode_worker.RESPONSE.unpack(head)
        text = (await stdout.readexactly(text_len)).decode("utf-8", "replace")
        payload = await stdout.readexactly(payload_len)
        return status, rejected, text, payload

    def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()


class Decoder:
    """Decodes OTLP bodies into Arrow tables, in worker processes when ``workers`` > 0.

    Decoding and mapping are pure Python and hold the GIL; worker processes
    (:mod:`assay.decode_worker`) let ingest use every core while the server process
    receives requests and runs the writer. Workers start on the first request, so an
    idle server stays small, and a worker that dies is replaced on the next request.
    """

    def __init__(self, prices: PriceTable, prices_path: str | None, workers: int) -> None:
        self.prices = prices
        self._prices_path = prices_path
        self._workers = workers
        self._idle: asyncio.Queue[_Worker] | None = None
        self._missing = 0  # workers to (re)start before the next request waits for one
        self._live: set[_Worker] = set()

    @property
    def worker_pids(self) -> list[int]:
        """PIDs of the running worker processes."""
        return [w.proc.pid for w in self._live]

    async def _start_worker(self) -> _Worker:
        args = [sys.executable, "-m", "assay.decode_worker"]
        if self._prices_path:
            args.append(self._prices_path)
        proc = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        worker = _Worker(proc)
        self._live.add(worker)
        return worker

    async def _checkout(self) -> _Worker:
        if self._idle is None:
            self._idle = asyncio.Queue()
            self._missing = self._workers
        if self._idle.empty() and self._missing > 0:
            self._missing -= 1
            try:
                return await self._start_worker()
            except BaseException:
                self._missing += 1
                raise
        return await self._idle.get()

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        self._live.discard(worker)
        self._missing += 1

    async def decode(self, body: bytes, json_encoding: bool, project: str) -> Decoded:
        """Decode one body; raises :class:`assay.otlp.OtlpDecodeError` when it is not OTLP."""
        if self._workers <= 0:
            return await anyio.to_thread.run_sync(
                _decode_here, body, json_encoding, project, self.prices
            )
        try:
            worker = await self._checkout()
        except OSError as exc:
            raise WriteFailedError(f"cannot start a decode worker: {exc}") from None
        try:
            status, rejected, message, payload = await worker.call(body, json_encoding, project)
        except (OSError, asyncio.IncompleteReadError):
            # The worker died (OOM killer, signal): the next request starts a new one.
            log.error("a decode worker stopped unexpectedly; starting a new one")
            self._discard(worker)
            raise WriteFailedError("a decode worker stopped unexpectedly") from None
        except BaseException:
            # Cancelled mid-exchange: the pipe is out of step, so this worker is done.
            self._discard(worker)
            raise
        assert self._idle is not None
        self._idle.put_nowait(worker)
        if status != decode_worker.OK:
            raise OtlpDecodeError(message)
        table = await anyio.to_thread.run_sync(_columns_table, payload)
        return Decoded(table, rejected, message)

    async def aclose(self) -> None:
        """Stop the worker processes (they exit when their stdin closes)."""
        workers, self._live = list(self._live), set()
        self._idle = None
        for w in workers:
            if w.proc.stdin is not None:
                w.proc.stdin.close()
        for w in workers:
            try:
                await asyncio.wait_for(w.proc.wait(), 5.0)
            except TimeoutError:
                w.kill()
                await w.proc.wait()


def _columns_table(payload: bytes) -> pa.Table:
    return columns_to_arrow(marshal.loads(payload))


@dataclass
class IngestStats:
    """Counters for health checks and benchmarks."""

    pending_spans: int
    written_spans: int
    batches: int
    rejected_requests: int


class Ingestor:
    """One writer thread in front of a :class:`~assay.store.Store`."""

    def __init__(
        self,
        store: Store,
        max_pending_spans: int = 200_000,
        batch_spans: int = 20_000,
        retry_after_seconds: int = 2,
    ) -> None:
        self.store = store
        self.max_pending = max_pending_spans
        self.batch_spans = batch_spans
        self.retry_after = retry_after_seconds
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._pending = 0
        self._lock = threading.Lock()
        self._written = 0
        self._batches = 0
        self._rejected = 0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the writer thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="assay-writer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Write everything already accepted, then stop the writer."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    @property
    def stats(self) -> IngestStats:
        """Current counters."""
        return IngestStats(self._pending, self._written, self._batches, self._rejected)

    async def submit(self, table: pa.Table) -> int:
        """Queue a table of spans (:data:`assay.batch.SCHEMA`) and wait for its commit."""
        n = table.num_rows
        if not n:
            return 0
        with self._lock:
            # One oversized request is still admitted into an empty queue.
            if self._pending and self._pending + n > self.max_pending:
                self._rejected += 1
                raise OverloadedError(self._pending, self.retry_after)
            self._pending += n
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        self._queue.put(_Item(table, loop, fut))
        return await fut

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            items = [first]
            count = first.table.num_rows
            while count < self.batch_spans:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                items.append(nxt)
                count += nxt.table.num_rows
            self._write(items, count)

    def _write(self, items: list[_Item], count: int) -> None:
        table = items[0].table if len(items) == 1 else pa.concat_tables([i.table for i in items])
        started = time.perf_counter()
        try:
            new = self.store.insert_arrow(table)
        except Exception as exc:
            if len(items) > 1:
                # One bad request must not fail the others merged into this transaction:
                # retry each alone so only the culprit gets its 503.
                log.warning(
                    "batch of %d requests failed (%s); retrying one by one", len(items), exc
                )
                for it in items:
                    self._write([it], it.table.num_rows)
                return
            log.exception("writing %d spans failed", count)
            self._finish(items, count, 0, WriteFailedError(f"store write failed: {exc}"))
            return
        log.debug(
            "wrote %d spans (%d new) in %.1f ms", count, new, (time.perf_counter() - started) * 1e3
        )
        self._finish(items, count, new, None)

    def _finish(
        self, items: list[_Item], count: int, new: int, error: BaseException | None
    ) -> None:
        with self._lock:
            self._pending -= count
            if error is None:
                self._written += new
                self._batches += 1
        for it in items:
            it.loop.call_soon_threadsafe(_resolve, it.future, it.table.num_rows, error)


def _resolve(fut: asyncio.Future[int], value: int, error: BaseException | None) -> None:
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(value)
