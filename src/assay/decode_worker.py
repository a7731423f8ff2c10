"""A decode worker process: OTLP bodies in on stdin, span columns out on stdout.

``assay serve`` runs ``decode_workers`` of these (``python -m assay.decode_worker
[PRICES]``) so that decoding, which is pure Python and holds the GIL, uses more than one
core. A worker imports only the decoder (no pyarrow, DuckDB or web stack), so each costs
~30 MB under load instead of ~100 MB for a copy of the server.

Protocol, little-endian, one request at a time:

* request: ``u64`` body length, ``u8`` 1 for OTLP/JSON else 0, ``u32`` project length,
  the project (UTF-8), the body;
* response: ``u8`` status (:data:`OK` or :data:`REFUSED`), ``u32`` rejected spans,
  ``u32`` message length, ``u64`` payload length, the message (UTF-8), the payload
  (:mod:`marshal` of :func:`assay.columns.span_columns`; empty when refused).

The worker exits when its stdin closes, so a server killed with SIGKILL leaves no orphans.
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import os
import struct
import sys
from typing import BinaryIO

from assay.columns import span_columns
from assay.otlp import OtlpDecodeError, decode
from assay.pricing import PriceTable, load_prices

REQUEST = struct.Struct("<QBI")
RESPONSE = struct.Struct("<BIIQ")
OK = 0
#: The body is not OTLP (or could not be decoded); the message says why.
REFUSED = 1

log = logging.getLogger("assay.decode_worker")


def _read(stream: BinaryIO, size: int) -> bytes | None:
    """Exactly ``size`` bytes, or None when the stream ends first."""
    chunks = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def handle(body: bytes, json_encoding: bool, project: str, prices: PriceTable) -> bytes:
    """Decode one body into a complete response frame."""
    try:
        result = decode(body, json_encoding, project, prices)
        payload = marshal.dumps(span_columns(result.spans))
        status, rejected, message = OK, result.rejected, result.error_message()
    except OtlpDecodeError as exc:
        status, rejected, message, payload = REFUSED, 0, str(exc), b""
    except Exception as exc:
        # decode() already turns mapping failures into OtlpDecodeError; this is the rest
        # (building the columns). The worker must live on for the next request.
        log.exception("decoding a request failed")
        status, rejected, payload = REFUSED, 0, b""
        message = f"body could not be decoded ({type(exc).__name__}: {exc})"
    text = message.encode("utf-8", "replace")
    return RESPONSE.pack(status, rejected, len(text), len(payload)) + text + payload


def serve(stdin: BinaryIO, stdout: BinaryIO, prices: PriceTable) -> None:
    """Answer requests until stdin ends."""
    while True:
        head = _read(stdin, REQUEST.size)
        if head is None:
            return
        size, json_flag, project_len = REQUEST.unpack(head)
        project = _read(stdin, project_len)
        body = _read(stdin, size)
        if project is None or body is None:
            return
        stdout.write(handle(body, bool(json_flag), project.decode(), prices))
        stdout.flush()


def main(argv: list[str] | None = None) -> None:
    """Entry point: ``python -m assay.decode_worker [PRICES_JSON]``."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, format="assay decode worker: %(message)s")
    prices = load_prices(args[0] if args else None)
    # The protocol owns the real stdout; anything a library prints goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):
        serve(sys.stdin.buffer, out, prices)


if __name__ == "__main__":
    main()
