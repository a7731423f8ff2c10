"""API keys: random, shown once, stored as a hash, compared in constant time.

A key reads ``assay_<key id>_<secret>``: the id (not secret) finds the record, and the
SHA-256 of the whole key is compared with the stored hash by ``hmac.compare_digest``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from datetime import UTC, datetime

from assay.model import ApiKey
from assay.store import Store

KEY_PREFIX = "assay_"
_PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_KEY = re.compile(r"^assay_([0-9a-f]{12})_[A-Za-z0-9_-]{20,}$")


class InvalidNameError(ValueError):
    """A project name is not allowed; the message says what would be."""


def check_project_name(name: str) -> str:
    """Validate a project name (lower-case letters, digits, ``-_.``, up to 63 chars)."""
    if not _PROJECT_NAME.match(name):
        raise InvalidNameError(
            f"project name {name!r} is not valid; use 1-63 lower-case letters, digits, "
            "'-', '_' or '.', starting with a letter or digit"
        )
    return name


def hash_key(secret: str) -> str:
    """SHA-256 of a key. Keys carry 256 random bits, so a fast hash is enough."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(store: Store, project: str) -> tuple[ApiKey, str]:
    """Make a key for a project (created if missing); returns its record and the secret,
    which is shown once and never stored."""
    check_project_name(project)
    store.create_project(project)
    key_id = secrets.token_hex(6)
    secret = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    key = ApiKey(
        key_id=key_id,
        project=project,
        prefix=secret[: len(KEY_PREFIX) + 12 + 5],
        created_at=datetime.now(UTC),
    )
    store.add_key(key, hash_key(secret))
    return key, secret


class KeyRing:
    """Resolves presented keys to projects, with a small cache in front of the store."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._cache: dict[str, tuple[ApiKey, str]] = {}
        self._lock = threading.Lock()

    def lookup(self, secret: str) -> ApiKey | None:
        """The live key matching ``secret``, or None (unknown, revoked or malformed)."""
        m = _KEY.match(secret)
        if m is None:
            return None
        key_id = m.group(1)
        with self._lock:
            found = self._cache.get(key_id)
        if found is None:
            found = self._store.get_key(key_id)
            if found is None:
                return None
            with self._lock:
                if len(self._cache) < 10_000:
                    self._cache[key_id] = found
        key, stored_hash = found
        if not hmac.compare_digest(stored_hash, hash_key(secret)) or key.revoked:
            return None
        return key

    def alive(self, key_id: str, project: str) -> bool:
        """Whether key ``key_id`` still exists, is not revoked and belongs to ``project``.

        Read from the store every time: a revoked key must end dashboard sessions at once."""
        found = self._store.get_key(key_id)
        return found is not None and not found[0].revoked and found[0].project == project

    def forget(self) -> None:
        """Drop the cache (after a key is revoked)."""
        with self._lock:
            self._cache.clear()
