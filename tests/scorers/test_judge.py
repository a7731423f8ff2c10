"""LLM-judge scorers against a scripted judge model: modes, repairs, pairwise, config."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from assay.llm import LLMError
from assay.model import Case, Output, ScorerSpec
from assay.scorers.base import ScorerError
from assay.scorers.judge import (
    JudgeError,
    JudgeScorer,
    PairwiseJudge,
    judge,
    load_rubric,
    pairwise_judge,
)
from assay.scorers.registry import build
from scripted_llm import ScriptedLLM

CASE = Case("c1", "What is the capital of France?", expected="Paris")
ANSWER = Output("The capital of France is Paris.")
RUBRIC = "The answer names the correct capital."


@pytest.fixture
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM(model="gpt-4o-mini-2024-07-18") as scripted:
        yield scripted


def endpoint(llm: ScriptedLLM) -> dict[str, Any]:
    return {"base_url": llm.base_url + "/v1", "model": "gpt-4o-mini", "backoff_s": 0.01}


def verdict(**fields: Any) -> str:
    return json.dumps({"reasoning": "It says Paris.", **fields})


def user_prompt(llm: ScriptedLLM, n: int = 0) -> str:
    return str(llm.requests[n].messages[-1]["content"])


# --------------------------------------------------------------------------- modes


async def test_pass_fail_verdict_with_reasoning_and_usage(llm: ScriptedLLM) -> None:
    llm.queue(verdict(verdict="pass"), verdict(verdict="fail"))
    scorer = judge(rubric=RUBRIC, endpoint=endpoint(llm))
    score = await scorer.score(CASE, ANSWER)
    assert (score.value, score.passed, score.label) == (1.0, True, "pass")
    assert score.explanation == "It says Paris."
    meta = score.metadata
    assert meta["attempts"] == 1 and meta["judge_model"] == "gpt-4o-mini-2024-07-18"
    assert meta["raw"] == verdict(verdict="pass")
    assert meta["input_tokens"] > 0 and meta["cost"] > 0
    fail = await scorer.score(CASE, Output("Lyon."))
    assert (fail.value, fail.passed, fail.label) == (0.0, False, "fail")
    body = llm.requests[0].body
    # The rubric, input, reference and the graded response all reach the judge.
    prompt = user_prompt(llm)
    for text in (RUBRIC, CASE.input, "Paris", ANSWER.text):
        assert str(text) in prompt
    assert body["temperature"] == 0
    schema = body["response_format"]["json_schema"]
    assert schema["strict"] is True
    assert schema["schema"]["properties"]["verdict"] == {"type": "string", "enum": ["pass", "fail"]}
    assert "Lyon." in user_prompt(llm, 1)


@pytest.mark.parametrize(
    ("scale", "threshold", "grade", "value", "passed"),
    [
        ((1, 5), None, 4, 0.75, True),
        ((1, 5), None, 3, 0.5, True),  # default threshold: the middle grade
        ((1, 5), None, 2, 0.25, False),
        ((0, 10), 8, 7, 0.7, False),
        ((0, 10), 8, 10, 1.0, True),
    ],
)
async def test_likert_grade_is_normalized(
    llm: ScriptedLLM,
    scale: tuple[int, int],
    threshold: float | None,
    grade: int,
    value: float,
    passed: bool,
) -> None:
    llm.queue(verdict(score=grade))
    scorer = judge(
        rubric=RUBRIC, mode="likert", scale=list(scale), threshold=threshold, endpoint=endpoint(llm)
    )
    score = await scorer.score(CASE, ANSWER)
    assert score.value == pytest.approx(value)
    assert score.passed is passed
    assert score.label == str(grade)
    assert score.metadata["grade"] == grade and score.metadata["scale"] == list(scale)
    sent = llm.requests[0].body["response_format"]["json_schema"]["schema"]
    assert sent["properties"]["score"]["enum"] == list(range(scale[0], scale[1] + 1))


async def test_probability_mode(llm: ScriptedLLM) -> None:
    llm.queue(verdict(probability=0.8), verdict(probability=0.3))
    scorer = judge(rubric=RUBRIC, mode="probability", endpoint=endpoint(llm))
    high = await scorer.score(CASE, ANSWER)
    low = await scorer.score(CASE, ANSWER)
    assert (high.value, high.passed) == (0.8, True)
    assert (low.value, low.passed) == (0.3, False)
    assert low.metadata["probability"] == 0.3


# --------------------------------------------------------------------------- repairs


async def test_malformed_reply_is_repaired(llm: ScriptedLLM) -> None:
    llm.queue("Sure! The answer looks right to me.", verdict(verdict="pass"))
    scorer = judge(rubric=RUBRIC, endpoint=endpoint(llm), structured=False)
    score = await scorer.score(CASE, ANSWER)
    assert score.passed is True and score.metadata["attempts"] == 2
    assert "response_format" not in llm.requests[0].body  # instructions only
    assert '"verdict": "pass" or "fail"' in str(llm.requests[0].messages[0]["content"])
    repair = llm.requests[1].messages
    assert repair[-2] == {"role": "assistant", "content": "Sure! The answer looks right to me."}
    assert "not valid JSON" in repair[-1]["content"]


async def test_reply_failing_validation_is_repaired(llm: ScriptedLLM) -> None:
    llm.queue(verdict(score=9), "```json\n" + verdict(score=5) + "\n```")
    scorer = judge(rubric=RUBRIC, mode="likert", endpoint=endpoint(llm))
    score = await scorer.score(CASE, ANSWER)
    assert (score.value, score.metadata["attempts"]) == (1.0, 2)
    assert "score: 9 is not one of" in llm.requests[1].messages[-1]["content"]


async def test_still_malformed_after_max_repairs_raises(llm: ScriptedLLM) -> None:
    llm.queue("no", '{"reasoning": "x"}', "still no", verdict(verdict="pass"))
    scorer = judge(rubric=RUBRIC, endpoint=endpoint(llm), max_repairs=2)
    with pytest.raises(JudgeError) as info:
        await scorer.score(CASE, ANSWER)
    assert info.value.attempts == 3 and info.value.reply == "still no"
    assert "no usable verdict" in str(info.value) and "'c1'" in str(info.value)
    assert len(llm.requests) == 3


async def test_unsupported_structured_output_says_to_turn_it_off(llm: ScriptedLLM) -> None:
    llm.queue({"status": 400, "body": {"error": {"message": "response_format not supported"}}})
    scorer = judge(rubric=RUBRIC, endpoint=endpoint(llm))
    with pytest.raises(LLMError, match="structured: false"):
        await scorer.score(CASE, ANSWER)


# --------------------------------------------------------------------------- options


async def test_case_options_override_rubric_and_threshold(llm: ScriptedLLM) -> None:
    llm.queue(verdict(score=4))
    scorer = judge(rubric=RUBRIC, mode="likert", endpoint=endpoint(llm))
    case = Case(
        "c2",
        "Capital of Peru?",
        "Lima",
        options={"judge": {"rubric": "Names Lima.", "threshold": 5}},
    )
    score = await scorer.score(case, Output("Lima"))
    assert score.passed is False  # 4 < the case's threshold 5
    assert "Names Lima." in user_prompt(llm) and RUBRIC not in user_prompt(llm)
    with pytest.raises(ScorerError, match="endpoint"):
        await scorer.score(Case("c3", "x", options={"judge": {"endpoint": "openai:x"}}), ANSWER)


def test_rubric_files(tmp_path: Path) -> None:
    md = tmp_path / "rubric.md"
    md.write_text("# Tone\nPolite and brief.\n")
    assert load_rubric(md) == "# Tone\nPolite and brief."
    yml = tmp_path / "rubric.yaml"
    yml.write_text("criteria:\n  - cites a source\n  - under 100 words\n")
    assert load_rubric(yml) == "- cites a source\n- under 100 words"
    bad = tmp_path / "bad.yaml"
    bad.write_text("rubric: [1, 2]\n")
    with pytest.raises(ScorerError, match="criteria"):
        load_rubric(bad)
    with pytest.raises(ScorerError, match="cannot read"):
        load_rubric(tmp_path / "missing.md")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "rubric is missing"),
        ({"rubric": "x", "rubric_file": "y.md"}, "not both"),
        ({"rubric": "x", "mode": "stars"}, "'mode' must be one of"),
        ({"rubric": "x", "mode": "likert", "scale": [5, 1]}, "lowest < highest"),
        ({"rubric": "x", "mode": "likert", "threshold": 7}, "outside the scale"),
        ({"rubric": "x", "threshold": 1.5}, "between 0 and 1"),
        ({"rubric": "x", "max_repairs": -1}, "max_repairs"),
        (
            {"rubric": "x", "endpoint": {"base_url": "http://h/v1", "model": "m", "api_key": "sk"}},
            "api_key_env",
        ),
        (
            {
                "rubric": "x",
                "endpoint": {"base_url": "http://h/v1", "model": "m", "api_key_env": "NOPE_KEY_X"},
            },
            "NOPE_KEY_X is not set",
        ),
    ],
)
def test_bad_configuration_is_a_scorer_error(args: dict[str, Any], message: str) -> None:
    args = {"endpoint": {"base_url": "http://127.0.0.1:9/v1", "model": "m"}, **args}
    with pytest.raises(ScorerError, match=message):
        judge(**args)


async def test_registered_and_rebuilt_from_its_spec(llm: ScriptedLLM) -> None:
    llm.queue(verdict(verdict="pass"))
    built = build(
        {"name": "judge", "key": "judge_facts", "rubric": RUBRIC, "endpoint": endpoint(llm)}
    )
    assert isinstance(built, JudgeScorer)
    assert built.spec.label == "judge_facts" and built.spec.args["rubric"] == RUBRIC
    again = build(ScorerSpec(built.spec.name, json.loads(json.dumps(built.spec.args))))
    assert (await again.score(CASE, ANSWER)).passed is True
    assert again._client is None  # the pool closes when no call is in flight
    assert isinstance(build({"pairwise_judge": {"endpoint": endpoint(llm)}}), PairwiseJudge)


async def test_judge_calls_are_traced(llm: ScriptedLLM) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    llm.queue("oops", verdict(verdict="pass"))
    scorer = judge(rubric=RUBRIC, endpoint=endpoint(llm))
    scorer.tracer_provider = provider
    await scorer.score(CASE, ANSWER)
    spans = exporter.get_finished_spans()
    assert [s.attributes["assay.judge.attempt"] for s in spans if s.attributes] == [1, 2]
    assert all(s.attributes and s.attributes["assay.case_id"] == "c1" for s in spans)
    assert all(s.attributes and s.attributes["assay.scorer"] == "judge" for s in spans)
    provider.shutdown()


async def test_cached_judge_replies(llm: ScriptedLLM, tmp_path: Path) -> None:
    llm.queue(verdict(verdict="pass"))
    cache = str(tmp_path / "judge.sqlite")
    first = judge(rubric=RUBRIC, endpoint=endpoint(llm), cache=cache)
    second = judge(rubric=RUBRIC, endpoint=endpoint(llm), cache=cache)
    assert (await first.score(CASE, ANSWER)).passed is True
    assert (await second.score(CASE, ANSWER)).passed is True
    assert len(llm.requests) == 1


# --------------------------------------------------------------------------- pairwise


def prefers(content: str, *, tie: bool = False) -> Any:
    """A judge reply that picks whichever response contains ``content``, wherever it is."""

    def reply(body: dict[str, Any]) -> str:
        if tie:
            return verdict(winner="tie")
        prompt = body["messages"][-1]["content"]
        a_block = prompt.split("<response_A>")[1].split("</response_A>")[0]
        return verdict(winner="A" if content in a_block else "B")

    return reply


async def test_pairwise_consistent_winner_in_both_orders(llm: ScriptedLLM) -> None:
    llm.default = prefers("Paris")
    pair = pairwise_judge(rubric="Correctness.", endpoint=endpoint(llm))
    result = await pair.compare(CASE, Output("Lyon"), Output("Paris"))
    assert result.winner == "b"
    assert {v.order: v.winner for v in result.verdicts} == {"ab": "b", "ba": "b"}
    prompts = sorted(user_prompt(llm, i) for i in range(2))
    assert "<response_A>\nLyon" in prompts[0] + prompts[1]
    assert "<response_A>\nParis" in prompts[0] + prompts[1]
    assert result.input_tokens is not None and result.cost is not None
    llm.default = prefers("", tie=True)
    assert (await pair.compare(CASE, Output("Paris"), Output("Paris."))).winner == "tie"


async def test_pairwise_position_bias_is_inconsistent(llm: ScriptedLLM) -> None:
    llm.default = verdict(winner="A")  # always the first shown: preference follows position
    pair = pairwise_judge(rubric="Correctness.", endpoint=endpoint(llm))
    result = await pair.compare(CASE, Output("Lyon"), Output("Paris"))
    assert result.winner == "inconsistent"
    assert sorted(v.winner for v in result.verdicts) == ["a", "b"]


async def test_pairwise_cannot_score_one_output(llm: ScriptedLLM) -> None:
    pair = pairwise_judge(endpoint=endpoint(llm), allow_tie=False)
    with pytest.raises(ScorerError, match="compare"):
        await pair.score(CASE, ANSWER)
    assert pair.schema["properties"]["winner"]["enum"] == ["A", "B"]
