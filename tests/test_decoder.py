"""The worker-process decoder: a large body is shared out among workers, losslessly."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from assay import synthetic
from assay.ingest import _SPLIT_BYTES, Decoder
from assay.otlp import OtlpDecodeError, decode
from assay.pricing import load_prices


@pytest.fixture(scope="module")
def decoder() -> Iterator[Decoder]:
    d = Decoder(load_prices(None), None, workers=2)
    yield d
    d.close()


def _body(n_traces: int, bad_every: int = 0) -> bytes:
    rng = random.Random(7)
    spans = []
    for i in range(n_traces):
        spans.extend(synthetic.trace_spans(rng, 1_763_000_000 * 10**9 + i * 10**9))
    for i, sp in enumerate(spans):
        if bad_every and i % bad_every == 0:
            sp.end_time_unix_nano = sp.start_time_unix_nano - 1  # end before start
    return synthetic.request(spans).SerializeToString()


async def test_split_decode_matches_single_process_decode(decoder: Decoder) -> None:
    body = _body(400, bad_every=97)
    assert len(body) >= _SPLIT_BYTES  # large enough to be shared by both workers
    expected = decode(body, False, "p", load_prices(None))
    got = await decoder.decode(body, False, "p")
    assert got.rejected == expected.rejected > 5
    assert got.table.num_rows == len(expected.spans)
    assert sorted(got.table.column("span_id").to_pylist()) == sorted(
        s.span_id for s in expected.spans
    )
    assert got.error_message.startswith(f"{expected.rejected} span(s) rejected")
    assert f"(and {expected.rejected - 5} more)" in got.error_message


async def test_bad_large_body_is_a_decode_error(decoder: Decoder) -> None:
    with pytest.raises(OtlpDecodeError):
        await decoder.decode(b"\xff" * _SPLIT_BYTES, False, "p")
