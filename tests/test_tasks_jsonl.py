"""jsonl:PATH suites: valid files load; every problem names the file and the line."""

import json
from pathlib import Path

import pytest

from metasearch.config import SuiteConfig
from metasearch.errors import SuiteError
from metasearch.tasks import load_suite, score
from metasearch.tasks.jsonl import load_jsonl

EXAMPLE = Path(__file__).resolve().parent.parent / "experiments" / "configs" / "tasks_example.jsonl"


def write(tmp_path, lines):
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def test_example_file_loads_mixed_kinds_and_gold_scores_one():
    tasks = load_jsonl(EXAMPLE)
    assert 15 <= len(tasks) <= 30
    assert {t.kind for t in tasks} == {"math", "qa", "mc", "code"}
    for t in tasks:
        assert isinstance(t.meta["difficulty"], float | int)
        if t.kind != "code":
            assert score(t, f"Answer: {t.answer}") == 1.0, t.id


def test_loads_as_a_suite_with_defaults(tmp_path):
    path = write(tmp_path, [{"id": i, "question": f"What is {i}+1?", "answer": i + 1} for i in range(6)] + [""])
    suite = load_suite(SuiteConfig(source=f"jsonl:{path}", val=2, test=3))
    assert len(suite.val) == 2 and len(suite.test) == 3
    task = suite.val[0]
    assert task.kind == "math" and task.answer == str(int(task.id) + 1)
    assert -1.0 <= task.meta["difficulty"] <= 1.5  # derived from the id when the file gives none
    assert load_jsonl(path)[0].meta == load_jsonl(path)[0].meta


@pytest.mark.parametrize("line, message", [
    ('{"id": "a", "question": "q"', "bad JSON"),
    ('[1, 2]', "expected a JSON object"),
    ('{"id": "a", "question": "q"}', "missing field 'answer'"),
    ('{"question": "q", "answer": "1"}', "missing field 'id'"),
    ('{"id": "a", "question": "", "answer": "1"}', "'question' must be a non-empty string"),
    ('{"id": "a", "question": "q", "answer": "1", "kind": "essay"}', "'kind' must be one of"),
    ('{"id": "a", "question": "q", "answer": "1", "meta": []}', "'meta' must be an object"),
    ('{"id": "a", "question": "q", "answer": "1", "extra": 1}', "unknown field 'extra'"),
    ('{"id": "a", "question": "q", "answer": "1", "meta": {"scorer": "bleu"}}', "unknown scorer 'bleu'"),
    ('{"id": "a", "question": "q", "answer": "1", "kind": "code"}', "needs meta.tests"),
    ('{"id": "a", "question": "q", "answer": {"x": 1}}', "'answer' must be a string or a number"),
])
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    path = write(tmp_path, ['{"id": "ok", "question": "q", "answer": "1"}', "", line])
    with pytest.raises(SuiteError) as err:
        load_jsonl(path)
    assert str(err.value).startswith(f"{path}:3: ")
    assert message in str(err.value)


def test_duplicate_ids_are_an_error(tmp_path):
    path = write(tmp_path, [{"id": "x", "question": "a", "answer": "1"}, {"id": "x", "question": "b", "answer": "2"}])
    with pytest.raises(SuiteError, match=r":2: duplicate id 'x' \(first on line 1\)"):
        load_jsonl(path)


def test_missing_and_empty_files_are_named(tmp_path):
    with pytest.raises(SuiteError, match="nope.jsonl: task file not found"):
        load_jsonl(tmp_path / "nope.jsonl")
    empty = write(tmp_path, [""])
    with pytest.raises(SuiteError, match="no tasks"):
        load_jsonl(empty)


def test_too_small_file_for_the_split(tmp_path):
    path = write(tmp_path, [{"id": i, "question": f"q{i}", "answer": "1"} for i in range(3)])
    with pytest.raises(SuiteError, match="has 3 tasks"):
        load_suite(SuiteConfig(source=f"jsonl:{path}", val=2, test=2))
