"""The LLM client: real HTTP on 127.0.0.1 (tests/faulty_endpoint.py), retries, limits, cache, budget, seeds."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from metasearch.config import BudgetConfig, EndpointConfig
from metasearch.errors import BudgetExceeded, EndpointError
from metasearch.llm.accounting import Accountant, Usage
from metasearch.llm.cache import ResponseCache
from metasearch.llm.client import LM, LLMCallError, TaskLM, json_instruction, parse_json_reply
from metasearch.llm.seeding import derive_seed

sys.path.insert(0, str(Path(__file__).parent))
from faulty_endpoint import FAULTS, FaultyEndpoint  # noqa: E402

FAST = {"backoff_base_s": 0.01, "backoff_cap_s": 0.05}


def endpoint(ep: FaultyEndpoint, **kw: object) -> EndpointConfig:
    return EndpointConfig(base_url=ep.base_url, model="canned", **{"timeout_s": 5.0, "max_retries": 3, **kw})


@pytest.fixture
def server() -> Iterator[FaultyEndpoint]:
    with FaultyEndpoint() as ep:
        yield ep


# -- plain calls ----------------------------------------------------------------------------------------------------


def test_ask_sends_model_seed_and_system_and_returns_the_text(server: FaultyEndpoint) -> None:
    with LM(endpoint(server), seed=7) as lm:
        text = lm.ask("What is 2+2?", system="You are a calculator.")
    assert isinstance(text, str) and text.startswith("canned reply") and "What is 2+2?" in text
    body = server.stats.bodies[-1]
    assert body["model"] == "canned"
    assert body["messages"] == [{"role": "system", "content": "You are a calculator."},
                                {"role": "user", "content": "What is 2+2?"}]
    assert isinstance(body["seed"], int) and 0 <= body["seed"] < 2**31
    assert "response_format" not in body


def test_n_greater_than_one_returns_n_texts(server: FaultyEndpoint) -> None:
    with LM(endpoint(server)) as lm:
        texts = lm.ask("sample", n=3, temperature=0.9)
    assert isinstance(texts, list) and len(texts) == 3 and len(set(texts)) == 3
    assert server.stats.bodies[-1]["n"] == 3


def test_n_samples_become_single_calls_for_servers_that_ignore_n() -> None:
    """llama.cpp answers one choice whatever `n` says: with native_n off, n samples are n seeded single calls."""
    with FaultyEndpoint(single_choice=True) as server:
        with LM(endpoint(server, max_retries=0)) as lm, pytest.raises(LLMCallError, match="1 choices, asked for 3"):
            lm.ask("sample", n=3, temperature=0.9)  # native_n on (the default): a short reply is malformed

        def sample(seed: int) -> tuple[list[str], list[dict], Usage]:
            before = len(server.stats.bodies)
            with LM(endpoint(server, native_n=False, cache=False), seed=seed) as lm:
                texts = lm.ask("sample", n=3, temperature=0.9)
                usage = lm.usage
            return texts, server.stats.bodies[before:], usage

        texts, bodies, usage = sample(1)
        assert isinstance(texts, list) and len(texts) == 3 and len(set(texts)) == 3
        assert [b["n"] for b in bodies] == [1, 1, 1] and len({b["seed"] for b in bodies}) == 3
        assert usage.calls == 3 and usage.prompt_tokens > 0
        again, again_bodies, _ = sample(1)
        assert again == texts and [b["seed"] for b in again_bodies] == [b["seed"] for b in bodies]
        assert sample(2)[0] != texts


def test_same_seed_same_requests_same_texts_and_other_seed_differs(server: FaultyEndpoint) -> None:
    def run(seed: int) -> tuple[list[str], list[int]]:
        with LM(endpoint(server), seed=seed) as lm:
            texts = [lm.ask(f"q{i}", temperature=1.0) for i in range(3)]
        return texts, [b["seed"] for b in server.stats.bodies[-3:]]

    a, b, c = run(1), run(1), run(2)
    assert a == b
    assert a[1] != c[1] and a[0] != c[0]


def test_usage_counts_tokens_and_cost_from_the_reply(server: FaultyEndpoint) -> None:
    ep = endpoint(server, price_prompt_per_1k=1.0, price_completion_per_1k=2.0)
    with LM(ep) as lm:
        result = lm.chat([{"role": "user", "content": "x" * 40}])
        lm.ask("y")
        total = lm.usage
    assert result.usage.prompt_tokens == 10 + 40 // 4  # what the canned server reports
    assert result.usage.cost == pytest.approx((result.usage.prompt_tokens + 2 * result.usage.completion_tokens) / 1000)
    assert total.calls == 2 and total.cached_calls == 0
    assert total.total_tokens == total.prompt_tokens + total.completion_tokens > result.usage.total_tokens


def test_usage_is_estimated_when_the_reply_has_none() -> None:
    with FaultyEndpoint(usage=False, replies=["abcdefghijkl"]) as ep, LM(endpoint(ep)) as lm:
        result = lm.chat([{"role": "user", "content": "p" * 80}])
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (20, 3)


# -- retries ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", [f for f in FAULTS if f != "400"])
def test_each_fault_kind_is_retried_then_succeeds(fault: str) -> None:
    with FaultyEndpoint(script=[fault], slow_s=1.0) as ep:
        with LM(endpoint(ep, timeout_s=0.4), **FAST) as lm:
            texts = lm.ask("hello", n=2, temperature=0.5)
        assert ep.stats.faults[fault] == 1
        assert ep.stats.chat_requests == 2
    assert len(texts) == 2 and all(t.startswith("canned reply") for t in texts)


def test_retry_after_is_honoured() -> None:
    with FaultyEndpoint(script=["429", "429"], retry_after=0.25) as ep:
        with LM(endpoint(ep), **FAST) as lm:
            lm.ask("hi")
        gaps = [b - a for a, b in zip(ep.stats.times, ep.stats.times[1:])]
    assert len(gaps) == 2 and min(gaps) >= 0.25


def test_all_faults_fail_fast_with_a_clear_error() -> None:
    with FaultyEndpoint(rates={"500": 1.0}) as ep:
        with LM(endpoint(ep, max_retries=2)) as lm:  # default backoff: base 0.5 s, so at most 0.5 + 1.0 of sleep
            started = time.monotonic()
            with pytest.raises(LLMCallError) as info:
                lm.ask("hi")
            elapsed = time.monotonic() - started
        assert ep.stats.chat_requests == 3
    message = str(info.value)
    assert ep.base_url in message and "3 attempts" in message and "HTTP 500" in message
    assert elapsed < 4.0


def test_timeouts_are_bounded_too() -> None:
    with FaultyEndpoint(rates={"slow": 1.0}, slow_s=2.0) as ep:
        with LM(endpoint(ep, max_retries=1, timeout_s=0.3), **FAST) as lm:
            started = time.monotonic()
            with pytest.raises(LLMCallError, match=r"2 attempts: no reply within 0.3s"):
                lm.ask("hi")
            assert time.monotonic() - started < 1.5


def test_a_bad_request_is_not_retried() -> None:
    with FaultyEndpoint(script=["400"]) as ep:
        with LM(endpoint(ep), **FAST) as lm, pytest.raises(LLMCallError, match="HTTP 400"):
            lm.ask("hi")
        assert ep.stats.chat_requests == 1


def test_a_rejected_key_is_an_endpoint_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METASEARCH_TEST_KEY", "wrong")
    with FaultyEndpoint(api_key="right") as ep:
        with LM(endpoint(ep, api_key_env="METASEARCH_TEST_KEY"), **FAST) as lm:
            with pytest.raises(EndpointError, match=r"API key rejected \(401\)"):
                lm.ask("hi")
            with pytest.raises(EndpointError, match=r"API key rejected \(401\)"):
                lm.check()
        assert ep.stats.chat_requests == 1
        monkeypatch.setenv("METASEARCH_TEST_KEY", "right")
        with LM(endpoint(ep, api_key_env="METASEARCH_TEST_KEY")) as lm:
            assert lm.ask("hi").startswith("canned")
        assert ep.stats.auth_headers[-1] == "Bearer right"


# -- check --------------------------------------------------------------------------------------------------------------


def test_check_accepts_a_working_endpoint(server: FaultyEndpoint) -> None:
    with LM(endpoint(server)) as lm:
        lm.check()


def test_check_reports_a_closed_port() -> None:
    with FaultyEndpoint() as ep:
        url = ep.base_url
    with LM(EndpointConfig(base_url=url, model="m")) as lm, pytest.raises(EndpointError) as info:
        lm.check()
    assert str(info.value) == f"endpoint {url}: connection refused"


def test_check_reports_an_html_server() -> None:
    with FaultyEndpoint(html=True) as ep, LM(endpoint(ep)) as lm, pytest.raises(EndpointError) as info:
        lm.check()
    assert str(info.value) == f"endpoint {ep.base_url}: not an OpenAI-compatible API (got HTML)"


# -- concurrency --------------------------------------------------------------------------------------------------------


def test_concurrency_limit_is_shared_across_lms_and_threads() -> None:
    with FaultyEndpoint(latency_s=0.03) as ep:
        cfg = endpoint(ep, concurrency=4)
        lms = [LM(cfg, seed=i) for i in range(2)]  # two LMs, one limit
        errors: list[BaseException] = []

        def work(i: int) -> None:
            try:
                lms[i % 2].ask(f"question {i}")
            except BaseException as err:  # pragma: no cover - reported below
                errors.append(err)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for lm in lms:
            lm.close()
        assert not errors
        assert ep.stats.chat_requests == 32
        assert 2 <= ep.stats.max_in_flight <= 4


# -- cache --------------------------------------------------------------------------------------------------------------


def test_cache_hit_makes_no_request_and_sampling_changes_miss(server: FaultyEndpoint, tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "archive.db")
    with LM(endpoint(server), cache=cache) as lm:
        first = lm.chat([{"role": "user", "content": "q"}], temperature=0.5)
        assert server.stats.chat_requests == 1 and not first.cached
        again = lm.chat([{"role": "user", "content": "q"}], temperature=0.5)
        assert server.stats.chat_requests == 1 and again.cached and again.texts == first.texts
        assert again.usage.cost == 0.0 and again.usage.cached_calls == 1
        assert again.usage.total_tokens == first.usage.total_tokens  # work is reported, not billed
        for change in ({"temperature": 0.7}, {"temperature": 0.5, "n": 2}, {"temperature": 0.5, "json_mode": True},
                       {"temperature": 0.5, "max_tokens": 9}, {"temperature": 0.5, "seed": 123}):
            before = server.stats.chat_requests
            assert not lm.chat([{"role": "user", "content": "q"}], **change).cached  # type: ignore[arg-type]
            assert server.stats.chat_requests == before + 1
        usage = lm.usage
    assert usage.calls == 7 and usage.cached_calls == 1
    assert len(cache) == 6
    cache.close()


def test_cache_is_bypassed_when_the_endpoint_says_so(server: FaultyEndpoint, tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "archive.db")
    with LM(endpoint(server, cache=False), cache=cache) as lm:
        lm.ask("q")
        lm.ask("q")
    assert server.stats.chat_requests == 2 and len(cache) == 0
    cache.close()


# -- budget -------------------------------------------------------------------------------------------------------------


def test_budget_stops_calls(server: FaultyEndpoint) -> None:
    accountant = Accountant(BudgetConfig(tokens=100))
    with LM(endpoint(server), accountant=accountant) as lm:
        with pytest.raises(BudgetExceeded, match="token budget spent"):
            for i in range(100):
                lm.ask(f"question number {i}")
        sent = server.stats.chat_requests
        assert 1 < sent < 100
        with pytest.raises(BudgetExceeded):
            lm.ask("one more")
    assert server.stats.chat_requests == sent  # refused before any request
    assert accountant.spent().total_tokens >= 100


def test_accountant_resumes_from_spent_usage_and_counts_dollars() -> None:
    acc = Accountant(BudgetConfig(dollars=1.0), spent=Usage(cost=0.6, calls=3))
    acc.check()
    acc.charge(Usage(cost=0.3, calls=1))
    with pytest.raises(BudgetExceeded, match="dollar budget"):
        acc.charge(Usage(cost=0.2, calls=1))
    with pytest.raises(BudgetExceeded):
        acc.check()
    assert acc.spent().calls == 5 and acc.spent().cost == pytest.approx(1.1)
    unlimited = Accountant(BudgetConfig())
    unlimited.charge(Usage(prompt_tokens=10**9, cost=10**6))
    unlimited.check()


def test_accountant_is_thread_safe() -> None:
    acc = Accountant()

    def charge() -> None:
        for _ in range(1000):
            acc.charge(Usage(prompt_tokens=1, completion_tokens=2, calls=1))

    threads = [threading.Thread(target=charge) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert acc.spent() == Usage(prompt_tokens=8000, completion_tokens=16000, calls=8000)


def test_usage_add_and_dict_round_trip() -> None:
    u = Usage(1, 2, 0.5, 1, 0).add(Usage(3, 4, 0.25, 2, 1))
    assert u == Usage(4, 6, 0.75, 3, 1) and u.total_tokens == 10
    assert u.to_dict()["total_tokens"] == 10 and Usage.from_dict(u.to_dict()) == u


# -- seeds and TaskLM -----------------------------------------------------------------------------------------------------


def test_derive_seed_is_stable_across_processes() -> None:
    here = derive_seed(0, "cand", "task-1", 3)
    out = subprocess.run([sys.executable, "-c", "from metasearch.llm.seeding import derive_seed;"
                          "print(derive_seed(0, 'cand', 'task-1', 3))"], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "123"})
    assert int(out.stdout) == here and 0 <= here < 2**31
    assert derive_seed(0, "cand", "task-1", 4) != here and derive_seed(0, "cand", "1", "task-") != derive_seed(
        0, "cand1", "task-")


def test_task_lm_seeds_differ_per_task_and_call_and_are_reproducible(server: FaultyEndpoint) -> None:
    with LM(endpoint(server), seed=5) as lm:
        def seeds(candidate: str, task: str) -> list[int]:
            tlm = lm.for_task(candidate, task)
            tlm.ask("a")
            tlm.ask_json("b", fields={"answer": "the answer"})
            tlm.ask("c", seed=42)
            assert tlm.calls == 3
            return [b["seed"] for b in server.stats.bodies[-3:]]

        one, again, other_task, other_cand = seeds("k", "t1"), seeds("k", "t1"), seeds("k", "t2"), seeds("j", "t1")
    assert one == again
    assert one[0] != one[1] and one[2] == 42
    assert one[:2] != other_task[:2] and one[:2] != other_cand[:2]
    assert one[0] == derive_seed(5, "k", "t1", 0) and one[1] == derive_seed(5, "k", "t1", 1)


def test_task_lm_counts_its_own_usage(server: FaultyEndpoint) -> None:
    with LM(endpoint(server)) as lm:
        lm.ask("outside")
        tlm = lm.for_task("k", "t")
        tlm.ask("inside", n=2, temperature=0.3)
        assert tlm.usage.calls == 1 and lm.usage.calls == 2
        assert 0 < tlm.usage.total_tokens < lm.usage.total_tokens


def test_handle_serves_ask_and_ask_json(server: FaultyEndpoint) -> None:
    with LM(endpoint(server)) as lm:
        tlm = lm.for_task("k", "t")
        assert tlm.handle("ask", {"prompt": "hi"}).startswith("canned")
        assert len(tlm.handle("ask", {"prompt": "hi", "n": 2, "temperature": 1})) == 2
        assert set(tlm.handle("ask_json", {"prompt": "hi", "fields": {"answer": "x", "thinking": "y"}})) >= {
            "answer", "thinking"}
        assert tlm.calls == 3


@pytest.mark.parametrize(("method", "kwargs", "message"), [
    ("exec", {"prompt": "x"}, "unknown lm method"),
    ("ask", {"prompt": "x", "api_key": "k"}, "unknown argument 'api_key'"),
    ("ask", {}, "missing argument 'prompt'"),
    ("ask", {"prompt": 3}, "prompt must be a string"),
    ("ask", {"prompt": "x" * 100_001}, "the limit is 100,000"),
    ("ask", {"prompt": "x", "system": ["s"]}, "system must be a string"),
    ("ask", {"prompt": "x", "n": 0}, "n must be an integer from 1 to 16"),
    ("ask", {"prompt": "x", "n": 17}, "n must be"),
    ("ask", {"prompt": "x", "n": True}, "n must be"),
    ("ask", {"prompt": "x", "n": None}, "n must be"),
    ("ask", {"prompt": "x", "temperature": 2.5}, "temperature must be a number between 0 and 2"),
    ("ask", {"prompt": "x", "temperature": "hot"}, "temperature must be"),
    ("ask", {"prompt": "x", "temperature": float("nan")}, "temperature must be"),
    ("ask_json", {"prompt": "x"}, "missing argument 'fields'"),
    ("ask_json", {"prompt": "x", "fields": ["answer"]}, "fields must be a dict"),
    ("ask_json", {"prompt": "x", "fields": {f"f{i}": "d" for i in range(21)}}, "fields must be a dict of 1 to 20"),
    ("ask_json", {"prompt": "x", "fields": {"answer": 1}}, "description string"),
    ("ask_json", {"prompt": "x", "fields": {"a": "b"}, "n": 2}, "unknown argument 'n'"),
    ("ask", ["x"], "arguments must be a mapping"),
])
def test_handle_rejects_bad_requests(method: str, kwargs: object, message: str) -> None:
    lm = object.__new__(LM)  # never reached: validation happens before any call
    with pytest.raises(ValueError, match=message):
        TaskLM(lm, "k", "t").handle(method, kwargs)  # type: ignore[arg-type]


# -- JSON replies -----------------------------------------------------------------------------------------------------


def test_ask_json_asks_for_json_and_parses_it(server: FaultyEndpoint) -> None:
    with LM(endpoint(server)) as lm:
        reply = lm.ask_json("Solve it.", fields={"thinking": "your reasoning", "answer": "the final answer"})
    assert set(reply) == {"thinking", "answer"}
    body = server.stats.bodies[-1]
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"][-1]["content"].endswith(
        "Reply with a JSON object with the fields: thinking: your reasoning, answer: the final answer")


def test_ask_json_repairs_a_bad_reply_with_the_error_fed_back() -> None:
    replies = ["I think it is 4.", 'Sure! ```json\n{"answer": "4"}\n``` Hope that helps.']
    with FaultyEndpoint(replies=replies) as ep, LM(endpoint(ep)) as lm:
        tlm = lm.for_task("k", "t")
        assert tlm.ask_json("2+2?", fields={"answer": "a number"}) == {"answer": "4"}
        first, second = ep.stats.bodies
    assert second["seed"] != first["seed"]
    assert second["messages"][-2] == {"role": "assistant", "content": "I think it is 4."}
    assert "no JSON object found" in second["messages"][-1]["content"]
    assert tlm.calls == 1 and tlm.usage.calls == 2


def test_ask_json_gives_up_after_the_repairs() -> None:
    with FaultyEndpoint(replies=['{"other": 1}'] * 3) as ep, LM(endpoint(ep)) as lm:
        with pytest.raises(LLMCallError, match="lacks the fields: answer"):
            lm.ask_json("q", fields={"answer": "a"}, repairs=2)
        assert ep.stats.chat_requests == 3


def test_parse_json_reply_tolerates_prose_and_fences() -> None:
    assert parse_json_reply('Here: {"a": 1, "b": {"c": 2}} done', ["a"]) == {"a": 1, "b": {"c": 2}}
    assert parse_json_reply('{not json} then {"a": "x"}', ["a"]) == {"a": "x"}
    assert parse_json_reply('```json\n{"a": [1, 2]}\n```', ["a"]) == {"a": [1, 2]}
    with pytest.raises(ValueError, match="no JSON object"):
        parse_json_reply("[1, 2]", ["a"])
    assert json_instruction({"a": "b"}) == "Reply with a JSON object with the fields: a: b"


# -- the simulated LLM ------------------------------------------------------------------------------------------------


def test_sim_endpoint_goes_through_the_openai_client(tmp_path: Path) -> None:
    pytest.importorskip("metasearch.llm.server")
    pytest.importorskip("metasearch.llm.simulated")
    from metasearch.tasks.base import Task

    task = Task(id="t1", question="What is 12 + 30?", answer="42", meta={"difficulty": -3.0})
    cfg = EndpointConfig(base_url="sim://default")
    cache = ResponseCache(tmp_path / "a.db")
    with LM(cfg, seed=3, tasks=[task]) as a, LM(cfg, seed=3, tasks=[task], cache=cache) as b:
        a.check()
        prompt = f"{task.question}\nLet's think step by step."
        first = a.ask(prompt, temperature=0.8)
        assert first == b.ask(prompt, temperature=0.8) and str(first).rstrip().endswith("42")
        samples = a.ask(prompt, temperature=0.8, n=3)
        assert isinstance(samples, list) and len(samples) == 3
        reply = a.ask_json(task.question, fields={"thinking": "your reasoning", "answer": "the final answer"})
        assert reply["answer"] == "42" and set(reply) == {"thinking", "answer"}
        assert a.usage.calls == 3 and a.usage.total_tokens > 0
        assert b.usage.cached_calls == 0
        assert b.ask(prompt, temperature=0.8) == first and b.usage.cached_calls == 1  # second time from the cache
    cache.close()


def test_sim_server_over_http_matches_in_process() -> None:
    server = pytest.importorskip("metasearch.llm.server")
    from metasearch.tasks.base import Task

    task = Task(id="t2", question="What is 3 + 4?", answer="7", meta={"difficulty": 0.0})
    base_url, stop = server.start_in_thread(profile="default", latency_ms=0, tasks=[task])
    try:
        with LM(EndpointConfig(base_url=base_url, model="sim-default"), seed=1) as http_lm, \
                LM(EndpointConfig(base_url="sim://default", model="sim-default"), seed=1, tasks=[task]) as sim_lm:
            http_lm.check()
            prompt = f"{task.question} Let's think step by step."
            for lm in (http_lm, sim_lm):
                assert lm.ask(prompt, temperature=0.7, n=4) == http_lm.ask(prompt, temperature=0.7, n=4)
            assert http_lm.for_task("k", task.id).ask(prompt, temperature=0.7) == \
                sim_lm.for_task("k", task.id).ask(prompt, temperature=0.7)
    finally:
        stop()
