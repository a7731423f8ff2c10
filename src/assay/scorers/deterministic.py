"""Built-in rule scorers: exact, normalized, contains, regex, json_valid, json_schema, numeric.

Each gives value 1.0 (passed) or 0.0 (failed, with an explanation saying why), records
its name and every argument (defaults included) in its spec, and takes per-case
overrides of any argument from ``case.options[<key or name>]``.
"""

from __future__ import annotations

import json
import math
import re
import string
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Generic, TypeVar

import jsonschema
import yaml

from assay.model import Case, Output, Score, ScorerSpec
from assay.scorers.base import (
    Scorer,
    ScorerError,
    case_options,
    expected_texts,
    has_override,
    option_bool,
    option_choice,
    option_int,
    option_number,
    option_texts,
)
from assay.scorers.registry import scorer

P = TypeVar("P")

#: Longest stretch of text quoted back in an explanation.
_QUOTE = 80


def _quote(text: str) -> str:
    return repr(text if len(text) <= _QUOTE else text[: _QUOTE - 1] + "…")


def _passed(**metadata: Any) -> Score:
    return Score(value=1.0, passed=True, metadata=metadata)


def _failed(explanation: str, **metadata: Any) -> Score:
    return Score(value=0.0, passed=False, explanation=explanation, metadata=metadata)


@dataclass
class RuleScorer(Generic[P]):
    """A deterministic scorer: options parsed once at build time, re-parsed for a case
    that overrides them, then a pure check of (params, case, output)."""

    spec: ScorerSpec
    params: P
    parse: Callable[[Mapping[str, Any]], P]
    check: Callable[[P, Case, Output], Score]

    async def score(self, case: Case, output: Output) -> Score:
        params = self.params
        if has_override(case, self.spec):
            options = case_options(case, self.spec, allowed=self.spec.args)
            try:
                params = self.parse(options)
            except ScorerError as exc:
                raise ScorerError(f"case {case.id!r}: {exc}") from None
        return self.check(params, case, output)


def _rule(
    name: str,
    args: dict[str, Any],
    parse: Callable[[Mapping[str, Any]], P],
    check: Callable[[P, Case, Output], Score],
) -> Scorer:
    return RuleScorer(ScorerSpec(name, args), parse(args), parse, check)


# --- exact -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Exact:
    strip: bool
    case_sensitive: bool


def _parse_exact(args: Mapping[str, Any]) -> _Exact:
    return _Exact(
        strip=option_bool("exact", "strip", args["strip"]),
        case_sensitive=option_bool("exact", "case_sensitive", args["case_sensitive"]),
    )


def _check_exact(p: _Exact, case: Case, output: Output) -> Score:
    def prep(text: str) -> str:
        text = text.strip() if p.strip else text
        return text if p.case_sensitive else text.casefold()

    wanted = expected_texts(case, "exact")
    got = prep(output.text)
    if any(prep(w) == got for w in wanted):
        return _passed()
    return _failed(f"output {_quote(output.text)} != expected {_expected_list(wanted)}")


def _expected_list(wanted: list[str]) -> str:
    if len(wanted) == 1:
        return _quote(wanted[0])
    return "any of " + ", ".join(_quote(w) for w in wanted)


@scorer("exact", description="output text equals the expected answer")
def exact(*, strip: bool = True, case_sensitive: bool = True) -> Scorer:
    """Pass when the output text equals ``case.expected`` (or any item of a list)."""
    return _rule(
        "exact", {"strip": strip, "case_sensitive": case_sensitive}, _parse_exact, _check_exact
    )


# --- normalized --------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


@dataclass(frozen=True)
class _Normalized:
    nfkc: bool
    lowercase: bool
    punctuation: bool
    whitespace: bool
    articles: bool


def normalize(
    text: str,
    *,
    nfkc: bool = True,
    lowercase: bool = True,
    punctuation: bool = True,
    whitespace: bool = True,
    articles: bool = False,
) -> str:
    """Text in the ``normalized`` scorer's canonical form (each step can be turned off)."""
    if nfkc:
        text = unicodedata.normalize("NFKC", text)
    if lowercase:
        text = text.casefold()
    if punctuation:
        # Unicode punctuation (category P*) and ASCII symbols are deleted, not spaced:
        # "U.S." and "US" compare equal, as in SQuAD's answer normalisation.
        text = "".join(
            ch
            for ch in text
            if not unicodedata.category(ch).startswith("P") and ch not in string.punctuation
        )
    if articles:
        text = _ARTICLES.sub(" ", text)
    if whitespace:
        text = " ".join(text.split())
    return text


def _parse_normalized(args: Mapping[str, Any]) -> _Normalized:
    names = ("nfkc", "lowercase", "punctuation", "whitespace", "articles")
    return _Normalized(*(option_bool("normalized", n, args[n]) for n in names))


def _check_normalized(p: _Normalized, case: Case, output: Output) -> Score:
    def norm(text: str) -> str:
        return normalize(
            text,
            nfkc=p.nfkc,
            lowercase=p.lowercase,
            punctuation=p.punctuation,
            whitespace=p.whitespace,
            articles=p.articles,
        )

    wanted = expected_texts(case, "normalized")
    got = norm(output.text)
    if any(norm(w) == got for w in wanted):
        return _passed(normalized=got)
    shown = [norm(w) for w in wanted]
    return _failed(
        f"normalized output {_quote(got)} != normalized expected {_expected_list(shown)}",
        normalized=got,
    )


@scorer("normalized", description="output equals expected after normalisation")
def normalized(
    *,
    nfkc: bool = True,
    lowercase: bool = True,
    punctuation: bool = True,
    whitespace: bool = True,
    articles: bool = False,
) -> Scorer:
    """Pass when output and expected match after Unicode NFKC, case folding, punctuation
    removal, whitespace collapsing and (optionally) dropping English articles."""
    args = {
        "nfkc": nfkc,
        "lowercase": lowercase,
        "punctuation": punctuation,
        "whitespace": whitespace,
        "articles": articles,
    }
    return _rule("normalized", args, _parse_normalized, _check_normalized)


# --- contains ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Contains:
    value: list[str] | None
    match: str
    case_sensitive: bool


def _parse_contains(args: Mapping[str, Any]) -> _Contains:
    value = args["value"]
    return _Contains(
        value=None if value is None else option_texts("contains", "value", value),
        match=option_choice("contains", "match", args["match"], ("all", "any")),
        case_sensitive=option_bool("contains", "case_sensitive", args["case_sensitive"]),
    )


def _check_contains(p: _Contains, case: Case, output: Output) -> Score:
    needles = p.value if p.value is not None else expected_texts(case, "contains")
    hay = output.text if p.case_sensitive else output.text.casefold()
    found = [n for n in needles if (n if p.case_sensitive else n.casefold()) in hay]
    missing = [n for n in needles if n not in found]
    if (p.match == "all" and not missing) or (p.match == "any" and found):
        return _passed(found=found)
    quoted = ", ".join(_quote(n) for n in missing)
    if p.match == "any":
        return _failed(f"output contains none of {quoted}", found=found, missing=missing)
    return _failed(
        f"output is missing {len(missing)} of {len(needles)}: {quoted}",
        found=found,
        missing=missing,
    )


@scorer("contains", description="output contains a value (or all / any of several)")
def contains(
    *, value: str | list[str] | None = None, match: str = "all", case_sensitive: bool = False
) -> Scorer:
    """Pass when the output contains ``value`` (default: the expected answer); for a list,
    all of them (``match="all"``) or at least one (``match="any"``)."""
    args = {"value": value, "match": match, "case_sensitive": case_sensitive}
    return _rule("contains", args, _parse_contains, _check_contains)


# --- regex -------------------------------------------------------------------------------

_FLAGS = {
    "ignorecase": re.IGNORECASE,
    "multiline": re.MULTILINE,
    "dotall": re.DOTALL,
    "verbose": re.VERBOSE,
    "ascii": re.ASCII,
}
_FLAG_LETTERS = {
    "i": re.IGNORECASE,
    "m": re.MULTILINE,
    "s": re.DOTALL,
    "x": re.VERBOSE,
    "a": re.ASCII,
}


def _parse_flags(value: Any) -> int:
    items = value if isinstance(value, list | tuple) else [value]
    flags = 0
    for item in items:
        if not isinstance(item, str):
            raise _flag_error(value)
        if item.lower() in _FLAGS:
            flags |= _FLAGS[item.lower()]
        elif item and all(ch in _FLAG_LETTERS for ch in item.lower()):
            for ch in item.lower():
                flags |= _FLAG_LETTERS[ch]
        elif item:
            raise _flag_error(value)
    return flags


def _flag_error(value: Any) -> ScorerError:
    return ScorerError(
        f"scorer 'regex': option 'flags' must be flag names ({', '.join(_FLAGS)}) or "
        f"letters (i, m, s, x, a), as a string or a list, got {value!r}"
    )


@lru_cache(maxsize=1024)
def _compile(pattern: str, flags: int) -> re.Pattern[str]:
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise ScorerError(
            f"scorer 'regex': pattern {pattern!r} is not a valid regular expression: {exc}"
        ) from None


@dataclass(frozen=True)
class _Regex:
    pattern: re.Pattern[str] | None
    flags: int
    full: bool


def _parse_regex(args: Mapping[str, Any]) -> _Regex:
    pattern, flags = args["pattern"], _parse_flags(args["flags"])
    if pattern is not None and not isinstance(pattern, str):
        raise ScorerError(f"scorer 'regex': option 'pattern' must be a string, got {pattern!r}")
    return _Regex(
        pattern=None if pattern is None else _compile(pattern, flags),
        flags=flags,
        full=option_bool("regex", "full", args["full"]),
    )


def _check_regex(p: _Regex, case: Case, output: Output) -> Score:
    if p.pattern is not None:
        patterns = [p.pattern]
    else:
        try:
            patterns = [_compile(t, p.flags) for t in expected_texts(case, "regex")]
        except ScorerError as exc:
            raise ScorerError(f"case {case.id!r} (pattern taken from expected): {exc}") from None
    text = output.text.strip() if p.full else output.text
    for pattern in patterns:
        found = pattern.fullmatch(text) if p.full else pattern.search(text)
        if found:
            return _passed(match=found.group(0)[:200], pattern=pattern.pattern)
    shown = " or ".join(f"/{pat.pattern}/" for pat in patterns)
    how = "does not fully match" if p.full else "has no match for"
    return _failed(f"output {_quote(output.text)} {how} {shown}")


@scorer("regex", description="output matches a regular expression")
def regex(*, pattern: str | None = None, flags: str | list[str] = "", full: bool = False) -> Scorer:
    """Pass when ``pattern`` (default: the expected answer) is found in the output, or
    matches the whole (stripped) output with ``full=True``."""
    return _rule(
        "regex", {"pattern": pattern, "flags": flags, "full": full}, _parse_regex, _check_regex
    )


# --- JSON --------------------------------------------------------------------------------

_FENCE = re.compile(r"```[ \t]*(?:json5?|jsonc)?[ \t]*\r?\n(.*?)```", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class _Found:
    """JSON located in an output: the value, where it was, or why nothing parsed."""

    ok: bool
    value: Any = None
    where: str = ""
    error: str = ""


def find_json(text: str, *, fenced: bool = True) -> _Found:
    """Parse the whole text as JSON, else (with ``fenced``) the first fenced code block
    (```json or untagged) that parses."""
    try:
        return _Found(True, json.loads(text), "text")
    except ValueError as exc:
        error = f"{exc}"
    if fenced:
        for i, block in enumerate(_FENCE.findall(text)):
            try:
                return _Found(True, json.loads(block), f"fenced block {i + 1}")
            except ValueError:
                continue
        if "```" in text:
            error += "; no fenced code block parsed either"
    return _Found(False, error=error)


@dataclass(frozen=True)
class _JsonValid:
    fenced: bool


def _parse_json_valid(args: Mapping[str, Any]) -> _JsonValid:
    return _JsonValid(option_bool("json_valid", "fenced", args["fenced"]))


def _check_json_valid(p: _JsonValid, case: Case, output: Output) -> Score:
    found = find_json(output.text, fenced=p.fenced)
    if found.ok:
        return _passed(where=found.where)
    return _failed(f"output is not valid JSON: {found.error}")


@scorer("json_valid", description="output is valid JSON (or has a ```json block)")
def json_valid(*, fenced: bool = True) -> Scorer:
    """Pass when the output parses as JSON, or (``fenced``) contains a fenced block that does."""
    return _rule("json_valid", {"fenced": fenced}, _parse_json_valid, _check_json_valid)


@dataclass(frozen=True)
class _JsonSchema:
    validator: Any
    fenced: bool
    max_errors: int


def _load_schema_file(path: str) -> Any:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScorerError(
            f"scorer 'json_schema': cannot read schema file {path!r}: {exc.strerror}; "
            f"check `path` (relative paths are from the current directory)"
        ) from None
    try:
        if file.suffix.lower() in (".yaml", ".yml"):
            return yaml.safe_load(text)
        return json.loads(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ScorerError(
            f"scorer 'json_schema': schema file {path!r} does not parse: {exc}"
        ) from None


@lru_cache(maxsize=256)
def _schema_from_file(path: str) -> str:
    # Cached as JSON text: the loaded schema is a mutable dict that must not be shared.
    return json.dumps(_load_schema_file(path))


def _parse_json_schema(args: Mapping[str, Any]) -> _JsonSchema:
    schema, path = args["schema"], args["path"]
    if (schema is None) == (path is None):
        raise ScorerError(
            "scorer 'json_schema' needs exactly one of `schema` (the schema inline) or "
            f"`path` (a .json or .yaml file), got schema={schema!r}, path={path!r}"
        )
    if path is not None:
        if not isinstance(path, str):
            raise ScorerError(f"scorer 'json_schema': `path` must be a string, got {path!r}")
        schema = json.loads(_schema_from_file(path))
    if not isinstance(schema, dict | bool):
        raise ScorerError(
            f"scorer 'json_schema': a schema is a JSON object (or true/false), got "
            f"{type(schema).__name__} {schema!r}"
        )
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)  # type: ignore[arg-type]  # boolean schemas are valid too
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "(root)"
        source = f"file {path!r}" if path is not None else "the inline `schema`"
        raise ScorerError(
            f"scorer 'json_schema': {source} is not a valid JSON Schema: {exc.message} at {where}"
        ) from None
    return _JsonSchema(
        validator=cls(schema),
        fenced=option_bool("json_schema", "fenced", args["fenced"]),
        max_errors=option_int("json_schema", "max_errors", args["max_errors"], minimum=1),
    )


def _check_json_schema(p: _JsonSchema, case: Case, output: Output) -> Score:
    found = find_json(output.text, fenced=p.fenced)
    if not found.ok:
        return _failed(f"output is not valid JSON: {found.error}")
    errors = sorted(p.validator.iter_errors(found.value), key=lambda e: (e.json_path, e.message))
    if not errors:
        return _passed(where=found.where)
    shown = [{"path": e.json_path, "message": _short(e.message)} for e in errors[: p.max_errors]]
    text = "; ".join(f"{e['path']}: {e['message']}" for e in shown)
    more = f" … and {len(errors) - len(shown)} more" if len(errors) > len(shown) else ""
    noun = "error" if len(errors) == 1 else "errors"
    return _failed(f"{len(errors)} schema {noun}: {text}{more}", errors=shown)


def _short(message: str, limit: int = 200) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"


@scorer("json_schema", description="output is JSON valid against a JSON Schema")
def json_schema(
    *,
    schema: dict[str, Any] | bool | None = None,
    path: str | None = None,
    fenced: bool = True,
    max_errors: int = 3,
) -> Scorer:
    """Pass when the output's JSON (found as by ``json_valid``) validates against the
    schema given inline or by file ``path``; failures list the first errors by JSON path."""
    args = {"schema": schema, "path": path, "fenced": fenced, "max_errors": max_errors}
    return _rule("json_schema", args, _parse_json_schema, _check_json_schema)


# --- numeric -----------------------------------------------------------------------------

# A number as people and models write it: optional sign (also U+2212), thousands groups,
# decimals, exponent. Not preceded by a letter, digit or dot (the "2" of "v2" is no
# number) and not followed by a digit (so "1,2345" is not read as "1,234").
_NUMBER = re.compile(
    r"(?<![\w.])[-+\u2212]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?(?!\d)"
)


def numbers_in(text: str) -> list[float]:
    """Every number in ``text``, in order ("1,234.5" -> 1234.5, "-3e2" -> -300.0)."""
    out: list[float] = []
    for m in _NUMBER.finditer(text):
        token = m.group(0).replace(",", "").replace("\u2212", "-")
        if not any(ch.isdigit() for ch in token):
            continue
        try:
            out.append(float(token))
        except ValueError:
            continue
    return out


@dataclass(frozen=True)
class _Numeric:
    pick: str
    abs_tol: float
    rel_tol: float


def _parse_numeric(args: Mapping[str, Any]) -> _Numeric:
    return _Numeric(
        pick=option_choice("numeric", "pick", args["pick"], ("last", "first")),
        abs_tol=option_number("numeric", "abs_tol", args["abs_tol"], minimum=0),
        rel_tol=option_number("numeric", "rel_tol", args["rel_tol"], minimum=0),
    )


def _expected_number(case: Case) -> float:
    value = case.expected
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        found = numbers_in(value)
        if len(found) == 1:
            return found[0]
    raise ScorerError(
        f"case {case.id!r}: scorer 'numeric' needs `expected` to be a number, got {value!r}"
    )


def _check_numeric(p: _Numeric, case: Case, output: Output) -> Score:
    wanted = _expected_number(case)
    data = output.data
    if isinstance(data, int | float) and not isinstance(data, bool):
        got, source = float(data), "the structured output"
    else:
        found = numbers_in(output.text)
        if not found:
            return _failed(f"no number in output {_quote(output.text)}", expected=wanted)
        got = found[-1] if p.pick == "last" else found[0]
        source = f"the {p.pick} number in the output"
    if math.isclose(got, wanted, rel_tol=p.rel_tol, abs_tol=p.abs_tol):
        return _passed(found=got, expected=wanted)
    return _failed(
        f"found {got:g} ({source}), expected {wanted:g} within abs_tol={p.abs_tol:g}, "
        f"rel_tol={p.rel_tol:g}",
        found=got,
        expected=wanted,
    )


@scorer("numeric", description="the number in the output equals the expected number")
def numeric(*, pick: str = "last", abs_tol: float = 0.0, rel_tol: float = 1e-9) -> Scorer:
    """Pass when the last (or first) number in the output is within ``abs_tol`` or
    ``rel_tol`` of the expected number (as ``math.isclose``)."""
    args = {"pick": pick, "abs_tol": abs_tol, "rel_tol": rel_tol}
    return _rule("numeric", args, _parse_numeric, _check_numeric)
