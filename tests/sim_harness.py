"""Test-local harness: run trusted seed agents in-process against the SimulatedLLM (no sandbox, no client).

Only for the simulator's own tests and calibration: the real path goes through `metasearch.llm.client.LM` and
the sandbox. The adapter builds chat bodies the way the client does (same JSON-fields phrasing).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from metasearch.llm.simulated import SimulatedLLM
from metasearch.tasks.base import Task
from metasearch.tasks.helpers import extract_answer, majority_vote, normalize_answer, normalize_number

ARCHIVE = Path(__file__).resolve().parents[1] / "archive"
SEEDS = ["direct", "cot", "cot_sc", "self_refine", "debate", "step_back", "quality_diversity", "role_assignment"]


class SimLM:
    """The candidate-facing `lm` (ask / ask_json) over a SimulatedLLM, with per-call seeds and usage totals."""

    def __init__(self, sim: SimulatedLLM, key: str, seed: int = 0) -> None:
        self.sim, self.key, self.seed = sim, key, seed
        self.calls = 0
        self.tokens = 0

    def _chat(self, messages: list[dict], temperature: float, n: int, json_mode: bool) -> list[str]:
        call_seed = int.from_bytes(hashlib.sha256(f"{self.seed}|{self.key}|{self.calls}".encode()).digest()[:4], "big")
        self.calls += 1
        body: dict[str, Any] = {"model": "sim", "messages": messages, "temperature": temperature, "n": n,
                                "seed": call_seed}
        if json_mode:
            body["response_format"] = {"type": "json_object"}
        resp = self.sim.complete(body)
        self.tokens += resp["usage"]["total_tokens"]
        return [c["message"]["content"] for c in resp["choices"]]

    def ask(self, prompt: str, system: str | None = None, temperature: float = 0.0, n: int = 1) -> str | list[str]:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        texts = self._chat(messages, temperature, n, False)
        return texts if n > 1 else texts[0]

    def ask_json(self, prompt: str, fields: dict[str, str] | None = None, system: str | None = None,
                 temperature: float = 0.0) -> dict[str, Any]:
        fields = fields or {"thinking": "Your step by step reasoning.", "answer": "The final answer."}
        spec = ", ".join(f"{k}: {v}" for k, v in fields.items())
        text = f"{prompt}\n\nReply with a JSON object with the fields: {spec}"
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
        return json.loads(self._chat(messages, temperature, 1, True)[0])


def load_agent(source: str) -> Any:
    """The `forward` of a candidate's source (trusted code only: seeds and test agents)."""
    namespace: dict[str, Any] = {"extract_answer": extract_answer, "majority_vote": majority_vote}
    exec(compile(source, "<agent>", "exec"), namespace)  # trusted seed code, in tests only
    return namespace["forward"]


def seed_source(name: str) -> str:
    return (ARCHIVE / f"{name}.py").read_text(encoding="utf-8")


def correct(task: Task, answer: str) -> bool:
    if task.kind == "math":
        return normalize_number(answer) == normalize_number(task.answer)
    return normalize_answer(answer) == normalize_answer(task.answer)


def evaluate(source: str, sim: SimulatedLLM, tasks: Iterable[Task], seed: int = 0) -> tuple[float, float]:
    """(accuracy, mean tokens per task) of an agent on tasks, run in-process."""
    forward = load_agent(source)
    tasks = list(tasks)
    right, tokens = 0, 0
    for task in tasks:
        lm = SimLM(sim, task.id, seed)
        right += correct(task, forward(task, lm))
        tokens += lm.tokens
    return right / len(tasks), tokens / len(tasks)
