"""Value-pruned MCTS over the workflow space (AFlow's loop with AgentSwift's predictor).

Each iteration, rebuilt from the archive view alone (so a resumed run proposes the same children):

1. Tree: nodes are evaluated candidates with a workflow IR (seed agents map to their IR in `SEED_WORKFLOWS`);
   a node's parent is its first parent that is a node; a node's value is the mean real score of itself and its
   evaluated descendants, its visits are their count (backpropagation is recomputed, never stored).
2. Selection: UCT (mean + c·sqrt(ln N / n)), or AFlow's soft mixing over the top-k nodes plus the best seed,
   P(i) = λ/n + (1−λ)·softmax(α·(s_i − s_max)) with scores in percent as AFlow computes it.
3. Expansion: `children` workflows by grammar moves (mutation, sometimes crossover with another top node) and a
   `meta_share` of them written by the meta-agent; children already archived (same code fingerprint) are skipped.
4. Value model: refit on every scored candidate of the view, predict each child; the top `evaluate_top` by the
   acquisition rule are evaluated, the rest are recorded as pruned with their prediction. Without the value
   model only `evaluate_top` children are made and all are evaluated (plain AFlow).

`report()` gives the held-out Spearman correlation between the prediction stored on each candidate before it was
evaluated and its real score: the honest measure of what the pruning relies on.
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from metasearch.config import MCTSConfig
from metasearch.llm.seeding import derive_seed
from metasearch.novelty import fingerprint
from metasearch.proposers.base import Proposal, Proposer, SearchContext

SCORED = ("evaluated", "stopped_early")
#: Seed files whose stem differs from their key in SEED_WORKFLOWS.
_SEED_ALIASES = {"debate": "llm_debate"}
CROSSOVER_SHARE = 0.2
DEFAULT_TOKENS_PER_CALL = 300.0


@functools.lru_cache(maxsize=1)
def _seed_irs() -> dict[str, dict[str, Any]]:
    """code_hash of each seed file → its workflow IR (hand-written seeds carry no WORKFLOW literal)."""
    from metasearch.archive import code_hash
    from metasearch.seeds import load_seeds
    from metasearch.space import SEED_WORKFLOWS, validate

    out: dict[str, dict[str, Any]] = {}
    for seed in load_seeds(["all"]):
        ir = SEED_WORKFLOWS.get(_SEED_ALIASES.get(seed.stem, seed.stem))
        if ir is not None:
            out[code_hash(seed.code)] = validate(ir).to_dict()
    return out


def candidate_ir(c: dict[str, Any]) -> dict[str, Any] | None:
    """A candidate's IR: stored, else lifted from its code, else that of the seed agent it is."""
    if c.get("ir"):
        return c["ir"]
    from metasearch.archive import code_hash
    from metasearch.space import lift

    wf = lift(c.get("code") or "")
    if wf is not None:
        return wf.to_dict()
    return _seed_irs().get(code_hash(c.get("code") or ""))


@dataclass
class Node:
    row: dict[str, Any]
    ir: dict[str, Any]
    parent: int | None = None
    values: list[float] = field(default_factory=list)

    @property
    def id(self) -> int:
        return int(self.row["id"])

    @property
    def score(self) -> float:
        return float(self.row["score"])

    @property
    def visits(self) -> int:
        return len(self.values)

    @property
    def value(self) -> float:
        return float(np.mean(self.values))


def build_tree(view: list[dict[str, Any]]) -> dict[int, Node]:
    """Nodes (fully evaluated candidates with an IR) with parent links and backpropagated real scores."""
    nodes: dict[int, Node] = {}
    for c in view:
        if c["status"] == "evaluated" and c["score"] is not None:
            ir = candidate_ir(c)
            if ir is not None:
                nodes[int(c["id"])] = Node(row=c, ir=ir)
    for node in nodes.values():
        node.parent = next((int(p) for p in node.row["parent_ids"] if int(p) in nodes and int(p) != node.id), None)
    for c in view:  # every scored candidate backs up its score to itself (if a node) and its node ancestors
        if c["status"] not in SCORED or c["score"] is None:
            continue
        current: int | None = int(c["id"]) if int(c["id"]) in nodes else _first_node_parent(c, nodes)
        seen: set[int] = set()
        while current is not None and current not in seen:
            seen.add(current)
            nodes[current].values.append(float(c["score"]))
            current = nodes[current].parent
    return nodes


def _first_node_parent(c: dict[str, Any], nodes: dict[int, Node]) -> int | None:
    return next((int(p) for p in c.get("parent_ids") or [] if int(p) in nodes), None)


def soft_mix_probabilities(scores: list[float], alpha: float, lam: float) -> list[float]:
    """AFlow's P(i) = λ/n + (1−λ)·softmax(α·(s_i − s_max)), scores in [0, 1] scaled to percent as AFlow does."""
    s = np.asarray(scores, dtype=float) * 100.0
    weights = np.exp(alpha * (s - s.max()))
    probs = lam / len(s) + (1.0 - lam) * weights / weights.sum()
    return list(probs / probs.sum())


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
    """EI of each prediction over the incumbent's score, for Gaussian predictions."""
    from scipy.stats import norm

    z = (mean - best) / std
    return (mean - best) * norm.cdf(z) + std * norm.pdf(z)


def spearman(predicted: list[float], actual: list[float]) -> float | None:
    """Spearman rank correlation, or None when undefined (fewer than 3 pairs or a constant side)."""
    if len(predicted) < 3 or len(set(predicted)) < 2 or len(set(actual)) < 2:
        return None
    from scipy.stats import spearmanr

    rho = float(spearmanr(predicted, actual).statistic)
    return None if math.isnan(rho) else round(rho, 4)


class MCTSProposer(Proposer):
    name = "mcts"

    def __init__(self, cfg: MCTSConfig) -> None:
        self.cfg = cfg
        self._report: dict[str, Any] = {}
        self._model_summary: dict[str, Any] = {}
        self._last: dict[str, Any] = {}

    # ---- the iteration ------------------------------------------------------------------------------------------
    def propose(self, ctx: SearchContext, iteration: int) -> list[Proposal]:
        from metasearch.space import validate

        cfg = self.cfg
        view = ctx.view(iteration)
        rng = random.Random(derive_seed(ctx.cfg.seed, "mcts", iteration))
        nodes = build_tree(view)
        seen = {fingerprint(c["code"]) for c in view}
        k = cfg.children if cfg.use_value_model else cfg.evaluate_top
        if nodes:
            node = self.select(nodes, rng)
            parent_ir, parent_ids, parent_score = validate(node.ir), [node.id], node.score
        else:  # no scored workflow yet (e.g. seeds without IR): start from random points of the space
            from metasearch.space import random_workflow

            node, parent_ir, parent_ids, parent_score = None, random_workflow(rng), [], None
        n_meta = int(round(cfg.meta_share * k)) if k > 1 or cfg.meta_share >= 0.5 else 0
        proposals = self._grammar_children(nodes, node, parent_ir, parent_ids, k - n_meta, rng, seen)
        if n_meta:
            proposals += self._meta_children(ctx, iteration, node, n_meta, seen)
        self._last = {"iteration": iteration, "selected": node.id if node else None, "nodes": len(nodes),
                      "children": len(proposals)}
        if not proposals:
            return []
        if cfg.use_value_model:
            self._score(view, proposals, parent_score, ctx)
        self._update_report(ctx)
        return proposals

    def tell(self, ctx: SearchContext, iteration: int, evaluated: list[dict[str, Any]]) -> None:
        self._update_report(ctx)

    def report(self) -> dict[str, Any]:
        return dict(self._report)

    # ---- selection ----------------------------------------------------------------------------------------------
    def select(self, nodes: dict[int, Node], rng: random.Random) -> Node:
        """The node to expand, by UCT or by AFlow's soft mixing over the top-k (ties broken by id)."""
        ranked = sorted(nodes.values(), key=lambda n: (-n.score, n.id))
        if self.cfg.selection == "uct":
            total = sum(n.visits for n in ranked)
            c = self.cfg.ucb_c

            def uct(n: Node) -> float:
                return n.value + c * math.sqrt(math.log(max(total, 1) + 1) / max(n.visits, 1))

            return max(ranked, key=lambda n: (uct(n), -n.id))
        pool = ranked[: self.cfg.top_k]
        roots = [n for n in ranked if n.row.get("origin") == "seed"]
        if roots and roots[0] not in pool:
            pool.append(roots[0])  # AFlow keeps the initial workflow selectable
        probs = soft_mix_probabilities([n.score for n in pool], self.cfg.alpha, self.cfg.lam)
        return rng.choices(pool, weights=probs, k=1)[0]

    # ---- expansion ----------------------------------------------------------------------------------------------
    def _grammar_children(self, nodes: dict[int, Node], node: Node | None, parent_wf: Any, parent_ids: list[int],
                          k: int, rng: random.Random, seen: set[str]) -> list[Proposal]:
        from metasearch.space import crossover, render, validate
        from metasearch.space.moves import mutate_described
        from metasearch.space.render import default_name

        partners = [n for n in sorted(nodes.values(), key=lambda n: (-n.score, n.id))[: max(self.cfg.top_k, 2)]
                    if node is None or n.id != node.id]
        out: list[Proposal] = []
        for _ in range(max(k, 1) * 25):
            if len(out) >= k:
                break
            if partners and rng.random() < CROSSOVER_SHARE:
                other = rng.choice(partners)
                child = crossover(parent_wf, validate(other.ir), rng)
                parents, notes = [*parent_ids, other.id], [f"crossover with candidate {other.id}"]
            else:
                child, notes = mutate_described(parent_wf, rng)
                parents = list(parent_ids)
            origin_note = f"candidate {parent_ids[0]}" if parent_ids else "a random workflow"
            thought = f"MCTS expansion of {origin_note}: " + "; ".join(notes) + "."
            name = default_name(child)[:120]
            code = render(child, name=name, thought=thought)
            fp = fingerprint(code)
            if fp in seen:
                continue
            seen.add(fp)
            out.append(Proposal(code=code, name=name, origin="mcts", thought=thought, parent_ids=parents,
                                ir=child.to_dict()))
        return out

    def _meta_children(self, ctx: SearchContext, iteration: int, node: Node | None, n: int,
                       seen: set[str]) -> list[Proposal]:
        """Children written by the meta-agent (ADAS prompt plus the node to improve); policy-checked only."""
        from metasearch.proposers.meta_agent import MetaAgentProposer
        from metasearch.sandbox import check_policy
        from metasearch.space import lift

        base = MetaAgentProposer().base_prompt(ctx, iteration)
        if node is not None:
            base += (f"\n## Start from\nImprove this agent (fitness {node.score:.3f}):\n```python\n"
                     f"{node.row['code'].rstrip()}\n```\n")
        out: list[Proposal] = []
        for j in range(n):
            before = ctx.meta_lm.usage.to_dict()
            answer = ctx.meta_lm.ask_json(base, fields={"thought": "your reasoning and the design",
                                                        "name": "a short name for the agent",
                                                        "code": "the whole Python module"},
                                          temperature=ctx.cfg.strategy.meta.temperature,
                                          seed=derive_seed(ctx.cfg.seed, "mcts-meta", iteration, j))
            after = ctx.meta_lm.usage.to_dict()
            usage = {k: after[k] - before[k] for k in ("prompt_tokens", "completion_tokens", "cost", "calls")}
            code = str(answer.get("code", ""))
            fp = fingerprint(code)
            if fp in seen:
                continue
            seen.add(fp)
            violations = check_policy(code)
            error = kind = None
            if violations:
                v = violations[0]
                error = f"line {v.line}: {v.message} (rule {v.rule})"
                kind = "syntax" if v.rule == "syntax" else "policy"
            wf = lift(code)
            out.append(Proposal(code=code, name=str(answer.get("name", "")).strip()[:120] or f"Agent {iteration}.{j}",
                                origin="mcts", thought=str(answer.get("thought", "")),
                                parent_ids=[node.id] if node else [], ir=wf.to_dict() if wf else None,
                                error=error, error_kind=kind, usage=usage))
        return out

    # ---- value model and acquisition ----------------------------------------------------------------------------
    def _score(self, view: list[dict[str, Any]], proposals: list[Proposal], parent_score: float | None,
               ctx: SearchContext) -> None:
        from metasearch.value_model import ValueModel, suite_features

        train = training_rows(view)
        model = ValueModel(seed=derive_seed(ctx.cfg.seed, "value-model"), suite_features=suite_features(ctx.suite))
        model.fit(train, [r["score"] for r in train])
        self._model_summary = model.summary()
        rows = [{"code": p.code, "ir": p.ir, "parent_score": parent_score} for p in proposals]
        mean, std = model.predict(rows)
        acq = self.acquisition(mean, std, rows, train)
        live = [i for i, p in enumerate(proposals) if p.error is None]
        order = sorted(live, key=lambda i: (-acq[i], i))
        chosen = set(order[: self.cfg.evaluate_top])
        for i, p in enumerate(proposals):
            p.predicted_mean = round(float(mean[i]), 6)
            p.predicted_std = round(float(std[i]), 6)
            p.evaluate = i in chosen or p.error is not None  # a failed proposal is recorded as failed, not pruned

    def acquisition(self, mean: np.ndarray, std: np.ndarray, rows: list[dict[str, Any]],
                    train: list[dict[str, Any]]) -> np.ndarray:
        """The rule that ranks children: ucb (mean + c·std), mean, or expected improvement per expected token."""
        rule = self.cfg.acquisition
        if rule == "mean":
            return mean
        if rule == "ucb":
            return mean + self.cfg.ucb_c * std
        best = max((r["score"] for r in train if r["status"] == "evaluated"), default=float(np.max(mean)))
        ei = expected_improvement(mean, std, best)
        tokens = np.array([expected_tokens(r, train) for r in rows])
        return ei / np.maximum(tokens, 1.0)

    # ---- reporting ----------------------------------------------------------------------------------------------
    def _update_report(self, ctx: SearchContext) -> None:
        rows = ctx.archive.candidates(ctx.run_id)
        mine = [c for c in rows if c["origin"] == "mcts"]
        held = [c for c in mine if c["predicted_mean"] is not None and c["status"] in SCORED and c["score"] is not None]
        full = [c for c in held if c["status"] == "evaluated"]
        self._report = {
            "spearman_heldout": spearman([c["predicted_mean"] for c in held], [c["score"] for c in held]),
            "n_heldout": len(held),
            "spearman_heldout_full": spearman([c["predicted_mean"] for c in full], [c["score"] for c in full]),
            "mae_heldout": (round(float(np.mean([abs(c["predicted_mean"] - c["score"]) for c in held])), 4)
                            if held else None),
            "pruned": sum(1 for c in mine if c["status"] == "pruned"),
            "evaluated": sum(1 for c in mine if c["status"] in (*SCORED, "failed")),
            "use_value_model": self.cfg.use_value_model, "acquisition": self.cfg.acquisition,
            "selection": self.cfg.selection, "last": self._last, "value_model": self._model_summary,
        }


def training_rows(view: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Scored candidates of the view, with their IR filled in (seeds) and their parent's score attached."""
    by_id = {int(c["id"]): c for c in view}
    out = []
    for c in view:
        if c["status"] not in SCORED or c["score"] is None:
            continue
        parent = next((by_id[int(p)] for p in c.get("parent_ids") or [] if int(p) in by_id
                       and by_id[int(p)]["score"] is not None), None)
        out.append({**c, "ir": candidate_ir(c), "parent_score": parent["score"] if parent else None})
    return out


def expected_tokens(row: dict[str, Any], train: list[dict[str, Any]]) -> float:
    """Tokens per task a child should cost: its expected LLM calls × the tokens per call observed on evaluated
    candidates with the same producer (all candidates when none shares it)."""
    from metasearch.space import validate
    from metasearch.value_model import estimated_calls

    def calls_and_producer(r: dict[str, Any]) -> tuple[float, str | None]:
        if r.get("ir"):
            wf = validate(r["ir"])
            return float(wf.expected_calls()), wf.producer().op
        from metasearch.space import code_features

        return estimated_calls(code_features(r.get("code") or "")), None

    calls, producer = calls_and_producer(row)
    rates: dict[str | None, list[float]] = {}
    for t in train:
        if not t.get("tokens") or not t.get("n_tasks"):
            continue
        c, p = calls_and_producer(t)
        if c > 0:
            rate = float(t["tokens"]) / float(t["n_tasks"]) / c
            rates.setdefault(p, []).append(rate)
            rates.setdefault("*", []).append(rate)
    pool = rates.get(producer) or rates.get("*") or [DEFAULT_TOKENS_PER_CALL]
    return max(calls, 1.0) * float(np.median(pool))
