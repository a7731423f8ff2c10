"""Scorer registry: built-ins and plugins register factories with the same decorator.

A factory takes keyword arguments and returns a Scorer. ``build`` turns a spec, a bare
name or a config mapping into a Scorer; ``available`` lists every factory, importing the
built-in modules lazily and the ``assay.plugins`` entry points once.
"""

from __future__ import annotations

import importlib
import inspect
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from importlib import metadata
from numbers import Real
from typing import Any, overload

import numpy as np

from assay.model import Case, Output, Score, ScorerSpec
from assay.scorers.base import Scorer, ScorerError, case_options, did_you_mean, has_override

Factory = Callable[..., Scorer]

#: Entry-point group a plugin distribution declares its module (or factory) under.
PLUGIN_GROUP = "assay.plugins"

#: Modules whose import registers the built-in scorers. ``judge`` is optional so that the
#: registry works while that module is absent.
_BUILTIN_MODULES = (
    "assay.scorers.deterministic",
    "assay.scorers.embedding",
    "assay.scorers.judge",
)

_factories: dict[str, Factory] = {}
_descriptions: dict[str, str] = {}
_lock = threading.RLock()
_loaded = False
#: Plugins that failed to load: entry point name -> error text (shown on unknown names).
_plugin_errors: dict[str, str] = {}


def scorer(name: str, *, description: str = "") -> Callable[[Factory], Factory]:
    """Register a factory ``(**args) -> Scorer`` under ``name``; returns it unchanged."""
    if not name or not isinstance(name, str):
        raise ScorerError(f"a scorer name must be a non-empty string, got {name!r}")

    def register(factory: Factory) -> Factory:
        with _lock:
            current = _factories.get(name)
            if current is not None and _origin(current) != _origin(factory):
                raise ScorerError(
                    f"scorer name {name!r} is already registered by {_origin(current)}; "
                    f"register {_origin(factory)} under another name"
                )
            _factories[name] = factory
            _descriptions[name] = description or (inspect.getdoc(factory) or "").split("\n")[0]
        return factory

    return register


def _origin(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def describe(name: str) -> str:
    """The one-line description a scorer was registered with."""
    available()
    return _descriptions.get(name, "")


def available() -> dict[str, Factory]:
    """Every registered factory by name: built-ins, then plugins (entry points loaded once)."""
    global _loaded
    with _lock:
        if not _loaded:
            for module in _BUILTIN_MODULES:
                try:
                    importlib.import_module(module)
                except ModuleNotFoundError as exc:
                    if exc.name != module:
                        raise
            _loaded = True
            _load_plugins()
        return dict(_factories)


def _load_plugins() -> None:
    for ep in metadata.entry_points(group=PLUGIN_GROUP):
        dist = ep.dist.name if ep.dist is not None else "?"
        try:
            obj = ep.load()
        except Exception as exc:  # a broken plugin must not take the built-ins down
            text = f"plugin {ep.name!r} ({ep.value}, from {dist}) failed to load: {exc!r}"
            _plugin_errors[ep.name] = text
            warnings.warn(f"{text}; fix or uninstall {dist}", RuntimeWarning, stacklevel=3)
            continue
        # An entry point naming a module registers by importing it; one naming a plain
        # factory that did not register itself is registered under the entry point name.
        if callable(obj) and not inspect.ismodule(obj) and obj not in _factories.values():
            scorer(ep.name)(obj)


def build(spec: ScorerSpec | str | Mapping[str, Any]) -> Scorer:
    """A Scorer from a ScorerSpec, a bare name, ``{"name": ..., "key": ..., **args}`` or
    ``{"name": {**args}}``. Unknown names and arguments raise ScorerError with the fix."""
    spec = to_spec(spec)
    factories = available()
    factory = factories.get(spec.name)
    if factory is None:
        listed = ", ".join(sorted(factories))
        hint = "".join(f"; {err}" for err in _plugin_errors.values())
        raise ScorerError(
            f"unknown scorer {spec.name!r}{did_you_mean(spec.name, factories)}. "
            f"Available: {listed}{hint}"
        )
    _check_arguments(spec, factory)
    made = factory(**spec.args)
    if not callable(getattr(made, "score", None)) or not inspect.iscoroutinefunction(made.score):
        raise ScorerError(
            f"the factory of scorer {spec.name!r} ({_origin(factory)}) returned "
            f"{type(made).__name__}, which has no `async def score(case, output)`"
        )
    own = getattr(made, "spec", None)
    if not isinstance(own, ScorerSpec):
        own = ScorerSpec(spec.name, dict(spec.args))
    if spec.key is not None:
        own = replace(own, key=spec.key)
    if getattr(made, "spec", None) is not own:
        try:
            made.spec = own
        except AttributeError:  # a frozen plugin scorer: wrap it instead of mutating it
            return _Relabelled(own, made)
    return made


def to_spec(config: ScorerSpec | str | Mapping[str, Any]) -> ScorerSpec:
    """Normalise the accepted config shapes to a ScorerSpec (without building it)."""
    if isinstance(config, ScorerSpec):
        if not isinstance(config.args, Mapping):
            raise ScorerError(f"scorer {config.name!r}: args must be a mapping")
        return config
    if isinstance(config, str):
        return ScorerSpec(config)
    if not isinstance(config, Mapping):
        raise ScorerError(
            f"a scorer is given as a name, a ScorerSpec or a mapping, got "
            f"{type(config).__name__} {config!r}"
        )
    if "name" in config:
        args = {k: v for k, v in config.items() if k not in ("name", "key")}
        return _spec(config["name"], config.get("key"), args)
    if len(config) == 1:
        ((name, body),) = config.items()
        if body is None:
            body = {}
        if not isinstance(body, Mapping):
            raise ScorerError(
                f"scorer {name!r}: its arguments must be a mapping, got "
                f"{type(body).__name__} {body!r}; write `{name}: {{option: value}}`"
            )
        args = {k: v for k, v in body.items() if k != "key"}
        return _spec(name, body.get("key"), args)
    raise ScorerError(
        f"cannot tell the scorer in {dict(config)!r}: write either "
        f"{{name: <scorer>, key: <optional>, <argument>: <value>}} or "
        f"{{<scorer>: {{<argument>: <value>}}}}"
    )


def _spec(name: Any, key: Any, args: dict[str, Any]) -> ScorerSpec:
    if not isinstance(name, str) or not name:
        raise ScorerError(f"a scorer name must be a non-empty string, got {name!r}")
    if key is not None and (not isinstance(key, str) or not key):
        raise ScorerError(f"scorer {name!r}: key must be a non-empty string, got {key!r}")
    return ScorerSpec(name, {str(k): v for k, v in args.items()}, key)


def _check_arguments(spec: ScorerSpec, factory: Factory) -> None:
    params = inspect.signature(factory).parameters
    try:
        inspect.signature(factory).bind(**spec.args)
    except TypeError as exc:
        names = [
            p.name
            for p in params.values()
            if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        ]
        unknown = [a for a in spec.args if a not in names]
        listed = ", ".join(names) or "none"
        if unknown:
            raise ScorerError(
                f"scorer {spec.name!r} has no argument {unknown[0]!r}"
                f"{did_you_mean(unknown[0], names)}; its arguments are: {listed}"
            ) from None
        raise ScorerError(f"scorer {spec.name!r}: {exc}; its arguments are: {listed}") from None


@dataclass
class _Relabelled:
    """A scorer whose ``spec`` cannot be assigned, reported under another key."""

    spec: ScorerSpec
    inner: Scorer

    async def score(self, case: Case, output: Output) -> Score:
        return await self.inner.score(case, output)


# --- custom: plain functions as scorers --------------------------------------------------

#: Parameters a custom scorer function may take, and what each receives.
_INJECTED: dict[str, Callable[[Case, Output], Any]] = {
    "output": lambda case, output: output,
    "text": lambda case, output: output.text,
    "output_text": lambda case, output: output.text,
    "expected": lambda case, output: case.expected,
    "case": lambda case, output: case,
    "input": lambda case, output: case.input,
    "metadata": lambda case, output: case.metadata,
}


@dataclass
class FunctionScorer:
    """A Scorer made by ``custom`` from a plain function; options are its defaulted params."""

    spec: ScorerSpec
    fn: Callable[..., Any]
    injected: tuple[str, ...]
    defaults: dict[str, Any]

    async def score(self, case: Case, output: Output) -> Score:
        options = dict(self.spec.args)
        if has_override(case, self.spec):
            options = case_options(case, self.spec, allowed=self.defaults)
        kwargs = {name: _INJECTED[name](case, output) for name in self.injected}
        result = self.fn(**kwargs, **options)
        if inspect.isawaitable(result):
            result = await result
        return _to_score(self.spec.label, result)


def _to_score(name: str, result: Any) -> Score:
    if isinstance(result, Score):
        return result
    if isinstance(result, bool | np.bool_):
        return Score(value=1.0 if result else 0.0, passed=bool(result))
    if isinstance(result, Real):
        return Score(value=float(result))
    raise ScorerError(
        f"custom scorer {name!r} returned {type(result).__name__} {result!r}; "
        f"return a bool (pass/fail), a number, or an assay Score"
    )


@overload
def custom(fn: Callable[..., Any], *, name: str | None = None) -> FunctionScorer: ...
@overload
def custom(
    fn: None = None, *, name: str | None = None
) -> Callable[[Callable[..., Any]], FunctionScorer]: ...


def custom(
    fn: Callable[..., Any] | None = None, *, name: str | None = None
) -> FunctionScorer | Callable[[Callable[..., Any]], FunctionScorer]:
    """Make a plain (sync or async) function a registered Scorer.

    The function takes any of ``output, text, expected, case, input, metadata`` by name;
    parameters with defaults are options (overridable per case). It returns a bool
    (value 1.0/0.0 and passed), a number (value) or a Score.
    """

    def wrap(func: Callable[..., Any]) -> FunctionScorer:
        label: str = name or getattr(func, "__name__", "") or ""
        injected: list[str] = []
        defaults: dict[str, Any] = {}
        for param in inspect.signature(func).parameters.values():
            if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                raise ScorerError(
                    f"custom scorer {label!r}: *{param.name} is not supported; name the "
                    f"parameters you need ({', '.join(_INJECTED)})"
                )
            if param.kind is inspect.Parameter.POSITIONAL_ONLY:
                raise ScorerError(
                    f"custom scorer {label!r}: parameter {param.name!r} is positional-only; "
                    f"assay passes arguments by name"
                )
            if param.name in _INJECTED:
                injected.append(param.name)
            elif param.default is not inspect.Parameter.empty:
                defaults[param.name] = param.default
            else:
                raise ScorerError(
                    f"custom scorer {label!r}: parameter {param.name!r} is not one assay can "
                    f"pass{did_you_mean(param.name, _INJECTED)}; use "
                    f"{', '.join(_INJECTED)}, or give it a default to make it an option"
                )

        def factory(**args: Any) -> FunctionScorer:
            unknown = [a for a in args if a not in defaults]
            if unknown:
                listed = ", ".join(defaults) or "none"
                raise ScorerError(
                    f"custom scorer {label!r} has no option {unknown[0]!r}"
                    f"{did_you_mean(unknown[0], defaults)}; its options are: {listed}"
                )
            return FunctionScorer(
                ScorerSpec(label, {**defaults, **args}), func, tuple(injected), defaults
            )

        # The factory is keyed to the function so redefining it (a reloaded notebook
        # cell) replaces the old registration instead of clashing with it.
        factory.__module__ = getattr(func, "__module__", "?")
        factory.__qualname__ = getattr(func, "__qualname__", label)
        factory.__doc__ = inspect.getdoc(func)
        factory.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [
                inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v)
                for k, v in defaults.items()
            ]
        )
        scorer(label)(factory)
        return factory()

    if fn is not None:
        return wrap(fn)
    return wrap
