"""Resource limits of one sandboxed task, and how a worker process applies them to itself.

The limits travel to the worker on its command line and are set by the worker on itself before it reads any
code (not with `preexec_fn`, which is unsafe in a host with threads). Candidate code can never raise them back:
hard limits are lowered too, and nothing in the sandbox reaches the `resource` module.
"""

from __future__ import annotations

import math
import resource
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from metasearch.config import EvaluatorConfig


@dataclass(frozen=True)
class Limits:
    """Per-task limits. CPU and wall clock are per task even though a pool worker serves many tasks.

    `wall_timeout_s` counts the time the worker itself runs; time the host spends answering `lm` requests is
    bounded by the endpoint timeout and the budget instead, so slow LLMs do not time out good candidates.
    `max_lm_calls` and `max_prompt_chars` bound abuse of the `lm` proxy.
    """

    cpu_seconds: int = 10
    memory_mb: int = 512
    wall_timeout_s: float = 60.0
    max_output_bytes: int = 65536
    max_open_files: int = 64
    max_lm_calls: int = 1000
    max_prompt_chars: int = 200_000

    def __post_init__(self) -> None:
        if self.cpu_seconds < 1 or self.memory_mb < 64 or self.wall_timeout_s <= 0:
            raise ValueError("limits: cpu_seconds >= 1, memory_mb >= 64 and wall_timeout_s > 0 are required")
        if self.max_output_bytes < 1 or self.max_open_files < 8 or self.max_lm_calls < 0:
            raise ValueError("limits: max_output_bytes >= 1, max_open_files >= 8, max_lm_calls >= 0 are required")

    @classmethod
    def from_config(cls, evaluator_cfg: "EvaluatorConfig") -> "Limits":
        """The limits an `[evaluator]` config section asks for."""
        return cls(cpu_seconds=evaluator_cfg.cpu_seconds, memory_mb=evaluator_cfg.memory_mb,
                   wall_timeout_s=evaluator_cfg.wall_timeout_s, max_output_bytes=evaluator_cfg.max_output_bytes)

    def to_argv(self) -> list[str]:
        """Command-line form, parsed back by `from_argv` in the worker."""
        return [f"--{k.replace('_', '-')}={v}" for k, v in asdict(self).items()]

    @classmethod
    def from_argv(cls, argv: list[str]) -> "Limits":
        kinds = {"wall_timeout_s": float}
        values: dict[str, float | int] = {}
        for arg in argv:
            if arg.startswith("--") and "=" in arg:
                key, raw = arg[2:].split("=", 1)
                key = key.replace("-", "_")
                if key in cls.__dataclass_fields__:
                    values[key] = kinds.get(key, int)(raw)
        return cls(**values)  # type: ignore[arg-type]


def _set(which: int, soft: int, hard: int | None = None) -> None:
    """Set a limit, never above the current hard limit (an unprivileged process cannot raise it)."""
    cur_soft, cur_hard = resource.getrlimit(which)
    hard = soft if hard is None else hard
    if cur_hard != resource.RLIM_INFINITY:
        hard = cur_hard if hard == resource.RLIM_INFINITY else min(hard, cur_hard)
        soft = min(soft, hard) if soft != resource.RLIM_INFINITY else hard
    resource.setrlimit(which, (soft, hard))


def apply_static_limits(limits: Limits) -> None:
    """Address space, open files, file size 0 (no file can be written) and no core dumps, soft = hard."""
    _set(resource.RLIMIT_AS, limits.memory_mb * 1024 * 1024)
    _set(resource.RLIMIT_NOFILE, limits.max_open_files)
    _set(resource.RLIMIT_FSIZE, 0)
    _set(resource.RLIMIT_CORE, 0)


def forbid_fork() -> None:
    """RLIMIT_NPROC 0: fork/clone fail. Only effective for a non-root uid, so call it after dropping root."""
    _set(resource.RLIMIT_NPROC, 0)


def cpu_used() -> float:
    """CPU seconds this process has used so far (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def arm_cpu_limit(seconds: int, *, one_shot: bool = False) -> None:
    """Give the next task `seconds` of CPU: the soft RLIMIT_CPU becomes used + seconds (SIGXCPU kills then).

    A pool worker keeps its hard limit open so the next task can be armed again; a one-shot process gets
    hard = soft + 1 so that even ignoring SIGXCPU ends in SIGKILL.
    """
    soft = math.ceil(cpu_used()) + seconds
    _set(resource.RLIMIT_CPU, soft, soft + 1 if one_shot else resource.RLIM_INFINITY)
