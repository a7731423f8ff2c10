"""Leases on ClickHouse: how several assay replicas agree on who runs a monitor, scores
an online rule or labels a queue item, with nothing but inserts and reads.

ClickHouse has no conditional UPDATE, so a lease is a log of events in one table: a
*claim* (a new claim id, its owner and expiry), *renew* (a later expiry for a claim) and
*release*. The server stamps each claim with ``now64(9)`` when it executes the insert.
A claim is *live* while it is not released and its latest expiry is in the future; the
holder of a key is the live claim with the earliest stamp. To claim, a replica reads the
holder; if there is none it inserts its claim, waits ``settle`` seconds, and reads again:
it holds the lease only if its own claim is now the earliest live one, and otherwise
releases it at once. Two replicas that race both see both claims and agree on the
earlier one. A replica that dies between inserting and reading back leaves a claim that
blocks the key until it expires: the price of never letting two replicas hold one key.

On a replicated cluster, inserts must be visible to the next read on any replica within
``settle`` (``insert_quorum`` with ``select_sequential_consistency``, or one replica for
writes); chDB and a single server see an insert as soon as it returns.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from assay.store.clickhouse import TIME, ClickHouseBase, Params, Schema, one_of
from assay.store.rows import utc

_TICK = timedelta(microseconds=1)

#: How long a claimant waits before reading back (seconds), by store kind.
SETTLE = {"chdb": 0.0, "http": 0.25}


def leases_ddl(schema: Schema) -> list[str]:
    """The lease event log. Events are dropped 30 days after they were written (by the
    server's clock: expiries can be test or replay times far in the past)."""
    return schema.table(
        "leases",
        """scope LowCardinality(String), key String, claim_id String, owner String,
        event LowCardinality(String), expires_at DateTime64(6, 'UTC'),
        stamp DateTime64(9, 'UTC') DEFAULT now64(9)""",
        engine="MergeTree",
        order_by="(scope, key, stamp)",
        shard_by="cityHash64(scope, key)",
        extra="TTL toDateTime(stamp) + INTERVAL 30 DAY",
    )


@dataclass(frozen=True)
class Lease:
    """The live claim that holds a key."""

    key: str
    claim_id: str
    owner: str
    expires_at: datetime


class Leases:
    """Claim, renew and release leases on keys of one ``scope`` (e.g. ``monitor``)."""

    def __init__(self, store: ClickHouseBase, scope: str, settle: float | None = None) -> None:
        self.store = store
        self.scope = scope
        self.settle = SETTLE.get(store.target.kind, 0.25) if settle is None else settle

    def holders(self, now: datetime, keys: Sequence[str] | None = None) -> dict[str, Lease]:
        """The holder of each key that has one at ``now`` (of ``keys``, or of all)."""
        p = Params()
        only = f" AND key IN {one_of(p, keys)}" if keys is not None else ""
        if keys is not None and not keys:
            return {}
        rows = self.store.q(
            f"""
            SELECT key, claim_id, anyIf(owner, event = 'claim'), minIf(stamp, event = 'claim'),
                   max(expires_at)
            FROM {{db}}.leases
            WHERE scope = {p(self.scope, 'String')}{only}
            GROUP BY key, claim_id
            HAVING countIf(event = 'claim') > 0 AND countIf(event = 'release') = 0
               AND max(expires_at) > {p(now, TIME)}
            """,
            p,
        )
        best: dict[str, tuple[datetime, str, Lease]] = {}
        for key, claim_id, owner, stamp, expires in rows:
            lease = Lease(key, claim_id, owner, utc(expires) or now)
            rank = (stamp, claim_id)
            if key not in best or rank < best[key][:2]:
                best[key] = (stamp, claim_id, lease)
        return {k: v[2] for k, v in best.items()}

    def holder(self, key: str, now: datetime) -> Lease | None:
        """The live claim on ``key`` at ``now``, if any."""
        return self.holders(now, [key]).get(key)

    def _event(self, key: str, claim_id: str, owner: str, event: str, until: datetime) -> None:
        self.store.insert_rows(
            "leases",
            ["scope", "key", "claim_id", "owner", "event", "expires_at"],
            [[self.scope, key, claim_id, owner, event, until]],
        )

    def claim(self, key: str, owner: str, now: datetime, until: datetime) -> bool:
        """Take the lease on ``key`` until ``until`` if nobody holds it at ``now``.

        An owner that already holds the key keeps it and gets the later expiry."""
        current = self.holder(key, now)
        if current is not None:
            if current.owner != owner:
                return False
            self._event(key, current.claim_id, owner, "renew", until)
            return True
        claim_id = uuid.uuid4().hex
        self._event(key, claim_id, owner, "claim", until)
        if self.settle:
            time.sleep(self.settle)
        won = self.holder(key, now)
        if won is not None and won.claim_id == claim_id:
            return True
        self._event(key, claim_id, owner, "release", until)
        return False

    def renew(self, key: str, owner: str, now: datetime, until: datetime) -> bool:
        """Extend ``owner``'s lease on ``key``; False when it no longer holds it."""
        current = self.holder(key, now)
        if current is None or current.owner != owner:
            return False
        self._event(key, current.claim_id, owner, "renew", until)
        return True

    def release(self, key: str, owner: str, now: datetime) -> bool:
        """Give up ``owner``'s lease on ``key``; False when it did not hold it."""
        current = self.holder(key, now)
        if current is None or current.owner != owner:
            return False
        self._event(key, current.claim_id, owner, "release", current.expires_at)
        return True


class HeldLeases(Leases):
    """:class:`Leases` plus the clockless questions of the Store protocol.

    ``take`` claims a key nobody holds at ``now`` (not even the caller, as a conditional
    ``UPDATE … WHERE lease free`` would refuse) and confirms the win with a renew event.
    The *current* claim of a key is its latest confirmed claim, unless released: what
    DuckDB keeps in ``lease_owner`` (expired or not, until someone else claims).
    ``owner`` holds a key while the current claim is its own and no other owner has an
    unreleased claim after it (a replica that found the lease expired and is claiming
    it): then the lease counts as lost, as it would be once that claim wins.
    """

    #: How many of a key's latest claims are read to answer who holds it.
    RECENT = 16

    def take(self, key: str, owner: str, now: datetime, until: datetime) -> bool:
        """Claim ``key`` if nobody holds it at ``now``; True when ``owner`` won it."""
        if self.holder(key, now) is not None or not self.claim(key, owner, now, until):
            return False
        return self.renew(key, owner, now, until)

    def _claims(self, keys: Sequence[str]) -> dict[str, list[tuple[Any, ...]]]:
        """Each key's latest claims, oldest first: (stamp, claim_id, owner, expires,
        confirmed, released)."""
        if not keys:
            return {}
        p = Params()
        rows = self.store.q(
            f"""
            SELECT key, minIf(stamp, event = 'claim') AS claimed, claim_id,
                   anyIf(owner, event = 'claim'), max(expires_at),
                   countIf(event = 'renew') > 0, countIf(event = 'release') > 0
            FROM {{db}}.leases
            WHERE scope = {p(self.scope, 'String')} AND key IN {one_of(p, keys)}
            GROUP BY key, claim_id
            HAVING countIf(event = 'claim') > 0
            ORDER BY key, claimed DESC, claim_id DESC
            LIMIT {self.RECENT} BY key
            """,
            p,
        )
        out: dict[str, list[tuple[Any, ...]]] = {}
        for key, *rest in rows:
            out.setdefault(key, []).insert(0, tuple(rest))
        return out

    def current(self, keys: Sequence[str]) -> dict[str, Lease]:
        """The current (latest confirmed, unreleased) claim of each key that has one."""
        out: dict[str, Lease] = {}
        for key, claims in self._claims(keys).items():
            confirmed = [c for c in claims if c[4]]
            if confirmed and not confirmed[-1][5]:
                _, claim_id, owner, expires, _, _ = confirmed[-1]
                out[key] = Lease(key, claim_id, owner, utc(expires) or expires)
        return out

    def held(self, key: str, owner: str) -> Lease | None:
        """``owner``'s current claim on ``key`` while it still holds it, else None."""
        claims = self._claims([key]).get(key, [])
        last = max((i for i, c in enumerate(claims) if c[4]), default=None)
        if last is None or claims[last][5] or claims[last][2] != owner:
            return None
        if any(c[2] != owner and not c[5] for c in claims[last + 1 :]):
            return None
        _, claim_id, _, expires, _, _ = claims[last]
        return Lease(key, claim_id, owner, utc(expires) or expires)

    def extend(self, key: str, owner: str, until: datetime) -> bool:
        """Move ``owner``'s lease on ``key`` to ``until``; False when it no longer holds it
        (checked again after the write, so a concurrent takeover is never missed)."""
        lease = self.held(key, owner)
        if lease is None:
            return False
        if until < lease.expires_at:
            # A claim's expiry only grows: a shorter lease is a new claim, which another
            # replica may win in between (then ``owner`` has lost it, as after a takeover).
            self._event(key, lease.claim_id, owner, "release", lease.expires_at)
            return self.take(key, owner, until - _TICK, until)
        self._event(key, lease.claim_id, owner, "renew", until)
        if self.settle:
            time.sleep(self.settle)
        again = self.held(key, owner)
        if again is not None and again.claim_id == lease.claim_id:
            return True
        self._event(key, lease.claim_id, owner, "release", until)
        return False

    def drop(self, key: str, owner: str) -> bool:
        """Release ``owner``'s lease on ``key``; False when it did not hold it."""
        lease = self.held(key, owner)
        if lease is None:
            return False
        self._event(key, lease.claim_id, owner, "release", lease.expires_at)
        return True


def lease_key(*parts: str) -> str:
    """One key from several parts (project, name …) that cannot collide."""
    return "\x1f".join(parts)
