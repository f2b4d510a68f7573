"""Scores with bootstrap 95% confidence intervals: a single noisy number must never steer a search unchecked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ScoreCI:
    mean: float
    low: float
    high: float
    n: int

    def overlaps(self, other: "ScoreCI") -> bool:
        return not (self.high < other.low or other.high < self.low)

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}] (n={self.n})"


def bootstrap_ci(scores: Sequence[float], *, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> ScoreCI:
    """Percentile bootstrap of the mean, deterministic for a given seed (as ADAS reports its Table 1)."""
    values = np.asarray(list(scores), dtype=float)
    if values.size == 0:
        return ScoreCI(0.0, 0.0, 0.0, 0)
    mean = float(values.mean())
    if values.size == 1:
        return ScoreCI(mean, mean, mean, 1)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.size, size=(n_boot, values.size))
    means = values[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return ScoreCI(mean, float(low), float(high), int(values.size))
