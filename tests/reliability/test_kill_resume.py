"""Process faults: `kill -9` of a search during proposal, during evaluation and inside archive writes, then
`metasearch resume`, again and again. The final archive equals an uninterrupted run's, no finished evaluation is
lost or run again, the SQLite file passes `PRAGMA integrity_check` after every kill, and no sandbox worker
outlives its killed search.

Kills are scheduled by counts of work (the Nth LLM call, the Nth archive write...; see killpoints.py), with every
threshold at most the count of an uninterrupted reference run, so each kill of a plan fires exactly once on any
machine. A sandbox worker SIGKILLed mid-task is retried with the same result (below); a Ray actor killed
mid-evaluation is covered by tests/test_evaluation.py::test_killing_a_ray_actor_mid_evaluation_gives_the_undisturbed_result.
"""

from __future__ import annotations

import os
import signal
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conftest import small_config, write_config
from metasearch.config import SearchConfig
from metasearch.evaluation.runner import RunnerSpec, TaskRunner
from metasearch.search import candidate_key
from metasearch.seeds import load_seeds
from metasearch.tasks import load_suite
from reliability.conftest import Figures, behaviour, cli_env, evaluation_rows, integrity, run_cli, wait_gone
from reliability.killpoints import format_plan, read_counts, read_jsonl


def kill_config(tmp_path: Path, **overrides: Any) -> SearchConfig:
    # No response cache: a redone call is paid again, so cost and tokens must match the reference exactly.
    return small_config(tmp_path, endpoint__cache=False, **overrides)


@dataclass
class Series:
    """What a run-kill-resume series did."""

    kills: list[dict[str, Any]] = field(default_factory=list)
    cycles: int = 0
    record_attempts: list[list[Any]] = field(default_factory=list)
    repeated: list[Any] = field(default_factory=list)
    in_flight: int = 0  # rows being written when a kill landed (rolled back, so redone by the resume)


def committed_keys(path: str) -> set[tuple[int, str, str]]:
    con = sqlite3.connect(path, timeout=30)
    try:
        return {(int(c), s, t) for c, s, t in con.execute("SELECT candidate_id, split, task_id FROM evaluations")}
    finally:
        con.close()


def reference_run(tmp_path: Path, cfg: SearchConfig) -> dict[str, int]:
    """An uninterrupted run through the wrapper with no kills; returns its counts of work per point."""
    counts_dir = tmp_path / "ref-counts"
    res = run_cli(["run", write_config(cfg, tmp_path / "ref.toml"), "--quiet"], killpoints=True,
                  env=cli_env(METASEARCH_KILL_DIR=str(counts_dir)))
    assert res.returncode == 0, res.stderr
    return read_counts(counts_dir)


def kill_series(tmp_path: Path, cfg: SearchConfig, plan: list[tuple[str, int]]) -> Series:
    """`run`, then `resume` after each kill, until the run ends by itself; checks the file after every kill."""
    kill_dir = tmp_path / "kills"
    env = cli_env(METASEARCH_KILL_DIR=str(kill_dir), METASEARCH_KILL_PLAN=format_plan(plan))
    config_path = write_config(cfg, tmp_path / "run.toml")
    series = Series()
    committed: set[tuple[int, str, str]] = set()
    seen_attempts = 0
    for cycle in range(len(plan) + 2):
        args = ["run", config_path] if cycle == 0 else ["resume", "1", "--archive", cfg.archive]
        res = run_cli([*args, "--quiet"], killpoints=True, env=env)
        series.cycles += 1
        attempts = read_jsonl(kill_dir / "recorded.jsonl")
        new_attempts = [tuple(a) for a in attempts[seen_attempts:]]
        seen_attempts = len(attempts)
        series.repeated += [a for a in new_attempts if a in committed]  # ran again after it was committed
        series.record_attempts = attempts
        new_kills = read_jsonl(kill_dir / "kills.jsonl")[len(series.kills):]
        if res.returncode == 0:
            assert not new_kills
            break
        assert res.returncode == -signal.SIGKILL and len(new_kills) == 1, (res.returncode, res.stderr[-2000:])
        series.kills += new_kills
        assert integrity(cfg.archive) == "ok", f"after kill {new_kills[0]}"
        assert wait_gone(new_kills[0]["children"]) == [], "sandbox workers outlived the killed search"
        committed = committed_keys(cfg.archive)
        # One thread records, one row at a time: at most the row being written when the kill landed is lost,
        # and exactly that one when the kill was inside the write itself.
        lost = [a for a in new_attempts if a not in committed]
        assert len(lost) <= 1, lost
        if new_kills[0]["point"] == "record_evaluations":
            assert len(lost) == 1
        series.in_flight += len(lost)
    else:
        raise AssertionError(f"the run did not finish after {series.cycles} cycles")
    return series


def check_series(series: Series, plan: list[tuple[str, int]], cfg: SearchConfig, reference: SearchConfig,
                 figures: Figures) -> None:
    assert sorted((k["point"], k["count"]) for k in series.kills) == sorted(plan)  # every kill fired, once
    assert series.cycles == len(plan) + 1
    assert behaviour(cfg.archive) == behaviour(reference.archive)  # nothing lost, nothing different
    rows = evaluation_rows(cfg.archive)
    assert rows == evaluation_rows(reference.archive)
    assert series.repeated == [], "a committed evaluation ran again after a resume"
    # Each row was recorded once, plus once more for each kill that landed during its (rolled back) write.
    assert len(series.record_attempts) == rows + series.in_flight
    assert integrity(cfg.archive) == "ok"
    figures.add("kills", "series")
    figures.add("kills", "kills", len(series.kills))
    figures.add("kills", "resumes", series.cycles - 1)
    figures.add("kills", "integrity_checks_ok", len(series.kills) + 1)
    figures.add("kills", "evaluations_checked", rows)
    figures.add("kills", "evaluations_lost", 0)
    figures.add("kills", "evaluations_repeated", len(series.repeated))
    for kill in series.kills:
        figures.add("kills", f"at.{kill['point']}")


def spread(total: int, fractions: list[float]) -> list[int]:
    """Distinct thresholds in [1, total] at the given fractions of a reference count."""
    return sorted({min(total, max(1, round(total * f))) for f in fractions})


def test_kill_9_during_proposal_evaluation_and_archive_writes_then_resume(tmp_path: Path, figures: Figures) -> None:
    reference = kill_config(tmp_path / "ref")
    counts = reference_run(tmp_path, reference)
    assert counts["propose"] == 3 and counts["record_evaluations"] > 50, counts
    plan = [("propose", 2), ("chat", counts["chat"] * 2 // 5), ("record_evaluations", counts["record_evaluations"] * 3 // 4),
            ("update_candidate", counts["update_candidate"] // 2)]
    cfg = kill_config(tmp_path / "run")
    series = kill_series(tmp_path, cfg, plan)
    check_series(series, plan, cfg, reference, figures)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["meta", "mcts"])
def test_kill_resume_soak(strategy: str, tmp_path: Path, figures: Figures) -> None:
    """At least 10 kills spread over the whole run, at every kind of point."""
    overrides: dict[str, Any] = {"strategy__name": strategy, "budget__iterations": 4}
    if strategy == "mcts":
        overrides.update(strategy__mcts__children=4, strategy__mcts__evaluate_top=1)
    reference = kill_config(tmp_path / "ref", **overrides)
    counts = reference_run(tmp_path, reference)
    plan = [("chat", n) for n in spread(counts["chat"], [0.1, 0.35, 0.6, 0.9])]
    plan += [("record_evaluations", n) for n in spread(counts["record_evaluations"], [0.2, 0.5, 0.8])]
    plan += [("update_candidate", n) for n in spread(counts["update_candidate"], [0.3, 0.7])]
    plan += [("log_event", n) for n in spread(counts["log_event"], [0.4, 0.95])]
    plan += [("add_candidate", n) for n in spread(counts["add_candidate"], [0.5])]
    plan += [("propose", n) for n in spread(counts["propose"], [0.5, 1.0])]
    assert len(plan) >= 10
    cfg = kill_config(tmp_path / "run", **overrides)
    series = kill_series(tmp_path, cfg, plan)
    check_series(series, plan, cfg, reference, figures)


def test_a_sandbox_worker_killed_mid_task_is_retried_with_the_same_result(tmp_path: Path, figures: Figures) -> None:
    cfg = small_config(tmp_path, suite__val=4)
    suite = load_suite(cfg.suite)
    spec = RunnerSpec(endpoint=cfg.endpoint, evaluator=cfg.evaluator, seed=cfg.seed,
                      sim_tasks=[t.to_dict() for t in suite.all_tasks()], pool_size=1)
    code = load_seeds(["debate"])[0].code  # seven LLM calls per task: the kill lands mid-task
    key = candidate_key(code)
    runner = TaskRunner(spec)
    try:
        undisturbed = [runner.run(key, code, t) for t in suite.val]
        killed: dict[str, int] = {}  # task id -> the worker pid killed during it
        real_for_task = runner.lm.for_task

        def for_task(candidate: str, task_id: str) -> Any:
            tlm = real_for_task(candidate, task_id)
            real_handle = tlm.handle

            def handle(method: str, kwargs: dict[str, Any]) -> Any:
                if tlm.calls == 2 and task_id not in killed:  # the third call of the first attempt
                    killed[task_id] = runner.pool.worker_pids()[0]
                    os.kill(killed[task_id], signal.SIGKILL)
                return real_handle(method, kwargs)

            tlm.handle = handle  # type: ignore[method-assign]
            return tlm

        runner.lm.for_task = for_task  # type: ignore[method-assign]
        disturbed = [runner.run(key, code, t) for t in suite.val]
        replacements = runner.pool.replacements
    finally:
        runner.close()
    assert len(killed) == len(suite.val) and replacements == len(suite.val)
    same = lambda r: (r.task_id, r.score, r.answer, r.llm_calls, r.error)  # noqa: E731
    assert [same(r) for r in disturbed] == [same(r) for r in undisturbed]
    assert all(r.error is None for r in disturbed)
    # The killed attempt's calls were paid for, so they are billed on top of the retry's.
    assert all(d.prompt_tokens > u.prompt_tokens for d, u in zip(disturbed, undisturbed))
    figures.add("kills", "sandbox_workers_killed", len(killed))
    figures.add("kills", "sandbox_tasks_retried_same_result", len(killed))
