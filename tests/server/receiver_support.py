"""Helpers shared by the receiver, auth and API-error tests (imported, not fixtures)."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pyarrow as pa
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from assay import synthetic
from assay.model import Span
from assay.server import create_app
from assay.settings import Settings
from assay.store.duckdb import DuckDBStore

PROTOBUF = {"content-type": "application/x-protobuf"}
JSON_CT = {"content-type": "application/json"}
T0 = 1_763_000_000 * 10**9
ADMIN = "admin-secret-for-tests"


def trace_spans(seed: int, n_traces: int = 1) -> list[PbSpan]:
    """``n_traces`` synthetic traces (4 spans each) with ids drawn from ``seed``."""
    rng = random.Random(seed)
    spans: list[PbSpan] = []
    for i in range(n_traces):
        spans.extend(synthetic.trace_spans(rng, T0 + i * 10**9, error_rate=0))
    return spans


def body_of(spans: Sequence[PbSpan]) -> bytes:
    return synthetic.request(list(spans)).SerializeToString()


def trace_ids(body: bytes) -> set[str]:
    req = ExportTraceServiceRequest.FromString(body)
    return {
        sp.trace_id.hex() for rs in req.resource_spans for ss in rs.scope_spans for sp in ss.spans
    }


def span_keys(body: bytes) -> set[tuple[str, str]]:
    req = ExportTraceServiceRequest.FromString(body)
    return {
        (sp.trace_id.hex(), sp.span_id.hex())
        for rs in req.resource_spans
        for ss in rs.scope_spans
        for sp in ss.spans
    }


def rpc_status(response: httpx.Response) -> Status:
    """The google.rpc.Status body of an error response, in the response's encoding."""
    ctype = response.headers["content-type"].split(";")[0]
    if ctype == "application/json":
        data = response.json()
        assert isinstance(data, dict)
        return Status(code=int(data.get("code", 0)), message=data.get("message", ""))
    assert ctype == "application/x-protobuf", ctype
    return Status.FromString(response.content)


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


@asynccontextmanager
async def serve(settings: Settings, store: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An app with ``settings`` on ``store``, started, and a client for it."""
    application = create_app(settings, store=store)
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://127.0.0.1:7800"
        ) as client,
    ):
        yield client


async def chunked(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """The body as a stream of ``size``-byte chunks, like a real socket delivers it."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


class SlowStore:
    """A store whose writes take ``delay`` seconds (everything else is the real store)."""

    def __init__(self, inner: DuckDBStore, delay: float) -> None:
        self.inner = inner
        self.delay = delay

    def insert_spans(self, spans: Sequence[Span]) -> int:
        time.sleep(self.delay)
        return self.inner.insert_spans(spans)

    def insert_arrow(self, table: pa.Table) -> int:
        time.sleep(self.delay)
        return self.inner.insert_arrow(table)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class BrokenStore:
    """A store whose writes always fail, as with a full disk."""

    def __init__(self, inner: DuckDBStore) -> None:
        self.inner = inner

    def insert_spans(self, spans: Sequence[Span]) -> int:
        raise OSError("No space left on device")

    def insert_arrow(self, table: pa.Table) -> int:
        raise OSError("No space left on device")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
