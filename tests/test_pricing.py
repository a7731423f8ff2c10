"""The price table: lookup rules, cost arithmetic, user overrides and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assay.pricing import Price, PriceTable, PriceTableError, load_prices


def test_lookup_exact_prefix_and_provider_prefix() -> None:
    t = load_prices()
    assert t.resolve("gpt-4o") == "gpt-4o"
    assert t.resolve("gpt-4o-mini-2024-07-18") == "gpt-4o-mini"  # longest prefix wins
    assert t.resolve("gpt-4o-2024-08-06") == "gpt-4o"
    assert t.resolve("openai/GPT-4o-mini") == "gpt-4o-mini"
    assert t.resolve("gpt-4oxyz") is None  # prefix must end at a separator
    assert t.resolve("llama-3-70b") is None and t.resolve(None) is None


def test_cost_uses_cached_rate_for_cached_share() -> None:
    t = PriceTable({"m": Price(input=2.0, output=8.0, cached_input=0.5)})
    assert t.cost("m", 1_000_000, 0) == pytest.approx(2.0)
    assert t.cost("m", 1_000_000, 1_000_000, 250_000) == pytest.approx(1.5 + 0.125 + 8.0)
    assert t.cost("m", 100, 0, 10_000) == pytest.approx(100 * 0.5 / 1e6)  # cached ≤ input
    assert t.cost("m", None, None) is None
    assert t.cost("unknown", 10, 10) is None
    no_cache = PriceTable({"m": Price(input=2.0, output=8.0)})
    assert no_cache.cost("m", 1_000_000, 0, 500_000) == pytest.approx(2.0)


def test_override_file_adds_and_replaces(tmp_path: Path) -> None:
    f = tmp_path / "prices.json"
    f.write_text(json.dumps({"version": 1, "models": {
        "llama-3-70b-local": {"input": 0.1, "output": 0.2}, "gpt-4o": {"input": 1, "output": 1}}}))
    t = load_prices(f)
    assert t.price("llama-3-70b-local") == Price(0.1, 0.2, None)
    assert t.price("gpt-4o") == Price(1.0, 1.0, None)
    assert t.price("gpt-4o-mini") is not None  # shipped entries stay


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{oops", "not valid JSON"),
        (json.dumps({"models": []}), '"models" mapping'),
        (json.dumps({"version": 9, "models": {}}), "version 9"),
        (json.dumps({"models": {"m": {"output": 1}}}), "models.m.input is missing"),
        (json.dumps({"models": {"m": {"input": -1, "output": 1}}}), "models.m.input=-1"),
        (json.dumps({"models": {"m": {"input": "cheap", "output": 1}}}), "must be a number"),
    ],
)
def test_bad_price_files_name_the_problem(tmp_path: Path, content: str, needle: str) -> None:
    f = tmp_path / "p.json"
    f.write_text(content)
    with pytest.raises(PriceTableError, match=needle) as info:
        load_prices(f)
    assert str(f) in str(info.value)
