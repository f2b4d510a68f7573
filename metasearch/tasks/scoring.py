"""Scorers: how a candidate's answer string is compared with a task's gold answer, each in [0, 1].

`score(task, answer)` picks `task.meta["scorer"]` or the kind's default, and first runs `extract_answer` for
non-code kinds so that a whole reply ("... so the answer is 42") scores like its final answer ("42").
Scorers are pure and fast, except `unit_tests`, which runs the program in the sandbox (never in this process).
"""

from __future__ import annotations

import collections
import math
import re
from collections.abc import Callable
from typing import Any

from metasearch.errors import SuiteError
from metasearch.tasks.base import Task
from metasearch.tasks.helpers import extract_answer, normalize_answer, normalize_number

REL_TOL = 1e-6
ABS_TOL = 1e-9

Scorer = Callable[[str, str, Task], float]


def _to_float(text: str) -> float | None:
    """A number's value: decimal, exponent or fraction ('3/4'); None if `text` is not one number."""
    canonical = normalize_number(text)
    if canonical is None:
        return None
    if "/" in canonical:
        num, den = canonical.split("/")
        return int(num) / int(den)
    try:
        value = float(canonical)
    except (ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def exact(answer: str, gold: str, task: Task | None = None) -> float:
    """1.0 when the normalised answers (case, punctuation, articles, number spelling) are equal."""
    norm_gold = normalize_answer(gold)
    if norm_gold:
        return float(normalize_answer(answer) == norm_gold)
    raw_gold = (gold or "").strip()  # gold made only of punctuation/articles: compare it as written
    return float(raw_gold != "" and (answer or "").strip() == raw_gold)


def numeric(answer: str, gold: str, task: Task | None = None) -> float:
    """1.0 when both are numbers equal within rel 1e-6 / abs 1e-9; falls back to `exact` for non-numbers."""
    a, g = _to_float(answer), _to_float(gold)
    if a is None or g is None:
        return exact(answer, gold, task) if g is None else 0.0
    return float(math.isclose(a, g, rel_tol=REL_TOL, abs_tol=ABS_TOL))


def f1(answer: str, gold: str, task: Task | None = None) -> float:
    """Token-level F1 between normalised answers (DROP/SQuAD style); a number mismatch scores 0."""
    pred_tokens = normalize_answer(answer).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return exact(answer, gold, task)
    gold_numbers = {t for t in gold_tokens if normalize_number(t) is not None}
    pred_numbers = {t for t in pred_tokens if normalize_number(t) is not None}
    if gold_numbers and not gold_numbers & pred_numbers:
        return 0.0  # DROP: a wrong number is wrong, however many words match around it
    common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred_tokens), overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def mc(answer: str, gold: str, task: Task | None = None) -> float:
    """1.0 when the chosen letter (A-E) equals the gold letter."""
    picked = extract_answer(answer, "mc")
    wanted = extract_answer(gold, "mc") or (gold or "").strip().upper()
    return float(picked != "" and picked == wanted)


def unit_tests(answer: str, gold: str, task: Task | None = None, *, limits: Any = None) -> float:
    """1.0 when the program passes the task's tests, run in a sandbox worker (never in this process)."""
    if task is None or "tests" not in task.meta or "entry_point" not in task.meta:
        raise SuiteError(f"task {getattr(task, 'id', '?')}: unit_tests scorer needs meta 'tests' and 'entry_point'")
    from metasearch.sandbox import Limits, run_unit_tests  # lazy: the sandbox is heavy and optional here

    program = extract_answer(answer, "code")
    if not program.strip():
        return 0.0
    entry_point = task.meta["entry_point"]
    if not re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", program, re.MULTILINE):
        program = task.question + program  # a bare body, as HumanEval completions are: complete it
    passed, _error = run_unit_tests(program, task.meta["tests"], entry_point, limits or Limits())
    return float(bool(passed))


SCORERS: dict[str, Scorer] = {"exact": exact, "numeric": numeric, "f1": f1, "mc": mc, "unit_tests": unit_tests}
DEFAULT_SCORER = {"math": "numeric", "qa": "f1", "mc": "mc", "code": "unit_tests"}


def scorer_name(task: Task) -> str:
    """The scorer a task uses: `meta["scorer"]` if set, else its kind's default."""
    name = task.meta.get("scorer") or DEFAULT_SCORER.get(task.kind, "exact")
    if name not in SCORERS:
        raise SuiteError(f"task {task.id}: unknown scorer {name!r} (known: {', '.join(SCORERS)})")
    return name


def score(task: Task, answer: Any, *, limits: Any = None) -> float:
    """The answer's score in [0, 1]. Non-code answers are reduced to their final answer first.

    `limits` (a `metasearch.sandbox.Limits`) bounds the unit-test run of code tasks; default `Limits()`.
    """
    name = scorer_name(task)
    text = answer if isinstance(answer, str) else ("" if answer is None else str(answer))
    if name == "unit_tests":
        return unit_tests(text, task.answer, task, limits=limits)
    if name in ("numeric", "exact") and task.kind == "math" and normalize_number(task.answer) is None:
        # A symbolic gold ("x+1"): take the final answer as text, not its first number, and compare it
        # without spaces or LaTeX wrappers.
        return float(_math_text(extract_answer(text, "qa")) == _math_text(task.answer) != "")
    if name == "exact" and "\n" in task.answer.strip():
        # A multi-line gold (a grid, a list of moves): compare the whole block after the last 'Answer:'.
        return exact(_answer_block(text), task.answer, task)
    extract_kind = {"numeric": "math", "mc": "mc"}.get(name, task.kind)
    extracted = extract_answer(text, extract_kind)
    text = extracted if extracted or extract_kind == "mc" else text.strip()
    return max(0.0, min(1.0, SCORERS[name](text, task.answer, task)))


def _math_text(text: str) -> str:
    """A symbolic math answer as comparable text: no spaces, '$', \\boxed{} wrapper or trailing period."""
    text = re.sub(r"\s+", "", text or "").strip("$").rstrip(".")
    boxed = re.fullmatch(r"\\boxed\{(.*)\}", text)
    return (boxed.group(1) if boxed else text).lower()


def _answer_block(text: str) -> str:
    """Everything after the last 'Answer:' (several lines allowed), else the whole reply."""
    found = list(re.finditer(r"answer\s*:", text, re.IGNORECASE))
    return (text[found[-1].end():] if found else text).strip()
