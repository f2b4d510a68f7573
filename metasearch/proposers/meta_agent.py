"""Meta Agent Search (ADAS, Hu et al. 2024): an LLM reads the archive and writes the code of the next agent.

Per iteration: one proposal (thought, name, code) by `ask_json`, `reflections` self-reflection turns, then a dry
run in the sandbox on a few validation tasks; an error (policy violation, exception, all-zero output) is fed back
for up to `debug_rounds` debugging turns. A proposal whose normalised code is already archived is re-asked (a
rejected duplicate does not use up an iteration). Every call's seed derives from (run seed, iteration, attempt,
turn), so a resumed run makes the same proposals, and the response cache makes them free.
"""

from __future__ import annotations

from typing import Any

from metasearch.errors import EndpointError
from metasearch.llm.client import LLMCallError
from metasearch.llm.seeding import derive_seed
from metasearch.novelty import fingerprint, nearest_parents
from metasearch.proposers.base import Proposal, Proposer, SearchContext
from metasearch.sandbox import check_policy

MARKER = "# Metasearch meta-agent"

CONTRACT = '''\
A candidate agent is one Python module (source text) defining:

NAME = "A short descriptive name"
THOUGHT = "Why this design should work."

def forward(task, lm):
    # task.question: str; task.kind: 'math' | 'qa' | 'mc' | 'code'; task.meta: dict; task.id: str
    # lm.ask(prompt, system=None, temperature=0.0, n=1) -> str, or list[str] when n > 1
    # lm.ask_json(prompt, fields={"thinking": "...", "answer": "..."}, system=None, temperature=0.0) -> dict
    # In scope without import: extract_answer(text, kind) -> str, majority_vote(answers) -> str
    # Return the final answer as a string (code tasks: the code).

Rules: no import statements, no file or network access, no names or attributes with double underscores,
no exec/eval/open/getattr. Only plain Python (strings, lists, dicts, loops) and the lm calls above.'''

INSTRUCTION = '''\
Design a new agent that is likely to score higher than every agent in the archive. Learn from the archive: what
the best agents do, what failed. Be creative but correct: combine or improve the techniques (step-by-step
reasoning, roles, step-back abstraction, self-consistency, critique and refinement, debate, verification).
Reply with a JSON object with the fields "thought" (your reasoning and the design), "name" and "code" (the whole
module, following the contract exactly).'''


def format_entry(c: dict[str, Any]) -> str:
    if c.get("score") is None:
        fitness = "fitness unknown"
    else:
        fitness = f"fitness {c['score']:.3f}, 95% CI {c['ci_low']:.2f}-{c['ci_high']:.2f}"
    status = "" if c["status"] == "evaluated" else f" [{c['status']}: {c.get('error') or ''}]"
    return (f"### Agent: {c['name']} ({fitness}){status}\nThought: {c.get('thought') or ''}\n"
            f"```python\n{c['code'].rstrip()}\n```")


def select_entries(view: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The best entries plus the most recent others (diversity), shown worst-to-best as ADAS does."""
    ranked = SearchContext.evaluated(view)
    best = ranked[: max(1, limit * 2 // 3)]
    chosen = {c["id"] for c in best}
    recent = [c for c in sorted(view, key=lambda c: -c["id"]) if c["id"] not in chosen and c["status"] != "rejected"]
    picked = best + recent[: max(0, limit - len(best))]
    return sorted(picked, key=lambda c: (c["score"] is not None, c["score"] or 0.0, c["id"]))


def _proposal_block(answer: dict[str, Any]) -> str:
    return (f"## Your proposal\nName: {answer.get('name', '')}\nThought: {answer.get('thought', '')}\n"
            f"```python\n{str(answer.get('code', '')).rstrip()}\n```")


class MetaAgentProposer(Proposer):
    name = "meta"

    def __init__(self, max_attempts: int = 3) -> None:
        self.max_attempts = max_attempts

    def base_prompt(self, ctx: SearchContext, iteration: int) -> str:
        entries = select_entries(ctx.view(iteration), ctx.cfg.strategy.meta.archive_in_prompt)
        archive = "\n\n".join(format_entry(c) for c in entries)
        return (f"{MARKER}\nYou are an expert in designing LLM agents. Your goal is to discover an agent that solves "
                f"these tasks as well as possible.\n\n## Tasks\n{ctx.suite.description}\n\n## Candidate contract\n"
                f"{CONTRACT}\n\n## Archive of discovered agents\n{archive}\n\n## Instruction\n{INSTRUCTION}\n")

    def _ask(self, ctx: SearchContext, prompt: str, seed: int) -> dict[str, Any]:
        """One meta-agent turn. A reply still unusable after the client's repairs becomes a failed proposal (its
        reason recorded); an endpoint that is down propagates (EndpointError) and stops the run, resumable."""
        try:
            answer = ctx.meta_lm.ask_json(prompt, fields={"thought": "your reasoning and the design",
                                                          "name": "a short name for the agent",
                                                          "code": "the whole Python module"},
                                          temperature=ctx.cfg.strategy.meta.temperature, seed=seed)
        except EndpointError:
            raise
        except LLMCallError as err:
            return {"thought": "", "name": "", "code": "", "error": f"meta-agent reply unusable: {err}"}
        return {k: str(answer.get(k, "")) for k in ("thought", "name", "code")}

    def propose(self, ctx: SearchContext, iteration: int) -> list[Proposal]:
        seen = {fingerprint(c["code"]) for c in ctx.view(iteration)}  # not later rows: resume must re-propose them
        base = self.base_prompt(ctx, iteration)
        before = ctx.meta_lm.usage.to_dict()
        proposal: Proposal | None = None
        for attempt in range(self.max_attempts):
            proposal = self._one(ctx, base, iteration, attempt)
            if fingerprint(proposal.code) not in seen:
                break
            base += ("\n## Note\nYour last proposal duplicated an archived agent. Propose something different.\n")
        assert proposal is not None
        after = ctx.meta_lm.usage.to_dict()
        proposal.usage = {k: after[k] - before[k] for k in ("prompt_tokens", "completion_tokens", "cost", "calls")}
        return [proposal]

    def _one(self, ctx: SearchContext, base: str, iteration: int, attempt: int) -> Proposal:
        meta = ctx.cfg.strategy.meta
        seed = ctx.cfg.seed

        def turn_seed(*parts: object) -> int:
            return derive_seed(seed, "meta", iteration, attempt, *parts)

        answer = self._ask(ctx, base, turn_seed("propose"))
        if "error" in answer:
            # no code came back: record the failure under a placeholder unique to this turn, so each iteration's
            # failure is its own archived candidate with its reason
            placeholder = f"# the meta-agent's reply at iteration {iteration}, attempt {attempt} held no usable code\n"
            return Proposal(code=placeholder, name=f"Unusable proposal {iteration}", origin="meta",
                            error=answer["error"], error_kind="meta")
        for r in range(meta.reflections):
            reflect = (f"{base}\n# Reflection\n{_proposal_block(answer)}\n\nReview your proposal: is it novel compared "
                       f"with the archive? Is the code correct and does it follow the contract exactly? Improve it, and "
                       f"reply with the improved JSON object (thought, name, code).\n")
            revised = self._ask(ctx, reflect, turn_seed("reflect", r))
            answer = answer if "error" in revised else revised
        error, kind = self._check(ctx, answer["code"])
        for d in range(meta.debug_rounds):
            if error is None:
                break
            debug = (f"{base}\n# Debug\n## Error\n{error}\n\n{_proposal_block(answer)}\n\nThe code above failed when it "
                     f"was run. Fix it and reply with the corrected JSON object (thought, name, code).\n")
            fixed = self._ask(ctx, debug, turn_seed("debug", d))
            if "error" in fixed:
                break
            answer = fixed
            error, kind = self._check(ctx, answer["code"])
        parents = nearest_parents(answer["code"], SearchContext.evaluated(ctx.view(iteration)))
        return Proposal(code=answer["code"], name=answer["name"].strip()[:120] or f"Agent {iteration}",
                        thought=answer["thought"], origin="meta", parent_ids=parents, error=error, error_kind=kind)

    def _check(self, ctx: SearchContext, code: str) -> tuple[str | None, str | None]:
        """Policy check, then a dry run on a few validation tasks: the error to feed back, or None."""
        violations = check_policy(code)
        if violations:
            v = violations[0]
            return v.message, (v.rule if v.rule in ("syntax", "contract") else "policy")
        n = ctx.cfg.strategy.meta.dry_run_tasks
        if n == 0:
            return None, None
        results = ctx.dry_run(code, n)
        errors = [r for r in results if r.error]
        if errors:
            return f"{errors[0].error_kind}: {errors[0].error}", errors[0].error_kind
        if all(not (r.answer or "").strip() for r in results):
            return "the agent returned empty answers on every dry-run task", "runtime"
        return None, None
