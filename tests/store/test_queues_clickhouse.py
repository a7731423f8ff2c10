"""ClickHouse queue tables: the layout other parts read, and row versions that stay in
order when a replica's clock is behind the one that wrote before it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("chdb")

from test_queues_store import MIN, T0, P, items, queue

from assay.store import open_store
from assay.store.clickhouse_leases import Leases, lease_key
from assay.store.clickhouse_queues import ITEM_SCOPE


@pytest.fixture
def ch(tmp_path: Path) -> Iterator[Any]:
    store = open_store(f"chdb://{tmp_path / 'ch'}")
    yield store
    store.close()


def test_layout_keeps_the_duckdb_names(ch: Any) -> None:
    cols = ch.transfer_columns("queue_items")
    assert list(cols)[:4] == ["project", "queue", "item_id", "trace_id"]
    assert {"status", "claimed_by", "feedback_id", "inclusion_probability", "done_at"} <= set(
        cols
    )
    assert list(cols)[-2:] == ["version", "deleted"]
    assert list(ch.transfer_columns("queues"))[-2:] == ["version", "deleted"]
    assert "m007_queues" in ch.applied_migrations()


def test_a_slow_clock_does_not_undo_later_writes(ch: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert ch.create_queue(queue(n=2), items(n=2))
    assert ch.claim_queue_item(P, "q", "ana", T0, T0 + 10 * MIN) is not None
    # This replica's clock is far behind the one that wrote the claim.
    monkeypatch.setattr(ch, "version", lambda: 1)
    assert ch.finish_queue_item(P, "q", 1, "ana", "skipped", T0 + MIN)
    item = ch.get_queue_item(P, "q", 1)
    assert item is not None and item.status == "skipped"
    assert ch.delete_queue(P, "q")
    assert ch.get_queue(P, "q") is None and ch.list_queue_items(P, "q") == []


def test_the_lease_decides_not_the_row(ch: Any) -> None:
    # A claim taken on another replica whose row write has not landed: the item looks
    # free, but nobody else gets it or finishes it.
    assert ch.create_queue(queue(n=2), items(n=2))
    leases = Leases(ch, ITEM_SCOPE)
    assert leases.claim(lease_key(P, "q", "1"), "ana", T0, T0 + 10 * MIN)
    assert ch.get_queue_item(P, "q", 1).claimed_by is None
    got = ch.claim_queue_item(P, "q", "bob", T0, T0 + 10 * MIN)
    assert got is not None and got.item_id == 2
    assert not ch.finish_queue_item(P, "q", 1, "bob", "skipped", T0 + MIN)
    assert ch.finish_queue_item(P, "q", 1, "ana", "skipped", T0 + MIN)
    # Finishing ends the claim: its lease is released.
    assert leases.holder(lease_key(P, "q", "1"), T0 + timedelta(seconds=90)) is None
