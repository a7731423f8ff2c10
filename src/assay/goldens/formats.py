"""Golden files: read YAML, JSONL and CSV into validated golden sets, and write them back.

See docs/goldens.md for the formats.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from assay.goldens.validation import (
    _JSON_FIX,
    _MAX_DEPTH,
    FORMAT_VERSION,
    GoldenIssue,
    GoldenSetError,
    Path_,
    _build,
    _closest,
    _did_you_mean,
    _error,
    _FileModel,
    _issue,
    _Parsed,
    _path_text,
    _Record,
    _show,
    _translate,
)
from assay.goldens.versions import GoldenSet
from assay.model import Case

try:  # libyaml is ~10x faster; the pure-Python classes behave the same
    from yaml import CSafeDumper as _BaseDumper
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeDumper as _BaseDumper  # type: ignore[assignment]
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

GoldenFormat = Literal["yaml", "jsonl", "csv"]

_EXTENSIONS: dict[str, GoldenFormat] = {
    ".yaml": "yaml",
    ".yml": "yaml",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
}
_FORMAT_FIX = "use 'yaml', 'jsonl' or 'csv'"
_MERGE_TAG = "tag:yaml.org,2002:merge"


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
