"""Targets: chat models, Python callables and HTTP endpoints answering golden cases."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import textwrap
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from assay.llm import Endpoint, LLMError
from assay.model import Case, Output
from assay.pricing import load_prices
from assay.targets import (
    CallableTarget,
    ChatTarget,
    HttpTarget,
    Target,
    TargetConfigError,
    TargetError,
    build_target,
    extract,
    render,
)
from scripted_llm import ScriptedLLM

CHAT = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "Capital of France?"},
]
SECRET = "SECRET-EXPECTED-ANSWER"
HINT = "SECRET-SCORER-OPTION"


def case(inp: Any = "What is 2+2?", **kw: Any) -> Case:
    kw.setdefault("id", "c1")
    return Case(input=inp, **kw)


def secret_case() -> Case:
    return Case(
        id="s1",
        input="Where is the Eiffel tower?",
        expected=SECRET,
        metadata={"lang": "en"},
        options={"contains": {"value": HINT}},
    )


# --------------------------------------------------------------------------- servers


@pytest.fixture
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as server:
        yield server


def chat_endpoint(llm: ScriptedLLM, **kw: Any) -> Endpoint:
    kw.setdefault("model", "gpt-4o-mini")
    kw.setdefault("backoff_s", 0.01)
    return Endpoint(base_url=llm.base_url + "/v1", **kw)


@dataclass(frozen=True)
class Seen:
    """One request the JSON server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


Reply = dict[str, Any] | Callable[[Seen], dict[str, Any]]


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # close() waits for a delayed reply, so no thread outlives a test

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out hangs up before a delayed reply is written.
        if not isinstance(sys.exception(), ConnectionError):
            super().handle_error(request, client_address)


class JsonServer:
    """A JSON HTTP server on 127.0.0.1 serving queued replies: ``{"json": value}`` or
    ``{"raw": bytes}``, with optional ``status``, ``headers`` and ``delay``."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.replies: deque[Reply] = deque()
        self.default: Reply = {"json": {"ok": True}}
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/answer"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def queue(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _next(self, seen: Seen) -> dict[str, Any]:
        with self._lock:
            self.requests.append(seen)
            reply = self.replies.popleft() if self.replies else self.default
        return reply(seen) if callable(reply) else reply

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw) if raw else None
                except json.JSONDecodeError:
                    body = raw.decode()
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply = server._next(Seen(self.command, self.path, headers, body))
                time.sleep(reply.get("delay", 0))
                data = reply["raw"] if "raw" in reply else json.dumps(reply.get("json")).encode()
                self.send_response(reply.get("status", 200))
                self.send_header("Content-Length", str(len(data)))
                for k, v in (reply.get("headers") or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        return Handler


@pytest.fixture
def api() -> Iterator[JsonServer]:
    server = JsonServer()
    yield server
    server.close()


@pytest.fixture
async def http_target(api: JsonServer) -> AsyncIterator[Callable[..., HttpTarget]]:
    made: list[HttpTarget] = []

    def make(**kw: Any) -> HttpTarget:
        kw.setdefault("backoff_s", 0.0)
        kw.setdefault("env", {})
        target = HttpTarget(kw.pop("url", api.url), **kw)
        made.append(target)
        return target

    yield make
    for t in made:
        await t.aclose()


# --------------------------------------------------------------------------- render / extract


def test_render_whole_placeholder_takes_the_value_itself() -> None:
    variables = {"input": "hi", "messages": CHAT, "id": "c1", "metadata": {"n": 3, "t": "x"}}
    assert render("{{messages}}", variables) == CHAT
    assert render("  {{ messages }} ", variables) == CHAT
    assert render("{{metadata.n}}", variables) == 3
    assert render({"a": ["{{id}}", {"b": "{{metadata}}"}], "k": 7, "z": None}, variables) == {
        "a": ["c1", {"b": {"n": 3, "t": "x"}}],
        "k": 7,
        "z": None,
    }


def test_render_inside_text_writes_non_strings_as_json() -> None:
    variables = {"input": "hi", "messages": [], "id": "c1", "metadata": {"n": 3, "tags": ["a"]}}
    assert render("Q: {{input}} n={{metadata.n}} t={{metadata.tags}}", variables) == (
        'Q: hi n=3 t=["a"]'
    )


def test_render_unknown_key_names_the_placeholder_and_case() -> None:
    variables = {"input": "hi", "messages": [], "id": "c7", "metadata": {}}
    with pytest.raises(TargetConfigError, match=r"\{\{metadata\.lang\}\}.*'c7'"):
        render("in {{metadata.lang}}", variables)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("choices[0].message.content", "Paris"),
        ("choices[-1].message.content", "Lyon"),
        ("meta.scores[1]", 0.5),
        ("meta", {"scores": [1, 0.5]}),
    ],
)
def test_extract_follows_fields_and_indexes(path: str, value: Any) -> None:
    data = {
        "choices": [{"message": {"content": "Paris"}}, {"message": {"content": "Lyon"}}],
        "meta": {"scores": [1, 0.5]},
    }
    assert extract(data, path) == value
    assert extract([{"a": 1}], "[0].a") == 1  # a list at the top


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        ({"answer": "x", "id": 1}, "text", r"has no field 'text' \(fields: answer, id\)"),
        ({"items": [1, 2]}, "items[2]", r"items has 2 item\(s\), no \[2\]"),
        ({"items": [1, 2]}, "items[-3]", r"no \[-3\]"),
        ({"a": "text"}, "a.b", r"a is a string, not an object"),
        ({"a": {"b": 1}}, "a[0]", r"a is an object, not a list"),
        (None, "a", r"the response is null"),
    ],
)
def test_extract_missing_value_is_a_target_error(data: Any, path: str, message: str) -> None:
    with pytest.raises(TargetError, match=message):
        extract(data, path)


@pytest.mark.parametrize("path", ["", "a..b", "a[x]", "a[0]b", ".a"])
def test_extract_malformed_path_is_a_config_error(path: str) -> None:
    with pytest.raises(TargetConfigError, match="is not a path"):
        extract({"a": 1}, path)


# --------------------------------------------------------------------------- chat


def test_chat_text_input_is_one_user_message(llm: ScriptedLLM) -> None:
    target = ChatTarget(chat_endpoint(llm))
    assert target.messages(case("Hi there")) == [{"role": "user", "content": "Hi there"}]


def test_chat_system_and_template_fill_case_variables(llm: ScriptedLLM) -> None:
    target = ChatTarget(
        chat_endpoint(llm),
        system="Answer in {{metadata.lang}}.",
        template="[{{id}}] Question: {{input}} (level {{metadata.level}})",
    )
    msgs = target.messages(case("Why?", metadata={"lang": "French", "level": 2}))
    assert msgs == [
        {"role": "system", "content": "Answer in French."},
        # A whole-value placeholder still gives text in a prompt.
        {"role": "user", "content": "[c1] Question: Why? (level 2)"},
    ]
    only_number = ChatTarget(chat_endpoint(llm), template="{{metadata.level}}")
    assert only_number.messages(case("x", metadata={"level": 2})) == [
        {"role": "user", "content": "2"}
    ]


def test_chat_messages_are_passed_through_after_the_system_prompt(llm: ScriptedLLM) -> None:
    target = ChatTarget(chat_endpoint(llm), system="Be kind.", template="ignored {{input}}")
    assert target.messages(case(CHAT)) == [{"role": "system", "content": "Be kind."}, *CHAT]
    assert ChatTarget(chat_endpoint(llm)).messages(case(CHAT)) == CHAT


def test_chat_template_can_use_the_last_user_message_of_a_conversation(llm: ScriptedLLM) -> None:
    target = ChatTarget(chat_endpoint(llm), system="Topic: {{input}}")
    assert target.messages(case(CHAT))[0] == {
        "role": "system",
        "content": "Topic: Capital of France?",
    }


@pytest.mark.parametrize(
    "kw",
    [{"system": "Hi {{inptu}}"}, {"template": "{{input.text}}"}, {"template": "{{expected}}"}],
)
def test_chat_unknown_placeholder_fails_when_built(llm: ScriptedLLM, kw: dict[str, Any]) -> None:
    with pytest.raises(TargetConfigError, match=r"placeholder .* is unknown"):
        ChatTarget(chat_endpoint(llm), **kw)


async def test_chat_run_returns_text_tokens_and_cost(llm: ScriptedLLM) -> None:
    llm.queue(
        {
            "content": "4",
            "model": "gpt-4o-mini-2024-07-18",
            "usage": {"prompt_tokens": 2000, "completion_tokens": 100},
        }
    )
    target = ChatTarget(chat_endpoint(llm), system="Be brief.", prices=load_prices())
    try:
        out = await target.run(case("What is 2+2?"))
    finally:
        await target.aclose()
    assert out.text == "4"
    assert out.model == "gpt-4o-mini-2024-07-18"
    assert (out.input_tokens, out.output_tokens) == (2000, 100)
    assert out.cost == pytest.approx((2000 * 0.15 + 100 * 0.60) / 1e6)
    assert out.latency_ms > 0
    (req,) = llm.requests
    assert req.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+2?"},
    ]


async def test_chat_run_records_a_span_with_the_case_id(llm: ScriptedLLM) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    target = ChatTarget(chat_endpoint(llm))
    target.use_tracer_provider(provider)
    try:
        out = await target.run(case(id="case-42"))
    finally:
        await target.aclose()
        provider.shutdown()
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["assay.eval.case_id"] == "case-42"
    assert out.trace_id == format(span.context.trace_id, "032x")


async def test_chat_describe_and_requests_never_leak_the_key(llm: ScriptedLLM) -> None:
    env = {"OPENAI_API_KEY": "sk-very-secret", "OPENAI_BASE_URL": llm.base_url + "/v1"}
    target = build_target(
        "openai:gpt-4o-mini",
        {"system": "S", "params": {"temperature": 0}, "headers": {"X-Org": "${ORG}"}},
        env={**env, "ORG": "org-secret"},
    )
    try:
        await target.run(case())
    finally:
        await target.aclose()
    desc = target.describe()
    assert "sk-very-secret" not in json.dumps(desc) and "org-secret" not in json.dumps(desc)
    assert desc["kind"] == "chat" and desc["model"] == "gpt-4o-mini"
    assert desc["api_key_env"] == "OPENAI_API_KEY" and desc["system"] == "S"
    assert desc["params"] == {"temperature": 0}
    (req,) = llm.requests
    assert req.headers["authorization"] == "Bearer sk-very-secret"
    assert req.headers["x-org"] == "org-secret"
    assert req.body["temperature"] == 0


async def test_chat_retries_follow_the_endpoint_options(llm: ScriptedLLM) -> None:
    env = {"OPENAI_BASE_URL": llm.base_url + "/v1"}
    llm.queue({"status": 500}, {"status": 429, "headers": {"Retry-After": "0"}}, "fine")
    target = build_target("openai:m", {"max_retries": 2, "backoff_s": 0.01}, env=env)
    try:
        assert (await target.run(case())).text == "fine"
        llm.queue({"status": 503})
        no_retry = build_target("openai:m", {"max_retries": 0}, env=env)
        with pytest.raises(LLMError) as err:
            await no_retry.run(case())
        await no_retry.aclose()
    finally:
        await target.aclose()
    assert len(llm.requests) == 4
    assert err.value.status == 503 and err.value.attempts == 1


# --------------------------------------------------------------------------- expected answers


async def test_no_target_kind_sees_the_expected_answer(
    llm: ScriptedLLM, api: JsonServer, http_target: Callable[..., HttpTarget]
) -> None:
    chat = ChatTarget(chat_endpoint(llm), system="{{metadata}} {{id}}", template="{{input}}")
    try:
        await chat.run(secret_case())
    finally:
        await chat.aclose()
    http = http_target(body={"m": "{{messages}}", "meta": "{{metadata}}", "id": "{{id}}"})
    await http.run(secret_case())
    seen: dict[str, Any] = {}

    def spy(input: str, messages: Any, case: Case, metadata: dict[str, Any], id: str) -> str:
        seen.update(input=input, messages=messages, case=case, metadata=metadata, id=id)
        return "ok"

    fn = CallableTarget(spy)
    await fn.run(secret_case())
    await fn.aclose()
    sent = json.dumps([r.body for r in llm.requests] + [r.body for r in api.requests])
    sent += repr(seen)
    assert SECRET not in sent and HINT not in sent
    assert seen["case"].expected is None and seen["case"].options == {}
    assert seen["case"].input == secret_case().input  # everything else is still there


# --------------------------------------------------------------------------- Python callables


async def test_callable_single_positional_gets_the_input_as_is() -> None:
    got: list[Any] = []

    def answer(question: Any) -> str:
        got.append(question)
        return f"echo {question}" if isinstance(question, str) else "chat"

    target = CallableTarget(answer)
    try:
        out = await target.run(case("hello"))
        await target.run(case(CHAT))
    finally:
        await target.aclose()
    assert out == Output(text="echo hello", latency_ms=out.latency_ms)
    assert out.latency_ms > 0
    assert got == ["hello", CHAT]
    assert target.describe() == {"kind": "python", "callable": f"{__name__}:{answer.__qualname__}"}


async def test_callable_async_function() -> None:
    async def answer(input: str) -> str:
        await asyncio.sleep(0)
        return input.upper()

    target = CallableTarget(answer)
    assert (await target.run(case("abc"))).text == "ABC"
    await target.aclose()


async def test_callable_named_parameters_receive_case_fields() -> None:
    got: dict[str, Any] = {}

    def answer(messages: Any, *, id: str, metadata: dict[str, Any], input: str) -> str:
        got.update(messages=messages, id=id, metadata=metadata, input=input)
        return "ok"

    target = CallableTarget(answer)
    await target.run(case(CHAT, id="c9", metadata={"k": 1}))
    await target.aclose()
    # ``input`` is the last user message of a conversation; ``messages`` the input itself.
    assert got == {
        "messages": CHAT,
        "id": "c9",
        "metadata": {"k": 1},
        "input": "Capital of France?",
    }


async def test_callable_other_parameters_may_have_defaults() -> None:
    def answer(input: str, style: str = "plain", *rest: Any, **extra: Any) -> str:
        return f"{style}:{input}"

    target = CallableTarget(answer)
    assert (await target.run(case("x"))).text == "plain:x"
    await target.aclose()


@pytest.mark.parametrize(
    ("fn", "missing"),
    [
        (lambda: "x", "too many positional"),
        (lambda a, b: "x", "missing a required argument: 'b'"),
        (lambda input, extra: "x", "missing a required argument: 'extra'"),
        (lambda **kw: "x", "too many positional"),
    ],
)
def test_callable_bad_signature_is_refused_when_built(fn: Any, missing: str) -> None:
    with pytest.raises(TargetConfigError, match=missing) as err:
        CallableTarget(fn, ref="app:fn")
    assert "input, messages, case, metadata, id" in str(err.value)


@pytest.mark.parametrize(
    ("value", "text", "data"),
    [
        ("plain", "plain", None),
        (None, "", None),
        ({"answer": "Paris", "n": 1}, '{"answer": "Paris", "n": 1}', {"answer": "Paris", "n": 1}),
        ([1, "é"], '[1, "é"]', [1, "é"]),
        (42, "42", 42),
    ],
)
async def test_callable_return_values_become_outputs(value: Any, text: str, data: Any) -> None:
    target = CallableTarget(lambda input: value)
    out = await target.run(case())
    await target.aclose()
    assert (out.text, out.data) == (text, data)


async def test_callable_output_is_kept_and_gets_a_latency_when_it_has_none() -> None:
    given = Output(text="t", data={"x": 1}, model="m", input_tokens=3, cost=0.5)
    timed = Output(text="t", latency_ms=123.0)
    target = CallableTarget(lambda input: given if input == "a" else timed)
    first, second = await target.run(case("a")), await target.run(case("b"))
    await target.aclose()
    assert first.text == "t" and first.data == {"x": 1} and first.cost == 0.5
    assert first.input_tokens == 3 and first.latency_ms > 0
    assert second.latency_ms == 123.0


async def test_callable_exceptions_propagate() -> None:
    def broken(input: str) -> str:
        raise ValueError("database is down")

    async def broken_async(input: str) -> str:
        raise KeyError("missing")

    for fn, exc in ((broken, ValueError), (broken_async, KeyError)):
        target = CallableTarget(fn)
        with pytest.raises(exc):
            await target.run(case())
        await target.aclose()


async def test_callable_object_with_async_call_is_awaited() -> None:
    class Bot:
        async def __call__(self, input: str) -> str:
            return "async " + input

    target = CallableTarget(Bot())
    assert (await target.run(case("x"))).text == "async x"
    await target.aclose()


async def test_sync_wrapper_returning_a_coroutine_is_awaited() -> None:
    async def inner(text: str) -> dict[str, str]:
        return {"a": text}

    def wrapper(input: str) -> Any:  # what some decorators do to an async function
        return inner(input)

    target = CallableTarget(wrapper)
    assert (await target.run(case("x"))).data == {"a": "x"}
    await target.aclose()


async def test_sync_callables_run_in_threads_without_blocking_the_loop() -> None:
    def slow(input: str) -> str:
        time.sleep(0.2)
        return input

    target = CallableTarget(slow, threads=4)
    t0 = time.perf_counter()
    outs = await asyncio.gather(*(target.run(case(str(i))) for i in range(4)))
    elapsed = time.perf_counter() - t0
    await target.aclose()
    assert [o.text for o in outs] == ["0", "1", "2", "3"]
    assert elapsed < 0.6  # one after another would take 0.8 s


# --------------------------------------------------------------------------- importing


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory with modules in it, importable the way a user runs assay."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def write(root: Path, relpath: str, code: str) -> None:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(code))


async def test_module_function_is_imported_from_the_working_directory(app_dir: Path) -> None:
    write(
        app_dir,
        "botpkg_t1/chat.py",
        """
        COUNT = 3
        def answer(input):
            return "bot:" + input
        class Bot:
            @staticmethod
            def reply(input):
                return "static:" + input
        """,
    )
    write(app_dir, "botpkg_t1/__init__.py", "")
    target = build_target("botpkg_t1.chat:answer")
    nested = build_target("python:botpkg_t1.chat:Bot.reply")
    try:
        assert (await target.run(case("hi"))).text == "bot:hi"
        assert (await nested.run(case("hi"))).text == "static:hi"
    finally:
        await target.aclose()
        await nested.aclose()
    assert target.describe() == {"kind": "python", "callable": "botpkg_t1.chat:answer"}
    assert nested.describe() == {"kind": "python", "callable": "botpkg_t1.chat:Bot.reply"}


async def test_python_prefix_reaches_a_module_named_like_a_provider(app_dir: Path) -> None:
    write(app_dir, "ollama.py", "def answer(input):\n    return 'local module'\n")
    assert isinstance(build_target("ollama:llama3", env={}), ChatTarget)
    target = build_target("python:ollama:answer")
    assert isinstance(target, CallableTarget)
    assert (await target.run(case())).text == "local module"
    await target.aclose()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nosuchmod_t2:answer", r"no module 'nosuchmod_t2'.*run from the directory"),
        ("needsdep_t2:answer", r"importing module 'needsdep_t2' failed.*not_installed_dep_t2"),
        ("good_t2:nope", r"good_t2 has no attribute 'nope'"),
        ("good_t2:Bot.nope", r"good_t2:Bot has no attribute 'nope'"),
        ("good_t2:VALUE", r"'good_t2:VALUE' is int, not a function"),
        ("good_t2:", r"must be 'module:function'"),
        ("python:good_t2", r"must be 'module:function'"),
    ],
)
def test_import_errors_say_what_to_fix(app_dir: Path, spec: str, message: str) -> None:
    write(app_dir, "good_t2.py", "VALUE = 3\nclass Bot:\n    pass\n")
    write(app_dir, "needsdep_t2.py", "import not_installed_dep_t2\n")
    with pytest.raises(TargetConfigError, match=message):
        build_target(spec)


def test_unknown_provider_hint_names_the_chat_providers(app_dir: Path) -> None:
    with pytest.raises(TargetConfigError, match="openai:MODEL, vllm:MODEL"):
        build_target("nosuchprovider_t3:some-model")


# --------------------------------------------------------------------------- HTTP


async def test_http_default_body_and_whole_json_reply(
    api: JsonServer, http_target: Callable[..., HttpTarget]
) -> None:
    api.queue({"json": {"answer": "Paris", "sources": [1, 2]}})
    out = await http_target().run(case("Capital?"))
    (req,) = api.requests
    assert (req.method, req.path, req.body) == ("POST", "/answer", {"input": "Capital?"})
    assert req.headers["content-type"] == "application/json"
    assert out.data == {"answer": "Paris", "sources": [1, 2]}
    assert json.loads(out.text) == out.data
    assert out.latency_ms > 0


async def test_http_body_template_places_whole_values(
    api: JsonServer, http_target: Callable[..., HttpTarget]
) -> None:
    body = {
        "messages": "{{messages}}",
        "meta": "{{metadata}}",
        "lang": "{{metadata.lang}}",
        "prompt": "Q({{id}}): {{input}}",
        "fixed": [1, True, None],
    }
    target = http_target(body=body, method="put")
    await target.run(case(CHAT, id="c3", metadata={"lang": "fr", "n": 2}))
    (req,) = api.requests
    assert req.method == "PUT"
    assert req.body == {
        "messages": CHAT,
        "meta": {"lang": "fr", "n": 2},
        "lang": "fr",
        "prompt": "Q(c3): Capital of France?",
        "fixed": [1, True, None],
    }


@pytest.mark.parametrize(
    ("path", "text", "data"),
    [
        ("choices[0].message.content", "Paris", None),
        ("choices[-1].message.content", "Lyon", None),
        ("meta", '{"n": 2}', {"n": 2}),
        ("meta.n", "2", 2),
    ],
)
async def test_http_response_path_picks_the_answer(
    api: JsonServer, http_target: Callable[..., HttpTarget], path: str, text: str, data: Any
) -> None:
    reply = {
        "choices": [{"message": {"content": "Paris"}}, {"message": {"content": "Lyon"}}],
        "meta": {"n": 2},
    }
    api.queue({"json": reply})
    out = await http_target(response_path=path).run(case())
    assert (out.text, out.data) == (text, data)


async def test_http_missing_response_path_is_a_target_error(
    api: JsonServer, http_target: Callable[..., HttpTarget]
) -> None:
    api.queue({"json": {"result": {"text": "x"}}})
    with pytest.raises(TargetError, match=r"result has no field 'answer' \(fields: text\)"):
        await http_target(response_path="result.answer").run(case())
    assert len(api.requests) == 1  # a wrong shape is not retried


async def test_http_non_json_reply(api: JsonServer, http_target: Callable[..., HttpTarget]) -> None:
    api.queue({"raw": b"plain text answer"}, {"raw": b"<html>oops</html>"}, {"raw": b"\xff\xfe"})
    out = await http_target().run(case())
    assert (out.text, out.data) == ("plain text answer", None)
    with pytest.raises(TargetError, match=r"non-JSON.*response_path='answer' expects JSON"):
        await http_target(response_path="answer").run(case())
    assert (await http_target().run(case())).text == "\ufffd\ufffd"


async def test_http_retries_429_honouring_retry_after(
    api: JsonServer, http_target: Callable[..., HttpTarget]
) -> None:
    api.queue(
        {"status": 429, "json": {"error": "slow down"}, "headers": {"Retry-After": "0.3"}},
        {"status": 429, "headers": {"retry-after-ms": "100"}},
        {"json": {"answer": "ok"}},
    )
    t0 = time.perf_counter()
    out = await http_target(response_path="answer").run(case())
    elapsed = time.perf_counter() - t0
    assert out.text == "ok"
    assert len(api.requests) == 3
    assert elapsed >= 0.4  # backoff_s=0 would retry at once


async def test_http_retries_server_errors_then_gives_up_with_the_status(
    api: JsonServer, http_target: Callable[..., HttpTarget]
) -> None:
    api.queue({"status": 500}, {"status": 503}, {"json": "recovered"})
    assert (await http_target().run(case())).text == "recovered"
    assert len(api.requests) == 3
    api.requests.clear()
    api.default = {"status": 502, "json": {"error": "bad gateway"}}
    with pytest.raises(TargetError, match=r"HTTP 502 after 3 attempt\(s\).*bad gateway") as err:
        await http_target(max_retries=2).run(case())
    assert (err.value.status, err.value.attempts) == (502, 3)
    assert len(api.requests) == 3


@pytest.mark.parametrize(
    ("status", "advice"),
    [(400, "check the body template"), (401, "credentials"), (404, "URL and method")],
)
async def test_http_client_errors_are_not_retried(
    api: JsonServer, http_target: Callable[..., HttpTarget], status: int, advice: str
) -> None:
    api.queue({"status": status, "json": {"error": "field 'q' is required"}})
    with pytest.raises(TargetError, match=f"HTTP {status} after 1 attempt") as err:
        await http_target().run(case())
    assert (err.value.status, err.value.attempts) == (status, 1)
    assert "field 'q' is required" in str(err.value) and advice in str(err.value)
    assert len(api.requests) == 1


async def test_http_timeout_is_retried(
    api: JsonServer, http_target: Callable[..., HttpTarget]
) -> None:
    api.queue({"delay": 0.5, "json": "late"}, {"json": "quick"})
    assert (await http_target(timeout_s=0.15).run(case())).text == "quick"
    assert len(api.requests) == 2
    api.queue({"delay": 0.4, "json": "late"})
    with pytest.raises(TargetError, match=r"no answer within timeout_s=0.1 s after 1 attempt") as e:
        await http_target(timeout_s=0.1, max_retries=0).run(case())
    assert e.value.status is None


async def test_http_unreachable_server_is_retried_then_reported(
    http_target: Callable[..., HttpTarget],
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = http_target(url=f"http://127.0.0.1:{port}/x", max_retries=1)
    with pytest.raises(TargetError, match=r"cannot connect.*after 2 attempt\(s\)") as err:
        await target.run(case())
    assert err.value.attempts == 2


async def test_http_headers_expand_environment_variables(
    api: JsonServer, http_target: Callable[..., HttpTarget]
) -> None:
    headers = {"Authorization": "Bearer ${BOT_TOKEN}", "X-Team": "qa-${TEAM}", "X-N": 3}
    target = http_target(headers=headers, env={"BOT_TOKEN": "tok-123", "TEAM": "red"})
    await target.run(case())
    (req,) = api.requests
    assert req.headers["authorization"] == "Bearer tok-123"
    assert (req.headers["x-team"], req.headers["x-n"]) == ("qa-red", "3")
    desc = target.describe()
    assert desc["headers"]["Authorization"] == "Bearer ${BOT_TOKEN}"
    assert "tok-123" not in json.dumps(desc)


def test_http_header_with_unset_variable_is_refused(api: JsonServer) -> None:
    with pytest.raises(TargetConfigError, match=r"\$\{BOT_TOKEN\}, which is not set.*export"):
        HttpTarget(api.url, headers={"Authorization": "Bearer ${BOT_TOKEN}"}, env={})


async def test_http_content_type_header_can_be_replaced(
    api: JsonServer, http_target: Callable[..., HttpTarget]
) -> None:
    await http_target(headers={"content-type": "application/vnd.bot+json"}).run(case())
    assert api.requests[0].headers["content-type"] == "application/vnd.bot+json"


def test_http_describe_records_how_to_rebuild_it(api: JsonServer) -> None:
    target = HttpTarget(api.url, method="post", response_path="a", timeout_s=5, env={})
    assert target.describe() == {
        "kind": "http",
        "url": api.url,
        "method": "POST",
        "body": {"input": "{{input}}"},
        "response_path": "a",
        "timeout_s": 5,
    }


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"url": "ftp://x"}, "must start with http"),
        ({"method": "FETCH"}, "method='FETCH' must be one of"),
        ({"timeout_s": "30"}, "timeout_s='30' must be a number"),
        ({"timeout_s": 0}, "timeout_s=0 must be a number >= 0.001"),
        ({"max_retries": -1}, "max_retries=-1 must be an integer >= 0"),
        ({"max_retries": 1.5}, "must be an integer"),
        ({"response_path": "a..b"}, "is not a path"),
        ({"body": {"q": {1, 2}}}, "must be JSON"),
        ({"body": {"q": "{{question}}"}}, r"body: placeholder \{\{question\}\} is unknown"),
        ({"headers": {"X": ["a"]}}, "header 'X'.* must be a string"),
        ({"headers": "Authorization: x"}, "headers=.* must be a mapping"),
    ],
)
def test_http_bad_options_are_refused(kw: dict[str, Any], message: str) -> None:
    url = kw.pop("url", "http://127.0.0.1:9/x")
    with pytest.raises(TargetConfigError, match=message):
        HttpTarget(url, env={}, **kw)


# --------------------------------------------------------------------------- build_target


@pytest.mark.parametrize(
    ("spec", "base_url", "model", "provider"),
    [
        ("openai:gpt-4o-mini", "http://openai.local/v1", "gpt-4o-mini", "openai"),
        ("OpenAI:gpt-4o", "http://openai.local/v1", "gpt-4o", "openai"),
        ("vllm:Qwen/Qwen2.5-7B", "http://127.0.0.1:8000/v1", "Qwen/Qwen2.5-7B", "vllm"),
        ("ollama:llama3.1:8b", "http://127.0.0.1:11434/v1", "llama3.1:8b", "ollama"),
        ("litellm:claude", "http://127.0.0.1:4000/v1", "claude", "litellm"),
    ],
)
def test_build_chat_targets_from_provider_strings(
    spec: str, base_url: str, model: str, provider: str
) -> None:
    target = build_target(spec, env={"OPENAI_BASE_URL": "http://openai.local/v1"})
    assert isinstance(target, ChatTarget)
    assert isinstance(target, Target)
    ep = target.endpoint
    assert (ep.base_url, ep.model, ep.provider) == (base_url, model, provider)


def test_build_chat_target_applies_every_option() -> None:
    options = {
        "system": "Be brief.",
        "template": "Q: {{input}}",
        "base_url": "http://gpu-box:8000/v1",
        "params": {"temperature": 0, "max_tokens": 64},
        "timeout_s": 12,
        "max_retries": 1,
        "rpm": 600,
        "tpm": 100_000,
    }
    target = build_target("vllm:m", options, env={}, concurrency=7)
    assert isinstance(target, ChatTarget)
    ep = target.endpoint
    assert (ep.base_url, dict(ep.params), ep.timeout_s, ep.max_retries) == (
        "http://gpu-box:8000/v1",
        {"temperature": 0, "max_tokens": 64},
        12,
        1,
    )
    assert (ep.rpm, ep.tpm, ep.max_connections) == (600, 100_000, 7)
    assert (target.system, target.template) == ("Be brief.", "Q: {{input}}")
    wider = build_target("vllm:m", {"max_connections": 50}, env={}, concurrency=7)
    assert isinstance(wider, ChatTarget) and wider.endpoint.max_connections == 50


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"temprature": 0}, r"\['temprature'\] do not apply to a chat model.*allowed:.*params"),
        ({"model": "other"}, r"\['model'\] do not apply"),
        ({"api_key": "sk-x"}, "api_key is not allowed.*api_key_env"),
        ({"timeout_s": -1}, "timeout_s=-1 must be a number"),
        ({"template": "{{inptu}}"}, "is unknown"),
        ({"headers": {"A": "${NOPE}"}}, r"\$\{NOPE\}, which is not set"),
    ],
)
def test_build_chat_target_option_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(TargetConfigError, match=message):
        build_target("vllm:m", options, env={})


def test_build_openai_target_needs_a_key_for_the_real_api() -> None:
    with pytest.raises(TargetConfigError, match="OPENAI_API_KEY"):
        build_target("openai:gpt-4o-mini", env={})


def test_build_http_target_with_options() -> None:
    target = build_target(
        "https://bot.internal/answer",
        {
            "method": "PUT",
            "body": {"q": "{{input}}"},
            "response_path": "a",
            "headers": {"Authorization": "Bearer ${T}"},
            "timeout_s": 3,
            "max_retries": 0,
        },
        env={"T": "x"},
        concurrency=5,
    )
    assert isinstance(target, HttpTarget)
    assert (target.method, target.body, target.response_path) == ("PUT", {"q": "{{input}}"}, "a")
    assert (target.timeout_s, target.max_retries, target.max_connections) == (3, 0, 5)
    with pytest.raises(TargetConfigError, match=r"\['system'\] do not apply to an HTTP target"):
        build_target("http://bot/answer", {"system": "x"}, env={})


async def test_build_python_targets_and_their_options() -> None:
    def answer(input: str) -> str:
        return input

    target = build_target(answer, concurrency=0)
    assert isinstance(target, CallableTarget)
    assert (await target.run(case("x"))).text == "x"
    await target.aclose()
    with pytest.raises(TargetConfigError, match=r"\['system'\] do not apply to a Python callable"):
        build_target(answer, {"system": "x"})
    with pytest.raises(TargetConfigError, match="do not apply to a Python callable"):
        build_target("json:dumps", {"template": "x"})


def test_build_returns_a_ready_target_and_refuses_options_for_it() -> None:
    ready = HttpTarget("http://127.0.0.1:9/x", env={})
    assert build_target(ready) is ready
    with pytest.raises(TargetConfigError, match="do not apply to a ready Target"):
        build_target(ready, {"timeout_s": 1})


@pytest.mark.parametrize("spec", ["gpt-4o", "", "ftp://host/x", "   "])
def test_build_unknown_target_string(spec: str) -> None:
    with pytest.raises(TargetConfigError, match=r"is not understood.*openai:MODEL.*http"):
        build_target(spec, env={})


def test_build_refuses_a_non_string_non_callable() -> None:
    with pytest.raises(TargetConfigError, match="must be a string, a Python callable or a Target"):
        build_target(42)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- docs


def test_every_target_option_is_documented() -> None:
    from assay.targets import _CHAT_OPTIONS, _ENDPOINT_OPTIONS, _HTTP_OPTIONS

    text = (Path(__file__).resolve().parents[1] / "docs" / "targets.md").read_text()
    for option in sorted(_CHAT_OPTIONS | _ENDPOINT_OPTIONS | _HTTP_OPTIONS):
        assert f"`{option}`" in text, option
    for name in ("input", "messages", "case", "metadata", "id"):
        assert f"| `{name}` |" in text, name
