"""`gym:NAME[,NAME...]` suites from reasoning-gym's procedural, verifiable generators.

`reasoning_gym.create_dataset(name, size=..., seed=...)` is deterministic for a given (name, size, seed), so a
suite is reproducible from its config. Only the question, the answer and a derived difficulty are kept: the
entries' own metadata often spell the answer out (gsm_symbolic's `answer_cot`), and `Task.public()` would
show it to candidates.

Checked with reasoning-gym 0.1.25: basic_arithmetic, leg_counting, letter_counting, gsm_symbolic (numeric
answers, kind math) and spell_backward (text answers, kind qa, exact match) are tested. A sweep of all 106
registered datasets (5 tasks each, seed 0) found 105 that load and whose gold answer, replied as
"Answer: <gold>", scores 1.0; multi-line golds (sudoku, n_queens, matrix tasks) are compared as a whole block.
`composite` needs a config of sub-datasets and is refused: name the datasets directly instead. Slow
generators exist (knight_swap: ~1.3 s per task).
"""

from __future__ import annotations

import math
from typing import Any

from metasearch.errors import SuiteError
from metasearch.tasks.base import Task
from metasearch.tasks.helpers import normalize_number
from metasearch.tasks.jsonl import hashed_difficulty

CHECKED_DATASETS = ("basic_arithmetic", "leg_counting", "letter_counting", "gsm_symbolic")

_UNSUPPORTED = {"composite"}  # needs a nested config of sub-datasets; `gym:a,b` covers the use

_BLURBS = {
    "basic_arithmetic": "evaluate an arithmetic expression such as 'Calculate 5 - 3 * 6.'",
    "leg_counting": "count the legs of a list of animals",
    "letter_counting": "count how often a letter occurs in a text",
    "gsm_symbolic": "grade-school math word problems (GSM8K templates)",
    "spell_backward": "spell a word backwards",
}


def dataset_names() -> list[str]:
    """Every dataset name the installed reasoning-gym registers."""
    import reasoning_gym.factory as factory  # imported here: reasoning-gym is slow to import (~1 s)

    return sorted(name for name in factory.DATASETS if name not in _UNSUPPORTED)


def parse_names(spec: str) -> list[str]:
    """`basic_arithmetic,leg_counting` -> names, checked against reasoning-gym's registry."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise SuiteError("gym: needs at least one dataset name, e.g. gym:basic_arithmetic")
    if len(set(names)) != len(names):
        raise SuiteError(f"gym:{spec}: a dataset is named twice")
    known = set(dataset_names())
    for name in names:
        if name in _UNSUPPORTED:
            raise SuiteError(f"gym:{name} is not supported: list the datasets instead, e.g. gym:leg_counting,"
                             "basic_arithmetic")
        if name not in known:
            close = [k for k in sorted(known) if name[:4] in k][:3]
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise SuiteError(f"gym: unknown reasoning-gym dataset {name!r}{hint}")
    return names


def _difficulty(name: str, entry: dict[str, Any]) -> float:
    """The dataset's own float difficulty if it gives one, else one derived from a hash of the question."""
    given = (entry.get("metadata") or {}).get("difficulty")
    if isinstance(given, (int, float)) and not isinstance(given, bool) and math.isfinite(given):
        jitter = hashed_difficulty(f"gym|{name}|{entry['question']}", -0.5, 0.5)
        return round(max(-1.5, min(2.5, float(given) - 0.5 + jitter)), 3)
    return hashed_difficulty(f"gym|{name}|{entry['question']}")


def _task(name: str, seed: int, index: int, entry: dict[str, Any]) -> Task:
    answer = str(entry.get("answer", ""))
    kind = "math" if normalize_number(answer) is not None else "qa"
    return Task(id=f"{name}-s{seed}-{index:05d}", question=str(entry["question"]), answer=answer, kind=kind,
                meta={"source": name, "difficulty": _difficulty(name, entry),
                      "scorer": "numeric" if kind == "math" else "exact"})


def load_gym(spec: str, size: int, seed: int) -> list[Task]:
    """At least `size` tasks, split evenly over the named datasets, generated with `seed`."""
    names = parse_names(spec)
    import reasoning_gym

    per_name = max(1, math.ceil(size / len(names)))
    tasks: list[Task] = []
    for name in names:
        try:
            dataset = reasoning_gym.create_dataset(name, size=per_name, seed=seed)
            entries = [dataset[i] for i in range(per_name)]
        except Exception as err:  # a generator's own failure is the user's dataset choice, not our bug
            raise SuiteError(f"gym:{name}: reasoning-gym could not generate tasks: {err}") from None
        tasks.extend(_task(name, seed, i + 1, e) for i, e in enumerate(entries) if str(e.get("answer", "")))
    return tasks


def describe_gym(spec: str) -> str:
    """The suite description for the meta-agent prompt."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    parts = [f"{n} ({_BLURBS[n]})" if n in _BLURBS else n for n in names]
    return (f"gym:{spec}: procedurally generated reasoning-gym tasks: {'; '.join(parts)}. Numeric answers are "
            "scored numerically ('Answer: 42'), text answers by normalised exact match ('Answer: <text>').")
