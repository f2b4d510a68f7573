"""Built-in procedural suites: `builtin:arith` and `builtin:mixed`.

The pools are generated from fixed seeds with `random.Random` methods whose output is specified for int seeds
(`randint`, `choice`, `random`), so every machine and process builds the very same pool; a suite's own seed
only chooses which tasks are sampled and how they are split (see `registry.split`). Each task carries a latent
`meta["difficulty"]` (roughly -1.5..2.5) from its number of steps and the size of its numbers: the simulated
LLM uses it as the item difficulty of a logistic model.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from metasearch.tasks.base import Task

ARITH_POOL_SIZE = 5000
ARITH_POOL_SEED = 20241
MIXED_POOL_SIZE = 3000
MIXED_POOL_SEED = 20242

ARITH_DESCRIPTION = (
    "builtin:arith: multi-step arithmetic word problems (1-5 steps: adding, removing, buying or selling in "
    "groups, doubling, sharing equally) about a shop, farm, library or similar. Each question asks for one "
    "whole number. Answer format: the integer, e.g. end the reply with 'Answer: 42'. Scored numerically."
)
MIXED_DESCRIPTION = (
    "builtin:mixed: a mix of arithmetic word problems (kind math: answer one integer, 'Answer: 42'), "
    "ordering/comparison questions about named people (kind qa: answer a name, 'Answer: Alice', token F1) and "
    "multiple-choice arithmetic (kind mc: answer the choice letter, 'Answer: C')."
)


@dataclass(frozen=True)
class _Scene:
    owner: str        # "A shop", used at the start of the question
    pronoun: str      # "the shop", used later
    item: str         # plural noun
    group: str        # container noun, plural
    people: str       # who shares things


_SCENES = [
    _Scene("A shop", "the shop", "apples", "crates", "customers"),
    _Scene("A farm", "the farm", "eggs", "cartons", "neighbours"),
    _Scene("A library", "the library", "books", "boxes", "classrooms"),
    _Scene("A bakery", "the bakery", "muffins", "trays", "tables"),
    _Scene("A school", "the school", "pencils", "packs", "classes"),
    _Scene("A warehouse", "the warehouse", "bottles", "cases", "trucks"),
    _Scene("A florist", "the florist", "roses", "bunches", "vases"),
    _Scene("A toy store", "the toy store", "marbles", "bags", "children"),
    _Scene("A garden centre", "the garden centre", "seedlings", "trays", "beds"),
    _Scene("A stationery shop", "the stationery shop", "notebooks", "bundles", "students"),
]
_NAMES = ["Ava", "Ben", "Chloe", "Diego", "Emma", "Farid", "Grace", "Hiro", "Isla", "Jonas", "Kemi", "Liam",
          "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sam", "Tariq", "Uma", "Victor", "Wen", "Yara", "Zoe"]


def _difficulty(steps: int, magnitude: int, jitter: float) -> float:
    """Latent difficulty: more steps and bigger numbers are harder; clipped to [-1.5, 2.5]."""
    raw = -1.6 + 0.45 * (steps - 1) + 0.35 * (math.log10(max(magnitude, 10)) - 1) + jitter
    return round(min(2.5, max(-1.5, raw)), 3)


def _step(rng: random.Random, scene: _Scene, value: int, big: bool) -> tuple[str, int, int]:
    """One operation on the running count: (sentence, new value, weight in steps)."""
    hi = 400 if big else 40
    kinds = ["add", "sub", "add_groups", "sub_groups", "mul"]
    while True:
        kind = rng.choice(kinds)
        if kind == "add":
            k = rng.randint(2, hi)
            verb = rng.choice(["receives", "buys", "gets a delivery of", "finds"])
            return f"{scene.pronoun.capitalize()} {verb} {k} more.", value + k, 1
        if kind == "sub" and value > 2:
            k = rng.randint(1, value - 1)
            verb = rng.choice(["sells", "gives away", "loses", "uses"])
            return f"Then it {verb} {k}.", value - k, 1
        if kind == "add_groups":
            c, n = rng.randint(2, 9), rng.randint(2, 12 if not big else 25)
            return f"It buys {c} {scene.group} of {n}.", value + c * n, 2
        if kind == "sub_groups" and value >= 4:
            n = rng.randint(2, min(12, value // 2))
            c = rng.randint(2, value // n)
            return f"It sells {c} {scene.group} of {n}.", value - c * n, 2
        if kind == "mul" and value <= (2000 if big else 200):
            m = rng.choice([2, 2, 3])
            word = {2: "doubles", 3: "triples"}[m]
            return f"Then {scene.pronoun} {word} what it has.", value * m, 1


def _arith_problem(rng: random.Random) -> tuple[str, int, int, int]:
    """(question, answer, steps, largest number seen) for one arithmetic word problem."""
    scene = rng.choice(_SCENES)
    big = rng.random() < 0.35
    value = rng.randint(10, 999 if big else 60)
    sentences = [f"{scene.owner} has {value} {scene.item}."]
    n_ops = rng.choice([1, 1, 2, 2, 2, 3, 3, 3, 4, 4])
    steps, magnitude = 0, value
    for _ in range(n_ops):
        sentence, value, weight = _step(rng, scene, value, big)
        sentences.append(sentence)
        steps += weight
        magnitude = max(magnitude, value)
    divisors = [d for d in range(2, 10) if value % d == 0 and value // d >= 2]
    if divisors and rng.random() < 0.3:
        d = rng.choice(divisors)
        sentences.append(f"It shares them equally among {d} {scene.people}.")
        sentences.append(f"How many {scene.item} does each of the {scene.people} get?")
        value //= d
        steps += 1
    else:
        sentences.append(f"How many {scene.item} does {scene.pronoun} have now?")
    return " ".join(sentences), value, steps, magnitude


def _draw_unseen(draw: Callable[[random.Random], tuple[Any, ...]], rng: random.Random,
                 seen: set[str]) -> tuple[Any, ...]:
    """Draw problems until one has a question not in `seen` (a pool never repeats a question); record it."""
    while True:
        problem = draw(rng)
        if problem[0] not in seen:
            seen.add(problem[0])
            return problem


def _arith_task(index: int, rng: random.Random, seen: set[str]) -> Task:
    question, answer, steps, magnitude = _draw_unseen(_arith_problem, rng, seen)
    jitter = (rng.random() - 0.5) * 0.4
    return Task(id=f"arith-{index:05d}", question=question, answer=str(answer), kind="math",
                meta={"difficulty": _difficulty(steps, magnitude, jitter), "steps": steps, "scorer": "numeric"})


@functools.lru_cache(maxsize=1)
def arith_pool() -> tuple[Task, ...]:
    """The fixed pool of 5,000 arithmetic word problems (same on every machine)."""
    rng = random.Random(ARITH_POOL_SEED)
    seen: set[str] = set()
    return tuple(_arith_task(i + 1, rng, seen) for i in range(ARITH_POOL_SIZE))


def _order_question(rng: random.Random) -> tuple[str, str, int]:
    """A comparison puzzle: (question, answer name, number of facts)."""
    n = rng.randint(3, 5)
    people = rng.sample(_NAMES, n)  # people[0] is the largest
    trait, most, least = rng.choice([("taller", "tallest", "shortest"), ("older", "oldest", "youngest"),
                                     ("faster", "fastest", "slowest"), ("richer", "richest", "poorest")])
    facts = [f"{people[i]} is {trait} than {people[i + 1]}." for i in range(n - 1)]
    rng.shuffle(facts)
    if rng.random() < 0.5:
        return f"{' '.join(facts)} Who is the {most}?", people[0], n - 1
    return f"{' '.join(facts)} Who is the {least}?", people[-1], n - 1


def _mc_question(rng: random.Random) -> tuple[str, str, int, int]:
    """A multiple-choice arithmetic question: (question with choices, letter, steps, magnitude)."""
    question, answer, steps, magnitude = _arith_problem(rng)
    wrong: set[int] = set()
    while len(wrong) < 3:
        delta = rng.choice([-1, 1]) * rng.randint(1, max(3, abs(answer) // 4 + 1))
        if answer + delta != answer and answer + delta >= 0:
            wrong.add(answer + delta)
    options = [*sorted(wrong), answer]
    rng.shuffle(options)
    letters = "ABCD"
    lines = "\n".join(f"({letters[i]}) {v}" for i, v in enumerate(options))
    return f"{question}\n{lines}", letters[options.index(answer)], steps, magnitude


@functools.lru_cache(maxsize=1)
def mixed_pool() -> tuple[Task, ...]:
    """The fixed pool of 3,000 mixed tasks: math, qa (ordering puzzles) and mc, in a fixed order."""
    rng = random.Random(MIXED_POOL_SEED)
    seen: set[str] = set()

    def math_task(i: int) -> Task:
        t = _arith_task(i, rng, seen)
        return Task(id=f"mixed-{i:05d}", question=t.question, answer=t.answer, kind="math", meta=t.meta)

    def qa_task(i: int) -> Task:
        question, name, facts = _draw_unseen(_order_question, rng, seen)
        jitter = (rng.random() - 0.5) * 0.4
        return Task(id=f"mixed-{i:05d}", question=question, answer=name, kind="qa",
                    meta={"difficulty": round(-1.2 + 0.6 * (facts - 2) + jitter, 3), "steps": facts,
                          "scorer": "f1"})

    def mc_task(i: int) -> Task:
        question, letter, steps, magnitude = _draw_unseen(_mc_question, rng, seen)
        jitter = (rng.random() - 0.5) * 0.4
        return Task(id=f"mixed-{i:05d}", question=question, answer=letter, kind="mc",
                    meta={"difficulty": _difficulty(steps, magnitude, jitter - 0.4), "steps": steps,
                          "scorer": "mc"})

    makers: list[Callable[[int], Task]] = [math_task, qa_task, mc_task]
    return tuple(makers[i % 3](i + 1) for i in range(MIXED_POOL_SIZE))


BUILTIN_POOLS: dict[str, tuple[Callable[[], tuple[Task, ...]], str]] = {
    "arith": (arith_pool, ARITH_DESCRIPTION),
    "mixed": (mixed_pool, MIXED_DESCRIPTION),
}
