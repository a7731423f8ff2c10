"""Synthetic production traffic for drift tests, with shifts of known kind injected.

Traces come from :mod:`assay.synthetic` (a chain root, a retriever and two LLM calls
each) decoded by the real OTLP mapping. A shift rewrites the ``ChatCompletion`` call:
``new_topic`` replaces that share of its inputs with questions about a topic the
reference never saw, ``longer_outputs`` doubles its answers.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from assay import synthetic
from assay.embedders import HashingEmbedder
from assay.model import Span
from assay.otlp import decode_request

#: Reference traffic starts here; current traffic a day later.
DAY1 = datetime(2026, 3, 1, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
REFERENCE = "2026-03-01T00:00:00Z..2026-03-01T23:59:59Z"
CURRENT = "2026-03-02T00:00:00Z..2026-03-02T23:59:59Z"
NEW_TOPIC = [
    "crypto",
    "wallet",
    "blockchain",
    "staking",
    "token",
    "ledger",
    "mining",
    "seed",
    "phrase",
    "exchange",
    "gas",
    "fee",
    "validator",
    "airdrop",
    "bridge",
]


def _topic_text(rng: random.Random, chars: int = 500) -> str:
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < chars:
        words.append(rng.choice(NEW_TOPIC))
    return " ".join(words)[:chars]


def traffic(
    n_traces: int,
    start: datetime,
    seed: int,
    *,
    project: str = "default",
    new_topic: float = 0.0,
    longer_outputs: bool = False,
    step: timedelta = timedelta(seconds=60),
) -> list[Span]:
    """``n_traces`` synthetic traces (4 spans each) from ``start``, one per ``step``."""
    rng = random.Random(seed)
    t0 = int(start.timestamp()) * 10**9
    pb = []
    for i in range(n_traces):
        pb.extend(synthetic.trace_spans(rng, t0 + i * int(step.total_seconds() * 1e9)))
    spans = decode_request(synthetic.request(pb), project, None).spans
    out = []
    for s in spans:
        if s.name == "ChatCompletion":
            changes: dict[str, object] = {}
            if new_topic and rng.random() < new_topic:
                changes["input_text"] = _topic_text(rng)
            if longer_outputs and s.output_text:
                changes["output_text"] = s.output_text + " " + s.output_text
            s = dataclasses.replace(s, **changes)  # type: ignore[arg-type]
        out.append(s)
    return out


class CountingEmbedder:
    """A hashing embedder that counts the texts it is asked to embed."""

    def __init__(self, dim: int = 256) -> None:
        self._inner = HashingEmbedder(dim=dim)
        self.name = f"counting:{dim}"
        self.dim: int | None = dim
        self.calls = 0
        self.texts = 0

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.calls += 1
        self.texts += len(texts)
        return self._inner.embed(texts)
