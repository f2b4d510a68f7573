"""`metasearch archive runs|ls|show|lineage|diff`: read-only views of the archive.

Every command opens the archive as a reader (no lock, never creates it): a missing or bad file is an ArchiveError,
which the CLI prints as one line with exit code 2. `--json` prints JSON only, nothing else.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

import typer
from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from metasearch.archive import CANDIDATE_STATUSES, Archive

DEFAULT_ARCHIVE = "runs/metasearch.db"

ArchiveOpt = typer.Option(DEFAULT_ARCHIVE, "--archive", envvar="METASEARCH_ARCHIVE", show_envvar=True,
                          help="Archive file (SQLite).")
JsonOpt = typer.Option(False, "--json", help="Print JSON only.")

# (header, justify, no_wrap): numbers and statuses never wrap; names fold when the terminal is narrow.
RUN_COLUMNS = (("id", "right", True), ("name", "left", False), ("status", "left", True),
               ("strategy", "left", False), ("suite", "left", False), ("candidates", "right", True),
               ("best", "right", True), ("cost", "right", True), ("created (UTC)", "left", False))
CANDIDATE_COLUMNS = (("id", "right", True), ("run", "right", True), ("iter", "right", True), ("name", "left", False),
                     ("origin", "left", True), ("status", "left", True), ("score ± CI", "right", True),
                     ("test", "right", True), ("tokens", "right", True), ("cost", "right", True))


# ---------------------------------------------------------------------- formatting (shared by every command)


def build_table(columns: Sequence[tuple[str, str, bool]], rows: Iterable[Sequence[Any]],
                title: str | None = None) -> Table:
    """The one table builder: (header, justify, no_wrap) columns, cells rendered as text ('-' for None)."""
    table = Table(title=title, header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1),
                  collapse_padding=True)
    for header, justify, no_wrap in columns:
        table.add_column(header, justify=justify, no_wrap=no_wrap, overflow="ellipsis" if no_wrap else "fold",
                         min_width=None if no_wrap else 8)
    for row in rows:
        table.add_row(*("-" if cell is None else cell if isinstance(cell, Text) else str(cell) for cell in row))
    return table


def fmt_score(score: float | None, low: float | None = None, high: float | None = None) -> str | None:
    """'0.612 ±0.048' (half-width of the CI) or '0.612' or None."""
    if score is None:
        return None
    if low is None or high is None:
        return f"{score:.3f}"
    return f"{score:.3f} ±{(high - low) / 2:.3f}"


def fmt_interval(score: float | None, low: float | None, high: float | None, n: int | None) -> str:
    if score is None:
        return "-"
    ci = f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
    return f"{score:.3f}{ci}" + (f" (n={n})" if n else "")


def fmt_cost(cost: float | None) -> str | None:
    return None if cost is None else f"${cost:.4f}" if cost < 1 else f"${cost:,.2f}"


def status_text(status: str) -> Text:
    style = {"evaluated": "green", "failed": "red", "rejected": "red", "pruned": "yellow",
             "stopped_early": "yellow", "proposed": "cyan", "running": "cyan", "finished": "green",
             "stopped": "yellow"}.get(status, "")
    return Text(status, style=style)


def candidate_row(c: dict) -> list[Any]:
    return [c["id"], c["run_id"], c["iteration"], c["name"], c["origin"], status_text(c["status"]),
            fmt_score(c["score"], c["ci_low"], c["ci_high"]), fmt_score(c["test_score"]),
            c["tokens"], fmt_cost(c["cost"])]


def candidate_label(c: dict) -> Text:
    label = Text(f"#{c['id']} ", style="bold")
    label.append(c["name"] or "(unnamed)")
    label.append(f"  {fmt_score(c['score'], c['ci_low'], c['ci_high']) or '-'}", style="cyan")
    label.append("  ")
    label.append_text(status_text(c["status"]))
    return label


def make_console() -> Console:
    """A console for tables: when output is piped (no terminal, no COLUMNS), use 140 columns rather than 80."""
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=140)
    return console


def emit_json(data: Any) -> None:
    """Clean JSON on stdout (no rich markup, no wrapping)."""
    print(json.dumps(data, indent=2, default=str))


def _public(c: dict) -> dict:
    """A candidate for JSON output: decoded fields only, no raw JSON duplicates."""
    return {k: v for k, v in c.items() if k != "ir_json"}


def _open(path: str) -> Archive:
    return Archive(os.path.expanduser(path), create=False)


# ---------------------------------------------------------------------- commands


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Browse the archive: runs, candidates, lineage, diffs.", no_args_is_help=True)

    @group.command("runs")
    def runs_cmd(archive: str = ArchiveOpt, as_json: bool = JsonOpt) -> None:
        """List runs with their candidate count, best score and cost."""
        with _open(archive) as arc:
            runs = [(run, arc.stats(run["id"])) for run in arc.runs()]
        if as_json:
            emit_json([{**{k: v for k, v in run.items() if not k.endswith("_json")}, "stats": stats}
                       for run, stats in runs])
            return
        rows = [[r["id"], r["name"], status_text(r["status"]), r["strategy"], r["suite"], s["candidates"],
                 fmt_score(s["best_score"]), fmt_cost(s["cost"]), (r["created_at"] or "")[:19].replace("T", " ")]
                for r, s in runs]
        make_console().print(build_table(RUN_COLUMNS, rows, title=f"runs in {archive}"))

    @group.command("ls")
    def ls_cmd(archive: str = ArchiveOpt, run: str | None = typer.Option(None, "--run", help="Run id or name."),
               top: int = typer.Option(20, "--top", min=0, help="How many candidates."),
               status: str = typer.Option("evaluated", "--status",
                                          help=f"One of {', '.join(CANDIDATE_STATUSES)}, or 'all'."),
               as_json: bool = JsonOpt) -> None:
        """Candidates sorted by validation score (best first)."""
        if status != "all" and status not in CANDIDATE_STATUSES:
            raise typer.BadParameter(f"must be one of {', '.join(CANDIDATE_STATUSES)}, or 'all'",
                                     param_hint="--status")
        with _open(archive) as arc:
            run_id = arc.get_run(run)["id"] if run is not None else None
            rows = arc.top(run_id, k=top, status=None if status == "all" else status)
        if as_json:
            emit_json([_public(c) for c in rows])
            return
        make_console().print(build_table(CANDIDATE_COLUMNS, map(candidate_row, rows),
                                    title=f"top {top} {status} candidates" + (f" of run {run}" if run else "")))

    @group.command("show")
    def show_cmd(cid: int = typer.Argument(..., metavar="ID", help="Candidate id."), archive: str = ArchiveOpt,
                 as_json: bool = JsonOpt) -> None:
        """One candidate: thought, status, scores with CI, cost, lineage and its code."""
        with _open(archive) as arc:
            c = arc.get_candidate(cid)
            ancestors = arc.ancestors(cid)
            children = [d for d in arc.descendants(cid) if d["depth"] == 1]
        if as_json:
            emit_json({**_public(c), "ancestors": [{"id": a["id"], "name": a["name"], "depth": a["depth"]}
                                                   for a in ancestors],
                       "children": [ch["id"] for ch in children]})
            return
        console = make_console()
        head = Text(f"#{c['id']} {c['name']}", style="bold")
        head.append(f"   run {c['run_id']}, iteration {c['iteration'] if c['iteration'] is not None else '-'}, "
                    f"origin {c['origin']}, ", style="dim")
        head.append_text(status_text(c["status"]))
        lines: list[Any] = [head]
        if c["error"]:
            lines.append(Text(f"error ({c['error_kind'] or 'unknown'}): {c['error']}", style="red"))
        lines.append(Text(f"val   {fmt_interval(c['score'], c['ci_low'], c['ci_high'], c['n_tasks'])}"))
        lines.append(Text(f"test  {fmt_interval(c['test_score'], c['test_ci_low'], c['test_ci_high'], c['test_n'])}"))
        if c["predicted_mean"] is not None:
            lines.append(Text(f"value model predicted {c['predicted_mean']:.3f} ± {c['predicted_std'] or 0:.3f}"))
        lines.append(Text(f"cost  {fmt_cost(c['cost']) or '-'}, {c['tokens'] or 0} tokens, "
                          f"{c['llm_calls'] or 0} LLM calls"))
        parents = ", ".join(f"#{p}" for p in c["parent_ids"]) or "none"
        kids = ", ".join(f"#{x['id']}" for x in children) or "none"
        lines.append(Text(f"parents {parents}; children {kids}"))
        if ancestors:
            depths = sorted({a["depth"] for a in ancestors})
            chain = " ← ".join(", ".join(f"#{a['id']} {a['name']}" for a in ancestors if a["depth"] == d)
                               for d in depths)
            lines.append(Text(f"lineage #{c['id']} ← {chain}", style="dim"))
        console.print(Panel(Group(*lines), title="candidate", expand=False))
        if c["thought"]:
            console.print(Panel(c["thought"], title="thought", expand=False))
        console.print(Syntax(c["code"], "python", line_numbers=True, word_wrap=True))

    @group.command("lineage")
    def lineage_cmd(cid: int = typer.Argument(..., metavar="ID", help="Candidate id."),
                    archive: str = ArchiveOpt) -> None:
        """The candidate's ancestors and descendants as a tree, with scores."""
        with _open(archive) as arc:
            c = arc.get_candidate(cid)
            ancestors = {a["id"]: a for a in arc.ancestors(cid)}
            descendants = arc.descendants(cid)
        tree = Tree(candidate_label(c))
        if ancestors:
            _grow(tree.add(Text("ancestors", style="dim")), c["parent_ids"], ancestors,
                  lambda node: node["parent_ids"], set())
        if descendants:
            by_id = {d["id"]: d for d in descendants}
            children: dict[int, list[int]] = {}
            for d in descendants:
                for p in d["parent_ids"]:
                    children.setdefault(p, []).append(d["id"])
            _grow(tree.add(Text("descendants", style="dim")), children.get(c["id"], []), by_id,
                  lambda node: children.get(node["id"], []), set())
        make_console().print(tree)

    @group.command("diff")
    def diff_cmd(a: int = typer.Argument(..., help="First candidate id."),
                 b: int = typer.Argument(..., help="Second candidate id."), archive: str = ArchiveOpt) -> None:
        """Unified diff of two candidates' code, and their score difference."""
        with _open(archive) as arc:
            ca, cb = arc.get_candidate(a), arc.get_candidate(b)
        console = make_console()
        diff = list(difflib.unified_diff(ca["code"].splitlines(), cb["code"].splitlines(),
                                         fromfile=f"#{a} {ca['name']}", tofile=f"#{b} {cb['name']}", lineterm=""))
        if not diff:
            console.print(Text("identical code", style="dim"))
        for line in diff:
            style = ("bold" if line.startswith(("---", "+++")) else "green" if line.startswith("+")
                     else "red" if line.startswith("-") else "cyan" if line.startswith("@@") else "")
            console.print(Text(line, style=style), soft_wrap=True)
        for label, key in (("score", "score"), ("test score", "test_score")):
            console.print(_score_delta(label, ca[key], cb[key], a, b))

    app.add_typer(group, name="archive")


def _grow(node: Tree, ids: Iterable[int], rows: dict[int, dict], next_ids: Any, shown: set[int]) -> None:
    """Add each id's label under `node` and recurse; a node reached twice (shared ancestor) is not expanded again."""
    for i in ids:
        row = rows.get(i)
        if row is None:
            node.add(Text(f"#{i} (missing)", style="red"))
            continue
        label = candidate_label(row)
        if i in shown:
            node.add(label.append(" (see above)", style="dim"))
            continue
        shown.add(i)
        _grow(node.add(label), next_ids(row), rows, next_ids, shown)


def _score_delta(label: str, sa: float | None, sb: float | None, a: int, b: int) -> Text:
    if sa is None or sb is None:
        return Text(f"{label}: #{a} {fmt_score(sa) or '-'}, #{b} {fmt_score(sb) or '-'}")
    delta = sb - sa
    style = "green" if delta > 0 else "red" if delta < 0 else ""
    text = Text(f"{label}: #{a} {sa:.3f} → #{b} {sb:.3f} (Δ ")
    text.append(f"{delta:+.3f}", style=style)
    return text.append(")")
