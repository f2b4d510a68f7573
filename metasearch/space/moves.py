"""Neighbourhood moves on workflows: how MCTS expands a node and how the simulated meta-agent edits a parent.

Every move works on the plain-data form of a workflow and returns a validated `Workflow` together with a
one-line description of what it changed (the simulated meta-agent turns these into its THOUGHT). All
randomness comes from the `random.Random` passed in, so results are reproducible for a given seed.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter

from metasearch.space.ir import (AUTO_ROLE, MAX_REFINERS, MODIFIERS, PRODUCERS, REFINERS, ROLES, IRError, Stage,
                                 Workflow, stage_label, validate)

Data = dict[str, Any]
Move = Callable[[Data, random.Random], "tuple[Data, str] | None"]

TEMPERATURES = tuple(round(0.1 * i, 1) for i in range(16))  # 0.0 .. 1.5
ROLE_CHOICES = ROLES + (AUTO_ROLE,)

#: Why a stage should help, in the meta-agent's words.
WHY = {
    "role": "a fitting persona focuses the model on the right kind of reasoning",
    "step_back": "abstracting the general principles first avoids getting lost in details",
    "generate": "a single focused call is cheap",
    "self_consistency": "several samples reconciled together cancel out random slips",
    "ensemble": "different personas make different mistakes, so combining them is more robust",
    "debate": "agents that see each other's answers correct each other, which pays off on hard questions",
    "self_refine": "revising the answer catches mistakes the first attempt made",
    "verify": "a separate check can overturn a wrong answer before it is returned",
}


# -- random stages ---------------------------------------------------------------------------------------------

def random_stage(op: str, rng: random.Random) -> Data:
    """A stage of the given op with random parameters within bounds."""
    if op == "role":
        return {"op": "role", "role": rng.choice(ROLE_CHOICES)}
    if op in ("step_back", "verify"):
        return {"op": op}
    if op == "generate":
        return {"op": "generate", "mode": rng.choice(("cot", "cot", "direct"))}
    if op == "self_consistency":
        diverse = rng.random() < 0.3
        return {"op": "self_consistency", "n": rng.randint(3, 7), "temperature": rng.choice(TEMPERATURES[4:13]),
                "aggregate": rng.choice(("majority", "select")), "mode": rng.choice(("cot", "cot", "direct")),
                "diverse": diverse}
    if op == "ensemble":
        return {"op": "ensemble", "roles": rng.sample(ROLES, rng.randint(2, 4)),
                "aggregate": rng.choice(("majority", "select")), "mode": rng.choice(("cot", "cot", "direct"))}
    if op == "debate":
        return {"op": "debate", "agents": rng.randint(2, 4), "rounds": rng.randint(1, 2),
                "aggregate": rng.choice(("majority", "select"))}
    if op == "self_refine":
        return {"op": "self_refine", "rounds": rng.randint(1, 3), "critic": rng.random() < 0.7}
    raise ValueError(f"unknown op {op!r}")


def random_workflow(rng: random.Random) -> Workflow:
    """A random valid workflow, biased toward small ones (as a designer would start)."""
    stages: list[Data] = []
    if rng.random() < 0.3:
        stages.append(random_stage("role", rng))
    if rng.random() < 0.25:
        stages.append(random_stage("step_back", rng))
    stages.append(random_stage(rng.choice(PRODUCERS), rng))
    n_refiners = rng.choices((0, 1, 2), weights=(0.5, 0.35, 0.15))[0]
    stages += [random_stage(rng.choice(REFINERS), rng) for _ in range(n_refiners)]
    return validate({"stages": stages, "answer_format": "json" if rng.random() < 0.25 else "plain"})


# -- structure helpers -----------------------------------------------------------------------------------------

def _split(d: Data) -> tuple[list[Data], Data, list[Data]]:
    stages = d["stages"]
    p = next(i for i, s in enumerate(stages) if s["op"] in PRODUCERS)
    return stages[:p], stages[p], stages[p + 1:]


def _join(mods: list[Data], producer: Data, refiners: list[Data], answer_format: str) -> Data:
    mods = sorted(mods, key=lambda s: MODIFIERS.index(s["op"]))
    return {"stages": [*mods, producer, *refiners], "answer_format": answer_format}


_STAGE: TypeAdapter[Any] = TypeAdapter(Stage)


def _label(stage: Data) -> str:
    return stage_label(_STAGE.validate_python(stage))


# -- the four move kinds ---------------------------------------------------------------------------------------

def add_operator(d: Data, rng: random.Random) -> tuple[Data, str] | None:
    """Add a modifier that is missing or a refiner (at a random position among the refiners)."""
    mods, producer, refiners = _split(d)
    present = {s["op"] for s in mods}
    options = [op for op in MODIFIERS if op not in present]
    if len(refiners) < MAX_REFINERS:
        options += list(REFINERS)
    if not options:
        return None
    op = rng.choice(options)
    stage = random_stage(op, rng)
    if op in MODIFIERS:
        mods = [*mods, stage]
    else:
        at = rng.randint(0, len(refiners))
        refiners = [*refiners[:at], stage, *refiners[at:]]
    return _join(mods, producer, refiners, d["answer_format"]), f"added {_label(stage)}: {WHY[op]}"


def remove_operator(d: Data, rng: random.Random) -> tuple[Data, str] | None:
    """Remove one modifier or refiner (the producer always stays)."""
    mods, producer, refiners = _split(d)
    removable = [("mod", i) for i in range(len(mods))] + [("ref", i) for i in range(len(refiners))]
    if not removable:
        return None
    where, i = rng.choice(removable)
    if where == "mod":
        gone = mods[i]
        mods = mods[:i] + mods[i + 1:]
    else:
        gone = refiners[i]
        refiners = refiners[:i] + refiners[i + 1:]
    return (_join(mods, producer, refiners, d["answer_format"]),
            f"removed {_label(gone)} to save calls and keep the context short")


def replace_operator(d: Data, rng: random.Random) -> tuple[Data, str] | None:
    """Swap one stage for a different operator of the same slot (producer for producer, refiner for refiner)."""
    mods, producer, refiners = _split(d)
    slots = ["producer"] + [f"ref{i}" for i in range(len(refiners))]
    if len(mods) == 1:
        slots.append("mod")
    slot = rng.choice(slots)
    if slot == "producer":
        new = random_stage(rng.choice([op for op in PRODUCERS if op != producer["op"]]), rng)
        old, producer = producer, new
    elif slot == "mod":
        old = mods[0]
        new = random_stage("step_back" if old["op"] == "role" else "role", rng)
        mods = [new]
    else:
        i = int(slot[3:])
        old = refiners[i]
        new = random_stage("verify" if old["op"] == "self_refine" else "self_refine", rng)
        refiners = [*refiners[:i], new, *refiners[i + 1:]]
    return (_join(mods, producer, refiners, d["answer_format"]),
            f"replaced {_label(old)} with {_label(new)}: {WHY[new['op']]}")


def _int_step(value: int, lo: int, hi: int, rng: random.Random) -> int:
    options = [v for v in (value - 2, value - 1, value + 1, value + 2) if lo <= v <= hi and v != value]
    return rng.choice(options)


def _changes(stage: Data, rng: random.Random) -> dict[str, Callable[[], Any]]:
    """For each tunable parameter of a stage, a function drawing a different in-bounds value."""
    op = stage["op"]
    out: dict[str, Callable[[], Any]] = {}
    if "mode" in stage:
        out["mode"] = lambda: "direct" if stage["mode"] == "cot" else "cot"
    if "aggregate" in stage:
        out["aggregate"] = lambda: "select" if stage["aggregate"] == "majority" else "majority"
    if op == "role":
        out["role"] = lambda: rng.choice([r for r in ROLE_CHOICES if r != stage["role"]])
    elif op == "self_consistency":
        out["n"] = lambda: _int_step(stage["n"], 1, 9, rng)
        out["temperature"] = lambda: rng.choice([t for t in TEMPERATURES if t != stage["temperature"]
                                                 and abs(t - stage["temperature"]) <= 0.31])
        out["diverse"] = lambda: not stage["diverse"]
    elif op == "ensemble":
        out["roles"] = lambda: _change_roles(stage["roles"], rng)
    elif op == "debate":
        out["agents"] = lambda: _int_step(stage["agents"], 2, 4, rng)
        out["rounds"] = lambda: _int_step(stage["rounds"], 1, 3, rng)
    elif op == "self_refine":
        out["rounds"] = lambda: _int_step(stage["rounds"], 1, 4, rng)
        out["critic"] = lambda: not stage["critic"]
    return out


def _change_roles(roles: list[str], rng: random.Random) -> list[str]:
    unused = [r for r in ROLES if r not in roles]
    options = ["swap"] + (["add"] if len(roles) < 4 else []) + (["drop"] if len(roles) > 2 else [])
    how = rng.choice(options)
    if how == "add":
        return [*roles, rng.choice(unused)]
    if how == "drop":
        i = rng.randrange(len(roles))
        return roles[:i] + roles[i + 1:]
    i = rng.randrange(len(roles))
    return [*roles[:i], rng.choice(unused), *roles[i + 1:]]


def change_parameter(d: Data, rng: random.Random) -> tuple[Data, str] | None:
    """Change one parameter of one stage (or the answer format) to a nearby in-bounds value."""
    d = copy.deepcopy(d)
    choices: list[tuple[int, str, Callable[[], Any]]] = []
    for i, stage in enumerate(d["stages"]):
        choices += [(i, name, fn) for name, fn in _changes(stage, rng).items()]
    if not choices or rng.random() < 0.15:  # the format is one global switch: flip it less often than a stage knob
        choices.append((-1, "answer_format", lambda: "json" if d["answer_format"] == "plain" else "plain"))
    i, name, draw = rng.choice(choices)
    value = draw()
    if i < 0:
        old, d["answer_format"] = d["answer_format"], value
        return d, f"switched the answer format from {old} to {value}"
    stage = d["stages"][i]
    old, stage[name] = stage[name], value
    return d, f"changed {stage['op']} {name} from {_show(old)} to {_show(value)}"


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


MOVES: dict[str, Move] = {"add": add_operator, "remove": remove_operator, "replace": replace_operator,
                          "change": change_parameter}
MOVE_WEIGHTS = {"add": 0.25, "remove": 0.15, "replace": 0.2, "change": 0.4}


def apply_move(wf: Workflow, rng: random.Random, kind: str | None = None) -> tuple[Workflow, str]:
    """One move (of `kind`, or drawn by MOVE_WEIGHTS among the applicable ones) and its description."""
    d = wf.to_dict()
    kinds = [kind] if kind else list(MOVES)
    while kinds:
        k = kinds[0] if kind else rng.choices(kinds, weights=[MOVE_WEIGHTS[x] for x in kinds])[0]
        out = MOVES[k](d, rng)
        if out is not None:
            return validate(out[0]), out[1]
        kinds.remove(k)
    raise IRError(f"no {kind or 'move'} applies to workflow {wf.describe()}")


def mutate_described(wf: Workflow, rng: random.Random, max_moves: int = 3) -> tuple[Workflow, list[str]]:
    """A different workflow by 1 move usually, sometimes 2-3 (a bigger jump), with what each move did."""
    size = rng.choices((1, 2, 3), weights=(0.75, 0.2, 0.05))[0]
    size = max(1, min(size, max_moves))
    for _ in range(20):
        current, notes = wf, []
        for _ in range(size):
            current, note = apply_move(current, rng)
            notes.append(note)
        if current.key() != wf.key():
            return current, notes
    return current, notes


def mutate(wf: Workflow, rng: random.Random) -> Workflow:
    """A nearby workflow different from `wf` (one move usually, sometimes a few)."""
    return mutate_described(wf, rng)[0]


def crossover(a: Workflow, b: Workflow, rng: random.Random) -> Workflow:
    """A child that takes each part (role, step-back, producer, refiners, answer format) from one parent.

    Prefers a child unlike both parents when the parents differ enough to allow one.
    """
    da, db = a.to_dict(), b.to_dict()
    ma, pa, ra = _split(da)
    mb, pb, rb = _split(db)
    child = a
    for _ in range(10):
        mods = []
        for op in MODIFIERS:
            source = ma if rng.random() < 0.5 else mb
            mods += [s for s in source if s["op"] == op]
        producer = pa if rng.random() < 0.5 else pb
        refiners = ra if rng.random() < 0.5 else rb
        fmt = da["answer_format"] if rng.random() < 0.5 else db["answer_format"]
        child = validate(_join(copy.deepcopy(mods), copy.deepcopy(producer), copy.deepcopy(refiners), fmt))
        if child.key() not in (a.key(), b.key()):
            return child
    return child


def neighbours(wf: Workflow, rng: random.Random, k: int) -> list[Workflow]:
    """Up to k distinct valid workflows one move away from `wf` (never `wf` itself), in generation order."""
    seen = {wf.key()}
    out: list[Workflow] = []
    for _ in range(max(1, k) * 30):
        if len(out) >= k:
            break
        child, _note = apply_move(wf, rng)
        if child.key() not in seen:
            seen.add(child.key())
            out.append(child)
    return out
