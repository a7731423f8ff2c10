"""Golden-set validation: pydantic models for cases and files, and their errors translated
into :class:`GoldenIssue` (file, line, case, field, problem, fix)."""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal, cast

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

from assay.goldens.versions import GoldenSet, case_to_dict, version_of
from assay.model import Case

#: The golden file format this module reads and writes (the YAML ``version:`` key).
FORMAT_VERSION = 1
#: Chat roles accepted in a case's input messages.
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")
#: The fields a case may have; anything else is reported as a typo.
CASE_FIELDS: tuple[str, ...] = ("id", "input", "expected", "metadata", "options")

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


def golden_set_from_cases(
    name: str, cases: Iterable[Case], *, description: str | None = None, source: str | None = None
) -> GoldenSet:
    """Validate cases built in code (or fetched from storage) into a versioned golden set."""
    records = [_Record(line=None, data=case_to_dict(c)) for c in cases]
    parsed = _Parsed(records, [], description=description)
    built = _build(parsed, source=source or "<cases>", name=name, default_name=None)
    return replace(built, source=source)


def case_from_dict(data: Mapping[str, Any], *, source: str = "<dict>") -> Case:
    """Validate a case mapping (as :func:`case_to_dict` makes) back into a Case."""
    case, _, issues = _validate_record(_Record(line=None, data=dict(data)), source, _Defaults())
    if issues or case is None:
        raise GoldenSetError(issues)
    return case
