"""`metasearch eval`: one agent file scored in the sandbox, JSON for scripts, one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from metasearch import REPO_ROOT


def run_eval(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "metasearch", "eval", *args], capture_output=True, text=True,
                          timeout=300)


def test_eval_a_seed_agent_as_json() -> None:
    res = run_eval(str(REPO_ROOT / "archive" / "cot.py"), "--n", "20", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["n"] == 20 and 0.0 <= out["ci_low"] <= out["score"] <= out["ci_high"] <= 1.0
    assert out["tokens"] > 0 and out["llm_calls"] >= 20 and out["failures"] == {}


def test_eval_reports_failures_by_reason(tmp_path: Path) -> None:
    agent = tmp_path / "crashy.py"
    agent.write_text("NAME = 'crashy'\ndef forward(task, lm):\n    return 1 // 0\n")
    out = json.loads(run_eval(str(agent), "--n", "5", "--json").stdout)
    assert out["score"] == 0.0 and sum(out["failures"].values()) == 5
    assert all(reason.startswith("runtime") for reason in out["failures"])


def test_eval_refuses_forbidden_code_and_missing_files(tmp_path: Path) -> None:
    agent = tmp_path / "evil.py"
    agent.write_text("import os\ndef forward(task, lm):\n    return os.listdir('/')\n")
    res = run_eval(str(agent), "--n", "3")
    assert res.returncode == 2 and "no-import" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    missing = run_eval(str(tmp_path / "nope.py"))
    assert missing.returncode == 2 and "not found" in missing.stderr
