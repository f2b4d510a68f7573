"""`jsonl:PATH` suites: one task per line, `{"id", "question", "answer", "kind"?, "meta"?}`.

Every problem is reported as `PATH:LINE: what is wrong`, so a user can fix a thousand-line file quickly.
Tasks without a `meta.difficulty` get one derived from a hash of their id (the simulated LLM needs one).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from metasearch.errors import SuiteError
from metasearch.tasks.base import Task
from metasearch.tasks.scoring import DEFAULT_SCORER, SCORERS

KINDS = ("math", "qa", "mc", "code")
FIELDS = ("id", "question", "answer", "kind", "meta")


def hashed_difficulty(key: str, low: float = -1.0, high: float = 1.5) -> float:
    """A stable pseudo-random difficulty in [low, high] from a key (hashlib, so equal across processes)."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    return round(low + (high - low) * u, 3)


def _task_from_record(record: Any, where: str) -> Task:
    if not isinstance(record, dict):
        raise SuiteError(f"{where}: expected a JSON object, got {type(record).__name__}")
    unknown = sorted(set(record) - set(FIELDS))
    if unknown:
        raise SuiteError(f"{where}: unknown field {unknown[0]!r} (allowed: {', '.join(FIELDS)})")
    for name in ("id", "question", "answer"):
        if name not in record or record[name] is None:
            raise SuiteError(f"{where}: missing field {name!r}")
    if not isinstance(record["question"], str) or not record["question"].strip():
        raise SuiteError(f"{where}: 'question' must be a non-empty string")
    if not isinstance(record["id"], (str, int)) or isinstance(record["id"], bool) or str(record["id"]) == "":
        raise SuiteError(f"{where}: 'id' must be a non-empty string or integer")
    if not isinstance(record["answer"], (str, int, float)) or isinstance(record["answer"], bool):
        raise SuiteError(f"{where}: 'answer' must be a string or a number")
    kind = record.get("kind", "math")
    if kind not in KINDS:
        raise SuiteError(f"{where}: 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
    meta = record.get("meta")
    meta = {} if meta is None else meta
    if not isinstance(meta, dict):
        raise SuiteError(f"{where}: 'meta' must be an object")
    meta = dict(meta)
    scorer = meta.get("scorer", DEFAULT_SCORER[kind])
    if scorer not in SCORERS:
        raise SuiteError(f"{where}: unknown scorer {scorer!r} (known: {', '.join(SCORERS)})")
    if scorer == "unit_tests":
        for name in ("tests", "entry_point"):
            if not isinstance(meta.get(name), str) or not meta[name].strip():
                raise SuiteError(f"{where}: a unit_tests task needs meta.{name} (a string)")
    difficulty = meta.get("difficulty")
    if difficulty is None:
        meta["difficulty"] = hashed_difficulty(f"jsonl|{record['id']}")
    elif not isinstance(difficulty, (int, float)) or isinstance(difficulty, bool):
        raise SuiteError(f"{where}: meta.difficulty must be a number")
    answer = record["answer"]
    if isinstance(answer, float) and answer.is_integer():
        answer = int(answer)
    return Task(id=str(record["id"]), question=record["question"], answer=str(answer), kind=kind, meta=meta)


def load_jsonl(path: str | Path) -> list[Task]:
    """Read and validate a JSONL task file; raises SuiteError naming the file (and line) on any problem."""
    path = Path(path)
    if not path.is_file():
        raise SuiteError(f"{path}: task file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SuiteError(f"{path}: cannot read task file: {err}") from None
    tasks: list[Task] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise SuiteError(f"{where}: bad JSON: {err.msg} (column {err.colno})") from None
        task = _task_from_record(record, where)
        if task.id in first_line:
            raise SuiteError(f"{where}: duplicate id {task.id!r} (first on line {first_line[task.id]})")
        first_line[task.id] = number
        tasks.append(task)
    if not tasks:
        raise SuiteError(f"{path}: no tasks in file")
    return tasks


def describe_jsonl(path: str, tasks: list[Task]) -> str:
    """The suite description for the meta-agent prompt: what kinds of tasks and which answer format."""
    kinds = sorted({t.kind for t in tasks})
    formats = {"math": "math: one number or expression ('Answer: 42')",
               "qa": "qa: a short phrase ('Answer: Paris', token F1)",
               "mc": "mc: the choice letter ('Answer: C')",
               "code": "code: a complete Python function in a ```python block, checked by unit tests"}
    listed = "; ".join(formats[k] for k in kinds)
    return f"jsonl:{path}: {len(tasks)} tasks from a file. Answer formats: {listed}."
