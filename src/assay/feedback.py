"""Feedback and labels on traces: a score, a label or a comment attached to a trace or a
span, with who gave it. Idempotent by a client-supplied id, so a retried send never
counts twice.

From an app (the SDK call)::

    from assay.feedback import FeedbackClient

    client = FeedbackClient("http://127.0.0.1:7800", api_key=...)
    client.send(trace_id, "thumbs", True, source="user", author="u-123", id="fb-8812")
    client.send(trace_id, "helpfulness", 4, source="reviewer", author="ana")
    client.send(trace_id, "topic", "billing", source="reviewer")
    client.send(trace_id, "note", comment="asked twice before it answered")

Over HTTP: ``POST /api/v1/feedback``. From the shell: ``assay feedback add TRACE ...``.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import httpx

from assay.model import Feedback

Source = Literal["user", "reviewer", "judge", "code"]
SOURCES: tuple[str, ...] = get_args(Source)
Kind = Literal["number", "boolean", "category", "comment"]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")
_HEX = re.compile(r"^[0-9a-f]+$")


class FeedbackError(ValueError):
    """Feedback that cannot be stored; the message names the field and the fix."""


def _hex_id(value: str, length: int, what: str) -> str:
    v = value.strip().lower()
    if len(v) != length or not _HEX.match(v):
        raise FeedbackError(
            f"{what} {value!r} must be {length} hex characters (as in `assay traces list`)"
        )
    return v


def make_feedback(
    project: str,
    trace_id: str,
    name: str,
    value: float | bool | str | None = None,
    *,
    span_id: str | None = None,
    comment: str | None = None,
    source: str = "user",
    author: str | None = None,
    id: str | None = None,
    created_at: datetime | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Feedback:
    """A validated :class:`~assay.model.Feedback`: ``value`` is a number (a score), a bool
    (thumbs up/down, pass/fail) or a string (a category label); ``comment`` is free text
    and may stand alone. Without ``id`` a random one is made (then a resend duplicates)."""
    if not _NAME.match(name or ""):
        raise FeedbackError(
            f"name {name!r} must be 1-128 letters, digits, '_', '.', ':' or '-' "
            "(e.g. 'helpfulness' or 'thumbs')"
        )
    if source not in SOURCES:
        raise FeedbackError(f"source {source!r} must be one of {', '.join(SOURCES)}")
    number: float | None = None
    category: str | None = None
    kind: Kind
    if isinstance(value, bool):
        kind, number = "boolean", 1.0 if value else 0.0
    elif isinstance(value, int | float):
        if not math.isfinite(float(value)):
            raise FeedbackError(f"value {value!r} must be a finite number")
        kind, number = "number", float(value)
    elif isinstance(value, str):
        if not value.strip() or len(value) > 200:
            raise FeedbackError("a category value must be 1-200 characters, e.g. 'billing'")
        kind, category = "category", value
    elif value is None:
        if not comment:
            raise FeedbackError("give a value (number, true/false or a category) or a comment")
        kind = "comment"
    else:
        raise FeedbackError(
            f"value must be a number, a boolean or a string, not {type(value).__name__}"
        )
    if comment is not None and len(comment) > 10_000:
        raise FeedbackError("comment is longer than 10,000 characters")
    fid = id if id is not None else uuid.uuid4().hex
    if not (0 < len(fid) <= 200) or fid.strip() != fid:
        raise FeedbackError(f"id {fid!r} must be 1-200 characters without surrounding spaces")
    return Feedback(
        project=project,
        feedback_id=fid,
        trace_id=_hex_id(trace_id, 32, "trace_id"),
        span_id=_hex_id(span_id, 16, "span_id") if span_id else None,
        name=name,
        kind=kind,
        number=number,
        category=category,
        comment=comment,
        source=source,
        author=author,
        created_at=created_at or datetime.now(UTC),
        metadata=dict(metadata or {}),
    )


def same_content(a: Feedback, b: Feedback) -> bool:
    """Whether two records with one id say the same thing (time aside)."""
    keys = ("trace_id", "span_id", "name", "kind", "number", "category", "comment", "source")
    return all(getattr(a, k) == getattr(b, k) for k in keys) and a.author == b.author


def feedback_json(f: Feedback) -> dict[str, Any]:
    """The API form of a feedback record."""
    value: float | bool | str | None = {
        "number": f.number,
        "boolean": None if f.number is None else f.number == 1.0,
        "category": f.category,
        "comment": None,
    }[f.kind]
    return {
        "id": f.feedback_id,
        "project": f.project,
        "trace_id": f.trace_id,
        "span_id": f.span_id,
        "name": f.name,
        "kind": f.kind,
        "value": value,
        "comment": f.comment,
        "source": f.source,
        "author": f.author,
        "created_at": f.created_at.isoformat(),
        "metadata": f.metadata,
    }


class FeedbackClient:
    """Sends feedback to an assay server (sync; one connection pool, reuse it)."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:7800",
        *,
        api_key: str | None = None,
        timeout_s: float = 10.0,
        http: httpx.Client | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # ``http`` lets a caller (or a test) bring its own client, e.g. an in-process app.
        self._client = http or httpx.Client(base_url=url, headers=headers, timeout=timeout_s)

    def send(
        self,
        trace_id: str,
        name: str,
        value: float | bool | str | None = None,
        *,
        span_id: str | None = None,
        comment: str | None = None,
        source: str = "user",
        author: str | None = None,
        id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Attach one piece of feedback; returns the stored record. Raises
        :class:`FeedbackError` for bad input and ``httpx.HTTPStatusError`` when the server
        refuses (its reason in the message)."""
        # Validate here first so a mistake surfaces in the app, not as a 422 later.
        f = make_feedback(
            "-",
            trace_id,
            name,
            value,
            span_id=span_id,
            comment=comment,
            source=source,
            author=author,
            id=id or uuid.uuid4().hex,
            metadata=metadata,
        )
        return self.send_many([f])[0]

    def send_many(self, items: Sequence[Feedback]) -> list[dict[str, Any]]:
        """Attach several records in one request."""
        body = {"items": [_wire(f) for f in items]}
        resp = self._client.post("/api/v1/feedback", json=body)
        if resp.status_code >= 400:
            try:
                detail = resp.json().get("detail", resp.text)
            except ValueError:
                detail = resp.text
            raise httpx.HTTPStatusError(
                f"{resp.status_code}: {detail}", request=resp.request, response=resp
            )
        items_out: list[dict[str, Any]] = resp.json()["items"]
        return items_out

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> FeedbackClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _wire(f: Feedback) -> dict[str, Any]:
    out = feedback_json(f)
    out.pop("project")
    out.pop("kind")
    out.pop("created_at")
    return out


__all__ = [
    "SOURCES",
    "FeedbackClient",
    "FeedbackError",
    "feedback_json",
    "make_feedback",
    "same_content",
]
