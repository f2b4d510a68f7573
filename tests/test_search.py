"""The search loop: runs, records every outcome, is deterministic, stops on budget and resumes losing nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


from conftest import small_config, write_config
from metasearch.archive import Archive
from metasearch.proposers.base import Proposal, Proposer, SearchContext
from metasearch.search import Search


def comparable(path: str, run_id: int = 1) -> dict[str, Any]:
    """Candidates and evaluations of a run, without timestamps, latencies or row ids."""
    with Archive(path, create=False) as archive:
        cands = []
        for c in archive.candidates(run_id):
            evals = sorted((e["split"], e["task_id"], e["score"], e["answer"], e["prompt_tokens"],
                            e["completion_tokens"], e["llm_calls"], e["error_kind"])
                           for e in archive.evaluations(c["id"]))
            cands.append((c["id"], c["iteration"], c["name"], c["code"], c["status"], c["score"], c["test_score"],
                          c["parent_ids"], c["tokens"], tuple(evals)))
        return {"candidates": cands}


def test_small_meta_search_records_everything(tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    summary = Search(cfg).run()
    with Archive(cfg.archive, create=False) as archive:
        run = archive.get_run(summary["run_id"])
        cands = archive.candidates(run["id"])
        iterations = [e["data"]["iteration"] for e in archive.events(run["id"], "iteration_done")]
    assert run["status"] == "finished"
    assert iterations == [1, 2, 3]
    assert sum(c["origin"] == "seed" for c in cands) == 3
    assert {c["status"] for c in cands} <= {"evaluated", "failed", "stopped_early", "rejected"}
    assert any(c["origin"] == "meta" for c in cands)
    for c in cands:
        if c["status"] in ("evaluated", "stopped_early"):
            assert c["score"] is not None and c["ci_low"] <= c["score"] <= c["ci_high"]
        if c["status"] == "failed":
            assert c["error"] and c["error_kind"]
    assert summary["winner"]["test_score"] is not None and summary["best_seed"]["test_score"] is not None


def test_same_config_and_seed_give_the_same_archive(tmp_path: Path) -> None:
    a = small_config(tmp_path / "a")
    b = small_config(tmp_path / "b")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Search(a).run()
    Search(b).run()
    assert comparable(a.archive) == comparable(b.archive)


class ScriptedProposer(Proposer):
    """Proposes the given codes, one per iteration (to exercise how the loop records broken candidates)."""

    name = "scripted"

    def __init__(self, codes: list[str]) -> None:
        self.codes = codes

    def propose(self, ctx: SearchContext, iteration: int) -> list[Proposal]:
        return [Proposal(code=self.codes[iteration - 1], name=f"scripted {iteration}", origin="manual")]


BROKEN = {
    "syntax": "NAME='s'\ndef forward(task, lm)\n    return 1\n",
    "policy": "import os\nNAME='p'\ndef forward(task, lm):\n    return os.getcwd()\n",
    "runtime": "NAME='r'\ndef forward(task, lm):\n    return undefined_helper(task.question)\n",
    "timeout": "NAME='t'\ndef forward(task, lm):\n    while True:\n        pass\n",
}


def test_broken_candidates_are_recorded_with_reasons_and_the_search_goes_on(tmp_path: Path, monkeypatch: Any) -> None:
    codes = list(BROKEN.values()) + [
        "NAME='ok'\ndef forward(task, lm):\n    return extract_answer(lm.ask(task.question), task.kind)\n"]
    cfg = small_config(tmp_path, budget__iterations=len(codes), evaluator__wall_timeout_s=2, evaluator__cpu_seconds=1,
                       suite__val=4, suite__test=4, evaluator__cascade=False)
    monkeypatch.setattr("metasearch.search.make_proposer", lambda _cfg: ScriptedProposer(codes))
    Search(cfg).run()
    with Archive(cfg.archive, create=False) as archive:
        by_name = {c["name"]: c for c in archive.candidates(1)}
    kinds = {name: by_name[f"scripted {i + 1}"]["error_kind"] for i, name in enumerate(BROKEN)}
    assert kinds == {"syntax": "syntax", "policy": "policy", "runtime": "runtime", "timeout": "timeout"}
    assert all(by_name[f"scripted {i + 1}"]["status"] == "failed" for i in range(len(BROKEN)))
    assert by_name[f"scripted {len(codes)}"]["status"] == "evaluated"


def test_token_budget_stops_cleanly_and_resume_with_more_budget_finishes(tmp_path: Path) -> None:
    straight = small_config(tmp_path / "s")
    (tmp_path / "s").mkdir()
    Search(straight).run()
    with Archive(straight.archive, create=False) as archive:
        seeds_tokens = sum(c["tokens"] or 0 for c in archive.candidates(1) if c["origin"] == "seed")

    cfg = small_config(tmp_path, budget__tokens=seeds_tokens + 1)
    summary = Search(cfg).run()
    assert summary["stop_reason"].startswith("budget")
    with Archive(cfg.archive, create=False) as archive:
        assert archive.get_run(1)["status"] == "stopped"
    resumed = Search.for_resume(cfg.archive, 1, overrides={"budget.tokens": 0}).run()
    assert resumed["stop_reason"] != "" and not resumed["stop_reason"].startswith("budget: ")
    assert comparable(cfg.archive) == comparable(straight.archive)


def _count_rows(path: str) -> int:
    import sqlite3

    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("select count(*) from evaluations").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def test_kill_9_mid_run_then_resume_loses_and_repeats_nothing(tmp_path: Path) -> None:
    reference = small_config(tmp_path / "ref")
    (tmp_path / "ref").mkdir()
    Search(reference).run()
    total_rows = _count_rows(reference.archive)

    cfg = small_config(tmp_path)
    cfg_path = write_config(cfg, tmp_path / "run.toml")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "metasearch", "run", str(cfg_path), "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    while _count_rows(cfg.archive) < total_rows // 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    killed_at = _count_rows(cfg.archive)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert 0 < killed_at < total_rows
    res = subprocess.run([sys.executable, "-m", "metasearch", "resume", "1", "--archive", cfg.archive, "--quiet"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert comparable(cfg.archive) == comparable(reference.archive)
    import sqlite3

    con = sqlite3.connect(cfg.archive)
    assert con.execute("pragma integrity_check").fetchone()[0] == "ok"
    con.close()


def test_a_meta_agent_that_never_answers_usably_fails_each_proposal_and_the_run_finishes(tmp_path: Path,
                                                                                         monkeypatch: Any) -> None:
    from metasearch.llm.client import LLMCallError

    def garbled(self: Any, prompt: str, **kwargs: Any) -> dict:
        raise LLMCallError("no JSON object with the fields thought, name, code after 2 repairs")

    monkeypatch.setattr("metasearch.llm.client.LM.ask_json", garbled)
    cfg = small_config(tmp_path, budget__iterations=2, suite__val=6, suite__test=6)
    summary = Search(cfg).run()
    with Archive(cfg.archive, create=False) as archive:
        assert archive.get_run(1)["status"] == "finished"
        failed = [c for c in archive.candidates(1) if c["origin"] == "meta"]
    assert [c["iteration"] for c in failed] == [1, 2]
    assert all(c["status"] == "failed" and c["error_kind"] == "meta" and "unusable" in c["error"] for c in failed)
    assert summary["winner"]["origin"] == "seed"
