"""The `metasearch` command: every command module is present and registered; usage errors exit 2."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from metasearch.cli import COMMAND_MODULES

COMMANDS = ["run", "resume", "eval", "export", "promote", "tune", "report", "config", "archive", "sim", "suites",
            "local"]


@pytest.mark.parametrize("name", COMMAND_MODULES)
def test_every_command_module_exists_and_registers(name: str) -> None:
    module = importlib.import_module(f"metasearch.cli.{name}")
    assert callable(module.register)


def test_help_lists_every_command() -> None:
    res = subprocess.run([sys.executable, "-m", "metasearch", "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0
    for command in COMMANDS:
        assert f" {command} " in res.stdout, command


def test_unknown_command_is_a_usage_error() -> None:
    res = subprocess.run([sys.executable, "-m", "metasearch", "frobnicate"], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 2 and "Traceback" not in res.stderr
