"""Promotion: a trace from production becomes a case of a golden set, with provenance.

``promote(store, project, trace_id, "support")`` builds a case from the trace's root span
(or a given span) — its chat messages, else its input text — takes the expected answer
as given or from the latest reviewer label of the trace (a category or a comment), and
stores the golden set's next version: the newest version's cases plus this one.

Where the case came from is kept in the case itself, under ``metadata.provenance``, so
it shows wherever the case goes (``assay goldens show``, the API, an exported file). It
is part of the content hash like the rest of the case: the version changes because a
case was added, and promoting the same trace again is a no-op that answers the stored
version rather than a new one. See docs/queues.md.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from assay.goldens import (
    ROLES,
    GoldenSetError,
    case_from_dict,
    case_to_dict,
    golden_set_from_cases,
)
from assay.model import Case, CaseInput, Feedback, GoldenVersion, Span

if TYPE_CHECKING:
    from assay.store import Store

#: The case metadata key that holds where a promoted case came from.
PROVENANCE_KEY = "provenance"


class Missing(enum.Enum):
    """Marks an argument that was not given (``None`` is a value: no expected answer)."""

    MISSING = "missing"


MISSING = Missing.MISSING


class PromotionError(ValueError):
    """A trace that cannot become a case; the message names the problem and the fix."""


class PromotionNotFoundError(PromotionError):
    """The trace (or span) is not stored."""


class PromotionConflictError(PromotionError):
    """The case id is already used by a different case of the golden set."""


@dataclass(frozen=True)
class Promotion:
    """The outcome of a promotion: the stored version and the case it gained."""

    golden: GoldenVersion
    case: Case
    #: False when the case was already in the newest version (nothing was stored).
    created: bool
    #: The version the case was added to (None when the golden set is new).
    previous: str | None

    @property
    def provenance(self) -> Mapping[str, Any]:
        """Where the case came from."""
        value = self.case.metadata.get(PROVENANCE_KEY)
        return value if isinstance(value, Mapping) else {}


def _hex(value: str, length: int, what: str) -> str:
    v = (value or "").strip().lower()
    if len(v) != length or any(c not in "0123456789abcdef" for c in v):
        raise PromotionError(
            f"{what} {value!r} must be {length} hex characters (as in `assay traces list`)"
        )
    return v


def case_input(span: Span) -> CaseInput | None:
    """A span's input as a case input: its chat messages when every one has a chat role
    and text content, else its input text; None when it has neither."""
    messages = span.input_messages or []
    converted: list[dict[str, Any]] = []
    for m in messages:
        role, content = m.get("role"), m.get("content")
        if role not in ROLES or not isinstance(content, str):
            converted = []
            break
        out: dict[str, Any] = {"role": role, "content": content}
        if isinstance(m.get("name"), str):
            out["name"] = m["name"]
        converted.append(out)
    if converted:
        return converted
    if span.input_text:
        return span.input_text
    return None


def _pick_span(spans: list[Span], trace_id: str, span_id: str | None) -> Span:
    if span_id is not None:
        for s in spans:
            if s.span_id == span_id:
                if case_input(s) is None:
                    raise PromotionError(f"span {span_id} of trace {trace_id} has no input")
                return s
        raise PromotionNotFoundError(
            f"trace {trace_id} has no span {span_id}; see `assay traces show {trace_id}`"
        )
    roots = [s for s in spans if s.parent_span_id is None] or spans[:1]
    root = roots[0]
    if case_input(root) is None:
        with_input = [s for s in spans if case_input(s) is not None]
        hint = (
            "; spans with an input: "
            + ", ".join(f"{s.span_id} ({s.name})" for s in with_input[:5])
            + " — pass one with --span"
            if with_input
            else "; no span of it has an input"
        )
        raise PromotionError(f"the root span {root.span_id} of trace {trace_id} has no input{hint}")
    return root


def _label_value(f: Feedback) -> Any:
    if f.kind == "boolean":
        return None if f.number is None else f.number == 1.0
    if f.kind == "number":
        return f.number
    if f.kind == "category":
        return f.category
    return f.comment


def promote(
    store: Store,
    project: str,
    trace_id: str,
    golden: str,
    *,
    expected: Any = MISSING,
    case_id: str | None = None,
    span_id: str | None = None,
    author: str | None = None,
    label: str | None = None,
    now: datetime | None = None,
) -> Promotion:
    """Add the trace as a case to the newest version of ``golden`` (creating the set when
    it does not exist) and store the result as a new version.

    ``expected``: the answer the case expects; when not given, the latest reviewer
    feedback on the trace (named ``label``, if given) supplies it when it is a category
    or a comment (a score or pass/fail is recorded in the provenance but expects nothing).
    """
    now = now or datetime.now(UTC)
    trace_id = _hex(trace_id, 32, "trace id")
    span_id = _hex(span_id, 16, "span id") if span_id else None
    spans = store.get_trace(project, trace_id)
    if not spans:
        raise PromotionNotFoundError(
            f"no trace {trace_id} in project {project!r}; see `assay traces list`"
        )
    span = _pick_span(spans, trace_id, span_id)
    reviews = store.list_feedback(project, trace_id=trace_id, source="reviewer", limit=1000)
    if label is not None:
        reviews = [f for f in reviews if f.name == label]
    latest = reviews[0] if reviews else None
    expected_from: str | None = "given"
    if expected is MISSING:
        expected, expected_from = None, None
        if latest is not None and latest.kind in ("category", "comment"):
            expected = latest.category if latest.kind == "category" else latest.comment
            expected_from = "label"
    provenance: dict[str, Any] = {
        "trace_id": trace_id,
        "span_id": span.span_id,
        "label": None
        if latest is None
        else {
            "feedback_id": latest.feedback_id,
            "name": latest.name,
            "value": _label_value(latest),
            "author": latest.author,
            "created_at": latest.created_at.isoformat(),
        },
        "expected_from": expected_from,
        "promoted_by": author,
        "promoted_at": now.isoformat(),
    }
    default_id = f"trace-{trace_id[:16]}" + (f"-{span.span_id[:8]}" if span_id else "")
    new_id = case_id or default_id
    try:
        case = case_from_dict(
            {
                "id": new_id,
                "input": case_input(span),
                "expected": expected,
                "metadata": {PROVENANCE_KEY: provenance},
            },
            source=f"trace {trace_id}",
        )
    except GoldenSetError as exc:
        raise PromotionError(str(exc)) from None
    return _store_case(store, project, golden, case, trace_id, span.span_id)


def _store_case(
    store: Store, project: str, golden: str, case: Case, trace_id: str, span_id: str
) -> Promotion:
    newest = store.resolve_golden(project, golden)
    cases: list[Case] = []
    description = None
    if newest is not None:
        description = newest.description
        cases = [case_from_dict(c) for c in store.golden_cases(project, golden, newest.version)]
        for existing in cases:
            if existing.id != case.id:
                continue
            origin = existing.metadata.get(PROVENANCE_KEY)
            if (
                isinstance(origin, Mapping)
                and origin.get("trace_id") == trace_id
                and origin.get("span_id") == span_id
            ):
                return Promotion(newest, existing, False, newest.version)
            raise PromotionConflictError(
                f"golden set {golden!r} already has a case {case.id!r} (version "
                f"{newest.short}); give this one another id with --id"
            )
    try:
        built = golden_set_from_cases(golden, [*cases, case], description=description)
    except GoldenSetError as exc:
        raise PromotionError(str(exc)) from None
    version, created = store.save_golden_set(
        project,
        built.name,
        built.version,
        [case_to_dict(c) for c in built.cases],
        description=description,
        source=f"promoted from trace {trace_id}",
    )
    return Promotion(version, case, created, None if newest is None else newest.version)


def promotion_json(p: Promotion) -> dict[str, Any]:
    """The API form of a promotion."""
    g = p.golden
    return {
        "golden": {
            "project": g.project,
            "name": g.name,
            "version": g.version,
            "short": g.short,
            "case_count": g.case_count,
            "created_at": g.created_at.isoformat(),
            "source": g.source,
            "description": g.description,
        },
        "created": p.created,
        "previous_version": p.previous,
        "case": case_to_dict(p.case),
    }


__all__ = [
    "MISSING",
    "PROVENANCE_KEY",
    "Promotion",
    "PromotionConflictError",
    "PromotionError",
    "PromotionNotFoundError",
    "case_input",
    "promote",
    "promotion_json",
]
