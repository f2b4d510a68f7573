"""SandboxPool and run_unit_tests: real worker processes, small limits."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from metasearch.errors import BudgetExceeded
from metasearch.sandbox import Limits, SandboxPool, run_unit_tests

LIMITS = Limits(cpu_seconds=2, memory_mb=256, wall_timeout_s=5.0, max_output_bytes=4096)
TASK = {"id": "t-7", "question": "What is 3 + 4?", "kind": "math", "meta": {"source": "unit"}}


def echo(method: str, kwargs: dict) -> object:
    return {"answer": kwargs["prompt"]} if method == "ask_json" else "echo:" + kwargs["prompt"]


@pytest.fixture(scope="module")
def pool() -> SandboxPool:
    with SandboxPool(2, LIMITS) as p:
        yield p


def test_runs_forward_with_lm_round_trips_and_helpers(pool: SandboxPool) -> None:
    seen: list[tuple[str, dict]] = []

    def handler(method: str, kwargs: dict) -> object:
        seen.append((method, kwargs))
        return echo(method, kwargs)

    code = '''
def forward(task, lm):
    a = lm.ask(task.question, system="You are terse.", temperature=0.5)
    b = lm.ask_json("json please", fields={"answer": "the answer"})
    return a + "|" + b["answer"] + "|" + majority_vote(["7", "7.0", "8"]) + "|" + task.id + str(task.meta)
'''
    res = pool.run(code, TASK, handler)
    assert res.ok and res.error is None and res.error_kind is None
    assert res.answer == "echo:What is 3 + 4?|json please|7|t-7{'source': 'unit'}"
    assert seen[0] == ("ask", {"prompt": "What is 3 + 4?", "system": "You are terse.", "temperature": 0.5, "n": 1})
    assert seen[1] == ("ask_json", {"prompt": "json please", "fields": {"answer": "the answer"}, "system": None,
                                    "temperature": 0.0})
    assert res.elapsed_s < 5


def test_policy_violation_never_reaches_a_worker(pool: SandboxPool) -> None:
    called = []
    res = pool.run("import os\ndef forward(task, lm):\n    return lm.ask('x')\n", TASK,
                   lambda m, k: called.append(m))
    assert not res.ok and res.error_kind == "policy" and "rule no-import" in res.error
    assert called == []
    assert pool.run("def forward(task, lm)\n", TASK, echo).error_kind == "syntax"
    assert pool.run("def solve(task, lm):\n    return 1\n", TASK, echo).error_kind == "contract"


def test_handler_errors_raise_inside_the_candidate(pool: SandboxPool) -> None:
    def failing(method: str, kwargs: dict) -> object:
        raise ConnectionError("endpoint down")

    caught = pool.run("def forward(task, lm):\n    try:\n        lm.ask('x')\n    except Exception as e:\n"
                      "        return 'caught ' + str(e)\n", TASK, failing)
    assert caught.ok and caught.answer == "caught ConnectionError: endpoint down"
    uncaught = pool.run("def forward(task, lm):\n    return lm.ask('x')\n", TASK, failing)
    assert not uncaught.ok and uncaught.error_kind == "lm" and "endpoint down" in uncaught.error


def test_runtime_errors_name_the_candidate_line(pool: SandboxPool) -> None:
    res = pool.run("def forward(task, lm):\n    x = 1\n    return x / 0\n", TASK, echo)
    assert res.error_kind == "runtime" and res.error.startswith("line 3: ZeroDivisionError")


def test_budget_exceeded_propagates_and_the_worker_is_replaced() -> None:
    with SandboxPool(1, LIMITS) as pool:
        before = pool.worker_pids()

        def broke(method: str, kwargs: dict) -> object:
            raise BudgetExceeded("token budget spent")

        with pytest.raises(BudgetExceeded):
            pool.run("def forward(task, lm):\n    try:\n        lm.ask('x')\n    except BaseException:\n"
                     "        pass\n    return 'swallowed'\n", TASK, broke)
        assert pool.worker_pids() != before and pool.replacements == 1
        assert pool.run("def forward(task, lm):\n    return lm.ask('y')\n", TASK, echo).answer == "echo:y"


def test_wall_clock_timeout_kills_and_replaces() -> None:
    with SandboxPool(1, Limits(cpu_seconds=30, memory_mb=256, wall_timeout_s=0.5)) as pool:
        pid = pool.worker_pids()[0]
        res = pool.run("def forward(task, lm):\n    while True:\n        pass\n", TASK, echo)
        assert res.error_kind == "timeout" and "wall-clock" in res.error and res.elapsed_s < 5
        assert pool.worker_pids() != [pid]
        assert pool.run("def forward(task, lm):\n    return 'fine'\n", TASK, echo).answer == "fine"


def test_wall_clock_excludes_time_spent_in_the_lm_handler() -> None:
    def slow(method: str, kwargs: dict) -> object:
        time.sleep(0.4)
        return "slow"

    with SandboxPool(1, Limits(cpu_seconds=5, memory_mb=256, wall_timeout_s=0.5)) as pool:
        res = pool.run("def forward(task, lm):\n    return ''.join(lm.ask(str(i)) for i in range(3))\n", TASK, slow)
        assert res.ok and res.answer == "slowslowslow" and res.elapsed_s > 1.0


def test_cpu_limit_ends_the_task_as_timeout() -> None:
    with SandboxPool(1, Limits(cpu_seconds=1, memory_mb=256, wall_timeout_s=30)) as pool:
        res = pool.run("def forward(task, lm):\n    return str(7 ** (10 ** 8))\n", TASK, echo)
        assert res.error_kind == "timeout" and "SIGXCPU" in res.error
        assert pool.run("def forward(task, lm):\n    return 'next'\n", TASK, echo).answer == "next"


def test_worker_killed_from_outside_is_a_crash_and_is_replaced() -> None:
    with SandboxPool(1, LIMITS) as pool:
        pid = pool.worker_pids()[0]
        threading.Timer(0.3, os.kill, (pid, signal.SIGKILL)).start()
        res = pool.run("def forward(task, lm):\n    while True:\n        pass\n", TASK, echo)
        assert not res.ok and res.error_kind == "crash" and "SIGKILL" in res.error
        assert pool.worker_pids() and pool.worker_pids() != [pid]
        assert pool.run("def forward(task, lm):\n    return 'alive'\n", TASK, echo).answer == "alive"


def test_many_threads_share_two_workers_with_independent_results() -> None:
    def sleepy(method: str, kwargs: dict) -> object:
        time.sleep(0.01)
        return kwargs["prompt"].upper()

    code = ("def forward(task, lm):\n    seen = task.meta.get('n')\n    task.meta['n'] = 'mutated'\n"
            "    return lm.ask(task.id) + ':' + lm.ask(task.question) + ':' + str(seen)\n")
    tasks = [{"id": f"id{i}", "question": f"q{i}", "kind": "qa", "meta": {"n": i}} for i in range(16)]
    with SandboxPool(2, LIMITS) as pool, ThreadPoolExecutor(16) as ex:
        results = list(ex.map(lambda t: pool.run(code, t, sleepy), tasks))
        assert len(pool.worker_pids()) == 2 and pool.replacements == 0
    assert [r.answer for r in results] == [f"ID{i}:Q{i}:{i}" for i in range(16)]
    assert all(t["meta"]["n"] == i for i, t in enumerate(tasks))


def test_answers_are_capped_and_deterministic(pool: SandboxPool) -> None:
    big = pool.run("def forward(task, lm):\n    return 'é' * 100000\n", TASK, echo)
    assert big.ok and len(big.answer.encode()) <= LIMITS.max_output_bytes
    order = "def forward(task, lm):\n    return ','.join(set(['alpha', 'beta', 'gamma', 'delta', 'eps']))\n"
    first = pool.run(order, TASK, echo).answer
    with SandboxPool(1, LIMITS) as other:
        assert other.run(order, TASK, echo).answer == first  # fixed hash seed across worker processes


def test_workers_ignore_the_callers_cwd_sys_path_and_environment(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "metasearch" / "sandbox"
    fake.mkdir(parents=True)
    (tmp_path / "metasearch" / "__init__.py").write_text("raise SystemExit('shadowed')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setenv("PYTHONSTARTUP", str(tmp_path / "nope.py"))
    with SandboxPool(1, LIMITS) as pool:
        assert pool.run("def forward(task, lm):\n    return 'ok'\n", TASK, echo).answer == "ok"
        info = pool.worker_info()[0]
    if os.geteuid() == 0:
        assert info["uid"] == 65534 and info["dropped_root"]


def test_close_stops_every_worker() -> None:
    pool = SandboxPool(2, LIMITS)
    pids = pool.worker_pids()
    pool.close()
    time.sleep(0.1)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with pytest.raises(RuntimeError):
        pool.run("def forward(task, lm):\n    return 1\n", TASK, echo)


def test_worker_imports_nothing_heavy() -> None:
    """A worker is cheap to replace because it imports no heavy module (its start time is measured by
    experiments/bench_sandbox_overhead.py, not asserted here)."""
    with SandboxPool(1, LIMITS) as pool:
        res = pool.run("def forward(task, lm):\n    return 'x'\n", TASK, echo)
    assert res.ok and res.answer == "x"
    import subprocess

    out = subprocess.run([sys.executable, "-c", "import sys, metasearch.sandbox.worker as w, "
                          "metasearch.sandbox.restricted; print(sorted(m for m in ('numpy', 'ray', 'pydantic', "
                          "'openai') if m in sys.modules))"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------ unit tests

ADD_TESTS = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"


def test_unit_tests_pass_and_fail() -> None:
    program = "import math\nimport itertools\ndef add(a, b):\n    return int(math.fsum([a, b]))\n"
    assert run_unit_tests(program, ADD_TESTS, "add", LIMITS) == (True, None)
    passed, error = run_unit_tests("def add(a, b):\n    return a - b\n", ADD_TESTS, "add", LIMITS)
    assert not passed and error.startswith("failed: AssertionError")
    passed, error = run_unit_tests("def add(a, b)\n", ADD_TESTS, "add", LIMITS)
    assert not passed and "SyntaxError" in error


def test_unit_tests_are_killed_and_confined(tmp_path: Path) -> None:
    passed, error = run_unit_tests("def add(a, b):\n    while True:\n        pass\n", ADD_TESTS, "add",
                                   Limits(cpu_seconds=1, memory_mb=256, wall_timeout_s=10))
    assert not passed and "CPU time limit" in error
    passed, error = run_unit_tests("def add(a, b):\n    import time\n    time.sleep(60)\n", ADD_TESTS, "add",
                                   Limits(cpu_seconds=5, memory_mb=256, wall_timeout_s=1))
    assert not passed and error.startswith("timeout")
    target = tmp_path / "victim.txt"
    target.write_text("precious")
    target.chmod(0o666)
    writer = f"def add(a, b):\n    open({str(target)!r}, 'w').write('gone')\n    return a + b\n"
    passed, error = run_unit_tests(writer, ADD_TESTS, "add", LIMITS)
    assert not passed
    assert target.read_text() in ("precious", "")  # truncation at most: FSIZE 0 forbids writing a byte
    passed, error = run_unit_tests("import os\nos.kill(os.getppid(), 9)\ndef add(a, b):\n    return a + b\n",
                                   ADD_TESTS, "add", LIMITS)
    assert not passed
    passed, error = run_unit_tests("raise SystemExit(0)\n", ADD_TESTS, "add", LIMITS)
    assert not passed and "SystemExit" in error


def test_close_wakes_threads_waiting_for_a_worker() -> None:
    pool = SandboxPool(1, LIMITS)
    started = threading.Event()

    def slow(method: str, kwargs: dict) -> object:
        started.set()
        time.sleep(0.5)
        return "late"

    code = "def forward(task, lm):\n    return lm.ask('x')\n"
    with ThreadPoolExecutor(2) as ex:
        busy = ex.submit(pool.run, code, TASK, slow)
        started.wait(5)
        waiting = ex.submit(pool.run, code, TASK, echo)
        time.sleep(0.1)
        pool.close()
        with pytest.raises(RuntimeError):
            waiting.result(timeout=5)
        assert busy.result(timeout=5).error_kind == "crash"
