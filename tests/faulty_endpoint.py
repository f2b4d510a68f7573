"""A fault-injecting OpenAI-compatible server for tests (aiohttp on 127.0.0.1, in a background thread).

It answers `/v1/chat/completions` and `/v1/models` from a tiny canned backend (deterministic texts derived from
the request) or forwards to a given upstream base URL, and injects faults either from a script (the next
requests get exactly these faults, in order) or at random with given rates (seeded):

    "400"           a bad request (not retryable)
    "429"           status 429 with `Retry-After: <retry_after>`
    "500", "503"    server errors
    "drop"          the connection is closed without a reply
    "slow"          the reply comes after `slow_s` seconds (past the client's timeout)
    "truncated"     a 200 whose JSON body is cut in half
    "nonjson"       a 200 with an HTML body
    "wrong_choices" one choice fewer than asked (n > 1), or two when one was asked
    "empty_choices" `"choices": []`
    "none_content"  a choice whose message content is null

Usage:
    with FaultyEndpoint(script=["500", "429"]) as ep:
        LM(EndpointConfig(base_url=ep.base_url, model="m")).ask("hi")
        ep.stats.requests  # 3
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Callable

from aiohttp import ClientSession, ClientTimeout, web

FAULTS = ("400", "429", "500", "503", "drop", "slow", "truncated", "nonjson", "wrong_choices", "empty_choices",
          "none_content")


@dataclass
class Stats:
    """What the server saw (updated on the server's thread; read them after the calls finished)."""

    requests: int = 0
    chat_requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    faults: Counter = field(default_factory=Counter)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    auth_headers: list[str] = field(default_factory=list)


def canned_text(body: dict[str, Any], index: int) -> str:
    """A deterministic reply: depends on messages, seed, temperature and the choice index (at temperature > 0)."""
    messages = body.get("messages") or []
    last = str(messages[-1].get("content", "")) if messages else ""
    temperature = float(body.get("temperature") or 0.0)
    salt = [body.get("seed"), temperature, index] if temperature > 0 else [None, 0.0, 0]
    digest = hashlib.sha256(json.dumps([messages, salt], sort_keys=True).encode()).hexdigest()[:10]
    if (body.get("response_format") or {}).get("type") == "json_object":
        return json.dumps({"thinking": f"canned {digest}", "answer": digest})
    return f"canned reply {digest} to: {last[:40]}"


class FaultyEndpoint:
    """The server; a context manager. `base_url` is `http://127.0.0.1:PORT/v1`."""

    def __init__(self, *, rates: dict[str, float] | None = None, script: list[str] | None = None,
                 upstream: str | None = None, seed: int = 0, retry_after: float = 0.2, slow_s: float = 2.0,
                 latency_s: float = 0.0, replies: list[str] | None = None, html: bool = False,
                 api_key: str | None = None, usage: bool = True, single_choice: bool = False,
                 responder: Callable[[dict[str, Any], int], str] | None = None) -> None:
        unknown = set(rates or {}) | set(script or ())
        unknown -= set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults: {sorted(unknown)}")
        self.rates = dict(rates or {})
        self.script: deque[str] = deque(script or ())
        self.upstream = upstream.rstrip("/") if upstream else None
        self.retry_after = retry_after
        self.slow_s = slow_s
        self.latency_s = latency_s
        self.replies: deque[str] = deque(replies or ())
        self.html = html
        self.api_key = api_key
        self.usage = usage
        self.single_choice = single_choice  # one choice whatever `n` says, as llama.cpp's server answers
        self.responder = responder or canned_text
        self.stats = Stats()
        self._rng = random.Random(seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._session: ClientSession | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> "FaultyEndpoint":
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start_site())
            except BaseException as err:  # report to the starting thread
                errors.append(err)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._stop_site())
            loop.close()

        self._thread = threading.Thread(target=run, name="faulty-endpoint", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    async def _start_site(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_route("*", "/{tail:.*}", self._other)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop_site(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> "FaultyEndpoint":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- handlers -----------------------------------------------------------------------------------------------

    def _html(self) -> web.Response:
        return web.Response(text="<!DOCTYPE html><html><body>It works!</body></html>", content_type="text/html")

    def _unauthorized(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        self.stats.auth_headers.append(header)
        if self.api_key is not None and header != f"Bearer {self.api_key}":
            return web.json_response({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                                "code": "invalid_api_key"}}, status=401)
        return None

    async def _other(self, request: web.Request) -> web.Response:
        return self._html() if self.html else web.json_response({"error": {"message": "not found"}}, status=404)

    async def _models(self, request: web.Request) -> web.Response:
        self.stats.requests += 1
        if self.html:
            return self._html()
        denied = self._unauthorized(request)
        if denied is not None:
            return denied
        return web.json_response({"object": "list", "data": [{"id": "canned", "object": "model", "created": 0,
                                                             "owned_by": "tests"}]})

    def _next_fault(self) -> str | None:
        if self.script:
            return self.script.popleft()
        for name, rate in self.rates.items():
            if self._rng.random() < rate:
                return name
        return None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        stats = self.stats
        stats.requests += 1
        stats.chat_requests += 1
        stats.times.append(time.monotonic())
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            if self.html:
                return self._html()
            denied = self._unauthorized(request)
            if denied is not None:
                return denied
            body = await request.json()
            stats.bodies.append(body)
            fault = self._next_fault()
            if fault:
                stats.faults[fault] += 1
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            return await self._reply(request, body, fault)
        finally:
            stats.in_flight -= 1

    async def _reply(self, request: web.Request, body: dict[str, Any], fault: str | None) -> web.StreamResponse:
        if fault in ("400", "429", "500", "503"):
            headers = {"Retry-After": f"{self.retry_after:g}"} if fault == "429" else {}
            return web.json_response({"error": {"message": f"injected {fault}", "type": "server_error"}},
                                     status=int(fault), headers=headers)
        if fault == "drop":
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError  # nothing more to write on a dead connection
        if fault == "slow":
            await asyncio.sleep(self.slow_s)
        if fault == "nonjson":
            return self._html()
        payload = await self._completion(body)
        n = int(body.get("n") or 1)
        if fault == "wrong_choices":
            payload["choices"] = payload["choices"][: n - 1] if n > 1 else payload["choices"] * 2
        elif fault == "empty_choices":
            payload["choices"] = []
        elif fault == "none_content":
            payload["choices"][0]["message"]["content"] = None
        text = json.dumps(payload)
        if fault == "truncated":
            text = text[: len(text) // 2]
        return web.Response(text=text, content_type="application/json")

    async def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.upstream:
            if self._session is None:
                self._session = ClientSession(timeout=ClientTimeout(total=120))
            async with self._session.post(f"{self.upstream}/chat/completions", json=body) as resp:
                return await resp.json(content_type=None)
        n = 1 if self.single_choice else int(body.get("n") or 1)
        texts = [self.replies.popleft() if self.replies else self.responder(body, i) for i in range(n)]
        prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages") or [])
        payload: dict[str, Any] = {
            "id": "chatcmpl-canned", "object": "chat.completion", "created": 0, "model": body.get("model", "canned"),
            "choices": [{"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
                        for i, t in enumerate(texts)],
        }
        if self.usage:
            payload["usage"] = {"prompt_tokens": 10 + prompt_chars // 4,
                                "completion_tokens": sum(5 + len(t) // 4 for t in texts),
                                "total_tokens": 0}
            payload["usage"]["total_tokens"] = payload["usage"]["prompt_tokens"] + payload["usage"]["completion_tokens"]
        return payload
