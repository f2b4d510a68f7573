"""Task suites and scoring.

`load_suite(cfg)` builds a suite from its source (`builtin:arith`, `gym:NAME[,NAME...]`, `jsonl:PATH`,
`humaneval`) split into validation and test tasks; `score(task, answer)` grades an answer in [0, 1].

The suite and scoring functions are imported on first use: sandbox workers import
`metasearch.tasks.helpers` and must not pay for pydantic, the config and the suite sources at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from metasearch.tasks.base import Suite, Task

if TYPE_CHECKING:
    from metasearch.tasks.registry import describe, list_suites, load_suite
    from metasearch.tasks.scoring import score

_LAZY = {"describe": "registry", "list_suites": "registry", "load_suite": "registry", "score": "scoring"}

__all__ = ["Suite", "Task", "describe", "list_suites", "load_suite", "score"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"metasearch.tasks.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'metasearch.tasks' has no attribute {name!r}")
