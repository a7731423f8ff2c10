"""The registry: config shapes, errors with fixes, the shared Protocol, case_options."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from assay.model import Case, Output, Score, ScorerSpec
from assay.scorers import Scorer, ScorerError, available, build, case_options, scorer
from assay.scorers.registry import describe, to_spec

BUILTINS = (
    "exact",
    "normalized",
    "contains",
    "regex",
    "json_valid",
    "json_schema",
    "numeric",
    "embedding_similarity",
)

#: Arguments that make each built-in buildable without optional extras.
BUILD_ARGS: dict[str, dict[str, Any]] = {
    "json_schema": {"schema": {"type": "object"}},
    "embedding_similarity": {"embedder": "hashing"},
}


@pytest.mark.parametrize("name", BUILTINS)
def test_builtins_are_registered_scorers_that_record_their_spec(name: str) -> None:
    assert name in available()
    assert describe(name)
    made = build({name: BUILD_ARGS.get(name, {})})
    assert isinstance(made, Scorer)
    assert made.spec.name == name
    # A run stores the spec; rebuilding from it gives the same configuration.
    assert build(made.spec).spec == made.spec


@pytest.mark.parametrize(
    ("config", "spec"),
    [
        ("exact", ScorerSpec("exact")),
        (ScorerSpec("exact", {"strip": False}, "k"), ScorerSpec("exact", {"strip": False}, "k")),
        ({"name": "exact", "key": "k", "strip": False}, ScorerSpec("exact", {"strip": False}, "k")),
        ({"name": "exact"}, ScorerSpec("exact")),
        ({"exact": {"strip": False}}, ScorerSpec("exact", {"strip": False})),
        ({"exact": {"key": "k", "strip": False}}, ScorerSpec("exact", {"strip": False}, "k")),
        ({"exact": None}, ScorerSpec("exact")),
    ],
)
def test_config_shapes(config: Any, spec: ScorerSpec) -> None:
    assert to_spec(config) == spec
    made = build(config)
    assert made.spec.name == "exact"
    assert made.spec.key == spec.key
    assert made.spec.label == (spec.key or "exact")
    assert made.spec.args["strip"] is spec.args.get("strip", True)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("exat", r"unknown scorer 'exat' \(did you mean 'exact'\?\)\. Available: .*contains"),
        ({"exact": {"stirp": True}}, r"no argument 'stirp' \(did you mean 'strip'\?\)"),
        ({"exact": "strip"}, r"arguments must be a mapping.*write `exact: \{option: value\}`"),
        ({"exact": {}, "regex": {}}, r"cannot tell the scorer"),
        ({"name": ""}, r"non-empty string"),
        ({"name": "exact", "key": 3}, r"key must be a non-empty string"),
        (42, r"given as a name, a ScorerSpec or a mapping"),
    ],
)
def test_bad_configs_say_what_to_do(config: Any, message: str) -> None:
    with pytest.raises(ScorerError, match=message):
        build(config)


def test_missing_required_argument(clean_registry: None) -> None:
    @scorer("needs_arg")
    def needs_arg(*, level: int) -> Scorer:
        raise AssertionError("not reached")

    with pytest.raises(ScorerError, match=r"'needs_arg': missing a required argument: 'level'"):
        build("needs_arg")


@dataclass
class Always:
    spec: ScorerSpec
    value: float

    async def score(self, case: Case, output: Output) -> Score:
        return Score(self.value)


async def test_a_registered_factory_is_built_like_a_builtin(clean_registry: None) -> None:
    @scorer("always", description="always the same")
    def always(*, value: float = 1.0) -> Scorer:
        return Always(ScorerSpec("always", {"value": value}), value)

    assert available()["always"] is always
    assert describe("always") == "always the same"
    made = build({"always": {"value": 0.25, "key": "quarter"}})
    assert made.spec == ScorerSpec("always", {"value": 0.25}, "quarter")
    assert (await made.score(Case("c", "q"), Output("x"))).value == 0.25


def test_a_name_taken_by_another_factory_is_refused(clean_registry: None) -> None:
    with pytest.raises(ScorerError, match=r"'exact' is already registered by .*deterministic"):

        @scorer("exact")
        def mine() -> Scorer:
            raise AssertionError("not reached")


async def test_spec_is_filled_in_and_frozen_scorers_are_relabelled(clean_registry: None) -> None:
    @dataclass(frozen=True)
    class Frozen:
        spec: ScorerSpec

        async def score(self, case: Case, output: Output) -> Score:
            return Score(0.5)

    class NoSpec:
        async def score(self, case: Case, output: Output) -> Score:
            return Score(0.75)

    scorer("frozen")(lambda: Frozen(ScorerSpec("frozen")))
    scorer("nospec")(lambda **kw: NoSpec())

    keyed = build({"name": "frozen", "key": "f2"})
    assert keyed.spec.label == "f2"
    assert (await keyed.score(Case("c", "q"), Output(""))).value == 0.5
    made = build({"nospec": {"x": 1}})
    assert made.spec == ScorerSpec("nospec", {"x": 1})


def test_a_factory_returning_no_scorer_is_an_error(clean_registry: None) -> None:
    class SyncScore:
        def score(self, case: Case, output: Output) -> Score:
            return Score(1.0)

    scorer("sync_score")(lambda: SyncScore())
    with pytest.raises(ScorerError, match=r"has no `async def score\(case, output\)`"):
        build("sync_score")


def test_case_options_overlay_and_validation() -> None:
    spec = ScorerSpec("exact", {"strip": True, "case_sensitive": True}, key="strict")
    assert case_options(Case("c", "q"), spec) == spec.args
    by_name = Case("c", "q", options={"exact": {"strip": False}})
    assert case_options(by_name, spec) == {"strip": False, "case_sensitive": True}
    by_key = Case("c", "q", options={"strict": {"case_sensitive": False}, "exact": {"x": 1}})
    assert case_options(by_key, spec)["case_sensitive"] is False
    with pytest.raises(ScorerError, match=r"case 'c': scorer 'strict' has no option 'x'"):
        case_options(Case("c", "q", options={"strict": {"x": 1}}), spec)
    with pytest.raises(ScorerError, match=r"has no option 'strip'; its options are: only"):
        case_options(by_name, spec, allowed=["only"])


def test_case_options_knows_factory_parameters_not_in_args(clean_registry: None) -> None:
    @scorer("partial")
    def partial(*, a: int = 1, b: int = 2) -> Scorer:
        return Always(ScorerSpec("partial", {"a": a}), 1.0)

    spec = ScorerSpec("partial", {"a": 1})
    assert case_options(Case("c", "q", options={"partial": {"b": 5}}), spec) == {"a": 1, "b": 5}

    @scorer("loose")
    def loose(**kwargs: Any) -> Scorer:
        return Always(ScorerSpec("loose", kwargs), 1.0)

    anything = Case("c", "q", options={"loose": {"whatever": 1}})
    assert case_options(anything, ScorerSpec("loose")) == {"whatever": 1}
