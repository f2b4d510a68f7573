"""Scorers and `score`: each compares a (possibly whole) reply with the gold answer, in [0, 1]."""

import pytest

from metasearch.errors import SuiteError
from metasearch.tasks import Task, score
from metasearch.tasks.scoring import exact, f1, mc, numeric, scorer_name


def task(answer, kind="math", **meta):
    return Task(id="t1", question="q?", answer=answer, kind=kind, meta=meta)


@pytest.mark.parametrize("answer, gold, expected", [
    ("42", "42", 1.0), ("42.0", "42", 1.0), ("41.9999999999", "42", 1.0), ("41.99", "42", 0.0),
    ("3/4", "0.75", 1.0), ("0.75", "3/4", 1.0), ("1e-12", "0", 1.0), ("1e-6", "0", 0.0),
    ("$1,000", "1000", 1.0), ("-5", "5", 0.0), ("abc", "42", 0.0), ("", "42", 0.0),
    ("Paris", "paris", 1.0),  # non-numeric gold: falls back to exact
])
def test_numeric(answer, gold, expected):
    assert numeric(answer, gold) == expected


@pytest.mark.parametrize("answer, gold, expected", [
    ("The Eiffel Tower", "eiffel tower", 1.0), ("Eiffel Tower.", "the Eiffel tower", 1.0),
    ("Eiffel", "Eiffel Tower", 0.0), ("", "x", 0.0), ("?", "?", 1.0), ("", "", 0.0),
])
def test_exact(answer, gold, expected):
    assert exact(answer, gold) == expected


def test_f1_partial_overlap_and_number_rule():
    assert f1("Eiffel Tower", "the Eiffel Tower") == 1.0
    assert f1("tower", "Eiffel Tower") == pytest.approx(2 / 3)
    assert f1("London", "Paris") == 0.0
    assert f1("in 1889", "1889") == pytest.approx(2 / 3)
    assert f1("in 1890 paris", "1889 paris") == 0.0  # DROP: a wrong number scores 0 however many words match
    assert f1("", "Paris") == 0.0


def test_mc_letters():
    assert mc("(b)", "B") == 1.0
    assert mc("The answer is C", "B") == 0.0
    assert mc("no idea", "B") == 0.0


def test_score_extracts_the_final_answer_from_a_reply():
    assert score(task("42"), "Let's think. 6 * 7 = 42, minus 0. Answer: 42") == 1.0
    assert score(task("42"), "Let's think. 6 * 7 = 42. Answer: 43") == 0.0
    assert score(task("42"), "... so \\boxed{42}") == 1.0
    assert score(task("Paris", "qa"), "It is in France.\nAnswer: Paris.") == 1.0
    assert score(task("C", "mc"), "Option C looks right. Answer: (C)") == 1.0
    assert score(task("C", "mc"), "Answer: (A)") == 0.0


def test_score_handles_symbolic_math_gold():
    assert score(task("x+1"), "so Answer: x + 1") == 1.0
    assert score(task("x+1"), "Answer: 1") == 0.0


def test_score_uses_meta_scorer_over_kind_default():
    qa = task("Eiffel Tower", "qa")
    assert scorer_name(qa) == "f1"
    assert score(qa, "Answer: tower") == pytest.approx(2 / 3)
    strict = task("Eiffel Tower", "qa", scorer="exact")
    assert score(strict, "Answer: tower") == 0.0
    assert score(task("42", "qa", scorer="numeric"), "Answer: 42 legs") == 1.0


def test_score_is_in_unit_interval_for_odd_answers():
    for answer in (None, 42, "", "Answer:", "\x00" * 10, "🙂" * 100):
        for t in (task("42"), task("Paris", "qa"), task("A", "mc")):
            assert 0.0 <= score(t, answer) <= 1.0
    assert score(task("42"), 42) == 1.0


def test_unknown_scorer_is_a_suite_error():
    with pytest.raises(SuiteError, match="unknown scorer"):
        score(task("1", scorer="bleu"), "1")


def test_unit_tests_scorer_needs_tests_and_entry_point():
    with pytest.raises(SuiteError, match="entry_point"):
        score(task("def f(): pass", "code"), "def f(): pass")


def test_exact_multiline_gold_compares_the_block_after_answer():
    grid = "1 2\n3 4"
    t = task(grid, "qa", scorer="exact")
    assert score(t, "Thinking...\nAnswer:\n1 2\n3 4\n") == 1.0
    assert score(t, "Answer:\n1 2\n4 3") == 0.0
