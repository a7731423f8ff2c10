"""``embedding_similarity``: cosine similarity between the output and the expected text."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from assay.embedders import Embedder, EmbedderError, Vectors, get_embedder
from assay.model import Case, Output, Score, ScorerSpec
from assay.scorers.base import (
    Scorer,
    ScorerError,
    case_options,
    expected_texts,
    has_override,
    option_number,
)
from assay.scorers.registry import scorer

#: Embeddings of expected texts kept per scorer; a golden set rarely has more.
_CACHE_SIZE = 4096


class EmbeddingSimilarity:
    """Scores an output by its best cosine similarity to the expected text(s)."""

    def __init__(self, spec: ScorerSpec, embedder: Embedder, threshold: float) -> None:
        self.spec = spec
        self.embedder = embedder
        self.threshold = threshold
        self._cache: OrderedDict[str, Vectors] = OrderedDict()

    async def score(self, case: Case, output: Output) -> Score:
        threshold = self.threshold
        if has_override(case, self.spec):
            override = case.options.get(self.spec.label) or case.options.get(self.spec.name)
            if isinstance(override, Mapping) and "embedder" in override:
                raise ScorerError(
                    f"case {case.id!r}: the embedder of {self.spec.label!r} cannot change per "
                    f"case; define a second embedding_similarity scorer with its own `key`"
                )
            options = case_options(case, self.spec, allowed=("threshold",))
            threshold = _threshold(options["threshold"], case.id)
        wanted = expected_texts(case, "embedding_similarity")
        missing = list(dict.fromkeys(t for t in wanted if t not in self._cache))
        try:
            # Embedding is blocking (a model or an HTTP call): keep it off the event loop.
            vectors = await asyncio.to_thread(self.embedder.embed, [output.text, *missing])
        except EmbedderError as exc:
            raise ScorerError(f"scorer {self.spec.label!r}: {exc}") from exc
        for text, vector in zip(missing, vectors[1:], strict=True):
            self._remember(text, vector)
        references = np.vstack([self._cache[t] for t in wanted])
        similarities = references @ vectors[0]
        best = int(np.argmax(similarities))
        similarity = float(np.clip(similarities[best], -1.0, 1.0))
        passed = similarity >= threshold
        metadata: dict[str, Any] = {"similarity": similarity, "embedder": self.embedder.name}
        if len(wanted) > 1:
            metadata["best_expected"] = best
        explanation = None
        if not passed:
            explanation = (
                f"similarity {similarity:.3f} < threshold {threshold:g} "
                f"(embedder {self.embedder.name})"
            )
        return Score(value=similarity, passed=passed, explanation=explanation, metadata=metadata)

    def _remember(self, text: str, vector: Vectors) -> None:
        self._cache[text] = vector
        self._cache.move_to_end(text)
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)


def _threshold(value: Any, case_id: str | None = None) -> float:
    try:
        number = option_number("embedding_similarity", "threshold", value, minimum=-1.0)
    except ScorerError as exc:
        raise ScorerError(f"case {case_id!r}: {exc}" if case_id else str(exc)) from None
    if number > 1.0:
        raise ScorerError(
            f"scorer 'embedding_similarity': threshold {value!r} is above 1, the largest "
            f"cosine similarity; use a value in [-1, 1] (e.g. 0.8)"
        )
    return number


@scorer("embedding_similarity", description="cosine similarity of output and expected")
def embedding_similarity(
    *,
    embedder: str | Mapping[str, Any] | Embedder = "sentence-transformers",
    threshold: float = 0.8,
) -> Scorer:
    """Value = cosine similarity between output and expected (the best of a list);
    passed = value >= ``threshold``. ``embedder`` is anything ``get_embedder`` takes."""
    try:
        made = get_embedder(embedder)
    except EmbedderError as exc:
        raise ScorerError(f"scorer 'embedding_similarity': option 'embedder': {exc}") from None
    recorded: Any = embedder if isinstance(embedder, str | Mapping) else made.name
    if isinstance(recorded, Mapping):
        recorded = dict(recorded)
    spec = ScorerSpec("embedding_similarity", {"embedder": recorded, "threshold": threshold})
    return EmbeddingSimilarity(spec, made, _threshold(threshold))
