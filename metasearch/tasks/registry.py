"""Suite sources and the seeded validation/test split.

A source string names where tasks come from (`builtin:arith`, `builtin:mixed`, `gym:NAME[,NAME...]`,
`jsonl:PATH`, `humaneval`). `load_suite` builds the source's tasks and draws `val + test` of them with a
permutation seeded by (source, seed) through hashlib, so the same config gives the same split in every
process and on every machine, and the two splits never share a task.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

from metasearch.config import SuiteConfig
from metasearch.errors import SuiteError
from metasearch.tasks.base import Suite, Task
from metasearch.tasks.builtin import BUILTIN_POOLS
from metasearch.tasks.gym import CHECKED_DATASETS, describe_gym, load_gym
from metasearch.tasks.humaneval import HUMANEVAL_DESCRIPTION, humaneval_pool
from metasearch.tasks.jsonl import describe_jsonl, load_jsonl

SOURCES_HELP = "builtin:arith | builtin:mixed | gym:NAME[,NAME...] | jsonl:PATH | humaneval"


@dataclass(frozen=True)
class SourceTasks:
    """Everything one source offers: its tasks (in a fixed order) and its description for the meta-agent."""

    source: str
    description: str
    tasks: list[Task]


def _split_source(source: str) -> tuple[str, str]:
    source = source.strip()
    if source == "humaneval":
        return "humaneval", ""
    prefix, sep, rest = source.partition(":")
    if not sep or prefix not in ("builtin", "gym", "jsonl") or not rest.strip():
        raise SuiteError(f"unknown suite source {source!r} (expected {SOURCES_HELP})")
    return prefix, rest.strip()


def source_tasks(source: str, *, size: int = 0, seed: int = 0) -> SourceTasks:
    """The tasks a source offers. Procedural sources (gym) generate `size` tasks with `seed`."""
    prefix, rest = _split_source(source)
    if prefix == "builtin":
        if rest not in BUILTIN_POOLS:
            raise SuiteError(f"unknown builtin suite {rest!r} (known: {', '.join(BUILTIN_POOLS)})")
        pool, description = BUILTIN_POOLS[rest]
        return SourceTasks(f"builtin:{rest}", description, list(pool()))
    if prefix == "gym":
        return SourceTasks(f"gym:{rest}", describe_gym(rest), load_gym(rest, max(size, 1), seed))
    if prefix == "jsonl":
        tasks = load_jsonl(rest)
        return SourceTasks(f"jsonl:{rest}", describe_jsonl(rest, tasks), tasks)
    return SourceTasks("humaneval", HUMANEVAL_DESCRIPTION, list(humaneval_pool()))


def _rng(source: str, seed: int) -> random.Random:
    digest = hashlib.sha256(f"metasearch-split|{source}|{seed}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def split(tasks: list[Task], val: int, test: int, *, source: str, seed: int) -> tuple[list[Task], list[Task]]:
    """Seeded, disjoint draw of `val` validation and `test` test tasks; SuiteError if there are too few."""
    need = val + test
    if len(tasks) < need:
        raise SuiteError(f"suite {source} has {len(tasks)} tasks; val={val} + test={test} needs {need}")
    order = _rng(source, seed).sample(range(len(tasks)), need)
    return [tasks[i] for i in order[:val]], [tasks[i] for i in order[val:]]


def load_suite(cfg: SuiteConfig) -> Suite:
    """Build the suite a config names: its tasks, split into cfg.val validation and cfg.test test tasks."""
    found = source_tasks(cfg.source, size=cfg.val + cfg.test, seed=cfg.seed)
    val, test = split(found.tasks, cfg.val, cfg.test, source=found.source, seed=cfg.seed)
    return Suite(name=found.source, description=found.description, val=val, test=test)


def describe(source: str) -> str:
    """What a source's tasks are and the answer format expected (used in the meta-agent prompt)."""
    prefix, rest = _split_source(source)
    if prefix == "gym":
        return describe_gym(rest)
    return source_tasks(source, size=1).description


def list_suites() -> list[dict[str, Any]]:
    """The built-in suites and source kinds: name, description, kinds, size (None = generated or per file)."""
    rows: list[dict[str, Any]] = []
    for name, (pool, description) in BUILTIN_POOLS.items():
        tasks = pool()
        rows.append({"name": f"builtin:{name}", "description": description,
                     "kinds": sorted({t.kind for t in tasks}), "size": len(tasks)})
    rows.append({"name": "humaneval", "description": HUMANEVAL_DESCRIPTION, "kinds": ["code"],
                 "size": len(humaneval_pool())})
    for name in CHECKED_DATASETS:
        rows.append({"name": f"gym:{name}", "description": describe_gym(name), "kinds": ["math"], "size": None})
    rows.append({"name": "jsonl:PATH", "description": "tasks from a JSONL file: one {\"id\", \"question\", "
                 "\"answer\", \"kind\"?, \"meta\"?} object per line", "kinds": ["math", "qa", "mc", "code"],
                 "size": None})
    return rows
