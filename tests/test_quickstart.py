"""The README's first command: the quickstart search beats the best seed on the held-out test split."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from metasearch import REPO_ROOT


@pytest.mark.slow
def test_quickstart_winner_beats_the_best_seed_with_disjoint_confidence_intervals(tmp_path: Path) -> None:
    config = REPO_ROOT / "experiments" / "configs" / "quickstart.toml"
    res = subprocess.run([sys.executable, "-m", "metasearch", "run", str(config), "--archive",
                          str(tmp_path / "quickstart.db"), "--json"], capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads(res.stdout)
    winner, seed = summary["winner"], summary["best_seed"]
    assert winner["origin"] != "seed"
    assert winner["test_score"] > seed["test_score"]
    assert summary["cis_disjoint"] and winner["test_ci_low"] > seed["test_ci_high"]
