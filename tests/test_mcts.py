"""The value-pruned MCTS proposer: valid children, predictions on pruned ones, determinism, a real small search."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import small_config
from metasearch.archive import Archive
from metasearch.proposers.base import SearchContext
from metasearch.proposers.mcts import MCTSProposer, build_tree, soft_mix_probabilities, spearman
from metasearch.sandbox import check_policy
from metasearch.seeds import SEED_DIR
from metasearch.space import SEED_WORKFLOWS, lift, render, validate
from metasearch.tasks import load_suite

CODE_ONLY = (SEED_DIR / "cot.py").read_text()  # a seed agent: no WORKFLOW literal, mapped to its IR by MCTS


def _ctx(tmp_path: Path, **overrides: object) -> SearchContext:
    """An archive with one evaluated seed and two evaluated workflow children (one of them pruned-sibling)."""
    cfg = small_config(tmp_path, strategy__name="mcts", **overrides)
    archive = Archive(cfg.archive, writer=True)
    run = archive.create_run("t", config=cfg.model_dump(mode="json"), seed=0, strategy="mcts", suite="arith",
                             model="sim", base_url="sim://default")
    seed_id, _ = archive.add_candidate(run, CODE_ONLY, name="CoT", origin="seed", iteration=0)
    archive.update_candidate(seed_id, status="evaluated", score=0.4, tokens=4000, n_tasks=20)
    rows = [({"stages": [{"op": "self_consistency", "n": 5}]}, 0.55, 20000),
            ({"stages": [{"op": "debate", "agents": 3, "rounds": 1}]}, 0.6, 30000),
            ({"stages": [{"op": "generate", "mode": "direct"}]}, 0.2, 1000)]
    for i, (ir, score, tokens) in enumerate(rows, start=1):
        wf = validate(ir)
        cid, _ = archive.add_candidate(run, render(wf), name=f"c{i}", origin="mcts", iteration=i,
                                       parent_ids=[seed_id], ir=wf.to_dict(), predicted_mean=0.5, predicted_std=0.1)
        archive.update_candidate(cid, status="evaluated", score=score, tokens=tokens, n_tasks=20)
    return SearchContext(cfg=cfg, archive=archive, run_id=run, suite=load_suite(cfg.suite), meta_lm=None,  # type: ignore[arg-type]
                         dry_run=lambda code, n: [])


def test_soft_mix_is_aflow_formula() -> None:
    probs = soft_mix_probabilities([0.6, 0.5, 0.2], alpha=0.4, lam=0.2)
    assert sum(probs) == pytest.approx(1.0)
    assert probs[0] > probs[1] > probs[2] >= 0.2 / 3
    assert soft_mix_probabilities([0.9, 0.1], alpha=0.4, lam=1.0) == pytest.approx([0.5, 0.5])


def test_tree_links_parents_and_backpropagates(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    nodes = build_tree(ctx.view(10))
    root = nodes[1]
    assert root.ir == validate(SEED_WORKFLOWS["cot"]).to_dict()  # the seed file mapped to its IR
    assert root.visits == 4 and root.value == pytest.approx((0.4 + 0.55 + 0.6 + 0.2) / 4)
    assert all(nodes[i].parent == 1 and nodes[i].visits == 1 for i in (2, 3, 4))


def test_children_are_valid_new_and_pruned_ones_carry_predictions(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, strategy__mcts={"children": 6, "evaluate_top": 2})
    proposals = MCTSProposer(ctx.cfg.strategy.mcts).propose(ctx, 4)
    assert len(proposals) == 6
    archived = {c["code_hash"] for c in ctx.archive.candidates(ctx.run_id)}
    from metasearch.archive import code_hash

    for p in proposals:
        assert p.origin == "mcts" and p.parent_ids and p.ir is not None
        assert lift(p.code) == validate(p.ir)
        assert check_policy(p.code) == []
        assert code_hash(p.code) not in archived
        assert p.predicted_mean is not None and p.predicted_std is not None and p.predicted_std > 0
    assert sum(p.evaluate for p in proposals) == 2
    assert len({p.code for p in proposals}) == 6


@pytest.mark.parametrize("acquisition", ["ucb", "mean", "ei_per_token"])
def test_same_view_and_seed_give_same_proposals(tmp_path: Path, acquisition: str) -> None:
    ctx = _ctx(tmp_path, strategy__mcts={"children": 4, "acquisition": acquisition, "selection": "uct"})
    a = MCTSProposer(ctx.cfg.strategy.mcts).propose(ctx, 4)
    b = MCTSProposer(ctx.cfg.strategy.mcts).propose(ctx, 4)
    assert [(p.code, p.evaluate, p.predicted_mean, p.parent_ids) for p in a] == \
           [(p.code, p.evaluate, p.predicted_mean, p.parent_ids) for p in b]
    c = MCTSProposer(ctx.cfg.strategy.mcts).propose(ctx, 5)
    assert [p.code for p in c] != [p.code for p in a]  # another iteration draws differently


def test_without_value_model_only_evaluated_children(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, strategy__mcts={"use_value_model": False, "evaluate_top": 1})
    proposals = MCTSProposer(ctx.cfg.strategy.mcts).propose(ctx, 4)
    assert len(proposals) == 1 and proposals[0].evaluate and proposals[0].predicted_mean is None


def test_report_spearman_uses_stored_predictions(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    for cid, pred in ((2, 0.5), (3, 0.7), (4, 0.1)):
        ctx.archive.update_candidate(cid, predicted_mean=pred)
    proposer = MCTSProposer(ctx.cfg.strategy.mcts)
    proposer.tell(ctx, 4, [])
    report = proposer.report()
    assert report["n_heldout"] == 3 and report["spearman_heldout"] == pytest.approx(1.0)
    assert spearman([1, 2], [1, 2]) is None and spearman([1, 1, 1], [0, 1, 2]) is None


def test_small_search_with_mcts_records_pruned_and_spearman(tmp_path: Path) -> None:
    from metasearch.search import Search

    cfg = small_config(tmp_path, strategy__name="mcts", budget__iterations=3,
                       strategy__mcts={"children": 4, "evaluate_top": 2, "acquisition": "ucb"},
                       evaluator__cascade=False)
    summary = Search(cfg).run()
    assert summary["counts"].get("pruned", 0) == 6  # 3 iterations x (4 children - 2 evaluated)
    report = summary["strategy_report"]
    assert report["pruned"] == 6 and report["n_heldout"] >= 4
    assert report["spearman_heldout"] is None or -1.0 <= report["spearman_heldout"] <= 1.0
    assert "spearman_heldout" in report and report["value_model"]["fitted"]
    with Archive(cfg.archive) as archive:
        pruned = archive.candidates(summary["run_id"], status="pruned")
        assert all(c["predicted_mean"] is not None and c["parent_ids"] for c in pruned)
        assert archive.get_run(summary["run_id"])["value_model_json"]
