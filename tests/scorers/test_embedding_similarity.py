"""embedding_similarity: value, threshold, caching, overrides, errors."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pytest

from assay.embedders import EmbedderError, HashingEmbedder, Vectors
from assay.model import Case, Output, ScorerSpec
from assay.scorers import ScorerError, build, embedding_similarity


class Counting:
    """Wraps an embedder, recording each call's texts and thread."""

    def __init__(self, fail: bool = False) -> None:
        self.inner = HashingEmbedder(dim=256)
        self.name = "counting"
        self.dim: int | None = 256
        self.calls: list[list[str]] = []
        self.threads: list[threading.Thread] = []
        self.fail = fail

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.calls.append(list(texts))
        self.threads.append(threading.current_thread())
        if self.fail:
            raise EmbedderError("endpoint answered 500")
        return self.inner.embed(texts)


def case(expected: object, **options: object) -> Case:
    opts = {"embedding_similarity": dict(options)} if options else {}
    return Case("c1", "q", expected=expected, options=opts)  # type: ignore[arg-type]


async def test_value_is_the_cosine_similarity_and_passed_uses_the_threshold() -> None:
    scorer = build({"embedding_similarity": {"embedder": "hashing", "threshold": 0.7}})
    emb = HashingEmbedder()
    a, b = "The cat sat on the mat", "The cat sat on a mat"
    expected_sim = float(np.dot(*emb.embed([a, b])))
    score = await scorer.score(case(a), Output(b))
    assert score.value == pytest.approx(expected_sim)
    assert score.passed is True and score.explanation is None
    assert score.metadata == {"similarity": score.value, "embedder": "hashing:512"}
    far = await scorer.score(case(a), Output("Quarterly revenue grew"))
    assert far.passed is False
    assert far.explanation is not None
    assert far.explanation.startswith(f"similarity {far.value:.3f} < threshold 0.7")
    assert "hashing:512" in far.explanation


async def test_identical_texts_score_one() -> None:
    scorer = embedding_similarity(embedder="hashing")
    score = await scorer.score(case("same words"), Output("same words"))
    assert score.value == pytest.approx(1.0)
    assert score.passed is True


async def test_a_list_of_expected_texts_takes_the_best() -> None:
    scorer = embedding_similarity(embedder="hashing", threshold=0.9)
    score = await scorer.score(case(["weather is sunny", "refund issued"]), Output("Refund issued"))
    assert score.passed is True
    assert score.metadata["best_expected"] == 1


async def test_expected_embeddings_are_cached_and_embedding_runs_off_the_loop() -> None:
    counting = Counting()
    scorer = embedding_similarity(embedder=counting)
    await scorer.score(case("reference answer"), Output("first output"))
    await scorer.score(case("reference answer"), Output("second output"))
    assert counting.calls == [["first output", "reference answer"], ["second output"]]
    assert all(t is not threading.main_thread() for t in counting.threads)


async def test_spec_records_the_embedder_and_threshold() -> None:
    assert embedding_similarity(embedder="hashing:64").spec == ScorerSpec(
        "embedding_similarity", {"embedder": "hashing:64", "threshold": 0.8}
    )
    assert embedding_similarity(embedder=HashingEmbedder(dim=32)).spec.args["embedder"] == (
        "hashing:32"
    )
    config = {"name": "hashing", "dim": 64}
    assert embedding_similarity(embedder=config).spec.args["embedder"] == config


async def test_per_case_threshold_override() -> None:
    scorer = embedding_similarity(embedder="hashing", threshold=0.99)
    assert (await scorer.score(case("a cat", threshold=0.1), Output("a cat sat"))).passed is True
    assert (await scorer.score(case("a cat"), Output("a cat sat"))).passed is False
    with pytest.raises(ScorerError, match=r"embedder of 'embedding_similarity' cannot change"):
        await scorer.score(case("a", embedder="openai"), Output("a"))
    with pytest.raises(ScorerError, match=r"case 'c1'.*no option 'treshold'"):
        await scorer.score(case("a", treshold=0.5), Output("a"))
    with pytest.raises(ScorerError, match=r"case 'c1'.*'threshold' must be a number"):
        await scorer.score(case("a", threshold="high"), Output("a"))


def test_configuration_errors() -> None:
    with pytest.raises(ScorerError, match=r"threshold 1.5 is above 1"):
        embedding_similarity(embedder="hashing", threshold=1.5)
    with pytest.raises(ScorerError, match=r"option 'embedder': unknown embedder 'glove'"):
        build({"embedding_similarity": {"embedder": "glove"}})


async def test_missing_expected_and_embedder_failures() -> None:
    scorer = embedding_similarity(embedder="hashing")
    with pytest.raises(ScorerError, match=r"case 'c1' has no expected answer"):
        await scorer.score(Case("c1", "q"), Output("x"))
    failing = embedding_similarity(embedder=Counting(fail=True))
    with pytest.raises(ScorerError, match=r"'embedding_similarity': endpoint answered 500"):
        await failing.score(case("a"), Output("b"))
