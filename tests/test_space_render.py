"""Rendering IR to candidate code, lifting it back, and AST features of code without IR.

Rendered code is our own output (not hostile), so these tests run it in-process against a fake `lm`:
plainly, and through the sandbox's RestrictedPython layer when that module is present.
"""

import ast
import random
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from metasearch import REPO_ROOT
from metasearch.space import SEED_WORKFLOWS, Workflow, code_features, lift, random_workflow, render, validate
from metasearch.space.lift import FEATURE_NAMES
from metasearch.space.moves import mutate
from metasearch.tasks.helpers import extract_answer, majority_vote


class FakeLM:
    """The candidate-side `lm` interface; records every call and counts completions (n samples count n)."""

    def __init__(self, responder=None, json_responder=None, critic=None):
        self.calls = []
        self.critic = critic or (lambda prompt: {"feedback": "The second step adds where it should subtract, so the "
                                                             "total is wrong.", "correct": "False"})
        self.completions = 0
        self.responder = responder or (lambda prompt, system, i: "The reasoning checks out step by step. Answer: 42")
        self.json_responder = json_responder or (lambda prompt, system: {"thinking": "Easy.", "answer": "42"})

    def ask(self, prompt, *, system=None, temperature=0.0, n=1):
        assert isinstance(prompt, str) and (system is None or isinstance(system, str))
        assert 0.0 <= temperature <= 2.0 and isinstance(n, int) and n >= 1
        self.calls.append({"prompt": prompt, "system": system, "temperature": temperature, "n": n, "json": False})
        self.completions += n
        replies = [self.responder(prompt, system, i) for i in range(n)]
        return replies[0] if n == 1 else replies

    def ask_json(self, prompt, fields=None, *, system=None, temperature=0.0, n=1):
        assert isinstance(fields, dict) and ("answer" in fields or set(fields) == {"feedback", "correct"})
        self.calls.append({"prompt": prompt, "system": system, "temperature": temperature, "n": n, "json": True})
        self.completions += n
        return self.critic(prompt) if "correct" in fields else self.json_responder(prompt, system)

    def messages(self, call):
        msgs = [{"role": "system", "content": call["system"]}] if call["system"] else []
        return msgs + [{"role": "user", "content": call["prompt"]}]


def _task(kind="math"):
    return SimpleNamespace(id="t1", question="What is 6 * 7?", kind=kind, meta={})


def _load(code):
    """Run our own rendered module and return its forward (helpers in scope as in the sandbox)."""
    namespace = {"extract_answer": extract_answer, "majority_vote": majority_vote}
    exec(compile(code, "<rendered>", "exec"), namespace)
    return namespace["forward"]


def _sample() -> list[Workflow]:
    rng = random.Random(20240611)
    seeds = [validate(d) for d in SEED_WORKFLOWS.values()]
    out = seeds + [random_workflow(rng) for _ in range(200)]
    for wf in seeds:  # longer walks reach parameter corners a fresh random draw rarely does
        for _ in range(5):
            wf = mutate(mutate(wf, rng), rng)
            out.append(wf)
    return out


SAMPLE = _sample()
CODES = {wf.key(): render(wf) for wf in SAMPLE}

ALLOWED_CALLS = {"solve", "extract_answer", "majority_vote", "str", "range", "len", "isinstance"}
ALLOWED_METHODS = {"ask", "ask_json", "join", "lower", "append", "get", "strip"}


def test_every_rendered_workflow_is_plain_contract_code():
    for wf in SAMPLE:
        code = CODES[wf.key()]
        tree = ast.parse(code)
        top = [type(n).__name__ for n in tree.body]
        assert top == ["Assign", "Assign", "Assign", "FunctionDef"], wf.describe()
        assert [n.targets[0].id for n in tree.body[:3]] == ["NAME", "THOUGHT", "WORKFLOW"]
        assert tree.body[3].name == "forward" and [a.arg for a in tree.body[3].args.args] == ["task", "lm"]
        for node in ast.walk(tree):
            assert not isinstance(node, (ast.Import, ast.ImportFrom, ast.JoinedStr, ast.AugAssign, ast.Lambda))
            if isinstance(node, ast.Name):
                assert not node.id.startswith("_")
            if isinstance(node, ast.Attribute):
                assert not node.attr.startswith("_")
            if isinstance(node, ast.Call):
                if isinstance(node.func, ast.Name):
                    assert node.func.id in ALLOWED_CALLS, node.func.id
                else:
                    assert isinstance(node.func, ast.Attribute) and node.func.attr in ALLOWED_METHODS
        assert "__" not in code and "```" not in code


def test_rendered_code_runs_and_makes_exactly_the_expected_calls():
    for wf in SAMPLE:
        lm = FakeLM()
        answer = _load(CODES[wf.key()])(_task(), lm)
        assert answer == "42", wf.describe()
        assert lm.completions == wf.expected_calls(), wf.describe()
        free_text = [c for c in lm.calls if not c["json"]]
        if wf.answer_format == "plain":  # only the critic's verdict is JSON
            assert all("Critique" in c["prompt"] for c in lm.calls if c["json"])
        else:  # only the calls that produce no answer (routing, principles) stay free text
            assert all(re.search(r"Which expert|step back", c["prompt"]) for c in free_text)
            assert len(free_text) < len(lm.calls)


def test_rendered_code_passes_the_sandbox_policy():
    sandbox = pytest.importorskip("metasearch.sandbox")
    if not hasattr(sandbox, "check_policy"):
        pytest.skip("metasearch.sandbox.check_policy not available yet")
    for wf in SAMPLE:
        assert sandbox.check_policy(CODES[wf.key()]) == [], wf.describe()


def test_rendered_code_runs_under_restricted_python():
    restricted = pytest.importorskip("metasearch.sandbox.restricted")
    policy = pytest.importorskip("metasearch.sandbox.policy")
    cache = restricted.CodeCache()
    builtins = policy.load_policy().builtins
    for wf in SAMPLE[:60]:
        glb = restricted.build_globals(builtins, restricted.OutputMeter(10_000))
        exec(cache.get(CODES[wf.key()]), glb)
        lm = FakeLM()
        assert glb["forward"](_task(), lm) == "42", wf.describe()
        assert lm.completions == wf.expected_calls()


def test_render_is_deterministic_and_lift_inverts_it():
    for wf in SAMPLE:
        code = render(wf, name="Agent X", thought="Because.")
        assert code == render(wf, name="Agent X", thought="Because.")
        assert lift(code) == wf
    tree = ast.parse(render(SAMPLE[0], name='He said "hi"\n', thought="it's __fine__"))
    assert ast.literal_eval(tree.body[0].value) == 'He said "hi"\n'
    assert ast.literal_eval(tree.body[1].value) == "it's _fine_"


def test_default_name_and_thought_describe_the_workflow():
    wf = validate({"stages": [{"op": "step_back"}, {"op": "self_consistency", "n": 5},
                              {"op": "self_refine", "rounds": 2}, {"op": "verify"}]})
    tree = ast.parse(render(wf))
    assert ast.literal_eval(tree.body[0].value) == "Step-back CoT-SC x5 + Critic Refine x2 + Verify"
    assert wf.describe() in ast.literal_eval(tree.body[1].value)


# -- prompts trigger the features the simulator scores ----------------------------------------------------------

def _features(wf_data, responder=None):
    pf = pytest.importorskip("metasearch.llm.prompt_features")
    wf = validate(wf_data)
    lm = FakeLM(responder)
    _load(render(wf))(_task(), lm)
    return [pf.prompt_features(lm.messages(c)) for c in lm.calls], lm


def test_cot_and_direct_prompts():
    cot, _ = _features({"stages": [{"op": "generate", "mode": "cot"}]})
    direct, _ = _features({"stages": [{"op": "generate", "mode": "direct"}]})
    assert cot[0]["cot"] == 1.0 and direct[0]["cot"] == 0.0
    assert all(f[k] == 0.0 for f in cot + direct for k in ("role", "step_back", "aggregate", "debate", "critique",
                                                            "critique_request", "refine", "verify", "diverse"))


def test_role_prompts_use_a_system_message():
    feats, lm = _features({"stages": [{"op": "role", "role": "a meticulous teacher"}, {"op": "generate"},
                                      {"op": "verify"}]})
    assert all(f["role"] == 1.0 for f in feats)
    assert {c["system"] for c in lm.calls} == {"You are a meticulous teacher."}


def test_auto_role_routes_to_the_expert_the_model_names():
    def responder(prompt, system, i):
        return "I pick a skeptical reviewer." if "Which expert" in prompt else "Answer: 42"
    feats, lm = _features({"stages": [{"op": "role", "role": "auto"}, {"op": "generate"}]}, responder)
    assert lm.calls[0]["system"] is None and feats[0]["role"] == 0.0
    assert lm.calls[1]["system"] == "You are a skeptical reviewer." and feats[1]["role"] == 1.0


def test_step_back_prompts():
    feats, _ = _features({"stages": [{"op": "step_back"}, {"op": "generate"}]})
    assert [f["step_back"] for f in feats] == [1.0, 1.0]


def test_selection_shows_all_candidate_answers():
    feats, _ = _features({"stages": [{"op": "self_consistency", "n": 4, "aggregate": "select"}]})
    assert feats[-1]["aggregate"] == 4.0
    assert feats[0]["aggregate"] == 0.0


def test_debate_rounds_show_the_other_agents_answers():
    feats, _ = _features({"stages": [{"op": "debate", "agents": 3, "rounds": 2, "aggregate": "majority"}]})
    assert [f["debate"] for f in feats] == [0.0] * 3 + [3.0] * 6


def test_quality_diversity_asks_for_different_approaches():
    feats, _ = _features({"stages": [{"op": "self_consistency", "n": 3, "diverse": True}]})
    assert [f["diverse"] for f in feats] == [0.0, 1.0, 1.0]
    assert [f["earlier"] for f in feats] == [0.0, 1.0, 2.0]


def test_critic_refinement_feeds_a_real_critique_and_blind_refinement_has_none():
    critic, _ = _features({"stages": [{"op": "generate"}, {"op": "self_refine", "rounds": 1, "critic": True}]})
    blind, _ = _features({"stages": [{"op": "generate"}, {"op": "self_refine", "rounds": 1, "critic": False}]})
    assert critic[1]["critique_request"] == 1.0 and critic[1]["refine"] == 0.0
    assert critic[2]["critique"] == 1.0 and critic[2]["refine"] == 1.0
    assert blind[1]["refine"] == 1.0
    assert all(f["critique"] == 0.0 and f["critique_request"] == 0.0 for f in blind)


def test_critic_stops_refinement_once_it_accepts_the_answer():
    verdicts = iter(["False", "True", "False"])
    lm = FakeLM(critic=lambda prompt: {"feedback": "Step two is wrong, recompute it.", "correct": next(verdicts)})
    wf = validate({"stages": [{"op": "generate"}, {"op": "self_refine", "rounds": 3, "critic": True}]})
    assert _load(render(wf))(_task(), lm) == "42"
    assert len(lm.calls) == 4 < wf.expected_calls()  # answer, critique, refine, critique (accepted)
    assert "Feedback: Step two is wrong" in lm.calls[2]["prompt"]


def test_verify_prompt_only_in_the_verify_stage():
    feats, _ = _features({"stages": [{"op": "self_consistency", "n": 3}, {"op": "verify"}]})
    assert [f["verify"] for f in feats] == [0.0, 1.0]


# -- behaviour of the rendered agents ---------------------------------------------------------------------------

def test_verification_can_overturn_the_answer():
    lm = FakeLM(lambda prompt, system, i: "Answer: 7" if "Verify" in prompt else "Answer: 42")
    wf = validate({"stages": [{"op": "generate"}, {"op": "verify"}]})
    assert _load(render(wf))(_task(), lm) == "7"


def test_majority_vote_over_samples():
    votes = ["Answer: 3", "Answer: 5", "Answer: 5", "Answer: 3", "Answer: 5"]
    lm = FakeLM(lambda prompt, system, i: votes[i])
    wf = validate({"stages": [{"op": "self_consistency", "n": 5}]})
    assert _load(render(wf))(_task(), lm) == "5"
    assert lm.calls[0]["n"] == 5 and lm.calls[0]["temperature"] == 0.8


def test_selection_falls_back_to_the_vote_when_the_selector_gives_nothing():
    lm = FakeLM(lambda prompt, system, i: "" if "several candidate answers" in prompt else "Answer: 9")
    wf = validate({"stages": [{"op": "self_consistency", "n": 3, "aggregate": "select"}]})
    assert _load(render(wf))(_task(), lm) == "9"


def test_json_format_reads_the_answer_field():
    lm = FakeLM(json_responder=lambda prompt, system: {"thinking": "x", "answer": "$1,234"})
    wf = validate({"stages": [{"op": "self_consistency", "n": 3}, {"op": "verify"}], "answer_format": "json"})
    assert _load(render(wf))(_task(), lm) == "1234"
    assert all(c["json"] for c in lm.calls) and len(lm.calls) == 4


def test_code_tasks_return_the_code():
    reply = "Here it is.\n```python\ndef add(a, b):\n    return a + b\n```"
    lm = FakeLM(lambda prompt, system, i: reply)
    wf = validate({"stages": [{"op": "role", "role": "a competitive programmer"}, {"op": "generate"},
                              {"op": "self_refine", "rounds": 1}]})
    assert _load(render(wf))(_task("code"), lm) == "def add(a, b):\n    return a + b"
    assert "python code block" in lm.calls[0]["prompt"]


# -- lift and code features --------------------------------------------------------------------------------------

def test_lift_returns_none_without_a_valid_top_level_literal():
    good = render(validate(SEED_WORKFLOWS["cot"]))
    assert lift(good) is not None
    assert lift("def forward(task, lm):\n    return '1'\n") is None
    assert lift(good.replace("def forward(task, lm):", "def forward(task, lm)")) is None  # syntax error
    assert lift("WORKFLOW = dict(stages=[])\n") is None  # not a literal
    assert lift('WORKFLOW = {"stages": [{"op": "generate", "mode": "fast"}]}\n') is None  # invalid IR
    assert lift('def f():\n    WORKFLOW = {"stages": [{"op": "generate"}]}\n') is None  # not top level
    assert lift("WORKFLOW = [1, 2]\n") is None


def test_lift_takes_the_last_assignment_and_accepts_annotations():
    code = ('WORKFLOW = {"stages": [{"op": "generate"}]}\n'
            'WORKFLOW: dict = {"stages": [{"op": "generate", "mode": "direct"}]}\n')
    assert lift(code).describe() == "direct"


def test_lift_never_executes_the_code(tmp_path):
    marker = tmp_path / "ran"
    code = (f"open({str(marker)!r}, 'w').write('x')\n"
            f'WORKFLOW = {{"stages": [{{"op": "generate"}}]}}\n')
    assert lift(code) is not None
    assert code_features(code)["parse_ok"] == 1.0
    assert not marker.exists()


def test_code_features_count_the_structure():
    code = (
        'NAME = "x"\n'
        "def forward(task, lm):\n"
        "    replies = lm.ask(task.question, temperature=0.7, n=5)\n"
        "    best = majority_vote([extract_answer(r, task.kind) for r in replies])\n"
        "    for i in range(2):\n"
        "        if best:\n"
        "            best = lm.ask_json('check ' + best, fields={'answer': 'a'})['answer']\n"
        "    while False:\n"
        "        pass\n"
        "    return best\n")
    f = code_features(code)
    assert set(f) == set(FEATURE_NAMES)
    assert (f["ask_calls"], f["ask_json_calls"], f["n_max"], f["n_sum"]) == (1, 1, 5, 5)
    assert (f["loops"], f["while_loops"], f["comprehensions"], f["branches"]) == (2, 1, 1, 1)
    assert f["lm_calls_in_loops"] == 1 and f["temperature_max"] == 0.7
    assert f["max_nesting"] == 3  # def > for > if
    assert f["uses_majority_vote"] == 1 and f["uses_extract_answer"] == 1 and f["has_workflow"] == 0
    assert f["lines"] == 10 and f["string_max"] == len("check ")


def test_code_features_of_unparseable_code():
    f = code_features("def forward(task, lm)\n    return 1\n")
    assert f["parse_ok"] == 0.0 and f["lines"] == 2 and f["ask_calls"] == 0
    assert set(f) == set(FEATURE_NAMES)


def test_code_features_see_the_cost_of_a_rendered_workflow():
    small = code_features(render(validate(SEED_WORKFLOWS["cot_sc"])))
    big = code_features(render(validate({"stages": [{"op": "debate", "agents": 4, "rounds": 3}, {"op": "verify"}]})))
    assert small["n_max"] == 5 and small["has_workflow"] == 1
    assert big["lm_calls_in_loops"] >= 1 and big["max_nesting"] > small["max_nesting"]


# -- the seed library -------------------------------------------------------------------------------------------

# The hand-designed ADAS seeds; promoted winners (promoted_*.py) may be meta-agent code without an IR.
SEED_FILES = sorted(p for p in (REPO_ROOT / "archive").glob("*.py") if not p.stem.startswith("promoted_"))


@pytest.mark.parametrize("path", SEED_FILES, ids=[p.stem for p in SEED_FILES])
def test_every_archive_agent_lifts_to_its_workflow(path: Path):
    wf = lift(path.read_text(encoding="utf-8"))
    assert wf is not None, f"{path.name} has no valid WORKFLOW literal"
    if path.stem in SEED_WORKFLOWS:
        assert wf == validate(SEED_WORKFLOWS[path.stem])


def test_the_seed_library_is_present():
    assert {p.stem for p in SEED_FILES} >= set(SEED_WORKFLOWS)
    assert all(re.fullmatch(r"\w+", p.stem) for p in SEED_FILES)
