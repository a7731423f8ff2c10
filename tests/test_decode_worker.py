"""Decode worker processes: the protocol, the pool's recovery, and what a worker loads."""

from __future__ import annotations

import asyncio
import marshal
import os
import signal
import subprocess
import sys

import pytest

from assay import decode_worker, synthetic
from assay.batch import spans_to_arrow
from assay.columns import span_columns
from assay.ingest import Decoder, WriteFailedError
from assay.otlp import OtlpDecodeError, decode
from assay.pricing import load_prices


def _body(n: int = 40, seed: int = 3) -> bytes:
    return next(synthetic.batches(n, n, seed)).SerializeToString()


def _frame(frame: bytes) -> tuple[int, int, str, bytes]:
    head = decode_worker.RESPONSE.size
    status, rejected, text_len, payload_len = decode_worker.RESPONSE.unpack(frame[:head])
    text = frame[head : head + text_len].decode()
    payload = frame[head + text_len :]
    assert len(payload) == payload_len
    return status, rejected, text, payload


def test_worker_frame_carries_the_same_columns_as_decoding_in_process() -> None:
    prices = load_prices(None)
    body = _body()
    status, rejected, text, payload = _frame(
        decode_worker.handle(body, False, "proj", prices)
    )
    assert (status, rejected, text) == (decode_worker.OK, 0, "")
    expected = span_columns(decode(body, False, "proj", prices).spans)
    assert marshal.loads(payload) == expected


def test_worker_refuses_a_body_that_is_not_otlp() -> None:
    status, _, text, payload = _frame(
        decode_worker.handle(b"\xff\x00 not protobuf", False, "p", load_prices(None))
    )
    assert status == decode_worker.REFUSED
    assert "not a valid OTLP protobuf" in text
    assert payload == b""


def test_worker_survives_a_decoder_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(decode_worker, "decode", broken)
    status, _, text, _ = _frame(decode_worker.handle(_body(), False, "p", load_prices(None)))
    assert status == decode_worker.REFUSED
    assert "KeyError" in text


def test_worker_process_loads_no_pyarrow_duckdb_or_web_stack() -> None:
    code = (
        "import sys, assay.decode_worker; "
        "print(sorted({'pyarrow', 'numpy', 'duckdb', 'fastapi', 'pydantic'} & "
        "{m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_decoder_pool_decodes_refuses_and_replaces_a_dead_worker() -> None:
    prices = load_prices(None)
    body = _body(80)

    async def scenario() -> None:
        decoder = Decoder(prices, None, workers=1)
        try:
            decoded = await decoder.decode(body, False, "proj")
            assert decoded.table.equals(spans_to_arrow(decode(body, False, "proj", prices).spans))
            with pytest.raises(OtlpDecodeError, match="not a valid OTLP"):
                await decoder.decode(b"garbage", False, "proj")
            # The same worker answers after a refusal.
            (pid,) = decoder.worker_pids
            assert (await decoder.decode(body, False, "proj")).table.num_rows == 80
            assert decoder.worker_pids == [pid]

            os.kill(pid, signal.SIGKILL)
            with pytest.raises(WriteFailedError, match="stopped unexpectedly"):
                await decoder.decode(body, False, "proj")
            # The next request gets a fresh worker.
            assert (await decoder.decode(body, False, "proj")).table.num_rows == 80
            assert decoder.worker_pids and decoder.worker_pids != [pid]
        finally:
            live = decoder.worker_pids
            await decoder.aclose()
        assert decoder.worker_pids == []
        for p in live:
            with pytest.raises(ProcessLookupError):
                os.kill(p, 0)

    asyncio.run(scenario())


def test_decoder_pool_runs_requests_on_several_workers_at_once() -> None:
    prices = load_prices(None)
    bodies = [_body(40, seed) for seed in range(6)]

    async def scenario() -> None:
        decoder = Decoder(prices, None, workers=2)
        try:
            results = await asyncio.gather(*(decoder.decode(b, False, "p") for b in bodies))
            assert len(decoder.worker_pids) == 2
        finally:
            await decoder.aclose()
        for b, r in zip(bodies, results, strict=True):
            assert r.table.equals(spans_to_arrow(decode(b, False, "p", prices).spans))

    asyncio.run(scenario())
