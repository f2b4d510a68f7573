"""The simulated meta-agent: what the simulated LLM answers when it is shown a meta-agent prompt.

It behaves like a modest real meta-agent. It reads the archive in the prompt (names, fitness, code), lifts
each agent's code to the workflow IR, picks a parent with a probability that rises with fitness (so better
archives lead to better proposals on average), edits it with mostly small moves (sometimes a bigger jump or a
crossover of two parents), avoids re-proposing an archived workflow, and explains the change in its thought.
At `bug_rate` it slips one bug into the code (syntax error, runtime error, forbidden import or infinite loop)
while the WORKFLOW literal stays intact, so the debug turns have something to fix: a debug turn usually
answers with a clean re-render of the workflow.

Prompt shape (written by `metasearch.proposers.meta_agent`): a first line `# Metasearch meta-agent`, a section
`## Archive of discovered agents` with entries `### Agent: NAME (fitness 0.412, 95% CI ...)`, a `Thought:` line
and a python code fence. Reflection turns add `# Reflection` and a `## Your proposal` section; debug turns add
`# Debug`, `## Error` and `## Your proposal`. Everything is a function of (prompt, rng state).
"""

from __future__ import annotations

import ast
import math
import random
import re
from dataclasses import dataclass, field

from metasearch.space.ir import IRError, Workflow, validate
from metasearch.space.lift import lift
from metasearch.space.moves import apply_move, crossover, mutate_described, random_workflow
from metasearch.space.render import default_name, render

MARKER = "# Metasearch meta-agent"
DEBUG_FIX_RATE = 0.85
REFLECT_CHANGE_RATE = 0.25
CROSSOVER_RATE = 0.2
PARENT_TEMPERATURE = 0.08  # softmax temperature over fitness (fitness is on a 0-1 scale)
BUG_KINDS = ("syntax", "runtime", "import", "loop")

_FITNESS_RE = re.compile(r"fitness\s+(-?\d+(?:\.\d+)?)")


@dataclass
class Entry:
    """One agent shown in the prompt (an archive entry, or the meta-agent's own previous proposal)."""

    name: str
    fitness: float | None = None
    thought: str = ""
    code: str = ""
    workflow: Workflow | None = None


@dataclass
class ParsedPrompt:
    archive: list[Entry] = field(default_factory=list)
    proposal: Entry | None = None
    error: str = ""
    turn: str = "propose"  # propose | reflect | debug


def is_meta_prompt(prompt: str) -> bool:
    return MARKER in prompt


def parse_prompt(prompt: str) -> ParsedPrompt:
    """Sections, archive entries and the previous proposal, by one line scan that respects code fences."""
    out = ParsedPrompt()
    section = ""
    entry: Entry | None = None
    code: list[str] | None = None
    error: list[str] = []
    thought: list[str] | None = None
    for line in prompt.splitlines():
        stripped = line.strip()
        if code is not None:  # inside a fence
            if stripped == "```":
                if entry is not None and not entry.code:
                    entry.code = "\n".join(code) + "\n"
                code = None
            else:
                code.append(line)
            continue
        if stripped.startswith("```"):
            code, thought = [], None
            continue
        if line.startswith("# ") and not line.startswith("## "):
            marker = stripped[2:].strip().lower()
            if marker in ("reflection", "debug"):
                out.turn = "debug" if marker == "debug" or out.turn == "debug" else "reflect"
            section, entry, thought = "", None, None
            continue
        if line.startswith("## "):
            section, entry, thought = stripped[3:].strip().lower(), None, None
            if section.startswith("your proposal"):
                entry = out.proposal = Entry(name="")
            continue
        if section.startswith("archive") and line.startswith("### Agent:"):
            header = line[len("### Agent:"):].strip()
            m = _FITNESS_RE.search(header)
            name = header[: header.find(" (fitness")] if " (fitness" in header else header
            entry = Entry(name=name.strip(), fitness=float(m.group(1)) if m else None)
            out.archive.append(entry)
            thought = None
            continue
        if section == "error":
            error.append(line)
            continue
        if entry is not None:
            if line.startswith("Name:") and entry is out.proposal:
                entry.name = line[5:].strip()
            elif line.startswith("Thought:"):
                thought = [line[8:].strip()]
                entry.thought = thought[0]
            elif thought is not None:
                thought.append(line)
                entry.thought = "\n".join(thought).strip()
    out.error = "\n".join(error).strip()
    for e in [*out.archive, *([out.proposal] if out.proposal else [])]:
        e.workflow = lift(e.code) if e.code else None
    if out.proposal is not None and out.proposal.code and out.proposal.workflow is None:
        out.proposal.workflow = salvage_workflow(out.proposal.code)
    return out


def salvage_workflow(code: str) -> Workflow | None:
    """The WORKFLOW literal of code that may not parse as a whole (a syntax error elsewhere), read textually."""
    lines = code.splitlines()
    for i, line in enumerate(lines):
        if not re.match(r"WORKFLOW\s*=", line):
            continue
        text = line.split("=", 1)[1]
        for j in range(i, min(len(lines), i + 200)):
            if j > i:
                text += "\n" + lines[j]
            try:
                data = ast.literal_eval(text.strip())
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            try:
                return validate(data)
            except IRError:
                return None
    return None


# -- choosing and editing parents ------------------------------------------------------------------------------

def _weights(entries: list[Entry]) -> list[float]:
    known = [e.fitness for e in entries if e.fitness is not None]
    top = max(known, default=0.0)
    floor = min(known, default=0.0)
    return [math.exp(((e.fitness if e.fitness is not None else floor) - top) / PARENT_TEMPERATURE) + 0.01
            for e in entries]


def _pick(entries: list[Entry], rng: random.Random, exclude: Entry | None = None) -> Entry:
    pool = [e for e in entries if e is not exclude] or entries
    return rng.choices(pool, weights=_weights(pool))[0]


def _fitness_text(e: Entry) -> str:
    return f"fitness {e.fitness:.3f}" if e.fitness is not None else "not yet scored"


def _design(parents: list[Entry], taken: set[str], rng: random.Random) -> tuple[Workflow, str]:
    """A new workflow and the thought that explains it."""
    wf: Workflow | None = None
    thought = ""
    for _ in range(8):
        if not parents:
            wf = random_workflow(rng)
            thought = ("No agent in the archive carries a workflow I can build on, so I start from a fresh design "
                       f"that combines techniques: {wf.describe()}.")
        elif len(parents) >= 2 and rng.random() < CROSSOVER_RATE:
            a = _pick(parents, rng)
            b = _pick(parents, rng, exclude=a)
            assert a.workflow is not None and b.workflow is not None
            wf = crossover(a.workflow, b.workflow, rng)
            thought = (f"'{a.name}' ({_fitness_text(a)}) and '{b.name}' ({_fitness_text(b)}) each do something "
                       "right, so I combine their parts (role, step-back, producer, refiners, answer format).")
        else:
            p = _pick(parents, rng)
            assert p.workflow is not None
            wf, notes = mutate_described(p.workflow, rng)
            thought = (f"Building on '{p.name}' ({_fitness_text(p)}), one of the strongest designs so far, I "
                       f"{'; then I '.join(notes)}.")
        if wf.key() not in taken:
            break
    assert wf is not None
    thought += f" The agent runs {wf.describe()}, about {wf.expected_calls()} LLM calls per task."
    return wf, thought


def _unique_name(name: str, names: set[str]) -> str:
    if name not in names:
        return name
    k = 2
    while f"{name} (v{k})" in names:
        k += 1
    return f"{name} (v{k})"


# -- bugs ------------------------------------------------------------------------------------------------------

def inject_bug(code: str, rng: random.Random) -> tuple[str, str]:
    """One realistic bug inside `forward` (the WORKFLOW literal is left intact), and its kind."""
    kind = rng.choice(BUG_KINDS)
    lines = code.rstrip("\n").split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("def forward("))
    ret = max(i for i, line in enumerate(lines) if line.strip().startswith("return "))
    if kind == "syntax":  # a missing colon on a compound statement
        candidates = [i for i in range(start, len(lines)) if lines[i].rstrip().endswith(":")]
        i = rng.choice(candidates)
        lines[i] = lines[i].rstrip()[:-1]
    elif kind == "runtime":  # a misspelled helper or a name that was never assigned
        indent = lines[ret][: len(lines[ret]) - len(lines[ret].lstrip())]
        lines[ret] = indent + rng.choice(("return extract_answers(answer, kind)", "return final_answer"))
    elif kind == "import":
        lines.insert(start + 1, rng.choice(("    import os", "    import subprocess")))
    else:  # an infinite loop after the LLM calls, before returning
        indent = lines[ret][: len(lines[ret]) - len(lines[ret].lstrip())]
        lines[ret:ret] = [indent + "while True:", indent + "    pass"]
    return "\n".join(lines) + "\n", kind


def _finish(wf: Workflow, name: str, thought: str, rng: random.Random, bug_rate: float) -> dict[str, str]:
    code = render(wf, name, thought)
    if bug_rate > 0 and rng.random() < bug_rate:
        code, _kind = inject_bug(code, rng)
    return {"thought": thought, "name": name, "code": code}


# -- the three turns -------------------------------------------------------------------------------------------

def _new(parsed: ParsedPrompt, rng: random.Random, bug_rate: float) -> dict[str, str]:
    parents = [e for e in parsed.archive if e.workflow is not None]
    taken = {e.workflow.key() for e in parents if e.workflow is not None}
    wf, thought = _design(parents, taken, rng)
    name = _unique_name(default_name(wf), {e.name for e in parsed.archive})
    return _finish(wf, name, thought, rng, bug_rate)


def _reflect(parsed: ParsedPrompt, rng: random.Random, bug_rate: float) -> dict[str, str]:
    prop = parsed.proposal
    assert prop is not None
    taken = {e.workflow.key() for e in parsed.archive if e.workflow is not None}
    same = {"thought": prop.thought, "name": prop.name, "code": prop.code}
    wf = lift(prop.code)
    if wf is None:
        return same
    if wf.key() not in taken and rng.random() >= REFLECT_CHANGE_RATE:
        return same
    for _ in range(8):
        new, note = apply_move(wf, rng)
        if new.key() not in taken:
            break
    reason = "it duplicates an archived agent" if wf.key() in taken else "it can be sharper"
    thought = f"{prop.thought}\nOn reflection {reason}, so I {note}. Now: {new.describe()}."
    name = _unique_name(default_name(new), {e.name for e in parsed.archive})
    return _finish(new, name, thought, rng, bug_rate)


def _debug(parsed: ParsedPrompt, rng: random.Random, bug_rate: float) -> dict[str, str]:
    prop = parsed.proposal
    assert prop is not None
    same = {"thought": prop.thought, "name": prop.name, "code": prop.code}
    if rng.random() >= DEBUG_FIX_RATE:
        return same
    if prop.workflow is None:  # nothing to re-render: write a fresh agent instead
        return _new(parsed, rng, 0.0)
    first = parsed.error.splitlines()[0][:160] if parsed.error else "the reported error"
    thought = f"{prop.thought}\nFixed the error ({first}) by rewriting the code cleanly."
    return {"thought": thought, "name": prop.name or default_name(prop.workflow),
            "code": render(prop.workflow, prop.name or default_name(prop.workflow), thought)}


def propose(prompt: str, rng: random.Random, bug_rate: float) -> dict[str, str]:
    """The meta-agent's answer {"thought", "name", "code"} to a meta-agent prompt (new, reflection or debug turn)."""
    parsed = parse_prompt(prompt)
    if parsed.turn == "debug" and parsed.proposal is not None:
        return _debug(parsed, rng, bug_rate)
    if parsed.turn == "reflect" and parsed.proposal is not None:
        return _reflect(parsed, rng, bug_rate)
    return _new(parsed, rng, bug_rate)
