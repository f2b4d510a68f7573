"""The evaluator the search talks to: scores a candidate on tasks, with cascade early stopping and bootstrap CIs.

It never writes the archive itself: each finished task is handed to `on_result` at once, and the search journals
it, so an interrupted evaluation resumes with only the missing tasks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from metasearch.config import SearchConfig
from metasearch.evaluation.backends import Backend, LocalBackend, RayBackend
from metasearch.evaluation.runner import RunnerSpec, TaskResult
from metasearch.evaluation.stats import ScoreCI, bootstrap_ci
from metasearch.llm.seeding import derive_seed
from metasearch.tasks.base import Task


@dataclass
class CandidateScore:
    """A candidate's results on a split: per-task rows in task order, mean with 95% CI, totals."""

    results: list[TaskResult]
    ci: ScoreCI
    stopped_early: bool = False
    failures: dict[str, int] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return sum(r.tokens for r in self.results)

    @property
    def cost(self) -> float:
        return sum(r.cost for r in self.results)

    @property
    def llm_calls(self) -> int:
        return sum(r.llm_calls for r in self.results)

    @property
    def all_failed(self) -> bool:
        return bool(self.results) and all(r.error for r in self.results)

    def main_failure(self) -> tuple[str | None, str | None]:
        """The most common (error_kind, error) among failed tasks, for a one-line reason."""
        errors = [(r.error_kind, r.error) for r in self.results if r.error]
        if not errors:
            return None, None
        return Counter(errors).most_common(1)[0][0]


def score_of(key: str, results: Iterable[TaskResult]) -> ScoreCI:
    return bootstrap_ci([r.score for r in results], seed=derive_seed("bootstrap", key))


class Evaluator:
    """Scores candidates through a backend (local sandbox pool or Ray actors)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    @classmethod
    def from_config(cls, cfg: SearchConfig, *, sim_tasks: Iterable[Task] = (), cache_path: str | None = None,
                    address: str | None = None) -> "Evaluator":
        spec = RunnerSpec(endpoint=cfg.endpoint, evaluator=cfg.evaluator, seed=cfg.seed,
                          sim_tasks=[t.to_dict() for t in sim_tasks] if cfg.endpoint.base_url.startswith("sim://")
                          else [], cache_path=cache_path)
        use_ray = cfg.evaluator.use_ray or address is not None
        backend: Backend = RayBackend(spec, address) if use_ray else LocalBackend(spec)
        return cls(backend)

    def evaluate(self, key: str, code: str, tasks: list[Task], *, done: dict[str, TaskResult] | None = None,
                 incumbent: float | None = None, cascade_first: int | None = None,
                 on_result: Callable[[TaskResult], None] | None = None) -> CandidateScore:
        """Evaluate `code` on `tasks`, skipping those in `done` (already journaled).

        With `cascade_first` and an `incumbent`, the first tasks are scored alone; if the upper end of their 95% CI
        is below the incumbent, the candidate stops early: it cannot plausibly beat the best so far.
        """
        have: dict[str, TaskResult] = dict(done or {})
        first = tasks if cascade_first is None or incumbent is None else tasks[:cascade_first]
        self._run_missing(key, code, first, have, on_result)
        stopped = False
        if len(first) < len(tasks):
            partial = score_of(key, (have[t.id] for t in first))
            if partial.high < incumbent:  # type: ignore[operator]
                stopped = True
            else:
                self._run_missing(key, code, tasks, have, on_result)
        scope = first if stopped else tasks
        results = [have[t.id] for t in scope]
        failures = Counter(r.error_kind or "error" for r in results if r.error)
        return CandidateScore(results=results, ci=score_of(key, results), stopped_early=stopped,
                              failures=dict(failures))

    def _run_missing(self, key: str, code: str, tasks: list[Task], have: dict[str, TaskResult],
                     on_result: Callable[[TaskResult], None] | None) -> None:
        missing = [t for t in tasks if t.id not in have]
        if not missing:
            return
        for result in self.backend.run_batch(key, code, missing):
            have[result.task_id] = result
            if on_result is not None:
                on_result(result)

    def nodes(self) -> list[dict[str, Any]]:
        return self.backend.nodes()  # type: ignore[attr-defined]

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> "Evaluator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
