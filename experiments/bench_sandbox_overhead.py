"""Per-task overhead of the sandbox versus calling the same forward in-process (trusted, compiled normally).

The candidate calls lm.ask twice with an instant handler, so what is measured is pure sandbox cost: the host
policy check, the JSON-lines round trips to the worker (one for the task, two for the lm calls), the guarded
execution and a gc pass per task. Also measured: worker start time, and the policy check alone.

    python experiments/bench_sandbox_overhead.py [--tasks 400]

Writes experiments/results/bench_sandbox_overhead.json and .png, prints a one-line summary.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from metasearch.sandbox import Limits, SandboxPool, check_policy  # noqa: E402

CANDIDATE = '''
NAME = "two calls"

def forward(task, lm):
    first = lm.ask("Think about: " + task.question, temperature=0.0)
    second = lm.ask("Given " + first + ", answer.", temperature=0.0)
    return extract_answer(second, task.kind)
'''
TASK = {"id": "bench-1", "question": "What is 2 + 2?", "kind": "math", "meta": {}}
RESULTS = Path(__file__).resolve().parent / "results"


def handler(method: str, kwargs: dict[str, Any]) -> str:
    return "The answer is 4."


def bench_in_process(n: int) -> list[float]:
    """Trusted baseline: plain compile + exec, lm as a direct function call."""
    from metasearch.tasks.helpers import extract_answer

    namespace: dict[str, Any] = {"extract_answer": extract_answer}
    exec(compile(CANDIDATE, "<trusted>", "exec"), namespace)  # trusted benchmark code, not a candidate
    forward = namespace["forward"]
    lm = SimpleNamespace(ask=lambda prompt, **kw: handler("ask", {"prompt": prompt, **kw}))
    task = SimpleNamespace(**TASK)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        forward(task, lm)
        times.append(time.perf_counter() - t0)
    return times


def bench_sandbox(n: int) -> list[float]:
    times = []
    with SandboxPool(1, Limits()) as pool:
        for _ in range(20):
            assert pool.run(CANDIDATE, TASK, handler).answer == "4"
        for _ in range(n):
            t0 = time.perf_counter()
            res = pool.run(CANDIDATE, TASK, handler)
            times.append(time.perf_counter() - t0)
            assert res.ok, res.error
    return times


def bench_start(repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        pool = SandboxPool(1, Limits())
        times.append(time.perf_counter() - t0)
        pool.close()
    return times


def bench_policy(n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        check_policy(CANDIDATE)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=400)
    args = parser.parse_args()

    trusted = bench_in_process(args.tasks * 10)
    sandboxed = bench_sandbox(args.tasks)
    start = bench_start(5)
    policy = bench_policy(args.tasks)
    us = lambda xs: statistics.median(xs) * 1e6  # noqa: E731
    report = {
        "tasks": args.tasks,
        "python": platform.python_version(),
        "cpus": __import__("os").cpu_count(),
        "in_process_us_median": us(trusted),
        "sandbox_us_median": us(sandboxed),
        "sandbox_us_p90": statistics.quantiles(sandboxed, n=10)[-1] * 1e6,
        "policy_check_us_median": us(policy),
        "overhead_ratio": us(sandboxed) / us(trusted),
        "overhead_us_per_task": us(sandboxed) - us(trusted),
        "worker_start_ms_median": statistics.median(start) * 1e3,
        "worker_start_ms_all": [round(s * 1e3, 1) for s in start],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_sandbox_overhead.json").write_text(json.dumps(report, indent=2) + "\n")

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.boxplot([[t * 1e6 for t in trusted], [t * 1e6 for t in sandboxed]], showfliers=False)
    left.set_xticks([1, 2], ["in-process (trusted)", "sandbox pool"])
    left.set_yscale("log")
    left.set_ylabel("µs per task (2 lm.ask, instant handler)")
    left.set_title(f"per-task cost: x{report['overhead_ratio']:.0f}")
    values = [report["policy_check_us_median"] / 1e3, report["sandbox_us_median"] / 1e3,
              report["worker_start_ms_median"]]
    bars = right.bar(["policy check\n(first time)", "task in sandbox", "worker start"], values)
    right.bar_label(bars, labels=[f"{v:.2f} ms" for v in values])
    right.set_yscale("log")
    right.set_ylabel("ms (median, log)")
    right.set_title("where the time goes")
    fig.tight_layout()
    fig.savefig(RESULTS / "bench_sandbox_overhead.png", dpi=120)

    print(f"sandbox overhead: {report['sandbox_us_median']:.0f} us/task vs {report['in_process_us_median']:.1f} "
          f"us in-process (x{report['overhead_ratio']:.0f}, +{report['overhead_us_per_task']:.0f} us); "
          f"policy check {report['policy_check_us_median']:.0f} us; worker start "
          f"{report['worker_start_ms_median']:.0f} ms")


if __name__ == "__main__":
    main()
