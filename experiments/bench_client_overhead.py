"""What does `LM` cost on top of the bare `openai` client? Per-call time, side by side, same requests.

Both clients talk to the simulated LLM served over HTTP on 127.0.0.1 (latency 0), so the time is the client
stack plus the loopback round trip. Calls are interleaved (ABBA order) so drift in machine load hits both alike.
LM's cache is off (a hit would be unfair); everything else it does per call (seed, concurrency semaphore, raw
response read and validation, accounting) is in the measurement.

    python experiments/bench_client_overhead.py [--calls 300]

Writes experiments/results/bench_client_overhead.{json,png} and prints a one-line summary.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import openai

from metasearch.config import EndpointConfig
from metasearch.llm.client import LM
from metasearch.llm.seeding import derive_seed

RESULTS = Path(__file__).parent / "results"


def _pctl(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _summary(ms: list[float]) -> dict[str, float]:
    return {"median_ms": statistics.median(ms), "mean_ms": statistics.fmean(ms), "p10_ms": _pctl(ms, 0.10),
            "p90_ms": _pctl(ms, 0.90), "min_ms": min(ms)}


def run(calls: int, warmup: int) -> dict:
    from metasearch.llm.server import start_in_thread

    base_url, stop = start_in_thread(profile="default", latency_ms=0)
    try:
        cfg = EndpointConfig(base_url=base_url, model="sim-default", cache=False, max_retries=0)
        lm = LM(cfg, seed=0)
        bare = openai.OpenAI(base_url=base_url, api_key="sk-no-key", max_retries=0, timeout=cfg.timeout_s)

        def call_lm(i: int) -> str:
            return lm.ask(f"What is {i} + {2 * i}? Let's think step by step.", seed=derive_seed("bench", i))

        def call_bare(i: int) -> str:
            reply = bare.chat.completions.create(
                model=cfg.model, messages=[{"role": "user", "content": f"What is {i} + {2 * i}? Let's think step "
                                                                        "by step."}],
                temperature=0.0, n=1, seed=derive_seed("bench", i))
            return reply.choices[0].message.content or ""

        for i in range(warmup):
            call_lm(i)
            call_bare(i)
        times: dict[str, list[float]] = {"lm": [], "bare": []}
        same = 0
        for i in range(calls):
            order = [("lm", call_lm), ("bare", call_bare)]
            if i % 2:
                order.reverse()
            texts = {}
            for name, fn in order:
                t0 = time.perf_counter()
                texts[name] = fn(warmup + i)
                times[name].append((time.perf_counter() - t0) * 1000)
            same += texts["lm"] == texts["bare"]
        lm.close()
        bare.close()
    finally:
        stop()
    lm_s, bare_s = _summary(times["lm"]), _summary(times["bare"])
    return {"calls_each": calls, "warmup_each": warmup, "lm": lm_s, "bare_openai": bare_s,
            "ratio_median": lm_s["median_ms"] / bare_s["median_ms"], "ratio_mean": lm_s["mean_ms"] / bare_s["mean_ms"],
            # per adjacent pair: robust to load drifting over the run (the machine is shared)
            "ratio_paired_median": statistics.median(a / b for a, b in zip(times["lm"], times["bare"])),
            "identical_replies": same, "openai_version": openai.__version__, "python": platform.python_version(),
            "times_ms": times}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = result["times_ms"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.boxplot([times["bare"], times["lm"]], showfliers=False)
    ax1.set_xticks([1, 2], ["bare openai", "LM.ask"])
    ax1.set_ylabel("ms per call")
    ax1.set_title(f"per-call time (ratio of medians {result['ratio_median']:.2f})")
    ax2.plot(times["bare"], ".", ms=2, label="bare openai")
    ax2.plot(times["lm"], ".", ms=2, label="LM.ask")
    ax2.set_xlabel("call (interleaved)")
    ax2.set_ylabel("ms")
    ax2.set_yscale("log")
    ax2.legend()
    fig.suptitle("LM client overhead vs bare openai client, simulated LLM on 127.0.0.1")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    result = run(args.calls, args.warmup)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_client_overhead.json").write_text(json.dumps(result, indent=2))
    plot(result, RESULTS / "bench_client_overhead.png")
    print(f"client overhead: LM.ask median {result['lm']['median_ms']:.2f} ms vs bare openai "
          f"{result['bare_openai']['median_ms']:.2f} ms per call, ratio {result['ratio_median']:.2f} "
          f"(paired {result['ratio_paired_median']:.2f}; fastest {result['lm']['min_ms']:.2f} vs "
          f"{result['bare_openai']['min_ms']:.2f} ms) "
          f"({args.calls} interleaved calls each, {result['identical_replies']}/{args.calls} identical replies)")


if __name__ == "__main__":
    main()
