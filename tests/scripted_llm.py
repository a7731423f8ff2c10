"""A scripted OpenAI-compatible chat model: a real HTTP server on 127.0.0.1 for tests.

Replies are queued and served in order; when the queue is empty the default reply is
used. A reply is one of

- a string: the assistant message content;
- a dict with any of ``content``, ``tool_calls`` (``[{"name", "arguments", "id"?}]`` or
  OpenAI's own shape), ``finish_reason``, ``model``, ``usage`` (``{"prompt_tokens",
  "completion_tokens"}``; counted from whitespace-separated words when absent),
  ``delay`` (seconds to wait before answering), ``headers``;
- a dict with ``status`` (an HTTP error such as 429 or 500), optional ``headers``
  (e.g. ``{"Retry-After": "1"}``) and ``body`` (default: an OpenAI error object);
- a dict with ``raw`` (str or bytes sent verbatim, e.g. a malformed JSON body), optional
  ``status`` (default 200), ``headers`` and ``delay``;
- a callable taking the request body (a dict) and returning one of the above, for
  replies that depend on the prompt.

``stream: true`` requests get server-sent events, with a final usage chunk when
``stream_options.include_usage`` is set. Every request is recorded in ``.requests``;
``.max_in_flight`` is the most chat requests it was answering at once.

::

    with ScriptedLLM(["first", {"status": 429, "headers": {"Retry-After": "0"}}]) as llm:
        client = openai.OpenAI(base_url=llm.base_url + "/v1", api_key="test")
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

Reply = str | dict[str, Any] | Callable[[dict[str, Any]], str | dict[str, Any]]

_CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")
_CREATED = 1_700_000_000


@dataclass(frozen=True)
class ScriptedRequest:
    """One request the scripted model received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The chat messages sent, or [] when the body has none."""
        if isinstance(self.body, dict) and isinstance(self.body.get("messages"), list):
            return list(self.body["messages"])
        return []

    @property
    def model(self) -> str | None:
        """The model the client asked for."""
        return self.body.get("model") if isinstance(self.body, dict) else None


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]
    stream: list[dict[str, Any]] | None = None
    raw: bytes | None = None


def _words(value: Any) -> int:
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(_words(v.get("text") if isinstance(v, dict) else v) for v in value)
    return 0


def _tool_calls(raw: list[dict[str, Any]], ids: Iterable[int]) -> list[dict[str, Any]]:
    out = []
    for call, n in zip(raw, ids, strict=False):
        if "function" in call:  # already in OpenAI's shape
            out.append({"type": "function", "id": call.get("id", f"call_{n}"), **call})
            continue
        args = call.get("arguments", {})
        out.append(
            {
                "id": call.get("id", f"call_{n}"),
                "type": "function",
                "function": {
                    "name": call["name"],
                    "arguments": args if isinstance(args, str) else json.dumps(args),
                },
            }
        )
    return out


class _Server(ThreadingHTTPServer):
    # close() waits for requests in flight (a delayed reply included), so no handler
    # thread outlives the test that started it.
    daemon_threads = False
    block_on_close = True
    # Many concurrent clients connect at once (one connection per request, HTTP/1.0).
    request_queue_size = 256

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up is expected in tests; anything else is a bug.
        if not isinstance(sys.exception(), ConnectionError):
            super().handle_error(request, client_address)


class ScriptedLLM:
    """Serve queued chat replies at ``base_url`` until :meth:`close`; a context manager."""

    def __init__(
        self,
        replies: Iterable[Reply] = (),
        *,
        default: Reply = "OK",
        model: str | None = None,
    ) -> None:
        self.default = default
        #: Model reported in responses; None echoes the requested model.
        self.model = model
        self.requests: list[ScriptedRequest] = []
        self._replies: deque[Reply] = deque(replies)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        host, port = self._server.server_address[:2]
        self.base_url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self._closed = False
        self._in_flight = 0
        #: Most chat requests answered at the same time.
        self.max_in_flight = 0

    def queue(self, *replies: Reply) -> ScriptedLLM:
        """Append replies, served in order before the default."""
        with self._lock:
            self._replies.extend(replies)
        return self

    @property
    def pending(self) -> int:
        """Queued replies not served yet."""
        with self._lock:
            return len(self._replies)

    def close(self) -> None:
        """Stop serving and release the socket; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> ScriptedLLM:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _next_reply(self) -> Reply:
        with self._lock:
            return self._replies.popleft() if self._replies else self.default

    def _answer(self, body: dict[str, Any]) -> tuple[_Answer, float]:
        reply = self._next_reply()
        if callable(reply):
            reply = reply(body)
        spec: dict[str, Any] = {"content": reply} if isinstance(reply, str) else dict(reply)
        delay = float(spec.get("delay", 0))
        headers = {str(k): str(v) for k, v in (spec.get("headers") or {}).items()}
        if "raw" in spec:
            raw = spec["raw"]
            data = raw if isinstance(raw, bytes) else str(raw).encode()
            return _Answer(int(spec.get("status", 200)), headers, {}, raw=data), delay
        if "status" in spec and int(spec["status"]) >= 400:
            status = int(spec["status"])
            error = spec.get("body") or {
                "error": {
                    "message": f"scripted error {status}",
                    "type": "rate_limit_error" if status == 429 else "server_error",
                    "code": str(status),
                }
            }
            return _Answer(status, headers, error), delay
        n = next(self._ids)
        content = spec.get("content")
        calls = _tool_calls(spec.get("tool_calls") or [], itertools.count(n * 100))
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if calls:
            message["tool_calls"] = calls
        finish = spec.get("finish_reason") or ("tool_calls" if calls else "stop")
        usage = dict(spec.get("usage") or {})
        usage.setdefault(
            "prompt_tokens",
            sum(
                _words(m.get("content")) for m in body.get("messages") or () if isinstance(m, dict)
            ),
        )
        usage.setdefault("completion_tokens", _words(content))
        usage.setdefault("total_tokens", usage["prompt_tokens"] + usage["completion_tokens"])
        model = spec.get("model") or self.model or body.get("model") or "scripted"
        completion = {
            "id": f"chatcmpl-scripted-{n}",
            "object": "chat.completion",
            "created": _CREATED + n,
            "model": model,
            "choices": [
                {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
            ],
            "usage": usage,
            "system_fingerprint": "scripted",
        }
        if not body.get("stream"):
            return _Answer(200, headers, completion), delay
        return _Answer(200, headers, completion, self._chunks(completion, body)), delay

    @staticmethod
    def _chunks(completion: dict[str, Any], body: dict[str, Any]) -> list[dict[str, Any]]:
        base = {k: completion[k] for k in ("id", "created", "model", "system_fingerprint")}
        base["object"] = "chat.completion.chunk"
        choice = completion["choices"][0]
        message = choice["message"]
        delta: dict[str, Any] = {"role": "assistant", "content": message["content"]}
        if "tool_calls" in message:
            delta["tool_calls"] = [{"index": i, **c} for i, c in enumerate(message["tool_calls"])]
        chunks = [
            {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
            {
                **base,
                "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}],
            },
        ]
        if (body.get("stream_options") or {}).get("include_usage"):
            chunks.append({**base, "choices": [], "usage": completion["usage"]})
        return chunks

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.0: one request per connection, so close() never waits on a keep-alive.
            protocol_version = "HTTP/1.0"
            timeout = 30  # seconds a silent client may hold a handler thread

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

            def _send_json(self, status: int, body: Any, headers: dict[str, str]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _record(self, body: Any) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                with scripted._lock:
                    scripted.requests.append(
                        ScriptedRequest(self.command, self.path, headers, body)
                    )

            def do_GET(self) -> None:
                self._record(None)
                if self.path.rstrip("/") in ("/v1/models", "/models"):
                    name = scripted.model or "scripted"
                    self._send_json(
                        200, {"object": "list", "data": [{"id": name, "object": "model"}]}, {}
                    )
                    return
                self._not_found()

            def _not_found(self) -> None:
                msg = f"scripted model serves POST {_CHAT_PATHS[0]}, not {self.command} {self.path}"
                self._send_json(404, {"error": {"message": msg, "type": "not_found"}}, {})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    body = raw.decode("utf-8", "replace")
                self._record(body)
                if self.path.split("?")[0] not in _CHAT_PATHS:
                    self._not_found()
                    return
                if not isinstance(body, dict):
                    self._send_json(
                        400,
                        {"error": {"message": "body must be a JSON object", "type": "invalid"}},
                        {},
                    )
                    return
                with scripted._lock:
                    scripted._in_flight += 1
                    scripted.max_in_flight = max(scripted.max_in_flight, scripted._in_flight)
                try:
                    answer, delay = scripted._answer(body)
                    if delay:
                        time.sleep(delay)
                    self._reply(answer)
                finally:
                    with scripted._lock:
                        scripted._in_flight -= 1

            def _reply(self, answer: _Answer) -> None:
                if answer.raw is not None:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer.raw)))
                    for k, v in answer.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(answer.raw)
                    return
                if answer.stream is None:
                    self._send_json(answer.status, answer.body, answer.headers)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                for k, v in answer.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                for chunk in answer.stream:
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")

        return Handler


__all__ = ["Reply", "ScriptedLLM", "ScriptedRequest"]
