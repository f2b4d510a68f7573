"""Layer 2 of the sandbox: RestrictedPython compilation and the guarded globals a candidate runs with.

Runs only inside the worker process. Measured facts this module is built on (RestrictedPython 9.0): the stock
`default_guarded_getattr` is plain getattr and lets '{0.__class__.__mro__}'.format(1) through, so attribute
access goes through `guarded_getattr` below (no '_' names, no frame/code attributes, str.format only with
plain fields, a missing attribute raises); module objects are never exposed (`json.codecs.open` and
`re.enum.sys.modules` were escapes), only plain functions; the candidate sees no `__builtins__` module, only a
whitelisted dict.
"""

from __future__ import annotations

import hashlib
import operator
import string
import types
from collections import OrderedDict
from typing import Any, Callable

from RestrictedPython import compile_restricted_exec
from RestrictedPython.Guards import full_write_guard, guarded_iter_unpack_sequence, guarded_unpack_sequence
from RestrictedPython.PrintCollector import PrintCollector

from metasearch.tasks import helpers as _helpers

FILENAME = "<candidate>"

_INSPECT_ATTRIBUTES: frozenset[str] = frozenset()


class CompileError(Exception):
    """RestrictedPython refused the code (its own checks, independent of the host's layer 1)."""


class OutputLimitExceeded(BaseException):
    """Raised inside the candidate when its prints pass the output cap (a BaseException, and also recorded)."""


class CodeCache:
    """Compiled candidates keyed by sha256 of their source: a worker runs one candidate on many tasks."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._items: OrderedDict[str, types.CodeType] = OrderedDict()

    def get(self, code: str) -> types.CodeType:
        key = hashlib.sha256(code.encode("utf-8", "surrogatepass")).hexdigest()
        hit = self._items.get(key)
        if hit is not None:
            self._items.move_to_end(key)
            return hit
        result = compile_restricted_exec(code, filename=FILENAME)
        if result.errors or result.code is None:
            raise CompileError("; ".join(result.errors) or "RestrictedPython refused the code")
        self._items[key] = result.code
        if len(self._items) > self._size:
            self._items.popitem(last=False)
        return result.code


def set_forbidden_attributes(names: frozenset[str]) -> None:
    """The frame/code/traceback attribute names from the policy file (set once at worker start)."""
    global _INSPECT_ATTRIBUTES
    _INSPECT_ATTRIBUTES = names


def _check_template(text: str, depth: int = 0) -> None:
    """Reject '{0.attr}' and '{0[key]}' fields (also nested in specs) before str.format runs them."""
    for _literal, field, spec, _conv in string.Formatter().parse(text):
        if field is not None and ("." in field or "[" in field):
            raise ValueError(f"format field {{{field}}} walks attributes or indexes, which is not allowed")
        if spec and "{" in spec:
            if depth >= 2:
                raise ValueError("format specs nested too deeply")
            _check_template(spec, depth + 1)


def _safe_format_method(template: str, name: str) -> Callable[..., str]:
    _check_template(template)
    method = getattr(template, name)

    def format_checked(*args: Any, **kwargs: Any) -> str:
        return method(*args, **kwargs)

    return format_checked


def guarded_getattr(obj: Any, name: Any, default: Any = None) -> Any:
    """`_getattr_` for candidate code: public, non-introspective attributes only; missing ones raise.

    `default` is ignored on purpose (RestrictedPython's `safer_getattr` returns None for a missing attribute,
    which hides bugs and differs from Python).
    """
    if type(name) is not str:
        raise TypeError("attribute name must be a str")
    if name.startswith("_") or name in _INSPECT_ATTRIBUTES:
        raise AttributeError(f"attribute {name!r} is not allowed in the sandbox")
    if name in ("format", "format_map"):
        if isinstance(obj, str):
            return _safe_format_method(obj, name)
        if isinstance(obj, type) and issubclass(obj, str):
            raise AttributeError(f"str.{name} is not allowed in the sandbox; call it on the string")
    if isinstance(obj, types.ModuleType):
        raise AttributeError("modules are not reachable from the sandbox")
    return getattr(obj, name)


def guarded_getitem(obj: Any, key: Any) -> Any:
    if isinstance(obj, types.ModuleType):
        raise TypeError("modules are not reachable from the sandbox")
    return obj[key]


_INPLACE: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow, "<<=": operator.ilshift,
    ">>=": operator.irshift, "&=": operator.iand, "|=": operator.ior, "^=": operator.ixor,
    "@=": operator.imatmul,
}


def inplacevar(op: str, x: Any, y: Any) -> Any:
    return _INPLACE[op](x, y)


def apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return func(*args, **kwargs)


def safe_type(obj: Any) -> type:
    """type(x) with one argument, never handing out a metaclass (type(type(x)) would build classes)."""
    result = type(obj)
    if issubclass(result, type):
        raise TypeError("type() of a class is not available in the sandbox")
    return result


class OutputMeter:
    """Shared cap on everything a task prints; a flood sets `exceeded` and stops the candidate."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0
        self.exceeded = False

    def collector(self, _getattr_: Any = None) -> PrintCollector:
        meter = self

        class CappedPrintCollector(PrintCollector):
            def write(self, text: str) -> None:
                meter.used += len(text)
                if meter.used > meter.max_bytes or meter.exceeded:
                    meter.exceeded = True
                    raise OutputLimitExceeded(f"printed more than {meter.max_bytes} bytes")
                self.txt.append(text)

        return CappedPrintCollector(_getattr_)


def _wrapped_helpers() -> dict[str, Callable[..., Any]]:
    """The answer helpers as plain closures: no module object and no helper internals reach the candidate."""
    extract = _helpers.extract_answer
    vote = _helpers.majority_vote

    def extract_answer(text: Any, kind: Any = "math") -> str:
        """The final answer in a model's reply, by task kind ('math', 'qa', 'mc', 'code')."""
        return extract(text, kind)

    def majority_vote(answers: Any) -> str:
        """The most common answer, compared normalised; ties go to the earliest."""
        return vote(answers)

    return {"extract_answer": extract_answer, "majority_vote": majority_vote}


def build_globals(builtin_names: tuple[str, ...], meter: OutputMeter) -> dict[str, Any]:
    """Fresh globals for one task: whitelisted builtins, RestrictedPython's guard hooks, the helpers."""
    import builtins

    safe_builtins: dict[str, Any] = {}
    for name in builtin_names:
        if name in ("None", "True", "False"):
            safe_builtins[name] = {"None": None, "True": True, "False": False}[name]
        elif name == "type":
            safe_builtins[name] = safe_type
        else:
            safe_builtins[name] = getattr(builtins, name)
    safe_builtins["type"] = safe_type
    return {
        "__builtins__": safe_builtins,
        "__name__": "candidate",
        "__metaclass__": None,
        "_getattr_": guarded_getattr,
        "_getitem_": guarded_getitem,
        "_getiter_": iter,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_write_": full_write_guard,
        "_inplacevar_": inplacevar,
        "_apply_": apply,
        "_print_": meter.collector,
        **_wrapped_helpers(),
    }
