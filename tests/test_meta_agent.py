"""The meta-agent proposer: reflection and debug rounds, the failing code fed back, duplicates re-asked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import small_config
from metasearch.evaluation.runner import TaskResult
from metasearch.llm.client import Usage
from metasearch.proposers.base import SearchContext
from metasearch.proposers.meta_agent import MARKER, MetaAgentProposer
from metasearch.tasks import load_suite

GOOD = "NAME = 'fixed'\ndef forward(task, lm):\n    return extract_answer(lm.ask(task.question), task.kind)\n"
BROKEN = "NAME = 'broken'\ndef forward(task, lm):\n    return undefined_name\n"


class ScriptedMetaLM:
    """Answers the meta-agent's turns from a script and records the prompts it was sent."""

    def __init__(self, codes: list[str]) -> None:
        self.codes = list(codes)
        self.prompts: list[str] = []
        self.usage = Usage()

    def ask_json(self, prompt: str, **kwargs: Any) -> dict[str, str]:
        self.prompts.append(prompt)
        self.usage.add(Usage(prompt_tokens=10, completion_tokens=5, calls=1))
        return {"thought": "t", "name": f"turn {len(self.prompts)}", "code": self.codes.pop(0)}


class FakeArchive:
    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows

    def candidates(self, run_id: int) -> list[dict]:
        return self.rows


def make_ctx(tmp_path: Path, lm: ScriptedMetaLM, rows: list[dict] | None = None, **overrides: Any) -> SearchContext:
    cfg = small_config(tmp_path, **overrides)

    def dry_run(code: str, n: int) -> list[TaskResult]:
        failing = "undefined_name" in code
        return [TaskResult(task_id=str(i), score=0.0, answer=None if failing else "1",
                           error="NameError: name 'undefined_name' is not defined" if failing else None,
                           error_kind="runtime" if failing else None) for i in range(n)]

    return SearchContext(cfg=cfg, archive=FakeArchive(rows or []), run_id=1, suite=load_suite(cfg.suite),
                         meta_lm=lm, dry_run=dry_run)  # type: ignore[arg-type]


def test_debug_rounds_feed_the_error_back_until_the_code_runs(tmp_path: Path) -> None:
    lm = ScriptedMetaLM([BROKEN, BROKEN, BROKEN, BROKEN, GOOD])  # propose, 2 reflections, 2 debug turns
    proposal = MetaAgentProposer().propose(make_ctx(tmp_path, lm), 1)[0]
    assert proposal.error is None and proposal.code == GOOD
    assert all(p.startswith(MARKER) for p in lm.prompts)
    assert sum("# Reflection" in p for p in lm.prompts) == 2
    debug = [p for p in lm.prompts if "# Debug" in p]
    assert len(debug) == 2 and all("undefined_name" in p and "## Error" in p for p in debug)
    assert proposal.usage["calls"] == 5


def test_a_proposal_still_broken_after_the_debug_rounds_carries_its_error(tmp_path: Path) -> None:
    lm = ScriptedMetaLM(["import os\n" + BROKEN] * 6)
    proposal = MetaAgentProposer().propose(make_ctx(tmp_path, lm), 1)[0]
    assert proposal.error_kind == "policy" and "no-import" in proposal.error
    assert sum("# Debug" in p for p in lm.prompts) == 3


def test_a_duplicate_of_an_archived_agent_is_asked_again(tmp_path: Path) -> None:
    archived = {"id": 1, "iteration": 0, "status": "evaluated", "score": 0.5, "ci_low": 0.4, "ci_high": 0.6,
                "name": "old", "thought": "", "code": GOOD.replace("'fixed'", "'old name'")}
    other = GOOD.replace("lm.ask(task.question)", "lm.ask('Think. ' + task.question)")
    lm = ScriptedMetaLM([GOOD, GOOD, GOOD, other, other, other])
    ctx = make_ctx(tmp_path, lm, rows=[archived])
    proposal = MetaAgentProposer().propose(ctx, 1)[0]
    assert proposal.code == other
    assert "duplicated an archived agent" in lm.prompts[-1]
    assert "### Agent: old" in lm.prompts[0]


def test_an_unusable_meta_agent_reply_becomes_a_failed_proposal(tmp_path: Path) -> None:
    from metasearch.llm.client import LLMCallError

    class Garbling(ScriptedMetaLM):
        def ask_json(self, prompt: str, **kwargs: Any) -> dict[str, str]:
            raise LLMCallError("no JSON object with fields thought, name, code after 2 repairs")

    proposal = MetaAgentProposer().propose(make_ctx(tmp_path, Garbling([])), 1)[0]
    assert proposal.error_kind == "meta" and "unusable" in proposal.error
