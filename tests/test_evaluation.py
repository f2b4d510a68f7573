"""The evaluator: sandboxed scores equal trusted ones, cascade stops hopeless candidates, Ray retries are invisible."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from conftest import small_config
from metasearch.evaluation import Evaluator, bootstrap_ci
from metasearch.llm.client import LM
from metasearch.search import candidate_key
from metasearch.seeds import load_seeds
from metasearch.tasks import load_suite, score
from metasearch.tasks import helpers


def test_bootstrap_ci_is_deterministic_and_brackets_the_mean() -> None:
    scores = [1.0] * 30 + [0.0] * 70
    a, b = bootstrap_ci(scores, seed=3), bootstrap_ci(scores, seed=3)
    assert a == b
    assert a.mean == pytest.approx(0.3) and a.low < a.mean < a.high
    assert 0.05 < a.high - a.low < 0.3
    assert bootstrap_ci([]).n == 0 and bootstrap_ci([1.0]).low == 1.0


class _TrustedTask:
    def __init__(self, d: dict) -> None:
        self.id, self.question, self.kind, self.meta = d["id"], d["question"], d["kind"], d["meta"]


def trusted_scores(code: str, cfg, tasks) -> list[float]:
    """Run a seed agent in-process (trusted code only: the seed library) through the same LM and seeds."""
    lm = LM(cfg.endpoint, seed=cfg.seed, tasks=tasks)
    namespace = {"extract_answer": helpers.extract_answer, "majority_vote": helpers.majority_vote}
    exec(compile(code, "<seed>", "exec"), namespace)  # noqa: S102 - trusted seed file, test only
    out = []
    for t in tasks:
        answer = namespace["forward"](_TrustedTask(t.public()), lm.for_task(candidate_key(code), t.id))
        out.append(score(t, str(answer)))
    return out


def test_seed_agents_score_the_same_in_the_sandbox_as_in_process(tmp_path: Path) -> None:
    cfg = small_config(tmp_path, suite__val=12)
    suite = load_suite(cfg.suite)
    with Evaluator.from_config(cfg, sim_tasks=suite.all_tasks()) as evaluator:
        for seed in load_seeds(["all"]):
            sandboxed = evaluator.evaluate(candidate_key(seed.code), seed.code, suite.val)
            assert [r.error for r in sandboxed.results] == [None] * len(suite.val), seed.stem
            assert [r.score for r in sandboxed.results] == trusted_scores(seed.code, cfg, suite.val), seed.stem


def test_cascade_stops_a_candidate_that_cannot_beat_the_incumbent(tmp_path: Path) -> None:
    cfg = small_config(tmp_path, suite__val=40)
    suite = load_suite(cfg.suite)
    weak = "NAME='weak'\ndef forward(task, lm):\n    return 'no idea'\n"
    with Evaluator.from_config(cfg, sim_tasks=suite.all_tasks()) as evaluator:
        stopped = evaluator.evaluate("weak", weak, suite.val, incumbent=0.5, cascade_first=10)
        full = evaluator.evaluate("weak", weak, suite.val, incumbent=None, cascade_first=10)
    assert stopped.stopped_early and len(stopped.results) == 10
    assert not full.stopped_early and len(full.results) == 40


def test_results_are_identical_on_ray_actors_and_locally(tmp_path: Path) -> None:
    cfg = small_config(tmp_path, suite__val=16)
    ray_cfg = small_config(tmp_path, suite__val=16, evaluator__use_ray=True, evaluator__actors=2)
    suite = load_suite(cfg.suite)
    seed = load_seeds(["cot_sc"])[0]
    with Evaluator.from_config(cfg, sim_tasks=suite.all_tasks()) as local:
        a = local.evaluate(candidate_key(seed.code), seed.code, suite.val)
    with Evaluator.from_config(ray_cfg, sim_tasks=suite.all_tasks()) as on_ray:
        b = on_ray.evaluate(candidate_key(seed.code), seed.code, suite.val)
    key = lambda r: (r.task_id, r.score, r.answer, r.prompt_tokens, r.completion_tokens, r.llm_calls)  # noqa: E731
    assert sorted(map(key, a.results)) == sorted(map(key, b.results))


def test_killing_a_ray_actor_mid_evaluation_gives_the_undisturbed_result(tmp_path: Path) -> None:
    cfg = small_config(tmp_path, suite__val=24, evaluator__use_ray=True, evaluator__actors=2,
                       evaluator__tasks_in_flight=2)
    suite = load_suite(cfg.suite)
    seed = load_seeds(["debate"])[0]
    with Evaluator.from_config(cfg, sim_tasks=suite.all_tasks()) as evaluator:
        undisturbed = evaluator.evaluate(candidate_key(seed.code), seed.code, suite.val)
        pids = [n["pid"] for n in evaluator.nodes()]
        seen: list[int] = []

        def kill_after_first_results() -> None:
            while len(seen) < 3:
                time.sleep(0.01)
            os.kill(pids[0], signal.SIGKILL)

        killer = threading.Thread(target=kill_after_first_results)
        killer.start()
        disturbed = evaluator.evaluate(candidate_key(seed.code), seed.code, suite.val,
                                       on_result=lambda r: seen.append(1))
        killer.join()
        assert pids[0] not in [n["pid"] for n in evaluator.nodes()], "the actor was not restarted"
    key = lambda r: (r.task_id, r.score, r.answer, r.llm_calls)  # noqa: E731
    assert sorted(map(key, disturbed.results)) == sorted(map(key, undisturbed.results))
    assert disturbed.ci == undisturbed.ci
