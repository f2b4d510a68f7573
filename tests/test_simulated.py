"""The simulated LLM's properties (../shared/SIMULATOR.md): determinism, grounding, correlated errors, technique
effects and interactions, costs, latency, meta-agent mode, profiles as data."""

from __future__ import annotations

import json
import subprocess
import sys
from statistics import mean

import pytest

from metasearch.errors import ConfigError
from metasearch.llm.prompt_features import earlier_answers, prompt_features
from metasearch.llm.simulated import (META_MARKER, SimRequestError, SimulatedLLM, _sigmoid, asked_fields,
                                      list_profiles, load_profile)
from metasearch.tasks.base import Task
from metasearch.tasks.helpers import extract_answer, majority_vote

COT = "Let's think step by step. End with a last line of the form 'Answer: <answer>'."


def make_tasks(n: int, difficulty: float | None = None, prefix: str = "t") -> list[Task]:
    tasks = []
    for i in range(n):
        a, b, c = 17 + 7 * i, 5 + (i % 11), 3 + (i % 5)
        q = (f"A {prefix}-depot numbered {i} has {a} crates. It receives {b} groups of {c} crates. "
             f"Then it ships {i % 9 + 2} crates. How many crates does depot {i} have now?")
        meta = {} if difficulty is None else {"difficulty": difficulty}
        tasks.append(Task(f"{prefix}-{i}", q, str(a + b * c - (i % 9 + 2)), "math", meta))
    return tasks


def body(content: str, *, system: str | None = None, temperature: float = 0.0, n: int = 1, seed: int | None = None,
         **extra) -> dict:
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": content}]
    out = {"model": "sim-default", "messages": messages, "temperature": temperature, "n": n, **extra}
    if seed is not None:
        out["seed"] = seed
    return out


def texts(resp: dict) -> list[str]:
    return [c["message"]["content"] for c in resp["choices"]]


def accuracy(sim: SimulatedLLM, tasks: list[Task], make_prompt, **kw) -> float:
    right = 0
    for t in tasks:
        reply = texts(sim.complete(body(make_prompt(t), **kw)))[0]
        right += extract_answer(reply, "math") == t.answer
    return right / len(tasks)


@pytest.fixture(scope="module")
def tasks() -> list[Task]:
    return make_tasks(400)


@pytest.fixture(scope="module")
def sim(tasks) -> SimulatedLLM:
    return SimulatedLLM("default", tasks)


# ------------------------------------------------------------------------------------------ 1. deterministic

def test_same_request_same_reply_and_temperature_zero_ignores_seed(sim, tasks):
    q = tasks[3].question + "\n" + COT
    assert sim.complete(body(q, seed=1)) == sim.complete(body(q, seed=1))
    assert texts(sim.complete(body(q, seed=1))) == texts(sim.complete(body(q, seed=2)))
    same = texts(sim.complete(body(q, n=4)))
    assert len(same) == 4 and len(set(same)) == 1


def test_sampling_with_a_seed_is_reproducible_and_varies_across_seeds(sim, tasks):
    q = tasks[5].question + "\n" + COT
    a = texts(sim.complete(body(q, temperature=0.9, n=5, seed=7)))
    assert a == texts(sim.complete(body(q, temperature=0.9, n=5, seed=7)))
    replies = {t for s in range(6) for t in texts(sim.complete(body(q, temperature=0.9, n=5, seed=s)))}
    assert len(replies) > 3


def test_replies_are_the_same_in_a_fresh_process(tasks):
    code = ("import json,sys; sys.path.insert(0, %r)\n"
            "from test_simulated import make_tasks, body\n"
            "from metasearch.llm.simulated import SimulatedLLM\n"
            "ts = make_tasks(400); s = SimulatedLLM('default', ts)\n"
            "print(json.dumps(s.complete(body(ts[9].question, temperature=0.7, n=3, seed=11))))") % (
        str(__import__("pathlib").Path(__file__).parent))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    here = SimulatedLLM("default", tasks).complete(body(tasks[9].question, temperature=0.7, n=3, seed=11))
    assert json.loads(out) == here


# ------------------------------------------------------------------------------------------ 2. task-grounded

def test_finds_the_task_inside_a_longer_prompt_and_knows_its_answer(sim, tasks):
    t = tasks[42]
    prompt = "Some preamble.\n\nTask:\n" + t.question.replace(" ", "  ") + "\n\nAnything after it."
    assert sim.find_task(prompt) == t
    easy = SimulatedLLM("strong", [Task("e1", "What is the sum of two and three, written as a number?", "5",
                                         meta={"difficulty": -6.0})])
    reply = texts(easy.complete(body("What is the sum of two and three, written as a number?\n" + COT)))[0]
    assert reply.splitlines()[-1] == "Answer: 5"


def test_unknown_prompt_gets_a_fluent_uninformed_reply(sim):
    reply = texts(sim.complete(body("What is the capital of a country that does not exist?")))[0]
    assert sim.find_task("What is the capital of a country that does not exist?") is None
    assert len(reply.split()) > 8 and "Answer:" in reply


def test_difficulty_comes_from_meta_or_from_a_hash_of_the_id():
    hard, easy = make_tasks(300, 3.0, "h"), make_tasks(300, -3.0, "e")
    s = SimulatedLLM("default", hard + easy)
    assert accuracy(s, easy, lambda t: t.question + "\n" + COT) > accuracy(s, hard, lambda t: t.question + "\n" + COT) + 0.4
    derived = [s._make_info(t).raw_difficulty for t in make_tasks(50)]
    assert derived == [SimulatedLLM("default")._make_info(t).raw_difficulty for t in make_tasks(50)]
    assert len(set(derived)) == 50


def test_json_mode_answers_the_asked_fields(sim, tasks):
    q = (tasks[1].question + "\n\nReply with a JSON object with the fields: thinking: your step by step "
         "reasoning, answer: the final answer only")
    reply = json.loads(texts(sim.complete(body(q, response_format={"type": "json_object"})))[0])
    assert set(reply) == {"thinking", "answer"}
    assert reply["answer"].lstrip("-").isdigit()
    assert asked_fields([{"role": "user", "content": 'Return JSON like {"verdict": "...", "score": 3}'}],
                        None) == ["verdict", "score"]


# ------------------------------------------------------------------------------------------ 3. correlated errors

def test_wrong_answers_concentrate_on_a_dominant_distractor_and_voting_saturates():
    hard = make_tasks(200, 0.0, "v")
    s = SimulatedLLM("default", hard)
    single, voted, dominant_share = [], [], []
    for t in hard:
        replies = texts(s.complete(body(t.question + "\n" + COT, temperature=0.8, n=9, seed=1)))
        answers = [extract_answer(r, "math") for r in replies]
        single.append(mean(a == t.answer for a in answers))
        voted.append(majority_vote(answers[:5]) == t.answer)
        wrong = [a for a in answers if a != t.answer]
        if len(wrong) >= 4:
            dominant_share.append(max(wrong.count(w) for w in set(wrong)) / len(wrong))
    assert mean(voted) >= mean(single)            # self-consistency helps a little ...
    assert mean(voted) - mean(single) < 0.1       # ... and saturates
    assert mean(voted) < 0.6                      # well below 100% on hard tasks
    assert mean(dominant_share) > 0.45            # errors are correlated, not uniform over 3 distractors


# ------------------------------------------------------------------------------------------ 4. techniques

def test_prompt_features_read_the_documented_phrases():
    f = prompt_features([{"role": "system", "content": "You are a math professor."},
                         {"role": "user", "content": "Q?\nHere are several candidate answers:\nAnswer: 3\nAnswer: 4\n"
                                                     "Take a STEP BACK to the principles. Let's think step by step. "
                                                     "Verify the result."}])
    assert f["cot"] == f["role"] == f["step_back"] == f["verify"] == 1.0 and f["aggregate"] == 2.0
    assert prompt_features([{"role": "system", "content": "You are a helpful assistant."},
                            {"role": "user", "content": "Q?"}])["role"] == 0.0
    g = prompt_features([{"role": "user", "content": "Q?\nOther agents answered:\nAnswer: 5\n\nFeedback: the second "
                                                     "step adds where it should subtract, so redo it.\n\nImprove "
                                                     "your answer."}])
    assert g["debate"] == 1.0 and g["critique"] == 1.0 and g["refine"] == 1.0
    assert prompt_features([{"role": "user", "content": "Critique the answer. Improve your answer."}])["critique"] == 0
    assert earlier_answers("Reply ending with 'Answer: <value>'.\nAnswer: 12\n{\"answer\": \"7\"}") == ["12", "7"]


def test_reasoning_and_roles_raise_accuracy(sim, tasks):
    direct = accuracy(sim, tasks, lambda t: t.question + "\nAnswer with the number only.")
    cot = accuracy(sim, tasks, lambda t: t.question + "\n" + COT)
    expert = accuracy(sim, tasks, lambda t: t.question + "\nTaking a step back, keep the principles of arithmetic in mind.\n"
                      + COT,
                      system="You are a math professor.")
    assert direct < cot < expert


def _refine_prompt(t: Task, wrong: str, critique: bool) -> str:
    fb = ("Feedback: step two adds the groups incorrectly, so the running total is off; recompute it.\n\n"
          if critique else "")
    return f"{t.question}\n\nYour previous answer:\nAnswer: {wrong}\n\n{fb}Improve your answer. {COT}"


def test_refine_helps_only_with_a_real_critique():
    tasks = make_tasks(300, -1.0, "r")
    sim = SimulatedLLM("default", tasks)
    wrong = {t.id: sim._info[t.id].distractors[0] for t in tasks}
    with_fb = accuracy(sim, tasks, lambda t: _refine_prompt(t, wrong[t.id], True))
    without = accuracy(sim, tasks, lambda t: _refine_prompt(t, wrong[t.id], False))
    assert with_fb > without + 0.03


def test_aggregation_follows_the_gold_answer_when_present_and_the_plurality_when_not(sim, tasks):
    info = {t.id: sim._info[t.id] for t in tasks}

    def agg(answers):
        return lambda t: (t.question + "\n\nHere are several candidate answers:\n"
                          + "\n".join("Answer: " + a for a in answers(info[t.id])) + "\n\nReconcile them. " + COT)

    gold_majority = accuracy(sim, tasks, agg(lambda i: [i.task.answer, i.task.answer, i.distractors[0]]))
    gold_absent = accuracy(sim, tasks, agg(lambda i: [i.distractors[0], i.distractors[0], i.distractors[1]]))
    cot = accuracy(sim, tasks, lambda t: t.question + "\n" + COT)
    assert gold_majority > cot + 0.08 and gold_absent < cot - 0.05
    t = tasks[0]
    reply = texts(sim.complete(body(agg(lambda i: [i.distractors[1]] * 3)(t))))[0]
    assert extract_answer(reply, "math") in (t.answer, info[t.id].distractors[1])


def test_debate_helps_most_on_hard_tasks():
    easy, hard = make_tasks(300, -0.5, "de"), make_tasks(300, 2.0, "dh")
    s = SimulatedLLM("default", easy + hard)
    p = s.profile
    e, h = s._info[easy[0].id], s._info[hard[0].id]
    f = prompt_features([{"role": "user", "content": "Other agents answered:\nAnswer: 1\nLet's think step by step."}])
    base = dict(f, debate=0.0)
    gain_easy = _sigmoid(s._logit(e, f, 0, 1)) - _sigmoid(s._logit(e, base, 0, 1))
    gain_hard_logit = s._logit(h, f, 0, 1) - s._logit(h, base, 0, 1)
    assert gain_hard_logit > s._logit(e, f, 0, 1) - s._logit(e, base, 0, 1) > 0
    assert gain_easy > 0 and p.interactions["debate_hardness"] > 0


def test_long_contexts_hurt(sim, tasks):
    filler = "Background notes that do not matter for the question. " * 350
    short = accuracy(sim, tasks[:150], lambda t: t.question + "\n" + COT)
    long = accuracy(sim, tasks[:150], lambda t: filler + "\n" + t.question + "\n" + COT)
    assert long < short - 0.05


# ------------------------------------------------------------------------------------------ 7. costs

def test_usage_grows_with_prompt_and_reply_length(sim, tasks):
    t = tasks[0]
    short = sim.complete(body(t.question))["usage"]
    long = sim.complete(body("Context. " * 300 + t.question + "\n" + COT))["usage"]
    three = sim.complete(body(t.question + "\n" + COT, temperature=0.5, n=3, seed=1))["usage"]
    assert long["prompt_tokens"] > short["prompt_tokens"] + 500
    assert long["completion_tokens"] > short["completion_tokens"]
    assert three["completion_tokens"] > 2 * sim.complete(body(t.question + "\n" + COT))["usage"]["completion_tokens"]
    for u in (short, long, three):
        assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    capped = sim.complete(body(t.question + "\n" + COT, max_tokens=5))
    assert capped["choices"][0]["finish_reason"] == "length" and capped["usage"]["completion_tokens"] <= 5


def test_latency_model_is_base_plus_per_token_with_bounded_jitter(sim, tasks):
    lat = sim.profile.latency
    b = body(tasks[0].question + "\n" + COT)
    r = sim.complete(b)
    per = r["usage"]["completion_tokens"]
    nominal = (lat["base_ms"] + lat["per_token_ms"] * per + lat["prompt_per_token_ms"] * r["usage"]["prompt_tokens"])
    got = sim.latency_s(b, r) * 1000
    assert abs(got - nominal) <= nominal * lat["jitter"] + 1e-6
    assert got == sim.latency_s(b, r) * 1000
    longer = sim.complete(body("Context. " * 800 + tasks[0].question + "\n" + COT))
    assert sim.latency_s(b, longer) * 1000 > got * 0.9 and sim.latency_s(b, longer) > lat["base_ms"] / 1000


# ------------------------------------------------------------------------------------------ 8. meta-agent mode

def test_meta_agent_prompt_gets_a_candidate_not_an_answer(sim):
    pytest.importorskip("metasearch.space.meta_sim")
    b = body(f"{META_MARKER}\nYou design agents. Propose a new agent as JSON with thought, name and code.",
             temperature=0.8, seed=3)
    reply = json.loads(texts(sim.complete(b))[0])
    assert set(reply) == {"thought", "name", "code"} and "def forward" in reply["code"]
    assert sim.complete(b) == sim.complete(b)


# ------------------------------------------------------------------------------------------ 9. profiles

def test_profiles_are_data_and_a_bad_one_is_a_one_line_error(tmp_path):
    assert {"default", "alt"} <= set(list_profiles())
    alt, default = load_profile("alt"), load_profile("default")
    assert alt.effects["debate"] < default.effects["debate"] and alt.effects["critique"] > default.effects["critique"]
    assert alt.earlier == default.earlier  # inherited through `extends`
    with pytest.raises(ConfigError, match="unknown simulator profile 'nope'"):
        load_profile("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text('extends = "default"\n[effects]\ncott = 1.0\n')
    with pytest.raises(ConfigError, match=r"unknown key\(s\) in \[effects\]: cott"):
        load_profile(str(bad))


def test_profiles_differ_in_which_techniques_pay_off(tasks):
    results = {}
    for name in ("default", "alt"):
        s = SimulatedLLM(name, tasks)
        info = {t.id: s._info[t.id] for t in tasks}
        debate = accuracy(s, tasks, lambda t: (t.question + "\n\nOther agents answered:\nAnswer: "
                                               + info[t.id].distractors[0] + "\nAnswer: " + t.answer + "\n\n" + COT))
        refine = accuracy(s, tasks, lambda t: _refine_prompt(t, info[t.id].distractors[0], True))
        results[name] = debate - refine
    assert results["default"] > results["alt"] + 0.1


def test_malformed_requests_raise_with_the_parameter_named(sim):
    for bad, param in [({"messages": []}, "messages"), ({"messages": [{"role": "x", "content": "hi"}]}, "messages[0]"),
                       ({"messages": [{"role": "user", "content": "hi"}], "n": 0}, "n"),
                       ({"messages": [{"role": "user", "content": "hi"}], "temperature": 5}, "temperature"),
                       ({"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "xml"}},
                        "response_format")]:
        with pytest.raises(SimRequestError) as err:
            sim.complete(bad)
        assert err.value.param == param
