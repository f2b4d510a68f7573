"""The simulated LLM as an OpenAI-compatible HTTP server, and as an in-process httpx transport.

`serve` / `start_in_thread` run an aiohttp app with `/v1/chat/completions`, `/v1/models` and
`/v1/sim/register`; each reply waits the profile's latency model with `asyncio.sleep` (never blocking the loop),
so hundreds of requests can be in flight. `SimTransport` answers the same routes without a socket so the real
`openai` client reaches an in-process SimulatedLLM (`sim://PROFILE` endpoints): no code path differs.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

import httpx
from aiohttp import web

from metasearch.llm.simulated import SimRequestError, SimulatedLLM, list_profiles
from metasearch.tasks.base import Task

DEFAULT_SUITES = ("builtin:arith",)


# ----------------------------------------------------------------------------------------------- shared routing

def _error(status: int, message: str, param: str | None = None, kind: str = "invalid_request_error") -> tuple[int, dict]:
    return status, {"error": {"message": message, "type": kind, "param": param, "code": None}}


def _models(sim: SimulatedLLM) -> dict[str, Any]:
    names = [sim.profile.model] + [f"sim-{p}" for p in list_profiles() if f"sim-{p}" != sim.profile.model]
    return {"object": "list", "data": [{"id": n, "object": "model", "created": 1_700_000_000,
                                        "owned_by": "metasearch-sim"} for n in names]}


def handle(sim: SimulatedLLM, method: str, path: str, raw: bytes) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) for one API request: the one routing table shared by server and transport."""
    route = path.rstrip("/")
    if method == "GET" and route.endswith("/models"):
        return 200, _models(sim)
    if method != "POST" or not route.endswith(("/chat/completions", "/sim/register")):
        return _error(404, f"no route for {method} {path}", kind="not_found_error")
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        return _error(400, "request body is not valid JSON")
    if route.endswith("/sim/register"):
        tasks = body.get("tasks") if isinstance(body, dict) else None
        if not isinstance(tasks, list):
            return _error(400, "'tasks' must be an array of task objects", "tasks")
        try:
            added = sim.register(Task.from_dict(t) for t in tasks)
        except (KeyError, TypeError, AttributeError) as err:
            return _error(400, f"bad task object: {err}", "tasks")
        return 200, {"registered": added, "known": len(sim.tasks)}
    try:
        return 200, sim.complete(body)
    except SimRequestError as err:
        return _error(400, str(err), err.param)


# ----------------------------------------------------------------------------------------------- in-process

class SimTransport(httpx.BaseTransport):
    """An httpx transport that answers OpenAI API calls from a SimulatedLLM, without a socket.

    Works for `httpx.Client(transport=...)` and for the `httpx2` client the `openai` 3.x SDK uses: the reply is
    built with the same library as the request.
    """

    def __init__(self, sim: SimulatedLLM, *, sleep: bool = False) -> None:
        self.sim = sim
        self.sleep = sleep

    def handle_request(self, request: Any) -> Any:
        raw = request.read() if hasattr(request, "read") else request.content
        status, body = handle(self.sim, request.method, request.url.path, raw)
        if self.sleep and status == 200 and "choices" in body:
            threading.Event().wait(self.sim.latency_s(json.loads(raw), body))
        lib = httpx
        if type(request).__module__.split(".")[0] != "httpx":
            import importlib

            lib = importlib.import_module(type(request).__module__.split(".")[0])
        return lib.Response(status, json=body, request=request)


# ----------------------------------------------------------------------------------------------- HTTP server

def make_app(sim: SimulatedLLM, latency_ms: float | None = None) -> web.Application:
    """The aiohttp app. `latency_ms` fixes every reply's delay (0 = none) instead of the profile's model."""

    async def endpoint(request: web.Request) -> web.Response:
        raw = await request.read()
        status, body = handle(sim, request.method, request.path, raw)
        if status == 200 and "choices" in body:
            delay = latency_ms / 1000.0 if latency_ms is not None else sim.latency_s(json.loads(raw), body)
            if delay > 0:
                await asyncio.sleep(delay)
        return web.json_response(body, status=status)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", endpoint)
    return app


def build_sim(profile: str, suites: Iterable[str] = DEFAULT_SUITES, tasks: Iterable[Task] = (), *,
              suite_size: int = 1000, suite_seed: int = 0) -> SimulatedLLM:
    """A SimulatedLLM knowing every task of the given suite sources (e.g. builtin:arith, gym:basic_arithmetic).

    Procedural sources (gym) generate `suite_size` tasks with `suite_seed`: a search must use the same size and
    seed to ask about the same tasks, or register its tasks with POST /v1/sim/register.
    """
    from metasearch.tasks.registry import source_tasks

    sim = SimulatedLLM(profile, tasks)
    for source in suites:
        sim.register(source_tasks(source, size=suite_size, seed=suite_seed).tasks)
    return sim


async def _start(sim: SimulatedLLM, host: str, port: int, latency_ms: float | None) -> tuple[web.AppRunner, int]:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))  # bind ourselves so port 0 gives a known free port
    runner = web.AppRunner(make_app(sim, latency_ms), access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock, backlog=2048).start()
    return runner, sock.getsockname()[1]


def serve(profile: str = "default", host: str = "127.0.0.1", port: int = 0, latency_ms: float | None = None,
          suites: Iterable[str] = DEFAULT_SUITES, on_ready: Callable[[str], None] | None = None, *,
          suite_size: int = 1000, suite_seed: int = 0) -> None:
    """Serve until interrupted; `on_ready(base_url)` is called once the port is bound."""
    sim = build_sim(profile, suites, suite_size=suite_size, suite_seed=suite_seed)

    async def main() -> None:
        runner, bound = await _start(sim, host, port, latency_ms)
        if on_ready:
            on_ready(f"http://{host}:{bound}/v1")
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())


def start_in_thread(profile: str | SimulatedLLM = "default", host: str = "127.0.0.1", port: int = 0,
                    latency_ms: float | None = None, suites: Iterable[str] = (),
                    tasks: Iterable[Task] = ()) -> tuple[str, Callable[[], None]]:
    """Run the server on a background thread (tests, benchmarks): returns (base_url, stop)."""
    sim = profile if isinstance(profile, SimulatedLLM) else build_sim(profile, suites, tasks)
    loop = asyncio.new_event_loop()
    ready: dict[str, Any] = {}
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            ready["runner"], ready["port"] = loop.run_until_complete(_start(sim, host, port, latency_ms))
        except BaseException as err:  # surfaced to the caller below
            ready["error"] = err
            started.set()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(ready["runner"].cleanup())
        loop.close()

    thread = threading.Thread(target=run, name="sim-server", daemon=True)
    thread.start()
    started.wait(30)
    if "error" in ready:
        raise ready["error"]

    def stop() -> None:
        if thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)

    return f"http://{host}:{ready['port']}/v1", stop
