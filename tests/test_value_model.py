"""The value model: features from IR and from plain code, fit/predict shapes, uncertainty, determinism."""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy.stats import spearmanr

from metasearch.seeds import SEED_DIR
from metasearch.space import random_workflow, render, validate
from metasearch.value_model import ValueModel, featurize, ir_atoms


def _rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows, keys = [], set()
    while len(rows) < n:
        wf = random_workflow(rng)
        if wf.key() in keys:
            continue
        keys.add(wf.key())
        rows.append({"code": render(wf), "ir": wf.to_dict()})
    return rows


def _true_score(row: dict) -> float:
    """A synthetic landscape: debate and verification help, blind refinement hurts, many calls help a little."""
    wf = validate(row["ir"])
    ops = wf.ops()
    s = 0.4 + 0.2 * ("debate" in ops) + 0.1 * ("verify" in ops) + 0.01 * wf.expected_calls()
    s -= 0.15 * any(getattr(st, "critic", True) is False for st in wf.stages)
    return s


def test_features_from_ir_have_atoms_pairs_counts_and_calls() -> None:
    wf = validate({"stages": [{"op": "role", "role": "auto"}, {"op": "debate", "agents": 3, "rounds": 2},
                              {"op": "verify"}]})
    f = featurize({"code": render(wf), "ir": wf.to_dict()}, parent_score=0.6, suite_features={"val_tasks": 100})
    assert f["ir"] == 1.0
    assert f["atom:op=debate"] == 1.0 and f["atom:role=auto"] == 1.0 and f["atom:last=verify"] == 1.0
    assert f["pair:op=debate&op=verify"] == 1.0
    assert f["count:verify"] == 1.0 and f["num:debate.agents"] == 3.0 and f["num:debate.rounds"] == 2.0
    assert f["expected_calls"] == float(wf.expected_calls())
    assert f["parent_score"] == 0.6 and f["has_parent"] == 1.0
    assert f["suite:val_tasks"] == 100.0
    assert f["ast:ask_calls"] + f["ast:ask_json_calls"] > 0  # AST statistics are always there
    assert "op=debate" in ir_atoms(wf) and len(ir_atoms(wf)) == len(set(ir_atoms(wf)))


def test_features_from_plain_code_without_ir() -> None:
    code = (SEED_DIR / "cot_sc.py").read_text()
    f = featurize({"code": code, "ir": None}, parent_score=None, suite_features={})
    assert f["ir"] == 0.0 and f["has_parent"] == 0.0
    assert not any(k.startswith(("atom:", "pair:")) for k in f)
    assert f["ast:parse_ok"] == 1.0 and f["expected_calls"] >= 1.0
    broken = featurize({"code": "def forward(task, lm:\n", "ir": None}, parent_score=None, suite_features={})
    assert broken["ast:parse_ok"] == 0.0


def test_predicts_prior_before_fit() -> None:
    rows = _rows(3)
    mean, std = ValueModel(prior_mean=0.5, prior_std=0.25).predict(rows, parent_scores=[0.7, None, 0.2])
    assert mean.tolist() == [0.7, 0.5, 0.2] and std.tolist() == [0.25] * 3


def test_fit_predict_shapes_uncertainty_and_signal() -> None:
    rows = _rows(70)
    scores = [_true_score(r) for r in rows]
    model = ValueModel(seed=3).fit(rows[:50], scores[:50])
    mean, std = model.predict(rows[50:])
    assert mean.shape == (20,) and std.shape == (20,)
    assert np.all(std > 0) and np.ptp(std) > 0  # the per-tree spread differs between candidates
    assert spearmanr(mean, scores[50:]).statistic > 0.6  # it learned the landscape, not noise
    assert model.summary()["n_train"] == 50 and model.summary()["top_features"]


def test_deterministic_and_json_roundtrip() -> None:
    rows = _rows(30, seed=1)
    scores = [_true_score(r) for r in rows]
    a = ValueModel(seed=7).fit(rows[:20], scores[:20]).predict(rows[20:])
    b = ValueModel(seed=7).fit(rows[:20], scores[:20]).predict(rows[20:])
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    model = ValueModel(seed=7).fit(rows[:20], scores[:20])
    restored = ValueModel.from_json(model.to_json())
    c = restored.predict(rows[20:])
    assert np.array_equal(a[0], c[0]) and np.array_equal(a[1], c[1])


def test_fit_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError):
        ValueModel().fit(_rows(3), [0.1, 0.2])
