"""The simulated meta-agent: reads the archive in its prompt, proposes edits of good parents, bugs on demand."""

import ast
import random
from statistics import mean

import pytest

from metasearch.space import SEED_WORKFLOWS, lift, render, validate
from metasearch.space.meta_sim import (BUG_KINDS, MARKER, inject_bug, is_meta_prompt, parse_prompt, propose,
                                       salvage_workflow)
from metasearch.space.render import default_name

try:  # the real prompt format of the lead's proposer, when it is importable
    from metasearch.proposers.meta_agent import format_entry
except ImportError:  # pragma: no cover - same format, kept here so this test does not depend on that module
    def format_entry(c):
        fitness = ("fitness unknown" if c.get("score") is None else
                   f"fitness {c['score']:.3f}, 95% CI {c['ci_low']:.2f}-{c['ci_high']:.2f}")
        status = "" if c["status"] == "evaluated" else f" [{c['status']}: {c.get('error') or ''}]"
        return (f"### Agent: {c['name']} ({fitness}){status}\nThought: {c.get('thought') or ''}\n"
                f"```python\n{c['code'].rstrip()}\n```")


def _entry(name, score, code, thought="A thought.\nOn two lines.", status="evaluated"):
    return {"name": name, "score": score, "ci_low": (score or 0) - 0.05, "ci_high": (score or 0) + 0.05,
            "status": status, "error": None, "thought": thought, "code": code}


def _prompt(entries):
    archive = "\n\n".join(format_entry(e) for e in entries)
    return (f"{MARKER}\nYou are an expert in designing LLM agents.\n\n## Tasks\nArithmetic.\n\n"
            f"## Candidate contract\nNAME = ...\n    # task.question: str\n\n## Archive of discovered agents\n"
            f"{archive}\n\n## Instruction\nDesign a new agent.\n")


def _turn(base, marker, proposal, error=None):
    block = (f"## Your proposal\nName: {proposal['name']}\nThought: {proposal['thought']}\n"
             f"```python\n{proposal['code'].rstrip()}\n```")
    if marker == "Debug":
        return f"{base}\n# Debug\n## Error\n{error}\n\n{block}\n\nThe code above failed. Fix it.\n"
    return f"{base}\n# Reflection\n{block}\n\nReview your proposal.\n"


SEEDS = {stem: validate(d) for stem, d in SEED_WORKFLOWS.items()}
SEED_ENTRIES = [_entry(f"Seed {stem} (v1)", 0.1 + 0.05 * i, render(wf)) for i, (stem, wf) in enumerate(SEEDS.items())]
SEED_ENTRIES.append(_entry("Hand-written", None, "def forward(task, lm):\n    return lm.ask(task.question)\n"))
BASE = _prompt(SEED_ENTRIES)


def test_parse_prompt_reads_names_fitness_code_and_workflows():
    parsed = parse_prompt(BASE)
    assert parsed.turn == "propose" and parsed.proposal is None
    assert [e.name for e in parsed.archive] == [e["name"] for e in SEED_ENTRIES]
    assert [e.fitness for e in parsed.archive][:2] == [0.1, 0.15] and parsed.archive[-1].fitness is None
    assert [e.workflow for e in parsed.archive[:-1]] == list(SEEDS.values())
    assert parsed.archive[-1].workflow is None and "lm.ask" in parsed.archive[-1].code
    assert parsed.archive[0].thought == "A thought.\nOn two lines."


def test_is_meta_prompt():
    assert is_meta_prompt(BASE) and not is_meta_prompt("Question: what is 2+2?")


def test_new_proposal_is_a_clean_novel_edit_of_an_archived_workflow():
    archived = {wf.key() for wf in SEEDS.values()}
    names = {e["name"] for e in SEED_ENTRIES}
    for seed in range(30):
        out = propose(BASE, random.Random(seed), bug_rate=0.0)
        assert set(out) == {"thought", "name", "code"}
        wf = lift(out["code"])
        assert wf is not None and wf.key() not in archived
        assert out["name"] not in names and out["name"].startswith(default_name(wf))
        assert out["thought"] and wf.describe() in out["thought"]
        tree = ast.parse(out["code"])
        assert ast.literal_eval(tree.body[0].value) == out["name"]
        assert not any(isinstance(n, (ast.Import, ast.ImportFrom, ast.While)) for n in ast.walk(tree))


def test_proposals_are_deterministic_for_a_given_rng_state():
    assert propose(BASE, random.Random(11), 0.3) == propose(BASE, random.Random(11), 0.3)
    assert propose(BASE, random.Random(11), 0.3) != propose(BASE, random.Random(12), 0.3)


def test_thought_names_the_parent_it_builds_on():
    out = propose(BASE, random.Random(3), 0.0)
    assert any(e["name"] in out["thought"] for e in SEED_ENTRIES)


def test_an_archive_without_workflows_gets_a_fresh_design():
    prompt = _prompt([_entry("Hand-written", 0.5, "def forward(task, lm):\n    return '1'\n")])
    out = propose(prompt, random.Random(0), 0.0)
    assert lift(out["code"]) is not None and "fresh design" in out["thought"]
    assert lift(propose(_prompt([]), random.Random(0), 0.0)["code"]) is not None


def _quality(wf):
    """A toy ground truth: debate, verification and critic refinement are good; blind refinement is bad."""
    ops = wf.ops()
    score = 0.3 * ("debate" in ops) + 0.2 * ("verify" in ops)
    score += sum(0.1 if s.critic else -0.2 for s in wf.stages if s.op == "self_refine")
    return score


def test_better_archives_lead_to_better_proposals():
    good = [validate({"stages": [{"op": "debate"}, {"op": "verify"}]}),
            validate({"stages": [{"op": "debate", "agents": 2}, {"op": "self_refine", "critic": True}]})]
    bad = [validate({"stages": [{"op": "generate"}, {"op": "self_refine", "critic": False}]}),
           validate({"stages": [{"op": "generate", "mode": "direct"}, {"op": "self_refine", "critic": False}]})]

    def mean_quality(fitness_good, fitness_bad):
        entries = ([_entry(f"g{i}", fitness_good, render(wf)) for i, wf in enumerate(good)]
                   + [_entry(f"b{i}", fitness_bad, render(wf)) for i, wf in enumerate(bad)])
        prompt = _prompt(entries)
        return mean(_quality(lift(propose(prompt, random.Random(s), 0.0)["code"])) for s in range(120))

    # Same four agents; only the fitness shown differs. Parents follow fitness, so proposals follow quality.
    assert mean_quality(0.6, 0.2) > mean_quality(0.2, 0.6) + 0.15


def test_bugs_keep_the_workflow_literal_and_cover_every_kind():
    kinds = set()
    for seed in range(60):
        rng = random.Random(seed)
        clean = propose(BASE, random.Random(seed), 0.0)["code"]
        buggy, kind = inject_bug(clean, rng)
        kinds.add(kind)
        assert buggy != clean
        assert salvage_workflow(buggy) == lift(clean)
        if kind == "syntax":
            with pytest.raises(SyntaxError):
                ast.parse(buggy)
        else:
            assert lift(buggy) == lift(clean)
            tree = ast.parse(buggy)
            imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import)]
            loops = [n for n in ast.walk(tree) if isinstance(n, ast.While)]
            assert (kind == "import") == bool(imports) and (kind == "loop") == bool(loops)
            if kind == "runtime":
                assert "extract_answers(" in buggy or "final_answer" in buggy
    assert kinds == set(BUG_KINDS)


def test_runtime_bug_raises_name_error_when_run():
    from metasearch.tasks.helpers import extract_answer, majority_vote

    class LM:
        def ask(self, prompt, *, system=None, temperature=0.0, n=1):
            return ["Answer: 1"] * n if n > 1 else "Answer: 1"

        def ask_json(self, prompt, fields=None, *, system=None, temperature=0.0, n=1):
            return {"answer": "1"}

    clean = render(SEEDS["cot"])
    for seed in range(40):
        buggy, kind = inject_bug(clean, random.Random(seed))
        if kind != "runtime":
            continue
        namespace = {"extract_answer": extract_answer, "majority_vote": majority_vote}
        exec(compile(buggy, "<buggy>", "exec"), namespace)  # our own generated code, not hostile
        task = type("T", (), {"question": "1?", "kind": "math", "meta": {}, "id": "x"})()
        with pytest.raises(NameError):
            namespace["forward"](task, LM())
        return
    pytest.fail("no runtime bug drawn")


def test_bug_rate_controls_how_often_code_is_broken():
    def broken(code):
        try:
            tree = ast.parse(code)
        except SyntaxError:
            return True
        return bool([n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.While))]) or \
            "extract_answers(" in code or "return final_answer" in code

    assert not any(broken(propose(BASE, random.Random(s), 0.0)["code"]) for s in range(40))
    assert all(broken(propose(BASE, random.Random(s), 1.0)["code"]) for s in range(40))
    rate = mean(broken(propose(BASE, random.Random(s), 0.3)["code"]) for s in range(200))
    assert 0.2 < rate < 0.4


def test_debug_turn_usually_returns_the_clean_rerender():
    fixed = 0
    for seed in range(100):
        first = propose(BASE, random.Random(seed), 0.0)
        buggy, kind = inject_bug(first["code"], random.Random(seed))
        out = propose(_turn(BASE, "Debug", dict(first, code=buggy), error="runtime: NameError: x"),
                      random.Random(seed), 0.5)
        if out["code"] == buggy:
            assert out["name"] == first["name"]
            continue
        fixed += 1
        assert out["code"] == render(lift(first["code"]), first["name"], out["thought"])
        assert "NameError" in out["thought"] and out["name"] == first["name"]
    assert 75 <= fixed <= 95


def test_reflection_usually_keeps_the_proposal():
    kept = 0
    for seed in range(100):
        first = propose(BASE, random.Random(seed), 0.0)
        out = propose(_turn(BASE, "Reflection", first), random.Random(1000 + seed), 0.0)
        if out == first:
            kept += 1
        else:
            assert lift(out["code"]) != lift(first["code"]) and "On reflection" in out["thought"]
    assert 60 <= kept <= 90


def test_reflection_on_a_duplicate_of_the_archive_changes_it():
    duplicate = {"name": "Copy", "thought": "Same as a seed.", "code": render(SEEDS["debate"])}
    archived = {wf.key() for wf in SEEDS.values()}
    for seed in range(20):
        out = propose(_turn(BASE, "Reflection", duplicate), random.Random(seed), 0.0)
        assert lift(out["code"]).key() not in archived
        assert "duplicates an archived agent" in out["thought"]
