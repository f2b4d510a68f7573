"""Two `metasearch` processes on one archive: the archive takes a writer lock, so a second search (run or resume)
refuses with one line naming the holder, readers keep working (WAL), and the file is never corrupted.

The first search is held inside an archive write by the kill-point wrapper (METASEARCH_HOLD), so the overlap is
certain whatever the machine's speed; the race test starts both at once and accepts either safe outcome.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from conftest import small_config, write_config
from metasearch.archive import Archive
from metasearch.config import SearchConfig
from reliability.conftest import (PROCESS_TIMEOUT_S, Figures, cli_env, finish, integrity, run_cli, start_cli,
                                  stop_group)


def quick_config(tmp_path: Path) -> SearchConfig:
    return small_config(tmp_path, budget__iterations=1, suite__val=8, suite__test=8, strategy__seeds=["cot"])


def wait_for(path: Path, timeout: float = PROCESS_TIMEOUT_S) -> bool:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return path.exists()


def test_a_second_search_on_a_busy_archive_refuses_and_readers_still_work(tmp_path: Path, figures: Figures) -> None:
    cfg = quick_config(tmp_path)
    config_path = write_config(cfg, tmp_path / "run.toml")
    hold_dir = tmp_path / "hold"
    started = time.monotonic()
    first = start_cli(["run", config_path, "--quiet"], killpoints=True,
                      env=cli_env(METASEARCH_KILL_DIR=str(hold_dir), METASEARCH_HOLD="record_evaluations:3"))
    try:
        assert wait_for(hold_dir / "held"), "the first search never reached its third archive write"
        holder = (hold_dir / "held").read_text().strip()
        second = run_cli(["run", config_path, "--quiet"], timeout=120)
        again = run_cli(["resume", "1", "--archive", cfg.archive, "--quiet"], timeout=120)
        reader = run_cli(["archive", "runs", "--archive", cfg.archive, "--json"], timeout=120)
    finally:
        (hold_dir / "release").write_text("go")
    try:
        done = finish(first, started)
    finally:
        stop_group(first)
    for refused in (second, again):
        assert refused.returncode == 2, refused.stderr
        assert len(refused.stderr_lines) == 1 and "Traceback" not in refused.stderr, refused.stderr
        line = refused.stderr_lines[0]
        assert "in use by another metasearch process" in line and f"pid {holder}" in line, line
    assert reader.returncode == 0, reader.stderr
    assert [r["status"] for r in json.loads(reader.stdout)] == ["running"]
    assert done.returncode == 0, done.stderr
    assert integrity(cfg.archive) == "ok"
    with Archive(cfg.archive, create=False) as archive:
        runs = archive.runs()
        assert [r["status"] for r in runs] == ["finished"]  # the refused commands created nothing
    figures.add("concurrency", "second_writers_refused", 2)
    figures.add("concurrency", "readers_during_a_search", 1)
    figures.add("concurrency", "integrity_checks_ok")


def test_two_searches_started_together_never_corrupt_the_archive(tmp_path: Path, figures: Figures) -> None:
    """Whichever wins the lock runs; the other refuses, or (if the first already ended) runs after it."""
    cfg = quick_config(tmp_path)
    config_path = write_config(cfg, tmp_path / "run.toml")
    started = time.monotonic()
    procs = [start_cli(["run", config_path, "--quiet"]) for _ in range(2)]
    try:
        results = [finish(p, started) for p in procs]
    finally:
        for p in procs:
            stop_group(p)
    codes = sorted(r.returncode for r in results)
    assert codes in ([0, 0], [0, 2]), [r.stderr for r in results]
    for r in results:
        if r.returncode == 2:
            assert len(r.stderr_lines) == 1 and "in use by another metasearch process" in r.stderr, r.stderr
    assert integrity(cfg.archive) == "ok"
    with Archive(cfg.archive, create=False) as archive:
        runs = archive.runs()
        assert [r["status"] for r in runs] == ["finished"] * codes.count(0)
        counts = {archive.stats(r["id"])["evaluations"] for r in runs}
    assert len(counts) == 1  # each run that ran did all its work
    figures.add("concurrency", "races", 1)
    figures.add("concurrency", "integrity_checks_ok")
