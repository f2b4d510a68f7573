"""gym:NAME[,NAME...] suites from reasoning-gym: seeded, answer-safe meta, gold scores one."""

import pytest

from metasearch.config import SuiteConfig
from metasearch.errors import SuiteError
from metasearch.tasks import load_suite, score

CHECKED = ["basic_arithmetic", "leg_counting", "letter_counting", "gsm_symbolic"]


@pytest.mark.parametrize("name", CHECKED)
def test_checked_datasets_load_and_gold_scores_one(name):
    suite = load_suite(SuiteConfig(source=f"gym:{name}", val=3, test=3, seed=1))
    for t in suite.all_tasks():
        assert t.meta["source"] == name and t.kind == "math"
        assert -1.5 <= t.meta["difficulty"] <= 2.5
        assert set(t.meta) == {"source", "difficulty", "scorer"}  # nothing that spells the answer out
        assert score(t, f"Let me count.\nAnswer: {t.answer}") == 1.0
        assert score(t, "Answer: 123456789") == 0.0 or t.answer == "123456789"


def test_gym_suite_is_seeded_and_mixes_datasets():
    cfg = SuiteConfig(source="gym:basic_arithmetic,leg_counting", val=4, test=4, seed=5)
    a, b = load_suite(cfg), load_suite(cfg)
    assert [t.question for t in a.all_tasks()] == [t.question for t in b.all_tasks()]
    assert {t.meta["source"] for t in a.all_tasks()} == {"basic_arithmetic", "leg_counting"}
    other = load_suite(SuiteConfig(source=cfg.source, val=4, test=4, seed=6))
    assert [t.question for t in other.all_tasks()] != [t.question for t in a.all_tasks()]
    assert len({t.id for t in a.all_tasks()}) == 8


def test_text_answers_become_qa_with_exact_match():
    suite = load_suite(SuiteConfig(source="gym:spell_backward", val=2, test=1, seed=0))
    t = suite.val[0]
    assert t.kind == "qa" and t.meta["scorer"] == "exact"
    assert score(t, f"Answer: {t.answer}") == 1.0
    assert score(t, f"Answer: {t.answer}x") == 0.0


def test_unknown_dataset_is_a_suite_error():
    with pytest.raises(SuiteError, match="unknown reasoning-gym dataset 'leg_countin'"):
        load_suite(SuiteConfig(source="gym:leg_countin", val=1, test=1))


def test_multiline_gold_is_compared_as_a_block():
    suite = load_suite(SuiteConfig(source="gym:rotate_matrix", val=1, test=1, seed=0))
    t = suite.val[0]
    assert "\n" in t.answer.strip() and t.kind == "qa"
    assert score(t, f"Rotating...\nAnswer:\n{t.answer}") == 1.0
    assert score(t, f"Answer:\n{t.answer.splitlines()[0]}") == 0.0


def test_composite_is_refused_with_advice():
    with pytest.raises(SuiteError, match="list the datasets instead"):
        load_suite(SuiteConfig(source="gym:composite", val=1, test=1))
