"""The Ray actor that hosts a TaskRunner. Kept apart so that importing the evaluator does not import Ray."""

from __future__ import annotations

import os
from typing import Any

import ray

from metasearch.evaluation.runner import RunnerSpec, TaskRunner
from metasearch.tasks.base import Task


@ray.remote
class EvalActor:
    """One sandbox pool + LM per actor; threaded (max_concurrency) because the work waits on the LLM."""

    def __init__(self, spec: RunnerSpec) -> None:
        self.runner = TaskRunner(spec)

    def ready(self) -> int:
        return os.getpid()

    def run(self, candidate_key: str, code: str, task: dict[str, Any]) -> dict[str, Any]:
        return self.runner.run(candidate_key, code, Task.from_dict(task)).to_row()

    def node(self) -> dict[str, Any]:
        info = self.runner.node()
        info["node_id"] = ray.get_runtime_context().get_node_id()
        return info

    def close(self) -> None:
        self.runner.close()
