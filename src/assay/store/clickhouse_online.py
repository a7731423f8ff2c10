"""ClickHouse tables for the online part of the Store protocol (being built)."""

from __future__ import annotations

from typing import Any

from assay.store.clickhouse import ClickHouseBase

#: (migration name, DDL builder taking a Schema), applied in name order with the rest.
MIGRATIONS: list[tuple[str, Any]] = []


class OnlineTables(ClickHouseBase):
    """The online methods of :class:`assay.store.Store` on ClickHouse."""
