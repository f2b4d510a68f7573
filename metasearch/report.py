"""One self-contained HTML page per run: config, seeds vs winners, plots, the best agent's code and lineage, failures.

Self-contained means the file is the whole report: plots are inline base64 PNGs, CSS is inline, code is highlighted
by pygments with inline styles, and nothing is fetched from a URL, so it can be mailed, archived or opened offline.
Everything is read from the archive (read-only); every string from it is HTML-escaped (names and errors come from
generated code and must not inject markup).

    with Archive("runs/metasearch.db", create=False) as archive:
        write_report(archive, "demo", Path("report.html"))
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from metasearch.archive import CANDIDATE_STATUSES, Archive
from metasearch.errors import UserError
from metasearch.plots import RunData, render_plots

PLOT_CAPTIONS = {
    "score_vs_iteration": "Validation score of every candidate (95% CI) and the best so far, by iteration.",
    "score_vs_tokens": "The same against cumulative evaluation tokens: what the search paid for its progress.",
    "score_vs_cost": "Score against cost per task; the Pareto front holds the candidates no cheaper one beats.",
    "lineage": "Ancestry of the best candidate, coloured by validation score.",
    "value_model": "Value-model predictions against the real validation scores.",
}

CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 0; color: #1d232a;
       background: #f4f6f8; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 32px 48px; background: #ffffff; }
h1 { margin: 0 0 4px; font-size: 26px; } h2 { border-bottom: 2px solid #dde3ea; padding-bottom: 4px; margin-top: 32px; }
.sub { color: #5b6773; margin: 0 0 16px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 14px; }
th, td { padding: 5px 10px; border-bottom: 1px solid #e3e8ee; text-align: left; vertical-align: top; }
th { background: #eef2f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.winner td { background: #e8f6ec; font-weight: 600; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0; }
.card { background: #f0f4f8; border-radius: 8px; padding: 10px 16px; min-width: 140px; }
.card .v { font-size: 22px; font-weight: 700; } .card .k { color: #5b6773; font-size: 12px; text-transform: uppercase; }
.plots { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
figure { margin: 0; } figure img { max-width: 100%; border: 1px solid #e3e8ee; }
figcaption { color: #5b6773; font-size: 13px; }
pre.json { background: #f6f8fa; padding: 12px; overflow-x: auto; font-size: 12px; }
.code { border: 1px solid #e3e8ee; overflow-x: auto; font-size: 13px; }
.code pre { margin: 0; padding: 8px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; color: #fff; }
.evaluated { background: #2e8540; } .failed, .rejected { background: #c0392b; } .pruned { background: #7f8c8d; }
.stopped_early { background: #e67e22; } .proposed { background: #2980b9; }
.muted { color: #5b6773; }
"""


# ---------------------------------------------------------------------- data


@dataclass
class FailureGroup:
    """Failures sharing a reason: same error kind and same normalised message prefix."""

    kind: str
    reason: str
    count: int = 0
    examples: list[int] = field(default_factory=list)


def failure_reason(error: str | None, width: int = 80, kind: str | None = None) -> str:
    """The part of an error message that names the cause: first line, numbers as 'N', cut to `width`.

    So "line 3: name 'x1' is not defined" and "line 9: name 'x2' ..." group together; a leading "<kind>: " (once or
    repeated by nested wrappers) is dropped, since the kind has its own column.
    """
    first = (error or "").strip().splitlines()[0] if (error or "").strip() else "(no message)"
    if kind:
        first = re.sub(rf"^(?:{re.escape(kind)}:\s*)+", "", first) or first
    text = re.sub(r"\d+", "N", first)
    return text if len(text) <= width else text[: width - 1] + "…"


def group_failures(rows: Iterable[tuple[int, str | None, str | None]]) -> list[FailureGroup]:
    """(id, error_kind, error) rows → groups sorted by count (desc), then kind and reason."""
    groups: dict[tuple[str, str], FailureGroup] = {}
    for ident, kind, error in rows:
        key = (kind or "unknown", failure_reason(error, kind=kind))
        group = groups.setdefault(key, FailureGroup(*key))
        group.count += 1
        if len(group.examples) < 5 and ident not in group.examples:
            group.examples.append(ident)
    return sorted(groups.values(), key=lambda g: (-g.count, g.kind, g.reason))


def candidate_failures(candidates: Sequence[dict[str, Any]]) -> list[FailureGroup]:
    """Candidates that failed or were rejected, by reason (examples are candidate ids)."""
    return group_failures((c["id"], c["error_kind"], c["error"]) for c in candidates
                          if c["status"] in ("failed", "rejected"))


def task_failures(archive: Archive, candidates: Sequence[dict[str, Any]]) -> list[FailureGroup]:
    """Per-task evaluation errors (timeouts, runtime errors, LM errors) by reason (examples are candidate ids)."""
    rows = [(c["id"], e["error_kind"], e["error"]) for c in candidates for e in archive.evaluations(c["id"])
            if e["error"] or e["error_kind"]]
    return group_failures(rows)


def _duration_s(archive: Archive, run: dict[str, Any]) -> float | None:
    """From the summary when the search wrote one, else the span of the run's journal."""
    summary = run.get("summary") or {}
    if isinstance(summary.get("duration_s"), (int, float)):
        return float(summary["duration_s"])
    stamps = [e["created_at"] for e in archive.events(run["id"]) if e["created_at"]]
    if len(stamps) < 2:
        return None
    try:
        return (datetime.fromisoformat(stamps[-1]) - datetime.fromisoformat(stamps[0])).total_seconds()
    except ValueError:
        return None


def run_overview(archive: Archive, run: int | str) -> dict[str, Any]:
    """The numbers a person compares between runs: counts by status, best val/test ± CI, spend, duration.

    Spend is the run's total (meta-agent, evaluations and test) when the search recorded it in its summary,
    else the sum over candidates' validation evaluations (`spend_scope` says which).
    """
    row = archive.get_run(run)
    stats = archive.stats(row["id"])
    summary = row.get("summary") or {}
    spent = summary.get("spent") if isinstance(summary.get("spent"), dict) else None
    best_val = archive.top(row["id"], k=1)
    best_test = archive.top(row["id"], k=1, by="test_score")
    return {
        "id": row["id"], "name": row["name"], "status": row["status"], "strategy": row["strategy"],
        "suite": row["suite"], "model": row["model"], "seed": row["seed"], "created_at": row["created_at"],
        "candidates": stats["candidates"], "by_status": {s: stats["by_status"].get(s, 0) for s in CANDIDATE_STATUSES},
        "best_val": _brief(best_val[0]) if best_val else None,
        "best_test": _brief(best_test[0]) if best_test else None,
        "tokens": int(spent.get("total_tokens", 0)) if spent else stats["tokens"],
        "cost": float(spent.get("cost", 0.0)) if spent else stats["cost"],
        "spend_scope": "run" if spent else "validation",
        "duration_s": _duration_s(archive, row),
        "stop_reason": summary.get("stop_reason"),
    }


def _brief(c: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "name", "origin", "score", "ci_low", "ci_high", "n_tasks", "test_score", "test_ci_low",
            "test_ci_high", "test_n")
    return {k: c.get(k) for k in keys}


# ---------------------------------------------------------------------- formatting


def fmt_ci(score: float | None, low: float | None, high: float | None, n: int | None = None) -> str:
    """'0.650 ± 0.080 (n=20)', or '-' when there is no score."""
    if score is None:
        return "-"
    text = f"{score:.3f}"
    if low is not None and high is not None:
        text += f" ± {(high - low) / 2:.3f}"
    return text + (f" (n={n})" if n else "")


def fmt_money(cost: float | None) -> str:
    return "-" if cost is None else f"${cost:.4f}" if cost < 1 else f"${cost:,.2f}"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"


def _e(value: Any) -> str:
    return html.escape("-" if value is None else str(value))


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[int] = (),
           row_classes: Sequence[str] | None = None) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        cells = "".join(f'<td class="num">{_e(v)}</td>' if j in numeric else f"<td>{_e(v)}</td>"
                        for j, v in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _badge(status: str) -> str:
    return f'<span class="badge {html.escape(status)}">{html.escape(status)}</span>'


def highlight_python(code: str) -> str:
    """Python source as HTML with inline styles (no stylesheet needed), line numbers included."""
    formatter = HtmlFormatter(noclasses=True, style="friendly", linenos="inline", wrapcode=True)
    return f'<div class="code">{highlight(code, PythonLexer(), formatter)}</div>'


# ---------------------------------------------------------------------- sections


def _header(run: dict[str, Any], overview: dict[str, Any]) -> str:
    best = overview["best_test"] or overview["best_val"]
    cards = [("status", run["status"]), ("strategy", run["strategy"]), ("candidates", overview["candidates"]),
             ("best test score", fmt_ci(best["test_score"], best["test_ci_low"], best["test_ci_high"])
              if best and best["test_score"] is not None else "-"),
             ("tokens", f"{overview['tokens']:,}"), ("cost", fmt_money(overview["cost"])),
             ("duration", fmt_duration(overview["duration_s"]))]
    card_html = "".join(f'<div class="card"><div class="k">{_e(k)}</div><div class="v">{_e(v)}</div></div>'
                        for k, v in cards)
    sub = (f"run {run['id']} · suite {run['suite']} · model {run['model']} at {run['base_url']} · seed {run['seed']}"
           f" · started {(run['created_at'] or '')[:19].replace('T', ' ')} UTC")
    counts = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in overview["by_status"].items() if n)
    stop = f" · {overview['stop_reason']}" if overview.get("stop_reason") else ""
    return (f"<h1>metasearch run '{_e(run['name'])}'</h1><p class='sub'>{_e(sub)}</p>"
            f"<div class='cards'>{card_html}</div><p class='muted'>{_e(counts)}{_e(stop)}</p>")


def _summary_table(data: RunData) -> str:
    """Seeds against the candidates re-evaluated on the held-out test split (the winner highlighted)."""
    best_id = data.best["id"] if data.best else None
    tested = [c for c in data.candidates if c["test_score"] is not None]
    tested.sort(key=lambda c: (-c["test_score"], c["id"]))
    seeds = [c for c in data.candidates if c["origin"] == "seed" and c not in tested]
    rows, classes = [], []
    for c in [*tested, *seeds]:
        role = "winner" if c["id"] == best_id else ("seed" if c["origin"] == "seed" else "finalist")
        if c["origin"] == "seed" and role == "winner":
            role = "winner (seed)"
        rows.append([role, f"#{c['id']}", c["name"], c["origin"], c["status"],
                     f"{c['status']} ({c['error_kind'] or 'unknown'})" if c["status"] in ("failed", "rejected")
                     else fmt_ci(c["score"], c["ci_low"], c["ci_high"], c["n_tasks"]),
                     fmt_ci(c["test_score"], c["test_ci_low"], c["test_ci_high"], c["test_n"]),
                     f"{c['tokens']:,}" if c["tokens"] is not None else None, fmt_money(c["cost"])])
        classes.append("winner" if c["id"] == best_id else "")
    if not rows:
        return "<p class='muted'>No candidates yet.</p>"
    return _table(["role", "id", "name", "origin", "status", "validation ± CI", "test ± CI", "tokens", "cost (val)"],
                  rows, numeric=(5, 6, 7, 8), row_classes=classes)


def _plots(images: dict[str, bytes]) -> str:
    parts = []
    for kind, png in images.items():
        b64 = base64.b64encode(png).decode("ascii")
        parts.append(f'<figure id="plot-{kind}"><img alt="{_e(kind)}" src="data:image/png;base64,{b64}">'
                     f"<figcaption>{_e(PLOT_CAPTIONS.get(kind, kind))}</figcaption></figure>")
    return f"<div class='plots'>{''.join(parts)}</div>"


def _best_agent(data: RunData) -> str:
    best = data.best
    if best is None:
        return "<p class='muted'>No candidate was evaluated successfully.</p>"
    score_line = (f"validation {fmt_ci(best['score'], best['ci_low'], best['ci_high'], best['n_tasks'])}"
                  f" · test {fmt_ci(best['test_score'], best['test_ci_low'], best['test_ci_high'], best['test_n'])}"
                  f" · {best['tokens'] or 0:,} tokens · {fmt_money(best['cost'])}")
    thought = f"<p><b>Thought.</b> {_e(best['thought'])}</p>" if best["thought"] else ""
    lineage_rows = [[f"#{a['id']}", a["depth"], a["name"], a["origin"], a["iteration"], a["status"],
                     fmt_ci(a["score"], a["ci_low"], a["ci_high"])] for a in data.ancestors]
    lineage = (_table(["id", "generations back", "name", "origin", "iteration", "status", "validation ± CI"],
                      lineage_rows, numeric=(1, 4, 6))
               if lineage_rows else "<p class='muted'>No ancestors: this candidate is a seed or was written from "
                                    "scratch.</p>")
    return (f"<h3 id='best-name'>#{best['id']} {_e(best['name'])} {_badge(best['status'])}</h3>"
            f"<p id='best-score'>{_e(score_line)}</p>{thought}{highlight_python(best['code'])}"
            f"<h3>Lineage</h3>{lineage}")


def _failures(archive: Archive, data: RunData) -> str:
    out = []
    for title, groups, what in (("Failed or rejected candidates", candidate_failures(data.candidates), "candidates"),
                                ("Task evaluation errors", task_failures(archive, data.candidates), "candidates")):
        out.append(f"<h3>{_e(title)}</h3>")
        if not groups:
            out.append("<p class='muted'>None.</p>")
            continue
        out.append(_table(["count", "kind", "reason", f"example {what}"],
                          [[g.count, g.kind, g.reason, ", ".join(f"#{i}" for i in g.examples)] for g in groups],
                          numeric=(0,)))
    return "".join(out)


def _config(run: dict[str, Any]) -> str:
    config = json.dumps(run.get("config") or {}, indent=2, sort_keys=True)
    extra = ""
    value_model = run.get("value_model_json")
    if value_model:
        try:
            value_model = json.dumps(json.loads(value_model), indent=2, sort_keys=True)
        except (TypeError, ValueError):
            pass
        extra = f"<h3>Strategy / value-model report</h3><pre class='json'>{_e(value_model)}</pre>"
    return f"<details open><summary>config (as run)</summary><pre class='json'>{_e(config)}</pre></details>{extra}"


# ---------------------------------------------------------------------- entry points


def render_report(archive: Archive, run_id: int | str) -> str:
    """The report as an HTML string (no external resources)."""
    data = RunData.load(archive, run_id)
    run = data.run
    overview = run_overview(archive, run["id"])
    sections = [
        _header(run, overview),
        "<h2>Seeds vs winners</h2>", _summary_table(data),
        "<h2>Plots</h2>", _plots(render_plots(data)),
        "<h2>Best agent</h2>", _best_agent(data),
        "<h2>Failures by reason</h2>", _failures(archive, data),
        "<h2>Configuration</h2>", _config(run),
    ]
    title = f"metasearch run {run['id']} {run['name']}"
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{_e(title)}</title><style>{CSS}</style></head>"
            f"<body><main>{''.join(sections)}</main></body></html>\n")


def write_report(archive: Archive, run_id: int | str, out: Path) -> Path:
    """Write the run's HTML report to `out` (parent directories created); returns the path written."""
    out = Path(out)
    text = render_report(archive, run_id)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as err:
        raise UserError(f"cannot write report {out}: {err.strerror or err}") from None
    return out
