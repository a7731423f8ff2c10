"""Drift windows: which spans (or golden cases) a check compares, and how they are sampled.

A span window is a time range plus the query API's filters (model, service, route,
release, kind …). Ranges are written ``START..END`` with either side in any form
:func:`assay.query.parse_time` reads (``7d ago..1d ago``, ``30d..1d``,
``2026-03-01..2026-03-08T12:00Z``, an open side means "from the beginning" / "now"),
or ``last 1d``. A golden window is the cases of a stored golden set: their inputs as
input texts and their expected answers as output texts.

Sampling: a window with more than ``limit`` spans is read as the ``limit`` spans with the
smallest seeded hash of ``(trace_id, span_id)`` — a uniform sample without replacement
that picks the same spans every time (so their cached embeddings are reused) and whose
prefixes are uniform samples too. Memory stays bounded for windows of any size.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from assay.query import QueryError, SpanFilter, parse_duration, parse_time
from assay.store import Store

#: Spans read per window (per check) when a window holds more; see the module docstring.
DEFAULT_MAX_SAMPLES = 20_000
#: Filters a span window accepts besides its time range (columns of the span schema).
FILTER_FIELDS = (
    "model",
    "provider",
    "service",
    "route",
    "release",
    "environment",
    "kind",
    "name",
    "status",
)
#: Fields a golden window provides (the others are not in a golden set).
GOLDEN_FIELDS = ("input_text", "output_text", "input_length", "output_length")
#: Stated in every report: how a large window is sampled.
SAMPLING_METHOD = (
    "spans with the smallest hash(seed, trace_id, span_id), up to the cap per window: "
    "uniform without replacement and the same spans on every check"
)
_GOLDEN_REF = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.\-]{0,127})(?:@([0-9a-fA-F]{1,64}))?$")


class WindowError(QueryError):
    """A window the user gave cannot be read; the message says what would work."""


class GoldenNotFoundError(WindowError):
    """The golden set (or version) named as a reference is not stored."""


@dataclass(frozen=True)
class SpanWindow:
    """Spans of one project in a time range, narrowed by the query API's filters."""

    filter: SpanFilter
    #: The range as the user wrote it (``7d ago..1d ago``).
    text: str

    @property
    def project(self) -> str:
        """The project the spans belong to."""
        return self.filter.project

    def filters(self) -> dict[str, Any]:
        """The filters other than project and time, for reports."""
        out: dict[str, Any] = {
            name: getattr(self.filter, name)
            for name in FILTER_FIELDS
            if getattr(self.filter, name) is not None
        }
        if self.filter.attributes:
            out["attributes"] = dict(self.filter.attributes)
        return out


@dataclass(frozen=True)
class GoldenWindow:
    """The cases of a stored golden set (newest version, or one by hash prefix)."""

    project: str
    name: str
    version: str | None = None

    @property
    def text(self) -> str:
        """``NAME`` or ``NAME@VERSION`` as the user writes it."""
        return self.name + (f"@{self.version}" if self.version else "")


Window = SpanWindow | GoldenWindow


@dataclass(frozen=True)
class WindowData:
    """What was read from a window: a sample of rows and how many the window holds."""

    window: Window
    #: ``trace_id``, ``span_id`` and the requested fields, in sample (hash) order.
    table: pa.Table
    #: Spans (or cases) in the window before sampling.
    total: int
    #: ``NAME@VERSION`` (full hash) of a golden window; None for spans.
    golden: str | None = None
    fields: tuple[str, ...] = field(default=())

    @property
    def sampled(self) -> bool:
        """True when the window held more rows than were read."""
        return self.total > int(self.table.num_rows)


def parse_range(
    text: str, now: datetime | None = None, what: str = "window"
) -> tuple[datetime | None, datetime | None]:
    """``START..END``, ``last DURATION``, a bare duration (= last), or a bare time (= from
    then until now) → (start, end); an empty start means from the beginning."""
    if not isinstance(text, str) or not text.strip():
        raise WindowError(
            f"{what} window is empty; write a range such as '7d ago..1d ago' or 'last 1d'"
        )
    now = now or datetime.now(UTC)
    raw = text.strip()
    try:
        if raw.lower().startswith("last "):
            return now - parse_duration(raw[5:].strip(), f"{what} window"), now
        if ".." not in raw:
            if re.fullmatch(r"\d+(\.\d+)?\s*[smhdw]", raw):
                return now - parse_duration(raw, f"{what} window"), now
            return parse_time(raw, now, f"{what} window start"), now
        left, right = raw.split("..", 1)
        start = parse_time(left.strip(), now, f"{what} window start") if left.strip() else None
        end = parse_time(right.strip(), now, f"{what} window end") if right.strip() else now
    except OverflowError:
        raise WindowError(
            f"{what} window {text!r} reaches outside the calendar; use a shorter duration "
            "such as 'last 365d'"
        ) from None
    except QueryError as exc:
        raise WindowError(
            f"{exc}. A {what} window is START..END (e.g. '7d ago..1d ago', '30d..1d', "
            "'2026-03-01..2026-03-08') or 'last 1d'"
        ) from None
    if start is not None and end is not None and end <= start:
        raise WindowError(
            f"{what} window {text!r} ends ({end.isoformat()}) before it starts "
            f"({start.isoformat()}); write the older time first, e.g. '7d ago..1d ago'"
        )
    return start, end


def span_window(
    text: str,
    project: str,
    filters: Mapping[str, str | None] | None = None,
    attributes: Mapping[str, str] | None = None,
    now: datetime | None = None,
    what: str = "window",
) -> SpanWindow:
    """A span window from a range string and filters (names from :data:`FILTER_FIELDS`)."""
    given: dict[str, Any] = {k: v for k, v in (filters or {}).items() if v is not None}
    unknown = sorted(set(given) - set(FILTER_FIELDS))
    if unknown:
        raise WindowError(
            f"unknown filter(s) {', '.join(unknown)}; a window filters on "
            + ", ".join(FILTER_FIELDS)
        )
    start, end = parse_range(text, now, what)
    flt = SpanFilter(
        project=project, start=start, end=end, attributes=dict(attributes or {}), **given
    )
    return SpanWindow(flt, text.strip())


def golden_window(text: str, project: str) -> GoldenWindow:
    """A golden window from ``NAME`` or ``NAME@VERSION`` (a version hash prefix)."""
    m = _GOLDEN_REF.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise WindowError(
            f"golden reference {text!r} is not NAME or NAME@VERSION (letters, digits, "
            "'_', '.', '-'; VERSION a hash prefix from `assay goldens list`)"
        )
    return GoldenWindow(project, m.group(1), m.group(2).lower() if m.group(2) else None)


def windows_overlap(a: Window, b: Window) -> bool:
    """True when two span windows share part of their time range (and so spans)."""
    if not isinstance(a, SpanWindow) or not isinstance(b, SpanWindow):
        return False
    far_past = datetime.min.replace(tzinfo=UTC)
    far_future = datetime.max.replace(tzinfo=UTC)
    a0, a1 = a.filter.start or far_past, a.filter.end or far_future
    b0, b1 = b.filter.start or far_past, b.filter.end or far_future
    return a0 < b1 and b0 < a1


def load_window(
    store: Store,
    window: Window,
    fields: Sequence[str],
    attributes: Sequence[str] = (),
    limit: int = DEFAULT_MAX_SAMPLES,
    seed: int = 0,
) -> WindowData:
    """Read a window's sample. A golden window provides only :data:`GOLDEN_FIELDS`; the
    other fields are left out of its table (callers check ``WindowData.fields``)."""
    if isinstance(window, SpanWindow):
        table, total = store.sample_window(
            window.filter, list(fields), list(attributes), limit, seed
        )
        return WindowData(window, table, total, fields=tuple(fields))
    return _load_golden(store, window, fields, limit, seed)


def case_input_text(value: Any) -> str | None:
    """A case input as text: the string, or the last user message of a chat."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        for message in reversed(value):
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                return content if isinstance(content, str) else json.dumps(content)
        return None
    return json.dumps(value, sort_keys=True)


def case_expected_text(value: Any) -> str | None:
    """An expected answer as text (structured answers as canonical JSON)."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def golden_trace_id(name: str, version: str) -> str:
    """The key golden-case embeddings are cached under (their span id is the case id)."""
    return f"golden:{name}@{version}"


def _load_golden(
    store: Store, window: GoldenWindow, fields: Sequence[str], limit: int, seed: int
) -> WindowData:
    found = store.resolve_golden(window.project, window.name, window.version)
    if found is None:
        what = f"version {window.version!r} of golden set" if window.version else "golden set"
        raise GoldenNotFoundError(
            f"no {what} {window.name!r} in project {window.project!r}; "
            "add one with `assay goldens add FILE` or list them with `assay goldens list`"
        )
    cases = store.golden_cases(window.project, found.name, found.version)
    total = len(cases)
    if total > limit:
        # Same rule as span windows: smallest seeded hash of the id, so stable across checks.
        cases = sorted(
            cases,
            key=lambda c: hashlib.sha256(f"{seed}:{c['id']}".encode()).digest(),
        )[:limit]
    inputs = [case_input_text(c.get("input")) for c in cases]
    outputs = [case_expected_text(c.get("expected")) for c in cases]
    columns: dict[str, pa.Array] = {
        "trace_id": pa.array(
            [golden_trace_id(found.name, found.version)] * len(cases), pa.string()
        ),
        "span_id": pa.array([str(c["id"]) for c in cases], pa.string()),
        "input_text": pa.array(inputs, pa.string()),
        "output_text": pa.array(outputs, pa.string()),
        "input_length": pa.array(
            [None if t is None else float(len(t)) for t in inputs], pa.float64()
        ),
        "output_length": pa.array(
            [None if t is None else float(len(t)) for t in outputs], pa.float64()
        ),
    }
    provided = tuple(f for f in fields if f in GOLDEN_FIELDS)
    table = pa.table({k: v for k, v in columns.items() if k in ("trace_id", "span_id", *provided)})
    return WindowData(window, table, total, golden=f"{found.name}@{found.version}", fields=provided)
