"""``POST /v1/traces``: the OTLP/HTTP trace receiver.

Status codes follow the OTLP/HTTP specification: 200 (with ``partial_success`` when
some spans were rejected) only after the accepted spans are committed; 400 with a
``google.rpc.Status`` body for undecodable requests; 413 for bodies over the limit
after decompression; 415 for unsupported encodings; 503 with ``Retry-After`` when the
writer is behind.
"""

from __future__ import annotations

import asyncio
import zlib

from fastapi import APIRouter, Request, Response
from google.protobuf import json_format
from google.rpc.status_pb2 import Status

from assay.ingest import (
    Decoded,
    Decoder,
    Ingestor,
    OverloadedError,
    WriteFailedError,
)
from assay.otlp import OtlpDecodeError, response_body
from assay.server.auth import AuthError, Caller
from assay.settings import Settings

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

router = APIRouter()


class _TooLarge(Exception):
    pass


def _status_response(
    code: int, message: str, json_encoding: bool, headers: dict[str, str] | None = None
) -> Response:
    # gRPC code in the body: 3 INVALID_ARGUMENT, 8 RESOURCE_EXHAUSTED, 14 UNAVAILABLE …
    grpc = {400: 3, 401: 16, 403: 7, 413: 8, 415: 3, 503: 14, 429: 8}.get(code, 2)
    status = Status(code=grpc, message=message)
    if json_encoding:
        return Response(
            json_format.MessageToJson(status, indent=None), code, media_type=JSON, headers=headers
        )
    return Response(status.SerializeToString(), code, media_type=PROTOBUF, headers=headers)


async def _read_body(request: Request, limit: int, gzip: bool) -> bytes:
    """The request body, decompressed, refusing anything over ``limit`` bytes as it streams.

    Decompression is capped chunk by chunk, so a gzip bomb costs at most ``limit`` bytes;
    multi-member gzip (RFC 1952) is read member after member.
    """
    chunks: list[bytes] = []
    size = 0
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzip else None
    async for chunk in request.stream():
        if not chunk:
            continue
        if inflater is None:
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            chunks.append(chunk)
            continue
        data = chunk
        while data:
            if inflater.eof:
                # Another gzip member follows the one just finished.
                data = inflater.unused_data + data
                inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out = inflater.decompress(data, limit + 1 - size)
            size += len(out)
            if size > limit:
                raise _TooLarge
            chunks.append(out)
            data = inflater.unconsumed_tail
            if inflater.eof and inflater.unused_data:
                data = inflater.unused_data + data
                inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    if inflater is not None:
        tail = inflater.flush(limit + 1 - size)
        size += len(tail)
        if size > limit:
            raise _TooLarge
        chunks.append(tail)
        if not inflater.eof:
            raise zlib.error("gzip stream is truncated")
    return b"".join(chunks)


@router.post(
    "/v1/traces",
    summary="OTLP/HTTP trace export (protobuf or JSON, optionally gzip)",
    response_class=Response,
    responses={
        200: {"description": "Accepted spans are durable; partial_success lists rejects"},
        400: {"description": "Undecodable body (google.rpc.Status)"},
        401: {"description": "Missing or unknown API key"},
        413: {"description": "Body larger than the limit after decompression"},
        415: {"description": "Unsupported Content-Type or Content-Encoding"},
        503: {"description": "Store busy; retry after Retry-After seconds"},
    },
)
async def export_traces(request: Request) -> Response:
    """Receive an OTLP ExportTraceServiceRequest and acknowledge it once committed."""
    settings: Settings = request.app.state.settings
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    json_encoding = ctype == JSON
    if ctype not in (PROTOBUF, JSON):
        return _status_response(
            415,
            f"Content-Type {ctype or '(none)'!r} is not supported; send {PROTOBUF} or {JSON}",
            json_encoding,
        )
    try:
        caller: Caller = request.app.state.auth.caller(request)
    except AuthError as exc:
        return _status_response(exc.status, str(exc), json_encoding)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", ""):
        return _status_response(
            415, f"Content-Encoding {encoding!r} is not supported; use gzip or none", json_encoding
        )
    limits: asyncio.Semaphore = request.app.state.decode_slots
    async with limits:
        try:
            body = await _read_body(request, settings.max_body_bytes, encoding == "gzip")
        except _TooLarge:
            return _status_response(
                413,
                f"request body exceeds {settings.max_body_bytes} bytes after "
                "decompression; send smaller batches",
                json_encoding,
            )
        except zlib.error as exc:
            return _status_response(400, f"body is not valid gzip: {exc}", json_encoding)
        decoder: Decoder = request.app.state.decoder
        try:
            result: Decoded = await decoder.decode(body, json_encoding, caller.project)
        except OtlpDecodeError as exc:
            return _status_response(400, str(exc), json_encoding)
        except WriteFailedError as exc:
            return _status_response(
                503,
                f"{exc}; retry later",
                json_encoding,
                {"Retry-After": str(settings.retry_after_seconds)},
            )
        del body
    ingestor: Ingestor = request.app.state.ingestor
    retry = {"Retry-After": str(settings.retry_after_seconds)}
    try:
        await asyncio.wait_for(ingestor.submit(result.table), settings.ingest_timeout_seconds)
    except OverloadedError as exc:
        return _status_response(503, f"{exc}; retry later", json_encoding, retry)
    except (WriteFailedError, TimeoutError) as exc:
        return _status_response(
            503,
            f"spans were not stored ({str(exc) or 'timed out'}); retry later",
            json_encoding,
            retry,
        )
    return Response(
        response_body(result.rejected, result.error_message, json_encoding),
        200,
        media_type=JSON if json_encoding else PROTOBUF,
    )
