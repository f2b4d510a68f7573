"""A cheap learned value model: predicts a candidate's validation score, with uncertainty, before paying for it.

AgentSwift prunes its search with a fine-tuned 7B predictor (Spearman 0.90); here a random forest over
hand-made features does the job offline in milliseconds. Features come from the workflow IR when the candidate
has one (operator one-hots and their pairwise interactions, counts, numeric parameters, expected LLM calls) and
always from the code's AST (`metasearch.space.lift.code_features`), so meta-agent code without an IR is scored
too. The spread of the per-tree predictions is the uncertainty the acquisition rules need.

Example::

    model = ValueModel(seed=0).fit(evaluated_rows, [r["score"] for r in evaluated_rows])
    mean, std = model.predict(child_rows)      # numpy arrays, one entry per child

Candidates are archive rows (dicts with `code` and `ir`); a row may carry `parent_score` (the score of the
candidate it was derived from), which the MCTS proposer sets from the archive.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np
from sklearn.ensemble import RandomForestRegressor
from sklearn.feature_extraction import DictVectorizer

#: Short prefixes of stage parameters, so feature names stay readable in reports.
_SHORT = {"self_consistency": "sc", "self_refine": "refine", "generate": "gen", "step_back": "step_back",
          "ensemble": "ensemble", "debate": "debate", "verify": "verify", "role": "role"}
#: Categorical stage parameters that become atoms (one-hot features that also enter the pairwise interactions).
_CATEGORICAL = ("mode", "aggregate", "diverse", "critic")
#: Numeric stage parameters, as features of their own.
_NUMERIC = ("n", "temperature", "agents", "rounds")


def _workflow(ir: Any) -> Any | None:
    """The validated Workflow of an IR dict, or None (the space package is imported lazily)."""
    if not ir:
        return None
    from metasearch.space.ir import IRError, validate

    try:
        return validate(ir)
    except IRError:
        return None


def ir_atoms(wf: Any) -> list[str]:
    """The workflow as a sorted set of atoms: operators, their categorical settings, format, last refiner."""
    atoms: set[str] = {f"format={wf.answer_format}"}
    for stage in wf.stages:
        data = stage.model_dump(mode="json")
        short = _SHORT.get(stage.op, stage.op)
        atoms.add(f"op={stage.op}")
        for key in _CATEGORICAL:
            if key in data:
                atoms.add(f"{short}.{key}={data[key]}")
        if stage.op == "role":
            atoms.add("role=auto" if data["role"] == "auto" else "role=fixed")
    ops = wf.ops()
    if ops[-1] in ("self_refine", "verify"):
        atoms.add(f"last={ops[-1]}")
    return sorted(atoms)


def _ir_features(wf: Any) -> dict[str, float]:
    feats: dict[str, float] = {"ir": 1.0, "num:stages": float(len(wf.stages)),
                               "expected_calls": float(wf.expected_calls())}
    atoms = ir_atoms(wf)
    for atom in atoms:
        feats[f"atom:{atom}"] = 1.0
    for a, b in combinations(atoms, 2):
        feats[f"pair:{a}&{b}"] = 1.0
    for stage in wf.stages:
        data = stage.model_dump(mode="json")
        short = _SHORT.get(stage.op, stage.op)
        feats[f"count:{stage.op}"] = feats.get(f"count:{stage.op}", 0.0) + 1.0
        for key in _NUMERIC:
            if key in data and not isinstance(data[key], bool):
                name = f"num:{short}.{key}"
                feats[name] = feats.get(name, 0.0) + float(data[key])
        if stage.op == "ensemble":
            feats["num:ensemble.roles"] = float(len(data["roles"]))
    feats["num:refiners"] = feats.get("count:self_refine", 0.0) + feats.get("count:verify", 0.0)
    return feats


def estimated_calls(ast_feats: dict[str, float]) -> float:
    """LLM completions per task guessed from the AST when there is no IR (calls in loops count twice)."""
    calls = ast_feats.get("ask_calls", 0.0) + ast_feats.get("ask_json_calls", 0.0)
    return calls + ast_feats.get("lm_calls_in_loops", 0.0) + max(0.0, ast_feats.get("n_sum", 0.0) - 1.0)


def featurize(candidate: dict[str, Any], *, parent_score: float | None, suite_features: dict[str, float] | None
              ) -> dict[str, float]:
    """Sparse named features of one candidate (archive row with `code` and optional `ir`)."""
    from metasearch.space.lift import code_features

    code = str(candidate.get("code") or "")
    ast_feats = code_features(code)
    feats = {f"ast:{k}": float(v) for k, v in ast_feats.items()}
    wf = _workflow(candidate.get("ir"))
    if wf is not None:
        feats.update(_ir_features(wf))
    else:
        feats["ir"] = 0.0
        feats["expected_calls"] = estimated_calls(ast_feats)
    feats["has_parent"] = 0.0 if parent_score is None else 1.0
    feats["parent_score"] = -1.0 if parent_score is None else float(parent_score)
    for key, value in sorted((suite_features or {}).items()):
        feats[f"suite:{key}"] = float(value)
    return feats


class ValueModel:
    """Random-forest regressor of scores; std = spread of the per-tree predictions (floored at `min_std`).

    Before `fit` (or with fewer than `min_train` scored candidates) it predicts a prior: the parent's score when
    known, else `prior_mean`, with `prior_std`. Deterministic: fixed `seed`, one job, sorted feature names.
    """

    def __init__(self, *, seed: int = 0, n_estimators: int = 200, min_samples_leaf: int = 1,
                 max_features: float = 0.5, min_std: float = 0.01, prior_mean: float = 0.5, prior_std: float = 0.25,
                 min_train: int = 3, suite_features: dict[str, float] | None = None) -> None:
        self.seed = int(seed)
        self.n_estimators = int(n_estimators)
        self.min_samples_leaf = int(min_samples_leaf)
        self.max_features = float(max_features)
        self.min_std = float(min_std)
        self.prior_mean = float(prior_mean)
        self.prior_std = float(prior_std)
        self.min_train = int(min_train)
        self.suite_features = dict(suite_features or {})
        self._vec: DictVectorizer | None = None
        self._forest: RandomForestRegressor | None = None
        self._train_features: list[dict[str, float]] = []
        self._train_scores: list[float] = []

    # ---- features -----------------------------------------------------------------------------------------------
    def features(self, candidates: Sequence[dict[str, Any]],
                 parent_scores: Sequence[float | None] | None = None) -> list[dict[str, float]]:
        """Features of each candidate; parent scores from the argument, else from each row's `parent_score`."""
        parents = list(parent_scores) if parent_scores is not None else [c.get("parent_score") for c in candidates]
        if len(parents) != len(candidates):
            raise ValueError("parent_scores must have one entry per candidate")
        return [featurize(c, parent_score=p, suite_features=self.suite_features) for c, p in zip(candidates, parents)]

    @property
    def fitted(self) -> bool:
        return self._forest is not None

    @property
    def n_train(self) -> int:
        return len(self._train_scores)

    # ---- fit / predict ------------------------------------------------------------------------------------------
    def fit(self, candidates: Sequence[dict[str, Any]], scores: Sequence[float],
            parent_scores: Sequence[float | None] | None = None) -> "ValueModel":
        """Refit from scratch on these candidates and their real scores (the whole history, each batch)."""
        if len(candidates) != len(scores):
            raise ValueError("fit needs one score per candidate")
        return self._fit_features(self.features(candidates, parent_scores), [float(s) for s in scores])

    def _fit_features(self, feats: list[dict[str, float]], scores: list[float]) -> "ValueModel":
        self._train_features, self._train_scores = feats, scores
        if scores:
            self.prior_mean = float(np.mean(scores))
        if len(scores) < self.min_train:
            self._vec, self._forest = None, None
            return self
        self._vec = DictVectorizer(sparse=False, sort=True)
        x = self._vec.fit_transform(feats)
        self._forest = RandomForestRegressor(n_estimators=self.n_estimators, min_samples_leaf=self.min_samples_leaf,
                                             max_features=self.max_features, bootstrap=True,
                                             random_state=self.seed, n_jobs=1)
        self._forest.fit(x, np.asarray(scores, dtype=float))
        return self

    def predict(self, candidates: Sequence[dict[str, Any]],
                parent_scores: Sequence[float | None] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) arrays, one entry per candidate."""
        feats = self.features(candidates, parent_scores)
        if not feats:
            return np.zeros(0), np.zeros(0)
        if self._forest is None or self._vec is None:
            mean = np.array([f["parent_score"] if f["has_parent"] else self.prior_mean for f in feats], dtype=float)
            return mean, np.full(len(feats), self.prior_std)
        x = self._vec.transform(feats)
        per_tree = np.stack([tree.predict(x) for tree in self._forest.estimators_])
        mean = per_tree.mean(axis=0)
        std = np.maximum(per_tree.std(axis=0), self.min_std)
        return mean, std

    # ---- reporting and persistence ------------------------------------------------------------------------------
    def importances(self, top: int = 15) -> list[tuple[str, float]]:
        """The most important features (impurity-based), largest first, ties by name."""
        if self._forest is None or self._vec is None:
            return []
        pairs = zip(self._vec.get_feature_names_out(), self._forest.feature_importances_)
        ranked = sorted(((str(n), float(v)) for n, v in pairs), key=lambda p: (-p[1], p[0]))
        return [(n, round(v, 4)) for n, v in ranked[:top] if v > 0]

    def params(self) -> dict[str, Any]:
        return {"seed": self.seed, "n_estimators": self.n_estimators, "min_samples_leaf": self.min_samples_leaf,
                "max_features": self.max_features, "min_std": self.min_std, "prior_std": self.prior_std,
                "min_train": self.min_train, "suite_features": self.suite_features}

    def summary(self) -> dict[str, Any]:
        """What to report with a run: the model kind, its size and what it relies on."""
        return {"kind": "random_forest", "fitted": self.fitted, "n_train": self.n_train,
                "n_features": 0 if self._vec is None else len(self._vec.get_feature_names_out()),
                "prior_mean": round(self.prior_mean, 6), "top_features": self.importances()}

    def to_json(self, *, include_data: bool = True) -> str:
        """JSON text (no pickle): parameters, summary and, with `include_data`, the training set to refit from."""
        data: dict[str, Any] = {"params": self.params(), "summary": self.summary()}
        if include_data:
            data["train"] = {"features": self._train_features, "scores": self._train_scores}
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ValueModel":
        """Rebuild a model from `to_json()`; with training data it refits to the identical forest (deterministic)."""
        data = json.loads(text)
        model = cls(**data["params"])
        train = data.get("train")
        if train:
            model._fit_features([{k: float(v) for k, v in f.items()} for f in train["features"]],
                                [float(s) for s in train["scores"]])
        else:
            model.prior_mean = float(data.get("summary", {}).get("prior_mean", model.prior_mean))
        return model


def suite_features(suite: Any) -> dict[str, float]:
    """A few numbers describing the suite (size, kinds, question length), shared by every candidate of a run."""
    tasks = list(getattr(suite, "val", []))
    if not tasks:
        return {}
    kinds = [t.kind for t in tasks]
    out = {"val_tasks": float(len(tasks)),
           "question_chars": float(np.mean([len(t.question) for t in tasks]))}
    for kind in ("math", "qa", "mc", "code"):
        out[f"kind_{kind}"] = kinds.count(kind) / len(kinds)
    return out
