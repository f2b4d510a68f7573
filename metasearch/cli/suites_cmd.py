"""`metasearch suites ls` and `metasearch suites show NAME`: what task suites exist and what their tasks look like."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from metasearch.tasks.registry import list_suites, source_tasks


def _show(name: str, n: int, answers: bool, as_json: bool, seed: int) -> None:
    found = source_tasks(name, size=max(n, 1), seed=seed)
    examples = found.tasks[:n]
    size = None if found.source.startswith("gym:") else len(found.tasks)  # gym: generated on demand
    if as_json:
        rows = [t.to_dict() if answers else t.public() for t in examples]
        print(json.dumps({"name": found.source, "description": found.description, "size": size,
                          "examples": rows}, indent=2))
        return
    console = Console()
    console.print(f"[bold]{found.source}[/bold] ({'generated' if size is None else size} tasks)")
    console.print(found.description, markup=False)
    for task in examples:
        console.print(f"\n[cyan]{task.id}[/cyan] [dim]({task.kind})[/dim]")
        console.print(task.question, markup=False, highlight=False)
        if answers:
            console.print("[green]answer:[/green] ", end="")
            console.print(task.answer, markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="List task suites and show example tasks.", no_args_is_help=True)

    @group.command("ls")
    def ls(as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
        """List the built-in suites and the source kinds a config can name."""
        rows = list_suites()
        if as_json:
            print(json.dumps(rows, indent=2))
            return
        table = Table("name", "kinds", "size", "description")
        for row in rows:
            size = "generated" if row["size"] is None else str(row["size"])
            first = row["description"].split(": ", 1)[-1]
            table.add_row(row["name"], ",".join(row["kinds"]), size, first)
        Console().print(table)

    @group.command("show")
    def show(name: str = typer.Argument(..., help="suite source, e.g. builtin:arith, gym:leg_counting, "
                                                   "jsonl:tasks.jsonl, humaneval"),
             n: int = typer.Option(5, "--n", min=0, help="how many example tasks"),
             answers: bool = typer.Option(False, "--answers", help="also show the gold answers"),
             as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
             seed: int = typer.Option(0, "--seed", help="generator seed (gym sources)")) -> None:
        """Describe suite NAME and print a few of its tasks (gold answers hidden unless --answers)."""
        _show(name, n, answers, as_json, seed)

    app.add_typer(group, name="suites")
