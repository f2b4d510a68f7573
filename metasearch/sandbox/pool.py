"""The host side of the sandbox: a thread-safe pool of worker processes, and the one-shot unit-test runner.

`SandboxPool.run` checks the policy on the host (layer 1), then hands the code to an idle worker (layers 2
and 3) and serves the worker's `lm` requests with the caller's handler. A worker that overruns its wall
clock is SIGKILLed and replaced; a worker that dies (signal, OOM, segfault) is a `crash` result and is
replaced; in every case the pool keeps serving. The worker is started as `python -s -P -B -m
metasearch.sandbox.worker` from a private empty directory with a scrubbed environment, so it depends neither
on the caller's working directory nor on its `sys.path` or PYTHON* variables.
"""

from __future__ import annotations

import json
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

from metasearch.errors import BudgetExceeded, EndpointError
from metasearch.sandbox.limits import Limits
from metasearch.sandbox.policy import check_policy

LMHandler = Callable[[str, dict], Any]

START_TIMEOUT_S = 30.0
_CLOSED = object()  # put in the idle queue by close(): wakes threads waiting for a worker
_TASK_KEYS = ("id", "question", "kind")
_HIDDEN_META = ("tests", "difficulty", "answer", "gold")


@dataclass(frozen=True)
class SandboxResult:
    """The outcome of one candidate on one task. `error_kind` is one of policy, syntax, contract, runtime,
    timeout, memory, output, crash, lm (None when ok)."""

    ok: bool
    answer: str | None
    error: str | None
    error_kind: str | None
    elapsed_s: float


class WorkerDied(Exception):
    """The worker process ended (or broke the protocol) while serving a task."""


def worker_command(limits: Limits, *extra: str) -> list[str]:
    """The worker's argv: no user site, no unsafe sys.path entry, no bytecode writes."""
    return [sys.executable, "-s", "-P", "-B", "-m", "metasearch.sandbox.worker", *extra, *limits.to_argv()]


def worker_env() -> dict[str, str]:
    """A scrubbed environment: the caller's secrets and PYTHON* settings do not reach candidate code.
    PYTHONHASHSEED is fixed so a candidate iterating a set of strings is deterministic across runs."""
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONHASHSEED": "0"}


def public_task(task_public: dict[str, Any]) -> dict[str, Any]:
    """Only what a candidate may see, even if the caller passed a full task record."""
    meta = task_public.get("meta")
    out = {k: task_public.get(k, "") for k in _TASK_KEYS}
    out["meta"] = {k: v for k, v in meta.items() if k not in _HIDDEN_META} if isinstance(meta, dict) else {}
    return out


@lru_cache(maxsize=256)
def _checked(code: str) -> tuple[Any, ...]:
    """Policy verdicts per source text: a candidate is checked once, then run on many tasks."""
    return tuple(check_policy(code))


def _signal_name(returncode: int | None) -> str:
    if returncode is None or returncode >= 0:
        return f"exit code {returncode}"
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


class _Worker:
    """One worker process and its line protocol. Used by one thread at a time."""

    def __init__(self, limits: Limits, cwd: str) -> None:
        self.limits = limits
        self.proc = subprocess.Popen(
            worker_command(limits), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            cwd=cwd, env=worker_env(), start_new_session=True, bufsize=0)
        self._buf = b""
        self._fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        self.max_line = 6 * max(limits.max_output_bytes, limits.max_prompt_chars) + 65536
        self.killed_by_host = False
        self.info: dict[str, Any] = {}

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        message, _ = self._read(timeout)
        if "ready" not in message:
            raise WorkerDied(f"worker sent {message!r} instead of ready")
        self.info = message["ready"]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, message: dict[str, Any]) -> None:
        try:
            self.proc.stdin.write(json.dumps(message).encode("utf-8") + b"\n")  # type: ignore[union-attr]
            self.proc.stdin.flush()  # type: ignore[union-attr]
        except (BrokenPipeError, OSError, ValueError) as err:
            raise WorkerDied(f"worker pipe closed: {err}") from None

    def _read(self, timeout: float) -> tuple[dict[str, Any], float]:
        """Next message within `timeout` seconds; returns it and the time waited. TimeoutError on overrun."""
        start = time.monotonic()
        while b"\n" not in self._buf:
            left = timeout - (time.monotonic() - start)
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([self._fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._fd, 1 << 16)
            if not chunk:
                raise WorkerDied("worker closed its output")
            self._buf += chunk
            if len(self._buf) > self.max_line and b"\n" not in self._buf:
                raise WorkerDied("worker sent an oversized message")
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            return json.loads(line), time.monotonic() - start
        except ValueError:
            raise WorkerDied("worker sent a malformed message") from None

    def kill(self) -> None:
        """SIGKILL and reap. Safe to call twice."""
        if self.proc.poll() is None:
            self.killed_by_host = True
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()  # type: ignore[union-attr]
            except OSError:
                pass

    def stop(self) -> None:
        """Ask an idle worker to exit (EOF on stdin), then make sure it did."""
        try:
            self.proc.stdin.close()  # type: ignore[union-attr]
            self.proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()

    def death_result(self, elapsed: float) -> tuple[str, str]:
        """error_kind and message for a worker that ended mid-task."""
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
        code = self.proc.returncode
        if code == -signal.SIGXCPU:
            return "timeout", f"CPU time limit of {self.limits.cpu_seconds} s exceeded (SIGXCPU)"
        return "crash", f"worker died: {_signal_name(code)}"

    def execute(self, code: str, task: dict[str, Any], lm_handler: LMHandler) -> dict[str, Any]:
        """Run one task; returns the worker's result dict, or raises TimeoutError / WorkerDied / BudgetExceeded /
        EndpointError (after which the worker must be killed)."""
        self.send({"code": code, "task": task})
        budget = self.limits.wall_timeout_s
        calls = 0
        while True:
            message, waited = self._read(budget)
            budget -= waited
            if "result" in message:
                return dict(message["result"])
            if "lm" not in message:
                raise WorkerDied(f"unexpected message from worker: {sorted(message)!r}")
            calls += 1
            if calls > self.limits.max_lm_calls:
                self.send({"lm_error": f"more than {self.limits.max_lm_calls} lm calls in one task"})
                continue
            try:
                reply = {"lm_result": lm_handler(str(message["lm"]), dict(message.get("kwargs") or {}))}
            except (BudgetExceeded, EndpointError):
                raise  # the run must stop: not the candidate's doing, so never turned into its exception
            except Exception as err:  # the handler's failure becomes an exception inside the candidate
                reply = {"lm_error": f"{type(err).__name__}: {err}"[:2000]}
            try:
                line = json.dumps(reply)
            except (TypeError, ValueError):
                line = json.dumps({"lm_error": "lm handler returned a value that is not JSON"})
            if len(line) > self.max_line:
                line = json.dumps({"lm_error": "lm reply too large"})
            self.send(json.loads(line))


class SandboxPool:
    """`size` sandbox worker processes shared by any number of threads; each `run` holds one worker.

    Example::

        with SandboxPool(2, Limits()) as pool:
            res = pool.run(code, task.public(), lm_handler=task_lm.handle)
    """

    def __init__(self, size: int, limits: Limits, *, enforce_policy: bool = True) -> None:
        """`enforce_policy=False` skips layer 1 and exists only so tests can attack the inner layers."""
        if size < 1:
            raise ValueError("pool size must be >= 1")
        self.size = size
        self.limits = limits
        self.enforce_policy = enforce_policy
        self._dir = tempfile.mkdtemp(prefix="metasearch-sandbox-")
        self._idle: queue.Queue[Any] = queue.Queue()  # _Worker | None (a slot to refill) | _CLOSED
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.replacements = 0
        started = [self._spawn_nowait() for _ in range(size)]
        try:
            for worker in started:
                worker.wait_ready()
                self._idle.put(worker)
        except BaseException:
            self.close()
            raise

    # -- workers

    def _spawn_nowait(self) -> _Worker:
        worker = _Worker(self.limits, self._dir)
        with self._lock:
            self._all.add(worker)
        return worker

    def _spawn(self) -> _Worker:
        worker = self._spawn_nowait()
        try:
            worker.wait_ready()
        except BaseException:
            self._discard(worker)
            raise
        return worker

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._all.discard(worker)

    def _release(self, worker: _Worker, healthy: bool) -> None:
        """Return a worker to the pool, or replace it when it died or was killed."""
        if healthy and worker.alive() and not self._closed:
            self._idle.put(worker)
            return
        self._discard(worker)
        if self._closed:
            return
        with self._lock:
            self.replacements += 1
        try:
            fresh = self._spawn()
            if self._closed:  # close() ran while we were starting it
                self._discard(fresh)
                return
            self._idle.put(fresh)
        except BaseException:
            self._idle.put(None)  # the next acquire retries the start
            raise

    def _acquire(self) -> _Worker:
        worker = self._idle.get()
        if worker is _CLOSED or self._closed:
            self._idle.put(worker if worker is _CLOSED else _CLOSED)
            if isinstance(worker, _Worker):
                self._discard(worker)
            raise RuntimeError("SandboxPool is closed")
        if worker is None:  # a slot whose replacement failed earlier: try again
            try:
                return self._spawn()
            except BaseException:
                self._idle.put(None)
                raise
        return worker

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for diagnostics and tests)."""
        with self._lock:
            return sorted(w.pid for w in self._all if w.alive())

    def worker_info(self) -> list[dict[str, Any]]:
        """What each worker reported at start: pid, uid, netns (network isolated), dropped_root."""
        with self._lock:
            return [dict(w.info) for w in self._all]

    # -- API

    def run(self, code: str, task_public: dict[str, Any], lm_handler: LMHandler) -> SandboxResult:
        """Run `forward(task, lm)` of `code` on one task. Never raises for anything the candidate does;
        raises BudgetExceeded or EndpointError when `lm_handler` does (the worker's task is killed first)."""
        if self._closed:
            raise RuntimeError("SandboxPool is closed")
        start = time.monotonic()
        if self.enforce_policy:
            violations = _checked(code) if isinstance(code, str) else tuple(check_policy(code))
            if violations:
                rules = {v.rule for v in violations}
                kind = "syntax" if "syntax" in rules else "policy" if rules - {"contract"} else "contract"
                message = "; ".join(v.message for v in violations[:5])
                return SandboxResult(False, None, message, kind, time.monotonic() - start)
        task = public_task(task_public)
        worker = self._acquire()
        healthy = False
        try:
            try:
                raw = worker.execute(code, task, lm_handler)
            except TimeoutError:
                worker.kill()
                return SandboxResult(False, None, f"wall-clock timeout after {self.limits.wall_timeout_s} s",
                                     "timeout", time.monotonic() - start)
            except WorkerDied as err:
                kind, message = worker.death_result(time.monotonic() - start)
                if worker.alive():  # a protocol error, not a death: kill it
                    worker.kill()
                    kind, message = "crash", str(err)
                return SandboxResult(False, None, message, kind, time.monotonic() - start)
            healthy = True
            return SandboxResult(bool(raw.get("ok")), raw.get("answer"), raw.get("error"), raw.get("error_kind"),
                                 time.monotonic() - start)
        finally:
            if not healthy:
                worker.kill()
            self._release(worker, healthy)

    def close(self) -> None:
        """Stop every worker and remove the pool's directory. Runs in flight end with a crash result."""
        self._closed = True
        self._idle.put(_CLOSED)
        with self._lock:
            workers = list(self._all)
            self._all.clear()
        for worker in workers:
            worker.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> "SandboxPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_unit_tests(program: str, tests: str, entry_point: str, limits: Limits) -> tuple[bool, str | None]:
    """Score a HumanEval answer: `tests` defines check(candidate); run program + tests + check(entry_point)
    in a one-shot worker (normal Python, imports allowed, same rlimits, no network, empty private cwd,
    killed at the wall-clock limit). Returns (passed, error)."""
    nonce = os.urandom(16).hex()
    request = json.dumps({"nonce": nonce, "program": program, "tests": tests, "entry_point": entry_point})
    with tempfile.TemporaryDirectory(prefix="metasearch-unit-") as cwd:
        proc = subprocess.Popen(worker_command(limits, "--unit-tests"), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=cwd, env=worker_env(),
                                start_new_session=True)
        try:
            out, _ = proc.communicate(request.encode("utf-8"), timeout=limits.wall_timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return False, f"timeout after {limits.wall_timeout_s} s"
        except BrokenPipeError:
            proc.kill()
            out, _ = proc.communicate()
    line = out.split(b"\n", 1)[0]
    try:
        reply = json.loads(line) if line else {}
    except ValueError:
        reply = {}
    if reply.get("nonce") != nonce:
        if proc.returncode == -signal.SIGXCPU:
            return False, f"CPU time limit of {limits.cpu_seconds} s exceeded"
        return False, f"test process died: {_signal_name(proc.returncode)}"
    return bool(reply.get("passed")), reply.get("error")
