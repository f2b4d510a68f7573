"""load_suite and the seeded split: deterministic, disjoint, errors when too small; list_suites."""

import os
import subprocess
import sys

import pytest

from metasearch.config import SuiteConfig
from metasearch.errors import SuiteError
from metasearch.tasks import describe, list_suites, load_suite


def ids(tasks):
    return [t.id for t in tasks]


def test_split_is_deterministic_and_disjoint():
    a = load_suite(SuiteConfig(source="builtin:arith", val=50, test=80, seed=3))
    b = load_suite(SuiteConfig(source="builtin:arith", val=50, test=80, seed=3))
    assert ids(a.val) == ids(b.val) and ids(a.test) == ids(b.test)
    assert len(a.val) == 50 and len(a.test) == 80
    assert not set(ids(a.val)) & set(ids(a.test))
    assert a.name == "builtin:arith" and "arithmetic" in a.description


def test_seed_changes_the_sample():
    a = load_suite(SuiteConfig(val=20, test=20, seed=0))
    b = load_suite(SuiteConfig(val=20, test=20, seed=1))
    assert ids(a.val) != ids(b.val)


def test_split_is_the_same_in_another_process():
    """No salted hash() anywhere: a fresh interpreter draws the very same tasks."""
    code = ("from metasearch.tasks import load_suite; from metasearch.config import SuiteConfig; "
            "s = load_suite(SuiteConfig(val=5, test=5, seed=7)); print(','.join(t.id for t in s.val + s.test))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "123"}).stdout.strip()
    assert out == ("arith-00836,arith-00455,arith-01300,arith-00724,arith-01321,"
                   "arith-02402,arith-04642,arith-04221,arith-01945,arith-00105")


def test_too_few_tasks_says_how_many_there_are():
    with pytest.raises(SuiteError, match=r"has 164 tasks; val=100 \+ test=100 needs 200"):
        load_suite(SuiteConfig(source="humaneval", val=100, test=100))


@pytest.mark.parametrize("source", ["nope", "builtin:nope", "gym:", "jsonl:", "foo:bar"])
def test_unknown_sources_are_suite_errors(source):
    with pytest.raises(SuiteError):
        load_suite(SuiteConfig(source=source, val=1, test=1))


def test_list_suites_rows():
    rows = {r["name"]: r for r in list_suites()}
    assert rows["builtin:arith"]["size"] == 5000 and rows["builtin:arith"]["kinds"] == ["math"]
    assert rows["humaneval"]["size"] == 164 and rows["humaneval"]["kinds"] == ["code"]
    assert rows["builtin:mixed"]["kinds"] == ["math", "mc", "qa"]
    assert any(name.startswith("gym:") for name in rows) and "jsonl:PATH" in rows
    assert all(r["description"] for r in rows.values())


def test_describe_names_the_answer_format():
    assert "Answer: 42" in describe("builtin:arith")
    assert "```python" in describe("humaneval")
    assert "leg_counting" in describe("gym:leg_counting")
