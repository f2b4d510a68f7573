"""Evaluation throughput against a slow endpoint, as a ratio of the ideal.

The simulated server (a separate process) answers every call after a fixed latency (default 200 ms); with the
endpoint's concurrency limit at 64 the ideal is 64 / 0.2 s = 320 calls per second. A one-call candidate is
evaluated on many tasks through the real evaluator (sandbox workers + LM + openai client over HTTP), on the local
backend and on Ray actors, measured side by side in one run. Writes JSON + PNG to experiments/results/.

    python experiments/bench_eval_throughput.py [--tasks 1280] [--latency-ms 200] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from metasearch.config import parse_config
from metasearch.evaluation import Evaluator
from metasearch.tasks import load_suite

RESULTS = Path(__file__).resolve().parent / "results"
AGENT = "NAME = 'one call'\ndef forward(task, lm):\n    return extract_answer(lm.ask(task.question), task.kind)\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(latency_ms: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "metasearch", "sim", "serve", "--port", str(port),
                             "--latency-ms", str(latency_ms)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base}/models", timeout=1).read()
            return proc, base
        except OSError:
            time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    raise SystemExit("simulated server did not start")


def measure(base_url: str, backend: str, tasks: int, concurrency: int) -> dict[str, float]:
    actors = 2 if backend == "ray" else 1
    cfg = parse_config({
        "seed": 0, "endpoint": {"base_url": base_url, "model": "sim-default", "concurrency": concurrency,
                                "cache": False},
        "suite": {"source": "builtin:arith", "val": tasks, "test": 1},
        "evaluator": {"use_ray": backend == "ray", "actors": actors, "tasks_in_flight": concurrency // actors},
    }, "<bench>")
    suite = load_suite(cfg.suite)
    with Evaluator.from_config(cfg) as evaluator:
        evaluator.evaluate("warmup", AGENT, suite.val[: concurrency * 2])  # start every sandbox worker first
        started = time.perf_counter()
        result = evaluator.evaluate("measured", AGENT, suite.val)
        elapsed = time.perf_counter() - started
    errors = sum(1 for r in result.results if r.error)
    return {"calls": result.llm_calls, "seconds": elapsed, "calls_per_s": result.llm_calls / elapsed,
            "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1280)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    ideal = args.concurrency / (args.latency_ms / 1000.0)
    proc, base = start_server(args.latency_ms)
    try:
        runs = {b: measure(base, b, args.tasks, args.concurrency) for b in ("local", "ray")}
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for r in runs.values():
        r["ratio_of_ideal"] = r["calls_per_s"] / ideal
    out = {"latency_ms": args.latency_ms, "concurrency": args.concurrency, "tasks": args.tasks,
           "ideal_calls_per_s": ideal, "runs": runs, "target_ratio": 0.85}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_eval_throughput.json").write_text(json.dumps(out, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    names = list(runs)
    ax.bar(names, [runs[n]["ratio_of_ideal"] for n in names], color=["#4c72b0", "#dd8452"])
    ax.axhline(0.85, color="red", linestyle="--", label="target 0.85")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(f"throughput / ideal ({ideal:.0f} calls/s)")
    ax.set_title(f"evaluation throughput, {args.latency_ms:.0f} ms latency, concurrency {args.concurrency}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "bench_eval_throughput.png", dpi=120)
    print(f"eval throughput: local {runs['local']['ratio_of_ideal']:.2f} of ideal "
          f"({runs['local']['calls_per_s']:.0f}/{ideal:.0f} calls/s), ray {runs['ray']['ratio_of_ideal']:.2f} "
          f"({runs['ray']['calls_per_s']:.0f} calls/s); target >= 0.85")


if __name__ == "__main__":
    main()
