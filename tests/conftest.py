"""Shared fixtures: small search configs on the simulated LLM, a simulated HTTP server on 127.0.0.1."""

from __future__ import annotations

import json

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from metasearch.config import SearchConfig, parse_config


def small_config(tmp_path: Path, **overrides: Any) -> SearchConfig:
    """A search that runs in seconds: few tasks, few seeds, local sandbox pool (no Ray)."""
    data: dict[str, Any] = {
        "name": "small", "seed": 0, "archive": str(tmp_path / "archive.db"),
        "budget": {"iterations": 3},
        "suite": {"source": "builtin:arith", "val": 20, "test": 30},
        "strategy": {"name": "meta", "seeds": ["cot", "cot_sc", "debate"], "meta": {"dry_run_tasks": 2}},
        "evaluator": {"use_ray": False, "actors": 1, "tasks_in_flight": 4, "cascade_first": 10, "top_k_final": 2,
                      "wall_timeout_s": 20, "cpu_seconds": 5},
    }
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return parse_config(data, "<test>")


@pytest.fixture
def sim_server() -> Iterator[str]:
    """The simulated LLM served over HTTP on a free loopback port; yields its base URL."""
    from metasearch.llm.server import start_in_thread

    base_url, stop = start_in_thread(profile="default", suites=("builtin:arith",))
    try:
        yield base_url
    finally:
        stop()


def _to_toml(data: dict[str, Any], prefix: str = "") -> str:
    scalars, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            scalars.append(f"{key} = {json.dumps(value)}")
    lines = ([f"[{prefix}]"] if prefix and scalars else []) + scalars
    for key, value in tables:
        lines.append(_to_toml(value, f"{prefix}.{key}" if prefix else key))
    return "\n".join(lines) + "\n"


def write_config(cfg: SearchConfig, path: Path) -> Path:
    """Write a config as a TOML file (for tests that drive the `metasearch` command)."""
    path.write_text(_to_toml(cfg.model_dump(mode="json", exclude_none=True)))
    return path
