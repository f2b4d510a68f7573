"""Throughput of the simulated LLM server: requests/s at 64 concurrent clients on 127.0.0.1.

Runs the aiohttp server in a background thread, then 64 client threads (the real `openai` client, one each)
send chat completions about builtin:arith tasks, with no added latency and with a fixed latency. Writes
experiments/results/bench_sim_server.{json,png} and prints a one-line summary.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import openai  # noqa: E402

from metasearch.llm.server import start_in_thread  # noqa: E402
from metasearch.tasks.builtin import arith_pool  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def run(latency_ms: float, clients: int, requests: int) -> dict:
    tasks = list(arith_pool())[:requests]
    url, stop = start_in_thread("default", latency_ms=latency_ms, tasks=tasks)
    try:
        pool_clients = [openai.OpenAI(base_url=url, api_key="x", max_retries=0, timeout=60) for _ in range(clients)]

        def one(i: int) -> float:
            c = pool_clients[i % clients]
            t0 = time.perf_counter()
            c.chat.completions.create(model="sim-default", temperature=0.7, seed=i, messages=[
                {"role": "user", "content": tasks[i].question + "\nLet's think step by step."}])
            return time.perf_counter() - t0

        with ThreadPoolExecutor(clients) as ex:
            list(ex.map(one, range(clients)))  # warm up connections
            t0 = time.perf_counter()
            lat = sorted(ex.map(one, range(requests)))
            wall = time.perf_counter() - t0
        for c in pool_clients:
            c.close()
    finally:
        stop()
    return {"latency_ms": latency_ms, "clients": clients, "requests": requests, "wall_s": round(wall, 3),
            "rps": round(requests / wall, 1), "p50_ms": round(1000 * lat[len(lat) // 2], 1),
            "p95_ms": round(1000 * lat[int(len(lat) * 0.95)], 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--requests", type=int, default=1500)
    ap.add_argument("--latency-ms", type=float, default=200.0, help="the fixed-latency run")
    args = ap.parse_args()
    rows = [run(0.0, args.clients, args.requests), run(args.latency_ms, args.clients, args.requests)]
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"benchmark": "sim_server_throughput", "machine": platform.platform(), "python": platform.python_version(),
           "runs": rows}
    (RESULTS / "bench_sim_server.json").write_text(json.dumps(out, indent=2) + "\n")
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar([f"latency {r['latency_ms']:g} ms" for r in rows], [r["rps"] for r in rows], color=["#4c72b0", "#dd8452"])
    ideal = args.clients / (args.latency_ms / 1000.0)
    ax.axhline(ideal, ls="--", c="grey", lw=1, label=f"ideal at {args.latency_ms:g} ms: {ideal:.0f} req/s")
    ax.set_ylabel("requests / s")
    ax.set_title(f"simulated LLM server, {args.clients} concurrent clients")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "bench_sim_server.png", dpi=120)
    print(f"sim server @ {args.clients} clients: {rows[0]['rps']} req/s at 0 ms latency "
          f"(p50 {rows[0]['p50_ms']} ms), {rows[1]['rps']} req/s at {args.latency_ms:g} ms "
          f"(ideal {ideal:.0f}, p95 {rows[1]['p95_ms']} ms)")


if __name__ == "__main__":
    main()
