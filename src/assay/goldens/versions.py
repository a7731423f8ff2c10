"""Golden-set values: the versioned set, its content hash, and diffs between versions.

A golden set's version is the sha256 of a canonical JSON form of its cases, so the same cases
have the same version whatever file format, key order or case order they were written in.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from assay.model import Case

#: How many hex digits of a version users see (like a short git hash).
SHORT_VERSION = 12


# --- values ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GoldenSet:
    """A named, versioned collection of cases, sorted by id.

    Build one with :func:`load_golden_set`, :func:`parse_golden_set` or
    :func:`golden_set_from_cases`, which validate the cases and compute ``version``.
    """

    name: str
    description: str | None
    cases: tuple[Case, ...]
    #: Full sha256 hex digest of :func:`canonical_json` of the cases.
    version: str
    #: Where the cases came from (a file path, ``<string>``), if known.
    source: str | None = None

    @property
    def short(self) -> str:
        """The version as users see and type it."""
        return self.version[:SHORT_VERSION]

    def case(self, case_id: str) -> Case:
        """The case with this id (KeyError naming the golden set if there is none)."""
        for case in self.cases:
            if case.id == case_id:
                return case
        raise KeyError(f"golden set {self.name!r} has no case {case_id!r}")


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One changed field of a case: ``input``, ``expected``, ``metadata.<key>`` or
    ``options.<scorer>``; ``old``/``new`` are None on the side where it is absent."""

    field: str
    kind: Literal["added", "removed", "changed"]
    old: Any
    new: Any


@dataclass(frozen=True, slots=True)
class CaseChange:
    """A case present in both sets whose content differs."""

    id: str
    changes: tuple[FieldChange, ...]

    @property
    def fields(self) -> tuple[str, ...]:
        """The names of the changed fields."""
        return tuple(c.field for c in self.changes)


@dataclass(frozen=True, slots=True)
class GoldenDiff:
    """What changed between two golden sets, by case id."""

    old_version: str
    new_version: str
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[CaseChange, ...]
    unchanged: int

    @property
    def identical(self) -> bool:
        """True when both sets hold the same cases."""
        return not (self.added or self.removed or self.changed)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (for ``--json`` output)."""
        changed = [
            {"id": c.id, "changes": [_field_dict(f) for f in c.changes]} for c in self.changed
        ]
        return {
            "old_version": self.old_version,
            "new_version": self.new_version,
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": changed,
            "unchanged": self.unchanged,
        }


def _field_dict(change: FieldChange) -> dict[str, Any]:
    return {"field": change.field, "kind": change.kind, "old": change.old, "new": change.new}


# --- versions -------------------------------------------------------------------------


def _plain(case: Case) -> dict[str, Any]:
    options = {s: args for s, args in case.options.items() if args}
    return {
        "id": case.id,
        "input": case.input,
        "expected": case.expected,
        "metadata": case.metadata,
        "options": options,
    }


def case_to_dict(case: Case) -> dict[str, Any]:
    """A JSON-ready copy of a case with all five fields (the storage form)."""
    return copy.deepcopy(_plain(case))


def canonical_json(cases: Iterable[Case]) -> str:
    """What versions hash: cases sorted by id, each with all five fields, keys sorted,
    no whitespace, non-ASCII kept, scorer options without overrides dropped."""
    rows = sorted((_plain(c) for c in cases), key=lambda row: str(row["id"]))
    return json.dumps(
        rows, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def version_of(cases: Iterable[Case]) -> str:
    """The full sha256 hex digest of :func:`canonical_json` of the cases."""
    return hashlib.sha256(canonical_json(cases).encode("utf-8")).hexdigest()


# --- diff --------------------------------------------------------------------------------


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _changes(old: Case, new: Case) -> tuple[FieldChange, ...]:
    """Changed fields; values compare by canonical JSON, as versions do (1 differs from 1.0)."""
    pairs: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
        ("input", {"": old.input}, {"": new.input}),
        ("expected", {"": old.expected}, {"": new.expected}),
        ("metadata.", old.metadata, new.metadata),
        ("options.", old.options, new.options),
    ]
    out: list[FieldChange] = []
    for prefix, a, b in pairs:
        a = {k: v for k, v in a.items() if v is not None or prefix == "metadata."}
        b = {k: v for k, v in b.items() if v is not None or prefix == "metadata."}
        for key in sorted(a.keys() | b.keys()):
            name = prefix + key if key else prefix
            if key not in b:
                out.append(FieldChange(name, "removed", a[key], None))
            elif key not in a:
                out.append(FieldChange(name, "added", None, b[key]))
            elif _canon(a[key]) != _canon(b[key]):
                out.append(FieldChange(name, "changed", a[key], b[key]))
    return tuple(out)


def diff_golden_sets(old: GoldenSet, new: GoldenSet) -> GoldenDiff:
    """Cases added, removed and changed (with each changed field's old and new value)."""
    before = {c.id: c for c in old.cases}
    after = {c.id: c for c in new.cases}
    common = sorted(before.keys() & after.keys())
    changed = [CaseChange(i, ch) for i in common if (ch := _changes(before[i], after[i]))]
    return GoldenDiff(
        old_version=old.version,
        new_version=new.version,
        added=tuple(sorted(after.keys() - before.keys())),
        removed=tuple(sorted(before.keys() - after.keys())),
        changed=tuple(changed),
        unchanged=len(common) - len(changed),
    )
