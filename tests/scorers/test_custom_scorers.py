"""@custom: plain sync or async functions become registered scorers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from assay.model import Case, Output, Score, ScorerSpec
from assay.scorers import FunctionScorer, Scorer, ScorerError, available, build, custom

CASE = Case(
    "c1",
    [{"role": "user", "content": "hi"}],
    expected="hello",
    metadata={"lang": "en"},
)
OUTPUT = Output("hello there", data={"x": 1})


async def test_a_sync_function_returning_bool(clean_registry: None) -> None:
    @custom
    def greets(text: str) -> bool:
        return text.startswith("hello")

    assert isinstance(greets, FunctionScorer)
    assert isinstance(greets, Scorer)
    assert greets.spec == ScorerSpec("greets")
    assert await greets.score(CASE, OUTPUT) == Score(1.0, passed=True)
    assert await greets.score(CASE, Output("bye")) == Score(0.0, passed=False)
    assert "greets" in available()


async def test_an_async_function_returning_a_number(clean_registry: None) -> None:
    @custom(name="length_ratio")
    async def ratio(output: Output, expected: str) -> float:
        return len(expected) / len(output.text)

    assert ratio.spec.name == "length_ratio"
    score = await build("length_ratio").score(CASE, OUTPUT)
    assert score == Score(pytest.approx(5 / 11))
    assert score.passed is None


@pytest.mark.parametrize(
    ("param", "expected"),
    [
        ("output", OUTPUT),
        ("text", "hello there"),
        ("output_text", "hello there"),
        ("expected", "hello"),
        ("case", CASE),
        ("input", [{"role": "user", "content": "hi"}]),
        ("metadata", {"lang": "en"}),
    ],
)
async def test_each_accepted_parameter_receives_its_value(
    clean_registry: None, param: str, expected: Any
) -> None:
    seen: dict[str, Any] = {}

    def record(**kwargs: Any) -> bool:
        seen.update(kwargs)
        return True

    # A function with exactly one named parameter, built at run time per parameter name.
    namespace: dict[str, Any] = {"record": record}
    exec(f"def probe_{param}({param}):\n    return record({param}={param})", namespace)
    made = custom(namespace[f"probe_{param}"])
    await made.score(CASE, OUTPUT)
    assert seen == {param: expected}


async def test_a_score_is_passed_through_and_numpy_bools_count(clean_registry: None) -> None:
    @custom
    def detailed(text: str) -> Score:
        return Score(0.5, passed=False, explanation="half")

    @custom
    def vectorised(text: str) -> Any:
        return np.bool_(True)

    assert await detailed.score(CASE, OUTPUT) == Score(0.5, passed=False, explanation="half")
    assert await vectorised.score(CASE, OUTPUT) == Score(1.0, passed=True)


async def test_a_wrong_return_type_is_an_error(clean_registry: None) -> None:
    @custom
    def chatty(text: str) -> Any:
        return "yes"

    with pytest.raises(ScorerError, match=r"'chatty' returned str 'yes'; return a bool"):
        await chatty.score(CASE, OUTPUT)


async def test_defaulted_parameters_are_options(clean_registry: None) -> None:
    @custom
    def long_enough(text: str, minimum: int = 5) -> bool:
        return len(text) >= minimum

    assert long_enough.spec.args == {"minimum": 5}
    assert (await long_enough.score(CASE, OUTPUT)).passed is True
    strict = build({"long_enough": {"minimum": 50}})
    assert strict.spec.args == {"minimum": 50}
    assert (await strict.score(CASE, OUTPUT)).passed is False
    override = Case("c2", "q", options={"long_enough": {"minimum": 100}})
    assert (await long_enough.score(override, OUTPUT)).passed is False
    with pytest.raises(
        ScorerError, match=r"'long_enough' has no argument 'minimal' \(did you mean 'minimum'\?\)"
    ):
        build({"long_enough": {"minimal": 3}})
    bad = Case("c3", "q", options={"long_enough": {"maximum": 1}})
    with pytest.raises(ScorerError, match=r"case 'c3'.*no option 'maximum'.*options are: minimum"):
        await long_enough.score(bad, OUTPUT)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def f(answer): return True", r"parameter 'answer' is not one assay can pass"),
        ("def f(txt): return True", r"'txt' is not one.*\(did you mean 'text'\?\)"),
        ("def f(*args): return True", r"\*args is not supported"),
        ("def f(text, /): return True", r"'text' is positional-only"),
    ],
)
def test_unusable_signatures_are_refused(clean_registry: None, source: str, message: str) -> None:
    namespace: dict[str, Any] = {}
    exec(source, namespace)
    with pytest.raises(ScorerError, match=message):
        custom(namespace["f"])


def test_redefining_a_function_replaces_its_registration(clean_registry: None) -> None:
    def make() -> FunctionScorer:
        @custom
        def same(text: str) -> bool:
            return True

        return same

    first, second = make(), make()
    assert first.fn is not second.fn
    assert available()["same"]().fn is second.fn
