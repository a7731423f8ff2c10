"""Model prices (a shipped data file, overridable) and the cost of one call."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

PRICE_FORMAT_VERSION = 1


class PriceTableError(ValueError):
    """A price file is malformed; the message names the file, model and field."""


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens for one model."""

    input: float
    output: float
    cached_input: float | None = None

    @property
    def cached_rate(self) -> float:
        """The rate for cached input tokens (the input rate when the model has none)."""
        return self.input if self.cached_input is None else self.cached_input


class PriceTable:
    """Looks a model name up by exact match, then by the longest known prefix.

    Prefix matching covers dated snapshots ("gpt-4o-2024-08-06" → "gpt-4o") and
    provider prefixes ("openai/gpt-4o") without listing every variant.
    """

    def __init__(self, prices: dict[str, Price]) -> None:
        self._prices = {k.lower(): v for k, v in prices.items()}
        # Longest first so "gpt-4o-mini" wins over "gpt-4o".
        self._by_length = sorted(self._prices, key=len, reverse=True)
        self._cache: dict[str, str | None] = {}

    @property
    def models(self) -> dict[str, Price]:
        """Every priced model name (lower case) and its price."""
        return dict(self._prices)

    def resolve(self, model: str | None) -> str | None:
        """The price-table entry a model name maps to, or None when unknown."""
        if not model:
            return None
        if model in self._cache:
            return self._cache[model]
        name = model.lower()
        if "/" in name:
            name = name.rsplit("/", 1)[1]
        found: str | None = name if name in self._prices else None
        if found is None:
            for key in self._by_length:
                if name.startswith(key) and (len(name) == len(key) or name[len(key)] in "-:@."):
                    found = key
                    break
        if len(self._cache) < 10_000:
            self._cache[model] = found
        return found

    def price(self, model: str | None) -> Price | None:
        """The price of a model, or None when the table does not know it."""
        key = self.resolve(model)
        return None if key is None else self._prices[key]

    def cost(
        self,
        model: str | None,
        input_tokens: int | None,
        output_tokens: int | None,
        cached_input_tokens: int | None = None,
    ) -> float | None:
        """USD cost of one call; None when the model is unknown or no tokens were reported.

        ``input_tokens`` includes cached tokens (OpenAI and GenAI convention); the cached
        share is billed at the cached rate when the model has one.
        """
        if input_tokens is None and output_tokens is None:
            return None
        p = self.price(model)
        if p is None:
            return None
        tin = input_tokens or 0
        cached = min(cached_input_tokens or 0, tin)
        usd = (tin - cached) * p.input + cached * p.cached_rate + (output_tokens or 0) * p.output
        return usd / 1e6


def _parse_models(data: Any, source: str) -> dict[str, Price]:
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise PriceTableError(
            f'{source}: expected an object with a "models" mapping, e.g. '
            '{"version": 1, "models": {"my-model": {"input": 1.0, "output": 2.0}}}'
        )
    version = data.get("version", PRICE_FORMAT_VERSION)
    if version != PRICE_FORMAT_VERSION:
        raise PriceTableError(
            f"{source}: price format version {version!r} is not supported; use version 1"
        )
    out: dict[str, Price] = {}
    for name, entry in data["models"].items():
        if not isinstance(entry, dict):
            raise PriceTableError(f"{source}: models.{name} must be an object with input/output")
        values: dict[str, float | None] = {}
        for fld in ("input", "output", "cached_input"):
            raw = entry.get(fld)
            if raw is None:
                if fld == "cached_input":
                    values[fld] = None
                    continue
                raise PriceTableError(
                    f"{source}: models.{name}.{fld} is missing; give USD per 1M tokens"
                )
            if (
                isinstance(raw, bool)
                or not isinstance(raw, int | float)
                or not math.isfinite(raw)
                or raw < 0
            ):
                raise PriceTableError(
                    f"{source}: models.{name}.{fld}={raw!r} must be a number >= 0 "
                    "(USD per 1M tokens)"
                )
            values[fld] = float(raw)
        out[str(name)] = Price(
            input=values["input"] or 0.0,
            output=values["output"] or 0.0,
            cached_input=values["cached_input"],
        )
    return out


def load_prices(override: str | Path | None = None) -> PriceTable:
    """The shipped price table, with entries from ``override`` (a JSON file) on top."""
    shipped = resources.files("assay").joinpath("data/prices.json").read_text("utf-8")
    prices = _parse_models(json.loads(shipped), "assay/data/prices.json")
    if override is not None:
        path = Path(override)
        try:
            data = json.loads(path.read_text("utf-8"))
        except OSError as exc:
            raise PriceTableError(f"{path}: cannot read price file ({exc.strerror})") from None
        except json.JSONDecodeError as exc:
            raise PriceTableError(
                f"{path}: line {exc.lineno} column {exc.colno}: not valid JSON ({exc.msg})"
            ) from None
        prices.update(_parse_models(data, str(path)))
    return PriceTable(prices)
