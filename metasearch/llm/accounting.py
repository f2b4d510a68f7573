"""Token and cost accounting, and the run budget that stops a search cleanly.

`Usage` has one meaning everywhere (a call's result, a task, an LM, a run):
- `prompt_tokens` / `completion_tokens`: tokens the calls consumed, whether billed now or served from the cache,
  so a rerun from the cache reports the same work and a search's decisions do not depend on the cache;
- `cost`: dollars actually billed (0 for cache hits: reruns cost nothing);
- `calls`: LM calls made; `cached_calls`: how many of them the cache answered.

The token budget therefore limits the work a search does (a rerun stops at the same point), the dollar budget
limits money spent.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

from metasearch.config import BudgetConfig
from metasearch.errors import BudgetExceeded


@dataclass
class Usage:
    """Tokens, dollars and call counts; `add` accumulates in place."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    calls: int = 0
    cached_calls: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: "Usage") -> "Usage":
        """Add `other` into this one and return self (for chaining)."""
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost += other.cost
        self.calls += other.calls
        self.cached_calls += other.cached_calls
        return self

    def __add__(self, other: "Usage") -> "Usage":
        return self.copy().add(other)

    def copy(self) -> "Usage":
        return Usage(**asdict(self))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_tokens": self.total_tokens}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Usage":
        """Inverse of `to_dict` (ignores `total_tokens` and unknown keys), e.g. to resume a run's totals."""
        return cls(prompt_tokens=int(d.get("prompt_tokens", 0)), completion_tokens=int(d.get("completion_tokens", 0)),
                   cost=float(d.get("cost", 0.0)), calls=int(d.get("calls", 0)),
                   cached_calls=int(d.get("cached_calls", 0)))


class Accountant:
    """Thread-safe run totals against a budget (tokens and/or dollars; 0 = unlimited).

    Shared by every LM of a run. `check()` before a call refuses once the budget is spent; `charge()` after a
    call records it and raises `BudgetExceeded` when that call spent the last of the budget.
    """

    def __init__(self, budget: BudgetConfig | None = None, *, spent: Usage | None = None) -> None:
        self._budget = budget or BudgetConfig()
        self._spent = spent.copy() if spent is not None else Usage()
        self._lock = threading.Lock()

    @property
    def budget(self) -> BudgetConfig:
        return self._budget

    def spent(self) -> Usage:
        """A copy of the totals so far (including any usage the accountant was started from)."""
        with self._lock:
            return self._spent.copy()

    def exceeded(self) -> str | None:
        """Why the budget is spent, or None while some is left."""
        with self._lock:
            return self._why_exceeded()

    def _why_exceeded(self) -> str | None:
        b, s = self._budget, self._spent
        if b.tokens and s.total_tokens >= b.tokens:
            return f"token budget spent: {s.total_tokens:,} of {b.tokens:,} tokens"
        if b.dollars and s.cost >= b.dollars:
            return f"dollar budget spent: ${s.cost:.4f} of ${b.dollars:.4f}"
        return None

    def check(self) -> None:
        """Raise `BudgetExceeded` if the budget is already spent (call before starting an LM call)."""
        why = self.exceeded()
        if why:
            raise BudgetExceeded(why)

    def charge(self, usage: Usage) -> None:
        """Record a finished call's usage; raise `BudgetExceeded` if the budget is now spent."""
        with self._lock:
            self._spent.add(usage)
            why = self._why_exceeded()
        if why:
            raise BudgetExceeded(why)
