"""What a query asks for: span filters, time ranges and cursors, parsed at the edge."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: Fields aggregates can be grouped by (columns of the span schema).
GROUP_FIELDS = (
    "model",
    "service",
    "route",
    "release",
    "provider",
    "kind",
    "status",
    "name",
    "environment",
    "operation",
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class QueryError(ValueError):
    """A filter, time or cursor the user gave cannot be understood; says what would work."""


def parse_duration(text: str, what: str = "duration") -> timedelta:
    """``30s``, ``5m``, ``1h``, ``7d``, ``2w`` → timedelta."""
    m = _DURATION.match(text)
    if m is None:
        raise QueryError(
            f"{what} {text!r} is not a duration; use a number and a unit "
            "(s, m, h, d, w), e.g. 15m, 1h or 7d"
        )
    value = float(m.group(1))
    if value <= 0:
        raise QueryError(f"{what} {text!r} must be positive")
    try:
        return timedelta(**{_UNITS[m.group(2)]: value})
    except OverflowError:
        raise QueryError(f"{what} {text!r} is too large; use at most a few years") from None


def parse_time(
    text: str | None, now: datetime | None = None, what: str = "time"
) -> datetime | None:
    """ISO-8601 (naive means UTC), a Unix timestamp, ``now``, or a duration ago (``1h``)."""
    if text is None or text == "":
        return None
    now = now or datetime.now(UTC)
    raw = text.strip()
    if raw == "now":
        return now
    ago = raw.removesuffix("ago").strip()
    if _DURATION.match(ago):
        try:
            return now - parse_duration(ago, what)
        except OverflowError:
            raise QueryError(
                f"{what} {text!r} reaches before year 1; use a shorter duration"
            ) from None
    try:
        seconds = float(raw)
    except ValueError:
        pass
    else:
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise QueryError(
                f"{what} {text!r} is not a Unix time this API can represent; "
                "use ISO-8601 such as 2026-11-23T10:00:00Z"
            ) from None
    try:
        dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(
            f"{what} {text!r} is not a time; use ISO-8601 (2026-11-23T10:00:00Z), "
            "a Unix timestamp, or a duration ago such as 1h or 7d"
        ) from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


#: SpanFilter fields that match a span column of the same name exactly.
EQUALITY_FIELDS = (
    "trace_id",
    "model",
    "provider",
    "service",
    "name",
    "kind",
    "status",
    "route",
    "release",
    "environment",
    "session_id",
    "user_id",
)


@dataclass(frozen=True)
class SpanFilter:
    """Filters shared by span listings, trace listings and aggregates (all ANDed)."""

    project: str
    start: datetime | None = None
    end: datetime | None = None
    trace_id: str | None = None
    model: str | None = None
    provider: str | None = None
    service: str | None = None
    name: str | None = None
    kind: str | None = None
    status: str | None = None
    route: str | None = None
    release: str | None = None
    environment: str | None = None
    session_id: str | None = None
    user_id: str | None = None
    min_duration_ms: float | None = None
    min_cost: float | None = None
    text: str | None = None
    #: attribute key → value (string comparison), for attributes without a column.
    attributes: dict[str, str] = field(default_factory=dict)

    def with_(self, **changes: Any) -> SpanFilter:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def __post_init__(self) -> None:
        if self.start and self.end and self.end <= self.start:
            raise QueryError(
                f"end {self.end.isoformat()} is not after start "
                f"{self.start.isoformat()}; swap them or widen the range"
            )
        if self.status is not None and self.status not in ("ok", "error", "unset"):
            raise QueryError(f"status {self.status!r} is not one of ok, error, unset")
        if self.trace_id is not None and not re.fullmatch(r"[0-9a-f]{32}", self.trace_id):
            raise QueryError(f"trace_id {self.trace_id!r} must be 32 lower-case hex characters")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of results and the opaque cursor of the next (None at the end)."""

    items: list[T]
    next_cursor: str | None


def encode_cursor(*values: Any) -> str:
    """An opaque cursor from the sort key of the last row of a page."""
    return base64.urlsafe_b64encode(json.dumps(values, default=str).encode()).decode()


def cursor_time(value: Any) -> datetime:
    """The timestamp inside a cursor, or QueryError when it was tampered with."""
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise QueryError("cursor is not one this API issued; pass next_cursor unchanged") from None


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    """The sort key inside a cursor made by :func:`encode_cursor`."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, UnicodeDecodeError):
        raise QueryError("cursor is not one this API issued; pass next_cursor unchanged") from None
    if not isinstance(values, list) or len(values) != arity:
        raise QueryError("cursor is not one this API issued; pass next_cursor unchanged")
    return values


def parse_bucket(text: str | None) -> timedelta | None:
    """A time-bucket width (``1h``) or None for totals over the whole range."""
    if text is None or text in ("", "none", "total"):
        return None
    width = parse_duration(text, "bucket")
    if width < timedelta(seconds=1):
        raise QueryError(f"bucket {text!r} is narrower than one second")
    return width


def check_group(group_by: str | None) -> str | None:
    """Validate a group-by field name."""
    if group_by in (None, "", "none"):
        return None
    if group_by not in GROUP_FIELDS:
        raise QueryError(
            f"group_by {group_by!r} is not supported; use one of " + ", ".join(GROUP_FIELDS)
        )
    return group_by
