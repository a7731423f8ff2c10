"""The store backends the suite runs on, for the `store` fixture (conftest.py) and for
tests that open a store from settings rather than take the fixture."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

#: DuckDB, ClickHouse in-process (chDB), and a real ClickHouse server when
#: ASSAY_TEST_CLICKHOUSE_URL is set (a fresh database per test).
BACKENDS = ["duckdb", "chdb"] + (
    ["clickhouse"] if os.environ.get("ASSAY_TEST_CLICKHOUSE_URL") else []
)


def store_url(backend: str, tmp_path: Path) -> str:
    """A fresh store location on ``backend``."""
    if backend == "chdb":
        return f"chdb://{tmp_path / 'chdb'}"
    if backend == "clickhouse":
        base = urlsplit(os.environ["ASSAY_TEST_CLICKHOUSE_URL"])
        return urlunsplit(base._replace(path=f"/assay_test_{uuid.uuid4().hex[:12]}"))
    return str(tmp_path / "assay.duckdb")


def close(value: Any) -> Any:
    """``value`` with every float wrapped in pytest.approx (relative 1e-9): engines add
    the same floats in different orders."""
    if isinstance(value, float):
        return pytest.approx(value, rel=1e-9, abs=1e-12)
    if isinstance(value, dict):
        return {k: close(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(close(v) for v in value)
    if hasattr(value, "__dataclass_fields__"):
        return close(vars(value) if not hasattr(value, "__slots__") else {
            f: getattr(value, f) for f in value.__dataclass_fields__})  # fmt: skip
    return value
