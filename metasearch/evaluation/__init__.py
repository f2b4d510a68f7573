"""Evaluation: sandboxed task runs on a local pool or Ray actors, cascade early stopping, bootstrap CIs."""

from metasearch.evaluation.evaluator import CandidateScore, Evaluator
from metasearch.evaluation.runner import RunnerSpec, TaskResult
from metasearch.evaluation.stats import ScoreCI, bootstrap_ci

__all__ = ["CandidateScore", "Evaluator", "RunnerSpec", "ScoreCI", "TaskResult", "bootstrap_ci"]
