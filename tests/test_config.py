"""Config: defaults are the example, bad fields give one line naming the field and the file, exit code 2."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from metasearch.config import EXAMPLE_CONFIG, SearchConfig, load_config, parse_config
from metasearch.errors import ConfigError


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "metasearch", *args], capture_output=True, text=True, timeout=120)


def test_example_config_is_exactly_the_defaults() -> None:
    assert parse_config(tomllib.loads(EXAMPLE_CONFIG)) == SearchConfig()


@pytest.mark.parametrize("text, field", [
    ("[endpoint]\nconcurrency = 'many'\n", "endpoint.concurrency"),
    ("[budget]\niterations = -1\n", "budget.iterations"),
    ("[strategy]\nname = 'genetic'\n", "strategy.name"),
    ("colour = 'blue'\n", "colour"),
    ("[evaluator]\nmemory_mb = 1\n", "evaluator.memory_mb"),
])
def test_bad_field_is_named_with_the_file(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message and field in message and "\n" not in message


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[endpoint\nmodel = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)


def test_cli_check_exit_codes(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text("name = 'x'\n[budget]\niterations = 3\n")
    ok = run_cli("config", "check", str(good))
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[endpoint]\ntimeout_s = 'soon'\n")
    res = run_cli("config", "check", str(bad))
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "endpoint.timeout_s" in lines[0] and "Traceback" not in res.stderr


def test_cli_example_round_trips(tmp_path: Path) -> None:
    res = run_cli("config", "example")
    assert res.returncode == 0
    path = tmp_path / "example.toml"
    path.write_text(res.stdout)
    assert load_config(path) == SearchConfig()
