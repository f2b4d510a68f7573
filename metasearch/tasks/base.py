"""The task record every part shares: suites produce them, the simulator knows them, candidates answer them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["math", "qa", "mc", "code"]


@dataclass(frozen=True)
class Task:
    """One question with its gold answer.

    `meta` is free-form JSON-able data: `difficulty` (float, latent, used by the simulated LLM),
    `scorer` ('exact' | 'numeric' | 'f1' | 'mc' | 'unit_tests'), and for code tasks `tests` and `entry_point`.
    Candidates see id, question, kind and meta with gold-revealing keys removed (see `public()`).
    """

    id: str
    question: str
    answer: str
    kind: Kind = "math"
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    HIDDEN_META = ("tests", "difficulty", "answer", "gold")

    def public(self) -> dict[str, Any]:
        """What a candidate may see: no gold answer, no unit tests, no latent difficulty."""
        meta = {k: v for k, v in self.meta.items() if k not in self.HIDDEN_META}
        return {"id": self.id, "question": self.question, "kind": self.kind, "meta": meta}

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "question": self.question, "answer": self.answer, "kind": self.kind, "meta": self.meta}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Task":
        return cls(id=str(d["id"]), question=d["question"], answer=str(d["answer"]), kind=d.get("kind", "math"),
                   meta=dict(d.get("meta") or {}))


@dataclass(frozen=True)
class Suite:
    """A named set of tasks split (seeded) into validation, used by the search, and test, held out for the report."""

    name: str
    description: str
    val: list[Task]
    test: list[Task]

    def all_tasks(self) -> list[Task]:
        return [*self.val, *self.test]
