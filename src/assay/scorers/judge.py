"""LLM-judge scorers: an OpenAI-compatible model grades outputs against a rubric.

``judge`` grades one output (pass/fail, a Likert grade, or a probability of passing);
``pairwise_judge`` compares two outputs for the same case, asking in both orders and
declaring a winner only when both orders agree. The judge answers in JSON (``reasoning``
first, then the verdict); a reply that is not valid JSON or fails validation is sent back
with the error for a corrected answer, up to ``max_repairs`` times, and then raises
:class:`JudgeError`: a malformed verdict is never turned into a score.

The factories read the judge's API key from the process environment (``api_key_env``)
when a run builds its scorers; spec arguments are persisted, so they never hold a secret.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jsonschema
import yaml
from opentelemetry.trace import TracerProvider
from opentelemetry.util.types import AttributeValue

from assay.llm import ChatClient, Endpoint, EndpointError, LLMError, RateLimiter, ResponseCache
from assay.llm import endpoint_from_config as _endpoint_from_config
from assay.model import Case, Output, Score, ScorerSpec
from assay.pricing import PriceTable, load_prices
from assay.scorers.base import (
    ScorerError,
    case_options,
    has_override,
    option_bool,
    option_choice,
    option_int,
    option_number,
)
from assay.scorers.registry import scorer

Mode = Literal["pass_fail", "likert", "probability"]
MODES: tuple[str, ...] = ("pass_fail", "likert", "probability")
#: The judge used when a spec names none.
DEFAULT_ENDPOINT = "openai:gpt-4o-mini"
#: Options a case may override (the endpoint and cache are per scorer, not per case).
CASE_OPTIONS = frozenset(
    {"rubric", "rubric_file", "mode", "scale", "threshold", "include_input", "include_expected"}
)

_SYSTEM = (
    "You are a careful, impartial evaluator. You judge a response strictly against the "
    "rubric you are given, not against your own preferences. First explain your reasoning "
    "briefly in the `reasoning` field, then give your verdict. Reply with only a JSON "
    "object, no other text:\n{format}"
)


class JudgeError(Exception):
    """The judge gave no usable verdict, even after repairs; never scored as 0.

    ``reply`` is the judge's last reply, ``attempts`` the number of judge calls made.
    """

    def __init__(self, message: str, reply: str | None, attempts: int) -> None:
        super().__init__(message)
        self.reply = reply
        self.attempts = attempts


@dataclass(frozen=True, slots=True)
class JudgeConfig:
    """A judge's validated prompt options."""

    rubric: str
    mode: Mode = "pass_fail"
    scale: tuple[int, int] = (1, 5)
    threshold: float = 0.5
    include_input: bool = True
    include_expected: bool = True


@dataclass(frozen=True, slots=True)
class _Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: float | None = None

    def add(self, other: Output | _Usage) -> _Usage:
        """These counts plus another call's (None when neither side knows)."""
        return _Usage(
            _sum(self.input_tokens, other.input_tokens),
            _sum(self.output_tokens, other.output_tokens),
            _sum(self.cost, other.cost),
        )


def _sum(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else a + b


@dataclass(frozen=True, slots=True)
class _Reply:
    data: dict[str, Any]
    raw: str
    attempts: int
    model: str | None
    usage: _Usage


# --------------------------------------------------------------------------- options


def load_rubric(path: str | Path) -> str:
    """A rubric from a file: Markdown/text as-is, YAML as ``rubric:`` text or a
    ``criteria:`` list (one criterion per line)."""
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except OSError as exc:
        raise ScorerError(f"rubric_file {str(p)!r}: cannot read it ({exc.strerror})") from None
    if p.suffix.lower() not in (".yaml", ".yml"):
        if not text.strip():
            raise ScorerError(f"rubric_file {str(p)!r} is empty; write the grading criteria")
        return text.strip()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScorerError(f"rubric_file {str(p)!r}: not valid YAML ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("rubric"), str) and data["rubric"].strip():
        return str(data["rubric"]).strip()
    criteria = data.get("criteria") if isinstance(data, dict) else None
    if isinstance(criteria, list) and criteria and all(isinstance(c, str) for c in criteria):
        return "\n".join(f"- {c}" for c in criteria)
    raise ScorerError(
        f"rubric_file {str(p)!r}: expected a mapping with `rubric: <text>` or "
        "`criteria: [<criterion>, ...]`"
    )


def parse_config(
    name: str, args: Mapping[str, Any], *, rubric_required: bool = True
) -> JudgeConfig:
    """Validate judge options (``rubric``/``rubric_file``, ``mode``, ``scale``, ``threshold``,
    ``include_input``, ``include_expected``); ScorerError names the bad one."""
    rubric, rubric_file = args.get("rubric"), args.get("rubric_file")
    if rubric is not None and rubric_file is not None:
        raise ScorerError(f"scorer {name!r}: give rubric or rubric_file, not both")
    if rubric_file is not None:
        rubric = load_rubric(str(rubric_file))
    if rubric is None and not rubric_required:
        rubric = "Which response is the better answer to the input?"
    if not isinstance(rubric, str) or not rubric.strip():
        raise ScorerError(
            f"scorer {name!r}: rubric is missing; give `rubric: <what a good answer does>` or "
            "`rubric_file: <path to .md/.yaml>`"
        )
    mode = option_choice(name, "mode", args.get("mode", "pass_fail"), MODES)
    raw_scale = args.get("scale", (1, 5))
    if not (
        isinstance(raw_scale, list | tuple)
        and len(raw_scale) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in raw_scale)
        and raw_scale[0] < raw_scale[1]
    ):
        raise ScorerError(
            f"scorer {name!r}: option 'scale' must be two whole numbers [lowest, highest], "
            f"lowest < highest (e.g. [1, 5]), got {raw_scale!r}"
        )
    scale = (int(raw_scale[0]), int(raw_scale[1]))
    raw_threshold = args.get("threshold")
    if mode == "likert":
        default = float(-(-(scale[0] + scale[1]) // 2))  # the middle grade, rounded up
        threshold = option_number(
            name, "threshold", default if raw_threshold is None else raw_threshold
        )
        if not scale[0] <= threshold <= scale[1]:
            raise ScorerError(
                f"scorer {name!r}: threshold {threshold:g} is outside the scale "
                f"{scale[0]}..{scale[1]}; a grade >= threshold passes"
            )
    else:
        threshold = option_number(
            name, "threshold", 0.5 if raw_threshold is None else raw_threshold
        )
        if not 0 <= threshold <= 1:
            raise ScorerError(
                f"scorer {name!r}: threshold {threshold:g} must be between 0 and 1 in mode {mode!r}"
            )
    return JudgeConfig(
        rubric=rubric.strip(),
        mode=mode,  # type: ignore[arg-type]
        scale=scale,
        threshold=threshold,
        include_input=option_bool(name, "include_input", args.get("include_input", True)),
        include_expected=option_bool(name, "include_expected", args.get("include_expected", True)),
    )


def _verdict_schema(config: JudgeConfig) -> dict[str, Any]:
    verdict: dict[str, Any]
    if config.mode == "pass_fail":
        key, verdict = "verdict", {"type": "string", "enum": ["pass", "fail"]}
    elif config.mode == "likert":
        lo, hi = config.scale
        key, verdict = "score", {"type": "integer", "enum": list(range(lo, hi + 1))}
    else:
        key, verdict = "probability", {"type": "number", "minimum": 0, "maximum": 1}
    return _object_schema(key, verdict)


def _object_schema(key: str, verdict: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"reasoning": {"type": "string"}, key: verdict},
        "required": ["reasoning", key],
        "additionalProperties": False,
    }


def _format(config: JudgeConfig) -> str:
    if config.mode == "pass_fail":
        return '{"reasoning": "<why>", "verdict": "pass" or "fail"}'
    if config.mode == "likert":
        lo, hi = config.scale
        return (
            f'{{"reasoning": "<why>", "score": <a whole number from {lo} (worst) to {hi} (best)>}}'
        )
    return (
        '{"reasoning": "<why>", "probability": <a number from 0 to 1: how likely the '
        "response meets the rubric>}"
    )


def _render(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(m, dict) and "role" in m for m in value):
        return "\n".join(f"[{m['role']}] {m.get('content') or ''}" for m in value)
    return json.dumps(value, ensure_ascii=False, indent=1, default=str)


def _answer_text(output: Output) -> str:
    if output.text or output.data is None:
        return output.text
    return _render(output.data)


def _context(config: JudgeConfig, case: Case) -> list[str]:
    parts = [f"<rubric>\n{config.rubric}\n</rubric>"]
    if config.include_input:
        parts.append(f"<input>\n{_render(case.input)}\n</input>")
    if config.include_expected and case.expected is not None:
        parts.append(f"<reference_answer>\n{_render(case.expected)}\n</reference_answer>")
    return parts


def _parse_reply(text: str | None, schema: dict[str, Any]) -> dict[str, Any] | str:
    """The validated verdict object, or what is wrong with the reply."""
    if not text or not text.strip():
        return "the reply was empty"
    body = text.strip()
    if body.startswith("```"):  # a fenced block is still the JSON the judge meant
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0]
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        return f"the reply is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(data)
    )
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the object"
        return f"{where}: {error.message}"
    return dict(data)


# --------------------------------------------------------------------------- base


@functools.cache
def _default_prices() -> PriceTable:
    return load_prices()


class _JudgeCaller:
    """A judge endpoint, its rate limit and cache; asks for JSON and repairs bad replies."""

    def __init__(
        self,
        spec: ScorerSpec,
        endpoint: Endpoint,
        *,
        structured: bool = True,
        max_repairs: int = 2,
        cache_path: str | Path | None = None,
        prices: PriceTable | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.spec = spec
        self.endpoint = endpoint
        self.structured = structured
        self.max_repairs = max_repairs
        self.cache_path = cache_path
        self.prices = prices
        self.tracer_provider = tracer_provider
        self._limiter = RateLimiter(endpoint.rpm, endpoint.tpm)
        self._client: ChatClient | None = None
        self._cache: ResponseCache | None = None
        self._active = 0

    def use_tracer_provider(self, provider: TracerProvider) -> None:
        """Send the spans of later judge calls to ``provider`` (the runner's)."""
        self.tracer_provider = provider

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[ChatClient]:
        # The connection pool lives while calls are in flight and closes when the last one
        # ends, so a scorer that nobody closes leaks no sockets.
        if self._client is None:
            self._cache = ResponseCache(self.cache_path) if self.cache_path else None
            self._client = ChatClient(
                self.endpoint,
                cache=self._cache,
                prices=self.prices,
                limiter=self._limiter,
                tracer_provider=self.tracer_provider,
            )
        client = self._client
        self._active += 1
        try:
            yield client
        finally:
            self._active -= 1
            if self._active == 0:
                await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool and the cache file (reopened on the next call)."""
        client, cache = self._client, self._cache
        self._client = self._cache = None
        if client is not None:
            await client.aclose()
        if cache is not None:
            cache.close()

    async def ask(
        self, messages: list[dict[str, Any]], schema: dict[str, Any], case: Case
    ) -> _Reply:
        """Ask for a verdict matching ``schema``, repairing bad replies up to max_repairs."""
        response_format = (
            {
                "type": "json_schema",
                "json_schema": {"name": "verdict", "strict": True, "schema": _strict(schema)},
            }
            if self.structured
            else None
        )
        attrs: dict[str, AttributeValue] = {
            "assay.scorer": self.spec.label,
            "assay.case_id": case.id,
        }
        usage = _Usage()
        convo = list(messages)
        reason = ""
        raw: str | None = None
        async with self._session() as client:
            for attempt in range(1, self.max_repairs + 2):
                try:
                    out = await client.complete(
                        convo,
                        response_format=response_format,
                        attributes={**attrs, "assay.judge.attempt": attempt},
                    )
                except LLMError as exc:
                    if exc.status == 400 and self.structured:
                        exc.message += (
                            " If this server does not support response_format json_schema, "
                            "set `structured: false` on the judge."
                        )
                        exc.args = (exc.message,)
                    raise
                usage = usage.add(out)
                raw = out.text
                parsed = _parse_reply(raw, schema)
                if isinstance(parsed, dict):
                    return _Reply(parsed, raw, attempt, out.model, usage)
                reason = parsed
                convo += [
                    {"role": "assistant", "content": raw or ""},
                    {
                        "role": "user",
                        "content": (
                            f"Your reply could not be used: {reason}. Reply again with only "
                            f"the corrected JSON object matching this schema:\n"
                            f"{json.dumps(schema)}"
                        ),
                    },
                ]
        attempts = self.max_repairs + 1
        shown = (raw or "")[:300]
        raise JudgeError(
            f"judge {self.spec.label!r} ({self.endpoint.model}) gave no usable verdict for case "
            f"{case.id!r} after {attempts} attempt(s): {reason}. Last reply: {shown!r}. Use a "
            "model that follows JSON instructions, set `structured: true` if the server "
            "supports it, or raise max_repairs.",
            raw,
            attempts,
        )


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema without numeric bounds, which strict structured outputs may reject."""
    props = {
        k: {kk: vv for kk, vv in v.items() if kk not in ("minimum", "maximum")}
        for k, v in schema["properties"].items()
    }
    return {**schema, "properties": props}


def _endpoint(name: str, endpoint: Any, env: Mapping[str, str]) -> Endpoint:
    try:
        ep = _endpoint_from_config(endpoint or DEFAULT_ENDPOINT, env)
    except EndpointError as exc:
        raise ScorerError(f"scorer {name!r}: endpoint: {exc}") from None
    if "temperature" not in ep.params:  # judges should be as repeatable as the model allows
        ep = Endpoint(**{**_fields(ep), "params": {"temperature": 0, **ep.params}})
    return ep


def _fields(ep: Endpoint) -> dict[str, Any]:
    return {f: getattr(ep, f) for f in ep.__dataclass_fields__}


def _usage_metadata(reply: _Reply) -> dict[str, Any]:
    return {
        "raw": reply.raw,
        "attempts": reply.attempts,
        "judge_model": reply.model,
        "input_tokens": reply.usage.input_tokens,
        "output_tokens": reply.usage.output_tokens,
        "cost": reply.usage.cost,
    }


# --------------------------------------------------------------------------- judge


class JudgeScorer(_JudgeCaller):
    """Grades one output against a rubric; see :func:`judge`."""

    def __init__(
        self, spec: ScorerSpec, config: JudgeConfig, endpoint: Endpoint, **kw: Any
    ) -> None:
        super().__init__(spec, endpoint, **kw)
        self.config = config

    def _config_for(self, case: Case) -> JudgeConfig:
        if not has_override(case, self.spec):
            return self.config
        options = case_options(case, self.spec, allowed=CASE_OPTIONS)
        override = case.options.get(self.spec.label) or case.options.get(self.spec.name) or {}
        for given, other in (("rubric", "rubric_file"), ("rubric_file", "rubric")):
            if given in override and other not in override:
                options.pop(other, None)  # a case's rubric replaces the scorer's
        return parse_config(self.spec.label, options)

    def messages(
        self, case: Case, output: Output, config: JudgeConfig | None = None
    ) -> list[dict[str, Any]]:
        """The chat messages sent to the judge for one output."""
        config = config or self.config
        parts = [*_context(config, case), f"<response>\n{_answer_text(output)}\n</response>"]
        task = {
            "pass_fail": "Does the response meet the rubric? Answer pass or fail.",
            "likert": (
                f"Grade the response on the rubric from {config.scale[0]} (worst) to "
                f"{config.scale[1]} (best)."
            ),
            "probability": "How likely is it that the response meets the rubric?",
        }[config.mode]
        return [
            {"role": "system", "content": _SYSTEM.format(format=_format(config))},
            {"role": "user", "content": "\n\n".join([*parts, task])},
        ]

    async def score(self, case: Case, output: Output) -> Score:
        """Ask the judge; raises JudgeError when its reply stays malformed."""
        config = self._config_for(case)
        schema = _verdict_schema(config)
        reply = await self.ask(self.messages(case, output, config), schema, case)
        meta = {
            "mode": config.mode,
            "rubric_sha256": hashlib.sha256(config.rubric.encode()).hexdigest()[:16],
            **_usage_metadata(reply),
        }
        reasoning = str(reply.data["reasoning"])
        if config.mode == "pass_fail":
            ok = reply.data["verdict"] == "pass"
            return Score(1.0 if ok else 0.0, ok, "pass" if ok else "fail", reasoning, meta)
        if config.mode == "likert":
            grade = int(reply.data["score"])
            lo, hi = config.scale
            meta.update(grade=grade, scale=[lo, hi], threshold=config.threshold)
            value = (grade - lo) / (hi - lo)
            return Score(value, grade >= config.threshold, str(grade), reasoning, meta)
        p = float(reply.data["probability"])
        meta.update(probability=p, threshold=config.threshold)
        ok = p >= config.threshold
        return Score(p, ok, "pass" if ok else "fail", reasoning, meta)


def _recorded(args: dict[str, Any]) -> dict[str, Any]:
    """The arguments a spec persists: every one given, defaults included (so a re-run
    behaves the same when defaults change), tuples as lists (JSON)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in args.items() if v is not None}


def _build_judge(name: str, args: dict[str, Any], env: Mapping[str, str], cls: type) -> Any:
    structured = option_bool(name, "structured", args.get("structured", True))
    max_repairs = option_int(name, "max_repairs", args.get("max_repairs", 2))
    cache = args.get("cache")
    if cache is not None and not isinstance(cache, str | Path):
        raise ScorerError(f"scorer {name!r}: cache must be a file path, got {cache!r}")
    kw: dict[str, Any] = {
        "structured": structured,
        "max_repairs": max_repairs,
        "cache_path": cache,
        "prices": _default_prices(),
    }
    endpoint = _endpoint(name, args.get("endpoint"), env)
    spec = ScorerSpec(name, args)
    if cls is JudgeScorer:
        return JudgeScorer(spec, parse_config(name, args), endpoint, **kw)
    allow_tie = option_bool(name, "allow_tie", args.get("allow_tie", True))
    config = parse_config(name, args, rubric_required=False)
    return PairwiseJudge(spec, config, endpoint, allow_tie=allow_tie, **kw)


@scorer("judge", description="LLM judge: grades an output against a rubric")
def judge(
    *,
    rubric: str | None = None,
    rubric_file: str | None = None,
    mode: str = "pass_fail",
    scale: list[int] | tuple[int, int] = (1, 5),
    threshold: float | None = None,
    endpoint: str | Mapping[str, Any] | None = None,
    include_input: bool = True,
    include_expected: bool = True,
    structured: bool = True,
    max_repairs: int = 2,
    cache: str | None = None,
) -> JudgeScorer:
    """An LLM judge grading each output against ``rubric``.

    ``mode``: ``pass_fail`` (value 1/0), ``likert`` (a grade on ``scale``, value
    normalized to 0–1, passed when grade >= ``threshold``, default the middle grade) or
    ``probability`` (value = the judge's P(pass), passed when >= ``threshold``, default
    0.5). ``endpoint``: a target such as ``openai:gpt-4o-mini`` or a mapping (base_url,
    model, api_key_env, params …). ``structured`` sends a JSON-schema response format;
    ``cache`` is a SQLite file path for cached judge replies.
    """
    args = _recorded(locals())
    return _build_judge("judge", args, os.environ, JudgeScorer)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- pairwise

Winner = Literal["a", "b", "tie", "inconsistent"]


@dataclass(frozen=True, slots=True)
class PairwiseVerdict:
    """One order's verdict, with ``winner`` already mapped back to the caller's a/b."""

    order: Literal["ab", "ba"]
    winner: Literal["a", "b", "tie"]
    reasoning: str
    raw: str
    attempts: int


@dataclass(frozen=True, slots=True)
class PairwiseResult:
    """The outcome of comparing outputs ``a`` and ``b`` of one case in both orders.

    ``winner`` is ``a``, ``b`` or ``tie`` when both orders agree, else ``inconsistent``
    (the judge's preference followed position, not content).
    """

    winner: Winner
    verdicts: tuple[PairwiseVerdict, PairwiseVerdict]
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class PairwiseJudge(_JudgeCaller):
    """Compares two outputs of one case; see :func:`pairwise_judge`."""

    def __init__(
        self,
        spec: ScorerSpec,
        config: JudgeConfig,
        endpoint: Endpoint,
        *,
        allow_tie: bool = True,
        **kw: Any,
    ) -> None:
        super().__init__(spec, endpoint, **kw)
        self.config = config
        self.allow_tie = allow_tie
        choices = ["A", "B", "tie"] if allow_tie else ["A", "B"]
        self.schema = _object_schema("winner", {"type": "string", "enum": choices})

    def messages(self, case: Case, first: Output, second: Output) -> list[dict[str, Any]]:
        """The chat messages asking which of two responses (shown as A, then B) is better."""
        tie = ' or "tie" when neither is better' if self.allow_tie else ""
        fmt = f'{{"reasoning": "<why>", "winner": "A" or "B"{tie}}}'
        parts = [
            *_context(self.config, case),
            f"<response_A>\n{_answer_text(first)}\n</response_A>",
            f"<response_B>\n{_answer_text(second)}\n</response_B>",
            "Which response better meets the rubric? Judge content, not order or length.",
        ]
        return [
            {"role": "system", "content": _SYSTEM.format(format=fmt)},
            {"role": "user", "content": "\n\n".join(parts)},
        ]

    async def compare(self, case: Case, a: Output, b: Output) -> PairwiseResult:
        """Ask with a first and with b first; a winner only when both orders agree."""
        async with self._session():  # one pool for both concurrent calls
            ab, ba = await asyncio.gather(
                self.ask(self.messages(case, a, b), self.schema, case),
                self.ask(self.messages(case, b, a), self.schema, case),
            )
        mapped = {"ab": {"A": "a", "B": "b"}, "ba": {"A": "b", "B": "a"}}
        verdicts = tuple(
            PairwiseVerdict(
                order,  # type: ignore[arg-type]
                mapped[order].get(r.data["winner"], "tie"),  # type: ignore[arg-type]
                str(r.data["reasoning"]),
                r.raw,
                r.attempts,
            )
            for order, r in (("ab", ab), ("ba", ba))
        )
        first, second = verdicts
        winner: Winner = first.winner if first.winner == second.winner else "inconsistent"
        usage = ab.usage.add(ba.usage)
        return PairwiseResult(
            winner,
            (first, second),
            usage.input_tokens,
            usage.output_tokens,
            usage.cost,
            {"judge_model": ab.model or ba.model, "attempts": ab.attempts + ba.attempts},
        )

    async def score(self, case: Case, output: Output) -> Score:
        """Not usable on one output: raises ScorerError pointing at :meth:`compare`."""
        raise ScorerError(
            f"scorer {self.spec.label!r} is a pairwise judge: it compares two runs' outputs "
            "for the same case, so it cannot score one output. Use it with "
            "`await build(spec).compare(case, output_a, output_b)` (see docs/judges.md), "
            "and use `judge` for per-output scores."
        )


@scorer("pairwise_judge", description="LLM judge comparing two runs' outputs (position-swapped)")
def pairwise_judge(
    *,
    rubric: str | None = None,
    rubric_file: str | None = None,
    endpoint: str | Mapping[str, Any] | None = None,
    include_input: bool = True,
    include_expected: bool = True,
    allow_tie: bool = True,
    structured: bool = True,
    max_repairs: int = 2,
    cache: str | None = None,
) -> PairwiseJudge:
    """A judge comparing two outputs of one case (``compare(case, a, b)``), asking in both
    orders and declaring a winner only when both agree; ``rubric`` says what "better" means.
    """
    args = _recorded(locals())
    return _build_judge("pairwise_judge", args, os.environ, PairwiseJudge)  # type: ignore[no-any-return]


__all__ = [
    "CASE_OPTIONS",
    "DEFAULT_ENDPOINT",
    "MODES",
    "JudgeConfig",
    "JudgeError",
    "JudgeScorer",
    "PairwiseJudge",
    "PairwiseResult",
    "PairwiseVerdict",
    "judge",
    "load_rubric",
    "pairwise_judge",
    "parse_config",
]
