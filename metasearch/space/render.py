"""Render a workflow IR as candidate source code that obeys the candidate contract.

The code is plain, sandbox-friendly Python: no imports, no names starting with an underscore, no f-strings or
augmented assignment (RestrictedPython guards those), only `lm.ask` / `lm.ask_json` and the in-scope helpers
`extract_answer` and `majority_vote`. Prompts use the exact phrases `metasearch.llm.prompt_features` detects,
so each stage triggers the technique it stands for (and blind refinement carries no critique words).
The output is a pure function of (IR, name, thought): no timestamps, no randomness.
"""

from __future__ import annotations

import json
import re
from typing import Any

from metasearch.space.ir import (AUTO_ROLE, ROLES, Debate, Ensemble, Generate, Role, SelfConsistency, SelfRefine,
                                 StepBack, Verify, Workflow, stage_label)

COT = "Let's think step by step."
DIRECT = "Answer directly, without explanation."
JSON_FIELDS = {"thinking": "Your reasoning.", "answer": "Your final answer only."}
# Code fragments the refiners share: the question, and the current answer quoted as an "Answer:" line (the form
# in which prompt_features counts earlier answers).
QUESTION = "'Question: ' + question + '\\n\\n'"
PROPOSED = "'Proposed answer:\\nAnswer: ' + answer"
PREVIOUS = "'Your previous answer:\\nAnswer: ' + answer"
CRITIC_FIELDS = {"feedback": "Your critique of the answer: the mistakes you found, if any.",
                 "correct": "True if the answer is correct, otherwise False."}


def q(text: str) -> str:
    """A Python string literal for `text`."""
    return repr(text)


def literal(value: Any) -> str:
    """A Python literal for JSON-like data, with double-quoted strings and True/False."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    raise TypeError(f"not a literal: {value!r}")


def workflow_literal(wf: Workflow) -> str:
    """`WORKFLOW = {...}`: one stage per line, stable order, readable in the archive prompt."""
    data = wf.to_dict()
    lines = ["WORKFLOW = {", '    "stages": [']
    lines += [f"        {literal(stage)}," for stage in data["stages"]]
    lines += ["    ],", f'    "answer_format": {literal(data["answer_format"])},', "}"]
    return "\n".join(lines)


def _title(role: str) -> str:
    if role == AUTO_ROLE:
        return "Routed-Role"
    words = role.split(" ", 1)[1] if role.startswith(("a ", "an ")) else role
    return " ".join(w.capitalize() for w in words.split())


def default_name(wf: Workflow) -> str:
    """A descriptive agent name from its stages, e.g. 'Step-back CoT-SC x5 + Critic Refine x2 + Verify'."""
    parts: list[str] = []
    for s in wf.stages:
        if isinstance(s, Role):
            parts.append(_title(s.role))
        elif isinstance(s, StepBack):
            parts.append("Step-back")
        elif isinstance(s, Generate):
            parts.append("CoT" if s.mode == "cot" else "Direct")
        elif isinstance(s, SelfConsistency):
            if s.diverse:
                parts.append(f"Quality-Diversity x{s.n}")
            else:
                parts.append(f"{'CoT-SC' if s.mode == 'cot' else 'SC'} x{s.n}")
            if s.aggregate == "select":
                parts.append("with Selection")
        elif isinstance(s, Ensemble):
            parts.append(f"{len(s.roles)}-Persona Ensemble")
        elif isinstance(s, Debate):
            parts.append(f"{s.agents}-Agent Debate ({s.rounds} rd)")
        elif isinstance(s, SelfRefine):
            parts.append(f"+ {'Critic' if s.critic else 'Blind'} Refine x{s.rounds}")
        elif isinstance(s, Verify):
            parts.append("+ Verify")
    name = " ".join(parts)
    return name + (" [JSON]" if wf.answer_format == "json" else "")


def default_thought(wf: Workflow) -> str:
    return f"Workflow {wf.describe()}: about {wf.expected_calls()} LLM calls per task."


class _Code:
    """A tiny line emitter with indentation."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 1

    def __call__(self, line: str = "") -> None:
        self.lines.append(("    " * self.depth + line) if line else "")

    def indent(self) -> "_Code":
        self.depth += 1
        return self

    def dedent(self) -> None:
        self.depth -= 1


def _mode(mode: str) -> str:
    return q(COT if mode == "cot" else DIRECT)


def _preamble(c: _Code, wf: Workflow) -> None:
    c("question = task.question")
    c("kind = task.kind")
    c('if kind == "code":')
    if wf.answer_format == "json":
        c.indent()("finish = 'Put the complete Python function in the answer field.'")
        c.dedent()
        c("else:")
        c.indent()("finish = 'Put only the final answer in the answer field.'")
    else:
        c.indent()("finish = 'Write the complete Python function in a python code block.'")
        c.dedent()
        c("else:")
        c.indent()("finish = \"End your reply with a line 'Answer: <your final answer>'.\"")
    c.dedent()
    c("system = None")
    c('notes = ""')
    c()
    c("def solve(prompt, temperature, system):")
    c.indent()
    if wf.answer_format == "json":
        c(f"reply = lm.ask_json(prompt + '\\n\\n' + finish, fields={literal(JSON_FIELDS)}, system=system, "
          "temperature=temperature)")
        c("if not isinstance(reply, dict):")
        c.indent()("return extract_answer(str(reply), kind)")
        c.dedent()
        c("return extract_answer(str(reply.get('answer', '')), kind)")
    else:
        c("reply = lm.ask(prompt + '\\n\\n' + finish, system=system, temperature=temperature)")
        c("return extract_answer(reply, kind)")
    c.dedent()
    c()


def _aggregate(c: _Code, aggregate: str) -> None:
    """`answers` (a list) -> `answer`, by vote or by an LLM selection call that sees all candidates."""
    if aggregate == "majority":
        c("answer = majority_vote(answers)")
        return
    c('listing = ""')
    c("for i in range(len(answers)):")
    c.indent()("listing = listing + 'Answer ' + str(i + 1) + ': ' + answers[i] + '\\n'")
    c.dedent()
    c("answer = solve('Question: ' + question + '\\n\\nHere are several candidate answers:\\n' + listing + "
      f"'\\nReason over them carefully and give the single best final answer. ' + {q(COT)}, 0.0, system)")
    c("if not answer:")
    c.indent()("answer = majority_vote(answers)")
    c.dedent()


def _role(c: _Code, s: Role) -> None:
    if s.role != AUTO_ROLE:
        c(f"system = {q('You are ' + s.role + '.')}")
        return
    options = ", ".join("'" + r[0].upper() + r[1:] + "'" for r in ROLES)
    c(f"roles = {literal(list(ROLES))}")
    ask = (f"\n\nWhich expert is best suited to answer this question? Choose one of: {options}. "
           "Reply with the expert only.")
    c(f"choice = lm.ask('Question: ' + question + {q(ask)})")
    c("choice = str(choice).lower()")
    c("system = 'You are ' + roles[0] + '.'")
    c("for persona in roles:")
    c.indent()("if persona in choice:")
    c.indent()("system = 'You are ' + persona + '.'")
    c("break")
    c.dedent()
    c.dedent()


def _step_back(c: _Code) -> None:
    c("principles = lm.ask('Question: ' + question + '\\n\\nTake a step back: which general principles and "
      "concepts are needed to solve this question? List them briefly; do not solve it yet.', system=system)")
    c("notes = 'We took a step back and found these general principles:\\n' + str(principles) + '\\n\\n'")


def _self_consistency(c: _Code, s: SelfConsistency, json_mode: bool) -> None:
    prompt = f"context + {_mode(s.mode)}"
    if s.diverse:
        c("answers = []")
        c(f"for i in range({s.n}):")
        c.indent()("tried = ''")
        c("if answers:")
        c.indent()("tried = 'Answers proposed so far:\\n'")
        c("for j in range(len(answers)):")
        c.indent()("tried = tried + 'Answer ' + str(j + 1) + ': ' + answers[j] + '\\n'")
        c.dedent()
        c("tried = tried + 'Try another interesting way to solve it: a different approach than the ones above.\\n\\n'")
        c.dedent()
        c(f"answers.append(solve(context + tried + {_mode(s.mode)}, {s.temperature!r}, system))")
        c.dedent()
    elif s.n == 1 or json_mode:
        c(f"answers = [solve({prompt}, {s.temperature!r}, system) for i in range({s.n})]")
    else:
        c(f"replies = lm.ask({prompt} + '\\n\\n' + finish, system=system, temperature={s.temperature!r}, n={s.n})")
        c("if isinstance(replies, str):")
        c.indent()("replies = [replies]")
        c.dedent()
        c("answers = [extract_answer(r, kind) for r in replies]")
    _aggregate(c, s.aggregate)


def _ensemble(c: _Code, s: Ensemble) -> None:
    c("answers = []")
    c(f"for persona in {literal(list(s.roles))}:")
    c.indent()(f"answers.append(solve(context + {_mode(s.mode)}, 0.0, 'You are ' + persona + '.'))")
    c.dedent()
    _aggregate(c, s.aggregate)


def _debate(c: _Code, s: Debate) -> None:
    c(f"answers = [solve(context + {q(COT)}, 0.8, system) for i in range({s.agents})]")
    c(f"for r in range({s.rounds}):")
    c.indent()("updated = []")
    c(f"for a in range({s.agents}):")
    c.indent()('others = ""')
    c(f"for b in range({s.agents}):")
    c.indent()("if b != a:")
    c.indent()("others = others + 'Agent ' + str(b + 1) + ':\\nAnswer: ' + answers[b] + '\\n'")
    c.dedent()
    c.dedent()
    c("updated.append(solve(context + 'Your previous answer:\\nAnswer: ' + answers[a] + "
      "'\\n\\nOther agents answered:\\n' + others + "
      f"'\\nWeigh their answers against yours, then give your updated answer. ' + {q(COT)}, 0.8, system))")
    c.dedent()
    c("answers = updated")
    c.dedent()
    _aggregate(c, s.aggregate)


def _self_refine(c: _Code, s: SelfRefine) -> None:
    c(f"for r in range({s.rounds}):")
    c.indent()
    if s.critic:  # as ADAS's Self-Refine: a JSON critique with a verdict; stop once the critic accepts
        c(f"review = lm.ask_json({QUESTION} + {PROPOSED} + '\\n\\nCritique this answer: check the reasoning and "
          "point out any mistake. Give feedback only, not a new answer.', "
          f"fields={literal(CRITIC_FIELDS)}, system=system)")
        c("if not isinstance(review, dict):")
        c.indent()("review = {}")
        c.dedent()
        c("if str(review.get('correct', '')).strip().lower() == 'true':")
        c.indent()("break")
        c.dedent()
        c(f"refined = solve({QUESTION} + {PREVIOUS} + '\\n\\nFeedback: ' + str(review.get('feedback', '')) + "
          f"'\\n\\nImprove your answer using the feedback. ' + {q(COT)}, 0.0, system)")
    else:
        c(f"refined = solve({QUESTION} + {PREVIOUS} + '\\n\\nImprove your answer. ' + {q(COT)}, 0.0, system)")
    c("if refined:")
    c.indent()("answer = refined")
    c.dedent()
    c.dedent()


def _verify(c: _Code) -> None:
    c(f"checked = solve({QUESTION} + {PROPOSED} + '\\n\\nVerify this answer carefully. If it is correct, state it "
      "again; if it is wrong, give the corrected answer.', 0.0, system)")
    c("if checked:")
    c.indent()("answer = checked")
    c.dedent()


def _plain(text: str) -> str:
    """Free text for a string constant: no double underscores, which a sandbox policy may reject anywhere."""
    return re.sub(r"_{2,}", "_", str(text))


def render(wf: Workflow, name: str | None = None, thought: str | None = None) -> str:
    """Python source of a candidate agent implementing `wf`, carrying `wf` as its `WORKFLOW` literal."""
    name = _plain(name if name is not None else default_name(wf))
    thought = _plain(thought if thought is not None else default_thought(wf))
    json_mode = wf.answer_format == "json"
    c = _Code()
    _preamble(c, wf)
    produced = False
    for s in wf.stages:
        c(f"# {stage_label(s)}")
        if isinstance(s, Role):
            _role(c, s)
        elif isinstance(s, StepBack):
            _step_back(c)
        else:
            if not produced:
                c("context = 'Question: ' + question + '\\n\\n' + notes")
                produced = True
            if isinstance(s, Generate):
                c(f"answer = solve(context + {_mode(s.mode)}, 0.0, system)")
            elif isinstance(s, SelfConsistency):
                _self_consistency(c, s, json_mode)
            elif isinstance(s, Ensemble):
                _ensemble(c, s)
            elif isinstance(s, Debate):
                _debate(c, s)
            elif isinstance(s, SelfRefine):
                _self_refine(c, s)
            elif isinstance(s, Verify):
                _verify(c)
    c("return answer")
    header = [f"NAME = {q(name)}", f"THOUGHT = {q(thought)}", workflow_literal(wf), "", "",
              "def forward(task, lm):"]
    return "\n".join(header + c.lines) + "\n"
