"""`metasearch suites ls` and `metasearch suites show`."""

import json

import typer
from typer.testing import CliRunner

from metasearch.cli import suites_cmd


def make_app():
    app = typer.Typer()
    suites_cmd.register(app)

    @app.callback()
    def _root() -> None:
        """test root"""

    return app


runner = CliRunner()


def test_ls_lists_suites():
    result = runner.invoke(make_app(), ["suites", "ls"])
    assert result.exit_code == 0, result.output
    assert "builtin:arith" in result.output and "humaneval" in result.output and "5000" in result.output


def test_ls_json():
    result = runner.invoke(make_app(), ["suites", "ls", "--json"])
    rows = json.loads(result.output)
    assert {"name", "description", "kinds", "size"} <= set(rows[0])


def test_show_hides_gold_unless_asked():
    hidden = runner.invoke(make_app(), ["suites", "show", "builtin:arith", "--n", "2"])
    assert hidden.exit_code == 0, hidden.output
    assert "arith-00001" in hidden.output and "arith-00002" in hidden.output and "arith-00003" not in hidden.output
    assert "answer:" not in hidden.output
    shown = runner.invoke(make_app(), ["suites", "show", "builtin:arith", "--n", "1", "--answers"])
    assert "answer: 231" in shown.output


def test_show_json_without_and_with_answers():
    data = json.loads(runner.invoke(make_app(), ["suites", "show", "humaneval", "--n", "1", "--json"]).output)
    assert data["name"] == "humaneval" and data["size"] == 164
    assert "answer" not in data["examples"][0] and "tests" not in data["examples"][0]["meta"]
    data = json.loads(runner.invoke(make_app(), ["suites", "show", "builtin:arith", "--n", "1", "--json",
                                                 "--answers"]).output)
    assert data["examples"][0]["answer"] == "231"


def test_main_cli_turns_bad_suite_into_exit_2(capsys, monkeypatch):
    import pytest

    from metasearch import cli

    monkeypatch.setattr("sys.argv", ["metasearch", "suites", "show", "jsonl:/nonexistent/x.jsonl"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 2
    assert "x.jsonl: task file not found" in capsys.readouterr().err
