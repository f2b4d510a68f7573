"""Bad input, each through the real `metasearch` command in a subprocess: exit code 2, exactly one line on stderr
naming the cause, no traceback, and the archive (holding a finished run) byte-for-byte untouched.

The cases run concurrently in one module fixture (they are independent processes); each is then its own test.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import signal
import socket
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conftest import small_config, write_config
from faulty_endpoint import FaultyEndpoint
from metasearch.search import Search
from reliability.conftest import CliResult, Figures, behaviour, cli_env, copy_archive, integrity, run_cli


@dataclass
class Invocation:
    """One bad-input command: its arguments, extra environment, and the archive it must leave untouched."""

    args: list[str]
    archive: Path
    env: dict[str, str] = field(default_factory=dict)
    preexec: Callable[[], None] | None = None


@dataclass
class Outcome:
    tmp: Path
    result: CliResult
    before: str
    after: str
    runs_before: Any
    runs_after: Any


Builder = Callable[[Path, Path], contextlib.AbstractContextManager[Invocation]]


def digest(path: Path) -> str:
    """sha256 of the archive file and its WAL, if any (what a reader would see)."""
    h = hashlib.sha256()
    for part in (path, Path(f"{path}-wal")):
        if part.exists():
            h.update(part.read_bytes())
    return h.hexdigest()


def run_rows(path: Path) -> Any:
    try:
        return behaviour(path, 1)
    except Exception as err:  # a deliberately broken archive: compare the bytes only
        return type(err).__name__


def config_text(tmp: Path, archive: Path, **overrides: Any) -> str:
    settings: dict[str, Any] = {"archive": str(archive), "budget__iterations": 1, "suite__val": 4, "suite__test": 4,
                                "strategy__seeds": ["cot"]}
    cfg = small_config(tmp, **{**settings, **overrides})
    return write_config(cfg, tmp / "base.toml").read_text()


def with_config(text: str, tmp: Path, archive: Path, *, command: str = "run") -> Invocation:
    path = tmp / "bad.toml"
    path.write_text(text)
    return Invocation([command, str(path), "--quiet"], archive)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------------ the cases

@contextlib.contextmanager
def malformed_toml(tmp: Path, archive: Path) -> Iterator[Invocation]:
    yield with_config(config_text(tmp, archive) + 'broken = "an unterminated string\n', tmp, archive)


@contextlib.contextmanager
def unknown_key(tmp: Path, archive: Path) -> Iterator[Invocation]:
    yield with_config(config_text(tmp, archive).replace("[budget]", "[budget]\nitertions = 3"), tmp, archive)


@contextlib.contextmanager
def wrong_type(tmp: Path, archive: Path) -> Iterator[Invocation]:
    yield with_config(config_text(tmp, archive).replace("iterations = 1", 'iterations = "many"'), tmp, archive)


@contextlib.contextmanager
def conflicting_settings(tmp: Path, archive: Path) -> Iterator[Invocation]:
    text = config_text(tmp, archive, strategy__name="mcts")
    assert "evaluate_top = 1" in text and "children = 8" in text
    yield with_config(text.replace("evaluate_top = 1", "evaluate_top = 9"), tmp, archive)


@contextlib.contextmanager
def config_missing(tmp: Path, archive: Path) -> Iterator[Invocation]:
    yield Invocation(["run", str(tmp / "no-such-config.toml"), "--quiet"], archive)


@contextlib.contextmanager
def task_file_missing(tmp: Path, archive: Path) -> Iterator[Invocation]:
    yield with_config(config_text(tmp, archive, suite__source=f"jsonl:{tmp / 'missing.jsonl'}"), tmp, archive)


@contextlib.contextmanager
def task_file_corrupt(tmp: Path, archive: Path) -> Iterator[Invocation]:
    tasks = tmp / "tasks.jsonl"
    good = '{"id": "t%d", "question": "What is %d + 1?", "answer": "%d"}\n'
    tasks.write_text("".join(good % (i, i, i + 1) for i in range(6)) + '{"id": "t9", "question": "What is\n')
    yield with_config(config_text(tmp, archive, suite__source=f"jsonl:{tasks}"), tmp, archive)


@contextlib.contextmanager
def too_few_tasks_for_the_split(tmp: Path, archive: Path) -> Iterator[Invocation]:
    tasks = tmp / "tasks.jsonl"
    tasks.write_text("".join('{"id": "t%d", "question": "What is %d + 1?", "answer": "%d"}\n' % (i, i, i + 1)
                             for i in range(5)))
    yield with_config(config_text(tmp, archive, suite__source=f"jsonl:{tasks}"), tmp, archive)


@contextlib.contextmanager
def unknown_suite(tmp: Path, archive: Path) -> Iterator[Invocation]:
    yield with_config(config_text(tmp, archive, suite__source="nosuch:thing"), tmp, archive)


@contextlib.contextmanager
def newer_schema(tmp: Path, archive: Path) -> Iterator[Invocation]:
    con = sqlite3.connect(archive)
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    yield with_config(config_text(tmp, archive), tmp, archive)


@contextlib.contextmanager
def corrupt_archive(tmp: Path, archive: Path) -> Iterator[Invocation]:
    data = bytearray(archive.read_bytes())
    page = 4096
    for start in range(2 * page, len(data) - page, 3 * page):  # scribble over every third page but the first two
        data[start + 100:start + 400] = bytes((i * 37 + 11) % 256 for i in range(300))  # the same every time
    archive.write_bytes(bytes(data))
    yield with_config(config_text(tmp, archive), tmp, archive)


@contextlib.contextmanager
def not_an_archive(tmp: Path, archive: Path) -> Iterator[Invocation]:
    archive.write_text("name,score\nalpha,0.5\n")
    yield with_config(config_text(tmp, archive), tmp, archive)


@contextlib.contextmanager
def tmpfs(mount_dir: Path, size_kb: int) -> Iterator[Path]:
    mount_dir.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mount_dir)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield mount_dir
    finally:
        subprocess.run(["umount", "-l", str(mount_dir)], capture_output=True)


@contextlib.contextmanager
def read_only_directory(tmp: Path, archive: Path) -> Iterator[Invocation]:
    """A read-only file system (as root, permission bits stop nothing: remount a tmpfs read-only)."""
    if os.geteuid() != 0:
        ro = tmp / "ro"
        ro.mkdir()
        copy_archive(archive, ro / "archive.db")
        ro.chmod(0o555)
        (ro / "archive.db").chmod(0o444)
        try:
            yield with_config(config_text(tmp, ro / "archive.db"), tmp, ro / "archive.db")
        finally:
            ro.chmod(0o755)
        return
    with tmpfs(tmp / "ro", archive.stat().st_size // 1024 + 1024) as ro:
        copy_archive(archive, ro / "archive.db")
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        yield with_config(config_text(tmp, ro / "archive.db"), tmp, ro / "archive.db")


@contextlib.contextmanager
def full_disk(tmp: Path, archive: Path) -> Iterator[Invocation]:
    """The archive's file system has no space left (a tmpfs filled up; RLIMIT_FSIZE when mounting is not
    allowed, with SIGXFSZ ignored so the write fails like a full disk instead of killing the process)."""
    if os.geteuid() != 0:
        limit = archive.stat().st_size

        def cap() -> None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        inv = with_config(config_text(tmp, archive), tmp, archive)
        inv.preexec = cap
        yield inv
        return
    with tmpfs(tmp / "full", archive.stat().st_size // 1024 + 256) as full:
        copy_archive(archive, full / "archive.db")
        fd = os.open(full / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            with contextlib.suppress(OSError):  # until ENOSPC: not one free block left
                while True:
                    os.write(fd, b"\0" * 4096)
        finally:
            os.close(fd)
        yield with_config(config_text(tmp, full / "archive.db"), tmp, full / "archive.db")


@contextlib.contextmanager
def endpoint_down(tmp: Path, archive: Path) -> Iterator[Invocation]:
    url = f"http://127.0.0.1:{free_port()}/v1"
    yield with_config(config_text(tmp, archive, endpoint__base_url=url, endpoint__timeout_s=5.0), tmp, archive)


@contextlib.contextmanager
def endpoint_not_openai(tmp: Path, archive: Path) -> Iterator[Invocation]:
    with FaultyEndpoint(html=True) as html:
        yield with_config(config_text(tmp, archive, endpoint__base_url=html.base_url), tmp, archive)


@contextlib.contextmanager
def wrong_api_key(tmp: Path, archive: Path) -> Iterator[Invocation]:
    with FaultyEndpoint(api_key="sk-the-right-one") as guarded:
        inv = with_config(config_text(tmp, archive, endpoint__base_url=guarded.base_url), tmp, archive)
        inv.env["OPENAI_API_KEY"] = "sk-a-wrong-one"
        yield inv


@contextlib.contextmanager
def unknown_sim_profile(tmp: Path, archive: Path) -> Iterator[Invocation]:
    yield with_config(config_text(tmp, archive, endpoint__base_url="sim://no-such-profile"), tmp, archive)


@contextlib.contextmanager
def unknown_seed_agent(tmp: Path, archive: Path) -> Iterator[Invocation]:
    yield with_config(config_text(tmp, archive, strategy__seeds=["no_such_seed"]), tmp, archive)


@contextlib.contextmanager
def resume_unknown_run(tmp: Path, archive: Path) -> Iterator[Invocation]:
    yield Invocation(["resume", "99", "--archive", str(archive), "--quiet"], archive)


@contextlib.contextmanager
def resume_missing_archive(tmp: Path, archive: Path) -> Iterator[Invocation]:
    yield Invocation(["resume", "1", "--archive", str(tmp / "nowhere.db"), "--quiet"], archive)


@contextlib.contextmanager
def browse_newer_schema(tmp: Path, archive: Path) -> Iterator[Invocation]:
    with newer_schema(tmp, archive):
        yield Invocation(["archive", "runs", "--archive", str(archive)], archive)


@contextlib.contextmanager
def browse_corrupt_archive(tmp: Path, archive: Path) -> Iterator[Invocation]:
    with corrupt_archive(tmp, archive):
        yield Invocation(["archive", "ls", "--archive", str(archive)], archive)


# name -> (builder, words the one line must contain, lower-cased; "a|b": either)
CASES: dict[str, tuple[Builder, tuple[str, ...]]] = {
    "malformed_toml": (malformed_toml, ("bad.toml", "not valid toml")),
    "unknown_key": (unknown_key, ("budget.itertions", "unknown key")),
    "wrong_type": (wrong_type, ("budget.iterations", "integer")),
    "conflicting_settings": (conflicting_settings, ("strategy.mcts", "evaluate_top (9)", "children (8)")),
    "config_missing": (config_missing, ("no-such-config.toml", "not found")),
    "task_file_missing": (task_file_missing, ("missing.jsonl",)),
    "task_file_corrupt": (task_file_corrupt, ("tasks.jsonl:7", "bad json")),
    "too_few_tasks_for_the_split": (too_few_tasks_for_the_split, ("5 tasks", "needs 8")),
    "unknown_suite": (unknown_suite, ("nosuch",)),
    "newer_schema": (newer_schema, ("schema version 99", "newer")),
    "corrupt_archive": (corrupt_archive, ("archive.db", "corrupt")),
    "not_an_archive": (not_an_archive, ("archive.db", "not an sqlite database")),
    "read_only_directory": (read_only_directory, ("archive.db", "read-only")),
    "full_disk": (full_disk, ("archive.db", "no space left|disk is full")),
    "endpoint_down": (endpoint_down, ("127.0.0.1", "refused")),
    "endpoint_not_openai": (endpoint_not_openai, ("not an openai-compatible api",)),
    "wrong_api_key": (wrong_api_key, ("api key rejected", "openai_api_key")),
    "unknown_sim_profile": (unknown_sim_profile, ("no-such-profile",)),
    "unknown_seed_agent": (unknown_seed_agent, ("no_such_seed",)),
    "resume_unknown_run": (resume_unknown_run, ("99",)),
    "resume_missing_archive": (resume_missing_archive, ("nowhere.db",)),
    "browse_newer_schema": (browse_newer_schema, ("schema version 99",)),
    "browse_corrupt_archive": (browse_corrupt_archive, ("corrupt",)),
}


@pytest.fixture(scope="module")
def base_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An archive holding one finished run: what every bad command must leave exactly as it was."""
    tmp = tmp_path_factory.mktemp("base")
    cfg = small_config(tmp, budget__iterations=1, suite__val=4, suite__test=4, strategy__seeds=["cot"])
    assert Search(cfg).run()["stop_reason"].startswith("finished")
    return Path(cfg.archive)


def run_case(name: str, base: Path, root: Path) -> Outcome:
    tmp = root / name
    tmp.mkdir()
    archive = tmp / "archive.db"
    copy_archive(base, archive)
    with CASES[name][0](tmp, archive) as inv:
        before, runs_before = digest(inv.archive), run_rows(inv.archive)
        result = run_cli(inv.args, env=cli_env(**inv.env), cwd=tmp, timeout=120, preexec_fn=inv.preexec)
        return Outcome(tmp, result, before, digest(inv.archive), runs_before, run_rows(inv.archive))


@pytest.fixture(scope="module")
def outcomes(base_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("bad")

    def one(name: str) -> Any:
        try:
            return run_case(name, base_archive, root)
        except BaseException as err:  # reported by that case's own test
            return err
    with ThreadPoolExecutor(3) as pool:
        return dict(zip(CASES, pool.map(one, CASES)))


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_gives_exit_2_one_line_and_leaves_the_archive_untouched(
        name: str, outcomes: dict[str, Any], figures: Figures) -> None:
    outcome = outcomes[name]
    if isinstance(outcome, pytest.skip.Exception):
        pytest.skip(str(outcome))
    if isinstance(outcome, BaseException):
        raise outcome
    res = outcome.result
    figures.add("bad_input", "tried")
    assert res.returncode == 2, f"exit {res.returncode}: {res.stderr[-3000:]}"
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    assert len(res.stderr_lines) == 1, res.stderr
    line = res.stderr_lines[0]
    assert line.startswith("error: ") and len(line) < 400, line
    for word in CASES[name][1]:
        assert any(w in line.lower() for w in word.split("|")), f"{word!r} not in {line!r}"
    assert outcome.after == outcome.before, "the archive file changed"
    assert outcome.runs_after == outcome.runs_before
    figures.add("bad_input", "exit_2_one_line")
    figures.add("bad_input", "archive_untouched")
    figures.set("bad_input_lines", name, line.replace(str(outcome.tmp), "DIR"))


def test_the_base_archive_is_sound(base_archive: Path) -> None:
    assert integrity(base_archive) == "ok"
