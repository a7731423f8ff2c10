"""Drift features read from stored spans, and the embedding cache."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import numpy as np
import pytest

from assay.drift import features as feats
from assay.drift.features import (
    FEATURES,
    FeatureError,
    categorical_values,
    embed_texts,
    feature_texts,
    numeric_values,
    resolve_embedder,
    select_features,
    window_fields,
)
from assay.drift.windows import load_window, span_window
from assay.embedders import EmbedderError, HashingEmbedder
from assay.model import Span
from assay.store import Store
from drift_support import DAY1, CountingEmbedder, traffic

# Windows and the embedding cache behave alike on every store backend.
pytestmark = pytest.mark.all_backends

ALL = "2026-03-01..2026-03-02"


def _read(
    store: Store, names: list[str], kind: str | None = "llm", attrs: tuple[str, ...] = ()
):  # type: ignore[no-untyped-def]
    chosen = select_features(names, attrs)
    fields, attributes = window_fields(chosen)
    window = span_window(ALL, "default", {"kind": kind})
    return chosen, load_window(store, window, fields, attributes)


def test_feature_selection() -> None:
    assert [f.name for f in select_features()] == list(FEATURES)
    chosen = select_features(["model", " latency_ms", "attr:judge.score", "model"], ["rating"])
    assert [f.name for f in chosen] == ["model", "latency_ms", "attr:judge.score", "attr:rating"]
    assert chosen[2].kind == "numeric" and chosen[2].attribute == "judge.score"
    assert window_fields(chosen) == (["model", "duration_ms"], ["judge.score", "rating"])
    with pytest.raises(FeatureError, match=r"unknown drift feature 'latency'.*latency_ms"):
        select_features(["latency"])


def test_numeric_and_categorical_values_match_the_spans(store: Store) -> None:
    spans = [s for s in traffic(40, DAY1, seed=3) if s.kind == "llm"]
    store.insert_spans(traffic(40, DAY1, seed=3))
    chosen, data = _read(
        store, ["latency_ms", "output_length", "input_tokens", "cost", "model", "status"]
    )
    by_name = {f.name: f for f in chosen}
    order = {s.span_id: s for s in spans}
    rows = [order[sid] for sid in data.table.column("span_id").to_pylist()]
    latency, missing = numeric_values(data.table, by_name["latency_ms"])
    assert missing == 0 and np.allclose(latency, [s.duration_ms for s in rows])
    lengths, _ = numeric_values(data.table, by_name["output_length"])
    assert lengths.tolist() == [len(s.output_text or "") for s in rows]
    tokens, _ = numeric_values(data.table, by_name["input_tokens"])
    assert tokens.tolist() == [s.input_tokens for s in rows]
    cost, no_cost = numeric_values(data.table, by_name["cost"])
    assert len(cost) == 0 and no_cost == len(rows)  # decoded without a price table
    assert categorical_values(data.table, by_name["model"]) == [s.model for s in rows]
    assert set(categorical_values(data.table, by_name["status"])) <= {"unset", "error"}


def _tool_spans() -> list[Span]:
    base = traffic(1, DAY1, seed=4)[2]  # the ChatCompletion span
    calls = [
        {"role": "assistant", "tool_calls": [{"name": "search"}, {"name": "lookup_order"}]},
        {"role": "assistant", "tool_calls": [{"function": {"name": "search"}}]},
    ]
    return [
        dataclasses.replace(base, span_id="a" * 16, output_messages=calls),
        dataclasses.replace(base, span_id="b" * 16, output_messages=[{"role": "assistant"}]),
        dataclasses.replace(
            base,
            span_id="c" * 16,
            kind="tool",
            name="execute_tool refund",
            attributes={"gen_ai.tool.name": "refund"},
        ),
        dataclasses.replace(base, span_id="d" * 16, kind="tool", name="weather", attributes={}),
    ]


def test_tools_are_a_tool_spans_name_or_the_calls_an_llm_asked_for(store: Store) -> None:
    store.insert_spans(_tool_spans())
    chosen, data = _read(store, ["tools"], kind=None)
    got = dict(
        zip(
            data.table.column("span_id").to_pylist(),
            categorical_values(data.table, chosen[0]),
            strict=True,
        )
    )
    assert got == {
        "a" * 16: "lookup_order+search",
        "b" * 16: "(no tool)",
        "c" * 16: "refund",
        "d" * 16: "weather",
    }


def test_score_attributes_are_read_as_numbers(store: Store) -> None:
    base = traffic(1, DAY1, seed=5)[2]
    values = [4, "3.5", "great", None]
    store.insert_spans(
        [
            dataclasses.replace(
                base,
                span_id=f"{i:016x}",
                attributes={} if v is None else {"user.rating": v},
            )
            for i, v in enumerate(values)
        ]
    )
    chosen, data = _read(store, ["model"], attrs=("user.rating",))
    rating = chosen[-1]
    got, missing = numeric_values(data.table, rating)
    assert sorted(got.tolist()) == [3.5, 4.0] and missing == 2


def test_embeddings_are_computed_once_per_span_field_and_embedder(store: Store) -> None:
    """A second read of a 10,000-span window embeds nothing; vectors come back the same."""
    step = timedelta(seconds=4)
    store.insert_spans(traffic(5_000, DAY1, seed=6, step=step))
    chosen, data = _read(store, ["input_embedding"])
    assert data.total == 10_000
    texts = feature_texts(data.table, chosen[0])
    assert len(texts.texts) == 10_000 and texts.missing == 0
    embedder = FastEmbedderForCache()
    first, embedded = embed_texts(store, "default", embedder, "input", texts)
    assert embedded == 10_000 and embedder.texts == 10_000
    second, embedded = embed_texts(store, "default", embedder, "input", texts)
    assert embedded == 0 and embedder.texts == 10_000
    assert np.array_equal(first, second)
    # Another field, embedder or project is a different cache entry.
    _, other = embed_texts(store, "other", embedder, "input", _head(texts, 5))
    assert other == 5


def _head(texts: feats.Texts, n: int) -> feats.Texts:
    return feats.Texts(texts.trace_ids[:n], texts.span_ids[:n], texts.texts[:n], 0)


class FastEmbedderForCache:
    """Vectors from a text's length and first characters: fast enough for 10,000 texts."""

    name = "cache-test"
    dim: int | None = 4

    def __init__(self) -> None:
        self.texts = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.texts += len(texts)
        rows = np.array([[len(t), ord(t[0]), ord(t[1]), 1.0] for t in texts], dtype=np.float32)
        out: np.ndarray = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        return out


def test_partial_cache_embeds_only_new_spans(store: Store) -> None:
    store.insert_spans(traffic(30, DAY1, seed=7))
    chosen, data = _read(store, ["output_embedding"])
    texts = feature_texts(data.table, chosen[0])
    embedder = CountingEmbedder()
    part, _ = embed_texts(store, "default", embedder, "output", _head(texts, 10))
    whole, embedded = embed_texts(store, "default", embedder, "output", texts)
    assert embedded == len(texts.texts) - 10 and embedder.texts == len(texts.texts)
    assert np.array_equal(whole[:10], part)
    direct = HashingEmbedder(dim=256).embed(texts.texts)
    assert np.allclose(whole, direct, atol=1e-6)


def test_auto_embedder_falls_back_to_hashing_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    installed = feats.embed_extra_installed()
    monkeypatch.setattr(feats, "embed_extra_installed", lambda: False)
    embedder, note = resolve_embedder("auto")
    assert embedder.name.startswith("hashing") and note and "assay[embed]" in note
    same, none = resolve_embedder("hashing")
    assert same is embedder and none is None  # instances are reused
    if installed:  # building the local embedder loads nothing until it embeds
        monkeypatch.setattr(feats, "embed_extra_installed", lambda: True)
        local, note = resolve_embedder(None)
        assert local.name.startswith("sentence-transformers") and note is None
    with pytest.raises(EmbedderError, match="unknown embedder"):
        resolve_embedder("word2vec")


def test_embedder_setting_is_validated() -> None:
    from assay.settings import Settings, SettingsError

    assert Settings.from_env({}).embedder == "auto"
    assert Settings.from_env({"ASSAY_EMBEDDER": "openai:text-embedding-3-small"}).embedder
    with pytest.raises(SettingsError, match="ASSAY_EMBEDDER='word2vec'"):
        Settings.from_env({"ASSAY_EMBEDDER": "word2vec"})
