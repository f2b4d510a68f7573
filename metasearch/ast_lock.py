"""One lock around host-side `ast.parse`/`compile` calls made from several threads.

CPython 3.11 can raise "AST constructor recursion depth mismatch" when several threads build ASTs at once
(python/cpython#106905); the evaluator's threads check candidate code concurrently, so they serialise here.
"""

from __future__ import annotations

import ast
import threading

AST_LOCK = threading.RLock()


def parse_ast(source: str, filename: str = "<candidate>") -> ast.Module:
    """`ast.parse` under the process-wide AST lock."""
    with AST_LOCK:
        return ast.parse(source, filename=filename)
