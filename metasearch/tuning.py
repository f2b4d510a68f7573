"""Tune a candidate's numeric workflow parameters for score and cost together (Optuna, ask-and-tell).

The search finds a workflow's structure; its knobs (self-consistency samples and temperature, debate agents and
rounds, refinement rounds) trade accuracy against LLM spend, so there is no single best setting, only a Pareto
front. Each trial renders the tuned workflow, records it in the archive as a candidate with origin "tuned" and the
original as parent, and evaluates it on the run's validation split exactly as the search loop does (same
candidate key, so same LLM seeds and cache). Trials live in an Optuna RDB storage next to the archive
(`sqlite:///<archive>.optuna.db`, one study per candidate), so `metasearch tune ID` again continues the study.

Example::

    result = tune("runs/metasearch.db", 12, trials=20)
    for point in result.points:
        print(point.label, point.score, point.cost_per_task, "front" if point.on_front else "dominated")
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from metasearch.errors import UserError


class TuneError(UserError):
    """The candidate cannot be tuned (no workflow IR, or no numeric parameter in it)."""


@dataclass(frozen=True)
class Param:
    """One numeric knob: `stages[stage].name` in [low, high] (ints step 1, floats by `step`)."""

    stage: int
    name: str
    low: float
    high: float
    kind: str  # "int" | "float"
    step: float = 1.0

    @property
    def key(self) -> str:
        return f"s{self.stage}.{self.name}"


#: Numeric parameters per operator, with the IR's bounds (temperature on a 0.05 grid).
_KNOBS: dict[str, tuple[tuple[str, float, float, str, float], ...]] = {
    "self_consistency": (("n", 1, 9, "int", 1), ("temperature", 0.0, 1.5, "float", 0.05)),
    "debate": (("agents", 2, 4, "int", 1), ("rounds", 1, 3, "int", 1)),
    "self_refine": (("rounds", 1, 4, "int", 1),),
}


def tunable_params(ir: dict[str, Any]) -> list[Param]:
    """The numeric parameters of a workflow, in stage order."""
    out = []
    for i, stage in enumerate(ir.get("stages", [])):
        for name, low, high, kind, step in _KNOBS.get(stage.get("op", ""), ()):
            out.append(Param(stage=i, name=name, low=low, high=high, kind=kind, step=step))
    return out


def apply_params(ir: dict[str, Any], values: dict[str, float]) -> dict[str, Any]:
    """A copy of the IR with the given `s<i>.<name>` values set (ints stay ints)."""
    data = json.loads(json.dumps(ir))
    for p in tunable_params(ir):
        if p.key in values:
            v = values[p.key]
            data["stages"][p.stage][p.name] = int(round(v)) if p.kind == "int" else round(float(v), 2)
    return data


def current_values(ir: dict[str, Any]) -> dict[str, float]:
    return {p.key: ir["stages"][p.stage][p.name] for p in tunable_params(ir)}


@dataclass
class Point:
    """One evaluated setting: a tuned variant or the original candidate."""

    candidate_id: int
    label: str
    params: dict[str, float]
    score: float
    ci_low: float
    ci_high: float
    cost_per_task: float
    tokens_per_task: float
    n_tasks: int
    original: bool = False
    trial: int | None = None
    on_front: bool = False


@dataclass
class TuneResult:
    candidate_id: int
    run_id: int
    study_name: str
    storage: str
    tasks: int
    points: list[Point] = field(default_factory=list)

    @property
    def front(self) -> list[Point]:
        """Non-dominated points, by score (best first)."""
        return sorted((p for p in self.points if p.on_front), key=lambda p: (-p.score, p.cost_per_task))

    def to_dict(self) -> dict[str, Any]:
        return {"candidate_id": self.candidate_id, "run_id": self.run_id, "study_name": self.study_name,
                "storage": self.storage, "tasks": self.tasks, "points": [asdict(p) for p in self.points],
                "front": [p.candidate_id for p in self.front]}


def mark_front(points: list[Point]) -> None:
    """Set `on_front`: no other point has a score >= and a cost <=, with one of them strictly better."""
    for p in points:
        p.on_front = not any((q.score >= p.score and q.cost_per_task <= p.cost_per_task)
                             and (q.score > p.score or q.cost_per_task < p.cost_per_task) for q in points)


def storage_url(archive_path: str | Path) -> str:
    return f"sqlite:///{Path(archive_path).resolve()}.optuna.db"


def _label(values: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in values.items())


def tune(archive_path: str | Path, candidate_id: int, *, trials: int = 20, tasks: int | None = None,
         seed: int | None = None, use_ray: bool | None = None,
         observer: Callable[[Point], None] | None = None) -> TuneResult:
    """Run `trials` Optuna trials on a candidate's numeric parameters; returns every point and the Pareto front.

    `tasks` limits evaluation to the first validation tasks (default: the whole split); `use_ray` overrides the
    run's evaluator setting (None keeps it).
    """
    import optuna

    from metasearch.archive import Archive
    from metasearch.config import parse_config
    from metasearch.evaluation import Evaluator
    from metasearch.proposers.mcts import candidate_ir
    from metasearch.tasks import load_suite

    if trials < 1:
        raise TuneError("--trials must be at least 1")
    archive_path = str(archive_path)
    with Archive(archive_path, writer=True, create=False) as archive:
        cand = archive.get_candidate(candidate_id)
        ir = candidate_ir(cand)
        if ir is None:
            raise TuneError(f"candidate {candidate_id} has no workflow IR (free-form meta-agent code): "
                            f"only workflows of the IR space can be tuned")
        params = tunable_params(ir)
        if not params:
            raise TuneError(f"candidate {candidate_id} ({cand['name']}) has no numeric parameter to tune "
                            f"(only self-consistency, debate and self-refine stages have them)")
        run = archive.get_run(cand["run_id"])
        data = json.loads(run["config_json"])
        data["archive"] = archive_path
        if use_ray is not None:
            data.setdefault("evaluator", {})["use_ray"] = use_ray
        cfg = parse_config(data, f"run {run['id']} of {archive_path}")
        suite = load_suite(cfg.suite)
        split = suite.val[:tasks] if tasks else suite.val
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study_name = f"run{run['id']}-candidate{candidate_id}" + (f"-tasks{len(split)}" if tasks else "")
        storage = storage_url(archive_path)
        study = optuna.create_study(study_name=study_name, storage=storage, load_if_exists=True,
                                    directions=["maximize", "minimize"],
                                    sampler=optuna.samplers.TPESampler(seed=cfg.seed if seed is None else seed,
                                                                       n_startup_trials=5))
        result = TuneResult(candidate_id=candidate_id, run_id=int(run["id"]), study_name=study_name,
                            storage=storage, tasks=len(split))
        evaluator = Evaluator.from_config(cfg, sim_tasks=suite.all_tasks(), cache_path=archive_path)
        try:
            original = current_values(ir)
            result.points.append(_evaluate(archive, evaluator, cand, split, original, original=True))
            for t in study.get_trials(deepcopy=False):  # earlier sessions of this study
                if t.state == optuna.trial.TrialState.COMPLETE and "candidate_id" in t.user_attrs:
                    row = archive.get_candidate(int(t.user_attrs["candidate_id"]))
                    result.points.append(_evaluate(archive, evaluator, row, split, dict(t.params), trial=t.number))
            for _ in range(trials):
                trial = study.ask()
                values = {p.key: (trial.suggest_int(p.key, int(p.low), int(p.high)) if p.kind == "int" else
                                  trial.suggest_float(p.key, p.low, p.high, step=p.step)) for p in params}
                row = _variant(archive, cand, ir, values)
                point = _evaluate(archive, evaluator, row, split, values, trial=trial.number,
                                  original=row["id"] == cand["id"])
                trial.set_user_attr("candidate_id", point.candidate_id)
                study.tell(trial, [point.score, point.cost_per_task])
                result.points.append(point)
                if observer is not None:
                    observer(point)
        finally:
            evaluator.close()
    result.points = _dedupe(result.points)
    mark_front(result.points)
    return result


def _dedupe(points: list[Point]) -> list[Point]:
    """One point per candidate (trials may repeat a setting), the original first."""
    seen: dict[int, Point] = {}
    for p in points:
        if p.candidate_id not in seen:
            seen[p.candidate_id] = p
        elif p.original:
            seen[p.candidate_id].original = True
    return list(seen.values())


def _variant(archive: Any, cand: dict[str, Any], ir: dict[str, Any], values: dict[str, float]) -> dict[str, Any]:
    """The archive row of the tuned workflow (added with origin "tuned" unless its code is already archived)."""
    from metasearch.space import render, validate

    new_ir = validate(apply_params(ir, values)).to_dict()
    if new_ir == ir:
        return cand
    wf = validate(new_ir)
    name = f"{cand['name']} (tuned: {_label(current_values(new_ir))})"[:160]
    thought = f"Candidate {cand['id']} with tuned parameters {_label(current_values(new_ir))}: {wf.describe()}."
    code = render(wf, name=name, thought=thought)
    cid, _ = archive.add_candidate(cand["run_id"], code, name=name, thought=thought, origin="tuned",
                                   parent_ids=[cand["id"]], ir=new_ir, iteration=cand["iteration"])
    return archive.get_candidate(cid)


def _evaluate(archive: Any, evaluator: Any, row: dict[str, Any], tasks: list[Any], values: dict[str, float], *,
              original: bool = False, trial: int | None = None) -> Point:
    """Evaluate a candidate on `tasks` (reusing its journaled task results) and record it as the search does."""
    from metasearch.evaluation import TaskResult
    from metasearch.search import candidate_key

    cid = int(row["id"])
    done = {e["task_id"]: TaskResult(**{k: e[k] for k in TaskResult.__dataclass_fields__})
            for e in archive.evaluations(cid, "val")}

    def record(result: Any) -> None:
        archive.record_evaluations(cid, "val", [result.to_row()])

    score = evaluator.evaluate(candidate_key(row["code"]), row["code"], tasks, done=done, on_result=record)
    n = max(score.ci.n, 1)
    # The original keeps the record the search gave it; a variant is recorded like a search candidate.
    if not original and (row["status"] == "proposed" or (row["n_tasks"] or 0) < score.ci.n):
        fields: dict[str, Any] = {"score": score.ci.mean, "ci_low": score.ci.low, "ci_high": score.ci.high,
                                  "n_tasks": score.ci.n, "tokens": score.tokens, "cost": round(score.cost, 10),
                                  "llm_calls": score.llm_calls}
        if score.all_failed:
            kind, error = score.main_failure()
            fields.update(status="failed", error=error, error_kind=kind)
        else:
            fields["status"] = "evaluated"
        archive.update_candidate(cid, **fields)
    return Point(candidate_id=cid, label=("original: " if original else "") + _label(values), params=dict(values),
                 score=round(score.ci.mean, 6), ci_low=round(score.ci.low, 6), ci_high=round(score.ci.high, 6),
                 cost_per_task=round(score.cost / n, 10), tokens_per_task=round(score.tokens / n, 2),
                 n_tasks=score.ci.n, original=original, trial=trial)


def plot_pareto(result: TuneResult, path: str | Path) -> Path:
    """Score vs cost per task, every point, the front as a line, the original circled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    rest = [p for p in result.points if not p.on_front]
    front = sorted(result.front, key=lambda p: p.cost_per_task)
    ax.scatter([p.cost_per_task for p in rest], [p.score for p in rest], color="#999999", label="dominated")
    ax.plot([p.cost_per_task for p in front], [p.score for p in front], "-o", color="#d62728", label="Pareto front")
    for p in result.points:
        if p.original:
            ax.scatter([p.cost_per_task], [p.score], s=160, facecolors="none", edgecolors="#1f77b4", linewidths=2,
                       label=f"original (candidate {p.candidate_id})")
    ax.set_xlabel("cost per task ($)")
    ax.set_ylabel(f"validation score ({result.tasks} tasks)")
    ax.set_title(f"tuning candidate {result.candidate_id}: score vs cost")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
