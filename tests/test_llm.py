"""The OpenAI-compatible chat client: outputs, retries, errors, rate limits, cache, spans."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from assay.llm import (
    ChatClient,
    Endpoint,
    EndpointError,
    LLMError,
    RateLimiter,
    ResponseCache,
    endpoint_from_config,
    endpoint_from_target,
    retry_after_s,
)
from assay.otlp import decode_request
from assay.pricing import load_prices
from scripted_llm import ScriptedLLM

USER = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def scripted() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as llm:
        yield llm


@pytest.fixture
def memory() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def endpoint(llm: ScriptedLLM, **kw: Any) -> Endpoint:
    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("model", "gpt-4o-mini")
    return Endpoint(base_url=llm.base_url + "/v1", **kw)


# --------------------------------------------------------------------------- answers


async def test_complete_returns_text_tokens_cost_and_sends_params(scripted: ScriptedLLM) -> None:
    scripted.queue(
        {
            "content": "Paris.",
            "model": "gpt-4o-mini-2024-07-18",
            "usage": {"prompt_tokens": 1000, "completion_tokens": 500},
        }
    )
    ep = endpoint(scripted, api_key="sk-test", params={"temperature": 0.2, "max_tokens": 50})
    async with ChatClient(ep, prices=load_prices()) as client:
        out = await client.complete(
            USER,
            params={"temperature": 0.0, "max_tokens": None, "seed": 7},
            response_format={"type": "json_object"},
        )
    assert out.text == "Paris."
    assert out.model == "gpt-4o-mini-2024-07-18"
    assert (out.input_tokens, out.output_tokens) == (1000, 500)
    assert out.cost == pytest.approx((1000 * 0.15 + 500 * 0.60) / 1e6)
    assert out.latency_ms > 0
    assert out.data == {"role": "assistant", "content": "Paris."}
    (req,) = scripted.requests
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == "Bearer sk-test"
    # Call params override the endpoint's; None removes one.
    assert req.body == {
        "model": "gpt-4o-mini",
        "messages": USER,
        "temperature": 0.0,
        "seed": 7,
        "response_format": {"type": "json_object"},
    }


async def test_tool_calls_are_in_output_data(scripted: ScriptedLLM) -> None:
    scripted.queue({"content": None, "tool_calls": [{"name": "weather", "arguments": {"c": 1}}]})
    async with ChatClient(endpoint(scripted)) as client:
        out = await client.complete(USER)
    assert out.text == ""
    (call,) = out.data["tool_calls"]
    assert call["function"] == {"name": "weather", "arguments": '{"c": 1}'}


# --------------------------------------------------------------------------- retries


async def test_429_waits_for_retry_after(scripted: ScriptedLLM) -> None:
    scripted.queue({"status": 429, "headers": {"Retry-After": "1"}}, "ok")
    # The jittered backoff alone would wait at most 10 ms: the second only comes from the header.
    async with ChatClient(endpoint(scripted, backoff_s=0.01)) as client:
        t0 = time.perf_counter()
        out = await client.complete(USER)
        elapsed = time.perf_counter() - t0
    assert out.text == "ok"
    assert len(scripted.requests) == 2
    assert 0.95 <= elapsed < 2.5


async def test_retry_after_is_capped(scripted: ScriptedLLM) -> None:
    scripted.queue({"status": 503, "headers": {"Retry-After": "3600"}}, "ok")
    async with ChatClient(endpoint(scripted, retry_after_max_s=0.2)) as client:
        t0 = time.perf_counter()
        assert (await client.complete(USER)).text == "ok"
    assert 0.18 <= time.perf_counter() - t0 < 1.5


def test_retry_after_parses_seconds_milliseconds_and_http_dates() -> None:
    assert retry_after_s({"Retry-After": "7"}) == 7.0
    assert retry_after_s({"retry-after-ms": "250", "Retry-After": "7"}) == 0.25
    assert retry_after_s({}) is None
    assert retry_after_s({"Retry-After": "soon"}) is None
    now = datetime(2026, 1, 1, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert retry_after_s({"Retry-After": later}, now=now.timestamp()) == pytest.approx(30)
    assert (
        retry_after_s({"Retry-After": format_datetime(now, usegmt=True)}, now=now.timestamp() + 9)
        == 0
    )


async def test_500_then_success(
    scripted: ScriptedLLM, memory: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = memory
    scripted.queue({"status": 500}, "recovered")
    async with ChatClient(endpoint(scripted), tracer_provider=provider) as client:
        out = await client.complete(USER)
    assert out.text == "recovered"
    assert len(scripted.requests) == 2
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None and span.attributes["assay.attempts"] == 2
    assert span.status.status_code is not StatusCode.ERROR


async def test_timeout_is_retried(scripted: ScriptedLLM) -> None:
    scripted.queue({"content": "late", "delay": 1.0}, "on time")
    async with ChatClient(endpoint(scripted, timeout_s=0.3)) as client:
        t0 = time.perf_counter()
        out = await client.complete(USER)
    assert out.text == "on time"
    assert len(scripted.requests) == 2
    assert time.perf_counter() - t0 < 0.9


async def test_timeouts_exhausted_say_what_to_change(scripted: ScriptedLLM) -> None:
    scripted.queue(*[{"content": "late", "delay": 0.5}] * 2)
    async with ChatClient(endpoint(scripted, timeout_s=0.1, max_retries=1)) as client:
        with pytest.raises(LLMError) as info:
            await client.complete(USER)
    err = info.value
    assert (err.status, err.retryable, err.attempts) == (None, True, 2)
    assert "timeout_s" in err.message


async def test_server_errors_exhausted(scripted: ScriptedLLM) -> None:
    scripted.queue(*[{"status": 503}] * 5)
    async with ChatClient(endpoint(scripted, max_retries=2)) as client:
        with pytest.raises(LLMError) as info:
            await client.complete(USER)
    assert (info.value.status, info.value.retryable, info.value.attempts) == (503, True, 3)
    assert len(scripted.requests) == 3


async def test_malformed_body_is_retried_then_reported(scripted: ScriptedLLM) -> None:
    scripted.queue({"raw": "{not json"}, "fine")
    async with ChatClient(endpoint(scripted)) as client:
        assert (await client.complete(USER)).text == "fine"
        scripted.queue({"raw": "{not json"}, {"raw": '{"object": "list"}'})
        client.endpoint = endpoint(scripted, max_retries=1)
        with pytest.raises(LLMError) as info:
            await client.complete(USER)
    assert info.value.status == 200
    assert "not with a chat completion" in info.value.message


async def test_400_is_not_retried(scripted: ScriptedLLM) -> None:
    scripted.queue(
        {"status": 400, "body": {"error": {"message": "temperature must be <= 2"}}}, "unused"
    )
    async with ChatClient(endpoint(scripted, params={"temperature": 5})) as client:
        with pytest.raises(LLMError) as info:
            await client.complete(USER)
    err = info.value
    assert (err.status, err.retryable, err.attempts) == (400, False, 1)
    assert "temperature must be <= 2" in err.message
    assert len(scripted.requests) == 1


async def test_401_names_the_key_variable_not_the_key(scripted: ScriptedLLM) -> None:
    scripted.queue({"status": 401, "body": {"error": {"message": "Incorrect API key"}}})
    env = {"OPENAI_BASE_URL": scripted.base_url + "/v1", "OPENAI_API_KEY": "sk-secret-123"}
    async with ChatClient(endpoint_from_target("openai:gpt-4o-mini", env)) as client:
        with pytest.raises(LLMError) as info:
            await client.complete(USER)
    err = info.value
    assert (err.status, err.retryable, err.attempts) == (401, False, 1)
    assert "$OPENAI_API_KEY" in err.message
    assert "sk-secret-123" not in err.message
    assert len(scripted.requests) == 1


async def test_404_points_at_model_and_base_url(scripted: ScriptedLLM) -> None:
    # The scripted server answers 404 for any other path, like a base URL without /v1/…
    ep = Endpoint(base_url=scripted.base_url + "/wrong", model="gpt-4o-mini")
    async with ChatClient(ep) as client:
        with pytest.raises(LLMError) as info:
            await client.complete(USER)
    assert info.value.status == 404
    assert "'gpt-4o-mini'" in info.value.message
    assert "base URL" in info.value.message


async def test_unreachable_server_is_a_connection_error() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens on this port now
    ep = Endpoint(base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=1, backoff_s=0)
    async with ChatClient(ep) as client:
        with pytest.raises(LLMError) as info:
            await client.complete(USER)
    assert info.value.retryable and info.value.attempts == 2
    assert "cannot reach" in info.value.message


# --------------------------------------------------------------------------- limits


async def test_rpm_spaces_requests(scripted: ScriptedLLM) -> None:
    # 300/min: bursts of 5 (one second's worth), then one every 0.2 s.
    async with ChatClient(endpoint(scripted, rpm=300)) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(client.complete(USER) for _ in range(8)))
        elapsed = time.perf_counter() - t0
    assert 0.55 <= elapsed < 1.5


async def test_tpm_limits_tokens_and_is_corrected_by_usage() -> None:
    limiter = RateLimiter(tpm=600_000)  # 10,000 tokens a second
    t0 = time.perf_counter()
    await limiter.acquire(10_000)
    limiter.correct(10_000, 100)  # the call used far fewer than estimated
    await limiter.acquire(9_000)
    assert time.perf_counter() - t0 < 0.2  # without the correction: 0.9 s
    await limiter.acquire(5_000)  # 9,100 + 5,000 tokens within a second: must wait
    assert time.perf_counter() - t0 >= 0.35


async def test_pool_bounds_requests_in_flight(scripted: ScriptedLLM) -> None:
    scripted.default = {"content": "ok", "delay": 0.1}
    async with ChatClient(endpoint(scripted, max_connections=4, timeout_s=0.5)) as client:
        outs = await asyncio.gather(*(client.complete(USER) for _ in range(12)))
    # Queued calls wait for a connection without that wait eating into their timeout.
    assert [o.text for o in outs] == ["ok"] * 12
    assert scripted.max_in_flight <= 4


# --------------------------------------------------------------------------- cache


async def test_cache_answers_repeats_without_a_request(
    scripted: ScriptedLLM, tmp_path: Path, memory: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = memory
    scripted.queue({"status": 500}, "first", "second")
    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        async with ChatClient(
            endpoint(scripted, max_retries=0), cache=cache, tracer_provider=provider
        ) as client:
            with pytest.raises(LLMError):
                await client.complete(USER)  # failures are not cached
            a = await client.complete(USER)
            b = await client.complete(USER)
            c = await client.complete(USER, params={"temperature": 1})
    assert (a.text, b.text, c.text) == ("first", "first", "second")
    assert (b.input_tokens, b.output_tokens) == (a.input_tokens, a.output_tokens)
    assert len(scripted.requests) == 3
    hits = [
        s.attributes["assay.cache_hit"]
        for s in exporter.get_finished_spans()
        if s.attributes and "assay.cache_hit" in s.attributes
    ]
    assert hits == [False, True, False]
    # The file outlives the client.
    with ResponseCache(tmp_path / "cache.sqlite") as again:
        async with ChatClient(endpoint(scripted), cache=again) as client:
            assert (await client.complete(USER)).text == "first"
    assert len(scripted.requests) == 3


def test_cache_key_depends_on_what_determines_the_answer() -> None:
    k = ResponseCache.key("http://h/v1", "m", USER, {"temperature": 0}, None)
    assert k == ResponseCache.key("http://h/v1/", "m", USER, {"temperature": 0}, None)
    assert k != ResponseCache.key("http://h/v1", "m2", USER, {"temperature": 0}, None)
    assert k != ResponseCache.key("http://h/v1", "m", USER, {"temperature": 1}, None)
    assert k != ResponseCache.key(
        "http://h/v1", "m", USER, {"temperature": 0}, {"type": "json_object"}
    )


# --------------------------------------------------------------------------- spans


async def test_span_carries_genai_attributes_and_lands_in_assay_columns(
    scripted: ScriptedLLM, memory: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = memory
    usage = {
        "prompt_tokens": 12,
        "completion_tokens": 3,
        "prompt_tokens_details": {"cached_tokens": 8},
    }
    scripted.queue({"content": "Paris.", "model": "gpt-4o-mini-2024-07-18", "usage": usage})
    env = {"OPENAI_BASE_URL": scripted.base_url + "/v1", "OPENAI_API_KEY": "k"}
    ep = endpoint_from_target(
        "openai:gpt-4o-mini", env, params={"temperature": 0.3, "max_tokens": 20}
    )
    messages = [{"role": "system", "content": "Be brief."}, *USER]
    async with ChatClient(ep, tracer_provider=provider) as client:
        out = await client.complete(messages, attributes={"assay.case_id": "c1"})
    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert span.name == "chat gpt-4o-mini"
    assert out.trace_id == format(span.context.trace_id, "032x")
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert attrs["gen_ai.request.temperature"] == 0.3
    assert attrs["gen_ai.request.max_tokens"] == 20
    assert attrs["gen_ai.usage.input_tokens"] == 12
    assert attrs["gen_ai.usage.output_tokens"] == 3
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 8
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["assay.case_id"] == "c1"
    assert attrs["assay.cache_hit"] is False
    assert json.loads(str(attrs["gen_ai.input.messages"]))[0] == {
        "role": "system",
        "parts": [{"type": "text", "content": "Be brief."}],
    }
    # Through assay's own OTLP mapping, the span fills the columns a user queries.
    (row,) = decode_request(encode_spans([span]), "p", load_prices()).spans
    assert (row.kind, row.operation, row.provider) == ("llm", "chat", "openai")
    assert (row.model, row.request_model) == ("gpt-4o-mini-2024-07-18", "gpt-4o-mini")
    assert (row.input_tokens, row.output_tokens, row.cached_input_tokens) == (12, 3, 8)
    assert row.input_text == USER[0]["content"]
    assert row.output_text == "Paris."
    assert row.finish_reason == "stop"
    assert row.input_messages is not None and [m["role"] for m in row.input_messages] == [
        "system",
        "user",
    ]
    assert row.cost is not None and row.cost > 0
    assert "gen_ai.input.messages" not in row.attributes  # stored once, in the column


async def test_failed_call_span_has_error_status(
    scripted: ScriptedLLM, memory: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = memory
    scripted.queue({"status": 400})
    async with ChatClient(endpoint(scripted), tracer_provider=provider) as client:
        with pytest.raises(LLMError):
            await client.complete(USER)
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None and span.attributes["error.type"] == "400"


async def test_without_a_provider_spans_are_no_ops(scripted: ScriptedLLM) -> None:
    async with ChatClient(endpoint(scripted)) as client:
        out = await client.complete(USER)
    assert out.trace_id is None


# --------------------------------------------------------------------------- endpoints


def test_target_reads_base_url_and_key_from_the_given_env() -> None:
    ep = endpoint_from_target("openai:gpt-4o-mini", {"OPENAI_API_KEY": "sk-1"})
    assert (ep.base_url, ep.model, ep.api_key_env) == (
        "https://api.openai.com/v1",
        "gpt-4o-mini",
        "OPENAI_API_KEY",
    )
    assert "sk-1" not in repr(ep) and "sk-1" not in json.dumps(ep.to_config())
    local = endpoint_from_target("ollama:llama3.1:8b", {})
    assert (local.model, local.base_url, local.api_key) == (
        "llama3.1:8b",
        "http://127.0.0.1:11434/v1",
        None,
    )
    proxy = endpoint_from_target("openai:m", {"OPENAI_BASE_URL": "http://127.0.0.1:4000/v1"})
    assert proxy.base_url == "http://127.0.0.1:4000/v1" and proxy.api_key is None


def test_target_errors_say_how_to_fix() -> None:
    with pytest.raises(EndpointError, match="export OPENAI_API_KEY"):
        endpoint_from_target("openai:gpt-4o-mini", {})
    with pytest.raises(EndpointError, match="unknown provider 'antropic'"):
        endpoint_from_target("antropic:claude", {})
    with pytest.raises(EndpointError, match="provider:model"):
        endpoint_from_target("gpt-4o", {})
    with pytest.raises(EndpointError, match="max_retries"):
        endpoint_from_target("vllm:m", {}, max_retries=-1)


def test_config_round_trip_keeps_the_key_out() -> None:
    env = {"MY_KEY": "sk-9"}
    ep = endpoint_from_config(
        {"base_url": "http://h/v1", "model": "m", "api_key_env": "MY_KEY", "params": {"seed": 1}},
        env,
    )
    assert ep.api_key == "sk-9"
    config = ep.to_config()
    assert config == {
        "base_url": "http://h/v1",
        "model": "m",
        "api_key_env": "MY_KEY",
        "params": {"seed": 1},
    }
    assert endpoint_from_config(config, env) == ep
    with pytest.raises(EndpointError, match="api_key_env"):
        endpoint_from_config({"base_url": "http://h/v1", "model": "m", "api_key": "sk"}, env)
    with pytest.raises(EndpointError, match="MY_KEY is not set"):
        endpoint_from_config(config, {})
    with pytest.raises(EndpointError, match="unknown endpoint field"):
        endpoint_from_config({"base_url": "http://h/v1", "model": "m", "temprature": 0}, env)
