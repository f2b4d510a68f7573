"""`metasearch report RUN -o report.html` and the viewing commands of the `archive` group: plot, compare, browse.

The `archive` group itself belongs to `archive_cmd` (registered before this module in `COMMAND_MODULES`); these
commands join it. Should it be missing, they are served under a `view` group instead so they stay usable.
Every command opens the archive as a reader (never creates it): a missing file or unknown run is an ArchiveError,
one line on stderr and exit code 2.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from metasearch.archive import CANDIDATE_STATUSES, Archive
from metasearch.browse import browse_command, write_metadata
from metasearch.cli.archive_cmd import ArchiveOpt, emit_json, make_console
from metasearch.plots import plot_run
from metasearch.report import fmt_ci, fmt_duration, fmt_money, run_overview, write_report

RunArg = typer.Argument(..., metavar="RUN", help="Run id or name.")


def _open(path: str) -> Archive:
    return Archive(os.path.expanduser(path), create=False)


def _archive_group(app: typer.Typer) -> typer.Typer:
    """The `archive` group registered by archive_cmd, or a new `view` group when there is none."""
    for info in app.registered_groups:
        if info.name == "archive" and info.typer_instance is not None:
            return info.typer_instance
    group = typer.Typer(help="Look at a search: plots, comparison, Datasette.", no_args_is_help=True)
    app.add_typer(group, name="view")
    return group


def compare_rows(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(label, run A, run B) rows of two `run_overview` dicts, the lines a side-by-side table shows."""

    def best(o: dict[str, Any], split: str) -> str:
        c = o["best_test" if split == "test" else "best_val"]
        if c is None:
            return "-"
        if split == "test":
            score = fmt_ci(c["test_score"], c["test_ci_low"], c["test_ci_high"], c["test_n"])
        else:
            score = fmt_ci(c["score"], c["ci_low"], c["ci_high"], c["n_tasks"])
        return f"{score}  #{c['id']} {c['name']}"

    rows = [("run", f"#{a['id']} {a['name']}", f"#{b['id']} {b['name']}")]
    for key in ("status", "strategy", "suite", "model", "seed"):
        rows.append((key, str(a[key]), str(b[key])))
    rows.append(("candidates", str(a["candidates"]), str(b["candidates"])))
    for status in CANDIDATE_STATUSES:
        if a["by_status"][status] or b["by_status"][status]:
            rows.append((f"  {status.replace('_', ' ')}", str(a["by_status"][status]), str(b["by_status"][status])))
    rows.append(("best validation ± CI", best(a, "val"), best(b, "val")))
    rows.append(("best test ± CI", best(a, "test"), best(b, "test")))
    rows.append(("tokens", f"{a['tokens']:,} ({a['spend_scope']})", f"{b['tokens']:,} ({b['spend_scope']})"))
    rows.append(("cost", fmt_money(a["cost"]), fmt_money(b["cost"])))
    rows.append(("duration", fmt_duration(a["duration_s"]), fmt_duration(b["duration_s"])))
    if a.get("stop_reason") or b.get("stop_reason"):
        rows.append(("stopped by", str(a.get("stop_reason") or "-"), str(b.get("stop_reason") or "-")))
    return rows


def _metadata_path(archive: Path) -> Path:
    """A stable per-archive metadata file in the temp dir (so a printed command keeps working)."""
    digest = hashlib.sha256(str(archive.resolve()).encode("utf-8")).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"metasearch-datasette-{digest}.json"


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_cmd(run: str = RunArg,
                   out: Path = typer.Option(Path("report.html"), "-o", "--out", help="HTML file to write."),
                   archive: str = ArchiveOpt) -> None:
        """Write one self-contained HTML report of RUN: config, seeds vs winners, plots, best code, failures."""
        with _open(archive) as arc:
            path = write_report(arc, run, out)
        print(path)

    group = _archive_group(app)

    @group.command("plot")
    def plot_cmd(run: str = RunArg,
                 out: Path = typer.Option(Path("plots"), "--out", help="Directory for the PNG files."),
                 archive: str = ArchiveOpt) -> None:
        """Write RUN's plots (score vs iteration / tokens / cost, lineage, value model) as PNG files."""
        with _open(archive) as arc:
            paths = plot_run(arc, run, out)
        for path in paths:
            print(path)

    @group.command("compare")
    def compare_cmd(run_a: str = typer.Argument(..., metavar="RUN_A", help="First run id or name."),
                    run_b: str = typer.Argument(..., metavar="RUN_B", help="Second run id or name."),
                    archive: str = ArchiveOpt,
                    as_json: bool = typer.Option(False, "--json", help="Print JSON only.")) -> None:
        """Side-by-side summary of two runs: strategy, candidates by status, best val/test ± CI, spend, time."""
        with _open(archive) as arc:
            a, b = run_overview(arc, run_a), run_overview(arc, run_b)
        if as_json:
            emit_json({"a": a, "b": b})
            return
        table = Table(title="run comparison", header_style="bold")
        table.add_column("")
        table.add_column(f"A: run {a['id']}", overflow="fold")
        table.add_column(f"B: run {b['id']}", overflow="fold")
        for row in compare_rows(a, b):
            table.add_row(*row)
        make_console().print(table)

    @group.command("browse")
    def browse_cmd(archive: str = ArchiveOpt,
                   port: int = typer.Option(8001, "--port", min=1, max=65535, help="Port on 127.0.0.1."),
                   print_command: bool = typer.Option(False, "--print-command",
                                                      help="Only print the datasette command.")) -> None:
        """Open the archive in Datasette, read-only, with canned queries (needs the optional datasette package)."""
        path = Path(os.path.expanduser(archive))
        _open(str(path)).close()  # refuse a missing or foreign file with the archive's own one-line message
        meta = write_metadata(path, _metadata_path(path))
        cmd = browse_command(path, meta, port=port)
        if print_command:
            print(shlex.join(cmd))
            return
        print(f"serving {path} read-only at http://127.0.0.1:{port}/ (Ctrl-C to stop)")
        proc = subprocess.Popen(cmd)
        try:
            proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait(timeout=10)
        if proc.returncode not in (0, -15, None):
            raise typer.Exit(code=proc.returncode if proc.returncode > 0 else 1)

