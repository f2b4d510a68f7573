"""Neighbourhood moves: every result is valid, moves do what they say, randomness is reproducible."""

import random
from collections import Counter

import pytest

from metasearch.space import SEED_WORKFLOWS, crossover, mutate, neighbours, random_workflow, validate
from metasearch.space.ir import MAX_REFINERS, OPS, PRODUCERS
from metasearch.space.moves import (MOVES, add_operator, apply_move, change_parameter, mutate_described,
                                    remove_operator, replace_operator)


def _pool(seed=7, n=150):
    rng = random.Random(seed)
    return [validate(d) for d in SEED_WORKFLOWS.values()] + [random_workflow(rng) for _ in range(n)]


POOL = _pool()


@pytest.mark.parametrize("kind", sorted(MOVES))
def test_each_move_yields_valid_workflows_or_declines(kind):
    rng = random.Random(kind)
    applied = 0
    for wf in POOL:
        for _ in range(3):
            out = MOVES[kind](wf.to_dict(), rng)
            if out is None:
                continue
            data, note = out
            child = validate(data)  # raises if a move produced something invalid
            assert note and "\n" not in note
            applied += 1
            if kind != "change":
                assert child.key() != wf.key() or kind == "replace"
    assert applied > len(POOL)


def test_add_operator_adds_exactly_one_stage():
    rng = random.Random(1)
    for wf in POOL:
        out = add_operator(wf.to_dict(), rng)
        if out is None:
            assert "role" in wf.ops() and "step_back" in wf.ops() and len(wf.ops()) == 3 + MAX_REFINERS
            continue
        assert len(out[0]["stages"]) == len(wf.stages) + 1
        assert out[1].startswith("added ")


def test_remove_operator_keeps_the_producer():
    rng = random.Random(2)
    only_producer = validate({"stages": [{"op": "debate"}]})
    assert remove_operator(only_producer.to_dict(), rng) is None
    for wf in POOL:
        out = remove_operator(wf.to_dict(), rng)
        if out is not None:
            child = validate(out[0])
            assert len(child.stages) == len(wf.stages) - 1
            assert child.producer() == wf.producer()


def test_replace_operator_keeps_the_shape():
    rng = random.Random(3)
    changed_producer = 0
    for wf in POOL:
        child = validate(replace_operator(wf.to_dict(), rng)[0])
        assert len(child.stages) == len(wf.stages)
        assert [op in PRODUCERS for op in child.ops()] == [op in PRODUCERS for op in wf.ops()]
        changed_producer += child.producer().op != wf.producer().op
    assert changed_producer > 20


def test_change_parameter_changes_one_value_within_bounds():
    rng = random.Random(4)
    for wf in POOL:
        data, note = change_parameter(wf.to_dict(), rng)
        child = validate(data)
        assert child.ops() == wf.ops()
        before, after = wf.to_dict(), child.to_dict()
        diffs = [(i, k) for i, (a, b) in enumerate(zip(before["stages"], after["stages"])) for k in a if a[k] != b[k]]
        diffs += [(-1, "answer_format")] if before["answer_format"] != after["answer_format"] else []
        assert len(diffs) == 1, note
        assert note.startswith(("changed", "switched"))


def test_mutate_always_differs_and_is_reproducible():
    for seed in range(40):
        wf = POOL[seed]
        a = mutate(wf, random.Random(seed))
        b = mutate(wf, random.Random(seed))
        assert a == b
        assert a.key() != wf.key()


def test_mutations_are_mostly_small():
    rng = random.Random(5)
    sizes = Counter(len(mutate_described(POOL[i % len(POOL)], rng)[1]) for i in range(400))
    assert sizes[1] > 250 and sizes[2] + sizes[3] > 40


def test_neighbours_are_distinct_valid_and_exclude_the_node():
    wf = validate({"stages": [{"op": "role"}, {"op": "self_consistency", "n": 5}, {"op": "verify"}]})
    out = neighbours(wf, random.Random(0), 12)
    keys = [n.key() for n in out]
    assert len(out) == 12 and len(set(keys)) == 12 and wf.key() not in keys
    assert neighbours(wf, random.Random(0), 12) == out
    assert neighbours(wf, random.Random(1), 12) != out


def test_neighbours_of_a_minimal_workflow_are_one_move_away():
    wf = validate({"stages": [{"op": "generate", "mode": "direct"}]})
    out = neighbours(wf, random.Random(0), 40)
    assert len({n.key() for n in out}) == len(out) == 40
    assert all(len(n.stages) <= 2 for n in out)
    assert neighbours(wf, random.Random(0), 0) == []


def test_crossover_takes_each_part_from_a_parent():
    rng = random.Random(6)
    a = validate({"stages": [{"op": "role", "role": "a domain expert"}, {"op": "debate", "agents": 2},
                             {"op": "verify"}], "answer_format": "json"})
    b = validate({"stages": [{"op": "step_back"}, {"op": "self_consistency", "n": 7},
                             {"op": "self_refine", "rounds": 3}]})
    seen = set()
    for _ in range(50):
        child = crossover(a, b, rng)
        assert child.producer() in (a.producer(), b.producer())
        refiners = [s for s in child.stages if s.op in ("verify", "self_refine")]
        assert refiners in ([a.stages[2]], [b.stages[2]])
        assert child.role() in (None, "a domain expert")
        seen.add(child.key())
    assert len(seen) > 5 and a.key() not in seen and b.key() not in seen


def test_crossover_of_a_workflow_with_itself_is_itself():
    wf = validate(SEED_WORKFLOWS["debate"])
    assert crossover(wf, wf, random.Random(0)) == wf


def test_random_workflows_cover_the_space():
    rng = random.Random(8)
    sample = [random_workflow(rng) for _ in range(300)]
    assert {op for wf in sample for op in wf.ops()} == set(OPS)
    assert {wf.answer_format for wf in sample} == {"plain", "json"}
    assert len({wf.key() for wf in sample}) > 200
    assert [random_workflow(random.Random(3)) for _ in range(2)] == [random_workflow(random.Random(3))] * 2


def test_apply_move_of_a_given_kind():
    wf = validate(SEED_WORKFLOWS["cot"])
    child, note = apply_move(wf, random.Random(0), "add")
    assert len(child.stages) == 2 and note.startswith("added")
