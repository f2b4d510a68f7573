"""`metasearch export` (a standalone agent module) and `metasearch promote` (a winner into the seed library)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from metasearch.errors import ArchiveError

_ARCHIVE = typer.Option(os.environ.get("METASEARCH_ARCHIVE", "runs/metasearch.db"), help="archive file")


def best_of_run(archive: Any, run: str | None) -> dict[str, Any]:
    """The run's winner as the search chose it (best on validation among the finalists), the one the summary and
    the report show; the latest run when none is named."""
    from metasearch.search import run_winner

    runs = archive.runs()
    if not runs:
        raise ArchiveError("the archive has no runs")
    row = archive.get_run(int(run) if run and run.isdigit() else run) if run else max(runs, key=lambda r: r["id"])
    best = run_winner(archive, row["id"])
    if best is None:
        raise ArchiveError(f"run {row['id']} has no evaluated candidate")
    return best


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export(target: Optional[str] = typer.Argument(None, help="candidate id, or with --best a run id/name "
                                                                 "(default: the latest run)"),
               best: bool = typer.Option(False, "--best", help="export the best candidate of the run"),
               out: Path = typer.Option(Path("agent.py"), "-o", "--out", help="output module"),
               archive: str = _ARCHIVE) -> None:
        """Write a candidate as a standalone module (needs only `openai`): `python agent.py "question"`."""
        from metasearch.archive import Archive
        from metasearch.export import write_export

        with Archive(archive, create=False) as arc:
            if best or target is None:
                cand = best_of_run(arc, target)
            else:
                if not target.isdigit():
                    raise ArchiveError(f"candidate id must be a number, got {target!r} (use --best for a run)")
                cand = arc.get_candidate(int(target))
            run = arc.get_run(cand["run_id"])
        write_export(cand, run, out)
        Console().print(f"exported candidate {cand['id']} ({cand['name']}) to {out}")

    @app.command("promote")
    def promote(candidate: int = typer.Argument(..., help="candidate id"), archive: str = _ARCHIVE,
                seed_dir: Optional[Path] = typer.Option(None, help="seed library folder (default: archive/ of the repo)")) -> None:
        """Copy a candidate into the seed library with its provenance, so later searches start from it."""
        from metasearch.archive import Archive
        from metasearch.export import promote as do_promote
        from metasearch.seeds import SEED_DIR

        with Archive(archive, create=False) as arc:
            cand = arc.get_candidate(candidate)
            run = arc.get_run(cand["run_id"])
        if cand["status"] != "evaluated":
            raise ArchiveError(f"candidate {candidate} is {cand['status']}, only evaluated candidates can be promoted")
        path = do_promote(cand, run, seed_dir or SEED_DIR)
        Console().print(f"promoted candidate {candidate} ({cand['name']}) to {path}")
