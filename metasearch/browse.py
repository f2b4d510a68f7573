"""Browse an archive in Datasette, read-only, with canned queries (top candidates, failures by reason, cost by run).

Datasette is an optional extra (`pip install 'metasearch[browse]'`): without it `browse` says how to install it.

Read-only either way: an archive no search is writing is served `--immutable` (SQLite opens it with
`immutable=1`, the fastest mode, counts are cached). An archive with a live write-ahead log (`<file>-wal`, a search
running or one that did not check-point) is served as a plain file instead, which Datasette opens with `mode=ro`:
`immutable=1` would skip the WAL and show stale rows.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from metasearch.errors import ArchiveError, UserError

INSTALL_HINT = "datasette is not installed: pip install 'metasearch[browse]' (or: pip install datasette)"

QUERIES: dict[str, dict[str, str]] = {
    "top_candidates": {
        "title": "Top candidates",
        "description": "Fully evaluated candidates of every run, best validation score first.",
        "sql": """SELECT c.id, c.run_id, r.name AS run, c.iteration, c.name, c.origin,
       round(c.score, 4) AS score, round(c.ci_low, 4) AS ci_low, round(c.ci_high, 4) AS ci_high, c.n_tasks,
       round(c.test_score, 4) AS test_score, c.test_n, c.tokens, round(c.cost, 6) AS cost
FROM candidates c JOIN runs r ON r.id = c.run_id
WHERE c.status = 'evaluated' AND c.score IS NOT NULL
ORDER BY c.score DESC, c.id
LIMIT 100""",
    },
    "failures_by_reason": {
        "title": "Failures by reason",
        "description": "Failed or rejected candidates grouped by run, error kind and the first 80 characters "
                       "of the message.",
        "sql": """SELECT c.run_id, r.name AS run, c.status, coalesce(c.error_kind, 'unknown') AS error_kind,
       substr(coalesce(c.error, ''), 1, 80) AS reason, count(*) AS n, group_concat(c.id, ', ') AS candidate_ids
FROM candidates c JOIN runs r ON r.id = c.run_id
WHERE c.status IN ('failed', 'rejected')
GROUP BY 1, 3, 4, 5
ORDER BY n DESC, c.run_id, error_kind""",
    },
    "task_errors_by_reason": {
        "title": "Task errors by reason",
        "description": "Per-task evaluation errors (timeouts, runtime, LM errors) grouped by run and kind.",
        "sql": """SELECT c.run_id, e.split, coalesce(e.error_kind, 'unknown') AS error_kind,
       substr(coalesce(e.error, ''), 1, 80) AS reason, count(*) AS n,
       count(DISTINCT e.candidate_id) AS candidates
FROM evaluations e JOIN candidates c ON c.id = e.candidate_id
WHERE e.error IS NOT NULL OR e.error_kind IS NOT NULL
GROUP BY 1, 2, 3, 4
ORDER BY n DESC""",
    },
    "cost_by_run": {
        "title": "Cost by run",
        "description": "Tokens and dollars per run: candidate evaluations by split, plus the meta-agent's "
                       "proposals (from the journal).",
        "sql": """SELECT r.id, r.name, r.status, r.strategy, r.suite, r.model,
       (SELECT count(*) FROM candidates c WHERE c.run_id = r.id) AS candidates,
       (SELECT round(max(c.score), 4) FROM candidates c WHERE c.run_id = r.id AND c.status = 'evaluated') AS best,
       (SELECT round(max(c.test_score), 4) FROM candidates c WHERE c.run_id = r.id) AS best_test,
       (SELECT coalesce(sum(e.prompt_tokens + e.completion_tokens), 0) FROM evaluations e
          JOIN candidates c ON c.id = e.candidate_id WHERE c.run_id = r.id) AS eval_tokens,
       (SELECT round(coalesce(sum(e.cost), 0), 6) FROM evaluations e
          JOIN candidates c ON c.id = e.candidate_id WHERE c.run_id = r.id AND e.split = 'val') AS val_cost,
       (SELECT round(coalesce(sum(e.cost), 0), 6) FROM evaluations e
          JOIN candidates c ON c.id = e.candidate_id WHERE c.run_id = r.id AND e.split = 'test') AS test_cost,
       (SELECT coalesce(sum(json_extract(v.data_json, '$.prompt_tokens') + json_extract(v.data_json,
          '$.completion_tokens')), 0) FROM events v WHERE v.run_id = r.id AND v.kind = 'proposal_usage')
          AS proposal_tokens,
       (SELECT round(coalesce(sum(json_extract(v.data_json, '$.cost')), 0), 6) FROM events v
          WHERE v.run_id = r.id AND v.kind = 'proposal_usage') AS proposal_cost
FROM runs r
ORDER BY r.id""",
    },
}

TABLE_DESCRIPTIONS = {
    "runs": "One row per search: its config, seed, endpoint and summary (JSON).",
    "candidates": "Every proposed agent: code, lineage (parent_ids), status, validation/test scores with 95% CI.",
    "evaluations": "Per-task results of each candidate on each split.",
    "events": "The run journal a search resumes from.",
    "llm_cache": "Cached LLM responses (key = sha256 of the request).",
}


def database_name(archive: Path) -> str:
    """Datasette names a database after the file's stem."""
    return archive.stem


def metadata(archive: Path) -> dict[str, Any]:
    """Datasette metadata: title, table descriptions and the canned queries, for this archive file."""
    tables = {name: {"description": text} for name, text in TABLE_DESCRIPTIONS.items()}
    tables["llm_cache"]["hidden"] = True
    return {
        "title": f"metasearch archive {archive.name}",
        "description": "Runs, candidates and evaluations of metasearch searches (read-only).",
        "databases": {database_name(archive): {"tables": tables, "queries": QUERIES}},
    }


def datasette_executable() -> list[str]:
    """How to start Datasette: its console script, else `python -m datasette`; UserError when not installed."""
    script = shutil.which("datasette")
    if script:
        return [script]
    try:
        import datasette  # noqa: F401
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    return [sys.executable, "-m", "datasette"]


def is_live(archive: Path) -> bool:
    """True when the archive has a non-empty WAL (a search writing, or not yet check-pointed)."""
    wal = archive.with_name(archive.name + "-wal")
    return wal.exists() and wal.stat().st_size > 0


def browse_command(archive: Path, metadata_path: Path, *, port: int = 8001, host: str = "127.0.0.1",
                   executable: list[str] | None = None) -> list[str]:
    """The `datasette serve` argv for this archive (read-only; see the module doc for immutable vs mode=ro)."""
    archive = Path(archive).resolve()
    if not archive.is_file():
        raise ArchiveError(f"{archive}: no such archive (run a search first or pass --archive)")
    exe = executable if executable is not None else datasette_executable()
    source = [str(archive)] if is_live(archive) else ["--immutable", str(archive)]
    return [*exe, "serve", *source, "--metadata", str(metadata_path), "--host", host, "--port", str(port),
            "--setting", "sql_time_limit_ms", "5000"]


def write_metadata(archive: Path, path: Path) -> Path:
    """Write the Datasette metadata JSON for `archive` to `path`."""
    path.write_text(json.dumps(metadata(Path(archive).resolve()), indent=2))
    return path
