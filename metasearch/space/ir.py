"""The typed workflow IR: what an agent does, as data, so search can edit it and models can read it.

A workflow is a short pipeline of stages with a fixed grammar:

    modifiers (role, step_back; each at most once, in that order)
    one producer (generate | self_consistency | ensemble | debate)
    refiners (self_refine | verify; at most MAX_REFINERS)

plus a workflow-wide `answer_format` (plain text with an "Answer:" line, or JSON fields via `lm.ask_json`).
Parallel work and its aggregation live inside the producers (samples, role branches, debate agents), so the
grammar stays linear and every edit of it is easy to keep valid. The eight ADAS seed agents are all points of
this space (see `SEED_WORKFLOWS`), and so are their combinations.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from metasearch.errors import UserError

#: Personas a role stage or an ensemble branch may take ("auto": a routing call picks one of these per task).
ROLES: tuple[str, ...] = (
    "a careful mathematician",
    "a meticulous teacher",
    "a skeptical reviewer",
    "a creative problem solver",
    "a domain expert",
    "a competitive programmer",
)
AUTO_ROLE = "auto"
MAX_REFINERS = 3

Mode = Literal["direct", "cot"]
Aggregate = Literal["majority", "select"]
RoleName = Literal[
    "a careful mathematician", "a meticulous teacher", "a skeptical reviewer",
    "a creative problem solver", "a domain expert", "a competitive programmer",
]
RoleOrAuto = Literal[
    "a careful mathematician", "a meticulous teacher", "a skeptical reviewer",
    "a creative problem solver", "a domain expert", "a competitive programmer", "auto",
]


class IRError(UserError):
    """A workflow literal does not fit the IR: the message names the field and the bound it breaks."""


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Role(_Op):
    """Every later call runs with the system message "You are <role>."; `auto` routes each task to a role."""

    op: Literal["role"] = "role"
    role: RoleOrAuto = "a careful mathematician"


class StepBack(_Op):
    """One call first asks for the general principles behind the question; producers then see them."""

    op: Literal["step_back"] = "step_back"


class Generate(_Op):
    """One answer from one call, directly or with step-by-step reasoning."""

    op: Literal["generate"] = "generate"
    mode: Mode = "cot"


class SelfConsistency(_Op):
    """n sampled answers, aggregated by vote or by an LLM selection call.

    `diverse`: samples are drawn one after another, each asked for an approach unlike the earlier ones
    (Quality-Diversity); otherwise they are independent samples of one prompt (CoT-SC).
    """

    op: Literal["self_consistency"] = "self_consistency"
    n: int = Field(5, ge=1, le=9)
    temperature: float = Field(0.8, ge=0.0, le=1.5)
    aggregate: Aggregate = "majority"
    mode: Mode = "cot"
    diverse: bool = False

    @field_validator("temperature")
    @classmethod
    def _round_temperature(cls, v: float) -> float:
        return round(float(v), 2)


class Ensemble(_Op):
    """One answer per persona, aggregated by vote or by an LLM selection call (MultiPersona)."""

    op: Literal["ensemble"] = "ensemble"
    roles: list[RoleName] = Field(default_factory=lambda: list(ROLES[:3]), min_length=2, max_length=4)
    aggregate: Aggregate = "majority"
    mode: Mode = "cot"

    @field_validator("roles")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("roles must be distinct")
        return v


class Debate(_Op):
    """`agents` answer independently, then for `rounds` rounds each sees the others' answers and updates."""

    op: Literal["debate"] = "debate"
    agents: int = Field(3, ge=2, le=4)
    rounds: int = Field(1, ge=1, le=3)
    aggregate: Aggregate = "select"


class SelfRefine(_Op):
    """Up to `rounds` of improvement.

    With `critic`, a separate critique call (JSON: feedback and a verdict) feeds each refine call and refinement
    stops once the critic judges the answer correct; without, the model is told to improve its answer blindly.
    """

    op: Literal["self_refine"] = "self_refine"
    rounds: int = Field(2, ge=1, le=4)
    critic: bool = True


class Verify(_Op):
    """A verification call that checks the current answer and may overturn it."""

    op: Literal["verify"] = "verify"


Stage = Annotated[Union[Role, StepBack, Generate, SelfConsistency, Ensemble, Debate, SelfRefine, Verify],
                  Field(discriminator="op")]

MODIFIERS = ("role", "step_back")
PRODUCERS = ("generate", "self_consistency", "ensemble", "debate")
REFINERS = ("self_refine", "verify")
OPS = MODIFIERS + PRODUCERS + REFINERS


class Workflow(BaseModel):
    """A validated workflow. Build it with `validate(dict)`; it is immutable, so edits go through dicts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stages: list[Stage] = Field(min_length=1)
    answer_format: Literal["plain", "json"] = "plain"

    @model_validator(mode="after")
    def _grammar(self) -> "Workflow":
        ops = [s.op for s in self.stages]
        for name in MODIFIERS:
            if ops.count(name) > 1:
                raise ValueError(f"at most one {name} stage (got {ops.count(name)})")
        producers = [i for i, op in enumerate(ops) if op in PRODUCERS]
        if len(producers) != 1:
            raise ValueError(f"exactly one producer stage ({'|'.join(PRODUCERS)}) is required (got {len(producers)})")
        p = producers[0]
        modifiers, refiners = ops[:p], ops[p + 1:]
        if any(op not in MODIFIERS for op in modifiers):
            raise ValueError(f"stages before the producer must be {'|'.join(MODIFIERS)} (got {modifiers})")
        if modifiers != sorted(modifiers, key=MODIFIERS.index):
            raise ValueError("role must come before step_back")
        if any(op not in REFINERS for op in refiners):
            raise ValueError(f"stages after the producer must be {'|'.join(REFINERS)} (got {refiners})")
        if len(refiners) > MAX_REFINERS:
            raise ValueError(f"at most {MAX_REFINERS} refiner stages (got {len(refiners)})")
        return self

    # -- views -------------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The canonical plain-data form (every field spelled out), the literal a rendered candidate carries."""
        return self.model_dump(mode="json")

    def key(self) -> str:
        """A stable identity: sha256 of the canonical JSON (same on every machine and process)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def ops(self) -> list[str]:
        return [s.op for s in self.stages]

    def producer(self) -> Generate | SelfConsistency | Ensemble | Debate:
        return next(s for s in self.stages if s.op in PRODUCERS)  # type: ignore[return-value]

    def role(self) -> str | None:
        return next((s.role for s in self.stages if isinstance(s, Role)), None)

    def expected_calls(self) -> int:
        """LLM completions per task (a request with n samples counts n): what the task costs, before tokens.

        An upper bound where a critic may stop refinement early (it accepts the answer)."""
        return sum(stage_calls(s) for s in self.stages)

    def describe(self) -> str:
        """One human-readable line, e.g. 'role(auto) -> CoT-SC(n=5, T=0.8, vote) -> refine(2, critic) [json]'."""
        text = " -> ".join(stage_label(s) for s in self.stages)
        return text + (" [json]" if self.answer_format == "json" else "")


def stage_calls(s: Any) -> int:
    """LLM completions one stage makes per task."""
    select = 1 if getattr(s, "aggregate", None) == "select" else 0
    if isinstance(s, Role):
        return 1 if s.role == AUTO_ROLE else 0
    if isinstance(s, (StepBack, Generate, Verify)):
        return 1
    if isinstance(s, SelfConsistency):
        return s.n + select
    if isinstance(s, Ensemble):
        return len(s.roles) + select
    if isinstance(s, Debate):
        return s.agents * (1 + s.rounds) + select
    if isinstance(s, SelfRefine):
        return s.rounds * (2 if s.critic else 1)
    raise TypeError(f"unknown stage {s!r}")


def stage_label(s: Any) -> str:
    """A short human label of one stage."""
    if isinstance(s, Role):
        return f"role({s.role})"
    if isinstance(s, StepBack):
        return "step-back"
    if isinstance(s, Generate):
        return "CoT" if s.mode == "cot" else "direct"
    if isinstance(s, SelfConsistency):
        agg = "vote" if s.aggregate == "majority" else "select"
        name = ("QD" if s.diverse else "SC") if s.mode == "direct" else ("CoT-QD" if s.diverse else "CoT-SC")
        return f"{name}(n={s.n}, T={s.temperature:g}, {agg})"
    if isinstance(s, Ensemble):
        agg = "vote" if s.aggregate == "majority" else "select"
        return f"{'CoT-' if s.mode == 'cot' else ''}ensemble({len(s.roles)} roles, {agg})"
    if isinstance(s, Debate):
        agg = "vote" if s.aggregate == "majority" else "select"
        return f"debate({s.agents} agents, {s.rounds} round{'s' if s.rounds > 1 else ''}, {agg})"
    if isinstance(s, SelfRefine):
        return f"refine({s.rounds}x, {'critic' if s.critic else 'blind'})"
    if isinstance(s, Verify):
        return "verify"
    raise TypeError(f"unknown stage {s!r}")


def _format_error(err: ValidationError) -> str:
    first = err.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in first["loc"]) or "stages"
    msg = first["msg"].removeprefix("Value error, ")
    extra = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    got = first.get("input")
    shown = "" if isinstance(got, (dict, list)) or first["type"] == "missing" else f", got {got!r}"
    return f"invalid workflow: {loc}: {msg}{shown}{extra}"


def validate(data: Any) -> Workflow:
    """A `Workflow` from plain data (e.g. a candidate's WORKFLOW literal); `IRError` names the broken field."""
    if isinstance(data, Workflow):
        return data
    if not isinstance(data, dict):
        raise IRError(f"invalid workflow: expected a dict, got {type(data).__name__}")
    try:
        return Workflow.model_validate(data)
    except ValidationError as err:
        raise IRError(_format_error(err)) from None


#: The seed agents of `archive/` (ADAS's seeds plus direct answering) as IR, keyed by file stem. Each seed file
#: carries the same literal as its WORKFLOW; IR is an approximation where a seed has details the grammar lacks
#: (Self-Refine's early stop after 5 rounds at most becomes 4 fixed rounds; debate personas are not modelled).
SEED_WORKFLOWS: dict[str, dict[str, Any]] = {
    "direct": {"stages": [{"op": "generate", "mode": "direct"}]},
    "cot": {"stages": [{"op": "generate", "mode": "cot"}], "answer_format": "json"},
    "cot_sc": {"stages": [{"op": "self_consistency", "n": 5, "temperature": 0.8, "aggregate": "majority"}]},
    "self_refine": {"stages": [{"op": "generate", "mode": "cot"}, {"op": "self_refine", "rounds": 4, "critic": True}],
                    "answer_format": "json"},
    "debate": {"stages": [{"op": "debate", "agents": 3, "rounds": 1, "aggregate": "select"}]},
    "step_back": {"stages": [{"op": "step_back"}, {"op": "generate", "mode": "cot"}], "answer_format": "json"},
    "quality_diversity": {"stages": [{"op": "self_consistency", "n": 3, "temperature": 0.8, "aggregate": "select",
                                      "diverse": True}]},
    "role_assignment": {"stages": [{"op": "role", "role": "auto"}, {"op": "generate", "mode": "cot"}]},
}
