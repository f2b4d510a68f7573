"""Shared pieces of the reliability suite: the CLI in a subprocess, archive checks, fault mixes, the figures.

Every process a test starts runs in its own session and is stopped by its pid (`stop_group`), never by name.
Every wait on a process has a generous timeout: the suite must pass on a slow, loaded machine as on a fast one,
so nothing here depends on how fast anything runs, only on counts of work.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from metasearch.archive import Archive

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
KILLPOINTS = HERE / "killpoints.py"
PROCESS_TIMEOUT_S = 300.0  # a whole CLI search on a loaded 2-core machine; never reached when things work
FIGURES_ENV = "METASEARCH_RELIABILITY_FIGURES"  # where experiments/reliability_figures.py wants the counters

# The faults a healthy endpoint may throw at a long search (not "400": a bad request is the candidate's doing).
TRANSIENT_FAULTS = ("429", "500", "503", "drop", "slow", "truncated", "nonjson", "wrong_choices", "empty_choices",
                    "none_content")


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str
    elapsed_s: float

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def cli_env(**extra: str) -> dict[str, str]:
    """The caller's environment without anything that would redirect a run (keys, archive default)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "METASEARCH_ARCHIVE")}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


def stop_group(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL a process we started (its own session, so its group id is its pid) and reap it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=60)


def start_cli(args: Sequence[str], *, env: dict[str, str] | None = None, killpoints: bool = False,
              cwd: Path | None = None, **popen: Any) -> subprocess.Popen[str]:
    """Start `metasearch ARGS` (through the kill-point wrapper if asked) in its own session."""
    head = [sys.executable, str(KILLPOINTS)] if killpoints else [sys.executable, "-m", "metasearch"]
    return subprocess.Popen([*head, *map(str, args)], env=env or cli_env(), cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, **popen)


def finish(proc: subprocess.Popen[str], started: float, timeout: float = PROCESS_TIMEOUT_S) -> CliResult:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_group(proc)
        out, err = proc.communicate()
        raise AssertionError(f"{proc.args} did not end within {timeout:g} s; stderr: {err[-2000:]}") from None
    return CliResult(proc.returncode, out, err, time.monotonic() - started)


def run_cli(args: Sequence[str], *, env: dict[str, str] | None = None, killpoints: bool = False,
            cwd: Path | None = None, timeout: float = PROCESS_TIMEOUT_S, **popen: Any) -> CliResult:
    """Run `metasearch ARGS` to the end and return its exit code, output and duration."""
    started = time.monotonic()
    return finish(start_cli(args, env=env, killpoints=killpoints, cwd=cwd, **popen), started, timeout)


def integrity(path: str | Path) -> str:
    """`PRAGMA integrity_check` of an archive file ("ok" when sound)."""
    con = sqlite3.connect(str(path), timeout=30)
    try:
        return str(con.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        con.close()


def behaviour(path: str | Path, run_id: int = 1) -> dict[str, Any]:
    """What a run found: its candidates and per-task evaluations, without times, ids or journal (see
    `Archive.snapshot`). Two runs of the same config and seed must give equal behaviours."""
    with Archive(path, create=False) as archive:
        snap = archive.snapshot(run_id)
    return {"candidates": snap["candidates"], "evaluations": snap["evaluations"]}


def copy_archive(source: str | Path, target: str | Path) -> Path:
    """A consistent copy of an archive, WAL included (copying the main file alone can miss committed pages)."""
    src = sqlite3.connect(str(source), timeout=30)
    dst = sqlite3.connect(str(target))
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    return Path(target)


def evaluation_rows(path: str | Path) -> int:
    con = sqlite3.connect(str(path), timeout=30)
    try:
        return int(con.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0])
    finally:
        con.close()


def mixed_rates(total: float, kinds: Sequence[str] = TRANSIENT_FAULTS) -> dict[str, float]:
    """FaultyEndpoint rates giving each kind an equal share of `total` (it draws kinds in order, first hit wins,
    so kind i needs the conditional rate share / (1 - shares already taken))."""
    share = total / len(kinds)
    return {kind: min(1.0, share / (1.0 - i * share)) for i, kind in enumerate(kinds)}


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:].split()[0] != "Z"


def wait_gone(pids: Sequence[int], timeout: float = 60.0) -> list[int]:
    """Wait for processes to end; returns those still alive after `timeout`."""
    deadline = time.monotonic() + timeout
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [p for p in left if alive(p)]
    return left


# ------------------------------------------------------------------------------------------------ figures

class Figures:
    """Counters the tests report (faults injected, kills survived, payloads blocked...). Written as JSON at the
    end of the session when $METASEARCH_RELIABILITY_FIGURES names a file (experiments/reliability_figures.py)."""

    def __init__(self) -> None:
        self.counts: dict[str, Counter[str]] = defaultdict(Counter)
        self.values: dict[str, dict[str, Any]] = defaultdict(dict)

    def add(self, section: str, key: str, n: int = 1) -> None:
        self.counts[section][key] += n

    def set(self, section: str, key: str, value: Any) -> None:
        self.values[section][key] = value

    def to_dict(self) -> dict[str, Any]:
        sections = set(self.counts) | set(self.values)
        return {s: {**dict(self.counts.get(s, {})), **self.values.get(s, {})} for s in sorted(sections)}


_FIGURES = Figures()


@pytest.fixture(scope="session")
def figures() -> Iterator[Figures]:
    yield _FIGURES
    target = os.environ.get(FIGURES_ENV)
    if target:
        Path(target).write_text(json.dumps(_FIGURES.to_dict(), indent=2, sort_keys=True))


# ------------------------------------------------------------------------------------------------ servers

@pytest.fixture(scope="module")
def arith_sim() -> Iterator[str]:
    """The simulated LLM over HTTP, knowing every builtin:arith task, replying without simulated latency."""
    from metasearch.llm.server import start_in_thread

    base_url, stop = start_in_thread("default", latency_ms=0, suites=("builtin:arith",))
    try:
        yield base_url
    finally:
        stop()
