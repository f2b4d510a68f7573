"""Search: the one loop that owns a run (see DESIGN.md, "The loop, as data flows").

seeds → [propose → add to archive → evaluate (cascade) → tell] × iterations → top-k on the held-out test split.

Every finished task evaluation is written to the archive as soon as it completes and every finished iteration is
journaled, so `resume` after a crash or `kill -9` redoes only unfinished work: proposers are pure functions of
(archive view, iteration, seed), an unfinished iteration proposes the same code again (deduplicated by hash), and
only its missing task evaluations run.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from metasearch.archive import Archive
from metasearch.config import SearchConfig, parse_config
from metasearch.errors import BudgetExceeded, EndpointError, UserError
from metasearch.evaluation import CandidateScore, Evaluator, TaskResult
from metasearch.llm.accounting import Accountant
from metasearch.llm.cache import ResponseCache
from metasearch.llm.client import LLMCallError, LM, Usage
from metasearch.novelty import fingerprint
from metasearch.proposers import Proposal, Proposer, SearchContext, make_proposer
from metasearch.proposers.base import FINAL_STATUSES
from metasearch.sandbox import check_policy
from metasearch.seeds import load_seeds
from metasearch.tasks import load_suite
from metasearch.tasks.base import Suite, Task


class Observer(Protocol):
    """Receives progress events (the CLI's live view); must not raise."""

    def __call__(self, kind: str, data: dict[str, Any]) -> None: ...


def _quiet(kind: str, data: dict[str, Any]) -> None:
    return None


def candidate_key(code: str) -> str:
    """Seeds of a candidate's LLM calls derive from its code, so identical code gets identical results."""
    return hashlib.sha256(code.encode("utf-8")).hexdigest()[:16]


@dataclass
class RunState:
    run_id: int
    started: float = field(default_factory=time.monotonic)
    stop_reason: str = ""


class Search:
    """Runs (or resumes) one search job from a config, writing everything to the archive."""

    def __init__(self, cfg: SearchConfig, *, address: str | None = None, observer: Observer | None = None,
                 resume_run: int | None = None) -> None:
        self.cfg = cfg
        self.address = address
        self.emit: Observer = observer or _quiet
        self.resume_run = resume_run

    # ---- construction -------------------------------------------------------------------------------------------
    @classmethod
    def for_resume(cls, archive_path: str, run: int | str, *, overrides: dict[str, Any] | None = None,
                   address: str | None = None, observer: Observer | None = None) -> "Search":
        """Rebuild a run's search from the config stored with it; `overrides` may raise the budget."""
        with Archive(archive_path, create=False) as archive:
            row = archive.get_run(run)
        data = json.loads(row["config_json"])
        data["archive"] = archive_path
        for dotted, value in (overrides or {}).items():
            node = data
            *parents, leaf = dotted.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = value
        cfg = parse_config(data, f"run {row['id']} of {archive_path}")
        return cls(cfg, address=address, observer=observer, resume_run=int(row["id"]))

    # ---- the loop -----------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        with Archive(cfg.archive, writer=True) as archive:
            suite = load_suite(cfg.suite)
            load_seeds(cfg.strategy.seeds)  # an unknown seed name fails before the run is recorded
            spent = self._spent(archive, self.resume_run) if self.resume_run is not None else Usage()
            accountant = Accountant(cfg.budget, spent=spent)
            cache = ResponseCache(cfg.archive) if cfg.meta.cache else None
            meta_lm = LM(cfg.meta, seed=cfg.seed, cache=cache, accountant=accountant, tasks=suite.all_tasks())
            meta_lm.check()  # before the run is recorded: a dead endpoint leaves the archive untouched
            run_id = self._open_run(archive, suite)
            state = RunState(run_id)
            evaluator = Evaluator.from_config(cfg, sim_tasks=suite.all_tasks(), cache_path=cfg.archive,
                                              address=self.address)
            proposer = make_proposer(cfg)
            ctx = SearchContext(cfg=cfg, archive=archive, run_id=run_id, suite=suite, meta_lm=meta_lm,
                                dry_run=lambda code, n: self._dry_run(evaluator, accountant, suite, code, n))
            status = "finished"
            try:
                archive.log_event(run_id, "evaluator_nodes", {"nodes": evaluator.nodes()})  # where work runs
                self._seeds(archive, evaluator, accountant, suite, run_id)
                self._iterations(ctx, proposer, evaluator, accountant)
                self._final(archive, evaluator, accountant, suite, run_id)
                state.stop_reason = "finished: all iterations done"
            except BudgetExceeded as err:
                status, state.stop_reason = "stopped", f"budget: {err}"
            except KeyboardInterrupt:
                status, state.stop_reason = "stopped", "interrupted"
                raise
            except UserError as err:  # e.g. the endpoint failed every retry: resumable once it is fixed
                status, state.stop_reason = "stopped", f"error: {err}"
                raise
            except Exception as err:
                status, state.stop_reason = "failed", f"crashed: {type(err).__name__}: {err}"
                raise
            finally:
                summary = self.summary(archive, run_id, state, accountant.spent(), proposer)
                archive.finish_run(run_id, status, summary)
                archive.log_event(run_id, "run_" + status, {"reason": state.stop_reason})
                evaluator.close()
                meta_lm.close()
                self.emit("summary", summary)
        return summary

    def _open_run(self, archive: Archive, suite: Suite) -> int:
        cfg = self.cfg
        if self.resume_run is not None:
            archive.set_run_field(self.resume_run, status="running", config_json=cfg.model_dump_json())
            archive.log_event(self.resume_run, "run_resumed", {"budget": cfg.budget.model_dump()})
            return self.resume_run
        run_id = archive.create_run(cfg.name, config=cfg.model_dump(mode="json"), seed=cfg.seed,
                                    strategy=cfg.strategy.name, suite=suite.name, model=cfg.endpoint.model,
                                    base_url=cfg.endpoint.base_url)
        archive.log_event(run_id, "run_started", {"suite": suite.name, "val": len(suite.val), "test": len(suite.test)})
        return run_id

    @staticmethod
    def _spent(archive: Archive, run_id: int) -> Usage:
        """What the run has already spent (resume keeps counting against the same budget)."""
        usage = Usage()
        for c in archive.candidates(run_id):
            for e in archive.evaluations(c["id"]):
                usage.add(Usage(prompt_tokens=e["prompt_tokens"] or 0, completion_tokens=e["completion_tokens"] or 0,
                                cost=e["cost"] or 0.0, calls=e["llm_calls"] or 0))
        for ev in archive.events(run_id, "proposal_usage"):
            d = ev["data"]
            usage.add(Usage(prompt_tokens=int(d.get("prompt_tokens", 0)),
                            completion_tokens=int(d.get("completion_tokens", 0)),
                            cost=float(d.get("cost", 0.0)), calls=int(d.get("calls", 0))))
        return usage

    def _seeds(self, archive: Archive, evaluator: Evaluator, accountant: Accountant, suite: Suite, run_id: int) -> None:
        if archive.events(run_id, "seeds_done"):
            return
        seeds = load_seeds(self.cfg.strategy.seeds)
        self.emit("phase", {"phase": "seeds", "total": len(seeds)})
        for seed in seeds:
            from metasearch.space import lift

            wf = lift(seed.code)
            cid, _ = archive.add_candidate(run_id, seed.code, name=seed.name, thought=seed.thought, origin="seed",
                                           iteration=0, ir=wf.to_dict() if wf else None)
            self._evaluate_candidate(archive, evaluator, accountant, cid, suite.val, "val", incumbent=None)
        archive.log_event(run_id, "seeds_done", {"count": len(seeds)})

    def _iterations(self, ctx: SearchContext, proposer: Proposer, evaluator: Evaluator, accountant: Accountant) -> None:
        archive, run_id, budget = ctx.archive, ctx.run_id, self.cfg.budget
        done = {int(e["data"]["iteration"]) for e in archive.events(run_id, "iteration_done")}
        total = budget.iterations
        self.emit("phase", {"phase": "search", "total": total, "done": len(done)})
        for it in range(1, total + 1):
            if it in done:
                continue
            accountant.check()
            self.emit("iteration_start", {"iteration": it, "total": total})
            proposals = self._propose(ctx, proposer, it)
            if any(p.usage for p in proposals):
                merged: dict[str, float] = {}
                for p in proposals:
                    for k, v in p.usage.items():
                        merged[k] = merged.get(k, 0) + v
                archive.log_event(run_id, "proposal_usage", {"iteration": it, **merged})
            ids = [self._handle(ctx, evaluator, accountant, p, it) for p in proposals]
            ids = [i for i in ids if i is not None]
            rows = [archive.get_candidate(i) for i in ids]
            proposer.tell(ctx, it, [r for r in rows if r["status"] in ("evaluated", "stopped_early")])
            report = proposer.report()
            if report:
                archive.set_run_field(run_id, value_model_json=json.dumps(report, sort_keys=True))
            archive.log_event(run_id, "iteration_done", {"iteration": it, "candidates": ids})
            self.emit("iteration_done", {"iteration": it, "total": total, "candidates": rows,
                                         "best": self._incumbent(archive, run_id), "spent": accountant.spent().to_dict()})

    def _propose(self, ctx: SearchContext, proposer: Proposer, it: int) -> list[Proposal]:
        """The proposer's proposals; a meta-agent that gave nothing usable (e.g. never the JSON fields asked for, as
        a tiny real model does) is journaled with its reason and spend, and the search goes on. An endpoint that
        is down (EndpointError) still stops the run."""
        before = ctx.meta_lm.usage
        try:
            return proposer.propose(ctx, it)
        except LLMCallError as err:
            if isinstance(err, EndpointError):
                raise
            spent = ctx.meta_lm.usage
            ctx.archive.log_event(ctx.run_id, "proposal_usage", {
                "iteration": it, "prompt_tokens": spent.prompt_tokens - before.prompt_tokens,
                "completion_tokens": spent.completion_tokens - before.completion_tokens,
                "cost": spent.cost - before.cost, "calls": spent.calls - before.calls})
            ctx.archive.log_event(ctx.run_id, "proposal_failed", {"iteration": it, "error": str(err)})
            self.emit("proposal_failed", {"iteration": it, "error": str(err)})
            return []

    def _handle(self, ctx: SearchContext, evaluator: Evaluator, accountant: Accountant, p: Proposal,
                it: int) -> int | None:
        archive, run_id = ctx.archive, ctx.run_id
        twin = next((c for c in ctx.view(it) if fingerprint(c["code"]) == fingerprint(p.code)), None)
        cid, created = archive.add_candidate(run_id, p.code, name=p.name, thought=p.thought, origin=p.origin,
                                             parent_ids=list(p.parent_ids), ir=p.ir, iteration=it,
                                             predicted_mean=p.predicted_mean, predicted_std=p.predicted_std)
        cand = archive.get_candidate(cid)
        if not created and cand["iteration"] != it:
            return None  # the exact code of an earlier candidate: nothing new to record
        if cand["status"] in FINAL_STATUSES:
            return cid  # finished before an interruption
        if p.error:  # already failed (e.g. still broken after the debug rounds): not a duplicate of anything
            archive.update_candidate(cid, status="failed", error=p.error, error_kind=p.error_kind)
        elif twin is not None:
            archive.update_candidate(cid, status="rejected", error=f"duplicate of candidate {twin['id']}",
                                     error_kind="duplicate")
        elif not p.evaluate:
            archive.update_candidate(cid, status="pruned")
        else:
            incumbent = self._incumbent(archive, run_id) if self.cfg.evaluator.cascade else None
            self._evaluate_candidate(archive, evaluator, accountant, cid, ctx.suite.val, "val", incumbent)
        return cid

    def _evaluate_candidate(self, archive: Archive, evaluator: Evaluator, accountant: Accountant, cid: int,
                            tasks: list[Task], split: str, incumbent: float | None) -> CandidateScore | None:
        """Evaluate (or finish evaluating) a candidate on a split, journaling each task as it completes."""
        cand = archive.get_candidate(cid)
        field_prefix = "" if split == "val" else "test_"
        if split == "val" and cand["status"] in FINAL_STATUSES:
            return None
        violations = check_policy(cand["code"])
        if violations:
            v = violations[0]
            kind = "syntax" if v.rule == "syntax" else ("contract" if v.rule == "contract" else "policy")
            archive.update_candidate(cid, status="failed", error=v.message,
                                     error_kind=kind)
            return None
        done = {e["task_id"]: TaskResult(**{k: e[k] for k in TaskResult.__dataclass_fields__})
                for e in archive.evaluations(cid, split)}
        self.emit("candidate_start", {"id": cid, "name": cand["name"], "split": split, "tasks": len(tasks)})

        def record(result: TaskResult) -> None:
            archive.record_evaluations(cid, split, [result.to_row()])
            self.emit("task_done", {"id": cid, "score": result.score})
            accountant.charge(Usage(prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
                                    cost=result.cost, calls=result.llm_calls))

        score = evaluator.evaluate(candidate_key(cand["code"]), cand["code"], tasks, done=done, incumbent=incumbent,
                                   cascade_first=self.cfg.evaluator.cascade_first if incumbent is not None else None,
                                   on_result=record)
        fields: dict[str, Any] = {f"{field_prefix}score": score.ci.mean, f"{field_prefix}ci_low": score.ci.low,
                                  f"{field_prefix}ci_high": score.ci.high}
        fields["n_tasks" if split == "val" else "test_n"] = score.ci.n
        if split == "val":
            fields.update(tokens=score.tokens, cost=round(score.cost, 10), llm_calls=score.llm_calls)
            if score.all_failed:
                kind, error = score.main_failure()
                fields.update(status="failed", error=error, error_kind=kind)
            else:
                fields["status"] = "stopped_early" if score.stopped_early else "evaluated"
        archive.update_candidate(cid, **fields)
        if split == "val":
            top = archive.top(cand["run_id"], k=1)
            if top:
                self.emit("best", _brief(top[0]) or {})
        self.emit("candidate_done", {"id": cid, "name": cand["name"], "split": split, "score": score.ci.mean,
                                     "ci": (score.ci.low, score.ci.high), "status": fields.get("status")})
        return score

    def _dry_run(self, evaluator: Evaluator, accountant: Accountant, suite: Suite, code: str,
                 n: int) -> list[TaskResult]:
        def charge(r: TaskResult) -> None:
            accountant.charge(Usage(prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens,
                                    cost=r.cost, calls=r.llm_calls))

        return evaluator.evaluate(candidate_key(code), code, suite.val[:n], on_result=charge).results

    @staticmethod
    def _incumbent(archive: Archive, run_id: int) -> float | None:
        best = archive.top(run_id, k=1)
        return best[0]["score"] if best else None

    def _final(self, archive: Archive, evaluator: Evaluator, accountant: Accountant, suite: Suite, run_id: int) -> None:
        """Re-evaluate the top-k by validation score, and the best seed, on the held-out test split."""
        finalists = self.finalists(archive, run_id, self.cfg.evaluator.top_k_final)
        self.emit("phase", {"phase": "final", "total": len(finalists)})
        for c in finalists:
            if c["test_score"] is None or c["test_n"] != len(suite.test):
                self._evaluate_candidate(archive, evaluator, accountant, c["id"], suite.test, "test", None)
        archive.log_event(run_id, "final_done", {"candidates": [c["id"] for c in finalists]})

    @staticmethod
    def finalists(archive: Archive, run_id: int, k: int) -> list[dict[str, Any]]:
        top = archive.top(run_id, k=k)
        seeds = [c for c in archive.top(run_id, k=10_000) if c["origin"] == "seed"][:1]
        chosen = {c["id"]: c for c in [*top, *seeds]}
        return list(chosen.values())

    # ---- reporting ----------------------------------------------------------------------------------------------
    def summary(self, archive: Archive, run_id: int, state: RunState, spent: Usage,
                proposer: Proposer) -> dict[str, Any]:
        report = proposer.report() or json.loads(archive.get_run(run_id).get("value_model_json") or "{}")
        return run_summary(archive, run_id, extra={"stop_reason": state.stop_reason, "spent": spent.to_dict(),
                                                   "strategy_report": report,
                                                   "duration_s": round(time.monotonic() - state.started, 1)})


def _brief(c: dict[str, Any] | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {k: c.get(k) for k in ("id", "name", "origin", "score", "ci_low", "ci_high", "test_score", "test_ci_low",
                                  "test_ci_high", "tokens", "cost")}


def choose_winner(evaluated: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The best-on-validation candidate among those re-evaluated on test (else among all), from candidates ranked
    by validation score. Never the best on test: choosing by test score would overstate the winner."""
    tested = [c for c in evaluated if c["test_score"] is not None]
    return (tested or evaluated or [None])[0]


def run_winner(archive: Archive, run_id: int) -> dict[str, Any] | None:
    """The run's winner as its summary recorded it, else as `choose_winner` picks it (export, report and plots
    all show this one)."""
    summary = archive.get_run(run_id).get("summary") or {}
    winner = summary.get("winner") if isinstance(summary, dict) else None
    if isinstance(winner, dict) and isinstance(winner.get("id"), int):
        found = archive.candidates_by_ids([winner["id"]])
        if found and found[0]["run_id"] == run_id:
            return found[0]
    return choose_winner(archive.top(run_id, k=1_000_000))


def run_summary(archive: Archive, run_id: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Seeds vs winner on the test split with CIs, counts by status, spend. Deterministic apart from `extra`."""
    evaluated = archive.top(run_id, k=100_000)
    seeds = [c for c in evaluated if c["origin"] == "seed"]
    best_seed = seeds[0] if seeds else None
    winner = choose_winner(evaluated)
    counts: dict[str, int] = {}
    for c in archive.candidates(run_id):
        counts[c["status"]] = counts.get(c["status"], 0) + 1
    out: dict[str, Any] = {"run_id": run_id, "counts": counts, "best_seed": _brief(best_seed), "winner": _brief(winner)}
    if winner and best_seed and winner.get("test_score") is not None and best_seed.get("test_score") is not None:
        out["test_improvement"] = round(winner["test_score"] - best_seed["test_score"], 6)
        out["cis_disjoint"] = bool(winner["test_ci_low"] > best_seed["test_ci_high"])
    out.update(extra or {})
    return out


def run_search(cfg: SearchConfig, *, address: str | None = None,
               observer: Callable[[str, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Convenience: run a search from a config and return its summary."""
    return Search(cfg, address=address, observer=observer).run()
