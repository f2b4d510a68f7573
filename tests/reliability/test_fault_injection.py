"""LLM endpoint faults: a search through a fault-injecting proxy finds exactly what a fault-free search finds;
an endpoint that fails every call stops the run with one line (exit 2) in bounded time, losing nothing, and
`resume` finishes the run once the endpoint is back.

The proxy (tests/faulty_endpoint.py) sits in front of the simulated LLM served over HTTP; the response cache is
off so that every call really goes through the faults.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import small_config, write_config
from faulty_endpoint import FaultyEndpoint
from metasearch.archive import Archive
from metasearch.config import SearchConfig
from metasearch.errors import EndpointError
from metasearch.evaluation import Evaluator
from metasearch.llm.client import LM
from metasearch.search import Search
from metasearch.tasks import load_suite
from reliability.conftest import (TRANSIENT_FAULTS, Figures, behaviour, copy_archive, integrity, mixed_rates,
                                  run_cli)

TIMEOUT_S = 1.0  # the client's per-call timeout; "slow" faults reply after SLOW_S, past it
SLOW_S = 2.0


def fault_config(tmp_path: Path, base_url: str, **overrides: Any) -> SearchConfig:
    """A small search on an HTTP endpoint, no response cache, enough retries that 20% faults never exhaust them
    (a call gives up with probability 0.2 ** 11)."""
    settings: dict[str, Any] = {
        "endpoint__base_url": base_url, "endpoint__model": "sim-default", "endpoint__cache": False,
        "endpoint__timeout_s": TIMEOUT_S, "endpoint__max_retries": 10, "suite__val": 12, "suite__test": 16,
        "evaluator__tasks_in_flight": 8,
    }
    settings.update(overrides)
    return small_config(tmp_path, **settings)


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shorter backoff sleeps for in-process searches (the search builds its LMs with the default); replies never
    depend on the backoff, only the test's duration does."""
    monkeypatch.setitem(LM.__init__.__kwdefaults__, "backoff_base_s", 0.05)


@pytest.fixture(scope="module")
def clean_run(arith_sim: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SearchConfig]:
    """The fault-free reference: the same search straight on the simulated server."""
    cfg = fault_config(tmp_path_factory.mktemp("clean"), arith_sim)
    summary = Search(cfg).run()
    assert summary["stop_reason"].startswith("finished")
    yield cfg


def test_a_search_under_20_percent_faults_finds_exactly_what_a_fault_free_search_finds(
        arith_sim: str, clean_run: SearchConfig, tmp_path: Path, fast_backoff: None, figures: Figures) -> None:
    with FaultyEndpoint(upstream=arith_sim, rates=mixed_rates(0.20), seed=7, retry_after=0.1,
                        slow_s=SLOW_S) as proxy:
        cfg = fault_config(tmp_path, proxy.base_url)
        summary = Search(cfg).run()
        faults, requests = dict(proxy.stats.faults), proxy.stats.chat_requests
    assert summary["stop_reason"].startswith("finished"), summary["stop_reason"]
    assert set(faults) == set(TRANSIENT_FAULTS), faults  # every kind was thrown at the search
    injected = sum(faults.values())
    assert 0.10 < injected / requests < 0.30, (injected, requests)
    assert behaviour(cfg.archive) == behaviour(clean_run.archive)
    with Archive(cfg.archive, create=False) as archive:
        assert archive.get_run(1)["status"] == "finished"
        assert not [e for c in archive.candidates(1) for e in archive.evaluations(c["id"]) if e["error"]]
    assert integrity(cfg.archive) == "ok"
    figures.add("faults", "searches_under_faults")
    figures.add("faults", "requests", requests)
    figures.add("faults", "injected", injected)
    figures.add("faults", "survived", injected)
    for kind, n in faults.items():
        figures.add("faults", f"injected.{kind}", n)


def test_an_endpoint_failing_every_call_stops_the_run_with_one_line_and_loses_nothing(
        arith_sim: str, clean_run: SearchConfig, tmp_path: Path, figures: Figures) -> None:
    archive_path = tmp_path / "archive.db"
    copy_archive(clean_run.archive, archive_path)  # an archive holding a finished run
    before = behaviour(archive_path)
    with FaultyEndpoint(upstream=arith_sim, rates=mixed_rates(1.0), seed=3, retry_after=0.1,
                        slow_s=SLOW_S) as proxy:
        cfg = fault_config(tmp_path, proxy.base_url, endpoint__max_retries=2, name="doomed",
                           archive=str(archive_path))
        config_path = write_config(cfg, tmp_path / "doomed.toml")
        res = run_cli(["run", config_path, "--quiet"])
        assert res.returncode == 2, res.stderr
        assert len(res.stderr_lines) == 1 and "Traceback" not in res.stderr, res.stderr
        line = res.stderr_lines[0]
        assert line.startswith("error: endpoint ") and proxy.base_url in line and "failed after 3 attempts" in line
        # Bounded: a few calls' retries (3 attempts of at most TIMEOUT_S, backoff under 1.5 s), not the whole
        # search; the bound is generous for a loaded machine but far below what scoring every task would take.
        assert res.elapsed_s < 120, res.elapsed_s
        assert proxy.stats.chat_requests < 200, proxy.stats.chat_requests
        assert behaviour(archive_path, 1) == before
        assert integrity(archive_path) == "ok"
        with Archive(archive_path, create=False) as archive:
            run = archive.get_run(2)
            assert run["status"] == "stopped" and "endpoint" in run["summary"]["stop_reason"]
            recorded = [e for c in archive.candidates(2) for e in archive.evaluations(c["id"])]
        assert not [e for e in recorded if e["error"]], "a failed call was recorded as the candidate's score"
        figures.add("faults", "dead_endpoint_runs")
        figures.add("faults", "dead_endpoint_exit_2")
        figures.set("faults", "dead_endpoint_seconds", round(res.elapsed_s, 1))

        proxy.rates = {}  # the endpoint is back
        resumed = run_cli(["resume", "2", "--archive", archive_path, "--quiet"])
    assert resumed.returncode == 0, resumed.stderr
    assert behaviour(archive_path, 2) == behaviour(clean_run.archive, 1)
    assert behaviour(archive_path, 1) == before
    assert integrity(archive_path) == "ok"
    figures.add("faults", "resumed_after_outage")


def test_a_stop_inside_the_sandbox_path_is_one_line_not_the_candidates_fault(tmp_path: Path) -> None:
    """The endpoint failing during a candidate's own call (inside the sandbox pipe) stops the run too: it is not
    turned into an exception the candidate could swallow and score on."""
    swallow = ("NAME = 'swallow'\ndef forward(task, lm):\n    try:\n        return lm.ask(task.question)\n"
               "    except Exception:\n        return '42'\n")
    with FaultyEndpoint(rates={"503": 1.0}) as proxy:
        cfg = fault_config(tmp_path, proxy.base_url, endpoint__max_retries=1, suite__val=4)
        suite = load_suite(cfg.suite)
        started = time.monotonic()
        with Evaluator.from_config(cfg) as evaluator, pytest.raises(EndpointError, match="HTTP 503"):
            evaluator.evaluate("k", swallow, suite.val)
    assert time.monotonic() - started < 60


@pytest.mark.slow
def test_an_endpoint_failing_inside_a_ray_actor_is_the_same_one_line_error(tmp_path: Path) -> None:
    """On Ray the actor's EndpointUnavailable comes back as itself, not wrapped in a multi-line RayTaskError."""
    code = "NAME = 'asker'\ndef forward(task, lm):\n    return lm.ask(task.question)\n"
    with FaultyEndpoint(rates={"500": 1.0}) as proxy:
        cfg = fault_config(tmp_path, proxy.base_url, endpoint__max_retries=1, suite__val=4, evaluator__use_ray=True,
                           evaluator__actors=1, evaluator__tasks_in_flight=2)
        with Evaluator.from_config(cfg) as evaluator, pytest.raises(EndpointError) as info:
            evaluator.evaluate("k", code, load_suite(cfg.suite).val)
    message = str(info.value)
    assert "\n" not in message and "HTTP 500" in message and "failed after 2 attempts" in message
