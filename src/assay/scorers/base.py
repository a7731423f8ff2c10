"""The Scorer contract, its configuration error, and per-case option handling."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from assay.model import Case, Output, Score, ScorerSpec


class ScorerError(Exception):
    """A scorer is configured wrongly; the message names the scorer, the argument and the fix."""


@runtime_checkable
class Scorer(Protocol):
    """Turns one output of one case into a Score. Built-ins and plugins implement the same."""

    #: Registry name and arguments, so a run can rebuild the scorer and re-run it.
    spec: ScorerSpec

    async def score(self, case: Case, output: Output) -> Score:
        """Score ``output`` as an answer to ``case``."""
        ...


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A " (did you mean 'x'?)" hint for a misspelt name, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def case_options(
    case: Case, spec: ScorerSpec, *, allowed: Iterable[str] | None = None
) -> dict[str, Any]:
    """``spec.args`` overlaid with this case's overrides (``case.options[label or name]``).

    Override names are checked against ``allowed``; by default that is the names in
    ``spec.args`` plus the keyword parameters of the registered factory (no check when the
    factory takes ``**kwargs``). An unknown name raises ScorerError naming case and option.
    """
    override = case.options.get(spec.label) or case.options.get(spec.name)
    merged = dict(spec.args)
    if override is None:
        return merged
    where = spec.label if spec.label in case.options else spec.name
    if not isinstance(override, Mapping):
        raise ScorerError(
            f"case {case.id!r}: options[{where!r}] must be a mapping of option names to "
            f"values, got {type(override).__name__} {override!r}"
        )
    names = set(allowed) if allowed is not None else _known_options(spec)
    for option in override:
        if names is not None and option not in names:
            listed = ", ".join(sorted(names)) or "none"
            raise ScorerError(
                f"case {case.id!r}: scorer {spec.label!r} has no option {option!r}"
                f"{did_you_mean(str(option), names)}; its options are: {listed}. "
                f"Fix options[{where!r}] of this case."
            )
    merged.update(override)
    return merged


def has_override(case: Case, spec: ScorerSpec) -> bool:
    """Whether ``case`` carries options for this scorer (so its arguments must be re-read)."""
    return bool(case.options.get(spec.label) or case.options.get(spec.name))


def _known_options(spec: ScorerSpec) -> set[str] | None:
    # Imported here: the registry imports this module.
    from assay.scorers.registry import available

    names = set(spec.args)
    factory = available().get(spec.name)
    if factory is None:
        return names
    for param in inspect.signature(factory).parameters.values():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if param.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            names.add(param.name)
    return names


# --- Checks for option values, shared by the built-ins -----------------------------------


def _bad(scorer: str, option: str, value: Any, wanted: str) -> ScorerError:
    return ScorerError(
        f"scorer {scorer!r}: option {option!r} must be {wanted}, got {value!r}; "
        f"fix {option!r} in the scorer's arguments or the case's options"
    )


def option_bool(scorer: str, option: str, value: Any) -> bool:
    """``value`` as a bool, or ScorerError (no truthiness guessing: "no" is not False)."""
    if not isinstance(value, bool):
        raise _bad(scorer, option, value, "true or false")
    return value


def option_number(scorer: str, option: str, value: Any, *, minimum: float | None = None) -> float:
    """``value`` as a float (not a bool), at least ``minimum`` when given."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(scorer, option, value, "a number")
    if minimum is not None and value < minimum:
        raise _bad(scorer, option, value, f"a number >= {minimum:g}")
    return float(value)


def option_int(scorer: str, option: str, value: Any, *, minimum: int = 0) -> int:
    """``value`` as an int of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _bad(scorer, option, value, f"a whole number >= {minimum}")
    return value


def option_choice(scorer: str, option: str, value: Any, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise _bad(scorer, option, value, "one of " + ", ".join(repr(c) for c in choices))
    return str(value)


def option_texts(scorer: str, option: str, value: Any) -> list[str]:
    """A string or a list of strings (numbers are taken as their text) as a list of strings."""
    items = value if isinstance(value, list | tuple) else [value]
    out: list[str] = []
    for item in items:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, int | float) and not isinstance(item, bool):
            out.append(str(item))
        else:
            raise _bad(scorer, option, value, "a string or a list of strings")
    if not out:
        raise _bad(scorer, option, value, "a non-empty string or list of strings")
    return out


def expected_texts(case: Case, scorer: str) -> list[str]:
    """The case's expected answer as one or more strings (a list means any of them)."""
    if case.expected is None:
        raise ScorerError(
            f"case {case.id!r} has no expected answer, which scorer {scorer!r} compares "
            f"against; add `expected:` to the case or drop the scorer for it"
        )
    try:
        return option_texts(scorer, "expected", case.expected)
    except ScorerError:
        raise ScorerError(
            f"case {case.id!r}: scorer {scorer!r} needs `expected` to be a string or a list "
            f"of strings, got {type(case.expected).__name__} {case.expected!r}"
        ) from None
