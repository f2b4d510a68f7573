"""Run the `metasearch` CLI with test-only kill points: `python killpoints.py run CONFIG ...` (same arguments).

Nothing in the package changes: this wrapper patches a few methods in its own process, then calls
`metasearch.cli.main`. It counts the calls of each point cumulatively across processes (one byte appended to
`DIR/count.<point>` per call, so the count survives a SIGKILL), and SIGKILLs its own process when a point's
cumulative count reaches a threshold of the plan. Thresholds are counts of work, never times: a plan whose
thresholds are at most the counts of an uninterrupted run fires every one of its kills exactly once, whatever the
machine's speed, because a run interrupted and resumed repeats work but never skips any.

Points (where the process dies):
    propose             the proposer has done its LLM work for an iteration; nothing recorded yet
    chat                an LLM call has just returned (mostly inside a candidate's task, i.e. mid-evaluation)
    record_evaluations  inside the archive transaction that stores a finished task, before COMMIT
    update_candidate    inside the transaction that stores a candidate's status and scores, before COMMIT
    log_event           inside the transaction that appends to the run's journal, before COMMIT
    add_candidate       inside the transaction that adds a proposed candidate, before COMMIT

Environment:
    METASEARCH_KILL_DIR   directory for the counters and logs (required)
    METASEARCH_KILL_PLAN  "point:N,point:N,..." cumulative thresholds (optional: counting only)
    METASEARCH_HOLD       "point:N": at the Nth call, create DIR/held and wait for DIR/release (max 300 s)

Logs in DIR: `kills.jsonl` (one line per kill: point, count, pid, the pids of the children it leaves),
`recorded.jsonl` (one line per evaluation row about to be recorded: candidate id, split, task id).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

POINTS = ("propose", "chat", "record_evaluations", "update_candidate", "log_event", "add_candidate")
ARCHIVE_WRITES = ("record_evaluations", "update_candidate", "log_event", "add_candidate")


def parse_plan(text: str) -> dict[str, set[int]]:
    """`"chat:40,log_event:3"` -> {"chat": {40}, "log_event": {3}}; unknown points are an error."""
    plan: dict[str, set[int]] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        point, _, count = item.partition(":")
        if point not in POINTS or not count.isdigit() or int(count) < 1:
            raise ValueError(f"bad kill point {item!r} (points: {', '.join(POINTS)})")
        plan.setdefault(point, set()).add(int(count))
    return plan


def format_plan(plan: list[tuple[str, int]]) -> str:
    return ",".join(f"{point}:{count}" for point, count in plan)


def read_counts(directory: Path) -> dict[str, int]:
    """Cumulative call counts per point (what every process of a series did, killed or not)."""
    return {p: (directory / f"count.{p}").stat().st_size if (directory / f"count.{p}").exists() else 0
            for p in POINTS}


def read_jsonl(path: Path) -> list[Any]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def children_of(pid: int) -> list[int]:
    """Direct children of a process (Linux /proc), e.g. the sandbox workers a killed search leaves behind."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            out.append(int(entry.name))
    return sorted(out)


class _Points:
    """The counters and the plan of this process."""

    def __init__(self, directory: Path, plan: dict[str, set[int]], hold: tuple[str, int] | None) -> None:
        self.dir = directory
        self.plan = plan
        self.hold = hold
        self._lock = threading.Lock()
        self._dying = False
        self._fds = {p: os.open(directory / f"count.{p}", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                     for p in POINTS}

    def bump(self, point: str) -> tuple[int, bool]:
        """Count one call; returns the cumulative count including it, and whether this call is a planned kill.

        Once a kill is decided, every other thread of this process that reaches a point stops there, uncounted:
        a call counted in the instant between the decision and the SIGKILL would use up a threshold of the plan
        in a process that can no longer fire it (the kill would silently never happen)."""
        with self._lock:
            if not self._dying:
                os.write(self._fds[point], b".")
                count = os.fstat(self._fds[point]).st_size
                fire = count in self.plan.get(point, ())
                self._dying = fire
                return count, fire
        time.sleep(60)  # the dying thread's SIGKILL lands first
        raise RuntimeError("kill point: the process outlived its SIGKILL")

    def maybe_hold(self, point: str, count: int) -> None:
        if self.hold != (point, count):
            return
        (self.dir / "held").write_text(str(os.getpid()))
        deadline = time.monotonic() + 300
        while not (self.dir / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def log(self, name: str, record: Any) -> None:
        fd = os.open(self.dir / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, (json.dumps(record) + "\n").encode())
        finally:
            os.close(fd)

    def die(self, point: str, count: int) -> None:
        pid = os.getpid()
        self.log("kills.jsonl", {"point": point, "count": count, "pid": pid, "children": children_of(pid)})
        os.kill(pid, signal.SIGKILL)
        time.sleep(60)  # never reached: SIGKILL cannot be caught


def install(points: _Points) -> None:
    """Patch the kill points into this process (the CLI has not imported anything yet)."""
    from metasearch import search as search_mod
    from metasearch.archive import Archive
    from metasearch.llm.client import LM

    def write_point(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Archive, *args: Any, **kwargs: Any) -> Any:
            if name == "record_evaluations":
                bound = {**dict(zip(("cid", "split", "rows"), args)), **kwargs}
                for row in bound["rows"]:
                    points.log("recorded.jsonl", [int(bound["cid"]), bound["split"], str(row.get("task_id"))])
            count, fire = points.bump(name)
            points.maybe_hold(name, count)
            if fire:
                with self.transaction():  # the real write happens, then the process dies before COMMIT
                    original(self, *args, **kwargs)
                    points.die(name, count)
            return original(self, *args, **kwargs)

        return wrapper

    for name in ARCHIVE_WRITES:
        setattr(Archive, name, write_point(name, getattr(Archive, name)))

    real_chat = LM.chat

    def chat(self: LM, *args: Any, **kwargs: Any) -> Any:
        result = real_chat(self, *args, **kwargs)
        count, fire = points.bump("chat")
        points.maybe_hold("chat", count)
        if fire:
            points.die("chat", count)
        return result

    LM.chat = chat  # type: ignore[method-assign]

    real_make = search_mod.make_proposer

    def make_proposer(cfg: Any) -> Any:
        proposer = real_make(cfg)
        real_propose = proposer.propose

        def propose(ctx: Any, iteration: int) -> Any:
            proposals = real_propose(ctx, iteration)
            count, fire = points.bump("propose")
            points.maybe_hold("propose", count)
            if fire:
                points.die("propose", count)
            return proposals

        proposer.propose = propose
        return proposer

    search_mod.make_proposer = make_proposer  # type: ignore[assignment]


def main() -> None:
    directory = Path(os.environ["METASEARCH_KILL_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    plan = parse_plan(os.environ.get("METASEARCH_KILL_PLAN", ""))
    hold_text = os.environ.get("METASEARCH_HOLD", "")
    hold = None
    if hold_text:
        point, _, count = hold_text.partition(":")
        hold = (point, int(count))
    install(_Points(directory, plan, hold))
    from metasearch.cli import main as cli_main

    sys.argv = ["metasearch", *sys.argv[1:]]
    cli_main()


if __name__ == "__main__":
    main()
