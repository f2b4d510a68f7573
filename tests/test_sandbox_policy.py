"""Layer 1 (the host's AST policy), the limits record, and the layer-2 guards as plain functions.

No candidate code is executed here: the guards are called directly with ordinary objects.
"""

from __future__ import annotations

import pytest

from metasearch.config import EvaluatorConfig
from metasearch.sandbox import Limits, Violation, check_policy
from metasearch.sandbox.policy import load_policy

GOOD = '''
NAME = "Self-Consistency with Chain-of-Thought"
THOUGHT = "Sample several reasoning paths and vote."

def forward(task, lm):
    system = "You are a careful solver."
    prompt = f"{task.question}\\nLet's think step by step. Width {len(task.question):>5}."
    replies = lm.ask(prompt, system=system, temperature=0.8, n=5)
    answers = [extract_answer(r, task.kind) for r in replies]
    best = majority_vote(answers)
    result = lm.ask_json("Verify {} for {q}".format(best, q=task.question), fields={"answer": "final"})
    counts = {}
    for a in answers:
        counts[a] = counts.get(a, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    first, *rest = ranked
    try:
        total = sum(v for _, v in ranked)
    except (TypeError, ValueError) as err:
        total = 0
    kind = type(best).__name__ if False else "str"
    return result.get("answer", best) if isinstance(result, dict) else "%s (%d)" % (best, total)
'''


def rules(code: str) -> list[str]:
    return [v.rule for v in check_policy(code)]


def wrap(body: str) -> str:
    return "def forward(task, lm):\n" + "\n".join("    " + line for line in body.splitlines()) + "\n"


def test_a_typical_agent_passes_apart_from_what_it_should_not_do() -> None:
    found = check_policy(GOOD)
    # the only offence in GOOD is `type(best).__name__`, placed to prove dunders are seen even in dead code
    assert [v.rule for v in found] == ["no-underscore-attribute"]
    assert check_policy(GOOD.replace("type(best).__name__", "type(best)")) == []


def test_message_names_line_and_rule() -> None:
    found = check_policy("x = 1\n\nimport os\ndef forward(task, lm):\n    return 1\n")
    assert found == [Violation(3, "no-import", "line 3: import is not allowed (rule no-import)")]


@pytest.mark.parametrize(("body", "rule"), [
    ("import os", "no-import"),
    ("from os import path", "no-import"),
    ("return __import__('os')", "no-underscore-name"),
    ("return task.__class__", "no-underscore-attribute"),
    ("return lm._channel", "no-underscore-attribute"),
    ("g = (x for x in [])\nreturn g.gi_frame", "no-introspection"),
    ("return e.tb_frame.f_back", "no-introspection"),
    ("return eval('1')", "no-forbidden-name"),
    ("return exec", "no-forbidden-name"),
    ("return open('/etc/hostname').read()", "no-forbidden-name"),
    ("return getattr(task, 'question')", "no-forbidden-name"),
    ("setattr(lm, 'x', 1)", "no-forbidden-name"),
    ("return globals()", "no-forbidden-name"),
    ("return vars(task)", "no-forbidden-name"),
    ("breakpoint()", "no-forbidden-name"),
    ("return memoryview(b'')", "no-forbidden-name"),
    ("return type('X', (), {})", "no-type-call"),
    ("t = type\nreturn t", "no-type-call"),
    ("return type(*[1])", "no-type-call"),
    ("return '{0.__class__}'.format(1)", "no-format-walk"),
    ("return '{0[key]}'.format({})", "no-format-walk"),
    ("return '{x.y}'.format_map({})", "no-format-walk"),
    ("return str.format('{0.real}', 1)", "no-format-walk"),
    ("return '{0:{1.real}}'.format(1, 2)", "no-format-walk"),
    ("return f'{1:>2000000000}'", "no-huge-format-width"),
    ("return '{:>99999999}'.format(1)", "no-huge-format-width"),
    ("return '%2000000000d' % 1", "no-huge-format-width"),
    ("return [*task.meta]", "no-star-unpack"),
    ("return {**task.meta}", "no-star-unpack"),
    ("class A:\n    pass", "no-class"),
    ("try:\n    pass\nexcept* ValueError:\n    pass", "no-try-star"),
    ("global __builtins__", "no-underscore-name"),
    ("_x = 1", "no-underscore-name"),
])
def test_each_rule_fires(body: str, rule: str) -> None:
    assert rule in rules(wrap(body))


@pytest.mark.parametrize("body", [
    "a, *b = [1, 2, 3]\nreturn str(b)",
    "return '{} {x} {0:>10}'.format(1, x=2)",
    "return f'{task.question!r:>20}'",
    "_ = lm.ask('x')\nreturn str(type(_))",
    "return '%5.2f' % 3.14159",
    "return str(majority_vote(list(map(str, range(3)))))",
    "while False:\n    pass\nreturn (lambda q: q)(task.question)",
])
def test_ordinary_code_is_allowed(body: str) -> None:
    assert check_policy(wrap(body)) == []


def test_syntax_error_is_one_violation_with_its_line() -> None:
    found = check_policy("def forward(task, lm):\n    return (\n\nx = [\n")
    assert len(found) == 1 and found[0].rule == "syntax" and found[0].message.endswith("(rule syntax)")
    assert check_policy("def forward(task, lm)\n    return 1\n")[0].line == 1


def test_parser_bombs_and_huge_sources_do_not_hurt_the_host() -> None:
    assert rules("def forward(task, lm):\n    return 1\nx = " + "-" * 100000 + "1\n") == ["syntax"]
    assert rules("def forward(task, lm):\n    return 1\n#" + "x" * 300000) == ["too-large"]
    assert rules(b"def forward(t, l): pass") == ["syntax"]  # type: ignore[arg-type]


@pytest.mark.parametrize(("code", "ok"), [
    ("def forward(task, lm):\n    return 1\n", True),
    ("def forward(t, l, extra=1):\n    return 1\n", True),
    ("def forward(*args):\n    return 1\n", True),
    ("def forward(task):\n    return 1\n", False),
    ("def forward(task, lm, must):\n    return 1\n", False),
    ("def solve(task, lm):\n    return 1\n", False),
    ("def outer():\n    def forward(task, lm):\n        return 1\n", False),
    ("forward = lambda task, lm: 1\n", False),
])
def test_contract_requires_top_level_forward_task_lm(code: str, ok: bool) -> None:
    assert ("contract" not in rules(code)) is ok


def test_policy_file_is_the_source_of_the_rules() -> None:
    policy = load_policy()
    assert {"eval", "exec", "open", "getattr"} <= policy.forbidden_names
    assert "gi_frame" in policy.forbidden_attributes and "tb_frame" in policy.forbidden_attributes
    assert "open" not in policy.builtins and "len" in policy.builtins
    assert not set(policy.builtins) & policy.forbidden_names


def test_limits_from_config_and_argv_round_trip() -> None:
    cfg = EvaluatorConfig(cpu_seconds=3, memory_mb=300, wall_timeout_s=7.5, max_output_bytes=2048)
    limits = Limits.from_config(cfg)
    assert (limits.cpu_seconds, limits.memory_mb, limits.wall_timeout_s, limits.max_output_bytes) == (3, 300, 7.5, 2048)
    assert Limits.from_argv(limits.to_argv()) == limits
    assert Limits() == Limits(cpu_seconds=10, memory_mb=512, wall_timeout_s=60.0, max_output_bytes=65536,
                              max_open_files=64)
    with pytest.raises(ValueError):
        Limits(memory_mb=1)


def test_guarded_getattr_blocks_what_restrictedpython_lets_through() -> None:
    from metasearch.sandbox import restricted

    restricted.set_forbidden_attributes(load_policy().forbidden_attributes)
    get = restricted.guarded_getattr
    with pytest.raises(AttributeError):
        get(1, "__class__")
    with pytest.raises(AttributeError):
        get((x for x in []), "gi_frame")
    with pytest.raises(AttributeError):
        get("text", "missing_attribute", None)  # a missing attribute raises, unlike safer_getattr
    with pytest.raises(ValueError):
        get("{0.__class__.__mro__}", "format")
    with pytest.raises(ValueError):
        get("{0:{1.real}}", "format_map")
    with pytest.raises(AttributeError):
        get(str, "format")
    with pytest.raises(AttributeError):
        get(pytest, "skip")  # no module object is ever reachable
    assert get("{} and {x}", "format")(1, x=2) == "1 and 2"
    assert get("abc", "upper")() == "ABC"


def test_type_never_hands_out_a_metaclass() -> None:
    from metasearch.sandbox.restricted import safe_type

    assert safe_type(1) is int
    with pytest.raises(TypeError):
        safe_type(int)


def test_print_cap_flags_floods() -> None:
    from metasearch.sandbox.restricted import OutputLimitExceeded, OutputMeter

    meter = OutputMeter(100)
    collector = meter.collector()
    collector.write("x" * 60)
    with pytest.raises(OutputLimitExceeded):
        collector.write("y" * 60)
    assert meter.exceeded and collector() == "x" * 60
