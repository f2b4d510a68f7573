"""Read a candidate's workflow back from its source, and describe code that has none, without executing it.

Candidate code is hostile: everything here is `ast.parse` plus `ast.literal_eval`, never `exec`.
"""

from __future__ import annotations

import ast
from typing import Any

from metasearch.space.ir import IRError, Workflow, validate

WORKFLOW_NAME = "WORKFLOW"


def workflow_literal(code: str) -> Any | None:
    """The value of the last top-level `WORKFLOW = <literal>` (plain data), or None when absent or not a literal."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):  # ValueError: source with NUL bytes
        return None
    found: Any = None
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == WORKFLOW_NAME for t in targets):
            try:
                found = ast.literal_eval(value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                found = None
    return found


def lift(code: str) -> Workflow | None:
    """The candidate's workflow IR from its top-level WORKFLOW literal; None when absent or invalid."""
    data = workflow_literal(code)
    if data is None:
        return None
    try:
        return validate(data)
    except IRError:
        return None


_COMPOUND = (ast.For, ast.AsyncFor, ast.While, ast.If, ast.With, ast.AsyncWith, ast.Try, ast.FunctionDef,
             ast.AsyncFunctionDef, ast.ClassDef, ast.Match) + ((ast.TryStar,) if hasattr(ast, "TryStar") else ())

FEATURE_NAMES = ("parse_ok", "lines", "ask_calls", "ask_json_calls", "wrapper_calls", "lm_calls_in_loops", "n_max",
                 "n_sum", "loops", "while_loops", "comprehensions", "branches", "functions", "max_nesting",
                 "string_chars", "string_max", "temperature_max", "uses_majority_vote", "uses_extract_answer",
                 "has_workflow")


def _nesting(node: ast.AST, depth: int = 0) -> int:
    best = depth
    for child in ast.iter_child_nodes(node):
        best = max(best, _nesting(child, depth + 1 if isinstance(child, _COMPOUND) else depth))
    return best


def _lm_wrappers(tree: ast.AST) -> set[str]:
    """Names of local functions that (directly or through each other) call the lm: calling them is an LLM call."""
    funcs = {n.name: n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, fn in funcs.items():
            if name not in found and any(_lm_call(sub, found) for sub in ast.walk(fn)):
                found.add(name)
                changed = True
    return found


def _lm_call(node: ast.AST, wrappers: set[str]) -> bool:
    if _lm_method(node) is not None:
        return True
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in wrappers


def _loop_calls(tree: ast.AST, wrappers: set[str]) -> int:
    """LLM call sites (lm methods or local wrappers of them) inside a loop or comprehension: they run many times."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.For, ast.AsyncFor, ast.While, ast.ListComp, ast.SetComp, ast.DictComp,
                             ast.GeneratorExp)):
            for sub in ast.walk(node):
                if _lm_call(sub, wrappers):
                    inside.add(id(sub))
    return len(inside)


def _lm_method(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("ask", "ask_json"):
        return node.func.attr
    return None


def _number(node: ast.AST) -> float | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    return None


def code_features(code: str) -> dict[str, float]:
    """AST statistics of candidate code, for the value model when there is no IR (all keys always present)."""
    feats = {name: 0.0 for name in FEATURE_NAMES}
    feats["lines"] = float(sum(1 for line in code.splitlines() if line.strip() and not line.strip().startswith("#")))
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return feats
    feats["parse_ok"] = 1.0
    feats["has_workflow"] = 1.0 if lift(code) is not None else 0.0
    feats["max_nesting"] = float(_nesting(tree))
    wrappers = _lm_wrappers(tree)
    feats["lm_calls_in_loops"] = float(_loop_calls(tree, wrappers))
    strings: list[int] = []
    for node in ast.walk(tree):
        method = _lm_method(node)
        if method is not None:
            feats["ask_calls" if method == "ask" else "ask_json_calls"] += 1
            for kw in node.keywords:  # type: ignore[attr-defined]
                value = _number(kw.value)
                if value is None:
                    continue
                if kw.arg == "n":
                    feats["n_max"] = max(feats["n_max"], value)
                    feats["n_sum"] += value
                elif kw.arg == "temperature":
                    feats["temperature_max"] = max(feats["temperature_max"], value)
        elif isinstance(node, ast.Call) and _lm_call(node, wrappers):
            feats["wrapper_calls"] += 1
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            feats["loops"] += 1
        elif isinstance(node, ast.While):
            feats["loops"] += 1
            feats["while_loops"] += 1
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            feats["comprehensions"] += 1
        elif isinstance(node, (ast.If, ast.IfExp)):
            feats["branches"] += 1
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            feats["functions"] += 1
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            strings.append(len(node.value))
        elif isinstance(node, ast.Name) and node.id in ("majority_vote", "extract_answer"):
            feats["uses_" + node.id] = 1.0
    feats["string_chars"] = float(sum(strings))
    feats["string_max"] = float(max(strings, default=0))
    return feats
