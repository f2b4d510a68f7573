"""Layer 1 of the sandbox: a static AST policy checked on the host before any worker sees the code.

It rejects what a candidate never needs and what the inner layers are known to handle badly (imports, names
and attributes starting with '_', frame walks, exec/eval/open..., 3-argument type(), format-string walks, huge
format widths, star-unpacking into displays), and checks the contract (a top-level `def forward(task, lm)`).
It is cheap and gives the meta-agent a precise reason ("line 3: import is not allowed (rule no-import)"),
but it is not trusted alone: layer 2 (RestrictedPython guards) and layer 3 (the worker process) still apply.
The rules and the builtin whitelist are data in `sandboxes/policy.toml`.
"""

from __future__ import annotations

import ast
import re
import string
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from metasearch import REPO_ROOT
from metasearch.ast_lock import parse_ast

POLICY_PATH = REPO_ROOT / "sandboxes" / "policy.toml"

_PRINTF_WIDTH = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\d*)(?:\.(\d+))?[a-zA-Z%]")
_SPEC_NUMBERS = re.compile(r"(\d+)")


@dataclass(frozen=True)
class Violation:
    """One broken rule: where, which rule id, and the message shown to the meta-agent."""

    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Policy:
    """The parsed `sandboxes/policy.toml`."""

    rules: dict[str, str]
    forbidden_names: frozenset[str]
    forbidden_attributes: frozenset[str]
    builtins: tuple[str, ...]
    max_code_chars: int
    max_format_width: int


def load_policy(path: str | Path | None = None) -> Policy:
    """Read a policy file (default: the repository's `sandboxes/policy.toml`)."""
    return _load(str(Path(path) if path else POLICY_PATH))


@lru_cache(maxsize=4)
def _load(path: str) -> Policy:
    data: dict[str, Any] = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    return Policy(
        rules=dict(data["rules"]),
        forbidden_names=frozenset(data["names"]["forbidden"]),
        forbidden_attributes=frozenset(data["attributes"]["forbidden"]),
        builtins=tuple(data["builtins"]["allowed"]),
        max_code_chars=int(data["limits"]["max_code_chars"]),
        max_format_width=int(data["limits"]["max_format_width"]),
    )


def check_policy(code: str, policy: Policy | None = None) -> list[Violation]:
    """All violations of the candidate policy in `code`, in line order; [] means it may go to a worker."""
    policy = policy or load_policy()
    if not isinstance(code, str):
        return [_violation(policy, 1, "syntax", "code is not text")]
    if len(code) > policy.max_code_chars:
        return [_violation(policy, 1, "too-large", f"{len(code)} characters, at most {policy.max_code_chars}")]
    try:
        tree = parse_ast(code)  # under the AST lock: evaluator threads check code concurrently
    except SyntaxError as err:
        return [_violation(policy, err.lineno or 1, "syntax", f"{err.msg}")]
    except (ValueError, RecursionError, MemoryError, OverflowError) as err:
        return [_violation(policy, 1, "syntax", f"{type(err).__name__}: {err}")]
    found = list(_Checker(policy).check(tree))
    found.extend(_check_contract(policy, tree))
    found.sort(key=lambda v: (v.line, v.rule))
    return found


def _violation(policy: Policy, line: int, rule: str, detail: str = "") -> Violation:
    text = policy.rules.get(rule, rule)
    if detail:
        text = f"{text}: {detail}"
    return Violation(line, rule, f"line {line}: {text} (rule {rule})")


def _check_contract(policy: Policy, tree: ast.Module) -> list[Violation]:
    """A top-level, non-async `def forward` callable with two positional arguments (task, lm)."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "forward":
            args = node.args
            positional = [*args.posonlyargs, *args.args]
            required = len(positional) - len(args.defaults)
            if (len(positional) >= 2 or args.vararg) and required <= 2 and all(
                    d is not None for d in args.kw_defaults):
                return []
            return [_violation(policy, node.lineno, "contract", "forward must accept (task, lm)")]
    return [_violation(policy, 1, "contract", "no top-level forward function")]


class _Checker:
    """One pass over every node (ast.walk is iterative, so deep nesting cannot overflow the host's stack)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def check(self, tree: ast.Module) -> Iterator[Violation]:
        one_arg_type_calls = {
            id(n.func) for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "type"
            and len(n.args) == 1 and not n.keywords and not isinstance(n.args[0], ast.Starred)
        }
        for node in ast.walk(tree):
            line = getattr(node, "lineno", 1)
            yield from self._node(node, line, one_arg_type_calls)

    def _v(self, line: int, rule: str, detail: str = "") -> Violation:
        return _violation(self.policy, line, rule, detail)

    def _node(self, node: ast.AST, line: int, one_arg_type_calls: set[int]) -> Iterator[Violation]:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield self._v(line, "no-import")
        elif isinstance(node, ast.Name):
            yield from self._name(node.id, line)
            if node.id == "type" and id(node) not in one_arg_type_calls:
                yield self._v(line, "no-type-call")
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("_"):
                yield self._v(line, "no-underscore-attribute", repr(node.attr))
            elif node.attr in self.policy.forbidden_attributes:
                yield self._v(line, "no-introspection", repr(node.attr))
        elif isinstance(node, (ast.FunctionDef, ast.Lambda)):
            if isinstance(node, ast.FunctionDef):
                yield from self._name(node.name, line)
            a = node.args
            for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]:
                if arg is not None:
                    yield from self._name(arg.arg, line)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            yield from self._name(node.name, line)
        elif isinstance(node, ast.keyword) and node.arg:
            yield from self._name(node.arg, line)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            for name in node.names:
                yield from self._name(name, line)
        elif isinstance(node, ast.ClassDef):
            yield self._v(line, "no-class")
        elif isinstance(node, (ast.AsyncFunctionDef, ast.Await, ast.AsyncFor, ast.AsyncWith)):
            yield self._v(line, "no-async")
        elif isinstance(node, ast.TryStar):
            yield self._v(line, "no-try-star")
        elif isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            if not isinstance(getattr(node, "ctx", None), ast.Store) and any(
                    isinstance(e, ast.Starred) for e in node.elts):
                yield self._v(line, "no-star-unpack", "build the sequence with list(...) or + instead")
        elif isinstance(node, ast.Dict) and any(k is None for k in node.keys):
            yield self._v(line, "no-star-unpack", "use dict(a, **b) or .update() instead")
        elif isinstance(node, ast.Call):
            yield from self._format_call(node, line)
        elif isinstance(node, ast.FormattedValue) and node.format_spec is not None:
            yield from self._format_spec(node.format_spec, line)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
            if isinstance(node.left, ast.Constant) and isinstance(node.left.value, str):
                yield from self._printf(node.left.value, line)

    def _name(self, name: str, line: int) -> Iterator[Violation]:
        if name.startswith("_") and name != "_":
            yield self._v(line, "no-underscore-name", repr(name))
        elif name in self.policy.forbidden_names:
            yield self._v(line, "no-forbidden-name", repr(name))

    def _format_call(self, node: ast.Call, line: int) -> Iterator[Violation]:
        """'...'.format(...) / .format_map(...) on a literal, and str.format('...', ...)."""
        func = node.func
        if not (isinstance(func, ast.Attribute) and func.attr in ("format", "format_map")):
            return
        template = func.value
        if isinstance(template, ast.Name) and template.id == "str" and node.args:
            template = node.args[0]
        if isinstance(template, ast.Constant) and isinstance(template.value, str):
            yield from self._template(template.value, line)

    def _template(self, text: str, line: int, depth: int = 0) -> Iterator[Violation]:
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError:
            return  # malformed: fails at runtime with a ValueError, harmlessly
        for _literal, field, spec, _conv in parsed:
            if field is not None and ("." in field or "[" in field):
                yield self._v(line, "no-format-walk", repr("{" + field + "}"))
            if spec:
                if "{" in spec and depth < 2:
                    yield from self._template(spec, line, depth + 1)
                yield from self._width(spec, line)

    def _format_spec(self, spec: ast.JoinedStr, line: int) -> Iterator[Violation]:
        for part in spec.values:
            if isinstance(part, ast.Constant) and isinstance(part.value, str):
                yield from self._width(part.value, line)

    def _width(self, spec: str, line: int) -> Iterator[Violation]:
        if any(len(n) > 9 or int(n) > self.policy.max_format_width for n in _SPEC_NUMBERS.findall(spec)):
            yield self._v(line, "no-huge-format-width", f"at most {self.policy.max_format_width}")

    def _printf(self, text: str, line: int) -> Iterator[Violation]:
        for width, precision in _PRINTF_WIDTH.findall(text):
            for n in (width, precision):
                if n and (len(n) > 9 or int(n) > self.policy.max_format_width):
                    yield self._v(line, "no-huge-format-width", f"at most {self.policy.max_format_width}")
                    return
