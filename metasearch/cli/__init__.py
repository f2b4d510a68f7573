"""The `metasearch` command: a thin typer app. Each command group lives in its own module and registers here.

User errors (bad config, task file, endpoint, archive) print one line and exit 2; never a traceback.
"""

from __future__ import annotations

import importlib
import sys

import typer

from metasearch.errors import UserError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Search for better LLM agents: a meta-agent writes candidates, a sandboxed evaluator scores them.")

# Command modules, each exposing `register(app)`. A module that is missing is skipped so the CLI stays usable
# while parts are built; the test suite checks that every one of them is present.
COMMAND_MODULES = ["config_cmd", "archive_cmd", "sim_cmd", "suites_cmd", "eval_cmd", "run_cmd", "export_cmd",
                   "tune_cmd", "report_cmd", "local_cmd"]


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"metasearch.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"metasearch.cli.{name}":
                continue
            raise
        module.register(app)


_register_all()


def fail(message: str) -> "typer.Exit":
    """Print a one-line error on stderr and return the exit to raise (code 2)."""
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(code=2)


def main() -> None:
    """Console entry point: run the app, turning UserError into one line and exit code 2."""
    try:
        app(standalone_mode=False)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except typer.Exit as err:
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as err:  # click's usage errors (typer vendors click, so match by behaviour, not class)
        show, code = getattr(err, "show", None), getattr(err, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()
            sys.exit(code)
        if type(err).__name__ == "Abort":
            sys.exit(1)
        raise
