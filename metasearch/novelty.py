"""Novelty: reject a proposal whose normalised code matches an archived candidate before paying to evaluate it.

Normalisation parses the code and prints it back without docstrings, comments, NAME/THOUGHT and formatting, so
a copy that only renames the agent or reflows whitespace is recognised (ShinkaEvolve does this with embeddings;
an AST is enough offline and costs nothing).
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache

_IGNORED = {"NAME", "THOUGHT"}


def _strip(tree: ast.Module) -> ast.Module:
    body = []
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue
        if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) and t.id in _IGNORED for t in node.targets):
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                node.body = node.body[1:] or [ast.Pass()]
        body.append(node)
    tree.body = body
    return tree


def normalized_code(code: str) -> str | None:
    """Canonical text of the code's behaviour-bearing parts; None when it does not parse."""
    try:
        return ast.unparse(_strip(ast.parse(code)))
    except (SyntaxError, ValueError, RecursionError):
        return None


@lru_cache(maxsize=65536)
def fingerprint(code: str) -> str:
    """sha256 of the normalised code (of the raw text when it does not parse)."""
    norm = normalized_code(code)
    return hashlib.sha256((norm if norm is not None else code).encode()).hexdigest()


def nearest_parents(code: str, candidates: list[dict], k: int = 2, threshold: float = 0.5) -> list[int]:
    """Ids of the archived candidates whose normalised code is most similar to `code` (lineage for proposals
    whose author does not say what it started from, as with a meta-agent that sees the whole archive)."""
    import difflib

    target = normalized_code(code) or code
    scored = []
    for c in candidates:
        other = normalized_code(c["code"]) or c["code"]
        ratio = difflib.SequenceMatcher(None, target, other, autojunk=False).ratio()
        if ratio >= threshold:
            scored.append((-ratio, c["id"]))
    return [cid for _, cid in sorted(scored)[:k]]
