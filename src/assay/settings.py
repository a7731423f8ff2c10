"""One frozen Settings object, built once at the edge (CLI or test) and passed down.

Nothing below this module reads the environment: every ``ASSAY_*`` variable is
parsed here, with an error naming the variable and the expected form.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

MIB = 1024 * 1024


class SettingsError(ValueError):
    """A setting has a value assay cannot use; the message says which and how to fix it."""


_SIZE = re.compile(r"\d+(\.\d+)?\s*([KMGT]i?)?B", re.IGNORECASE)

@dataclass(frozen=True)
class Settings:
    """Every knob of assay. Environment variable = ``ASSAY_`` + upper-case field name."""

    #: Where data lives (``ASSAY_DB``): a DuckDB file the server owns, or a ClickHouse URL
    #: (``clickhouse://``, ``clickhouses://``, ``chdb://``).
    db: str = "assay.duckdb"
    host: str = "127.0.0.1"
    port: int = 7800
    #: Base URL the CLI uses to reach a running server.
    url: str = "http://127.0.0.1:7800"
    #: API key the CLI and tracing helper send (``ASSAY_API_KEY``).
    api_key: str | None = None
    #: Key for administrative endpoints (projects, keys) on a non-loopback bind.
    admin_key: str | None = None
    #: Project that key-less writes go to on a loopback bind.
    default_project: str = "default"
    #: Require API keys (and dashboard sign-in) even on a loopback bind: for a reverse
    #: proxy on this machine that forwards other people's requests.
    keys_required: bool = False
    #: Largest OTLP body accepted, measured after decompression.
    max_body_bytes: int = 20 * MIB
    #: Spans waiting for the writer before new requests get 503 + Retry-After.
    max_pending_spans: int = 200_000
    #: Most spans the writer commits in one transaction.
    writer_batch_spans: int = 20_000
    #: Seconds a client is told to wait when the store is overloaded.
    retry_after_seconds: int = 2
    #: Worker processes that decode OTLP bodies (0 = decode in threads of the server).
    decode_workers: int = 2
    #: Seconds an ingest request waits for its commit before answering 503.
    ingest_timeout_seconds: float = 30.0
    #: Optional JSON file of model prices that overrides the shipped table.
    prices: str | None = None
    #: DuckDB memory limit; DuckDB's own default (80% of RAM) would let one process
    #: grow to gigabytes on a large database. 256MB keeps the server near 500 MB under
    #: ingest and still answers the 5M-span aggregates in ~150 ms (docs/performance.md).
    duckdb_memory_limit: str | None = "256MB"
    #: DuckDB worker threads for queries; 0 means one per core.
    duckdb_threads: int = 0
    #: WAL size at which the server's DuckDB checkpoints (DuckDB's default is 16MB). Fewer,
    #: larger checkpoints measured ~10% more ingest throughput for ~50 MB more peak RSS.
    duckdb_checkpoint_threshold: str | None = "64MB"
    #: Rows per DuckDB row group for what the server writes (DuckDB's default is 122880).
    #: A checkpoint compresses whole row groups in memory; 8192 keeps that small.
    duckdb_row_group_size: int = 8192
    log_level: str = "info"
    #: Embedder for drift checks: ``auto`` (sentence-transformers with the ``embed`` extra,
    #: else hashing), ``hashing[:DIM]``, ``sentence-transformers[:PATH]`` or ``openai:MODEL``.
    embedder: str = "auto"
    #: Run saved drift monitors on their schedules in the server (``ASSAY_MONITORS``).
    monitors: bool = True
    #: Seconds between the monitor scheduler's looks for due monitors and pending alerts.
    monitor_tick_seconds: float = 30.0
    #: Run the online-evaluation worker (rules scoring live spans) in the server.
    online: bool = True
    #: Seconds between the online worker's looks for new spans and new rules.
    online_poll_seconds: float = 1.0
    #: Seconds between passes that delete spans past their project's retention period.
    retention_interval_seconds: float = 3600.0
    #: Secret that signs dashboard session cookies and CSRF tokens. Unset: a random one
    #: per server process, so signing in again is needed after a restart.
    session_secret: str | None = None
    #: Hours a dashboard sign-in lasts.
    session_hours: float = 12.0

    @property
    def loopback(self) -> bool:
        """True when the server only listens on this machine."""
        return is_loopback(self.host)

    @property
    def require_keys(self) -> bool:
        """Writes and reads need an API key unless bound to loopback (or told to anyway)."""
        return self.keys_required or not self.loopback

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields changed (validated like the originals)."""
        return replace(self, **changes)._validated()

    def _validated(self) -> Settings:
        if not 1 <= self.port <= 65535:
            raise SettingsError(f"ASSAY_PORT={self.port} is not a TCP port; use 1..65535")
        if self.max_body_bytes < 1024:
            raise SettingsError("ASSAY_MAX_BODY_BYTES must be at least 1024")
        if self.max_pending_spans < 1 or self.writer_batch_spans < 1:
            raise SettingsError("ASSAY_MAX_PENDING_SPANS and ASSAY_WRITER_BATCH_SPANS must be >= 1")
        if self.prices is not None and not Path(self.prices).is_file():
            raise SettingsError(
                f"ASSAY_PRICES={self.prices!r} is not a file; point it at a JSON price table "
                "(see docs/pricing.md) or unset it"
            )
        for name in ("duckdb_memory_limit", "duckdb_checkpoint_threshold"):
            size = getattr(self, name)
            if size is not None and not _SIZE.fullmatch(size.strip()):
                raise SettingsError(
                    f"ASSAY_{name.upper()}={size!r} is not a size; use e.g. 64MB, 512MiB or 2GB"
                )
        rgs = self.duckdb_row_group_size
        if not (2048 <= rgs <= 1_048_576 and rgs % 2048 == 0):
            raise SettingsError(
                f"ASSAY_DUCKDB_ROW_GROUP_SIZE={rgs} must be a multiple of 2048 between 2048 "
                "and 1048576 (default 8192; DuckDB's own default is 122880)"
            )
        kind = self.embedder.split(":", 1)[0].strip()
        if kind not in ("auto", "hashing", "sentence-transformers", "openai"):
            raise SettingsError(
                f"ASSAY_EMBEDDER={self.embedder!r} is not an embedder; use auto, hashing, "
                "sentence-transformers[:PATH] or openai:MODEL (see docs/drift.md)"
            )
        if not 0.01 <= self.monitor_tick_seconds <= 3600:
            raise SettingsError(
                f"ASSAY_MONITOR_TICK_SECONDS={self.monitor_tick_seconds} must be between 0.01 "
                "and 3600 seconds (default 30)"
            )
        if not 0.01 <= self.online_poll_seconds <= 3600:
            raise SettingsError(
                f"ASSAY_ONLINE_POLL_SECONDS={self.online_poll_seconds} must be between 0.01 "
                "and 3600 seconds (default 1)"
            )
        if not 1 <= self.retention_interval_seconds <= 7 * 86400:
            raise SettingsError(
                f"ASSAY_RETENTION_INTERVAL_SECONDS={self.retention_interval_seconds} must be "
                "between 1 and 604800 seconds (default 3600)"
            )
        if self.session_secret is not None and len(self.session_secret) < 16:
            raise SettingsError(
                "ASSAY_SESSION_SECRET is shorter than 16 characters; use a long random string, "
                'e.g. python -c "import secrets; print(secrets.token_urlsafe(32))"'
            )
        if not 0.01 <= self.session_hours <= 24 * 90:
            raise SettingsError(
                f"ASSAY_SESSION_HOURS={self.session_hours} must be between 0.01 and 2160 "
                "hours (default 12)"
            )
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``ASSAY_*`` variables, then explicit overrides (None = not given)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get("ASSAY_" + f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.name, f.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)._validated()


def _parse(name: str, type_: Any, raw: str) -> Any:
    kind = str(type_)
    if kind.startswith("bool"):
        value = raw.strip().lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"ASSAY_{name.upper()}={raw!r} is not a boolean; use true or false")
    try:
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
    except ValueError:
        raise SettingsError(
            f"ASSAY_{name.upper()}={raw!r} is not a number; set it to a {kind.split()[0]}"
        ) from None
    return raw


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
