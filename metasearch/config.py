"""The search config: pydantic models loaded from one TOML file.

One source of truth for defaults (AFlow's README, CLI and paper disagreed on theirs): every default lives
here, `metasearch config example` prints them, and the CLI never restates them.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from metasearch.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EndpointConfig(_Strict):
    """An OpenAI-compatible endpoint. `sim://PROFILE` is the in-process simulated LLM (no server, no key)."""

    base_url: str = "sim://default"
    model: str = "sim-default"
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = Field(64, ge=1, le=4096)
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(5, ge=0, le=50)
    price_prompt_per_1k: float = Field(0.00015, ge=0)
    price_completion_per_1k: float = Field(0.0006, ge=0)
    cache: bool = True
    native_n: bool = True  # False for servers that ignore `n` (llama.cpp): n samples become n single calls

    def api_key(self) -> str:
        """The key from the environment; simulated and local endpoints accept any key."""
        return os.environ.get(self.api_key_env) or "sk-no-key"


class BudgetConfig(_Strict):
    """When to stop. 0 means unlimited; the search stops at the first limit reached."""

    iterations: int = Field(20, ge=0)
    tokens: int = Field(0, ge=0)
    dollars: float = Field(0.0, ge=0)


class SuiteConfig(_Strict):
    """Where tasks come from: `builtin:arith`, `gym:NAME[,NAME...]`, `jsonl:PATH`, or `humaneval`."""

    source: str = "builtin:arith"
    val: int = Field(100, ge=1)
    test: int = Field(200, ge=1)
    seed: int = 0


class MetaConfig(_Strict):
    """Meta Agent Search (ADAS) parameters."""

    reflections: int = Field(2, ge=0, le=5)
    debug_rounds: int = Field(3, ge=0, le=10)
    archive_in_prompt: int = Field(12, ge=1)
    temperature: float = Field(0.8, ge=0, le=2)
    dry_run_tasks: int = Field(3, ge=0)


class MCTSConfig(_Strict):
    """Value-pruned MCTS over the workflow space (AFlow / AgentSwift)."""

    children: int = Field(8, ge=1, le=64)
    evaluate_top: int = Field(1, ge=1)
    use_value_model: bool = True
    acquisition: Literal["ucb", "ei_per_token", "mean"] = "ei_per_token"
    ucb_c: float = Field(1.0, ge=0)
    selection: Literal["uct", "soft_mix"] = "soft_mix"
    alpha: float = Field(0.4, ge=0)
    lam: float = Field(0.2, ge=0, le=1)
    top_k: int = Field(4, ge=1)
    meta_share: float = Field(0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _consistent(self) -> "MCTSConfig":
        if self.use_value_model and self.evaluate_top > self.children:
            raise ValueError(f"evaluate_top ({self.evaluate_top}) is more than children ({self.children}): the "
                             f"value model cannot pick more children than are proposed")
        return self


class StrategyConfig(_Strict):
    name: Literal["meta", "mcts", "random"] = "meta"
    seeds: list[str] = Field(default_factory=lambda: ["all"])
    meta: MetaConfig = Field(default_factory=MetaConfig)
    mcts: MCTSConfig = Field(default_factory=MCTSConfig)


class EvaluatorConfig(_Strict):
    """How candidates run: Ray actors hosting sandbox worker processes."""

    use_ray: bool = True
    actors: int = Field(2, ge=1)
    tasks_in_flight: int = Field(16, ge=1, description="per actor")
    cpu_seconds: int = Field(10, ge=1)
    memory_mb: int = Field(512, ge=64)
    wall_timeout_s: float = Field(60.0, gt=0)
    max_output_bytes: int = Field(65536, ge=1024)
    cascade: bool = True
    cascade_first: int = Field(25, ge=1)
    top_k_final: int = Field(3, ge=1)


class SearchConfig(_Strict):
    """A whole search job."""

    name: str = "search"
    seed: int = 0
    archive: str = "runs/metasearch.db"
    endpoint: EndpointConfig = Field(default_factory=EndpointConfig)
    meta_endpoint: EndpointConfig | None = None
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    suite: SuiteConfig = Field(default_factory=SuiteConfig)
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    evaluator: EvaluatorConfig = Field(default_factory=EvaluatorConfig)

    @model_validator(mode="after")
    def _consistent(self) -> "SearchConfig":
        if self.evaluator.cascade and self.evaluator.cascade_first > self.suite.val:
            self.evaluator.cascade_first = self.suite.val
        return self

    @property
    def meta(self) -> EndpointConfig:
        """The meta-agent's endpoint: its own if given, else the agents' endpoint."""
        return self.meta_endpoint or self.endpoint


def _describe(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif first["type"] == "value_error" and "error" in first.get("ctx", {}):
        msg = str(first["ctx"]["error"])  # our own validators' sentence, without pydantic's "Value error, "
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{source}: {loc}: {msg}{more}"


def parse_config(data: dict[str, Any], source: str = "<config>") -> SearchConfig:
    """Validate a config mapping; a bad field raises ConfigError naming the field and the source."""
    try:
        return SearchConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_describe(err, source)) from None


def load_config(path: str | Path) -> SearchConfig:
    """Load a TOML config file. Relative paths inside it stay relative to the working directory."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    return parse_config(data, str(path))


EXAMPLE_CONFIG = """\
# metasearch search config (TOML). Every key is optional; shown values are the defaults.
name = "search"                  # run name shown in the archive
seed = 0                         # same config + seed on the simulated LLM => same archive
archive = "runs/metasearch.db"   # one SQLite file holds every run, candidate and evaluation

[endpoint]                       # the LLM that runs candidate agents
base_url = "sim://default"       # sim://PROFILE = in-process simulated LLM; or http://host:port/v1 (OpenAI, vLLM, llama.cpp...)
model = "sim-default"
api_key_env = "OPENAI_API_KEY"   # the key is read from this environment variable, never from the file
concurrency = 64                 # max LLM calls in flight, shared by the whole search
timeout_s = 60.0                 # per call
max_retries = 5                  # on 429/5xx/timeouts/malformed replies, with backoff and jitter
price_prompt_per_1k = 0.00015    # dollars per 1,000 prompt tokens
price_completion_per_1k = 0.0006
cache = true                     # SQLite response cache in the archive: reruns cost nothing
native_n = true                  # false if the server ignores n > 1 (llama.cpp): n single calls instead

# [meta_endpoint]                # optional: a different model for the meta-agent (same keys as [endpoint])

[budget]                         # 0 = unlimited; the first limit reached stops the run cleanly
iterations = 20
tokens = 0
dollars = 0.0

[suite]
source = "builtin:arith"         # builtin:arith | gym:basic_arithmetic,leg_counting | jsonl:tasks.jsonl | humaneval
val = 100                        # tasks used during the search
test = 200                       # held-out tasks for the final report
seed = 0

[strategy]
name = "meta"                    # meta (ADAS) | mcts (value-pruned MCTS) | random (baseline)
seeds = ["all"]                  # seed agents from archive/ by file stem, or "all"

[strategy.meta]
reflections = 2                  # self-reflection rounds on each proposal
debug_rounds = 3                 # rounds that feed a dry-run error back to the meta-agent
archive_in_prompt = 12           # best and diverse archive entries shown to the meta-agent
temperature = 0.8
dry_run_tasks = 3

[strategy.mcts]
children = 8                     # proposals per expansion
evaluate_top = 1                 # how many of them are really evaluated
use_value_model = true
acquisition = "ei_per_token"     # ucb | ei_per_token | mean
ucb_c = 1.0
selection = "soft_mix"           # uct | soft_mix (AFlow: lambda/n + (1-lambda) softmax(alpha (s - s_max)))
alpha = 0.4
lam = 0.2
top_k = 4
meta_share = 0.0                 # share of children asked from the meta-agent instead of grammar moves

[evaluator]
use_ray = true                   # false = evaluate in this process's sandbox pool (still sandboxed)
actors = 2
tasks_in_flight = 16             # per actor
cpu_seconds = 10                 # per task, in the sandbox worker
memory_mb = 512
wall_timeout_s = 60.0
max_output_bytes = 65536
cascade = true                   # stop candidates early that cannot beat the incumbent
cascade_first = 25
top_k_final = 3                  # re-evaluated on the test split at the end
"""
