"""Benchmark: is `metasearch archive ls --top 20` fast on a big archive?

Builds an archive of 100,000 synthetic candidates (10 runs, realistic code sizes, lineage, 70% evaluated) with one
executemany in one transaction, then times the query the command runs: `Archive.top(k=20)` plus rendering the
table (median of repeats; target < 200 ms), per-run `top`, opening the archive (which runs PRAGMA quick_check),
and the whole CLI subprocess for information. Writes experiments/results/bench_archive.{json,png}.

    python experiments/bench_archive.py [--candidates 100000] [--repeats 15]
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from metasearch.archive import CANDIDATE_STATUSES, Archive, code_hash
from metasearch.cli.archive_cmd import CANDIDATE_COLUMNS, build_table, candidate_row

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_MS = 200.0
OPS = ["cot", "self_consistency", "refine", "debate", "verify", "step_back", "role", "ensemble"]


def synthetic_code(rng: random.Random, i: int) -> str:
    """A plausible candidate (~0.5-2 KB): a few LLM calls in a loop, unique per i."""
    steps = "\n".join(f"    answers.append(lm.ask(\"Step {k}: \" + task.question, temperature={rng.random():.2f}))"
                      for k in range(rng.randint(3, 15)))
    return (f'NAME = "Agent {i}"\nTHOUGHT = "Synthetic candidate {i} for the archive benchmark."\n\n'
            f"def forward(task, lm):\n    answers = []\n{steps}\n    return majority_vote(answers)\n")


def build(path: Path, n: int, runs: int, seed: int = 0) -> float:
    """Fill the archive with n candidates in one transaction; returns seconds taken."""
    rng = random.Random(seed)
    start = time.perf_counter()
    with Archive(path, writer=True) as arc:
        run_ids = [arc.create_run(f"bench-{r}", config={"seed": r}, seed=r, strategy="meta", suite="builtin:arith",
                                  model="sim-default", base_url="sim://default") for r in range(runs)]
        rows = []
        per_run = n // runs
        for i in range(n):
            run_id = run_ids[min(i // per_run, runs - 1)]
            first_of_run = (i // per_run) * per_run + 1
            code = synthetic_code(rng, i)
            status = rng.choices(CANDIDATE_STATUSES, weights=[5, 70, 10, 8, 5, 2])[0]
            evaluated = status == "evaluated"
            score = round(rng.betavariate(4, 3), 4) if evaluated else None
            parents = sorted(rng.sample(range(first_of_run, i + 1), k=min(2, i + 1 - first_of_run))) if i else []
            rows.append((run_id, i // 50, f"Agent {i}", "thought " * 20, code, code_hash(code), json.dumps(parents),
                         "meta" if parents else "seed",
                         json.dumps({"ops": rng.sample(OPS, 3), "n": rng.randint(1, 9)}), status,
                         None if status != "failed" else "NameError: x", score,
                         None if score is None else score - 0.05, None if score is None else score + 0.05,
                         50 if evaluated else None, rng.randint(500, 50000), rng.random() / 100,
                         rng.randint(1, 40), "2025-01-01T00:00:00.000+00:00"))
        with arc.transaction():
            arc.conn.executemany(
                "INSERT INTO candidates (run_id, iteration, name, thought, code, code_hash, parent_ids, origin,"
                " ir_json, status, error, score, ci_low, ci_high, n_tasks, tokens, cost, llm_calls, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        arc.conn.execute("ANALYZE")
    return time.perf_counter() - start


def time_ms(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def render(rows: list[dict]) -> str:
    console = Console(file=io.StringIO(), width=140)
    console.print(build_table(CANDIDATE_COLUMNS, map(candidate_row, rows), title="top 20"))
    return console.file.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--cli-repeats", type=int, default=5)
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench_archive_"))
    try:
        path = workdir / "bench.db"
        build_s = build(path, args.candidates, args.runs)
        size_mb = path.stat().st_size / 1e6
        with Archive(path, create=False) as arc:
            arc.top(k=20)                                                  # warm the page cache once
            query = time_ms(lambda: render(arc.top(k=20)), args.repeats)
            top_only = time_ms(lambda: arc.top(k=20), args.repeats)
            run_id = arc.runs()[-1]["id"]
            per_run = time_ms(lambda: arc.top(run_id, k=20), args.repeats)
            best = arc.top(k=1)[0]["id"]
            lineage = time_ms(lambda: (arc.ancestors(best), arc.descendants(best)), max(3, args.repeats // 3))
        open_ms = time_ms(lambda: Archive(path, create=False).close(), max(3, args.repeats // 3))
        exe = shutil.which("metasearch")
        cmd = ([exe] if exe else [sys.executable, "-c", "from metasearch.cli import main; main()"])
        cli = time_ms(lambda: subprocess.run([*cmd, "archive", "ls", "--top", "20", "--archive", str(path)],
                                             check=True, capture_output=True), args.cli_repeats)
        noop = time_ms(lambda: subprocess.run([*cmd, "--help"], check=True, capture_output=True), args.cli_repeats)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    med = {name: statistics.median(v) for name, v in (("query_ms", query), ("top_only_ms", top_only),
                                                         ("top_one_run_ms", per_run), ("lineage_ms", lineage),
                                                         ("open_ms", open_ms), ("cli_ms", cli),
                                                         ("cli_startup_ms", noop))}
    result = {"candidates": args.candidates, "runs": args.runs, "repeats": args.repeats, "build_s": build_s,
              "archive_mb": size_mb, "target_ms": TARGET_MS, "meets_target": med["query_ms"] < TARGET_MS,
              "median": med, "samples_ms": {"query": query, "top_only": top_only, "top_one_run": per_run,
                                            "lineage": lineage, "open": open_ms, "cli": cli, "cli_startup": noop},
              "machine": {"python": platform.python_version(), "platform": platform.platform()}}
    (RESULTS / "bench_archive.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, RESULTS / "bench_archive.png")
    verdict = "ok" if result["meets_target"] else "MISSED"
    print(f"archive ls --top 20 on {args.candidates:,} candidates ({size_mb:.0f} MB): query+render "
          f"{med['query_ms']:.1f} ms median (target < {TARGET_MS:.0f} ms: {verdict}), "
          f"top() {med['top_only_ms']:.1f} ms, open+quick_check {med['open_ms']:.0f} ms, "
          f"full CLI {med['cli_ms']:.0f} ms (startup {med['cli_startup_ms']:.0f} ms); built in {build_s:.1f} s")


def plot(result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["top(k=20)", "top(k=20)\n+ table", "top, one run", "lineage", "open\n(quick_check)",
              "CLI startup\n(--help)", "full CLI\nls --top 20"]
    keys = ["top_only", "query", "top_one_run", "lineage", "open", "cli_startup", "cli"]
    samples = [result["samples_ms"][k] for k in keys]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.boxplot(samples, tick_labels=labels, showfliers=True)
    ax.axhline(result["target_ms"], color="red", linestyle="--", linewidth=1,
               label=f"target {result['target_ms']:.0f} ms")
    ax.set_yscale("log")
    ax.set_ylabel("milliseconds (log)")
    ax.set_title(f"metasearch archive on {result['candidates']:,} candidates ({result['archive_mb']:.0f} MB)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
