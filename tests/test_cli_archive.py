"""`metasearch archive ...`: tables, JSON, lineage trees and diffs over a small archive; bad archives exit 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from metasearch.archive import Archive
from metasearch.cli import archive_cmd
from metasearch.errors import ArchiveError

CODE_COT = 'NAME = "CoT"\n\ndef forward(task, lm):\n    return lm.ask(task.question)\n'
CODE_SC = 'NAME = "SC"\n\ndef forward(task, lm):\n    return majority_vote(lm.ask(task.question, n=5))\n'
CODE_MIX = 'NAME = "Mix"\n\ndef forward(task, lm):\n    return majority_vote(lm.ask(task.question, n=3))\n'


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    """Only this command group, so the tests do not depend on other command modules."""
    app = typer.Typer()
    archive_cmd.register(app)
    return app


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    path = tmp_path_factory.mktemp("cli") / "arc.db"
    with Archive(path, writer=True) as arc:
        run = arc.create_run("alpha", config={}, seed=1, strategy="meta", suite="builtin:arith",
                             model="sim-default", base_url="sim://default")
        cot, _ = arc.add_candidate(run, CODE_COT, name="Chain of Thought", thought="reason first", origin="seed")
        sc, _ = arc.add_candidate(run, CODE_SC, name="Self Consistency", origin="seed")
        mix, _ = arc.add_candidate(run, CODE_MIX, name="Mixture", origin="meta", parent_ids=[cot, sc], iteration=1)
        bad, _ = arc.add_candidate(run, "x = undefined\n", name="Broken", origin="meta", parent_ids=[mix],
                                   iteration=2)
        for cid, score in ((cot, 0.5), (sc, 0.6), (mix, 0.8)):
            arc.update_candidate(cid, status="evaluated", score=score, ci_low=score - 0.1, ci_high=score + 0.1,
                                 n_tasks=20, tokens=500, cost=0.002)
        arc.update_candidate(mix, test_score=0.75, test_ci_low=0.7, test_ci_high=0.8, test_n=50)
        arc.update_candidate(bad, status="failed", error="NameError: undefined", error_kind="runtime")
        arc.finish_run(run, "finished", {"best": mix})
        other = arc.create_run("beta", config={}, seed=2, strategy="random", suite="builtin:arith",
                               model="sim-default", base_url="sim://default")
        solo, _ = arc.add_candidate(other, "y = 1\n", name="Solo", origin="random")
        arc.update_candidate(solo, status="evaluated", score=0.7)
    return path, {"cot": cot, "sc": sc, "mix": mix, "bad": bad, "solo": solo}


def invoke(app: typer.Typer, path: Path, *args: str):
    result = CliRunner().invoke(app, ["archive", *args, "--archive", str(path)], env={"COLUMNS": "200"})
    return result


def test_runs_table_and_json(app, db) -> None:
    path, ids = db
    result = invoke(app, path, "runs")
    assert result.exit_code == 0, result.output
    alpha = next(line for line in result.output.splitlines() if "alpha" in line)
    assert "finished" in alpha and "meta" in alpha and " 4 " in alpha and "0.800" in alpha
    data = json.loads(invoke(app, path, "runs", "--json").output)
    assert [r["name"] for r in data] == ["alpha", "beta"]
    assert data[0]["stats"]["best_id"] == ids["mix"] and data[0]["summary"] == {"best": ids["mix"]}


def test_ls_sorts_by_score_and_filters(app, db) -> None:
    path, ids = db
    result = invoke(app, path, "ls")
    assert result.exit_code == 0, result.output
    names = [n for n in ("Mixture", "Solo", "Self Consistency", "Chain of Thought") if n in result.output]
    assert names == ["Mixture", "Solo", "Self Consistency", "Chain of Thought"]
    assert sorted(names, key=result.output.index) == names
    assert "0.800 ±0.100" in result.output and "Broken" not in result.output
    top = json.loads(invoke(app, path, "ls", "--json", "--top", "2").output)
    assert [c["id"] for c in top] == [ids["mix"], ids["solo"]]
    assert top[0]["parent_ids"] == [ids["cot"], ids["sc"]] and "ir_json" not in top[0]
    alpha = json.loads(invoke(app, path, "ls", "--json", "--run", "alpha").output)
    assert [c["id"] for c in alpha] == [ids["mix"], ids["sc"], ids["cot"]]
    failed = json.loads(invoke(app, path, "ls", "--json", "--status", "failed").output)
    assert [c["name"] for c in failed] == ["Broken"]
    assert len(json.loads(invoke(app, path, "ls", "--json", "--status", "all").output)) == 5


def test_ls_rejects_unknown_status_and_run(app, db) -> None:
    path, _ = db
    assert invoke(app, path, "ls", "--status", "great").exit_code == 2
    result = invoke(app, path, "ls", "--run", "gamma")
    assert isinstance(result.exception, ArchiveError) and "no run 'gamma'" in str(result.exception)


def test_show_prints_scores_lineage_and_code(app, db) -> None:
    path, ids = db
    result = invoke(app, path, "show", str(ids["mix"]))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Mixture" in out and "0.800 [0.700, 0.900] (n=20)" in out and "0.750 [0.700, 0.800] (n=50)" in out
    assert f"parents #{ids['cot']}, #{ids['sc']}" in out and f"children #{ids['bad']}" in out
    assert "majority_vote(lm.ask(task.question, n=3))" in out
    broken = invoke(app, path, "show", str(ids["bad"])).output
    assert "error (runtime): NameError: undefined" in broken and "Chain of Thought" in broken
    data = json.loads(invoke(app, path, "show", str(ids["bad"]), "--json").output)
    assert [(a["id"], a["depth"]) for a in data["ancestors"]] == [(ids["mix"], 1), (ids["cot"], 2), (ids["sc"], 2)]
    assert data["code"] == "x = undefined\n"


def test_lineage_tree_shows_ancestors_and_descendants(app, db) -> None:
    path, ids = db
    out = invoke(app, path, "lineage", str(ids["mix"])).output
    lines = out.splitlines()
    assert "Mixture" in lines[0] and "0.800" in lines[0]
    assert out.index("ancestors") < out.index("Chain of Thought") < out.index("descendants") < out.index("Broken")
    assert "Self Consistency" in out
    out = invoke(app, path, "lineage", str(ids["cot"])).output
    assert "ancestors" not in out and out.index("Mixture") < out.index("Broken")


def test_diff_shows_changed_lines_and_score_difference(app, db) -> None:
    path, ids = db
    out = invoke(app, path, "diff", str(ids["cot"]), str(ids["mix"])).output
    assert "-    return lm.ask(task.question)" in out
    assert "+    return majority_vote(lm.ask(task.question, n=3))" in out
    assert "Δ +0.300" in out
    assert "identical code" in invoke(app, path, "diff", str(ids["sc"]), str(ids["sc"])).output


def test_archive_path_comes_from_the_environment(app, db) -> None:
    path, ids = db
    result = CliRunner().invoke(app, ["archive", "ls", "--json"], env={"METASEARCH_ARCHIVE": str(path)})
    assert json.loads(result.output)[0]["id"] == ids["mix"]


# ---------------------------------------------------------------------- the real command (exit codes, clean output)


def _metasearch(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("metasearch")
    cmd = [exe] if exe else [sys.executable, "-c", "from metasearch.cli import main; main()"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("METASEARCH_ARCHIVE", None)
    return subprocess.run([*cmd, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_cli_json_output_is_clean(db, tmp_path: Path) -> None:
    path, ids = db
    proc = _metasearch("archive", "ls", "--json", "--top", "1", "--archive", str(path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [c["id"] for c in json.loads(proc.stdout)] == [ids["mix"]]


@pytest.mark.parametrize("content", [None, b"this is not a database at all" * 10])
def test_missing_or_bad_archive_exits_2_with_one_line(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "bad.db"
    if content is not None:
        path.write_bytes(content)
    proc = _metasearch("archive", "ls", "--archive", str(path), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0]
    assert "Traceback" not in proc.stderr
    if content is None:
        assert not path.exists()                       # a reader never creates an archive
    else:
        assert path.read_bytes() == content


def test_default_archive_path_is_runs_metasearch_db(tmp_path: Path) -> None:
    proc = _metasearch("archive", "runs", cwd=tmp_path)
    assert proc.returncode == 2 and "runs/metasearch.db" in proc.stderr
