"""App-side tracing: send OpenTelemetry spans to assay, and trace your own steps.

``setup`` configures the OpenTelemetry SDK to export OTLP/HTTP to an assay server;
``trace`` marks a function or a block as an OpenInference span (chain, tool, agent …)
so the steps around LLM calls show up in the same trace. Both are thin layers over the
OpenTelemetry API, so spans from any other instrumentation nest with them.

::

    provider = setup("http://127.0.0.1:7800", service_name="support-bot", release="v3")

    @trace(kind="agent", route="/answer")
    def answer(question: str) -> str:
        with trace("lookup", kind="retriever", input=question) as span:
            docs = search(question)
            set_output(span, docs)
        return llm(question, docs)
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import date, datetime
from types import TracebackType
from typing import Any, Literal, ParamSpec, TypeVar, cast, get_args, overload

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from assay import __version__
from assay.settings import Settings

P = ParamSpec("P")
R = TypeVar("R")

#: OpenInference span kinds; assay stores them lower-case in the ``kind`` column.
Kind = Literal[
    "chain",
    "llm",
    "tool",
    "retriever",
    "embedding",
    "agent",
    "reranker",
    "guardrail",
    "evaluator",
    "prompt",
    "unknown",
]
KINDS: frozenset[str] = frozenset(get_args(Kind))
#: Longest ``input.value`` / ``output.value`` recorded, in characters.
MAX_VALUE_CHARS = 10_000
DEFAULT_ENDPOINT = "http://127.0.0.1:7800"

_SCOPE = "assay.tracing"
_TRACES_PATH = "/v1/traces"


def setup(
    endpoint: str | None = None,
    api_key: str | None = None,
    service_name: str | None = None,
    release: str | None = None,
    *,
    settings: Settings | None = None,
    batch: bool = True,
    set_global: bool = True,
    resource_attributes: Mapping[str, AttributeValue] | None = None,
) -> TracerProvider:
    """Configure an OpenTelemetry TracerProvider that exports to assay over OTLP/HTTP.

    ``endpoint`` is the server's base URL (``/v1/traces`` is appended); it and
    ``api_key`` default to ``settings.url`` / ``settings.api_key``, then to
    ``http://127.0.0.1:7800`` and no key. ``release`` becomes ``service.version``,
    which assay reports as the release. Call ``force_flush()`` or ``shutdown()`` on the
    returned provider before a short-lived process exits.
    """
    base = endpoint or (settings.url if settings is not None else None) or DEFAULT_ENDPOINT
    key = api_key if api_key is not None else (settings.api_key if settings else None)
    url = base.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"endpoint {base!r} must be an http(s) URL such as {DEFAULT_ENDPOINT!r}")
    if not url.endswith(_TRACES_PATH):
        url += _TRACES_PATH
    attrs: dict[str, AttributeValue] = dict(resource_attributes or {})
    if service_name is not None:
        attrs["service.name"] = service_name
    if release is not None:
        attrs["service.version"] = release
    exporter = OTLPSpanExporter(
        endpoint=url, headers={"Authorization": f"Bearer {key}"} if key else None
    )
    processor: SpanProcessor = (
        BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    )
    provider = TracerProvider(resource=Resource.create(attrs))
    provider.add_span_processor(processor)
    if set_global:
        current = otel_trace.get_tracer_provider()
        if isinstance(current, otel_trace.ProxyTracerProvider):
            otel_trace.set_tracer_provider(provider)
        else:
            # OpenTelemetry keeps the first global provider and only logs; say so loudly,
            # because spans would silently go to the old one.
            warnings.warn(
                "a global OpenTelemetry TracerProvider is already set, so this one was not "
                "made global; call setup(..., set_global=False) and pass the returned "
                "provider explicitly (trace(..., tracer_provider=p), "
                "Instrumentor().instrument(tracer_provider=p))",
                RuntimeWarning,
                stacklevel=2,
            )
    return provider


class _Missing:
    pass


_MISSING = _Missing()


def _jsonable(value: Any) -> Any:
    # json.dumps calls this for anything it cannot encode itself.
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    dump = getattr(value, "model_dump", None)  # pydantic v2 models
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return repr(value)


def encode_value(value: Any, max_chars: int = MAX_VALUE_CHARS) -> tuple[str, str]:
    """``value`` as span text and its mime type: strings as-is, anything else as JSON.

    Never raises: what JSON cannot hold falls back to ``repr``. Text longer than
    ``max_chars`` is cut and ends with ``…`` (and is then plain text, no longer JSON).
    """
    if isinstance(value, str):
        text, mime = value, "text/plain"
    else:
        try:
            text = json.dumps(value, default=_jsonable, ensure_ascii=False)
            mime = "application/json"
        except Exception:  # circular references, a failing repr/model_dump …
            try:
                text = repr(value)
            except Exception:
                text = f"<unencodable {type(value).__name__}>"
            mime = "text/plain"
    if len(text) > max_chars:
        text, mime = text[: max(max_chars - 1, 0)] + "…", "text/plain"
    return text, mime


def set_input(span: Span, value: Any, max_chars: int = MAX_VALUE_CHARS) -> None:
    """Record ``value`` as the span's ``input.value`` (what assay shows as input text)."""
    text, mime = encode_value(value, max_chars)
    span.set_attributes({"input.value": text, "input.mime_type": mime})


def set_output(span: Span, value: Any, max_chars: int = MAX_VALUE_CHARS) -> None:
    """Record ``value`` as the span's ``output.value`` (what assay shows as output text)."""
    text, mime = encode_value(value, max_chars)
    span.set_attributes({"output.value": text, "output.mime_type": mime})


_SKIPPED = ("self", "cls")
_PROPAGATED = ("session.id", "user.id")


def _single_parameter(sig: inspect.Signature | None) -> bool:
    """Whether a function takes exactly one argument (besides self/cls): that argument
    is then recorded as itself, not as ``{"name": value}``."""
    if sig is None:
        return False
    params = [p for p in sig.parameters.values() if p.name not in _SKIPPED]
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return len(params) == 1 and params[0].kind not in variadic


def _arguments(sig: inspect.Signature | None, single: bool, args: Any, kwargs: Any) -> Any:
    """The call's arguments by name, as passed (defaults left out)."""
    if sig is None:
        return {"args": list(args), "kwargs": kwargs}
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError:  # the call itself will fail; still record what was passed
        return {"args": list(args), "kwargs": kwargs}
    named = {k: v for k, v in bound.arguments.items() if k not in _SKIPPED}
    if not named:
        return _MISSING
    if single and len(named) == 1:
        return next(iter(named.values()))
    return named


class Traced:
    """What ``trace(...)`` returns: a decorator and, given a name, a context manager."""

    def __init__(
        self,
        name: str | None,
        kind: Kind,
        attributes: dict[str, AttributeValue],
        input: Any,
        capture_input: bool,
        capture_output: bool,
        max_chars: int,
        tracer_provider: otel_trace.TracerProvider | None,
    ) -> None:
        self.name = name
        self.kind = kind
        self.attributes = attributes
        self.input = input
        self.capture_input = capture_input
        self.capture_output = capture_output
        self.max_chars = max_chars
        self.tracer_provider = tracer_provider
        self._active: AbstractContextManager[Span] | None = None

    @contextmanager
    def _span(self, name: str, input: Any) -> Iterator[Span]:
        # Resolved per call, so functions decorated at import time use the provider
        # that is global when they run.
        tracer = otel_trace.get_tracer(_SCOPE, __version__, tracer_provider=self.tracer_provider)
        attrs = dict(self.attributes)
        if input is not _MISSING:
            attrs["input.value"], attrs["input.mime_type"] = encode_value(input, self.max_chars)
        # session.id / user.id travel in the OpenTelemetry context under the keys
        # OpenInference uses, so every span below (our own and the instrumented LLM
        # calls) carries them, and values set with openinference's using_session() reach us.
        ctx = otel_context.get_current()
        for key in _PROPAGATED:
            if key in attrs:
                ctx = otel_context.set_value(key, attrs[key], ctx)
            elif isinstance(inherited := otel_context.get_value(key, ctx), str):
                attrs[key] = inherited
        token = otel_context.attach(ctx)
        try:
            with tracer.start_as_current_span(
                name, attributes=attrs, record_exception=False, set_status_on_exception=False
            ) as span:
                try:
                    yield span
                except BaseException as exc:
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
                    raise
        finally:
            otel_context.detach(token)

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Trace every call of ``func`` (sync or async), with its arguments and result."""
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            raise TypeError(
                f"@trace cannot follow the iteration of generator {func.__qualname__}; "
                "use `with trace(...)` inside it instead"
            )
        name = self.name or func.__qualname__
        try:
            sig: inspect.Signature | None = inspect.signature(func)
        except (TypeError, ValueError):  # some builtins have no signature
            sig = None
        single = _single_parameter(sig)

        def call_input(args: Any, kwargs: Any) -> Any:
            if self.input is not _MISSING:
                return self.input
            return _arguments(sig, single, args, kwargs) if self.capture_input else _MISSING

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                with self._span(name, call_input(args, kwargs)) as span:
                    result = await func(*args, **kwargs)
                    if self.capture_output and result is not None:
                        set_output(span, result, self.max_chars)
                    return result

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with self._span(name, call_input(args, kwargs)) as span:
                result = func(*args, **kwargs)
                if self.capture_output and result is not None:
                    set_output(span, result, self.max_chars)
                return result

        return wrapper

    def __enter__(self) -> Span:
        if self.name is None:
            raise TypeError('a traced block needs a name: `with trace("step") as span:`')
        if self._active is not None:
            raise RuntimeError(
                f"trace({self.name!r}) is already open; create one trace(...) per with-block"
            )
        self._active = self._span(self.name, self.input)
        return self._active.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        active, self._active = self._active, None
        assert active is not None, "__exit__ without __enter__"
        return active.__exit__(exc_type, exc, tb)


@overload
def trace(func: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def trace(
    span_name: str | None = None,
    /,
    *,
    name: str | None = None,
    kind: Kind = "chain",
    input: Any = ...,
    route: str | None = None,
    release: str | None = None,
    session_id: str | None = None,
    user_id: str | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
    capture_input: bool = True,
    capture_output: bool = True,
    max_chars: int = MAX_VALUE_CHARS,
    tracer_provider: otel_trace.TracerProvider | None = None,
) -> Traced: ...


def trace(
    name_or_func: str | Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    kind: Kind = "chain",
    input: Any = _MISSING,
    route: str | None = None,
    release: str | None = None,
    session_id: str | None = None,
    user_id: str | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
    capture_input: bool = True,
    capture_output: bool = True,
    max_chars: int = MAX_VALUE_CHARS,
    tracer_provider: otel_trace.TracerProvider | None = None,
) -> Traced | Callable[..., Any]:
    """Trace a function (``@trace``, ``@trace(name="fetch", kind="tool")``) or a block
    (``with trace("step", kind="tool") as span:``) as an OpenInference span.

    A decorated function records its arguments as ``input.value`` and its return value
    as ``output.value``; a block records ``input=`` if given, and its output through
    :func:`set_output`. An exception is recorded and sets the span's status to ERROR.
    ``route``, ``release``, ``session_id`` and ``user_id`` fill the assay columns of the
    same name; ``session_id`` and ``user_id`` also apply to every span started inside,
    including instrumented LLM calls. Spans go to ``tracer_provider``, or to the global
    one when not given.
    """
    if kind.lower() not in KINDS:
        raise ValueError(f"kind={kind!r} is not a span kind; use one of {sorted(KINDS)}")
    if max_chars < 1:
        raise ValueError(f"max_chars={max_chars} must be at least 1")
    attrs: dict[str, AttributeValue] = {"openinference.span.kind": kind.upper()}
    for key, value in (
        ("assay.route", route),
        ("assay.release", release),
        ("session.id", session_id),
        ("user.id", user_id),
    ):
        if value is not None:
            attrs[key] = value
    attrs.update(attributes or {})
    if isinstance(name_or_func, str):
        if name is not None:
            raise TypeError(f"trace() got two names, {name_or_func!r} and name={name!r}; give one")
        name = name_or_func
    traced = Traced(
        name, kind, attrs, input, capture_input, capture_output, max_chars, tracer_provider
    )
    if callable(name_or_func):
        return traced(name_or_func)
    return traced


__all__ = [
    "DEFAULT_ENDPOINT",
    "KINDS",
    "MAX_VALUE_CHARS",
    "Kind",
    "Traced",
    "encode_value",
    "set_input",
    "set_output",
    "setup",
    "trace",
]
