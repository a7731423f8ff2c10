"""Built-in rule scorers: pass and fail cases, explanations, options, per-case overrides."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from assay.model import Case, Output, Score
from assay.scorers import ScorerError, build, normalize
from assay.scorers.deterministic import numbers_in


async def run(config: Any, text: str, expected: Any = None, **case: Any) -> Score:
    scorer = build(config)
    return await scorer.score(Case("c1", "question", expected=expected, **case), Output(text))


def assert_pass(score: Score) -> None:
    assert (score.value, score.passed, score.explanation) == (1.0, True, None)


def assert_fail(score: Score, *fragments: str) -> None:
    assert (score.value, score.passed) == (0.0, False)
    assert score.explanation is not None
    for fragment in fragments:
        assert fragment in score.explanation, (fragment, score.explanation)


# --- exact -------------------------------------------------------------------------------


async def test_exact_strips_but_respects_case_by_default() -> None:
    assert_pass(await run("exact", "Paris\n", "Paris"))
    assert_fail(await run("exact", "paris", "Paris"), "'paris'", "'Paris'")


async def test_exact_options() -> None:
    assert_pass(await run({"exact": {"case_sensitive": False}}, "PARIS", "Paris"))
    assert_fail(await run({"exact": {"strip": False}}, "Paris\n", "Paris"))


async def test_exact_accepts_any_of_a_list_and_numbers() -> None:
    assert_pass(await run("exact", "Lyon", ["Paris", "Lyon"]))
    assert_fail(await run("exact", "Nice", ["Paris", "Lyon"]), "any of 'Paris', 'Lyon'")
    assert_pass(await run("exact", "42", 42))


async def test_exact_without_expected_is_a_configuration_error() -> None:
    with pytest.raises(ScorerError, match=r"case 'c1' has no expected answer.*'exact'"):
        await run("exact", "x")
    with pytest.raises(ScorerError, match=r"`expected` to be a string or a list"):
        await run("exact", "x", {"a": 1})


async def test_exact_records_all_arguments() -> None:
    assert build("exact").spec.args == {"strip": True, "case_sensitive": True}


async def test_exact_long_output_is_shortened_in_explanation() -> None:
    score = await run("exact", "x" * 500, "y")
    assert score.explanation is not None and len(score.explanation) < 200
    assert "…" in score.explanation


# --- normalized --------------------------------------------------------------------------


def test_normalize_steps() -> None:
    assert normalize("  The  U.S.A.,  today! ") == "the usa today"
    assert normalize("ＡＢＣ ﬁne") == "abc fine"  # NFKC folds full-width letters, ligatures
    assert normalize("Straße") == normalize("STRASSE")  # case folding, not lower()
    assert normalize("The answer is a cat", articles=True) == "answer is cat"
    assert normalize("«Hello» — world…") == "hello world"  # Unicode punctuation
    assert normalize("A b", lowercase=False, whitespace=False) == "A b"


async def test_normalized_matches_after_normalisation() -> None:
    assert_pass(await run("normalized", "  PARIS!! ", "paris"))
    assert_fail(await run("normalized", "The Paris", "Paris"), "'the paris'", "'paris'")
    assert_pass(await run({"normalized": {"articles": True}}, "The Paris", "Paris"))


async def test_normalized_options_turn_steps_off() -> None:
    assert_fail(await run({"normalized": {"punctuation": False}}, "paris!", "Paris"))
    assert_fail(await run({"normalized": {"lowercase": False}}, "PARIS", "Paris"))


# --- contains ----------------------------------------------------------------------------


async def test_contains_expected_case_insensitively_by_default() -> None:
    assert_pass(await run("contains", "We issued a REFUND today", "refund"))
    assert_fail(
        await run({"contains": {"case_sensitive": True}}, "REFUND", "refund"),
        "missing 1 of 1: 'refund'",
    )


async def test_contains_value_list_all_and_any() -> None:
    config = {"contains": {"value": ["refund", "sorry", "days"]}}
    score = await run(config, "Sorry, a refund is on its way")
    assert_fail(score, "missing 1 of 3: 'days'")
    assert score.metadata == {"found": ["refund", "sorry"], "missing": ["days"]}
    assert_pass(await run({"contains": {"value": ["x", "refund"], "match": "any"}}, "refund"))
    assert_fail(
        await run({"contains": {"value": ["x", "y"], "match": "any"}}, "refund"),
        "contains none of 'x', 'y'",
    )


async def test_contains_bad_options_fail_at_build_time() -> None:
    with pytest.raises(ScorerError, match=r"'match' must be one of 'all', 'any', got 'some'"):
        build({"contains": {"value": "a", "match": "some"}})
    with pytest.raises(ScorerError, match=r"'value' must be a string or a list of strings"):
        build({"contains": {"value": {"a": 1}}})
    with pytest.raises(ScorerError, match=r"'case_sensitive' must be true or false, got 'no'"):
        build({"contains": {"case_sensitive": "no"}})


# --- regex -------------------------------------------------------------------------------


async def test_regex_search_and_full() -> None:
    assert_pass(await run({"regex": {"pattern": r"\d{3}-\d{4}"}}, "call 555-1234 now"))
    assert_fail(await run({"regex": {"pattern": r"\d{3}-\d{4}"}}, "call me"), r"has no match")
    full = {"regex": {"pattern": r"\d{3}-\d{4}", "full": True}}
    assert_pass(await run(full, " 555-1234\n"))
    assert_fail(await run(full, "call 555-1234"), "does not fully match")


async def test_regex_match_is_recorded() -> None:
    score = await run({"regex": {"pattern": r"\d+"}}, "order 1234 shipped")
    assert score.metadata["match"] == "1234"


@pytest.mark.parametrize("flags", ["i", "IGNORECASE", ["ignorecase"], "is", ["i", "s"]])
async def test_regex_flags_forms(flags: Any) -> None:
    assert_pass(await run({"regex": {"pattern": "yes", "flags": flags}}, "YES"))


async def test_regex_pattern_defaults_to_expected() -> None:
    assert_pass(await run("regex", "ID: AB-12", r"[A-Z]{2}-\d+"))
    with pytest.raises(ScorerError, match=r"case 'c1' \(pattern taken from expected\).*'\('"):
        await run("regex", "x", "(")


def test_regex_invalid_pattern_or_flag_fails_at_build_time() -> None:
    with pytest.raises(ScorerError, match=r"pattern '\[a-' is not a valid regular expression"):
        build({"regex": {"pattern": "[a-"}})
    with pytest.raises(ScorerError, match=r"'flags' must be flag names"):
        build({"regex": {"pattern": "a", "flags": "q"}})


# --- json_valid --------------------------------------------------------------------------


async def test_json_valid_whole_text_and_fenced_block() -> None:
    assert_pass(await run("json_valid", ' {"a": [1, 2]} '))
    score = await run("json_valid", 'Sure!\n```json\n{"a": 1}\n```\nAnything else?')
    assert_pass(score)
    assert score.metadata == {"where": "fenced block 1"}
    assert_pass(await run("json_valid", "```\n[1, 2]\n```"))


async def test_json_valid_failures_explain() -> None:
    assert_fail(await run("json_valid", "{'a': 1}"), "not valid JSON", "line 1 column 2")
    assert_fail(
        await run("json_valid", "```json\n{broken\n```"), "no fenced code block parsed either"
    )
    assert_fail(await run({"json_valid": {"fenced": False}}, '```json\n{"a": 1}\n```'))


# --- json_schema -------------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "required": ["name", "age"],
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
}


async def test_json_schema_pass_and_errors_with_json_paths() -> None:
    config = {"json_schema": {"schema": SCHEMA}}
    assert_pass(await run(config, '{"name": "Ada", "age": 36}'))
    score = await run(config, '```json\n{"age": -1, "tags": []}\n```')
    assert_fail(score, "2 schema errors", "$: 'name' is a required property", "$.age: -1")
    assert [e["path"] for e in score.metadata["errors"]] == ["$", "$.age"]


async def test_json_schema_lists_only_the_first_errors() -> None:
    schema = {"type": "array", "items": {"type": "integer"}}
    config = {"json_schema": {"schema": schema, "max_errors": 2}}
    score = await run(config, '["a", "b", "c", "d"]')
    assert_fail(score, "4 schema errors", "$[0]", "$[1]", "… and 2 more")
    assert "$[2]" not in (score.explanation or "")


async def test_json_schema_non_json_output_fails() -> None:
    assert_fail(await run({"json_schema": {"schema": SCHEMA}}, "name: Ada"), "not valid JSON")


async def test_json_schema_from_json_and_yaml_files(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(json.dumps(SCHEMA))
    (tmp_path / "s.yaml").write_text("type: object\nrequired: [name]\n")
    assert_pass(await run({"json_schema": {"path": str(tmp_path / "s.json")}}, SAMPLE))
    assert_fail(await run({"json_schema": {"path": str(tmp_path / "s.yaml")}}, "{}"), "'name'")


SAMPLE = '{"name": "Ada", "age": 1}'


def test_json_schema_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ScorerError, match=r"is not a valid JSON Schema: 'strin' is not valid"):
        build({"json_schema": {"schema": {"type": "strin"}}})
    with pytest.raises(ScorerError, match=r"needs exactly one of `schema`.*or\s+`path`"):
        build("json_schema")
    with pytest.raises(ScorerError, match=r"exactly one of"):
        build({"json_schema": {"schema": SCHEMA, "path": "x.json"}})
    with pytest.raises(ScorerError, match=r"cannot read schema file '.*missing.json'"):
        build({"json_schema": {"path": str(tmp_path / "missing.json")}})
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ScorerError, match=r"schema file '.*bad.json' does not parse"):
        build({"json_schema": {"path": str(tmp_path / "bad.json")}})
    with pytest.raises(ScorerError, match=r"'max_errors' must be a whole number >= 1"):
        build({"json_schema": {"schema": SCHEMA, "max_errors": 0}})


# --- numeric -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("Total: 1,234.50 USD", [1234.5]),
        ("from -3 to +4.5, then 1e3", [-3.0, 4.5, 1000.0]),
        ("minus \u22127", [-7.0]),
        ("it is 50% and .5", [50.0, 0.5]),
        ("version v2, 3rd", [3.0]),
        ("1,2,3", [1.0, 2.0, 3.0]),
        ("2020-01-05", [2020.0, 1.0, 5.0]),
        ("5kg", [5.0]),
        ("none here", []),
    ],
)
def test_numbers_in(text: str, numbers: list[float]) -> None:
    assert numbers_in(text) == numbers


async def test_numeric_takes_the_last_number_by_default() -> None:
    assert_pass(await run("numeric", "3 apples + 4 apples = 7", 7))
    score = await run("numeric", "7 is wrong, the answer is 8", 7)
    assert_fail(score, "found 8 (the last number in the output), expected 7")
    assert_pass(await run({"numeric": {"pick": "first"}}, "7 is right, not 8", 7))


async def test_numeric_tolerances() -> None:
    assert_pass(await run("numeric", "0.30000000000000004", 0.3))
    assert_fail(await run("numeric", "3.14", 3.14159), "abs_tol=0")
    assert_pass(await run({"numeric": {"abs_tol": 0.01}}, "3.14", 3.14159))
    assert_pass(await run({"numeric": {"rel_tol": 0.05}}, "104", 100))
    assert_fail(await run({"numeric": {"rel_tol": 0.05}}, "106", 100))


async def test_numeric_expected_forms_and_structured_output() -> None:
    assert_pass(await run("numeric", "about 1200", "1,200"))
    with pytest.raises(ScorerError, match=r"case 'c1': scorer 'numeric' needs `expected`"):
        await run("numeric", "1", "one")
    score = await build("numeric").score(Case("c", "q", expected=5), Output("five", data=5))
    assert_pass(score)


async def test_numeric_no_number() -> None:
    assert_fail(await run("numeric", "I don't know", 3), "no number in output")


def test_numeric_bad_options() -> None:
    with pytest.raises(ScorerError, match=r"'abs_tol' must be a number >= 0, got -1"):
        build({"numeric": {"abs_tol": -1}})
    with pytest.raises(ScorerError, match=r"'pick' must be one of 'last', 'first'"):
        build({"numeric": {"pick": "middle"}})


# --- per-case overrides ------------------------------------------------------------------


async def test_case_options_override_arguments_for_that_case_only() -> None:
    scorer = build({"contains": {"value": "refund"}})
    plain = Case("a", "q")
    override = Case("b", "q", options={"contains": {"value": "credit"}})
    assert (await scorer.score(plain, Output("refund"))).passed is True
    assert (await scorer.score(override, Output("refund"))).passed is False
    assert (await scorer.score(override, Output("store credit"))).passed is True


async def test_case_options_under_the_key_win_over_the_name() -> None:
    scorer = build({"name": "exact", "key": "strict", "case_sensitive": True})
    case = Case(
        "a",
        "q",
        expected="Paris",
        options={"strict": {"case_sensitive": False}, "exact": {"strip": False}},
    )
    assert (await scorer.score(case, Output("PARIS"))).passed is True


@pytest.mark.parametrize(
    ("config", "override"),
    [
        ("exact", {"strip": "yes"}),
        ({"regex": {"pattern": "a"}}, {"pattern": "("}),
        ({"json_schema": {"schema": SCHEMA}}, {"schema": {"type": 1}}),
        ("numeric", {"rel_tol": "x"}),
    ],
)
async def test_bad_case_override_names_the_case(config: Any, override: dict[str, Any]) -> None:
    name = config if isinstance(config, str) else next(iter(config))
    case = Case("case-7", "q", expected="1", options={name: override})
    with pytest.raises(ScorerError, match=r"^case 'case-7': scorer"):
        await build(config).score(case, Output("1"))


async def test_unknown_case_option_is_an_error_listing_options() -> None:
    case = Case("case-7", "q", expected="a", options={"exact": {"case_sensitve": False}})
    with pytest.raises(ScorerError) as info:
        await build("exact").score(case, Output("a"))
    message = str(info.value)
    assert "case 'case-7'" in message
    assert "no option 'case_sensitve' (did you mean 'case_sensitive'?)" in message
    assert "case_sensitive, strip" in message


async def test_case_options_must_be_a_mapping() -> None:
    case = Case("c", "q", expected="a", options={"exact": ["strip"]})  # type: ignore[dict-item]
    with pytest.raises(ScorerError, match=r"options\['exact'\] must be a mapping"):
        await build("exact").score(case, Output("a"))
