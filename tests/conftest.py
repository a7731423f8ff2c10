"""Shared fixtures: a fresh store, the app in-process, OTLP request helpers."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from assay import synthetic
from assay.server import create_app
from assay.settings import Settings
from assay.store import open_store
from assay.store.duckdb import DuckDBStore
from backends import BACKENDS, store_url

pytest_plugins = ["pytester"]

PROTOBUF = {"content-type": "application/x-protobuf"}
JSON_CT = {"content-type": "application/json"}


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "assay.duckdb")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "all_backends: run this module's `store` tests on every store backend"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # tests/store/ and modules marked all_backends run on every backend; the rest on
    # DuckDB, the default, so the whole suite is not paid twice.
    if "store" not in metafunc.fixturenames:
        return
    every = metafunc.definition.get_closest_marker("all_backends") is not None or (
        Path(str(metafunc.definition.path)).parent.name == "store"
    )
    metafunc.parametrize("store", BACKENDS if every else ["duckdb"], indirect=True)


@pytest.fixture
def store(request: pytest.FixtureRequest, db_path: str, tmp_path: Path) -> Iterator[DuckDBStore]:
    """A fresh store on the backend the test is parametrized with (DuckDB by default)."""
    backend: str = getattr(request, "param", "duckdb")
    if backend == "duckdb":
        st: Any = DuckDBStore(db_path)
    else:
        pytest.importorskip("chdb", reason='ClickHouse backend: pip install "assay[clickhouse]"')
        st = open_store(store_url(backend, tmp_path))
    try:
        yield st
    finally:
        if backend == "clickhouse":
            st.cmd(f"DROP DATABASE IF EXISTS `{st.database}`")
        st.close()


@pytest.fixture
def settings(db_path: str) -> Settings:
    # Decode in threads: a worker pool per test app would cost a process spawn each.
    return Settings(db=db_path, decode_workers=0)


@pytest.fixture
async def app(settings: Settings, store: DuckDBStore) -> AsyncIterator[FastAPI]:
    application = create_app(settings, store=store)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:7800"
    ) as c:
        yield c


def make_request_bytes(n_traces: int = 5, seed: int = 0) -> bytes:
    """A protobuf OTLP body of ``n_traces`` synthetic traces (4 spans each)."""
    rng = random.Random(seed)
    spans = []
    for i in range(n_traces):
        spans.extend(synthetic.trace_spans(rng, 1_763_000_000 * 10**9 + i * 10**9, error_rate=0))
    return synthetic.request(spans).SerializeToString()
