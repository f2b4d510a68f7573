"""`metasearch tune ID`: Optuna multi-objective tuning of a candidate's numeric parameters (score vs cost)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table

DEFAULT_ARCHIVE = "runs/metasearch.db"


def register(app: typer.Typer) -> None:
    @app.command("tune")
    def tune_cmd(candidate: int = typer.Argument(..., metavar="ID", help="Candidate id."),
                 trials: int = typer.Option(20, "--trials", min=1, help="Optuna trials to run (each one evaluation)."),
                 archive: str = typer.Option(DEFAULT_ARCHIVE, "--archive", envvar="METASEARCH_ARCHIVE",
                                             show_envvar=True, help="Archive file (SQLite)."),
                 tasks: Optional[int] = typer.Option(None, "--tasks", min=1,
                                                     help="Evaluate on the first N validation tasks (default all)."),
                 seed: Optional[int] = typer.Option(None, "--seed", help="Sampler seed (default: the run's seed)."),
                 ray: Optional[bool] = typer.Option(None, "--ray/--no-ray",
                                                    help="Override the run's evaluator.use_ray."),
                 plot: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG of score vs cost here."),
                 as_json: bool = typer.Option(False, "--json", help="Print JSON only.")) -> None:
        """Tune temperature, samples, agents and rounds of a workflow candidate for score and cost together;
        prints the Pareto front (the original candidate is always shown)."""
        from metasearch.tuning import plot_pareto, tune

        console = Console(stderr=as_json)
        if not Path(archive).is_file():
            from metasearch.errors import ArchiveError

            raise ArchiveError(f"{archive}: archive not found")

        def progress(p) -> None:  # type: ignore[no-untyped-def]
            if not as_json:
                console.print(f"  trial {p.trial}: {p.label} -> score {p.score:.3f}, "
                              f"${p.cost_per_task:.6f}/task", highlight=False)

        result = tune(archive, candidate, trials=trials, tasks=tasks, seed=seed, use_ray=ray, observer=progress)
        if plot is not None:
            plot_pareto(result, plot)
        if as_json:
            print(json.dumps(result.to_dict(), indent=2))
            return
        table = Table(title=f"candidate {candidate}: Pareto front of score vs cost ({result.tasks} validation tasks)",
                      box=box.SIMPLE_HEAD, header_style="bold")
        for header, justify in (("id", "right"), ("parameters", "left"), ("score ± CI", "right"),
                                ("$/task", "right"), ("tokens/task", "right"), ("", "left")):
            table.add_column(header, justify=justify, min_width=28 if header == "parameters" else None)
        ordered = sorted(result.points, key=lambda p: (not p.on_front, -p.score, p.cost_per_task))
        for p in ordered:
            if not (p.on_front or p.original):
                continue
            half = (p.ci_high - p.ci_low) / 2
            mark = ("front" if p.on_front else "dominated") + (" (original)" if p.original else "")
            style = "bold" if p.original else None
            table.add_row(str(p.candidate_id), p.label.removeprefix("original: "), f"{p.score:.3f} ±{half:.3f}",
                          f"{p.cost_per_task:.6f}", f"{p.tokens_per_task:.0f}", mark, style=style)
        console.print(table)
        dominated = sum(1 for p in result.points if not p.on_front and not p.original)
        console.print(f"{len(result.points)} settings evaluated, {len(result.front)} on the front, {dominated} other "
                      f"dominated ones not shown; study '{result.study_name}' in {result.storage}", highlight=False)
        if plot is not None:
            console.print(f"plot written to {plot}")
