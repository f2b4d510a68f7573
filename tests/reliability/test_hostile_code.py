"""Hostile code beyond the hand-written corpus: every payload of sandboxes/corpus.toml mutated (identifiers
renamed, strings split or built from chr(), dunder attributes reached through getattr with a built name, builtins
aliased, the attack nested in lambdas, comprehensions, generators and inner functions), run with all layers and
with the host's AST policy off; none escapes (the escape criteria of tests/test_sandbox_corpus.py). Then
property-based tests: random text, random mutations of the seed agents and random expression trees, run through
a SandboxPool, always give a SandboxResult and never change the host.
"""

from __future__ import annotations

import ast
import hashlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from metasearch.sandbox import Limits, SandboxPool, SandboxResult
from metasearch.seeds import load_seeds
from reliability.conftest import Figures
from test_sandbox_corpus import NORMAL, PAYLOADS, SECRET, assert_no_escape, host_state, lm_handler, payload_code

KINDS = {"policy", "syntax", "contract", "runtime", "timeout", "memory", "output", "crash", "lm"}
LIMITS = Limits(cpu_seconds=2, memory_mb=256, wall_timeout_s=5.0, max_lm_calls=50)
KEEP = frozenset({"forward", "task", "lm", "NAME", "THOUGHT"})
DANGEROUS = ("getattr", "setattr", "type", "__import__", "open", "eval", "exec", "compile", "vars", "globals",
             "locals", "dir", "print", "super", "object", "memoryview", "breakpoint", "input", "iter", "next")


# ------------------------------------------------------------------------------------------------ mutations

def _bound_names(tree: ast.AST) -> set[str]:
    """Names the payload itself binds (variables, parameters, helpers), never the builtins it attacks with."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names - KEEP


class _Rename(ast.NodeTransformer):
    def __init__(self, names: set[str]) -> None:
        self.new = {n: f"v{hashlib.sha256(n.encode()).hexdigest()[:8]}" for n in names}

    def visit_Name(self, node: ast.Name) -> ast.AST:
        node.id = self.new.get(node.id, node.id)
        return node

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.arg = self.new.get(node.arg, node.arg)
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.name = self.new.get(node.name, node.name)
        self.generic_visit(node)
        return node


def _strings(build: Callable[[str], ast.expr]) -> type[ast.NodeTransformer]:
    class Strings(ast.NodeTransformer):
        def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
            return node  # f-string parts must stay literal

        def visit_Constant(self, node: ast.Constant) -> ast.AST:
            if isinstance(node.value, str) and 2 <= len(node.value) <= 200:
                return ast.copy_location(build(node.value), node)
            return node

    return Strings


def _split(text: str) -> ast.expr:
    half = len(text) // 2
    return ast.BinOp(ast.Constant(text[:half]), ast.Add(), ast.Constant(text[half:]))


def _from_chr(text: str) -> ast.expr:
    chars = [ast.Call(ast.Name("chr", ast.Load()), [ast.Constant(ord(c))], []) for c in text]
    return ast.Call(ast.Attribute(ast.Constant(""), "join", ast.Load()), [ast.List(chars, ast.Load())], [])


class _GetattrDunders(ast.NodeTransformer):
    """`x.__class__` -> `getattr(x, "__cl" + "ass__")`: the attribute name never appears whole."""

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        self.generic_visit(node)
        if node.attr.startswith("_") and isinstance(node.ctx, ast.Load):
            return ast.copy_location(ast.Call(ast.Name("getattr", ast.Load()), [node.value, _split(node.attr)], []),
                                     node)
        return node


def _forward(tree: ast.Module) -> ast.FunctionDef | None:
    return next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "forward"), None)


class _WrapReturns(ast.NodeTransformer):
    def __init__(self, wrap: Callable[[ast.expr], ast.expr]) -> None:
        self.wrap = wrap

    def visit_Return(self, node: ast.Return) -> ast.AST:
        if node.value is not None:
            node.value = self.wrap(node.value)
        return node


def _in_lambda(e: ast.expr) -> ast.expr:
    return ast.Call(ast.Lambda(ast.arguments([], [], None, [], [], None, []), e), [], [])


def _in_listcomp(e: ast.expr) -> ast.expr:
    comp = ast.ListComp(e, [ast.comprehension(ast.Name("q_", ast.Store()), ast.List([ast.Constant(0)], ast.Load()),
                                              [], 0)])
    return ast.Subscript(comp, ast.Constant(0), ast.Load())


def _in_generator(e: ast.expr) -> ast.expr:
    gen = ast.GeneratorExp(e, [ast.comprehension(ast.Name("q_", ast.Store()), ast.Tuple([ast.Constant(0)], ast.Load()),
                                                 [], 0)])
    return ast.Subscript(ast.Call(ast.Name("list", ast.Load()), [gen], []), ast.Constant(0), ast.Load())


def _inner_function(tree: ast.Module) -> None:
    """forward's body moves into a nested function called with the same arguments."""
    fn = _forward(tree)
    if fn is None:
        return
    inner = ast.FunctionDef(name="inner_", args=fn.args, body=fn.body, decorator_list=[], returns=None)
    call = ast.Call(ast.Name("inner_", ast.Load()), [ast.Name(a.arg, ast.Load()) for a in fn.args.args], [])
    fn.body = [inner, ast.Return(call)]


def _alias_builtins(tree: ast.Module) -> None:
    """`getattr` -> an alias bound at the top of forward (`b_getattr = getattr`)."""
    fn = _forward(tree)
    used = sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in DANGEROUS})
    if fn is None or not used:
        return

    class Alias(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.AST:
            return ast.Name(f"b_{node.id}", node.ctx) if node.id in used else node

    Alias().visit(tree)
    fn.body = [ast.Assign([ast.Name(f"b_{n}", ast.Store())], ast.Name(n, ast.Load())) for n in used] + fn.body


def _transform(tree: ast.Module, name: str) -> None:
    if name == "rename":
        _Rename(_bound_names(tree)).visit(tree)
    elif name == "split_strings":
        _strings(_split)().visit(tree)
    elif name == "chr_strings":
        _strings(_from_chr)().visit(tree)
    elif name == "getattr_dunders":
        _GetattrDunders().visit(tree)
    elif name == "in_lambda":
        _WrapReturns(_in_lambda).visit(tree)
    elif name == "in_listcomp":
        _WrapReturns(_in_listcomp).visit(tree)
    elif name == "in_generator":
        _WrapReturns(_in_generator).visit(tree)
    elif name == "inner_function":
        _inner_function(tree)
    elif name == "alias_builtins":
        _alias_builtins(tree)
    else:
        raise ValueError(name)


MUTATIONS = ("rename", "split_strings", "chr_strings", "getattr_dunders", "in_lambda", "in_listcomp", "in_generator",
             "inner_function", "alias_builtins", "rename+split_strings+in_lambda", "getattr_dunders+chr_strings",
             "inner_function+alias_builtins+in_generator")


def mutate(code: str, mutation: str) -> str | None:
    """The payload with the mutation applied (steps joined by '+'), or None when it does not apply."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    for step in mutation.split("+"):
        _transform(tree, step)
    ast.fix_missing_locations(tree)
    try:
        out = ast.unparse(tree) + "\n"
    except (RecursionError, ValueError):
        return None
    return None if ast.dump(ast.parse(out)) == ast.dump(ast.parse(code)) else out


def _slow(p: dict[str, Any]) -> bool:
    """Resource payloads test limits, not escapes: their mutants would only wait for the same limits again."""
    limits = {"timeout", "memory"} & (set(p["expect"]) | set(p["inner"]))
    return p["category"] == "resource" or bool(limits) or "append" in p


def mutants() -> list[tuple[str, str, str]]:
    """(payload name, mutation, code), deduplicated by code."""
    out, seen = [], set()
    for p in PAYLOADS:
        if _slow(p):
            continue
        for m in MUTATIONS:
            code = mutate(payload_code(p), m)
            if code is not None and code not in seen:
                seen.add(code)
                out.append((p["name"], m, code))
    return out


MUTANTS = mutants()


# ------------------------------------------------------------------------------------------------ fixtures

from test_sandbox_corpus import canary_dir  # noqa: E402,F401  (the same canary fixture as the corpus test)


@pytest.fixture(scope="module")
def task(canary_dir: Path) -> dict[str, Any]:
    from test_sandbox_corpus import GOLD

    return {"id": "t-1", "question": "What is 6 + 6?", "kind": "math", "answer": GOLD,
            "meta": {"answer": GOLD, "difficulty": 0.3, "canary": str(canary_dir / "canary.txt"), "source": "x"}}


@pytest.fixture(scope="module")
def secret_env() -> Iterator[None]:
    saved = os.environ.get("METASEARCH_SANDBOX_CANARY")
    os.environ["METASEARCH_SANDBOX_CANARY"] = SECRET
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("METASEARCH_SANDBOX_CANARY", None)
        else:
            os.environ["METASEARCH_SANDBOX_CANARY"] = saved


def run_mutants(enforce_policy: bool, task: dict[str, Any]) -> dict[str, Any]:
    with SandboxPool(2, LIMITS, enforce_policy=enforce_policy) as pool:
        pool.run(NORMAL, task, lm_handler)
        before = host_state()
        with ThreadPoolExecutor(4) as ex:
            results = list(ex.map(lambda m: pool.run(m[2], task, lm_handler), MUTANTS))
        normal = pool.run(NORMAL, task, lm_handler)
        after = host_state()
    return {"results": results, "normal": normal, "before": before, "after": after}


@pytest.fixture(scope="module")
def mutant_runs(task: dict[str, Any], secret_env: None) -> dict[bool, dict[str, Any]]:
    return {flag: run_mutants(flag, task) for flag in (True, False)}


# ------------------------------------------------------------------------------------------------ mutants

def test_the_mutation_engine_covers_the_corpus() -> None:
    used = {m for _, m, _ in MUTANTS}
    assert used == set(MUTATIONS)
    assert len({name for name, _, _ in MUTANTS}) >= 50
    assert len(MUTANTS) >= 300
    code = mutate('def forward(task, lm):\n    x = task.__class__\n    return "ESC" + str(x)\n',
                  "rename+getattr_dunders+chr_strings+in_lambda")
    assert code is not None and "__class__" not in code and "ESC" not in code and "lambda" in code
    assert "x =" not in code and "v" in code


@pytest.mark.parametrize("enforce_policy", [True, False], ids=["all_layers", "policy_off"])
def test_no_mutated_payload_escapes(enforce_policy: bool, mutant_runs: dict[bool, dict[str, Any]],
                                    canary_dir: Path, figures: Figures) -> None:
    run = mutant_runs[enforce_policy]
    escaped = []
    for (name, mutation, _), result in zip(MUTANTS, run["results"]):
        assert isinstance(result, SandboxResult)
        assert result.ok or result.error_kind in KINDS, (name, mutation, result)
        try:
            assert_no_escape({"name": f"{name}/{mutation}"}, result, canary_dir)
        except AssertionError as err:
            escaped.append(str(err))
    assert escaped == []
    assert run["after"]["pid"] == run["before"]["pid"] and run["after"]["cwd"] == run["before"]["cwd"]
    assert run["after"]["env"] == run["before"]["env"]
    assert run["after"]["modules"] - run["before"]["modules"] == set()
    assert run["normal"].ok and run["normal"].answer == "reply/12", run["normal"]
    lane = "all_layers" if enforce_policy else "policy_off"
    figures.add("hostile", f"mutants_tried.{lane}", len(MUTANTS))
    figures.add("hostile", f"mutants_blocked.{lane}", len(MUTANTS) - len(escaped))
    stopped_by_policy = sum(1 for r in run["results"] if r.error_kind == "policy")
    figures.add("hostile", f"stopped_by_policy.{lane}", stopped_by_policy)


def test_obfuscation_gets_past_layer_one_only_where_layer_two_is_designed_to_stop_it(
        mutant_runs: dict[bool, dict[str, Any]], figures: Figures) -> None:
    """Layer 1 is static: a mutant of a payload it stops is stopped too, except format strings built at run time
    (a split or chr()-built '{0.__class__}'), which the restricted layer's format guard stops inside the worker."""
    category = {p["name"]: p["category"] for p in PAYLOADS}
    stopped = {p["name"] for p in PAYLOADS if p["layer"] == "policy"}
    slipped = [(name, mutation, r) for (name, mutation, _), r in zip(MUTANTS, mutant_runs[True]["results"])
               if name in stopped and r.error_kind not in ("policy", "syntax", "contract")]
    assert {category[name] for name, _, _ in slipped} <= {"format"}, [(n, m) for n, m, _ in slipped]
    assert all(not r.ok and r.error_kind == "runtime" and "not allowed" in (r.error or "") for _, _, r in slipped)
    figures.add("hostile", "past_layer_one_stopped_by_layer_two", len(slipped))


# ------------------------------------------------------------------------------------------------ properties

@pytest.fixture(scope="module")
def pool(secret_env: None) -> Iterator[SandboxPool]:
    with SandboxPool(2, Limits(cpu_seconds=1, memory_mb=256, wall_timeout_s=3.0, max_lm_calls=20)) as p:
        yield p


def check_run(pool: SandboxPool, code: str, task: dict[str, Any], canary_dir: Path) -> SandboxResult:
    before = host_state()
    result = pool.run(code, task, lm_handler)
    assert isinstance(result, SandboxResult)
    assert result.ok or result.error_kind in KINDS, result
    assert (result.answer is None or isinstance(result.answer, str)) and isinstance(result.elapsed_s, float)
    assert_no_escape({"name": "random"}, result, canary_dir)
    after = host_state()
    assert (after["pid"], after["cwd"], after["env"]) == (before["pid"], before["cwd"], before["env"])
    return result


PROPERTY = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@PROPERTY
@given(code=st.text(max_size=300))
@example(code="\x00")
@example(code="\ud800")
@example(code="def forward(task, lm):\n    return '\ud800'\n")
@example(code="(" * 5000)
@example(code="def forward(task, lm):\n    return " + "[" * 200 + "]" * 200 + "\n")
@example(code="\ufeffdef forward(task, lm):\n    return 1\n")
def test_random_text_never_crashes_the_host(code: str, pool: SandboxPool, task: dict[str, Any], canary_dir: Path,
                                            figures: Figures) -> None:
    check_run(pool, code, task, canary_dir)
    figures.add("hostile", "random_programs")


SEEDS = [s.code for s in load_seeds(["all"])]


@st.composite
def seed_mutations(draw: st.DrawFn) -> str:
    """A seed agent with a few random edits: deletions, duplications, and insertions of hostile fragments."""
    code = draw(st.sampled_from(SEEDS))
    fragments = st.sampled_from(["__", ".__class__", "getattr(", "import os\n", "lm", "task.meta", "(", ")", ":",
                                 "\n    ", "while True:\n        pass\n", "yield ", "lambda: ", "{0.__class__}", "*",
                                 "**9**9", "[x for x in ", "raise SystemExit\n", "exec(", "'", '"""'])
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(code)))
        j = draw(st.integers(i, min(len(code), i + 40)))
        op = draw(st.sampled_from(["delete", "duplicate", "insert"]))
        if op == "delete":
            code = code[:i] + code[j:]
        elif op == "duplicate":
            code = code[:j] + code[i:j] + code[j:]
        else:
            code = code[:i] + draw(fragments) + code[i:]
    return code


@PROPERTY
@given(code=seed_mutations())
def test_random_mutations_of_seed_agents_never_crash_the_host(code: str, pool: SandboxPool, task: dict[str, Any],
                                                              canary_dir: Path, figures: Figures) -> None:
    check_run(pool, code, task, canary_dir)
    figures.add("hostile", "random_programs")


NAMES = st.sampled_from(["task", "lm", "x", "task.question", "task.meta", "lm.ask", "extract_answer",
                         "majority_vote", *DANGEROUS])
ATTRS = st.sampled_from(["question", "meta", "ask", "ask_json", "__class__", "__dict__", "__globals__", "__mro__",
                         "__subclasses__", "__builtins__", "__code__", "gi_frame", "f_back", "format", "join",
                         "mro", "keys", "items"])
CONSTANTS = st.one_of(st.integers(-3, 3).map(str), st.sampled_from(
    ["'x'", "'{0.__class__}'", "'__import__'", "'os'", "'/etc/hostname'", "''", "None", "True", "()", "[]", "{}"]))


def _expressions() -> st.SearchStrategy[str]:
    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(inner, ATTRS).map(lambda t: f"({t[0]}).{t[1]}"),
            st.tuples(inner, st.lists(inner, max_size=2)).map(lambda t: f"({t[0]})({', '.join(t[1])})"),
            st.tuples(inner, inner).map(lambda t: f"({t[0]})[{t[1]}]"),
            st.tuples(inner, st.sampled_from(["+", "*", "%", "and", "or", "==", "if 1 else"]), inner)
            .map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            inner.map(lambda e: f"(lambda: {e})()"),
            inner.map(lambda e: f"[{e} for q in range(2)]"),
            inner.map(lambda e: f"list({e} for q in (0,))"),
            inner.map(lambda e: f"f'{{{e}}}'"),
            inner.map(lambda e: f"'{{0}}'.format({e})"),
        )

    return st.recursive(st.one_of(NAMES, CONSTANTS), extend, max_leaves=8)


@PROPERTY
@given(expr=_expressions())
def test_random_expression_trees_never_crash_the_host(expr: str, pool: SandboxPool, task: dict[str, Any],
                                                      canary_dir: Path, figures: Figures) -> None:
    code = f"def forward(task, lm):\n    x = task.question\n    return str({expr})\n"
    check_run(pool, code, task, canary_dir)
    figures.add("hostile", "random_programs")


def test_the_pool_still_serves_after_the_properties(pool: SandboxPool, task: dict[str, Any]) -> None:
    result = pool.run(NORMAL, task, lm_handler)
    assert result.ok and result.answer == "reply/12", result
    assert len(pool.worker_pids()) == 2


def test_mutants_are_reproducible() -> None:
    """The generated corpus is a pure function of corpus.toml (no randomness): failures can be replayed."""
    assert mutants() == MUTANTS
