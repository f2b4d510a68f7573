"""`metasearch run CONFIG` and `metasearch resume RUN`: start or continue a search with a live view."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from metasearch.config import load_config


def _fmt(score: float | None, low: float | None, high: float | None) -> str:
    if score is None:
        return "-"
    return f"{score:.3f} [{low:.3f}, {high:.3f}]"


def print_summary(summary: dict[str, Any], console: Console) -> None:
    """The run summary for people: seeds vs winner on the held-out test split, spend, value-model figures."""
    table = Table(title=f"run {summary['run_id']}: {summary.get('stop_reason', '')}")
    for col in ("", "candidate", "val score [95% CI]", "test score [95% CI]", "tokens", "cost $"):
        table.add_column(col)
    for label in ("best_seed", "winner"):
        c = summary.get(label)
        if c:
            table.add_row(label.replace("_", " "), f"#{c['id']} {c['name']}", _fmt(c["score"], c["ci_low"], c["ci_high"]),
                          _fmt(c["test_score"], c["test_ci_low"], c["test_ci_high"]), f"{c['tokens'] or 0:,}",
                          f"{c['cost'] or 0:.4f}")
    console.print(table)
    if "test_improvement" in summary:
        verdict = "confidence intervals disjoint" if summary["cis_disjoint"] else "confidence intervals overlap"
        console.print(f"test improvement over the best seed: {summary['test_improvement']:+.3f} ({verdict})")
    spent = summary.get("spent", {})
    console.print(f"candidates: {summary.get('counts')}  spent: {spent.get('prompt_tokens', 0) + spent.get('completion_tokens', 0):,} "
                  f"tokens, ${spent.get('cost', 0):.4f}, {summary.get('duration_s')} s")
    report = summary.get("strategy_report") or {}
    if "spearman_heldout" in report:
        console.print(f"value model held-out Spearman: {report['spearman_heldout']}")


def _execute(search: Any, quiet: bool, as_json: bool) -> None:
    from metasearch.cli.live import LiveView

    console = Console()
    with LiveView(quiet=quiet or as_json) as view:
        search.emit = view
        summary = search.run()
    if as_json:
        print(json.dumps(summary, sort_keys=True, default=str))
    elif not quiet:
        print_summary(summary, console)


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(config: Path = typer.Argument(..., help="search config (TOML); see `metasearch config example`"),
            address: Optional[str] = typer.Option(None, help="Ray cluster address (e.g. auto); default: local Ray"),
            archive: Optional[str] = typer.Option(None, help="override the config's archive path"),
            iterations: Optional[int] = typer.Option(None, help="override budget.iterations"),
            endpoint: Optional[str] = typer.Option(None, help="override endpoint.base_url (e.g. http://127.0.0.1:8000/v1)"),
            model: Optional[str] = typer.Option(None, help="override endpoint.model"),
            quiet: bool = typer.Option(False, "--quiet", "-q", help="no live view, no summary"),
            as_json: bool = typer.Option(False, "--json", help="print the summary as JSON only")) -> None:
        """Run a search: seeds, then proposals evaluated in the sandbox, then the top-k on the test split."""
        from metasearch.search import Search

        cfg = load_config(config)
        updates: dict[str, Any] = {}
        if archive:
            updates["archive"] = archive
        if iterations is not None:
            cfg.budget.iterations = iterations
        if endpoint:
            cfg.endpoint.base_url = endpoint
        if model:
            cfg.endpoint.model = model
        if updates:
            cfg = cfg.model_copy(update=updates)
        Path(cfg.archive).parent.mkdir(parents=True, exist_ok=True)
        _execute(Search(cfg, address=address), quiet, as_json)

    @app.command("resume")
    def resume(run: str = typer.Argument(..., help="run id or name"),
               archive: str = typer.Option(os.environ.get("METASEARCH_ARCHIVE", "runs/metasearch.db"), help="archive file"),
               iterations: Optional[int] = typer.Option(None, help="raise budget.iterations"),
               tokens: Optional[int] = typer.Option(None, help="raise budget.tokens"),
               dollars: Optional[float] = typer.Option(None, help="raise budget.dollars"),
               address: Optional[str] = typer.Option(None, help="Ray cluster address"),
               quiet: bool = typer.Option(False, "--quiet", "-q"),
               as_json: bool = typer.Option(False, "--json")) -> None:
        """Continue an interrupted or budget-stopped run: finished evaluations are kept, none is repeated."""
        from metasearch.search import Search

        overrides: dict[str, Any] = {}
        for key, value in (("iterations", iterations), ("tokens", tokens), ("dollars", dollars)):
            if value is not None:
                overrides[f"budget.{key}"] = value
        run_ref: int | str = int(run) if run.isdigit() else run
        _execute(Search.for_resume(archive, run_ref, overrides=overrides, address=address), quiet, as_json)
