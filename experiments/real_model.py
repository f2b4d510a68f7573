"""Seed agents on a real (tiny) model: SmolLM2-135M-Instruct on llama.cpp's server, on this machine's CPU.

Three measurements, reported as they come (the model is tiny: scores near zero are the honest result):
1. scores of seed agents on a small reasoning-gym suite, evaluated through the sandbox like in a search, with
   95% bootstrap CIs, LLM calls, tokens and wall time;
2. generation speed: completion tokens per second on raw server calls;
3. the engine's overhead: the same requests (same messages, seed, max_tokens) sent through `LM` (cache off) and
   through a bare `openai` client, interleaved ABBA so drift hits both alike; the ratio of median times.

    pip install -e ".[local]"
    python experiments/real_model.py [--agents cot,direct,cot_sc] [--n 10] [--calls 12]

Writes experiments/results/real_model.{json,png} and prints a one-line summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import openai

from metasearch.config import EndpointConfig, EvaluatorConfig, SuiteConfig
from metasearch.evaluation.backends import LocalBackend
from metasearch.evaluation.evaluator import Evaluator
from metasearch.evaluation.runner import RunnerSpec
from metasearch.llm.client import LM
from metasearch.llm.seeding import derive_seed
from metasearch.local import default_threads, start_server
from metasearch.search import candidate_key
from metasearch.seeds import SEED_DIR
from metasearch.tasks import load_suite

RESULTS = Path(__file__).parent / "results"
SUITE = "gym:basic_arithmetic"
MAX_TOKENS = 48  # the overhead probe's replies: short and fixed, so both clients generate the same work


def endpoint_for(base_url: str, model: str) -> EndpointConfig:
    return EndpointConfig(base_url=base_url, model=model, concurrency=1, timeout_s=120, max_retries=1,
                          price_prompt_per_1k=0.0, price_completion_per_1k=0.0, cache=False,
                          native_n=False)  # llama.cpp's server ignores n > 1: cot_sc's samples go one by one


def score_agents(endpoint: EndpointConfig, agents: list[str], n: int) -> list[dict[str, Any]]:
    suite = load_suite(SuiteConfig(source=SUITE, val=n, test=n, seed=0))
    evaluator_cfg = EvaluatorConfig(use_ray=False, actors=1, tasks_in_flight=1, wall_timeout_s=120, cpu_seconds=20)
    rows = []
    with Evaluator(LocalBackend(RunnerSpec(endpoint=endpoint, evaluator=evaluator_cfg, seed=0))) as evaluator:
        for agent in agents:
            code = (SEED_DIR / f"{agent}.py").read_text(encoding="utf-8")
            started = time.monotonic()
            result = evaluator.evaluate(candidate_key(code), code, suite.val)
            elapsed = time.monotonic() - started
            completion = sum(r.completion_tokens for r in result.results)
            rows.append({"agent": agent, "n": result.ci.n, "score": result.ci.mean, "ci_low": result.ci.low,
                         "ci_high": result.ci.high, "llm_calls": result.llm_calls, "tokens": result.tokens,
                         "completion_tokens": completion, "wall_s": round(elapsed, 2),
                         "s_per_task": round(elapsed / max(1, result.ci.n), 2), "failures": result.failures,
                         "answers": [(r.task_id, r.answer, r.score) for r in result.results]})
    return rows


def overhead(endpoint: EndpointConfig, calls: int) -> dict[str, Any]:
    """Same requests through LM and a bare openai client, ABBA-interleaved; per-call ms and tokens/s."""
    lm = LM(endpoint, seed=0)
    bare = openai.OpenAI(base_url=endpoint.base_url, api_key="sk-no-key", max_retries=0, timeout=endpoint.timeout_s)
    prompts = [f"Calculate {i + 3} * {2 * i + 1}. Let's think step by step." for i in range(calls)]

    def via_lm(i: int) -> int:
        res = lm.chat([{"role": "user", "content": prompts[i]}], seed=derive_seed("real", i), max_tokens=MAX_TOKENS)
        return res.usage.completion_tokens

    def via_bare(i: int) -> int:
        reply = bare.chat.completions.create(model=endpoint.model, messages=[{"role": "user", "content": prompts[i]}],
                                             temperature=0.0, n=1, seed=derive_seed("real", i), max_tokens=MAX_TOKENS)
        return reply.usage.completion_tokens if reply.usage else 0

    via_bare(0)  # warm the server (first call loads weights into cache)
    times: dict[str, list[float]] = {"lm": [], "bare": []}
    tokens: dict[str, int] = {"lm": 0, "bare": 0}
    for i in range(calls):
        order = (("lm", via_lm), ("bare", via_bare)) if i % 2 == 0 else (("bare", via_bare), ("lm", via_lm))
        for name, fn in order:
            t0 = time.perf_counter()
            tokens[name] += fn(i)
            times[name].append((time.perf_counter() - t0) * 1000)
    lm.close()
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"calls_each": calls, "max_tokens": MAX_TOKENS, "median_ms": med,
            "mean_ms": {k: statistics.fmean(v) for k, v in times.items()},
            "ratio_lm_over_bare": med["lm"] / med["bare"], "overhead_ms": med["lm"] - med["bare"],
            "completion_tokens": tokens,
            "tokens_per_s": {k: tokens[k] / (sum(times[k]) / 1000) for k in times}, "per_call_ms": times}


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    agents = result["agents"]
    xs = range(len(agents))
    means = [a["score"] for a in agents]
    err = [[a["score"] - a["ci_low"] for a in agents], [a["ci_high"] - a["score"] for a in agents]]
    left.bar(xs, means, yerr=err, capsize=6, color="#4c72b0")
    left.set_xticks(list(xs), [a["agent"] for a in agents])
    left.set_ylim(0, 1)
    left.set_ylabel(f"score on {SUITE} (n={agents[0]['n']}), 95% CI")
    left.set_title(f"seed agents on {result['model']}")
    ov = result["overhead"]
    right.boxplot([ov["per_call_ms"]["bare"], ov["per_call_ms"]["lm"]])
    right.set_xticks([1, 2], ["bare openai", "metasearch LM"])
    right.set_ylabel("ms per call (same requests)")
    right.set_title(f"engine overhead: x{ov['ratio_lm_over_bare']:.3f} (median)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default="cot,direct,cot_sc")
    parser.add_argument("--n", type=int, default=10, help="tasks per agent")
    parser.add_argument("--calls", type=int, default=12, help="overhead probe: calls per client")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-tokens", type=int, default=128, help="server-side cap on each reply")
    args = parser.parse_args()

    started = time.monotonic()
    with start_server(threads=args.threads, timeout_s=180, max_tokens=args.max_tokens) as server:
        endpoint = endpoint_for(server.base_url, server.model)
        ov = overhead(endpoint, args.calls)
        agents = score_agents(endpoint, [a.strip() for a in args.agents.split(",") if a.strip()], args.n)
    result = {"model": server.model, "server": "llama-cpp-python's server app (python -m metasearch.local)",
              "reply_cap_tokens": args.max_tokens, "threads": args.threads or default_threads(), "suite": SUITE,
              "agents": agents, "overhead": ov, "machine": {"python": platform.python_version(),
                                                             "cpus": os.cpu_count()},
              "duration_s": round(time.monotonic() - started, 1)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "real_model.json").write_text(json.dumps(result, indent=2, sort_keys=True, default=str))
    plot(result, RESULTS / "real_model.png")
    scores = ", ".join(f"{a['agent']} {a['score']:.2f} [{a['ci_low']:.2f}, {a['ci_high']:.2f}]" for a in agents)
    print(f"{server.model} on {SUITE} (n={args.n}): {scores}; {ov['tokens_per_s']['bare']:.0f} tokens/s; "
          f"LM/bare median time x{ov['ratio_lm_over_bare']:.3f} ({ov['overhead_ms']:+.1f} ms/call); "
          f"{result['duration_s']} s")


if __name__ == "__main__":
    main()
