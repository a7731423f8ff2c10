"""Golden sets: one version for the same cases in any format, every bad input reported with
file, line, field and fix, lossless round trips, and diffs by case id."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assay.goldens import (
    ROLES,
    GoldenSet,
    GoldenSetError,
    canonical_json,
    case_from_dict,
    case_to_dict,
    diff_golden_sets,
    dump_golden_set,
    format_of,
    golden_set_from_cases,
    load_golden_set,
    parse_golden_set,
    version_of,
    write_golden_set,
)
from assay.model import Case

DATA = Path(__file__).parent / "data" / "goldens"
FORMATS = ("yaml", "jsonl", "csv")


def problems(text: str, fmt: str, name: str | None = "t") -> GoldenSetError:
    with pytest.raises(GoldenSetError) as info:
        parse_golden_set(text, format=fmt, name=name)  # type: ignore[arg-type]
    return info.value


# --- formats and versions --------------------------------------------------------------


def test_each_format_loads_the_same_cases_to_the_same_version() -> None:
    sets = [load_golden_set(DATA / f"support.{ext}") for ext in FORMATS]
    assert {g.version for g in sets} == {sets[0].version}
    assert sets[0].cases == sets[1].cases == sets[2].cases
    assert [g.name for g in sets] == ["support"] * 3
    assert sets[0].description == "Refunds, orders and small talk for the support bot"
    assert sets[0].source == str(DATA / "support.yaml")
    assert len(sets[0].version) == 64 and sets[0].short == sets[0].version[:12]


def test_loaded_cases_have_the_written_values() -> None:
    golden = load_golden_set(DATA / "support.csv")
    refund = golden.case("refund-001")
    assert refund.input == "I was charged twice for my order. Can I get a refund?"
    assert refund.metadata == {"topic": "billing", "suite": "support", "priority": 2}
    assert refund.options == {"contains": {"value": "refund", "case_sensitive": False}}
    assert golden.case("greet-001").input == [
        {"role": "system", "content": "You are a friendly support agent."},
        {"role": "user", "content": "Hi!"},
    ]
    assert golden.case("greet-001").expected is None
    assert golden.case("order-json").expected == {"order_id": 42, "status": "shipped"}
    assert golden.case("math-001").expected == "4"
    summary = golden.case("summary-001")
    assert summary.input == "Summarize this ticket:\nThe app crashes when I upload a photo.\n"
    assert summary.metadata["reviewed"] is True
    with pytest.raises(KeyError, match="no case 'nope'"):
        golden.case("nope")


def test_yaml_defaults_merge_under_each_case() -> None:
    text = """
name: d
defaults:
  metadata: {suite: s, topic: default}
  options: {contains: {value: a, case_sensitive: false}, judge: {model: m}}
cases:
  - id: x
    input: hi
    metadata: {topic: own}
    options: {contains: {value: b}}
"""
    case = parse_golden_set(text, format="yaml").cases[0]
    assert case.metadata == {"suite": "s", "topic": "own"}
    assert case.options == {
        "contains": {"value": "b", "case_sensitive": False},
        "judge": {"model": "m"},
    }


def test_version_is_sha256_of_canonical_json_sorted_by_id() -> None:
    cases = [
        Case(id="b", input="two", metadata={"z": 1, "a": [1.5, None]}),
        Case(id="a", input=[{"role": "user", "content": "é"}], expected={"k": True}),
    ]
    text = canonical_json(cases)
    assert text == (
        '[{"expected":{"k":true},"id":"a","input":[{"content":"é","role":"user"}],'
        '"metadata":{},"options":{}},'
        '{"expected":null,"id":"b","input":"two","metadata":{"a":[1.5,null],"z":1},'
        '"options":{}}]'
    )
    assert version_of(cases) == hashlib.sha256(text.encode()).hexdigest()
    golden = golden_set_from_cases("g", cases)
    assert golden.version == version_of(cases)
    assert [c.id for c in golden.cases] == ["a", "b"]


def test_version_ignores_key_order_case_order_and_blank_lines() -> None:
    lines = (DATA / "support.jsonl").read_text().splitlines()
    base = parse_golden_set("\n".join(lines), format="jsonl", name="s")
    rng = random.Random(7)
    for _ in range(5):
        shuffled = [line for line in lines if line]
        rng.shuffle(shuffled)
        reordered = [json.dumps(dict(reversed(json.loads(x).items()))) for x in shuffled]
        again = parse_golden_set("\n\n".join(reordered), format="jsonl", name="s")
        assert again.version == base.version


@pytest.mark.parametrize(
    "change",
    [
        {"id": "refund-002"},
        {"input": "I was charged twice. Refund?"},
        {"input": [{"role": "user", "content": "I was charged twice."}]},
        {"expected": "refunded"},
        {"expected": None},
        {"expected": 1.0},
        {"metadata": {"topic": "billing"}},
        {"metadata": {"topic": "billing", "suite": "support", "priority": 3}},
        {"options": {"contains": {"value": "REFUND", "case_sensitive": False}}},
        {"options": {}},
    ],
)
def test_changing_any_part_of_a_case_changes_the_version(change: dict[str, Any]) -> None:
    golden = load_golden_set(DATA / "support.yaml")
    edited = [
        Case(**{**case_to_dict(c), **change}) if c.id == "refund-001" else c for c in golden.cases
    ]
    assert golden_set_from_cases("support", edited).version != golden.version


def test_scorer_entries_without_overrides_do_not_change_the_version() -> None:
    plain = golden_set_from_cases("g", [Case(id="a", input="x")])
    empty = golden_set_from_cases("g", [Case(id="a", input="x", options={"contains": {}})])
    assert empty.version == plain.version and empty.cases[0].options == {}


def test_name_comes_from_the_argument_then_the_file_then_the_stem(tmp_path: Path) -> None:
    assert load_golden_set(DATA / "support.yaml", name="other").name == "other"
    path = tmp_path / "refunds-v2.jsonl"
    path.write_text('{"id": "a", "input": "x"}\n')
    assert load_golden_set(path).name == "refunds-v2"
    bad = tmp_path / "my cases.jsonl"
    bad.write_text('{"id": "a", "input": "x"}\n')
    with pytest.raises(GoldenSetError, match=r"'my cases' \(taken from the file name\)"):
        load_golden_set(bad)
    assert load_golden_set(bad, name="mine").name == "mine"
    with pytest.raises(GoldenSetError, match="no name"):
        parse_golden_set('{"id": "a", "input": "x"}', format="jsonl")


def test_yaml_ids_and_dates_stay_the_text_as_written() -> None:
    text = "- id: 007\n  input: 2024-01-01\n  expected: 2024-01-01T10:00:00\n- id: 1.50\n  input: x"
    golden = parse_golden_set(text, format="yaml", name="t")
    assert [c.id for c in golden.cases] == ["007", "1.50"]
    assert golden.case("007").input == "2024-01-01"
    assert golden.case("007").expected == "2024-01-01T10:00:00"


def test_an_invalid_name_in_the_file_is_reported_at_its_line() -> None:
    error = problems("cases: [{id: a, input: x}]\nname: bad name\n", "yaml", name=None)
    (issue,) = error.errors
    assert (issue.line, issue.field, issue.value) == (2, "name", "bad name")
    assert "letters, digits" in issue.fix


def test_yaml_anchors_and_merge_keys_work_and_errors_keep_their_lines() -> None:
    text = """
defaults:
  metadata: &common {suite: s}
cases:
  - &first
    id: a
    input: hi
    metadata: *common
  - <<: *first
    id: b
    expexted: 1
"""
    error = problems(text, "yaml")
    assert [(i.line, i.case_id, i.field) for i in error.errors] == [(11, "b", "expexted")]
    fixed = parse_golden_set(text.replace("expexted", "expected"), format="yaml", name="t")
    assert fixed.case("b").input == "hi" and fixed.case("b").metadata == {"suite": "s"}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("- id: a\n  input: !!python/object:os.system x\n", "remove the tag"),
        ("- id: a\n  input: x\n---\n- id: b\n", "one YAML document per file"),
        ("- id: a\n  input: x\x07\n", "control characters"),
        ("- &a {id: a, input: x, expected: [*a]}\n", "nested deeper than 64 levels"),
    ],
)
def test_yaml_that_is_not_plain_data_is_refused(text: str, words: str) -> None:
    error = problems(text, "yaml")
    assert isinstance(error, ValueError) and len(error.errors) == 1
    assert words in str(error) and error.errors[0].line is not None


def test_jsonl_integer_ids_mean_their_decimal_text() -> None:
    golden = parse_golden_set('{"id": 12, "input": "x"}', format="jsonl", name="t")
    assert golden.cases[0].id == "12"


# --- CSV typing ------------------------------------------------------------------------


def test_csv_cells_are_json_when_they_parse_as_json_else_text() -> None:
    text = (
        "id,input,expected,metadata.n,metadata.f,metadata.b,metadata.z,metadata.s,"
        "metadata.q,metadata.obj,options.contains.value\n"
        'a,hello,42,7,0.5,true,null,plain text,"""42""","{""k"": [1]}",007\n'
        "b,42,,,,,,,,,\n"
    )
    golden = parse_golden_set(text, format="csv", name="t")
    a, b = golden.cases
    assert a.expected == 42
    assert a.metadata == {
        "n": 7,
        "f": 0.5,
        "b": True,
        "z": None,
        "s": "plain text",
        "q": "42",
        "obj": {"k": [1]},
    }
    assert a.options == {"contains": {"value": "007"}}  # not JSON (leading zero): text
    # Input stays text unless it is a JSON list (messages) or a JSON string; empty = absent.
    assert b.input == "42" and b.expected is None and b.metadata == {} and b.options == {}


def test_csv_input_json_string_keeps_text_that_looks_like_json() -> None:
    text = 'id,input\na,"""[not messages]"""\nb,[INST] hi\nc,NaN\n'
    golden = parse_golden_set(text, format="csv", name="t")
    assert [c.input for c in golden.cases] == ["[not messages]", "[INST] hi", "NaN"]


def test_csv_ids_are_never_decoded_and_blank_rows_are_skipped() -> None:
    text = 'id,input\n"001",x\n\n,\ntrue,y\r\n'
    golden = parse_golden_set(text, format="csv", name="t")
    assert [c.id for c in golden.cases] == ["001", "true"]


# --- validation ------------------------------------------------------------------------

BAD = [
    # (format, text, line, field, words in the message)
    ("yaml", "- id: a\n  input: x\n  expexted: 1\n", 3, "expexted", ["did you mean 'expected'"]),
    ("yaml", "- input: x\n", 1, "id", ["id is missing"]),
    ("yaml", "- id: a\n", 1, "input", ["input is missing"]),
    ("yaml", "- id: a\n  input: {x: 1}\n", 2, "input", ["neither text nor", "{'x': 1}"]),
    ("yaml", "- id: a\n  input: ''\n", 2, "input", ["input is empty"]),
    ("yaml", "- id: ' a'\n  input: x\n", 1, "id", ["whitespace", "' a'"]),
    ("yaml", "- id: a\n  input: x\n  metadata: [1]\n", 3, "metadata", ["must be a mapping"]),
    (
        "yaml",
        "- id: a\n  input: x\n  options: {contains: 3}\n",
        3,
        "options.contains",
        ["{argument: value}"],
    ),
    (
        "yaml",
        "- id: a\n  input: x\n  expected: .nan\n",
        3,
        "expected",
        ["nan is not a JSON number"],
    ),
    (
        "yaml",
        "- id: a\n  input: x\n  expected: !!binary aGk=\n",
        3,
        "expected",
        ["not a JSON value"],
    ),
    (
        "yaml",
        "- id: a\n  input: x\n  metadata:\n    1: a\n",
        4,
        "metadata[1]",
        ["key 1 is not text"],
    ),
    ("yaml", "- id: a\n  input: x\n  input: y\n", 3, "input", ["duplicate key 'input'", "line 2"]),
    ("yaml", "- id: a\n  input: [x\n", 3, None, ["not valid YAML"]),
    ("yaml", "name: n\ncases: []\nversion: 2\n", 3, "version", ["version 2 is not supported"]),
    ("yaml", "name: n\ncasess: []\n", 2, "casess", ["did you mean 'cases'"]),
    (
        "yaml",
        "name: n\ndefaults: {metdata: {}}\ncases: [{id: a, input: x}]\n",
        2,
        "defaults.metdata",
        ["did you mean 'metadata'"],
    ),
    ("yaml", "just text\n", 1, None, ["not a list of cases"]),
    ("yaml", "", None, None, ["the file is empty"]),
    ("yaml", "[]\n", None, None, ["no cases"]),
    ("jsonl", '{"id": "a", "input": "x"}\n{"id": "b", "input": x}\n', 2, None, ["not valid JSON"]),
    ("jsonl", '{"id": 1.5, "input": "x"}\n', 1, "id", ["1.5 is not text", "quote"]),
    (
        "jsonl",
        '{"id": "a", "input": "x", "expected": Infinity}\n',
        1,
        None,
        ["Infinity is not a JSON number"],
    ),
    ("jsonl", '{"id": "a", "input": "x", "id": "b"}\n', 1, "id", ["duplicate key 'id'"]),
    ("jsonl", '["a", "x"]\n', 1, None, ["a case must be a mapping"]),
    ("csv", "id,input,expexted\na,x,1\n", 1, "expexted", ["did you mean 'expected'"]),
    ("csv", "id,input,meta.topic\na,x,1\n", 1, "meta.topic", ["did you mean 'metadata.topic'"]),
    ("csv", "id,expected\na,1\n", 1, None, ["no input column"]),
    ("csv", "id,input,id\na,x,b\n", 1, "id", ["appears twice (columns 1 and 3)"]),
    ("csv", "id,input\na,x\nb,y,z\n", 3, None, ["3 cells but the header has 2"]),
    ("csv", "id,input\na,x\n,y\n", 3, "id", ["id is missing"]),
    ("csv", 'id,input\na,"[{""role"": ""user""]"\n', 2, "input", ["looks like chat messages"]),
]


@pytest.mark.parametrize(("fmt", "text", "line", "field", "words"), BAD)
def test_bad_input_names_file_line_field_value_and_fix(
    fmt: str, text: str, line: int | None, field: str | None, words: list[str]
) -> None:
    error = problems(text, fmt)
    issue = next(i for i in error.errors if i.field == field)
    assert (issue.source, issue.line) == ("<string>", line)
    message = str(error)
    where = "<string>" if line is None else f"<string>:{line}:"
    assert where in message and issue.fix and "Fix: " in message
    for word in words:
        assert word in message


CHAT_BAD = [
    ({"role": "admin", "content": "hi"}, "input[0].role", "'admin' is not a chat role"),
    ({"role": "user"}, "input[0].content", "message has no content"),
    ({"role": "user", "content": None}, "input[0].content", "content is null"),
    ({"role": "user", "content": 3}, "input[0].content", "content 3 is not text"),
    ({"role": "user", "contnet": "hi"}, "input[0].contnet", "did you mean 'content'"),
    ({"content": "hi"}, "input[0].role", "message has no role"),
    ("hi", "input[0]", "message 'hi' is not a mapping"),
]


@pytest.mark.parametrize(("message", "field", "words"), CHAT_BAD)
@pytest.mark.parametrize("fmt", ["yaml", "jsonl"])
def test_bad_chat_messages_are_reported_per_message(
    fmt: str, message: Any, field: str, words: str
) -> None:
    case = {"id": "c", "input": [message]}
    text = json.dumps(case) if fmt == "jsonl" else json.dumps([case])  # JSON is YAML
    error = problems(text, fmt)
    fields = [i.field for i in error.errors]
    assert field in fields, error
    assert words in str(error)
    assert all(i.case_id == "c" for i in error.errors)


def test_valid_chat_messages_allow_tool_calls_and_content_parts() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "hi"}], "name": "ann"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "type": "function"}]},
        {"role": "tool", "content": "ok", "tool_call_id": "1"},
    ]
    golden = parse_golden_set(json.dumps({"id": "c", "input": messages}), format="jsonl", name="t")
    assert golden.cases[0].input == messages
    assert problems(json.dumps({"id": "c", "input": []}), "jsonl").errors[0].field == "input"


def test_all_problems_of_a_file_are_collected_in_line_order() -> None:
    text = """name: n
cases:
  - id: a
    input: x
    expexted: 1
  - id: b
    input:
      - role: admin
        content: hi
  - id: c
  - id: a
    input: y
"""
    error = problems(text, "yaml")
    got = [(i.line, i.case_id, i.field) for i in error.errors]
    assert got == [
        (5, "a", "expexted"),
        (8, "b", "input[0].role"),
        (10, "c", "input"),
        (11, "a", "id"),
    ]
    assert error.errors[1].value == "admin"
    assert "4 problems" in str(error)


def test_duplicate_ids_name_both_lines_in_every_format() -> None:
    texts = {
        "yaml": "- id: a\n  input: x\n- id: b\n  input: y\n- id: a\n  input: z\n",
        "jsonl": '{"id": "a", "input": "x"}\n{"id": "b", "input": "y"}\n{"id": "a", "input": "z"}',
        "csv": "id,input\na,x\nb,y\na,z\n",
    }
    for fmt, text in texts.items():
        (issue,) = problems(text, fmt).errors
        line = 5 if fmt == "yaml" else 3 if fmt == "jsonl" else 4
        first = 1 if fmt == "yaml" else 1 if fmt == "jsonl" else 2
        assert (issue.line, issue.case_id, issue.field) == (line, "a", "id")
        assert f"duplicate id 'a' (first used at line {first})" in issue.problem


def test_a_long_error_list_is_shortened_in_the_message_but_kept_whole() -> None:
    text = "\n".join(json.dumps({"id": f"c{i}"}) for i in range(50))
    error = problems(text, "jsonl")
    assert len(error.errors) == 50
    assert "... and 20 more" in str(error)


def test_file_problems(tmp_path: Path) -> None:
    with pytest.raises(GoldenSetError, match="file not found"):
        load_golden_set(tmp_path / "missing.yaml")
    with pytest.raises(GoldenSetError, match=r"unknown golden file type '\.json'.*\.jsonl"):
        load_golden_set(tmp_path / "cases.json")
    with pytest.raises(GoldenSetError, match="unknown golden file type"):
        format_of("cases.txt")
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"id,input\na,caf\xe9\n")
    with pytest.raises(GoldenSetError, match=r"latin\.csv:2: the file is not UTF-8"):
        load_golden_set(latin)
    bom = tmp_path / "bom.csv"
    bom.write_bytes("id,input\na,x\n".encode("utf-8-sig"))
    assert load_golden_set(bom).cases[0].id == "a"
    with pytest.raises(GoldenSetError, match="unknown golden format 'xml'"):
        parse_golden_set("", format="xml", name="t")  # type: ignore[arg-type]


def test_cases_built_in_code_are_validated() -> None:
    with pytest.raises(GoldenSetError) as info:
        golden_set_from_cases("g", [Case(id="a", input="x"), Case(id="a", input="y")])
    assert "duplicate id 'a'" in str(info.value) and info.value.source == "<cases>"
    with pytest.raises(GoldenSetError, match="input 3 is neither"):
        golden_set_from_cases("g", [Case(id="a", input=3)])  # type: ignore[arg-type]
    with pytest.raises(GoldenSetError, match=r"expected: set \{1, 2\} is not a JSON value"):
        case_from_dict({"id": "a", "input": "x", "expected": {1, 2}})
    assert golden_set_from_cases("g", [Case(id="a", input="x")]).source is None


# --- round trips -----------------------------------------------------------------------

_CHARS = st.characters(blacklist_categories=("Cs",))
texts = st.text(_CHARS, max_size=12)
keys = st.text(_CHARS, min_size=1, max_size=8)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=6,
)
messages = st.lists(
    st.fixed_dictionaries({"role": st.sampled_from(ROLES), "content": texts}),
    min_size=1,
    max_size=3,
)
cases = st.builds(
    Case,
    id=st.text(
        st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=10
    ),
    input=st.text(_CHARS, min_size=1, max_size=20) | messages,
    expected=json_values,
    metadata=st.dictionaries(keys, json_values, max_size=3),
    options=st.dictionaries(
        st.from_regex(r"[a-z_]{1,8}", fullmatch=True),
        st.dictionaries(keys, json_values, min_size=1, max_size=2),
        max_size=2,
    ),
)
case_lists = st.lists(cases, min_size=1, max_size=4, unique_by=lambda c: c.id)


@given(cases)
def test_case_dict_round_trip_through_json_is_lossless(case: Case) -> None:
    as_dict = case_to_dict(case)
    as_dict["metadata"]["added"] = 1  # a copy: the case itself does not change
    assert "added" not in case.metadata
    stored = json.loads(json.dumps(case_to_dict(case)))
    assert case_from_dict(stored) == case
    assert canonical_json([case_from_dict(stored)]) == canonical_json([case])


@settings(max_examples=60, deadline=None)
@given(case_lists, st.sampled_from(FORMATS))
def test_dump_then_parse_gives_the_same_cases_and_version(case_list: list[Case], fmt: str) -> None:
    golden = golden_set_from_cases("g", case_list, description="d")
    text = dump_golden_set(golden, format=fmt)  # type: ignore[arg-type]
    again = parse_golden_set(text, format=fmt, name="g")  # type: ignore[arg-type]
    assert again.cases == golden.cases
    assert again.version == golden.version


@pytest.mark.parametrize("fmt", FORMATS)
def test_write_then_load_round_trips_a_file(tmp_path: Path, fmt: str) -> None:
    golden = load_golden_set(DATA / "support.yaml")
    path = tmp_path / f"export.{fmt}"
    write_golden_set(golden, path)
    again = load_golden_set(path)
    assert (again.version, again.cases) == (golden.version, golden.cases)
    if fmt == "yaml":
        assert (again.name, again.description) == ("support", golden.description)
        assert "input: |" in path.read_text()  # multi-line text stays readable
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_csv_export_refuses_scorer_names_it_cannot_hold(tmp_path: Path) -> None:
    golden = golden_set_from_cases("g", [Case(id="a", input="x", options={"a.b": {"k": 1}})])
    with pytest.raises(GoldenSetError, match=r"'a\.b' contains '\.'"):
        write_golden_set(golden, tmp_path / "g.csv")
    write_golden_set(golden, tmp_path / "g.jsonl")
    assert load_golden_set(tmp_path / "g.jsonl").version == golden.version


# --- diff ------------------------------------------------------------------------------


def _set(*cases: Case) -> GoldenSet:
    return golden_set_from_cases("g", cases)


def test_diff_lists_added_removed_and_changed_fields() -> None:
    old = _set(
        Case(id="keep", input="same"),
        Case(id="gone", input="x"),
        Case(
            id="edit",
            input="old",
            expected=1,
            metadata={"topic": "a", "drop": True},
            options={"contains": {"value": "a"}},
        ),
    )
    new = _set(
        Case(id="keep", input="same"),
        Case(id="new", input="y"),
        Case(
            id="edit",
            input="new",
            expected=1.0,
            metadata={"topic": "b", "add": 1},
            options={"contains": {"value": "a"}},
        ),
    )
    diff = diff_golden_sets(old, new)
    assert (diff.added, diff.removed, diff.unchanged) == (("new",), ("gone",), 1)
    (change,) = diff.changed
    assert change.id == "edit"
    got = [(c.field, c.kind, c.old, c.new) for c in change.changes]
    assert got == [
        ("input", "changed", "old", "new"),
        ("expected", "changed", 1, 1.0),  # 1 and 1.0 hash differently, so they differ here
        ("metadata.add", "added", None, 1),
        ("metadata.drop", "removed", True, None),
        ("metadata.topic", "changed", "a", "b"),
    ]
    assert change.fields == ("input", "expected", "metadata.add", "metadata.drop", "metadata.topic")
    assert not diff.identical
    as_json = json.loads(json.dumps(diff.to_dict()))
    assert as_json["changed"][0]["changes"][0] == {
        "field": "input",
        "kind": "changed",
        "old": "old",
        "new": "new",
    }
    assert (as_json["old_version"], as_json["new_version"]) == (old.version, new.version)


def test_diff_of_the_same_cases_in_two_formats_is_empty() -> None:
    diff = diff_golden_sets(
        load_golden_set(DATA / "support.yaml"), load_golden_set(DATA / "support.csv")
    )
    assert diff.identical and diff.unchanged == 5 and diff.old_version == diff.new_version


def test_diff_reports_options_per_scorer_and_expected_added() -> None:
    old = _set(Case(id="a", input="x", options={"contains": {"value": "a"}}))
    new = _set(Case(id="a", input="x", expected="e", options={"judge": {"model": "m"}}))
    (change,) = diff_golden_sets(old, new).changed
    assert [(c.field, c.kind) for c in change.changes] == [
        ("expected", "added"),
        ("options.contains", "removed"),
        ("options.judge", "added"),
    ]


# --- the docs --------------------------------------------------------------------------


def test_the_examples_in_the_docs_are_valid_golden_sets() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "goldens.md").read_text()
    blocks = {"yaml": "yaml", "json": "jsonl", "csv": "csv"}
    seen = set()
    for lang, fmt in blocks.items():
        for block in text.split(f"```{lang}\n")[1:]:
            golden = parse_golden_set(block.split("```")[0], format=fmt, name="doc")  # type: ignore[arg-type]
            assert golden.cases
            seen.add(fmt)
    assert seen == {"yaml", "jsonl", "csv"}
    refund = parse_golden_set(text.split("```yaml\n")[1].split("```")[0], format="yaml")
    assert refund.case("refund-001").options == {
        "contains": {"value": "refund", "case_sensitive": False}
    }
