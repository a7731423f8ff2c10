"""HTTP client benchmark for LLM calls: N chat requests at concurrency C.

A fast OpenAI-compatible server (aiohttp.web, in a subprocess so its CPU is not counted
against the client) answers every ``POST /v1/chat/completions`` after a fixed delay. The
ideal wall time is ``ceil(N / C) * delay``; each client is timed from its first request
to its last answer, with a fresh event loop and connection pool, and its CPU time is the
client process's own (``time.process_time``).

Clients compared:

* **httpx**: ``httpx.AsyncClient`` with a pool of C connections, raw POST + ``json()``;
* **aiohttp**: ``aiohttp.ClientSession`` with a ``TCPConnector(limit=C)``, the same;
* **assay**: :class:`assay.llm.ChatClient` (whatever transport it uses), which adds
  retries, rate limiting, an OpenTelemetry span per call (a no-op without a provider)
  and the :class:`~assay.model.Output` conversion.

Run::

    . .venv/bin/activate
    python benchmarks/llm_client.py                       # 1,000 requests, C=100, 200 ms
    python benchmarks/llm_client.py --runs 3              # median of three runs per client
    python benchmarks/llm_client.py -n 2000 -c 200 --delay 0.1 --clients aiohttp,assay

Target (printed next to the figures): wall time <= 1.2x ideal for the assay client.
The script exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

TARGET_RATIO = 1.2

_BODY = {
    "model": "bench-model",
    "messages": [{"role": "user", "content": "Say OK."}],
    "temperature": 0,
}


# --------------------------------------------------------------------------- server


#: What the server answers by default: "OK" from bench-model, 3 tokens in, 1 out.
DEFAULT_REPLY = {"content": "OK", "model": "bench-model", "usage": [3, 1]}


def serve(port: int, delay: float, reply_spec: dict[str, Any] | None = None) -> None:
    """Run the fixed-delay chat server until killed; prints its port on stdout.
    ``reply_spec`` sets the answer's content, model and [input, output] token usage."""
    from aiohttp import web

    spec = {**DEFAULT_REPLY, **(reply_spec or {})}
    tokens_in, tokens_out = spec["usage"]
    reply = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": spec["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": spec["content"]},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": tokens_in,
            "completion_tokens": tokens_out,
            "total_tokens": tokens_in + tokens_out,
        },
    }
    payload = json.dumps(reply).encode()

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(delay)
        return web.Response(body=payload, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        await web.SockSite(runner, sock, backlog=4096).start()
        print(sock.getsockname()[1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def start_server(
    delay: float, reply_spec: dict[str, Any] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """Spawn the server subprocess; returns it and its base URL."""
    proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            "--delay",
            str(delay),
            "--reply",
            json.dumps(reply_spec or {}),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline().strip())
    return proc, f"http://127.0.0.1:{port}/v1"


# --------------------------------------------------------------------------- clients

Call = Callable[[], Awaitable[Any]]


async def _drive(n: int, concurrency: int, call: Call) -> None:
    # C workers pulling from a shared counter: at most C requests in flight, no task per
    # request waiting on a semaphore.
    remaining = iter(range(n))

    async def worker() -> None:
        for _ in remaining:
            await call()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def run_httpx(base_url: str, n: int, concurrency: int) -> None:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:

        async def call() -> Any:
            r = await client.post("/chat/completions", json=_BODY)
            r.raise_for_status()
            return r.json()

        await _drive(n, concurrency, call)


async def run_aiohttp(base_url: str, n: int, concurrency: int) -> None:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        url = base_url + "/chat/completions"

        async def call() -> Any:
            async with session.post(url, json=_BODY) as r:
                r.raise_for_status()
                return await r.json()

        await _drive(n, concurrency, call)


async def run_assay(base_url: str, n: int, concurrency: int) -> None:
    from assay.llm import ChatClient, Endpoint

    endpoint = Endpoint(base_url=base_url, model="bench-model", max_connections=concurrency)
    async with ChatClient(endpoint) as client:
        messages = _BODY["messages"]

        async def call() -> Any:
            return await client.complete(messages)  # type: ignore[arg-type]

        await _drive(n, concurrency, call)


CLIENTS: dict[str, Callable[[str, int, int], Awaitable[None]]] = {
    "httpx": run_httpx,
    "aiohttp": run_aiohttp,
    "assay": run_assay,
}


@dataclass
class Result:
    client: str
    wall_s: float
    cpu_s: float


def measure(name: str, base_url: str, n: int, concurrency: int) -> Result:
    """Time one client over N requests in a fresh event loop."""
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    asyncio.run(CLIENTS[name](base_url, n, concurrency))
    return Result(name, time.perf_counter() - t0, time.process_time() - cpu0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("-n", "--requests", type=int, default=1000)
    p.add_argument("-c", "--concurrency", type=int, default=100)
    p.add_argument("--delay", type=float, default=0.2, help="server delay per answer (s)")
    p.add_argument("--runs", type=int, default=1, help="runs per client; the median is shown")
    p.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated subset")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--reply", default="{}", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        serve(args.port, args.delay, json.loads(args.reply))
        return 0
    names = [c.strip() for c in args.clients.split(",") if c.strip()]
    unknown = sorted(set(names) - set(CLIENTS))
    if unknown:
        p.error(f"unknown client(s) {unknown}; choose from {sorted(CLIENTS)}")
    ideal = math.ceil(args.requests / args.concurrency) * args.delay
    proc, base_url = start_server(args.delay)
    try:
        results: dict[str, list[Result]] = {name: [] for name in names}
        for _ in range(args.runs):
            for name in names:  # interleaved, so machine noise hits every client alike
                results[name].append(measure(name, base_url, args.requests, args.concurrency))
    finally:
        proc.terminate()
        proc.wait(10)
    print(
        f"{args.requests} requests, concurrency {args.concurrency}, server delay "
        f"{args.delay * 1000:.0f} ms, ideal {ideal:.2f} s, median of {args.runs} run(s)"
    )
    print(f"{'client':<10} {'wall s':>8} {'x ideal':>8} {'client CPU s':>13}   runs (wall s)")
    for name, rs in results.items():
        wall = statistics.median(r.wall_s for r in rs)
        cpu = statistics.median(r.cpu_s for r in rs)
        runs = ", ".join(f"{r.wall_s:.2f}" for r in rs)
        print(f"{name:<10} {wall:>8.2f} {wall / ideal:>8.2f} {cpu:>13.2f}   {runs}")
    print(f"target: <= {TARGET_RATIO}x ideal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
