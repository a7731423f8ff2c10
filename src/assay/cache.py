"""An opt-in on-disk cache of successful LLM chat responses.

Used by :class:`assay.llm.ChatClient`; re-exported from :mod:`assay.llm`.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class ResponseCache:
    """Successful chat responses on disk (SQLite), keyed by what determines the answer.

    Opt-in: identical requests (base URL, model, messages, params, response format) are
    answered from the file, which makes re-runs cheap and deterministic. Safe to share
    between concurrent calls of one event loop (each lookup is one short statement).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses "
            "(key TEXT PRIMARY KEY, response TEXT NOT NULL, latency_ms REAL, created TEXT)"
        )
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(
        base_url: str,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
        response_format: Mapping[str, Any] | None,
    ) -> str:
        """The cache key of a request: a SHA-256 of its canonical JSON."""
        blob = json.dumps(
            [base_url.rstrip("/"), model, list(messages), dict(params), response_format],
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    def get(self, key: str) -> tuple[dict[str, Any], float] | None:
        """The cached response body and its original latency (ms), or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT response, latency_ms FROM responses WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return json.loads(row[0]), float(row[1] or 0.0)

    def put(self, key: str, response: Mapping[str, Any], latency_ms: float) -> None:
        """Store a successful response."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)",
                (key, json.dumps(response), latency_ms, datetime.now(UTC).isoformat()),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        """Close the database file."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
