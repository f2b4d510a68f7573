"""Plots of one run, read from the archive alone: what people look at to judge a search (as Optuna's plots).

Figures are built on `matplotlib.figure.Figure` with the Agg canvas, never through pyplot: headless, no global backend
switch, no open-figure registry, safe from threads. Every file name is fixed per run (`run<ID>-<kind>.png`), so a
second `plot_run` overwrites the first; PNGs carry no timestamp, so the same archive gives the same bytes.

    with Archive("runs/metasearch.db", create=False) as archive:
        paths = plot_run(archive, "demo", "plots/")
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from metasearch.archive import Archive

SCORED = ("evaluated", "stopped_early")
FAILED = ("failed", "rejected")
STATUS_COLOURS = {"evaluated": "#1f77b4", "stopped_early": "#ff7f0e", "failed": "#d62728", "rejected": "#9467bd",
                  "pruned": "#7f7f7f", "proposed": "#bcbd22"}
PLOT_KINDS = ("score_vs_iteration", "score_vs_tokens", "score_vs_cost", "lineage", "value_model")
_DPI = 100
_PNG_META = {"Software": None}  # no matplotlib version in the file: same data → same bytes across installs


@dataclass(frozen=True)
class RunData:
    """What every plot needs: the run row and its candidates in insertion order, plus the best candidate."""

    run: dict[str, Any]
    candidates: list[dict[str, Any]]
    best: dict[str, Any] | None
    ancestors: list[dict[str, Any]]

    @classmethod
    def load(cls, archive: Archive, run: int | str) -> RunData:
        """Read a run by id or name; an unknown run raises `ArchiveError` (one line, exit 2 in the CLI)."""
        row = archive.get_run(run)
        candidates = archive.candidates(row["id"])
        best = best_candidate(archive, row["id"])
        ancestors = archive.ancestors(best["id"]) if best else []
        return cls(row, candidates, best, ancestors)


def best_candidate(archive: Archive, run_id: int) -> dict[str, Any] | None:
    """The run's winner as the search chose it (see `metasearch.search.run_winner`)."""
    from metasearch.search import run_winner

    return run_winner(archive, run_id)


def plot_run(archive: Archive, run_id: int | str, out_dir: str | Path) -> list[Path]:
    """Write the run's PNGs into `out_dir` (created if needed); returns their paths in `PLOT_KINDS` order.

    The value-model plot is skipped when no candidate has a prediction.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = RunData.load(archive, run_id)
    paths = []
    for kind, png in render_plots(data).items():
        path = out / f"run{data.run['id']}-{kind}.png"
        path.write_bytes(png)
        paths.append(path)
    return paths


def render_plots(data: RunData) -> dict[str, bytes]:
    """PNG bytes by plot kind (the report embeds these without touching the disk)."""
    makers: dict[str, Callable[[RunData], Figure | None]] = {
        "score_vs_iteration": plot_score_vs_iteration, "score_vs_tokens": plot_score_vs_tokens,
        "score_vs_cost": plot_score_vs_cost, "lineage": plot_lineage, "value_model": plot_value_model}
    out = {}
    for kind in PLOT_KINDS:
        fig = makers[kind](data)
        if fig is not None:
            out[kind] = to_png(fig)
    return out


def to_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buffer, format="png", dpi=_DPI, metadata=_PNG_META)
    return buffer.getvalue()


def _figure(title: str, size: tuple[float, float] = (8.0, 4.5)) -> tuple[Figure, Any]:
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=11)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _title(data: RunData, what: str) -> str:
    return f"run {data.run['id']} '{data.run['name']}': {what}"


def _error_bars(cands: Sequence[dict[str, Any]]) -> list[list[float]]:
    """Asymmetric CI half-widths; a candidate without a CI gets a zero-length bar."""
    lows, highs = [], []
    for c in cands:
        has_ci = c["ci_low"] is not None and c["ci_high"] is not None
        lows.append(max(0.0, c["score"] - c["ci_low"]) if has_ci else 0.0)
        highs.append(max(0.0, c["ci_high"] - c["score"]) if has_ci else 0.0)
    return [lows, highs]


def _scatter_scores(ax: Any, xs: Sequence[float], cands: Sequence[dict[str, Any]]) -> None:
    """Per-candidate scores with CI bars, one colour per status (evaluated vs stopped early by the cascade)."""
    for status in SCORED:
        idx = [i for i, c in enumerate(cands) if c["status"] == status]
        if not idx:
            continue
        sub = [cands[i] for i in idx]
        ax.errorbar([xs[i] for i in idx], [c["score"] for c in sub], yerr=_error_bars(sub), fmt="o", ms=4,
                    capsize=2, alpha=0.75, color=STATUS_COLOURS[status], label=status.replace("_", " "))


def _failures_rug(ax: Any, xs: Sequence[float], cands: Sequence[dict[str, Any]]) -> None:
    """Failed/rejected/pruned candidates as marks under the axis: they cost tokens but have no score."""
    for status, marker in (("failed", "x"), ("rejected", "x"), ("pruned", "|")):
        idx = [i for i, c in enumerate(cands) if c["status"] == status]
        if idx:
            ax.scatter([xs[i] for i in idx], [-0.04] * len(idx), marker=marker, s=25, color=STATUS_COLOURS[status],
                       label=f"{status} ({len(idx)})", clip_on=False)


def _best_so_far(cands: Sequence[dict[str, Any]]) -> list[float | None]:
    """Running maximum of validation score over fully evaluated candidates (the incumbent the search sees)."""
    best: float | None = None
    out: list[float | None] = []
    for c in cands:
        if c["status"] == "evaluated" and c["score"] is not None:
            best = c["score"] if best is None else max(best, c["score"])
        out.append(best)
    return out


def _finish_score_axis(ax: Any) -> None:
    ax.set_ylabel("validation score (95% CI)")
    ax.set_ylim(-0.08, 1.05)
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc="lower right", fontsize=8, framealpha=0.85)


def plot_score_vs_iteration(data: RunData) -> Figure:
    """Best-so-far and per-candidate score vs iteration (seeds are iteration 0)."""
    fig, ax = _figure(_title(data, "score vs iteration"))
    cands = data.candidates
    # Spread the candidates of one iteration a little so their CI bars do not overlap; deterministic by order.
    slot: dict[int, int] = {}
    counts: dict[int, int] = {}
    for c in cands:
        counts[c["iteration"] or 0] = counts.get(c["iteration"] or 0, 0) + 1
    xs = []
    for c in cands:
        it = c["iteration"] or 0
        k = slot.get(it, 0)
        slot[it] = k + 1
        width = min(0.6, 0.12 * (counts[it] - 1))
        xs.append(it + (width * (k / (counts[it] - 1) - 0.5) if counts[it] > 1 else 0.0))
    scored = [(x, c) for x, c in zip(xs, cands) if c["status"] in SCORED and c["score"] is not None]
    _scatter_scores(ax, [x for x, _ in scored], [c for _, c in scored])
    _failures_rug(ax, xs, cands)
    iterations = sorted(counts)
    best_by_iter: list[float | None] = []
    running: float | None = None
    for it in iterations:
        for c in cands:
            if (c["iteration"] or 0) == it and c["status"] == "evaluated" and c["score"] is not None:
                running = c["score"] if running is None else max(running, c["score"])
        best_by_iter.append(running)
    pts = [(it, b) for it, b in zip(iterations, best_by_iter) if b is not None]
    if pts:
        ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", color="black", lw=1.5, label="best so far")
    ax.set_xlabel("iteration (0 = seeds)")
    if iterations:
        ax.set_xticks(iterations if len(iterations) <= 25 else iterations[:: math.ceil(len(iterations) / 25)])
    _finish_score_axis(ax)
    return fig


def plot_score_vs_tokens(data: RunData) -> Figure:
    """Best-so-far and per-candidate score vs cumulative evaluation tokens, candidates in insertion order."""
    fig, ax = _figure(_title(data, "score vs tokens spent"))
    cands = data.candidates
    xs, total = [], 0
    for c in cands:
        total += c["tokens"] or 0
        xs.append(float(total))
    scored = [(x, c) for x, c in zip(xs, cands) if c["status"] in SCORED and c["score"] is not None]
    _scatter_scores(ax, [x for x, _ in scored], [c for _, c in scored])
    _failures_rug(ax, xs, cands)
    best = _best_so_far(cands)
    pts = [(x, b) for x, b in zip(xs, best) if b is not None]
    if pts:
        ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", color="black", lw=1.5, label="best so far")
    ax.set_xlabel("cumulative candidate-evaluation tokens (validation)")
    _finish_score_axis(ax)
    return fig


def pareto_front(points: Sequence[tuple[float, float, int]]) -> list[tuple[float, float, int]]:
    """Points (cost, score, id) not dominated by a cheaper-or-equal point with a higher-or-equal score.

    Sorted by cost; among equal costs only the best score survives. Ties broken by id for determinism.
    """
    front: list[tuple[float, float, int]] = []
    for cost, score, cid in sorted(points, key=lambda p: (p[0], -p[1], p[2])):
        if not front or score > front[-1][1]:
            front.append((cost, score, cid))
    return front


def _per_task(c: dict[str, Any], key: str) -> float | None:
    n = c["n_tasks"]
    value = c[key]
    return None if not n or value is None else value / n


def plot_score_vs_cost(data: RunData) -> Figure:
    """Score vs cost per task (dollars; tokens when the endpoint is free) with the Pareto front."""
    cands = [c for c in data.candidates if c["status"] == "evaluated" and c["score"] is not None]
    use_cost = any((c["cost"] or 0) > 0 for c in cands)
    key, label = ("cost", "cost per task ($)") if use_cost else ("tokens", "tokens per task")
    fig, ax = _figure(_title(data, f"score vs {label.split(' per')[0]} per task"))
    pts = [(x, c) for c in cands if (x := _per_task(c, key)) is not None]
    if pts:
        ax.errorbar([x for x, _ in pts], [c["score"] for _, c in pts], yerr=_error_bars([c for _, c in pts]),
                    fmt="o", ms=4, capsize=2, alpha=0.6, color=STATUS_COLOURS["evaluated"], label="candidates")
        front = pareto_front([(x, c["score"], c["id"]) for x, c in pts])
        names = {c["id"]: c["name"] or f"#{c['id']}" for _, c in pts}
        ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="#d62728", lw=1.5,
                label="Pareto front")
        ax.scatter([p[0] for p in front], [p[1] for p in front], s=50, facecolors="none", edgecolors="#d62728")
        for i, (cost, score, cid) in enumerate(front):  # labels alternate above/below so neighbours stay legible
            ax.annotate(f"#{cid} {names[cid][:24]}", (cost, score), xytext=(4, 5 if i % 2 == 0 else -11),
                        textcoords="offset points", fontsize=7)
    else:
        ax.text(0.5, 0.5, "no fully evaluated candidates", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(label)
    _finish_score_axis(ax)
    return fig


def lineage_layout(root: int, parents: dict[int, list[int]]) -> dict[int, tuple[float, int]]:
    """(x, layer) per node of an ancestry DAG: the root on layer 0, each ancestor on its longest-path layer.

    x positions come from a barycentre pass, layer by layer away from the root (each node placed at the mean x of
    its children, then spread to unit spacing in that order): a simple Sugiyama-style layout without graphviz.
    """
    layer: dict[int, int] = {root: 0}
    order = [root]
    # Longest path from the root: relax edges in BFS order until stable (the graph is a DAG, ids grow downward).
    limit = len({root, *parents, *(p for ps in parents.values() for p in ps)})
    changed = True
    while changed:
        changed = False
        for node in list(order):
            for p in parents.get(node, []):
                if (p not in layer or layer[p] < layer[node] + 1) and layer[node] + 1 < limit:
                    layer[p] = layer[node] + 1
                    if p not in order:
                        order.append(p)
                    changed = True
    children: dict[int, list[int]] = {}
    for node in layer:
        for p in parents.get(node, []):
            if p in layer:
                children.setdefault(p, []).append(node)
    x: dict[int, float] = {root: 0.0}
    depth = max(layer.values())
    for d in range(1, depth + 1):
        nodes = [n for n in layer if layer[n] == d]
        nodes.sort(key=lambda n: (sum(x[c] for c in children.get(n, []) if c in x)
                                  / max(1, sum(1 for c in children.get(n, []) if c in x)), n))
        for i, n in enumerate(nodes):
            x[n] = i - (len(nodes) - 1) / 2
    return {n: (x[n], layer[n]) for n in layer}


def plot_lineage(data: RunData) -> Figure:
    """The best candidate's ancestry: one node per ancestor, coloured by validation score, edges parent → child."""
    best = data.best
    if best is None:
        fig, ax = _figure(_title(data, "lineage of the best candidate"))
        ax.text(0.5, 0.5, "no evaluated candidate", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    nodes = {best["id"]: best, **{a["id"]: a for a in data.ancestors}}
    parents = {cid: [p for p in c["parent_ids"] if p in nodes] for cid, c in nodes.items()}
    pos = lineage_layout(best["id"], parents)
    width = max(x for x, _ in pos.values()) - min(x for x, _ in pos.values()) + 1
    depth = max(layer for _, layer in pos.values()) + 1
    fig = Figure(figsize=(min(16.0, max(7.0, 2.3 * width)), min(14.0, max(3.2, 1.5 * depth + 1))),
                 layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(_title(data, f"lineage of #{best['id']} {best['name'] or ''}"), fontsize=11)
    cmap, norm = colormaps["viridis"], Normalize(0.0, 1.0)
    # Ancestors above, the best candidate at the bottom; arrows run parent → child.
    for child, ps in sorted(parents.items()):
        for p in ps:
            (x0, y0), (x1, y1) = pos[p], pos[child]
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0), zorder=1,
                        arrowprops={"arrowstyle": "-|>", "color": "#555555", "lw": 1.0, "shrinkA": 16,
                                    "shrinkB": 18})
    for cid, (x, layer) in sorted(pos.items()):
        c = nodes[cid]
        score = c["score"]
        colour = cmap(norm(score)) if score is not None else (0.85, 0.85, 0.85, 1.0)
        ax.scatter([x], [layer], s=900 if cid == best["id"] else 600, color=colour, edgecolors="black",
                   linewidths=2.0 if cid == best["id"] else 0.8, zorder=3)
        score_txt = f"{score:.3f}" if score is not None else c["status"]
        ax.annotate(f"#{cid} {(c['name'] or '')[:22]}\n{c['origin']} · {score_txt}", (x, layer), xytext=(0, -17),
                    textcoords="offset points", ha="center", va="top", fontsize=7, zorder=4,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85})
    xs = [x for x, _ in pos.values()]
    ax.set_xlim(min(xs) - 0.9, max(xs) + 0.9)
    ax.set_ylim(-0.7, depth - 0.4)
    ax.set_axis_off()
    sm = ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=ax, shrink=0.7, label="validation score")
    return fig


def rank_correlation(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman's rho with average ranks for ties; None when undefined (fewer than 2 points or no spread)."""
    if len(xs) < 2:
        return None

    def ranks(v: Sequence[float]) -> list[float]:
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2
            i = j + 1
        return r

    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sx = math.sqrt(sum((a - mx) ** 2 for a in rx))
    sy = math.sqrt(sum((b - my) ** 2 for b in ry))
    return None if sx == 0 or sy == 0 else cov / (sx * sy)


def plot_value_model(data: RunData) -> Figure | None:
    """Value-model prediction (± std) vs the real validation score; pruned proposals as a rug. None if no model ran."""
    predicted = [c for c in data.candidates if c["predicted_mean"] is not None]
    if not predicted:
        return None
    pairs = [c for c in predicted if c["status"] in SCORED and c["score"] is not None]
    rho = rank_correlation([c["predicted_mean"] for c in pairs], [c["score"] for c in pairs])
    rho_txt = f"Spearman ρ = {rho:.2f} (n={len(pairs)})" if rho is not None else f"n={len(pairs)}"
    fig, ax = _figure(_title(data, f"value model: predicted vs real, {rho_txt}"), size=(6.5, 5.5))
    if pairs:
        ax.errorbar([c["predicted_mean"] for c in pairs], [c["score"] for c in pairs],
                    xerr=[c["predicted_std"] or 0.0 for c in pairs], fmt="o", ms=4, capsize=2, alpha=0.75,
                    color=STATUS_COLOURS["evaluated"], label="evaluated")
    pruned = [c for c in predicted if c["status"] == "pruned"]
    if pruned:
        ax.scatter([c["predicted_mean"] for c in pruned], [-0.04] * len(pruned), marker="|", s=60,
                   color=STATUS_COLOURS["pruned"], label=f"pruned, not evaluated ({len(pruned)})", clip_on=False)
    ax.plot([0, 1], [0, 1], ls="--", color="#888888", lw=1, label="perfect prediction")
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("predicted score (± std)")
    _finish_score_axis(ax)
    return fig
