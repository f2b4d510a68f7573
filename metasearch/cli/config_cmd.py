"""`metasearch config check FILE` and `metasearch config example`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from metasearch.config import EXAMPLE_CONFIG, load_config


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Validate or print search configs.", no_args_is_help=True)

    @group.command("check")
    def check(file: Path = typer.Argument(..., help="TOML config to validate")) -> None:
        """Validate FILE; prints a one-line error naming the field and exits 2 when it is wrong."""
        cfg = load_config(file)
        Console().print(f"[green]ok[/green] {file}: run '{cfg.name}', strategy {cfg.strategy.name}, "
                        f"suite {cfg.suite.source}, endpoint {cfg.endpoint.base_url}")

    @group.command("example")
    def example() -> None:
        """Print a commented example config with every default."""
        print(EXAMPLE_CONFIG, end="")

    app.add_typer(group, name="config")
