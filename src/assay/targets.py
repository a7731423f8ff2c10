"""What an evaluation runs: an OpenAI-compatible chat model, a Python callable, or an
HTTP endpoint. Each turns a :class:`~assay.model.Case` into an :class:`~assay.model.Output`.

A target string names one::

    openai:gpt-4o-mini            chat model (also vllm:, ollama:, litellm:)
    myapp.bot:answer              a Python function (sync or async), module:function
    https://bot.internal/answer   an HTTP endpoint taking and returning JSON

Options (prompt template, parameters, request body, response path …) come from a
mapping, on the command line as ``--target-option key=value`` or in a YAML file.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
import random
import re
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
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
    """The target failed on a case (after any retries); the trial records the message."""


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


def _case_vars(case: Case) -> dict[str, Any]:
    # ``expected`` is deliberately absent: a prompt that sees the answer measures nothing.
    text = case.input if isinstance(case.input, str) else _last_user(case.input)
    return {"input": text, "messages": case.input, "id": case.id, "metadata": case.metadata}


def _last_user(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user" and isinstance(m.get("content"), str):
            return str(m["content"])
    return json.dumps(messages, ensure_ascii=False)


def _lookup(variables: Mapping[str, Any], path: str) -> Any:
    value: Any = variables
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            raise TargetConfigError(
                f"template placeholder {{{{{path}}}}} is unknown; use {{{{input}}}}, "
                "{{messages}}, {{id}} or {{metadata.KEY}} with a key every case has"
            )
    return value


def render(template: Any, variables: Mapping[str, Any]) -> Any:
    """Fill ``{{name}}`` placeholders in a string or JSON template; a string that is just
    one placeholder takes the value itself (so ``"{{messages}}"`` becomes a list)."""
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template.strip())
        if whole:
            return _lookup(variables, whole.group(1))

        def sub(m: re.Match[str]) -> str:
            value = _lookup(variables, m.group(1))
            return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

        return _PLACEHOLDER.sub(sub, template)
    if isinstance(template, Mapping):
        return {k: render(v, variables) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, variables) for v in template]
    return template


def extract(data: Any, path: str) -> Any:
    """The value at a dotted path with ``[i]`` indexes (``choices[0].message.content``)."""
    value = data
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            index = int(part[1:-1])
            if not isinstance(value, list) or index >= len(value):
                raise TargetError(f"response has no {part} at {path!r}")
            value = value[index]
        elif isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            raise TargetError(f"response has no field {part!r} (response_path={path!r})")
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
        msgs: list[dict[str, Any]] = []
        if self.system:
            msgs.append({"role": "system", "content": render(self.system, _case_vars(case))})
        if isinstance(case.input, str):
            content = render(self.template, _case_vars(case)) if self.template else case.input
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
        raise TargetConfigError(
            f"target {ref!r}: cannot import module {module_name!r} ({exc}); run from the "
            "directory that contains it or install your package"
        ) from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise TargetConfigError(f"target {ref!r}: {module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise TargetConfigError(f"target {ref!r} is not callable")
    return obj  # type: ignore[no-any-return]


class CallableTarget:
    """A Python function answering a case: ``fn(input)`` by default, or any of the
    parameters ``input``, ``messages``, ``case``, ``metadata``, ``id`` by name. It may
    be async. It returns a string, an :class:`Output`, or any JSON value (kept as data).
    Sync functions run in a thread pool as wide as the run's concurrency."""

    def __init__(self, fn: Callable[..., Any], ref: str | None = None, threads: int = 32) -> None:
        self.fn = fn
        self.ref = ref or f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', fn)}"
        params = inspect.signature(fn).parameters
        named = [p for p in params if p in _ARG_NAMES]
        self._named = named
        if not named and len(params) != 1:
            raise TargetConfigError(
                f"target {self.ref}: the function must take one argument (the input) or "
                f"parameters named from {', '.join(_ARG_NAMES)}"
            )
        self._async = inspect.iscoroutinefunction(fn)
        self._pool = None if self._async else ThreadPoolExecutor(threads, "assay-target")

    def describe(self) -> dict[str, Any]:
        """The function's import path."""
        return {"kind": "python", "callable": self.ref}

    def _call(self, case: Case) -> Any:
        variables = _case_vars(case)
        variables["case"] = case
        if self._named:
            return self.fn(**{n: variables[n] for n in self._named})
        return self.fn(variables["input"] if isinstance(case.input, str) else case.input)

    async def run(self, case: Case) -> Output:
        """Call the function once."""
        t0 = time.perf_counter()
        if self._async:
            value = await self._call(case)
        else:
            loop = asyncio.get_running_loop()
            value = await loop.run_in_executor(self._pool, self._call, case)
        return _as_output(value, (time.perf_counter() - t0) * 1000)

    async def aclose(self) -> None:
        """Stop the thread pool."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


# -- HTTP endpoint --------------------------------------------------------------------------

_ENV_REF = re.compile(r"\$\{([A-Za-z_]\w*)\}")


class HttpTarget:
    """Any HTTP endpoint that takes JSON and answers JSON.

    ``body`` is a JSON template (default ``{"input": "{{input}}"}``); ``response_path``
    picks the answer text out of the reply (default: the whole body). Header values may
    reference environment variables as ``${NAME}``; the reference, not the value, is
    what a run records. 429, 5xx, timeouts and connection errors are retried with
    exponential backoff and jitter, honouring ``Retry-After``.
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
        if not url.startswith(("http://", "https://")):
            raise TargetConfigError(f"url={url!r} must start with http:// or https://")
        self.url = url
        self.method = method.upper()
        self.body = {"input": "{{input}}"} if body is None else body
        self.response_path = response_path
        self.header_templates = dict(headers or {})
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_connections = max_connections
        env = os.environ if env is None else env
        self._headers = {"Content-Type": "application/json"}
        for k, v in self.header_templates.items():
            missing = [n for n in _ENV_REF.findall(v) if n not in env]
            if missing:
                raise TargetConfigError(
                    f"header {k!r} references ${{{missing[0]}}}, which is not set; "
                    f"export {missing[0]}=..."
                )
            self._headers[k] = _ENV_REF.sub(lambda m: env[m.group(1)], v)
        self._session: aiohttp.ClientSession | None = None
        self._rng = random.Random()

    def describe(self) -> dict[str, Any]:
        """URL, method, body template, response path, header templates."""
        out: dict[str, Any] = {"kind": "http", "url": self.url, "method": self.method}
        out["body"] = self.body
        if self.response_path:
            out["response_path"] = self.response_path
        if self.header_templates:
            out["headers"] = self.header_templates
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
            except (TimeoutError, aiohttp.ClientError) as exc:
                status, raw = 0, f"{type(exc).__name__}: {exc}".encode()
            latency_ms = (time.perf_counter() - t0) * 1000
            if 200 <= status < 300:
                return self._output(raw, latency_ms)
            retryable = status == 0 or status in RETRYABLE_STATUSES or status >= 500
            if not retryable or attempt > self.max_retries:
                what = f"HTTP {status}" if status else "no answer"
                raise TargetError(
                    f"{self.method} {self.url}: {what} after {attempt} attempt(s): "
                    f"{raw[:300].decode(errors='replace')}"
                )
            delay = (
                wait
                if wait is not None
                else self._rng.uniform(0, min(30.0, self.backoff_s * 2 ** (attempt - 1)))
            )
            await asyncio.sleep(min(delay, 60.0))

    def _output(self, raw: bytes, latency_ms: float) -> Output:
        try:
            data = json.loads(raw) if raw else None
        except json.JSONDecodeError:
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
    if isinstance(spec, Target) and not callable(spec):
        return spec
    if callable(spec) and not isinstance(spec, str):
        _no_options(opts, set(), "a Python callable")
        return CallableTarget(spec, threads=concurrency)
    assert isinstance(spec, str)
    if spec.startswith(("http://", "https://")):
        _no_options(opts, _HTTP_OPTIONS, "an HTTP target")
        return HttpTarget(spec, env=env, max_connections=max(concurrency, 1), **opts)
    prefix = spec.split(":", 1)[0].lower()
    if prefix in PROVIDERS:
        chat = {k: opts.pop(k) for k in list(opts) if k in _CHAT_OPTIONS}
        try:
            endpoint = endpoint_from_target(spec, env, max_connections=max(concurrency, 1), **opts)
        except EndpointError as exc:
            raise TargetConfigError(str(exc)) from None
        return ChatTarget(endpoint, cache=cache, prices=prices, **chat)
    if spec.startswith("python:"):
        spec = spec.removeprefix("python:")
    if ":" in spec:
        _no_options(opts, set(), "a Python callable")
        return CallableTarget(_import_callable(spec), ref=spec, threads=concurrency)
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
