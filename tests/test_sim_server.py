"""The simulated LLM over HTTP (aiohttp) and through SimTransport, driven by the real `openai` client."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from metasearch.llm.server import SimTransport, start_in_thread
from metasearch.llm.simulated import SimulatedLLM
from metasearch.tasks.base import Task

TASKS = [Task(f"s{i}", f"A kiosk number {i} has {20 + i} cards. It sells {i % 7 + 1} of them. How many cards does "
              f"kiosk number {i} have now?", str(20 + i - (i % 7 + 1)), meta={"difficulty": 0.0}) for i in range(50)]
COT = "Let's think step by step. End with 'Answer: <answer>'."


@pytest.fixture(scope="module")
def server():
    url, stop = start_in_thread("default", latency_ms=0, tasks=TASKS)
    yield url
    stop()


@pytest.fixture(scope="module")
def client(server):
    with openai.OpenAI(base_url=server, api_key="x", max_retries=0) as c:
        yield c


def ask(client, content, **kw):
    return client.chat.completions.create(model="sim-default", messages=[{"role": "user", "content": content}], **kw)


def test_n_choices_seed_determinism_and_usage(client):
    q = TASKS[0].question + "\n" + COT
    a = ask(client, q, n=4, temperature=0.9, seed=5)
    b = ask(client, q, n=4, temperature=0.9, seed=5)
    assert len(a.choices) == 4 and [c.message.content for c in a.choices] == [c.message.content for c in b.choices]
    assert a.usage.total_tokens == a.usage.prompt_tokens + a.usage.completion_tokens > 0
    t0 = ask(client, q, temperature=0, seed=1).choices[0].message.content
    assert t0 == ask(client, q, temperature=0, seed=2).choices[0].message.content


def test_http_and_in_process_give_identical_bodies(server):
    body = {"model": "sim-default", "messages": [{"role": "user", "content": TASKS[3].question}], "n": 2,
            "temperature": 0.7, "seed": 9}
    over_http = httpx.post(server + "/chat/completions", json=body).json()
    assert over_http == SimulatedLLM("default", TASKS).complete(body)


def test_json_mode(client):
    q = TASKS[1].question + "\n\nReply with a JSON object with the fields: thinking: your reasoning, answer: the number"
    reply = json.loads(ask(client, q, response_format={"type": "json_object"}).choices[0].message.content)
    assert set(reply) == {"thinking", "answer"}


def test_models_and_malformed_request(client, server):
    ids = [m.id for m in client.models.list().data]
    assert "sim-default" in ids and "sim-alt" in ids
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], n=0)
    assert err.value.status_code == 400 and err.value.body["param"] == "n"
    raw = httpx.post(server + "/chat/completions", content=b"{not json")
    assert raw.status_code == 400 and raw.json()["error"]["type"] == "invalid_request_error"


def test_register_tasks_over_http(server):
    t = Task("new-1", "A tram depot keeps 31 trams and buys 4 more trams. How many trams does the depot keep?", "35")
    r = httpx.post(server + "/sim/register", json={"tasks": [t.to_dict()]})
    assert r.status_code == 200 and r.json()["registered"] == 1
    assert httpx.post(server + "/sim/register", json={"tasks": "x"}).status_code == 400


def test_sim_transport_serves_the_openai_client_in_process():
    sim = SimulatedLLM("default", TASKS)
    c = openai.OpenAI(base_url="http://sim.local/v1", api_key="x",
                      http_client=httpx.Client(transport=SimTransport(sim)))
    r = c.chat.completions.create(model="sim-default", messages=[{"role": "user", "content": TASKS[2].question}],
                                  n=3, temperature=0.5, seed=1)
    assert len(r.choices) == 3 and r.usage.completion_tokens > 0
    assert [m.id for m in c.models.list().data][0] == "sim-default"


def test_latency_is_slept_without_blocking_other_requests():
    url, stop = start_in_thread("default", latency_ms=300, tasks=TASKS)
    try:
        body = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
        with httpx.Client(timeout=10) as h, ThreadPoolExecutor(32) as pool:
            h.post(url + "/chat/completions", json=body)  # warm up
            t0 = time.perf_counter()
            codes = list(pool.map(lambda _: h.post(url + "/chat/completions", json=body).status_code, range(64)))
            elapsed = time.perf_counter() - t0
        assert codes == [200] * 64
        assert 0.3 <= elapsed < 3.0  # 64 requests of 300 ms each, overlapped
    finally:
        stop()
