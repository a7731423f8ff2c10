"""What an evaluation runs: an OpenAI-compatible chat model, a Python callable, or an
HTTP endpoint. Each turns a :class:`~assay.model.Case` into an :class:`~assay.model.Output`.

A target string names one::

    openai:gpt-4o-mini            chat model (also vllm:, ollama:, litellm:)
    myapp.bot:answer              a Python function (sync or async), module:function
    https://bot.internal/answer   an HTTP endpoint taking and returning JSON

Options (prompt template, parameters, request body, response path …) come from a
mapping, on the command line as ``--target-option key=value`` or in a YAML file.
A target never sees a case's ``expected`` answer nor its per-scorer options.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import math
import os
import random
import re
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields, replace
from typing import Any, Protocol, runtime_checkable

import aiohttp
from opentelemetry.trace import TracerProvider

from assay.llm import (
    PROVIDERS,
    RETRYABLE_STATUSES,
    ChatClient,
    Endpoint,
    EndpointError,
    ResponseCache,
    endpoint_from_target,
    retry_after_s,
)
from assay.model import Case, Output
from assay.pricing import PriceTable


class TargetError(Exception):
    """The target failed on a case (after any retries); the trial records the message.

    ``status`` is the HTTP status when a server refused (None otherwise), ``attempts``
    how many requests were made.
    """

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts


class TargetConfigError(ValueError):
    """A target cannot be built from what was given; the message says how to fix it."""


@runtime_checkable
class Target(Protocol):
    """Anything that answers a case."""

    def describe(self) -> dict[str, Any]:
        """What to persist with a run so it can be understood and rebuilt (no secrets)."""
        ...

    async def run(self, case: Case) -> Output:
        """Answer one case; raise :class:`TargetError` (or any exception) on failure."""
        ...

    async def aclose(self) -> None:
        """Release connections and threads."""
        ...


# -- templates ----------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")
_VARIABLES = ("input", "messages", "id", "metadata")
_HINT = "use {{input}}, {{messages}}, {{id}} or {{metadata.KEY}}"


def _case_vars(case: Case) -> dict[str, Any]:
    # ``expected`` is deliberately absent: a prompt that sees the answer measures nothing.
    text = case.input if isinstance(case.input, str) else _last_user(case.input)
    return {"input": text, "messages": case.input, "id": case.id, "metadata": case.metadata}


def _last_user(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") != "user":
            continue
        content = m.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):  # multimodal parts: keep the text ones
            texts = [p.get("text") for p in content if isinstance(p, dict)]
            if any(isinstance(t, str) for t in texts):
                return "\n".join(t for t in texts if isinstance(t, str))
    return json.dumps(messages, ensure_ascii=False)


def _lookup(variables: Mapping[str, Any], path: str) -> Any:
    value: Any = variables
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            case_id = variables.get("id")
            where = f" in case {case_id!r}" if case_id is not None else ""
            raise TargetConfigError(
                f"template placeholder {{{{{path}}}}} has no value{where}; {_HINT} "
                "with a key every case has"
            )
    return value


def render(template: Any, variables: Mapping[str, Any]) -> Any:
    """Fill ``{{name}}`` placeholders in a string or JSON template; a string that is just
    one placeholder takes the value itself (so ``"{{messages}}"`` becomes a list)."""
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template.strip())
        if whole:
            return _lookup(variables, whole.group(1))
        return _render_text(template, variables)
    if isinstance(template, Mapping):
        return {k: render(v, variables) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, variables) for v in template]
    return template


def _render_text(template: str, variables: Mapping[str, Any]) -> str:
    # A prompt is always text: non-string values are written as JSON.
    def sub(m: re.Match[str]) -> str:
        value = _lookup(variables, m.group(1))
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    return _PLACEHOLDER.sub(sub, template)


def _check_placeholders(template: Any, option: str) -> None:
    """Refuse a misspelt placeholder when the target is built, not on every case."""
    if isinstance(template, str):
        for m in _PLACEHOLDER.finditer(template):
            root, _, rest = m.group(1).partition(".")
            if root not in _VARIABLES or (rest and root != "metadata"):
                raise TargetConfigError(f"{option}: placeholder {m.group(0)} is unknown; {_HINT}")
    elif isinstance(template, Mapping):
        for v in template.values():
            _check_placeholders(v, option)
    elif isinstance(template, list):
        for v in template:
            _check_placeholders(v, option)


_PATH = re.compile(r"(?:[^.\[\]]+|\[-?\d+\])(?:\.[^.\[\]]+|\[-?\d+\])*")
_PATH_PART = re.compile(r"[^.\[\]]+|\[-?\d+\]")


def _path_parts(path: str) -> list[str]:
    if not isinstance(path, str) or not _PATH.fullmatch(path):
        raise TargetConfigError(
            f"response_path={path!r} is not a path; join fields with dots and put list "
            "indexes in brackets, e.g. 'choices[0].message.content' or 'items[-1]'"
        )
    return _PATH_PART.findall(path)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool | int | float):
        return "a number" if not isinstance(value, bool) else "a boolean"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, Mapping) else type(value).__name__


def extract(data: Any, path: str) -> Any:
    """The value at a dotted path with ``[i]`` indexes (``choices[0].message.content``;
    ``[-1]`` is the last item). Raises :class:`TargetError` when the data has no such value."""
    value = data
    seen = "the response"
    for part in _path_parts(path):
        if part.startswith("["):
            index = int(part[1:-1])
            if not isinstance(value, list):
                raise TargetError(
                    f"response_path={path!r}: {seen} is {_kind(value)}, not a list, "
                    f"so it has no {part}"
                )
            if not -len(value) <= index < len(value):
                raise TargetError(
                    f"response_path={path!r}: {seen} has {len(value)} item(s), no {part}"
                )
            value = value[index]
        else:
            if not isinstance(value, Mapping):
                raise TargetError(
                    f"response_path={path!r}: {seen} is {_kind(value)}, not an object, "
                    f"so it has no field {part!r}"
                )
            if part not in value:
                keys = ", ".join(sorted(str(k) for k in value)[:20]) or "none"
                raise TargetError(
                    f"response_path={path!r}: {seen} has no field {part!r} (fields: {keys})"
                )
            value = value[part]
        seen = part if seen == "the response" else seen + (part if part[0] == "[" else f".{part}")
    return value


def _as_output(value: Any, latency_ms: float) -> Output:
    if isinstance(value, Output):
        return value if value.latency_ms else replace(value, latency_ms=latency_ms)
    if isinstance(value, str):
        return Output(text=value, latency_ms=latency_ms)
    if value is None:
        return Output(text="", latency_ms=latency_ms)
    text = json.dumps(value, ensure_ascii=False, default=str)
    return Output(text=text, data=value, latency_ms=latency_ms)


_ENV_REF = re.compile(r"\$\{([A-Za-z_]\w*)\}")


def _expand_headers(headers: Any, env: Mapping[str, str]) -> dict[str, str]:
    """Header values with ``${NAME}`` replaced from ``env``, so secrets stay out of configs."""
    if not isinstance(headers, Mapping):
        raise TargetConfigError(
            f"headers={headers!r} must be a mapping of header name to value, e.g. "
            '{"Authorization": "Bearer ${BOT_TOKEN}"}'
        )
    out: dict[str, str] = {}
    for k, v in headers.items():
        if not isinstance(v, str | int | float) or isinstance(v, bool):
            raise TargetConfigError(f"header {k!r}: value {v!r} must be a string")
        v = str(v)
        missing = [n for n in _ENV_REF.findall(v) if n not in env]
        if missing:
            raise TargetConfigError(
                f"header {k!r} references ${{{missing[0]}}}, which is not set; "
                f"export {missing[0]}=..."
            )
        out[str(k)] = _ENV_REF.sub(lambda m: env[m.group(1)], v)
    return out


# -- chat model -------------------------------------------------------------------------


class ChatTarget:
    """An OpenAI-compatible chat model, with an optional system prompt and user template.

    Text inputs become one user message (``template`` fills ``{{input}}``, default the
    input itself); chat inputs are sent as they are, after the system prompt if any.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        system: str | None = None,
        template: str | None = None,
        cache: ResponseCache | None = None,
        prices: PriceTable | None = None,
    ) -> None:
        for name, value in (("system", system), ("template", template)):
            if value is not None and not isinstance(value, str):
                raise TargetConfigError(f"{name}={value!r} must be a string")
            _check_placeholders(value, name)
        self.endpoint = endpoint
        self.system = system
        self.template = template
        self.client = ChatClient(endpoint, cache=cache, prices=prices)

    def describe(self) -> dict[str, Any]:
        """Endpoint settings (never the key), system prompt and template."""
        out: dict[str, Any] = {"kind": "chat", **self.endpoint.to_config()}
        if self.system is not None:
            out["system"] = self.system
        if self.template is not None:
            out["template"] = self.template
        return out

    def messages(self, case: Case) -> list[dict[str, Any]]:
        """The messages sent for a case."""
        variables = _case_vars(case)
        msgs: list[dict[str, Any]] = []
        if self.system:
            msgs.append({"role": "system", "content": _render_text(self.system, variables)})
        if isinstance(case.input, str):
            content = _render_text(self.template, variables) if self.template else case.input
            msgs.append({"role": "user", "content": content})
        else:
            msgs.extend(dict(m) for m in case.input)
        return msgs

    def use_tracer_provider(self, provider: TracerProvider) -> None:
        """Send the spans of later calls to ``provider`` (the runner's)."""
        self.client.tracer_provider = provider

    async def run(self, case: Case) -> Output:
        """One chat completion."""
        return await self.client.complete(
            self.messages(case), attributes={"assay.eval.case_id": case.id}
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()


# -- Python callable ----------------------------------------------------------------------

_ARG_NAMES = ("input", "messages", "case", "metadata", "id")
_BY_NAME = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _import_callable(ref: str) -> Callable[..., Any]:
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise TargetConfigError(
            f"target {ref!r} must be 'module:function' (e.g. 'myapp.bot:answer')"
        )
    # Like pytest and uvicorn: the working directory is importable without installing.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        missing = getattr(exc, "name", None)
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            chat = ", ".join(f"{p}:MODEL" for p in PROVIDERS)
            raise TargetConfigError(
                f"target {ref!r}: no module {module_name!r} (looked in {os.getcwd()} and the "
                f"installed packages); run from the directory that contains it or install "
                f"your package. A chat model is named {chat}"
            ) from None
        raise TargetConfigError(
            f"target {ref!r}: importing module {module_name!r} failed ({exc}); install "
            "what it needs"
        ) from None
    obj: Any = module
    walked = module_name
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise TargetConfigError(
                f"target {ref!r}: {walked} has no attribute {part!r}; check the name after ':'"
            )
        obj = getattr(obj, part)
        walked += ("." if walked != module_name else ":") + part
    if not callable(obj):
        raise TargetConfigError(
            f"target {ref!r} is {type(obj).__name__}, not a function; name a function "
            "(or other callable) after ':'"
        )
    return obj  # type: ignore[no-any-return]


def _is_async(fn: Callable[..., Any]) -> bool:
    # An object with ``async def __call__`` is async too.
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004
    )


class CallableTarget:
    """A Python function answering a case: ``fn(input)`` by default, or any of the
    parameters ``input``, ``messages``, ``case``, ``metadata``, ``id`` by name. It may
    be async. It returns a string, an :class:`Output`, None, or any JSON value (kept as
    data). Sync functions run in a thread pool as wide as the run's concurrency."""

    def __init__(self, fn: Callable[..., Any], ref: str | None = None, threads: int = 32) -> None:
        if not callable(fn):
            raise TargetConfigError(f"target {fn!r} is not callable")
        self.fn = fn
        self.ref = ref or f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', fn)}"
        self._named: list[str] = []
        try:
            sig: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):  # some builtins have none: call with the input
            sig = None
        if sig is not None:
            self._named = [
                n for n, p in sig.parameters.items() if n in _ARG_NAMES and p.kind in _BY_NAME
            ]
            try:
                if self._named:
                    sig.bind(**dict.fromkeys(self._named))
                else:
                    sig.bind(None)
            except TypeError as exc:
                raise TargetConfigError(
                    f"target {self.ref}: cannot call it with a case ({exc}); the function must "
                    f"take one argument (the input) or parameters named from "
                    f"{', '.join(_ARG_NAMES)}, others having defaults"
                ) from None
        self._async = _is_async(fn)
        self._pool = None if self._async else ThreadPoolExecutor(max(threads, 1), "assay-target")

    def describe(self) -> dict[str, Any]:
        """The function's import path."""
        return {"kind": "python", "callable": self.ref}

    def _call(self, case: Case) -> Any:
        variables = _case_vars(case)
        # The answer and scorer options stay hidden, as from every other target.
        variables["case"] = replace(case, expected=None, options={})
        if self._named:
            return self.fn(**{n: variables[n] for n in self._named})
        return self.fn(case.input)

    async def run(self, case: Case) -> Output:
        """Call the function once."""
        t0 = time.perf_counter()
        if self._async:
            value = await self._call(case)
        else:
            loop = asyncio.get_running_loop()
            value = await loop.run_in_executor(self._pool, self._call, case)
            if inspect.isawaitable(value):  # e.g. a wrapper hiding an async function
                value = await value
        return _as_output(value, (time.perf_counter() - t0) * 1000)

    async def aclose(self) -> None:
        """Stop the thread pool."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


# -- HTTP endpoint --------------------------------------------------------------------------

_METHODS = ("POST", "PUT", "PATCH", "GET", "DELETE")


def _number(name: str, value: Any, *, minimum: float, integer: bool = False) -> None:
    ok = isinstance(value, int if integer else int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < minimum:
        kind = "an integer" if integer else "a number"
        raise TargetConfigError(f"{name}={value!r} must be {kind} >= {minimum:g}")


class HttpTarget:
    """Any HTTP endpoint that takes JSON and answers JSON.

    ``body`` is a JSON template (default ``{"input": "{{input}}"}``); ``response_path``
    picks the answer text out of the reply (default: the whole body). Header values may
    reference environment variables as ``${NAME}``; the reference, not the value, is
    what a run records. 429, 408, 409, 5xx, timeouts and connection errors are retried
    with exponential backoff and full jitter, honouring ``Retry-After``.
    """

    def __init__(
        self,
        url: str,
        *,
        method: str = "POST",
        body: Any = None,
        response_path: str | None = None,
        headers: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        max_connections: int = 128,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise TargetConfigError(f"url={url!r} must start with http:// or https://")
        if not isinstance(method, str) or method.upper() not in _METHODS:
            raise TargetConfigError(f"method={method!r} must be one of {', '.join(_METHODS)}")
        _number("timeout_s", timeout_s, minimum=0.001)
        _number("max_retries", max_retries, minimum=0, integer=True)
        _number("backoff_s", backoff_s, minimum=0)
        _number("max_connections", max_connections, minimum=1, integer=True)
        if response_path is not None:
            _path_parts(response_path)
        self.body = {"input": "{{input}}"} if body is None else body
        try:
            json.dumps(self.body)
        except (TypeError, ValueError):
            raise TargetConfigError(f"body={body!r} must be JSON (objects, lists, text)") from None
        _check_placeholders(self.body, "body")
        self.url = url
        self.method = method.upper()
        self.response_path = response_path
        expanded = _expand_headers(headers or {}, os.environ if env is None else env)
        self.header_templates = dict(headers or {})
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_connections = max_connections
        self._headers = {"Content-Type": "application/json"}
        if any(k.lower() == "content-type" for k in expanded):
            self._headers = {}
        self._headers.update(expanded)
        self._session: aiohttp.ClientSession | None = None
        self._rng = random.Random()

    def describe(self) -> dict[str, Any]:
        """URL, method, body template, response path, header templates, non-default limits."""
        out: dict[str, Any] = {"kind": "http", "url": self.url, "method": self.method}
        out["body"] = self.body
        if self.response_path:
            out["response_path"] = self.response_path
        if self.header_templates:
            out["headers"] = self.header_templates
        if self.timeout_s != 60.0:
            out["timeout_s"] = self.timeout_s
        if self.max_retries != 4:
            out["max_retries"] = self.max_retries
        return out

    async def run(self, case: Case) -> Output:
        """One request, retried on transient failures."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.max_connections)
            self._session = aiohttp.ClientSession(connector=connector, headers=self._headers)
        payload = json.dumps(render(self.body, _case_vars(case)), ensure_ascii=False)
        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            t0 = time.perf_counter()
            try:
                async with (
                    asyncio.timeout(self.timeout_s),
                    self._session.request(self.method, self.url, data=payload) as resp,
                ):
                    raw = await resp.read()
                    status = resp.status
                    wait = retry_after_s(dict(resp.headers))
            except TimeoutError:
                status, raw = 0, f"no answer within timeout_s={self.timeout_s:g} s".encode()
            except aiohttp.ClientError as exc:
                status, raw = 0, f"cannot connect ({type(exc).__name__}: {exc})".encode()
            latency_ms = (time.perf_counter() - t0) * 1000
            if 200 <= status < 300:
                return self._output(raw, latency_ms)
            retryable = status == 0 or status in RETRYABLE_STATUSES or status >= 500
            if not retryable or attempt > self.max_retries:
                raise TargetError(
                    self._failure(status, raw, attempt), status=status or None, attempts=attempt
                )
            delay = (
                wait
                if wait is not None
                else self._rng.uniform(0, min(30.0, self.backoff_s * 2 ** (attempt - 1)))
            )
            await asyncio.sleep(min(delay, 60.0))

    def _failure(self, status: int, raw: bytes, attempts: int) -> str:
        said = raw[:300].decode(errors="replace").strip()
        where = f"{self.method} {self.url}"
        if not status:
            return f"{where}: {said} after {attempts} attempt(s); is the server running?"
        if status in (401, 403):
            fix = "check the credentials in headers"
        elif status in (404, 405):
            fix = "check the URL and method"
        elif status < 500 and status not in RETRYABLE_STATUSES:
            fix = "the server rejected the request; check the body template"
        else:
            fix = "the server kept failing"
        return (
            f"{where}: HTTP {status} after {attempts} attempt(s): {said or '(empty body)'}; {fix}"
        )

    def _output(self, raw: bytes, latency_ms: float) -> Output:
        try:
            data = json.loads(raw) if raw else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            if self.response_path:
                raise TargetError(
                    f"{self.url} answered non-JSON ({raw[:120]!r}) but response_path="
                    f"{self.response_path!r} expects JSON"
                ) from None
            return Output(text=raw.decode(errors="replace"), latency_ms=latency_ms)
        value = extract(data, self.response_path) if self.response_path else data
        return _as_output(value, latency_ms)

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None


# -- building ---------------------------------------------------------------------------------

_CHAT_OPTIONS = {"system", "template"}
# The model comes from the target string; the key only from the environment.
_ENDPOINT_OPTIONS = {f.name for f in fields(Endpoint)} - {"model", "api_key", "provider"}
_HTTP_OPTIONS = {"method", "body", "response_path", "headers", "timeout_s", "max_retries"}


def build_target(
    spec: str | Callable[..., Any] | Target,
    options: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cache: ResponseCache | None = None,
    prices: PriceTable | None = None,
    concurrency: int = 32,
) -> Target:
    """A target from a string (see the module doc), a Python callable, or a ready
    :class:`Target`. ``options`` configure it; unknown options are an error."""
    opts = dict(options or {})
    env = os.environ if env is None else env
    connections = max(concurrency, 1)
    if isinstance(spec, Target) and not callable(spec):
        _no_options(opts, set(), "a ready Target (configure it when you create it)")
        return spec
    if callable(spec) and not isinstance(spec, str):
        _no_options(opts, set(), "a Python callable")
        return CallableTarget(spec, threads=connections)
    if not isinstance(spec, str):
        raise TargetConfigError(
            f"target {spec!r} must be a string, a Python callable or a Target, "
            f"not {type(spec).__name__}"
        )
    spec = spec.strip()
    if spec.startswith(("http://", "https://")):
        _no_options(opts, _HTTP_OPTIONS, "an HTTP target")
        return HttpTarget(spec, env=env, max_connections=connections, **opts)
    prefix = spec.split(":", 1)[0].lower()
    if prefix in PROVIDERS:
        if "api_key" in opts:
            raise TargetConfigError(
                "option api_key is not allowed (options are written to files and shell "
                "history); put the key in an environment variable and give its name as "
                "api_key_env"
            )
        _no_options(opts, _CHAT_OPTIONS | _ENDPOINT_OPTIONS, "a chat model target")
        chat = {k: opts.pop(k) for k in list(opts) if k in _CHAT_OPTIONS}
        opts.setdefault("max_connections", connections)
        if "headers" in opts:
            opts["headers"] = _expand_headers(opts["headers"], env)
        try:
            endpoint = endpoint_from_target(spec, env, **opts)
        except EndpointError as exc:
            raise TargetConfigError(str(exc)) from None
        return ChatTarget(endpoint, cache=cache, prices=prices, **chat)
    if spec.startswith("python:"):
        _no_options(opts, set(), "a Python callable")
        ref = spec.removeprefix("python:")
        return CallableTarget(_import_callable(ref), ref=ref, threads=connections)
    if ":" in spec and "://" not in spec:
        _no_options(opts, set(), "a Python callable")
        return CallableTarget(_import_callable(spec), ref=spec, threads=connections)
    raise TargetConfigError(
        f"target {spec!r} is not understood; use 'openai:MODEL' (or vllm:, ollama:, "
        "litellm:), 'module:function' for Python, or an http(s):// URL"
    )


def _no_options(opts: Mapping[str, Any], allowed: set[str], what: str) -> None:
    unknown = set(opts) - allowed
    if unknown:
        hint = f"; allowed: {', '.join(sorted(allowed))}" if allowed else ""
        raise TargetConfigError(f"option(s) {sorted(unknown)} do not apply to {what}{hint}")


__all__ = [
    "CallableTarget",
    "ChatTarget",
    "HttpTarget",
    "Target",
    "TargetConfigError",
    "TargetError",
    "build_target",
    "extract",
    "render",
]
