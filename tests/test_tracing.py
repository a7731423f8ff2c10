"""App-side tracing: OpenAI calls and @trace/with-trace spans arrive in assay intact."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from openinference.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from assay.keys import create_key
from assay.otlp import attributes, parse_protobuf
from assay.pricing import load_prices
from assay.server import create_app
from assay.settings import Settings
from assay.store.duckdb import DuckDBStore
from assay.tracing import encode_value, set_output, setup, trace
from scripted_llm import ScriptedLLM

# --------------------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class LiveAssay:
    """An assay server on a real socket, and the store it writes to."""

    url: str
    store: DuckDBStore


@pytest.fixture
def assay_server(tmp_path: Path) -> Iterator[LiveAssay]:
    db = str(tmp_path / "assay.duckdb")
    store = DuckDBStore(db)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(Settings(db=db), store=store), log_level="warning")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "assay server did not start"
        time.sleep(0.01)
    try:
        yield LiveAssay(f"http://127.0.0.1:{port}", store)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        store.close()


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


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {s.name: s for s in spans}


# ------------------------------------------------------------------ end to end, real sockets


def test_openai_call_and_traced_steps_arrive_in_assay(
    assay_server: LiveAssay, scripted: ScriptedLLM
) -> None:
    _, secret = create_key(assay_server.store, "bot")
    provider = setup(
        assay_server.url,
        api_key=secret,
        service_name="support-bot",
        release="v7",
        set_global=False,
        resource_attributes={"deployment.environment.name": "staging"},
    )
    usage = {
        "prompt_tokens": 120,
        "completion_tokens": 30,
        "total_tokens": 150,
        "prompt_tokens_details": {"cached_tokens": 100},
    }
    scripted.queue(
        {"content": "Paris is the capital.", "model": "gpt-4o-mini-2024-07-18", "usage": usage}
    )
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    client = openai.OpenAI(base_url=scripted.base_url + "/v1", api_key="test", max_retries=0)
    try:

        @trace(
            kind="agent", route="/ask", session_id="s-1", user_id="u-1", tracer_provider=provider
        )
        def ask(question: str) -> str:
            with trace("prompt", kind="prompt", input=question, tracer_provider=provider) as sp:
                messages = [
                    {"role": "system", "content": "Answer briefly."},
                    {"role": "user", "content": question},
                ]
                set_output(sp, messages)
            reply = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=messages,  # type: ignore[arg-type]
            )
            return reply.choices[0].message.content or ""

        @trace(kind="tool", tracer_provider=provider)
        def broken_tool(city: str, limit: int = 3) -> None:
            raise LookupError(f"no weather for {city}")

        assert ask("What is the capital of France?") == "Paris is the capital."
        with pytest.raises(LookupError):
            broken_tool("Atlantis")
        assert provider.force_flush(10_000)
    finally:
        instrumentor.uninstrument()
        client.close()
        provider.shutdown()

    assert scripted.requests[0].model == "gpt-4o-mini"
    assert scripted.requests[0].headers["authorization"] == "Bearer test"
    headers = {"Authorization": f"Bearer {secret}"}
    with httpx.Client(base_url=assay_server.url, headers=headers, timeout=10) as api:
        llm_page = api.get("/api/v1/spans", params={"kind": "llm"}).raise_for_status().json()
        (llm,) = llm_page["items"]
        tree = api.get(f"/api/v1/traces/{llm['trace_id']}").raise_for_status().json()
        errors = api.get("/api/v1/spans", params={"status": "error"}).raise_for_status().json()

    (err,) = errors["items"]

    # The LLM span, exactly as the OpenInference instrumentation sent it.
    assert llm["project"] == "bot"  # the API key chose the project
    assert llm["model"] == "gpt-4o-mini-2024-07-18"
    assert llm["provider"] == "openai"
    assert (llm["input_tokens"], llm["output_tokens"], llm["total_tokens"]) == (120, 30, 150)
    assert llm["cached_input_tokens"] == 100
    expected = load_prices().cost("gpt-4o-mini-2024-07-18", 120, 30, 100)
    assert expected is not None and llm["cost"] == pytest.approx(expected)
    assert "What is the capital of France?" in llm["input_text"]
    assert llm["output_text"] == "Paris is the capital."
    assert [m["role"] for m in llm["input_messages"]] == ["system", "user"]
    assert llm["input_messages"][1]["content"] == "What is the capital of France?"
    assert [m["role"] for m in llm["output_messages"]] == ["assistant"]
    assert llm["output_messages"][0]["content"] == "Paris is the capital."
    assert (llm["service"], llm["release"], llm["environment"]) == ("support-bot", "v7", "staging")

    # The app's own steps around it: agent → (prompt, llm), with the assay columns filled.
    spans = {s["name"]: s for s in tree["spans"]}
    agent = spans[next(n for n in spans if n.endswith("ask"))]
    assert agent["kind"] == "agent" and agent["parent_span_id"] is None
    assert spans["prompt"]["kind"] == "prompt"
    assert spans["prompt"]["parent_span_id"] == agent["span_id"]
    assert llm["parent_span_id"] == agent["span_id"]
    assert agent["input_text"] == "What is the capital of France?"
    assert agent["output_text"] == "Paris is the capital."
    assert json.loads(spans["prompt"]["output_text"])[1]["role"] == "user"
    assert (agent["route"], agent["session_id"], agent["user_id"]) == ("/ask", "s-1", "u-1")
    assert agent["release"] == "v7"  # from service.version on the resource
    # session and user reach the spans inside, the instrumented LLM call included
    for inner in (spans["prompt"], llm):
        assert (inner["session_id"], inner["user_id"]) == ("s-1", "u-1")
    assert err["session_id"] is None  # …and stop at the end of the traced call
    (root,) = tree["roots"]
    assert root["span_id"] == agent["span_id"]
    assert {c["name"] for c in root["children"]} == {"prompt", llm["name"]}

    # The raising tool: an error span with the exception recorded.
    assert err["kind"] == "tool" and err["status"] == "error"
    assert err["status_message"] == "LookupError: no weather for Atlantis"
    assert json.loads(err["input_text"]) == {"city": "Atlantis"}  # defaults left out
    assert [e["name"] for e in err["events"]] == ["exception"]


# ---------------------------------------------------------------- @trace, in memory


def test_decorator_and_block_nest_with_inputs_and_outputs(
    memory: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = memory

    @trace(kind="retriever", tracer_provider=provider)
    def search(query: str, k: int = 2) -> list[dict[str, Any]]:
        return [{"id": i, "text": f"doc {i} about {query}"} for i in range(k)]

    @trace(tracer_provider=provider)
    def answer(question: str) -> str:
        with trace("tools", kind="tool", input={"q": question}, tracer_provider=provider) as sp:
            docs = search(question, k=1)
            set_output(sp, len(docs))
        return f"{question} -> {docs[0]['text']}"

    assert answer("cats") == "cats -> doc 0 about cats"
    spans = by_name(exporter.get_finished_spans())
    local = "test_decorator_and_block_nest_with_inputs_and_outputs.<locals>."
    assert set(spans) == {"tools", local + "answer", local + "search"}
    outer = next(s for n, s in spans.items() if n.endswith("answer"))
    inner = next(s for n, s in spans.items() if n.endswith("search"))
    tools = spans["tools"]
    assert outer.parent is None
    assert tools.parent is not None and tools.parent.span_id == outer.context.span_id
    assert inner.parent is not None and inner.parent.span_id == tools.context.span_id
    assert len({s.context.trace_id for s in spans.values()}) == 1

    assert outer.attributes is not None and tools.attributes is not None
    assert inner.attributes is not None
    assert outer.attributes["openinference.span.kind"] == "CHAIN"
    assert outer.attributes["input.value"] == "cats"
    assert outer.attributes["input.mime_type"] == "text/plain"
    assert outer.attributes["output.value"] == "cats -> doc 0 about cats"
    assert tools.attributes["openinference.span.kind"] == "TOOL"
    assert json.loads(str(tools.attributes["input.value"])) == {"q": "cats"}
    assert tools.attributes["output.value"] == "1"
    assert inner.attributes["openinference.span.kind"] == "RETRIEVER"
    assert json.loads(str(inner.attributes["input.value"])) == {"query": "cats", "k": 1}
    assert inner.attributes["input.mime_type"] == "application/json"
    assert json.loads(str(inner.attributes["output.value"]))[0]["text"] == "doc 0 about cats"
    assert all(s.status.status_code is StatusCode.UNSET for s in spans.values())


def test_exceptions_are_recorded_and_reraised(
    memory: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = memory

    @trace(name="fails", kind="tool", tracer_provider=provider)
    def fails(x: int) -> int:
        raise ValueError(f"bad x={x}")

    with pytest.raises(ValueError, match="bad x=3"):
        fails(3)
    with pytest.raises(KeyError), trace("block", tracer_provider=provider):
        raise KeyError("missing")

    spans = by_name(exporter.get_finished_spans())
    for name, message in (("fails", "ValueError: bad x=3"), ("block", "KeyError: 'missing'")):
        span = spans[name]
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == message
        (event,) = span.events
        assert event.name == "exception"
        assert event.attributes is not None
        assert event.attributes["exception.type"] in ("ValueError", "KeyError")
    assert spans["fails"].attributes is not None
    assert "output.value" not in spans["fails"].attributes


async def test_async_functions_keep_their_own_parents(
    memory: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = memory

    @trace(name="step", kind="tool", tracer_provider=provider)
    async def step(n: int) -> int:
        await asyncio.sleep(0.01)
        return n * 10

    @trace(name="job", kind="agent", tracer_provider=provider)
    async def job(n: int) -> list[int]:
        return [await step(n), await step(n + 1)]

    assert asyncio.iscoroutinefunction(job)
    results = await asyncio.gather(job(1), job(5))
    assert list(results) == [[10, 20], [50, 60]]

    spans = exporter.get_finished_spans()
    jobs = {s.context.span_id: s for s in spans if s.name == "job"}
    steps = [s for s in spans if s.name == "step"]
    assert len(jobs) == 2 and len(steps) == 4
    for s in steps:
        assert s.parent is not None
        parent = jobs[s.parent.span_id]
        assert s.attributes is not None and parent.attributes is not None
        n = int(str(parent.attributes["input.value"]))
        assert int(str(s.attributes["output.value"])) in (n * 10, (n + 1) * 10)
    assert {str(s.attributes["output.value"]) for s in jobs.values() if s.attributes} == {
        "[10, 20]",
        "[50, 60]",
    }


async def test_async_exception_sets_error(
    memory: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = memory

    @trace(tracer_provider=provider)
    async def boom() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("async boom")

    with pytest.raises(RuntimeError):
        await boom()
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None and "input.value" not in span.attributes  # no arguments


def test_session_and_user_apply_to_spans_inside(
    memory: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = memory
    with (
        trace("request", session_id="s-9", tracer_provider=provider),
        trace("inner", user_id="u-9", tracer_provider=provider),
        trace("deepest", session_id="s-override", tracer_provider=provider),
    ):
        pass
    with trace("after", tracer_provider=provider):
        pass
    spans = exporter.get_finished_spans()
    sessions = {s.name: (s.attributes or {}).get("session.id") for s in spans}
    users = {s.name: (s.attributes or {}).get("user.id") for s in spans}
    assert sessions == {"request": "s-9", "inner": "s-9", "deepest": "s-override", "after": None}
    assert users == {"request": None, "inner": "u-9", "deepest": "u-9", "after": None}


def test_bare_decorator_methods_and_keyword_attributes(
    memory: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = memory

    class Bot:
        @trace(
            kind="agent",
            route="/chat",
            release="r1",
            session_id="s",
            user_id="u",
            attributes={"team": "search"},
            tracer_provider=provider,
        )
        def reply(self, text: str, *, temperature: float = 0.0) -> dict[str, str]:
            return {"text": text.upper()}

    @trace
    def plain(x: int) -> int:  # global provider (a no-op here): still returns normally
        return x + 1

    assert Bot().reply("hi", temperature=0.5) == {"text": "HI"}
    assert plain(1) == 2 and plain.__name__ == "plain"
    (span,) = exporter.get_finished_spans()
    attrs = span.attributes
    assert attrs is not None
    assert span.name.endswith("Bot.reply")
    assert json.loads(str(attrs["input.value"])) == {"text": "hi", "temperature": 0.5}
    assert json.loads(str(attrs["output.value"])) == {"text": "HI"}
    assert attrs["output.mime_type"] == "application/json"
    assert (attrs["assay.route"], attrs["assay.release"]) == ("/chat", "r1")
    assert (attrs["session.id"], attrs["user.id"], attrs["team"]) == ("s", "u", "search")


def test_capture_can_be_turned_off_and_values_are_truncated(
    memory: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = memory

    @trace(name="secret", capture_input=False, capture_output=False, tracer_provider=provider)
    def secret(password: str) -> str:
        return password[::-1]

    @trace(name="long", max_chars=50, tracer_provider=provider)
    def long(text: str) -> list[str]:
        return [text] * 10

    secret("hunter2")
    long("x" * 1000)
    spans = by_name(exporter.get_finished_spans())
    assert spans["secret"].attributes is not None
    assert not {"input.value", "output.value"} & set(spans["secret"].attributes)
    attrs = spans["long"].attributes
    assert attrs is not None
    assert attrs["input.value"] == "x" * 49 + "…"
    assert len(str(attrs["output.value"])) == 50
    assert attrs["output.mime_type"] == "text/plain"  # cut JSON is no longer JSON


def test_encode_value_never_raises() -> None:
    @dataclass(frozen=True)
    class Doc:
        id: int
        tags: frozenset[str]

    class Opaque:
        def __repr__(self) -> str:
            return "<opaque>"

    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    loop: list[Any] = []
    loop.append(loop)
    assert encode_value("plain") == ("plain", "text/plain")
    assert json.loads(encode_value(Doc(1, frozenset({"a"})))[0]) == {"id": 1, "tags": ["a"]}
    assert encode_value({"o": Opaque(), "b": b"abc"})[0] == '{"o": "<opaque>", "b": "<3 bytes>"}'
    assert encode_value(loop) == ("[[...]]", "text/plain")
    assert encode_value(Hostile()) == ("<unencodable Hostile>", "text/plain")


def test_misuse_gets_a_message_that_says_what_to_do() -> None:
    with pytest.raises(ValueError, match="not a span kind"):
        trace("x", kind="banana")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="needs a name"), trace():
        pass

    def numbers() -> Iterator[int]:
        yield 1

    with pytest.raises(TypeError, match="use `with trace"):
        trace(numbers)
    block = trace("once")
    with block, pytest.raises(RuntimeError, match="already open"), block:
        pass
    with pytest.raises(ValueError, match="http"):
        setup("127.0.0.1:7800", set_global=False)


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, dict[str, str], bytes]]]]:
    """A bare OTLP receiver that records (path, headers, body) and answers 200."""
    received: list[tuple[str, dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_setup_takes_endpoint_and_key_from_arguments_or_settings(
    collector: tuple[str, list[tuple[str, dict[str, str], bytes]]],
) -> None:
    url, received = collector
    from_settings = setup(
        settings=Settings(url=url + "/", api_key="k-1"),
        service_name="svc",
        release="v2",
        set_global=False,
        batch=False,
        resource_attributes={"deployment.environment.name": "ci"},
    )
    explicit = setup(
        url + "/v1/traces",
        api_key="k-2",
        settings=Settings(url="http://nowhere:1"),
        set_global=False,
        batch=False,
    )
    keyless = setup(url, set_global=False, batch=False)
    try:
        for provider in (from_settings, explicit, keyless):
            with trace("ping", tracer_provider=provider):
                pass
    finally:
        for provider in (from_settings, explicit, keyless):
            provider.shutdown()

    assert [path for path, _, _ in received] == ["/v1/traces"] * 3
    assert [h.get("authorization") for _, h, _ in received] == ["Bearer k-1", "Bearer k-2", None]
    resource = attributes(parse_protobuf(received[0][2]).resource_spans[0].resource.attributes)
    assert resource["service.name"] == "svc"
    assert resource["service.version"] == "v2"
    assert resource["deployment.environment.name"] == "ci"


# --------------------------------------------------------------- the scripted model itself


def test_scripted_model_serves_queue_errors_tools_and_streams(scripted: ScriptedLLM) -> None:
    scripted.default = "default reply"
    scripted.queue(
        "first",
        {"status": 429, "headers": {"Retry-After": "0"}},
        {"tool_calls": [{"name": "lookup", "arguments": {"city": "Oslo"}}]},
        lambda body: f"echo {body['messages'][-1]['content']}",
    )
    with openai.OpenAI(base_url=scripted.base_url + "/v1", api_key="k", max_retries=0) as c:
        msgs: Any = [{"role": "user", "content": "one two three"}]
        first = c.chat.completions.create(model="m", messages=msgs)
        assert first.choices[0].message.content == "first"
        assert first.model == "m"
        assert first.usage is not None
        assert (first.usage.prompt_tokens, first.usage.completion_tokens) == (3, 1)
        with pytest.raises(openai.RateLimitError) as info:
            c.chat.completions.create(model="m", messages=msgs)
        assert info.value.response.headers["retry-after"] == "0"
        tool = c.chat.completions.create(model="m", messages=msgs)
        assert tool.choices[0].finish_reason == "tool_calls"
        call: Any = tool.choices[0].message.tool_calls[0]  # type: ignore[index]
        assert (call.function.name, json.loads(call.function.arguments)) == (
            "lookup",
            {"city": "Oslo"},
        )
        assert c.chat.completions.create(model="m", messages=msgs).choices[0].message.content == (
            "echo one two three"
        )
        stream = c.chat.completions.create(
            model="m", messages=msgs, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(stream)
        assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == (
            "default reply"
        )
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 2
    scripted.queue({"content": "too late", "delay": 0.3}, "in time")
    with (
        openai.OpenAI(
            base_url=scripted.base_url + "/v1", api_key="k", max_retries=0, timeout=0.05
        ) as c,
        pytest.raises(openai.APITimeoutError),
    ):
        c.chat.completions.create(model="m", messages=msgs)
    assert scripted.pending == 1  # "in time" is still queued
    assert len(scripted.requests) == 6
    assert scripted.requests[0].messages == msgs
