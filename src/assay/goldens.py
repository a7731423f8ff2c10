"""Golden sets: load and validate YAML, JSONL or CSV files, version them by content, diff them.

A golden set is a named collection of :class:`assay.model.Case`. Its version is the sha256 of
a canonical JSON form of its cases, so the same cases have the same version whatever file
format, key order or case order they were written in. See docs/goldens.md.
"""

from __future__ import annotations

import copy
import csv
import difflib
import hashlib
import io
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from assay.model import Case

try:  # libyaml is ~10x faster; the pure-Python classes behave the same
    from yaml import CSafeDumper as _BaseDumper
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeDumper as _BaseDumper  # type: ignore[assignment]
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

GoldenFormat = Literal["yaml", "jsonl", "csv"]

#: The golden file format this module reads and writes (the YAML ``version:`` key).
FORMAT_VERSION = 1
#: Chat roles accepted in a case's input messages.
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")
#: The fields a case may have; anything else is reported as a typo.
CASE_FIELDS: tuple[str, ...] = ("id", "input", "expected", "metadata", "options")
#: How many hex digits of a version users see (like a short git hash).
SHORT_VERSION = 12

_EXTENSIONS: dict[str, GoldenFormat] = {
    ".yaml": "yaml",
    ".yml": "yaml",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
}
_FILE_FIELDS = ("name", "description", "version", "defaults", "cases")
_MESSAGE_FIELDS = ("role", "content", "name", "tool_calls", "tool_call_id")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_MAX_ID_LENGTH, _MAX_DEPTH, _SHOWN_ISSUES = 200, 64, 30
_ID_FIX = "give every case a unique id, for example id: refund-001"
_NAME_FIX = (
    "use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit "
    "(pass a name explicitly, or set name: in a YAML file)"
)
_JSON_FIX = 'use a finite number or a string ("nan")'
_FORMAT_FIX = "use 'yaml', 'jsonl' or 'csv'"
_MERGE_TAG = "tag:yaml.org,2002:merge"

Path_ = tuple[str | int, ...]


# --- errors ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GoldenIssue:
    """One problem in a golden set: where it is, what is wrong, and how to fix it."""

    source: str
    line: int | None
    case_id: str | None
    #: Path inside the case (``input[1].role``) or the file (``defaults.options``).
    field: str | None
    value: Any
    problem: str
    fix: str

    def __str__(self) -> str:
        parts = [self.source if self.line is None else f"{self.source}:{self.line}"]
        if self.case_id is not None:
            parts.append(f"case {self.case_id!r}")
        if self.field:
            parts.append(self.field)
        return f"{': '.join(parts)}: {self.problem}. Fix: {self.fix}."


class GoldenSetError(ValueError):
    """A golden set could not be read; ``errors`` lists every problem found in it."""

    def __init__(self, errors: Sequence[GoldenIssue]) -> None:
        self.errors: list[GoldenIssue] = list(errors)
        self.source = self.errors[0].source if self.errors else "<golden set>"
        n = len(self.errors)
        lines = [str(issue) for issue in self.errors[:_SHOWN_ISSUES]]
        if n > _SHOWN_ISSUES:
            lines.append(f"... and {n - _SHOWN_ISSUES} more")
        head = f"{self.source}: {n} problem{'' if n == 1 else 's'} in golden set"
        super().__init__(head + ":\n  " + "\n  ".join(lines))


def _issue(
    source: str,
    line: int | None,
    problem: str,
    fix: str,
    field: str | None = None,
    value: Any = None,
) -> GoldenIssue:
    return GoldenIssue(source, line, None, field, value, problem, fix)


def _error(source: str, line: int | None, problem: str, fix: str) -> GoldenSetError:
    return GoldenSetError([_issue(source, line, problem, fix)])


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _closest(word: str, choices: Sequence[str]) -> str | None:
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return lowered.get(word.lower()) or (close[0] if close else None)


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    match = _closest(word, choices)
    return f"did you mean {match!r}? " if match else ""


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


# --- validation (pydantic at the boundary) ---------------------------------------------


def _fail(problem: str, fix: str, path: Path_ = ()) -> PydanticCustomError:
    return PydanticCustomError(
        "golden", "{problem}", {"problem": problem, "fix": fix, "path": path}
    )


def _json_problem(value: Any, path: Path_ = (), depth: int = 0) -> tuple[Path_, str, str] | None:
    """The first place where ``value`` is not plain JSON, with the problem and the fix."""
    if depth > _MAX_DEPTH:
        return path, f"nested deeper than {_MAX_DEPTH} levels", "flatten the value"
    if value is None or isinstance(value, bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, f"{value} is not a JSON number", _JSON_FIX)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path, "text contains an unpaired surrogate", "write valid Unicode text"
        return None
    if isinstance(value, list):
        items: Iterable[tuple[str | int, Any]] = enumerate(value)
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                return path, f"key {_show(key)} is not text", "quote the key"
        items = value.items()
    else:
        kind = type(value).__name__
        fix = "use text, a number, true/false, null, a list or a mapping (quote dates)"
        return path, f"{kind} {_show(value)} is not a JSON value", fix
    for key, item in items:
        bad = _json_problem(key, path) or _json_problem(item, (*path, key), depth + 1)
        if bad:
            return bad
    return None


def _json_value(value: Any) -> Any:
    bad = _json_problem(value)
    if bad:
        raise _fail(bad[1], bad[2], bad[0])
    return value


def _named(what: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def check(mapping: dict[str, Any]) -> dict[str, Any]:
        if "" in mapping:
            raise _fail(f"{what} has an empty key", f"give every {what} key a name")
        return mapping

    return check


Json = Annotated[Any, AfterValidator(_json_value)]
_Metadata = Annotated[dict[str, Json], AfterValidator(_named("metadata"))]
_Options = Annotated[
    dict[str, Annotated[dict[str, Json], AfterValidator(_named("option"))]],
    AfterValidator(_named("options")),
]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    role: Literal["system", "user", "assistant", "tool"]
    name: str | None = None
    tool_calls: list[dict[str, Json]] | None = None
    tool_call_id: str | None = None
    content: Any  # declared last so its validator sees role and tool_calls

    @field_validator("content")
    @classmethod
    def _check_content(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            if info.data.get("role") == "assistant" and info.data.get("tool_calls"):
                return None
            raise _fail(
                "content is null",
                "write the message text (null is only allowed for an assistant message with "
                "tool_calls)",
            )
        if isinstance(value, str) or (
            isinstance(value, list) and all(isinstance(p, dict) for p in value)
        ):
            return _json_value(value)
        raise _fail(
            f"content {_show(value)} is not text",
            'write text, or a list of parts like {"type": "text", "text": "..."}',
        )


def _check_text_input(text: str) -> str:
    if not text:
        raise _fail("input is empty", "write the text to send to the target")
    return cast(str, _json_value(text))


def _check_messages(messages: list[_Message]) -> list[_Message]:
    if not messages:
        raise _fail("input has no messages", "add at least one {role, content} message")
    return messages


def _input_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "text"
    return "messages" if isinstance(value, list) else None


_Input = Annotated[
    Annotated[str, AfterValidator(_check_text_input), Tag("text")]
    | Annotated[list[_Message], AfterValidator(_check_messages), Tag("messages")],
    Discriminator(
        _input_kind,
        custom_error_type="golden_input",
        custom_error_message="input must be text or a list of chat messages",
    ),
]


class _CaseModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: str
    input: _Input
    expected: Json = None
    metadata: _Metadata = Field(default_factory=dict)
    options: _Options = Field(default_factory=dict)

    @field_validator("id", mode="before")
    @classmethod
    def _id_text(cls, value: Any) -> Any:
        if value is None:
            raise _fail("id is empty", _ID_FIX)
        # JSON datasets often number their cases; an integer id means its decimal text.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not value:
            raise _fail("id is empty", _ID_FIX)
        if value != value.strip():
            raise _fail(f"id {value!r} starts or ends with whitespace", "remove the spaces")
        if _CONTROL_RE.search(value):
            raise _fail(f"id {_show(value)} contains a control character", "use one line")
        if len(value) > _MAX_ID_LENGTH:
            raise _fail(f"id is {len(value)} characters long", f"use at most {_MAX_ID_LENGTH}")
        return cast(str, _json_value(value))


class _Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    metadata: _Metadata = Field(default_factory=dict)
    options: _Options = Field(default_factory=dict)


class _FileModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str | None = None
    description: str | None = None
    version: int = FORMAT_VERSION
    defaults: _Defaults = Field(default_factory=_Defaults)
    #: How to run the set (target, scorers, trials, gates): read by ``assay eval run`` and
    #: the pytest plugin, not part of the cases or their version.
    eval: dict[str, Any] | None = None
    cases: list[Any]

    @field_validator("version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value != FORMAT_VERSION:
            raise _fail(
                f"format version {value} is not supported",
                f"write version: {FORMAT_VERSION} (or upgrade assay to read newer files)",
            )
        return value


# --- from pydantic errors to issues ----------------------------------------------------


def _path_text(path: Path_, limit: int = 12) -> str:
    out = ""
    for part in path[:limit]:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out + ("..." if len(path) > limit else "")


def _line_of(lines: Mapping[Path_, int], path: Path_, default: int | None) -> int | None:
    # Keys are recorded as written, so a key YAML reads as a number is found by its text.
    as_text = tuple(str(p) for p in path)
    for end in range(len(path), 0, -1):
        line = lines.get(path[:end], lines.get(as_text[:end]))
        if line is not None:
            return line
    return default


_MISSING: dict[Path_, tuple[str, str]] = {
    ("id",): ("id is missing", _ID_FIX),
    ("input",): ("input is missing", "add input: the text (or chat messages) for the target"),
    ("cases",): ("cases is missing", "add cases: with a list of cases"),
    ("role",): ("message has no role", f"add role: one of {', '.join(ROLES)}"),
    ("content",): ("message has no content", "add content: the message text"),
}


def _explain(kind: str, loc: Path_, value: Any, etype: str) -> tuple[str, str]:
    """Problem and fix for one pydantic error, worded for someone editing the file."""
    last = loc[-1] if loc else None
    in_message = len(loc) >= 2 and loc[0] == "input"
    if etype == "missing":
        key = loc[-1:] if in_message else loc
        return _MISSING.get(key, (f"{last} is missing", f"add {last}"))
    if etype == "extra_forbidden":
        allowed: Sequence[str] = CASE_FIELDS
        if kind == "file":
            allowed = ("metadata", "options") if loc[0] == "defaults" else _FILE_FIELDS
        elif in_message:
            allowed = _MESSAGE_FIELDS
        hint = _did_you_mean(str(last), allowed)
        if kind == "file" and loc == (last,) and last in CASE_FIELDS and not hint:
            hint = "cases belong in the list under cases:; "
        return f"unknown field {last!r}", f"{hint}allowed fields are {', '.join(allowed)}"
    if etype == "string_type":
        return f"{'id' if loc == ('id',) else 'value'} {_show(value)} is not text", "quote it"
    if etype == "literal_error":
        return f"role {_show(value)} is not a chat role", f"use one of {', '.join(ROLES)}"
    if etype in ("dict_type", "model_type", "model_attributes_type"):
        if not loc:
            problem = f"a case must be a mapping, not {_show(value)}"
            return problem, "write each case as a mapping with at least id and input"
        if in_message:
            return f"message {_show(value)} is not a mapping", "write {role: ..., content: ...}"
        if "options" in loc:
            problem = "options must map a scorer name to a mapping of its arguments"
            return problem, "write options: {scorer: {argument: value}}"
        return f"{_path_text(loc)} must be a mapping", "write it as key: value pairs"
    if etype == "list_type":
        return f"{_path_text(loc)} must be a list", "write a list (one '- item' per line)"
    if etype == "int_type":
        return f"{_show(value)} is not an integer", f"write version: {FORMAT_VERSION}"
    if etype == "golden_input":
        problem = f"input {_show(value)} is neither text nor a list of messages"
        return problem, "write input as text, or as a list of {role, content} messages"
    return etype, "see docs/goldens.md"  # pragma: no cover - every type we produce is above


def _translate(
    exc: ValidationError,
    kind: Literal["case", "file"],
    source: str,
    rec: _Record,
    case_id: str | None = None,
) -> list[GoldenIssue]:
    issues = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if p != "[key]")
        if len(loc) >= 2 and loc[0] == "input" and loc[1] in ("text", "messages"):
            loc = (loc[0], *loc[2:])  # drop the union tag pydantic puts in the path
        value = None if err["type"] == "missing" else err["input"]
        if err["type"] == "golden":
            ctx = err.get("ctx") or {}
            loc, problem, fix = (*loc, *ctx["path"]), ctx["problem"], ctx["fix"]
        elif "[key]" in err["loc"]:
            problem, fix = f"key {_show(value)} is not text", "quote the key"
        else:
            problem, fix = _explain(kind, loc, value, err["type"])
        line = _line_of(rec.lines, loc, rec.line)
        field = _path_text(loc) or None
        issues.append(GoldenIssue(source, line, case_id, field, value, problem, fix))
    return issues


# --- from records to a golden set ------------------------------------------------------


@dataclass(slots=True)
class _Record:
    """One case (or a YAML file's header) as read from a file, before validation."""

    line: int | None
    data: Any
    #: Line of each path inside the case (YAML knows them; other formats use ``line``).
    lines: dict[Path_, int] = field(default_factory=dict)
    issues: list[GoldenIssue] = field(default_factory=list)


@dataclass(slots=True)
class _Parsed:
    records: list[_Record]
    issues: list[GoldenIssue]
    name: str | None = None
    name_line: int | None = None
    description: str | None = None
    defaults: _Defaults = field(default_factory=_Defaults)


def _case_of(model: _CaseModel, defaults: _Defaults) -> Case:
    case_input: str | list[dict[str, Any]]
    if isinstance(model.input, str):
        case_input = model.input
    else:
        keep = ("name", "tool_calls", "tool_call_id")
        case_input = [
            {"role": m.role, "content": m.content}
            | {k: getattr(m, k) for k in keep if getattr(m, k) is not None}
            for m in model.input
        ]
    top, base = model.options, defaults.options
    options = {s: {**base.get(s, {}), **top.get(s, {})} for s in (*base, *top)}
    return Case(
        id=model.id,
        input=case_input,
        expected=model.expected,
        metadata={**defaults.metadata, **model.metadata},
        # A scorer with no overrides means nothing; dropping it keeps versions stable.
        options={s: args for s, args in options.items() if args},
    )


def _validate_record(
    rec: _Record, source: str, defaults: _Defaults
) -> tuple[Case | None, str | None, list[GoldenIssue]]:
    raw_id = rec.data.get("id") if isinstance(rec.data, dict) else None
    known = isinstance(raw_id, str | int) and not isinstance(raw_id, bool)
    case_id = str(raw_id) if known else None
    issues = [replace(i, case_id=case_id) for i in rec.issues]
    try:
        model = _CaseModel.model_validate(rec.data)
    except ValidationError as exc:
        return None, case_id, issues + _translate(exc, "case", source, rec, case_id)
    return _case_of(model, defaults), model.id, issues


def _build(
    parsed: _Parsed, *, source: str, name: str | None, default_name: str | None
) -> GoldenSet:
    issues = list(parsed.issues)
    chosen, line, origin = name, None, ""
    if not name:
        chosen, line = (parsed.name, parsed.name_line) if parsed.name else (default_name, None)
        origin = "" if parsed.name else " (taken from the file name)"
    if chosen is None:
        issues.append(_issue(source, None, "the golden set has no name", "pass a name"))
    elif not _NAME_RE.fullmatch(chosen):
        problem = f"golden set name {_show(chosen)}{origin} is not valid"
        issues.append(_issue(source, line, problem, _NAME_FIX, "name", chosen))
    cases: list[Case] = []
    first_line: dict[str, int | None] = {}
    for rec in parsed.records:
        case, case_id, found = _validate_record(rec, source, parsed.defaults)
        issues += found
        if case_id is not None and case_id in first_line:
            where = first_line[case_id]
            problem = f"duplicate id {case_id!r}" + (
                f" (first used at line {where})" if where else ""
            )
            issue = _issue(source, rec.line, problem, "give every case its own id", "id", case_id)
            issues.append(replace(issue, case_id=case_id))
            continue
        if case_id is not None:
            first_line[case_id] = rec.line
        if case is not None:
            cases.append(case)
    if not parsed.records and not issues:
        issues.append(_issue(source, None, "the golden set has no cases", "add at least one"))
    if issues or chosen is None:
        raise GoldenSetError(sorted(issues, key=lambda i: i.line or 0))
    return _golden(chosen, parsed.description, cases, source)


def _golden(
    name: str, description: str | None, cases: Iterable[Case], source: str | None
) -> GoldenSet:
    ordered = tuple(sorted(cases, key=lambda c: c.id))
    return GoldenSet(name, description, ordered, version_of(ordered), source)


# --- YAML ------------------------------------------------------------------------------


class _YamlLoader(_BaseLoader):
    """Safe YAML without implicit timestamps: ``2024-01-01`` stays the text it was written as."""


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}


def _node_lines(
    node: yaml.Node, path: Path_, rec: _Record, source: str, skip: yaml.Node | None = None
) -> None:
    """Record the line of every path under ``node`` (but not inside ``skip``) and report
    duplicate mapping keys."""
    stack: list[tuple[yaml.Node, Path_]] = [(node, path)]
    visited: set[int] = set()
    while stack:
        current, at = stack.pop()
        rec.lines.setdefault(at, current.start_mark.line + 1)
        # An alias repeats a node already walked: its lines are those of the anchor.
        if id(current) in visited or len(at) > _MAX_DEPTH or current is skip:
            continue
        visited.add(id(current))
        if isinstance(current, yaml.SequenceNode):
            stack.extend((item, (*at, i)) for i, item in enumerate(current.value))
        if not isinstance(current, yaml.MappingNode):
            continue
        seen: dict[str, int] = {}
        for key_node, value_node in current.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue
            key, line = key_node.value, key_node.start_mark.line + 1
            if key in seen:
                problem = f"duplicate key {key!r} (first at line {seen[key]})"
                fix = "remove one of them (YAML would keep only the last)"
                rec.issues.append(_issue(source, line, problem, fix, _path_text((*at, key)), key))
                continue
            seen[key] = rec.lines[(*at, key)] = line
            stack.append((value_node, (*at, key)))


def _plain_id(case_node: yaml.Node) -> str | None:
    """The id as written when it is an unquoted scalar (``id: 007`` means ``"007"``)."""
    for key_node, value_node in case_node.value if isinstance(case_node, yaml.MappingNode) else ():
        if (
            getattr(key_node, "value", None) == "id"
            and isinstance(value_node, yaml.ScalarNode)
            and not value_node.style  # plain: libyaml says "", PyYAML None
            and value_node.tag != "tag:yaml.org,2002:null"
        ):
            return str(value_node.value)
    return None


def _compose_yaml(text: str, source: str) -> tuple[Any, _Record, list[tuple[_Record, str | None]]]:
    """The document's value, its header's lines, and one record per node under cases."""
    loader = _YamlLoader(text)
    header = _Record(line=None, data=None)
    try:
        root = loader.get_single_node()
        case_nodes: list[yaml.Node] = []
        if isinstance(root, yaml.SequenceNode):
            case_nodes = list(root.value)
        elif isinstance(root, yaml.MappingNode):
            cases = [v for k, v in root.value if getattr(k, "value", None) == "cases"]
            if cases and isinstance(cases[-1], yaml.SequenceNode):
                case_nodes = list(cases[-1].value)
            _node_lines(root, (), header, source, skip=cases[-1] if case_nodes else None)
        records = []
        for node in case_nodes:
            rec = _Record(line=node.start_mark.line + 1, data=None)
            _node_lines(node, (), rec, source)
            records.append((rec, _plain_id(node)))
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = f"not valid YAML: {exc.problem or exc.context}"
        fix = "fix the YAML syntax at this line (indentation, quotes, a missing ':')"
        if isinstance(exc, yaml.constructor.ConstructorError):
            fix = "remove the tag: golden files hold plain values only"
        elif isinstance(exc, yaml.composer.ComposerError):
            fix = "keep one YAML document per file (remove the extra '---')"
        raise _error(source, mark.line + 1 if mark else None, problem, fix) from None
    except yaml.YAMLError as exc:
        line = None
        if isinstance(exc, yaml.reader.ReaderError):
            line = text.count("\n", 0, exc.position) + 1
        problem = f"not valid YAML: {str(exc).splitlines()[0]}"
        fix = 'remove the character, or write it escaped in double quotes ("\\x07")'
        raise _error(source, line, problem, fix) from None
    finally:
        loader.dispose()
    return data, header, records


def _read_yaml(text: str, source: str) -> _Parsed:
    data, header, records = _compose_yaml(text, source)
    parsed = _Parsed([], header.issues)
    if isinstance(data, dict):
        try:
            model = _FileModel.model_validate(data)
            parsed.name, parsed.description = model.name, model.description
            parsed.defaults = model.defaults
        except ValidationError as exc:
            parsed.issues += _translate(exc, "file", source, header)
        parsed.name_line = header.lines.get(("name",))
        cases = data.get("cases")
    elif isinstance(data, list):
        cases = data
    else:
        what = "the file is empty" if data is None else f"the top level is {_show(data)}, not"
        what += "" if data is None else " a list of cases or a mapping"
        fix = "write a list of cases, or a mapping with name: and cases:"
        return _Parsed([], [_issue(source, None if data is None else 1, what, fix)])
    if not isinstance(cases, list):
        return parsed
    if len(cases) != len(records):  # cases came through a merge key: no node lines
        records = [(_Record(line=None, data=None), None) for _ in cases]
    for (rec, plain_id), item in zip(records, cases, strict=True):
        # An unquoted id that YAML reads as a number or boolean means the text as written.
        if isinstance(item, dict) and plain_id is not None and item.get("id") is not None:
            item = item if isinstance(item["id"], str) else {**item, "id": plain_id}
        rec.data = item
        parsed.records.append(rec)
    return parsed


# --- JSONL -----------------------------------------------------------------------------


class _NonFinite(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _NonFinite(name)


def _read_jsonl(text: str, source: str) -> _Parsed:
    parsed = _Parsed([], [])
    # Only "\n" ends a line: str.splitlines() would also split on U+2028 inside strings.
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        dups: list[str] = []

        def pairs(items: list[tuple[str, Any]], dups: list[str] = dups) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for key, value in items:
                if key in out:
                    dups.append(key)
                out[key] = value
            return out

        try:
            data = json.loads(raw, object_pairs_hook=pairs, parse_constant=_no_constant)
        except _NonFinite as exc:
            parsed.issues.append(_issue(source, number, f"{exc} is not a JSON number", _JSON_FIX))
            continue
        except json.JSONDecodeError as exc:
            problem = f"not valid JSON: {exc.msg} at column {exc.colno}"
            fix = "write one JSON object per line (blank lines are allowed)"
            if raw.strip() in ("[", "]") or raw.lstrip().startswith("[{"):
                fix = "this looks like a JSON array; " + fix
            parsed.issues.append(_issue(source, number, problem, fix))
            continue
        rec = _Record(line=number, data=data)
        fix = "remove one of them (JSON would keep only the last)"
        rec.issues += [_issue(source, number, f"duplicate key {k!r}", fix, k, k) for k in dups]
        parsed.records.append(rec)
    return parsed


# --- CSV -------------------------------------------------------------------------------

_CSV_COLUMNS = "columns are id, input, expected, metadata.<key> and options.<scorer>.<argument>"


def _decode_cell(cell: str) -> Any:
    """A cell's value: its JSON value when it parses as JSON, else the text itself."""
    try:
        return json.loads(cell, parse_constant=_no_constant)
    except ValueError:
        return cell


def _decode_input_cell(cell: str) -> Any:
    """An input cell: a JSON list (messages) or JSON string when it parses so, else text.

    Raises ValueError when the cell starts like messages (``[{``) but is not valid JSON."""
    try:
        value = json.loads(cell, parse_constant=_no_constant)
    except ValueError:
        if re.match(r"\s*\[\s*\{", cell):
            raise
        return cell
    return value if isinstance(value, list | str) else cell


def _csv_column(name: str) -> Path_ | None:
    if name in ("id", "input", "expected"):
        return (name,)
    group, _, rest = name.partition(".")
    if group == "metadata" and rest:
        return ("metadata", rest)
    scorer, _, arg = rest.partition(".")
    return ("options", scorer, arg) if group == "options" and scorer and arg else None


def _csv_columns(header: list[str], source: str) -> list[Path_]:
    columns: list[Path_] = []
    issues: list[GoldenIssue] = []
    seen: dict[str, int] = {}
    for index, name in enumerate(header, start=1):
        path = _csv_column(name)
        if path is None:
            prefix, _, rest = name.partition(".")
            group = _closest(prefix, ("metadata", "options")) if rest else None
            hint = f"did you mean {group + '.' + rest!r}? " if group else ""
            hint = hint or _did_you_mean(name, ("id", "input", "expected"))
            problem = f"unknown column {name!r} (column {index})"
            issues.append(_issue(source, 1, problem, hint + _CSV_COLUMNS, name, name))
        elif name in seen:
            problem = f"column {name!r} appears twice (columns {seen[name]} and {index})"
            issues.append(_issue(source, 1, problem, "remove or rename one", name, name))
        seen.setdefault(name, index)
        columns.append(path or ())
    for required in ("id", "input"):
        if required not in seen:
            problem = f"the header has no {required} column"
            issues.append(_issue(source, 1, problem, f"add an {required} column"))
    if issues:
        raise GoldenSetError(issues)
    return columns


def _read_csv(text: str, source: str) -> _Parsed:
    parsed = _Parsed([], [])
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise _error(source, None, "the file is empty", "write a header row: id,input")
        columns = _csv_columns(header, source)
        end = reader.line_num
        for row in reader:
            start, end = end + 1, reader.line_num
            if not any(row):
                continue
            if len(row) != len(header):
                problem = f"the row has {len(row)} cells but the header has {len(header)}"
                fix = "quote cells that contain commas or line breaks, and fill every column"
                parsed.issues.append(_issue(source, start, problem, fix))
                continue
            parsed.records.append(_csv_record(columns, row, start, source))
    except csv.Error as exc:
        problem = f"not valid CSV: {exc}"
        fix = "check the quoting near this line (cells over 128 KiB need JSONL or YAML)"
        parsed.issues.append(_issue(source, reader.line_num, problem, fix))
    return parsed


def _csv_record(columns: list[Path_], row: list[str], line: int, source: str) -> _Record:
    data: dict[str, Any] = {}
    rec = _Record(line=line, data=data)
    for path, cell in zip(columns, row, strict=True):
        if cell == "":
            continue  # an empty cell is an absent value
        if path == ("id",):
            data["id"] = cell  # ids are text, never decoded
        elif path == ("input",):
            try:
                data["input"] = _decode_input_cell(cell)
            except ValueError as exc:
                problem = f"input looks like chat messages but is not valid JSON ({exc})"
                fix = 'fix the JSON, or write the text as a JSON string ("...") to keep it text'
                rec.issues.append(_issue(source, line, problem, fix, "input", cell))
                data["input"] = cell
        elif path == ("expected",):
            data["expected"] = _decode_cell(cell)
        elif path[0] == "metadata":
            data.setdefault("metadata", {})[path[1]] = _decode_cell(cell)
        else:
            data.setdefault("options", {}).setdefault(path[1], {})[path[2]] = _decode_cell(cell)
    return rec


# --- public API: reading ----------------------------------------------------------------


def format_of(path: str | os.PathLike[str]) -> GoldenFormat:
    """The golden file format for a path's extension (GoldenSetError for an unknown one)."""
    suffix = Path(path).suffix.lower()
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    fix = "name the file .yaml/.yml, .jsonl or .csv"
    if suffix == ".json":
        fix = f"write one case object per line in a .jsonl file, or use YAML ({fix})"
    raise _error(str(path), None, f"unknown golden file type {suffix or '(none)'!r}", fix)


_READERS: dict[str, Callable[[str, str], _Parsed]] = {
    "yaml": _read_yaml,
    "jsonl": _read_jsonl,
    "csv": _read_csv,
}


def load_golden_set(path: str | os.PathLike[str], *, name: str | None = None) -> GoldenSet:
    """Read and validate a golden file; the format comes from the extension.

    The name is ``name`` if given, else the YAML ``name:``, else the file's stem.
    Raises GoldenSetError listing every problem found.
    """
    p = Path(path)
    source = str(p)
    fmt = format_of(p)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise _error(source, None, "file not found", "check the path") from None
    except OSError as exc:
        problem = f"cannot read the file: {exc.strerror or exc}"
        raise _error(source, None, problem, "pass a readable file") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        problem = f"the file is not UTF-8 text (byte 0x{data[exc.start]:02x})"
        raise _error(source, line, problem, "save the file as UTF-8") from None
    return _build(_READERS[fmt](text, source), source=source, name=name, default_name=p.stem)


def parse_golden_set(
    text: str, *, format: GoldenFormat, name: str | None = None, source: str = "<string>"
) -> GoldenSet:
    """Validate golden-set text in a given format; ``source`` names it in error messages."""
    if format not in _READERS:
        raise _error(source, None, f"unknown golden format {format!r}", _FORMAT_FIX)
    parsed = _READERS[format](text.removeprefix("\ufeff"), source)
    return _build(parsed, source=source, name=name, default_name=None)


def golden_set_from_cases(
    name: str, cases: Iterable[Case], *, description: str | None = None, source: str | None = None
) -> GoldenSet:
    """Validate cases built in code (or fetched from storage) into a versioned golden set."""
    records = [_Record(line=None, data=case_to_dict(c)) for c in cases]
    parsed = _Parsed(records, [], description=description)
    built = _build(parsed, source=source or "<cases>", name=name, default_name=None)
    return replace(built, source=source)


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


def case_from_dict(data: Mapping[str, Any], *, source: str = "<dict>") -> Case:
    """Validate a case mapping (as :func:`case_to_dict` makes) back into a Case."""
    case, _, issues = _validate_record(_Record(line=None, data=dict(data)), source, _Defaults())
    if issues or case is None:
        raise GoldenSetError(issues)
    return case


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


# --- public API: writing ----------------------------------------------------------------


def _file_case(case: Case) -> dict[str, Any]:
    """A case as written to a file: empty optional fields left out."""
    options = {s: args for s, args in case.options.items() if args}
    out = {"id": case.id, "input": case.input, "expected": case.expected}
    out = out if case.expected is not None else {"id": case.id, "input": case.input}
    return (
        out
        | ({"metadata": case.metadata} if case.metadata else {})
        | ({"options": options} if options else {})
    )


class _YamlDumper(_BaseDumper):
    """Safe YAML that writes multi-line text as literal blocks."""


def _represent_str(dumper: _YamlDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_YamlDumper.add_representer(str, _represent_str)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _encode_cell(value: Any, decode: Callable[[str], Any] = _decode_cell) -> str:
    """The cell text that ``decode`` reads back as ``value``: text as is when that is
    unambiguous, everything else (and ambiguous text) as JSON."""
    if isinstance(value, str) and value:
        try:
            decoded = decode(value)
        except ValueError:
            decoded = None
        if isinstance(decoded, str) and decoded == value:
            return value
    return _dumps(value)


def _dump_csv(golden: GoldenSet) -> str:
    meta_keys = sorted({k for c in golden.cases for k in c.metadata})
    option_keys = sorted({(s, a) for c in golden.cases for s in c.options for a in c.options[s]})
    for scorer, _ in option_keys:
        if "." in scorer:
            problem = f"scorer name {scorer!r} contains '.', which a CSV column cannot hold"
            raise _error(golden.source or golden.name, None, problem, "export to YAML or JSONL")
    out = io.StringIO(newline="")
    # With "\r\n" as terminator the writer quotes every cell holding "\r" or "\n".
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(
        ["id", "input", "expected"]
        + [f"metadata.{k}" for k in meta_keys]
        + [f"options.{s}.{a}" for s, a in option_keys]
    )
    for case in golden.cases:
        row = [case.id, _encode_cell(case.input, _decode_input_cell)]
        row.append("" if case.expected is None else _encode_cell(case.expected))
        row += [_encode_cell(case.metadata[k]) if k in case.metadata else "" for k in meta_keys]
        row += [
            _encode_cell(case.options[s][a]) if a in case.options.get(s, {}) else ""
            for s, a in option_keys
        ]
        writer.writerow(row)
    return out.getvalue()


def dump_golden_set(golden: GoldenSet, *, format: GoldenFormat) -> str:
    """The golden set as file text. YAML keeps name and description; JSONL and CSV hold
    only the cases (their name comes from the file name when loaded)."""
    if format == "yaml":
        doc: dict[str, Any] = {"version": FORMAT_VERSION, "name": golden.name}
        if golden.description:
            doc["description"] = golden.description
        doc["cases"] = [_file_case(c) for c in golden.cases]
        kw: dict[str, Any] = {"sort_keys": False, "allow_unicode": True, "width": 100}
        return str(yaml.dump(doc, Dumper=_YamlDumper, **kw))
    if format == "jsonl":
        return "".join(_dumps(_file_case(c)) + "\n" for c in golden.cases)
    if format == "csv":
        return _dump_csv(golden)
    raise _error(golden.name, None, f"unknown golden format {format!r}", _FORMAT_FIX)


def write_golden_set(
    golden: GoldenSet, path: str | os.PathLike[str], *, format: GoldenFormat | None = None
) -> None:
    """Write a golden set atomically; the format comes from the extension unless given."""
    p = Path(path)
    text = dump_golden_set(golden, format=format or format_of(p))
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8", newline="")
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)


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
