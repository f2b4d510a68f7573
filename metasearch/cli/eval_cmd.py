"""`metasearch eval AGENT.py --suite S`: evaluate one agent file in the sandbox and print its score."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from metasearch.config import EvaluatorConfig, SearchConfig, SuiteConfig, load_config
from metasearch.errors import UserError


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_agent(agent: Path = typer.Argument(..., help="candidate agent file (the candidate contract)"),
                   suite: str = typer.Option("builtin:arith", help="suite source, e.g. builtin:arith, gym:leg_counting"),
                   n: int = typer.Option(50, help="number of tasks"),
                   split: str = typer.Option("val", help="val or test"),
                   endpoint: Optional[str] = typer.Option(None, help="OpenAI-compatible base URL (default: simulated)"),
                   model: Optional[str] = typer.Option(None, help="model name at the endpoint"),
                   config: Optional[Path] = typer.Option(None, help="take endpoint/evaluator settings from a config"),
                   use_ray: bool = typer.Option(False, "--ray/--no-ray", help="evaluate on Ray actors"),
                   seed: int = typer.Option(0, help="seed of the LLM calls and the split"),
                   as_json: bool = typer.Option(False, "--json", help="print JSON only")) -> None:
        """Score one agent file: mean ± 95% CI, tokens, cost, failures by reason."""
        from metasearch.evaluation import Evaluator
        from metasearch.sandbox import check_policy
        from metasearch.search import candidate_key
        from metasearch.tasks import load_suite

        if not agent.is_file():
            raise UserError(f"{agent}: agent file not found")
        code = agent.read_text(encoding="utf-8")
        cfg = load_config(config) if config else SearchConfig()
        cfg = cfg.model_copy(update={"seed": seed, "suite": SuiteConfig(source=suite, val=n, test=n, seed=seed),
                                     "evaluator": EvaluatorConfig(**{**cfg.evaluator.model_dump(), "use_ray": use_ray})})
        if endpoint:
            cfg.endpoint.base_url = endpoint
        if model:
            cfg.endpoint.model = model
        violations = check_policy(code)
        if violations:
            v = violations[0]
            raise UserError(f"{agent}: {v.message}")
        tasks_suite = load_suite(cfg.suite)
        tasks = tasks_suite.val if split == "val" else tasks_suite.test
        console = Console(stderr=True)
        with Evaluator.from_config(cfg, sim_tasks=tasks_suite.all_tasks()) as evaluator:
            with Progress(TextColumn(f"{agent.name}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=console, disable=as_json, transient=True) as progress:
                bar = progress.add_task("eval", total=len(tasks))
                result = evaluator.evaluate(candidate_key(code), code, tasks,
                                            on_result=lambda r: progress.advance(bar))
        reasons = Counter(f"{r.error_kind}: {(r.error or '')[:80]}" for r in result.results if r.error)
        out = {"agent": str(agent), "suite": tasks_suite.name, "split": split, "n": result.ci.n,
               "score": result.ci.mean, "ci_low": result.ci.low, "ci_high": result.ci.high, "tokens": result.tokens,
               "cost": result.cost, "llm_calls": result.llm_calls, "failures": dict(reasons)}
        if as_json:
            print(json.dumps(out, sort_keys=True))
            return
        table = Table(title=f"{agent.name} on {tasks_suite.name} ({split}, n={result.ci.n})")
        for col in ("score [95% CI]", "tokens", "cost $", "LLM calls", "failed tasks"):
            table.add_column(col)
        table.add_row(f"{result.ci.mean:.3f} [{result.ci.low:.3f}, {result.ci.high:.3f}]", f"{result.tokens:,}",
                      f"{result.cost:.5f}", str(result.llm_calls), str(sum(reasons.values())))
        out_console = Console()
        out_console.print(table)
        for reason, count in reasons.most_common(10):
            out_console.print(f"  {count} × {reason}")
