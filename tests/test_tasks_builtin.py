"""builtin:arith and builtin:mixed: fixed pools that never change across machines, and correct answers."""

import hashlib
import json
import re

from metasearch.tasks import score
from metasearch.tasks.builtin import ARITH_POOL_SIZE, arith_pool, mixed_pool


def _digest(pool):
    m = hashlib.sha256()
    for t in pool:
        m.update(json.dumps(t.to_dict(), sort_keys=True).encode())
    return m.hexdigest()


def test_arith_pool_is_fixed_forever():
    """Computed once; if this fails the pool changed and every archived score stops being comparable."""
    pool = arith_pool()
    assert len(pool) == ARITH_POOL_SIZE == 5000
    first = pool[0]
    assert first.id == "arith-00001"
    assert first.question == ("A library has 158 books. Then the library triples what it has. The library "
                              "receives 166 more. Then it gives away 409. How many books does the library have now?")
    assert first.answer == "231"
    assert first.meta == {"difficulty": -0.223, "steps": 3, "scorer": "numeric"}
    assert (pool[999].id, pool[999].answer) == ("arith-01000", "14")
    assert (pool[4999].id, pool[4999].answer) == ("arith-05000", "11")
    assert _digest(pool) == "61c5e24d8e28b3eeb6e380f729f244eef2250c507996f9bc15d131f7cc706304"


def test_mixed_pool_is_fixed_forever():
    pool = mixed_pool()
    assert len(pool) == 3000
    assert (pool[1].kind, pool[1].answer) == ("qa", "Noah")
    assert (pool[2].kind, pool[2].answer) == ("mc", "A")
    assert _digest(pool) == "56b8ad92a3c00f6e5b63c4a87fc30f966d8b88c97d631572c39294a727a77fa7"


def _recompute(question: str) -> int:
    """Re-solve an arith question from its text, independently of the generator."""
    value = int(re.match(r"An? [\w ]+? has (\d+) ", question).group(1))
    for sentence in re.split(r"(?<=[.?])\s+", question)[1:]:
        if m := re.search(r"(?:receives|buys|gets a delivery of|finds) (\d+) more", sentence):
            value += int(m.group(1))
        elif m := re.search(r"(?:buys) (\d+) \w+ of (\d+)", sentence):
            value += int(m.group(1)) * int(m.group(2))
        elif m := re.search(r"sells (\d+) \w+ of (\d+)", sentence):
            value -= int(m.group(1)) * int(m.group(2))
        elif m := re.search(r"(?:sells|gives away|loses|uses) (\d+)\.", sentence):
            value -= int(m.group(1))
        elif "doubles" in sentence:
            value *= 2
        elif "triples" in sentence:
            value *= 3
        elif m := re.search(r"equally among (\d+)", sentence):
            assert value % int(m.group(1)) == 0
            value //= int(m.group(1))
    return value


def test_arith_answers_are_correct_integers():
    for t in arith_pool()[:500]:
        assert t.answer == str(_recompute(t.question)), t.id
        assert int(t.answer) >= 0


def test_arith_tasks_are_unique_and_well_formed():
    pool = arith_pool()
    assert len({t.id for t in pool}) == len({t.question for t in pool}) == len(pool)
    difficulties = [t.meta["difficulty"] for t in pool]
    assert -1.5 <= min(difficulties) and max(difficulties) <= 2.5
    assert max(difficulties) - min(difficulties) > 3.0  # a real spread for the simulator
    assert all(t.kind == "math" and t.meta["scorer"] == "numeric" and t.meta["steps"] >= 1 for t in pool)


def test_difficulty_grows_with_steps():
    by_steps = {}
    for t in arith_pool():
        by_steps.setdefault(t.meta["steps"], []).append(t.meta["difficulty"])
    means = [sum(v) / len(v) for _, v in sorted(by_steps.items()) if len(v) > 30]
    assert means == sorted(means)


def test_mixed_gold_answers_score_one():
    for t in mixed_pool()[:300]:
        assert score(t, f"Reasoning...\nAnswer: {t.answer}") == 1.0, t.id
    assert {t.kind for t in mixed_pool()} == {"math", "qa", "mc"}
