"""Every payload of sandboxes/corpus.toml, through a real SandboxPool: no escape, expected outcome, pool survives.

"Escape" is concrete here: the answer carries proof that only a successful escape can produce (the word
ESCAPED returned after a forbidden operation, the host's /etc/hostname, a secret environment variable of the
host, the task's gold answer), or the canary file in a world-writable directory appears, or the host
process changes (pid, cwd, environment, imported modules, the caller's task dict). Each payload runs twice:
with all layers, and with the host's AST policy off, so that layers 2 and 3 are attacked directly.
"""

from __future__ import annotations

import os
import secrets
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from metasearch import REPO_ROOT
from metasearch.sandbox import Limits, SandboxPool, SandboxResult, check_policy

CORPUS_PATH = REPO_ROOT / "sandboxes" / "corpus.toml"
PAYLOADS: list[dict[str, Any]] = tomllib.loads(CORPUS_PATH.read_text(encoding="utf-8"))["payload"]
LIMITS = Limits(cpu_seconds=2, memory_mb=256, wall_timeout_s=5.0, max_lm_calls=50)
GOLD = "GOLD-" + secrets.token_hex(8)
SECRET = "SECRET-" + secrets.token_hex(8)
NORMAL = '''
def forward(task, lm):
    answers = [lm.ask(task.question, temperature=0.7) for _ in range(3)]
    return majority_vote(answers) + "/" + extract_answer("Answer: 12", task.kind)
'''


def payload_code(p: dict[str, Any]) -> str:
    extra = p.get("append")
    return p["code"] + (extra["text"] * extra["times"] + extra["suffix"] + "\n" if extra else "")


def lm_handler(method: str, kwargs: dict) -> Any:
    if kwargs.get("prompt") == "RAISE":
        raise RuntimeError("handler says no")
    return "reply" if method == "ask" else {"answer": "reply"}


def host_state() -> dict[str, Any]:
    return {"pid": os.getpid(), "cwd": os.getcwd(), "env": dict(os.environ), "modules": set(sys.modules)}


def run_corpus(enforce_policy: bool, canary_dir: Path) -> dict[str, Any]:
    os.environ["METASEARCH_SANDBOX_CANARY"] = SECRET
    task = {"id": "t-1", "question": "What is 6 + 6?", "kind": "math", "answer": GOLD,
            "meta": {"answer": GOLD, "difficulty": 0.3, "canary": str(canary_dir / "canary.txt"), "source": "x"}}
    task_before = repr(task)
    with SandboxPool(2, LIMITS, enforce_policy=enforce_policy) as pool:
        warm = pool.run(NORMAL, task, lm_handler)
        before = host_state()
        with ThreadPoolExecutor(4) as ex:
            results = list(ex.map(lambda p: pool.run(payload_code(p), task, lm_handler), PAYLOADS))
        after_normal = pool.run(NORMAL, task, lm_handler)
        after = host_state()
        pids_alive = pool.worker_pids()
    return {"results": dict(zip((p["name"] for p in PAYLOADS), results)), "warm": warm, "normal": after_normal,
            "before": before, "after": after, "task_before": task_before, "task_after": repr(task),
            "pids_alive": pids_alive}


@pytest.fixture(scope="module")
def canary_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("canary")
    path.chmod(0o777)  # only the sandbox, not file permissions, may stop the write
    return path


@pytest.fixture(scope="module")
def full_run(canary_dir: Path) -> dict[str, Any]:
    saved = os.environ.get("METASEARCH_SANDBOX_CANARY")
    try:
        return run_corpus(True, canary_dir)
    finally:
        if saved is None:
            os.environ.pop("METASEARCH_SANDBOX_CANARY", None)


@pytest.fixture(scope="module")
def inner_run(canary_dir: Path) -> dict[str, Any]:
    try:
        return run_corpus(False, canary_dir)
    finally:
        os.environ.pop("METASEARCH_SANDBOX_CANARY", None)


def escape_proofs() -> list[str]:
    proofs = ["ESCAPED", GOLD, SECRET]
    try:
        hostname = Path("/etc/hostname").read_text().strip()
    except OSError:
        hostname = ""
    if len(hostname) >= 6:
        proofs.append(hostname)
    return proofs


def assert_no_escape(p: dict[str, Any], result: SandboxResult, canary_dir: Path) -> None:
    answer = result.answer or ""
    for proof in escape_proofs():
        assert proof not in answer, f"{p['name']}: escaped, answer carries {proof!r}"
    assert not (canary_dir / "canary.txt").exists(), f"{p['name']}: wrote the canary file"
    if "max_answer_bytes" in p and result.answer is not None:
        assert len(result.answer.encode()) <= p["max_answer_bytes"]


def test_corpus_is_complete() -> None:
    names = [p["name"] for p in PAYLOADS]
    assert len(PAYLOADS) >= 45 and len(set(names)) == len(names)
    kinds = {"ok", "policy", "syntax", "contract", "runtime", "timeout", "memory", "output", "crash", "lm"}
    for p in PAYLOADS:
        assert p["layer"] in {"policy", "restricted", "process", "design"}, p["name"]
        assert set(p["expect"]) <= kinds and set(p["inner"]) <= kinds, p["name"]
    categories = {p["category"] for p in PAYLOADS}
    assert {"import", "walk", "frames", "format", "type", "builtin", "getattr", "resource", "process",
            "exception", "gold", "lm", "nesting", "star"} <= categories


@pytest.mark.parametrize("p", PAYLOADS, ids=[p["name"] for p in PAYLOADS])
def test_layer_one_verdict_matches_the_corpus(p: dict[str, Any]) -> None:
    """Payloads said to be stopped by the policy are; the others pass it, so the inner layers are what stop them."""
    violations = check_policy(payload_code(p))
    if p["layer"] == "policy":
        assert violations, p["name"]
    else:
        assert not violations, [str(v) for v in violations]


@pytest.mark.parametrize("p", PAYLOADS, ids=[p["name"] for p in PAYLOADS])
def test_payload_with_all_layers(p: dict[str, Any], full_run: dict[str, Any], canary_dir: Path) -> None:
    result = full_run["results"][p["name"]]
    outcome = "ok" if result.ok else result.error_kind
    assert outcome in p["expect"], f"{p['name']}: got {outcome}: {result.error}"
    assert_no_escape(p, result, canary_dir)


@pytest.mark.parametrize("p", PAYLOADS, ids=[p["name"] for p in PAYLOADS])
def test_payload_with_policy_off(p: dict[str, Any], inner_run: dict[str, Any], canary_dir: Path) -> None:
    result = inner_run["results"][p["name"]]
    outcome = "ok" if result.ok else result.error_kind
    assert outcome in p["inner"], f"{p['name']}: got {outcome}: {result.error}"
    assert_no_escape(p, result, canary_dir)


@pytest.mark.parametrize("which", ["full_run", "inner_run"])
def test_host_is_unchanged_and_pool_still_serves(which: str, request: pytest.FixtureRequest) -> None:
    run = request.getfixturevalue(which)
    before, after = run["before"], run["after"]
    assert after["pid"] == before["pid"] and after["cwd"] == before["cwd"]
    assert after["env"] == before["env"]
    assert after["modules"] - before["modules"] == set()
    assert run["task_after"] == run["task_before"]
    assert run["warm"].ok and run["warm"].answer == "reply/12"
    assert run["normal"].ok and run["normal"].answer == "reply/12", run["normal"]
    assert len(run["pids_alive"]) == 2
