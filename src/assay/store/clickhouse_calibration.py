"""ClickHouse tables for the calibration part of the Store protocol (being built)."""

from __future__ import annotations

from typing import Any

from assay.store.clickhouse import ClickHouseBase

#: (migration name, DDL builder taking a Schema), applied in name order with the rest.
MIGRATIONS: list[tuple[str, Any]] = []


class CalibrationTables(ClickHouseBase):
    """The calibration methods of :class:`assay.store.Store` on ClickHouse."""
