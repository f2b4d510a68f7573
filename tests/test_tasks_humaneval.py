"""humaneval: the 164 shipped problems; the canonical solution passes its tests in the sandbox, a wrong one fails."""

import pytest

from metasearch.config import SuiteConfig
from metasearch.tasks import load_suite, score
from metasearch.tasks.humaneval import humaneval_pool


def test_loads_all_164_problems_without_download():
    pool = humaneval_pool()
    assert len(pool) == 164
    first = pool[0]
    assert first.id == "HumanEval/0" and first.kind == "code"
    assert first.meta["entry_point"] == "has_close_elements" and "def check(candidate)" in first.meta["tests"]
    assert first.meta["scorer"] == "unit_tests"
    assert first.answer.startswith(first.question)  # the gold is the complete program
    assert "tests" not in first.public()["meta"] and "difficulty" not in first.public()["meta"]
    assert len({t.id for t in pool}) == 164


def test_humaneval_suite_split():
    suite = load_suite(SuiteConfig(source="humaneval", val=10, test=20, seed=0))
    assert len(suite.val) == 10 and len(suite.test) == 20


def _sandbox():
    return pytest.importorskip("metasearch.sandbox", reason="sandbox not built yet")


def test_canonical_solution_scores_one_and_wrong_one_zero():
    _sandbox()
    task = humaneval_pool()[0]
    assert score(task, task.answer) == 1.0
    assert score(task, f"Here you go:\n```python\n{task.answer}\n```") == 1.0
    body = task.answer[len(task.question):]
    assert score(task, body) == 1.0  # a bare body is completed with the prompt, as HumanEval completions are
    wrong = task.question + "    return False\n"
    assert score(task, wrong) == 0.0
    assert score(task, "") == 0.0


def test_example_jsonl_code_tasks_score_through_the_sandbox():
    _sandbox()
    from pathlib import Path

    from metasearch.tasks.jsonl import load_jsonl
    path = Path(__file__).resolve().parent.parent / "experiments" / "configs" / "tasks_example.jsonl"
    code = [t for t in load_jsonl(path) if t.kind == "code"]
    assert code
    for t in code:
        assert score(t, t.answer) == 1.0
        assert score(t, t.question + "    return None\n") == 0.0


@pytest.mark.slow
def test_every_canonical_solution_passes_in_the_sandbox():
    """All 164 (30-80 s on 2 cores): the scorer and the sandbox agree with the dataset."""
    _sandbox()
    failing = [t.id for t in humaneval_pool() if score(t, t.answer) != 1.0]
    assert failing == []
