"""`metasearch sim serve` (the simulated LLM as an OpenAI-compatible server) and `metasearch sim profiles`."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from metasearch.llm.simulated import list_profiles, load_profile


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="The simulated LLM: serve it over HTTP, list its profiles.", no_args_is_help=True)

    @group.command("serve")
    def serve_cmd(
        profile: str = typer.Option("default", "--profile", "-p", help="profile name (see `sim profiles`)"),
        port: int = typer.Option(8000, "--port", help="TCP port (0 = any free port)"),
        host: str = typer.Option("127.0.0.1", "--host", help="interface to bind"),
        latency_ms: float | None = typer.Option(None, "--latency-ms", help="fixed delay per reply instead of "
                                                "the profile's latency model (0 = none)"),
        suite: list[str] = typer.Option(["builtin:arith"], "--suite", "-s", help="task source the server knows "
                                        "(repeatable): builtin:arith, gym:NAME, jsonl:PATH, humaneval"),
        suite_size: int = typer.Option(1000, "--suite-size", help="tasks generated for procedural (gym) sources"),
        suite_seed: int = typer.Option(0, "--suite-seed", help="seed for procedural (gym) sources"),
    ) -> None:
        """Serve /v1/chat/completions and /v1/models until interrupted; prints the base URL."""
        from metasearch.llm.server import serve

        load_profile(profile)  # a missing profile is a one-line error before anything starts

        def ready(url: str) -> None:
            print(f"simulated LLM '{profile}' serving at {url}", flush=True)

        try:
            serve(profile, host=host, port=port, latency_ms=latency_ms, suites=suite, on_ready=ready,
                  suite_size=suite_size, suite_seed=suite_seed)
        except KeyboardInterrupt:
            pass

    @group.command("profiles")
    def profiles_cmd() -> None:
        """List the shipped simulator profiles."""
        table = Table("profile", "ability", "bug rate", "latency", "description")
        for name in list_profiles():
            p = load_profile(name)
            lat = f"{p.latency.get('base_ms', 0):.0f} ms + {p.latency.get('per_token_ms', 0):g} ms/token"
            table.add_row(name, f"{p.ability:+.2f}", f"{p.bug_rate:.2f}", lat, p.description)
        Console().print(table)

    app.add_typer(group, name="sim")
