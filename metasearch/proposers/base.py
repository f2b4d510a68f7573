"""The proposer interface: how a strategy turns the archive so far into new candidates.

As with Optuna's samplers, the search loop knows only this interface. A proposer must be a pure function of
(the archive view of finished iterations, the iteration number, the run seed), so that redoing an interrupted
iteration after `resume` proposes exactly the same candidates.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from metasearch.config import SearchConfig
from metasearch.tasks.base import Suite

if TYPE_CHECKING:
    from metasearch.archive import Archive
    from metasearch.evaluation.runner import TaskResult
    from metasearch.llm.client import LM

FINAL_STATUSES = ("evaluated", "failed", "stopped_early", "pruned", "rejected")


@dataclass
class Proposal:
    """A candidate to add to the archive; `evaluate=False` records it as pruned (with its prediction)."""

    code: str
    name: str
    origin: str
    thought: str = ""
    parent_ids: list[int] = field(default_factory=list)
    ir: dict[str, Any] | None = None
    evaluate: bool = True
    predicted_mean: float | None = None
    predicted_std: float | None = None
    error: str | None = None  # set when the proposal already failed (e.g. still broken after debug rounds)
    error_kind: str | None = None
    usage: dict[str, float] = field(default_factory=dict)  # meta-agent tokens/cost spent making it


@dataclass
class SearchContext:
    """What a proposer may use. `view(iteration)` is the archive as of the end of the previous iteration."""

    cfg: SearchConfig
    archive: "Archive"
    run_id: int
    suite: Suite
    meta_lm: "LM"
    dry_run: Callable[[str, int], list["TaskResult"]]

    def view(self, iteration: int) -> list[dict[str, Any]]:
        """Candidates of finished iterations (< iteration) in a final state, in id order: a deterministic input."""
        return [c for c in self.archive.candidates(self.run_id)
                if (c["iteration"] or 0) < iteration and c["status"] in FINAL_STATUSES]

    @staticmethod
    def evaluated(view: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Fully evaluated candidates, best first (ties by id)."""
        done = [c for c in view if c["status"] == "evaluated" and c["score"] is not None]
        return sorted(done, key=lambda c: (-c["score"], c["id"]))


class Proposer(ABC):
    """A search strategy. `propose` returns this iteration's proposals; `tell` sees their real scores."""

    name: str = "proposer"

    @abstractmethod
    def propose(self, ctx: SearchContext, iteration: int) -> list[Proposal]:
        ...

    def tell(self, ctx: SearchContext, iteration: int, evaluated: list[dict[str, Any]]) -> None:
        """Real results of this iteration's evaluated proposals (archive rows). Default: nothing to learn."""

    def report(self) -> dict[str, Any]:
        """Strategy-specific figures for the run summary (e.g. the value model's held-out Spearman)."""
        return {}
