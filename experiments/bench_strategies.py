"""Benchmark: value-guided MCTS vs plain MCTS vs Meta Agent Search vs random, at the same evaluation budget.

On the simulated LLM (sim://default, or `--profile alt|weak|strong`; builtin:arith), each strategy gets the same seed agents and `--evals`
search iterations (one real evaluation each: MCTS with the value model proposes `children` per iteration but
evaluates only the top one), over `--seeds` seeds (the seed also picks the task split). Reported per strategy:

* best test score of the run's winner (mean ± sd over seeds);
* evaluation tokens (candidates' validation-split tokens, seeds excluded since all strategies share them) spent
  until the strategy's best validation score first reached the `meta` strategy's final best validation score of
  the same seed, as a ratio to what `meta` spent to get there;
* the value model's held-out Spearman correlation (predictions stored before evaluation vs real scores).

Writes experiments/results/bench_strategies.json and .png and prints a one-line summary.

    python experiments/bench_strategies.py --jobs 2             # 5 seeds x 50 evaluations (~30 min on 2 cores)
    python experiments/bench_strategies.py --seeds 2 --evals 20 --val 50 --test 100   # quick
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

STRATEGIES: dict[str, dict[str, Any]] = {
    "mcts+vm": {"name": "mcts", "mcts": {"use_value_model": True}},
    "mcts": {"name": "mcts", "mcts": {"use_value_model": False}},
    "meta": {"name": "meta"},
    "random": {"name": "random"},
}


def config(strategy: str, seed: int, args: argparse.Namespace, archive: str) -> Any:
    from metasearch.config import parse_config

    strat = {"seeds": ["all"], **STRATEGIES[strategy]}
    if "mcts" in strat:
        strat["mcts"] = {**strat["mcts"], "children": args.children, "acquisition": args.acquisition}
    return parse_config({
        "name": f"bench-{strategy}-{seed}", "seed": seed, "archive": archive,
        "endpoint": {"base_url": f"sim://{args.profile}", "model": f"sim-{args.profile}"},
        "budget": {"iterations": args.evals},
        "suite": {"source": "builtin:arith", "val": args.val, "test": args.test, "seed": seed},
        "strategy": strat,
        "evaluator": {"use_ray": False, "actors": 1, "tasks_in_flight": args.in_flight, "top_k_final": 3,
                      "cascade": not args.no_cascade},
    }, f"bench {strategy}")


def trajectory(rows: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """(cumulative search evaluation tokens, best validation score so far) after each search candidate."""
    seeds = [c for c in rows if c["origin"] == "seed"]
    best = max((c["score"] for c in seeds if c["status"] == "evaluated" and c["score"] is not None), default=0.0)
    spent, points = 0, [(0, best)]
    for c in rows:
        if c["origin"] == "seed" or c["status"] in ("pruned", "rejected"):
            continue
        spent += int(c["tokens"] or 0)
        if c["status"] == "evaluated" and c["score"] is not None:
            best = max(best, float(c["score"]))
        points.append((spent, best))
    return points


def tokens_to_reach(points: list[tuple[int, float]], target: float) -> int | None:
    return next((t for t, b in points if b >= target - 1e-12), None)


def one_run(strategy: str, seed: int, args: argparse.Namespace, workdir: str) -> dict[str, Any]:
    from metasearch.archive import Archive
    from metasearch.search import Search

    archive = str(Path(workdir) / f"{strategy.replace('+', '_')}-{seed}.db")
    started = time.monotonic()
    summary = Search(config(strategy, seed, args, archive)).run()
    with Archive(archive) as arc:
        rows = arc.candidates(summary["run_id"])
    report = summary.get("strategy_report") or {}
    winner = summary.get("winner") or {}
    return {"strategy": strategy, "seed": seed, "wall_s": round(time.monotonic() - started, 1),
            "best_val": max((c["score"] for c in rows if c["status"] == "evaluated" and c["score"] is not None),
                            default=None),
            "winner_test": winner.get("test_score"), "winner_name": winner.get("name"),
            "evaluated": sum(1 for c in rows if c["origin"] != "seed" and c["status"] in ("evaluated", "stopped_early",
                                                                                          "failed")),
            "pruned": sum(1 for c in rows if c["status"] == "pruned"),
            "spent_tokens": summary.get("spent", {}).get("total_tokens"),
            "spearman": report.get("spearman_heldout"), "n_heldout": report.get("n_heldout"),
            "spearman_full": report.get("spearman_heldout_full"),
            "trajectory": trajectory(rows)}


def _mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return round(statistics.mean(values), 4), round(statistics.stdev(values), 4) if len(values) > 1 else 0.0


def aggregate(runs: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    by = {(r["strategy"], r["seed"]): r for r in runs}
    out: dict[str, Any] = {}
    for strategy in STRATEGIES:
        mine = [by[(strategy, s)] for s in seeds if (strategy, s) in by]
        ratios, reached = [], 0
        for r in mine:
            meta = by.get(("meta", r["seed"]))
            if meta is None or meta["best_val"] is None:
                continue
            target = meta["best_val"]
            t_meta = tokens_to_reach(meta["trajectory"], target)
            t_mine = tokens_to_reach(r["trajectory"], target)
            if t_mine is not None:
                reached += 1
            if t_meta and t_mine is not None:
                ratios.append(t_mine / t_meta)
        test_mean, test_sd = _mean_sd([r["winner_test"] for r in mine])
        val_mean, val_sd = _mean_sd([r["best_val"] for r in mine])
        rho_mean, rho_sd = _mean_sd([r["spearman"] for r in mine])
        out[strategy] = {"runs": len(mine), "best_test_mean": test_mean, "best_test_sd": test_sd,
                         "best_val_mean": val_mean, "best_val_sd": val_sd,
                         "reached_meta_best": f"{reached}/{len(mine)}",
                         "token_ratio_to_meta_median": round(statistics.median(ratios), 4) if ratios else None,
                         "token_ratios": [round(x, 4) for x in ratios],
                         "spearman_mean": rho_mean, "spearman_sd": rho_sd,
                         "pruned_mean": statistics.mean(r["pruned"] for r in mine) if mine else None,
                         "spent_tokens_mean": statistics.mean(r["spent_tokens"] or 0 for r in mine) if mine else None}
    return out


def plot(runs: list[dict[str, Any]], agg: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"mcts+vm": "#d62728", "mcts": "#ff7f0e", "meta": "#1f77b4", "random": "#7f7f7f"}
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [2, 1]})
    for r in runs:
        xs = [t for t, _ in r["trajectory"]]
        ys = [b for _, b in r["trajectory"]]
        first = r["seed"] == min(x["seed"] for x in runs if x["strategy"] == r["strategy"])
        ax.step(xs, ys, where="post", color=colors[r["strategy"]], alpha=0.7, label=r["strategy"] if first else None)
    ax.set_xlabel("search evaluation tokens (validation split, seeds excluded)")
    ax.set_ylabel("best validation score so far")
    ax.set_title("best score vs evaluation tokens (one line per seed)")
    ax.grid(alpha=0.3)
    ax.legend()
    names = [s for s in STRATEGIES if agg[s]["best_test_mean"] is not None]
    bx.bar(names, [agg[s]["best_test_mean"] for s in names], yerr=[agg[s]["best_test_sd"] for s in names],
           color=[colors[s] for s in names], capsize=4)
    bx.set_ylabel("winner's test score (mean ± sd over seeds)")
    bx.set_ylim(0, 1)
    bx.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--evals", type=int, default=50, help="search iterations (one real evaluation each)")
    ap.add_argument("--val", type=int, default=100)
    ap.add_argument("--test", type=int, default=200)
    ap.add_argument("--children", type=int, default=8, help="MCTS children per expansion (value model on)")
    ap.add_argument("--acquisition", default="ei_per_token", choices=["ucb", "ei_per_token", "mean"])
    ap.add_argument("--in-flight", type=int, default=16)
    ap.add_argument("--no-cascade", action="store_true")
    ap.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--profile", default="default", help="simulated LLM profile (default, alt, weak, strong)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    strategies = [s for s in args.strategies.split(",") if s]
    seeds = list(range(args.seeds))
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-strategies-") as workdir:
        jobs = [(s, seed) for seed in seeds for s in strategies]
        if args.jobs > 1:
            with ProcessPoolExecutor(max_workers=args.jobs) as pool:
                runs = list(pool.map(one_run, *zip(*jobs), [args] * len(jobs), [workdir] * len(jobs)))
        else:
            runs = []
            for s, seed in jobs:
                runs.append(one_run(s, seed, args, workdir))
                print(f"  {s} seed {seed}: best val {runs[-1]['best_val']}, test {runs[-1]['winner_test']}, "
                      f"{runs[-1]['wall_s']}s", file=sys.stderr)
    agg = aggregate(runs, seeds)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    result = {"settings": settings, "endpoint": f"sim://{args.profile}", "suite": "builtin:arith", "summary": agg,
              "runs": runs, "wall_s": round(time.monotonic() - started, 1)}
    stem = "bench_strategies" if args.profile == "default" else f"bench_strategies_{args.profile}"
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=1))
    plot(runs, agg, args.out / f"{stem}.png")
    parts = []
    for s in strategies:
        a = agg[s]
        parts.append(f"{s}: test {a['best_test_mean']}±{a['best_test_sd']} tokens/meta "
                     f"{a['token_ratio_to_meta_median']} reached {a['reached_meta_best']}"
                     + (f" spearman {a['spearman_mean']}" if a["spearman_mean"] is not None else ""))
    print(f"bench_strategies (sim://{args.profile}, {args.seeds} seeds x {args.evals} evals): " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
