"""ClickHouse leases: one holder per key, expiry, renew, release, and racing claimants."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

pytest.importorskip("chdb")

from assay.store import open_store
from assay.store.clickhouse_leases import Leases

T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)


@pytest.fixture
def leases(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = open_store(f"chdb://{tmp_path / 'ch'}")
    yield Leases(store, "test")  # type: ignore[arg-type]
    store.close()


def test_one_holder_until_release_or_expiry(leases: Leases) -> None:
    until = T0 + timedelta(minutes=5)
    assert leases.claim("k", "a", T0, until)
    assert not leases.claim("k", "b", T0 + timedelta(minutes=1), until)
    assert leases.holder("k", T0).owner == "a"  # type: ignore[union-attr]
    assert leases.claim("other", "b", T0, until)
    # The holder claiming again keeps the lease with the later expiry.
    assert leases.claim("k", "a", T0, until + timedelta(minutes=5))
    assert leases.holder("k", until + timedelta(minutes=1)).owner == "a"  # type: ignore[union-attr]
    assert not leases.release("k", "b", T0)
    assert leases.release("k", "a", T0)
    assert leases.holder("k", T0) is None
    assert leases.claim("k", "b", T0, until)
    # Expired: anyone may take it; the old owner cannot renew.
    later = until + timedelta(seconds=1)
    assert leases.holder("k", later) is None
    assert not leases.renew("k", "b", later, later + timedelta(minutes=5))
    assert leases.claim("k", "c", later, later + timedelta(minutes=5))
    assert leases.renew("k", "c", later, later + timedelta(minutes=9))
    assert not leases.renew("k", "b", later, later + timedelta(minutes=9))


def test_racing_claimants_agree_on_one_winner(leases: Leases) -> None:
    until = T0 + timedelta(minutes=5)
    for round_ in range(5):
        key = f"race-{round_}"
        won: list[str] = []
        barrier = threading.Barrier(4)

        def claim(owner: str, key: str, won: list[str], barrier: threading.Barrier) -> None:
            barrier.wait()
            if leases.claim(key, owner, T0, until):
                won.append(owner)

        threads = [
            threading.Thread(target=claim, args=(f"w{i}", key, won, barrier)) for i in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        holder = leases.holder(key, T0)
        assert len(won) == 1 and holder is not None and holder.owner == won[0]
