"""Runs one candidate on one task, in the sandbox, with LLM calls answered by this process's shared LM.

A `TaskRunner` lives wherever evaluation happens: in the search process (local backend) or inside a Ray actor.
It owns a sandbox pool and an LM; nothing here touches the archive (the driver is the single writer).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from metasearch.config import EndpointConfig, EvaluatorConfig
from metasearch.tasks.base import Task


@dataclass
class TaskResult:
    """What one candidate did on one task; one row of the archive's `evaluations` table."""

    task_id: str
    score: float
    answer: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latency_s: float = 0.0
    llm_calls: int = 0
    error: str | None = None
    error_kind: str | None = None

    def to_row(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class RunnerSpec:
    """Everything a runner needs, picklable so a Ray actor can build its own runner from it."""

    endpoint: EndpointConfig
    evaluator: EvaluatorConfig
    seed: int
    sim_tasks: list[dict[str, Any]] = field(default_factory=list)
    cache_path: str | None = None
    concurrency: int | None = None  # this process's share of the endpoint's global limit
    pool_size: int | None = None


def _was_killed(error: str | None) -> bool:
    return bool(error) and ("SIGKILL" in error or "signal 9" in error)


class TaskRunner:
    """Sandboxed evaluation of (candidate code, task) pairs; thread-safe, many tasks in flight."""

    def __init__(self, spec: RunnerSpec) -> None:
        from metasearch.llm.cache import ResponseCache
        from metasearch.llm.client import LM
        from metasearch.sandbox import Limits, SandboxPool

        endpoint = spec.endpoint
        if spec.concurrency is not None:
            endpoint = endpoint.model_copy(update={"concurrency": max(1, spec.concurrency)})
        cache = None
        if endpoint.cache and spec.cache_path and Path(spec.cache_path).parent.is_dir():
            cache = ResponseCache(spec.cache_path)
        tasks = [Task.from_dict(t) for t in spec.sim_tasks]
        self.lm = LM(endpoint, seed=spec.seed, cache=cache, tasks=tasks)
        size = spec.pool_size or spec.evaluator.tasks_in_flight
        self.limits = Limits.from_config(spec.evaluator)
        self.pool = SandboxPool(size, self.limits)
        self._lock = threading.Lock()

    def run(self, candidate_key: str, code: str, task: Task) -> TaskResult:
        """Run and score one task. A sandbox worker killed from outside is retried once in a fresh worker: the
        derived seeds make the retry's answer the one an undisturbed run would give."""
        result, billed = self._attempt(candidate_key, code, task)
        if result.error_kind == "crash" and _was_killed(result.error):
            retry, _ = self._attempt(candidate_key, code, task)
            retry.prompt_tokens += billed[0]
            retry.completion_tokens += billed[1]
            retry.cost += billed[2]
            if retry.error_kind == "crash":
                retry.error = f"{retry.error} (retried once)"
            result = retry
        return result

    def _attempt(self, candidate_key: str, code: str, task: Task) -> tuple[TaskResult, tuple[int, int, float]]:
        from metasearch.tasks import score

        tlm = self.lm.for_task(candidate_key, task.id)
        started = time.monotonic()
        res = self.pool.run(code, task.public(), tlm.handle)
        latency = time.monotonic() - started
        usage = tlm.usage
        if res.ok:
            try:
                value = float(score(task, res.answer or "", limits=self.limits))
                error, kind = None, None
            except Exception as err:  # a scorer must never kill the evaluation
                value, error, kind = 0.0, f"scoring failed: {err}", "scoring"
        else:
            value, error, kind = 0.0, res.error, res.error_kind
        result = TaskResult(task_id=task.id, score=value, answer=res.answer, prompt_tokens=usage.prompt_tokens,
                            completion_tokens=usage.completion_tokens, cost=usage.cost, latency_s=round(latency, 4),
                            llm_calls=tlm.calls, error=error, error_kind=kind)
        return result, (usage.prompt_tokens, usage.completion_tokens, usage.cost)

    def node(self) -> dict[str, Any]:
        """Where this runner lives (the cluster test checks that work ran on both nodes)."""
        import socket

        return {"pid": os.getpid(), "host": socket.gethostname(), "node_id": os.environ.get("RAY_NODE_ID", "")}

    def close(self) -> None:
        self.pool.close()
        self.lm.close()
