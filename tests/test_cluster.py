"""A real two-node Ray cluster on this machine: a search spreads its evaluations over both nodes, keeps the archive
on the driver, and keeps the endpoint's global LLM concurrency limit across nodes.

Both `ray start` nodes and the driver run inside `unshare -n -p -f --mount-proc`: a network namespace with only
loopback (Ray then has no other address to pick, see DESIGN.md) and a PID namespace, so when the namespace's first
process exits the kernel kills every process started inside it: the cluster is stopped by the process id we
started, and no other Ray instance on the machine is touched (never `ray stop`).

The driver half of this file runs inside the namespace as `python tests/test_cluster.py driver SPEC.json`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
PORT = 6390  # free by construction: the namespace has its own network stack
LIMIT = 2  # endpoint.concurrency: LLM calls in flight across the whole cluster
LATENCY_MS = 150  # so that calls overlap and the limit binds


# ------------------------------------------------------------------------------------------------ driver side

def counting_server(latency_ms: float) -> tuple[str, dict[str, int], Callable[[], None]]:
    """The simulated LLM over HTTP, counting chat requests in flight (now, max, total)."""
    from aiohttp import web

    from metasearch.llm.server import build_sim, make_app

    counts = {"now": 0, "max": 0, "total": 0}
    lock = threading.Lock()

    @web.middleware
    async def count(request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.endswith("/chat/completions"):
            return await handler(request)
        with lock:
            counts["now"] += 1
            counts["total"] += 1
            counts["max"] = max(counts["max"], counts["now"])
        try:
            return await handler(request)
        finally:
            with lock:
                counts["now"] -= 1

    app = make_app(build_sim("default", ("builtin:arith",)), latency_ms=latency_ms)
    app.middlewares.append(count)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def stop() -> None:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    return f"http://127.0.0.1:{port}/v1", counts, stop


def drive(spec: dict[str, Any]) -> dict[str, Any]:
    """Run a small search on the cluster at spec['address']; report where work ran and the LLM concurrency."""
    import ray

    from metasearch.archive import Archive
    from metasearch.config import parse_config
    from metasearch.search import Search

    base_url, counts, stop = counting_server(LATENCY_MS)
    try:
        cfg = parse_config({
            "name": "cluster", "seed": 0, "archive": spec["archive"],
            "endpoint": {"base_url": base_url, "model": "sim-default", "concurrency": LIMIT},
            "budget": {"iterations": 2},
            "suite": {"source": "builtin:arith", "val": 8, "test": 8},
            "strategy": {"name": "meta", "seeds": ["cot", "direct"], "meta": {"reflections": 0, "dry_run_tasks": 2}},
            "evaluator": {"use_ray": True, "actors": 2, "tasks_in_flight": 4, "cascade": False, "top_k_final": 1,
                          "wall_timeout_s": 30},
        }, "<cluster test>")
        summary = Search(cfg, address=spec["address"]).run()
        nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    finally:
        stop()
    with Archive(cfg.archive, create=False) as archive:
        run_id = summary["run_id"]
        placed = [e["data"]["nodes"] for e in archive.events(run_id, "evaluator_nodes")]
        evaluations = sum(len(archive.evaluations(c["id"])) for c in archive.candidates(run_id))
        statuses = [c["status"] for c in archive.candidates(run_id)]
    return {"summary": summary, "cluster_nodes": nodes,  "actor_nodes": placed[0] if placed else [],
            "llm": counts, "evaluations": evaluations, "statuses": statuses, "driver_pid": os.getpid()}


# ------------------------------------------------------------------------------------------------ test side

def _ray_cli() -> str:
    beside = Path(sys.executable).with_name("ray")
    return str(beside) if beside.exists() else (shutil.which("ray") or "ray")


def cluster_script(temp_dir: str, spec_path: Path, out_path: Path) -> str:
    """The shell run inside the namespace: a head node, a second node with its own resources, then the driver."""
    ray, py = shlex.quote(_ray_cli()), shlex.quote(sys.executable)
    common = f"--num-cpus=1 --disable-usage-stats"
    token = "export RAY_AUTH_MODE=token" if (Path.home() / ".ray" / "auth_token").exists() else ":"
    return "\n".join([
        "set -e",
        "ip link set lo up",
        "unset RAY_ADDRESS",
        token,
        f"{ray} start --head --port={PORT} --temp-dir={shlex.quote(temp_dir)} --include-dashboard=false "
        f"--resources='{{\"head_node\": 1}}' {common}",
        f"{ray} start --address=127.0.0.1:{PORT} --resources='{{\"second_node\": 1}}' {common}",
        f"{py} {shlex.quote(str(Path(__file__).resolve()))} driver {shlex.quote(str(spec_path))} > "
        f"{shlex.quote(str(out_path))}",
    ])


@pytest.mark.cluster
def test_a_search_spreads_over_two_nodes_and_keeps_the_global_llm_limit(tmp_path: Path) -> None:
    if shutil.which("unshare") is None:
        pytest.fail("the cluster lane needs `unshare` (util-linux) and the right to create namespaces")
    temp_dir = tempfile.mkdtemp(prefix="msray-", dir="/tmp")  # short: Ray's unix socket paths must fit 107 bytes
    spec_path, out_path = tmp_path / "spec.json", tmp_path / "out.json"
    spec_path.write_text(json.dumps({"archive": str(tmp_path / "cluster.db"), "address": f"127.0.0.1:{PORT}"}))
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(["unshare", "-n", "-p", "-f", "--mount-proc", "bash", "-c",
                             cluster_script(temp_dir, spec_path, out_path)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=420)
    except subprocess.TimeoutExpired:
        log = ""
    finally:
        if proc.poll() is None:  # the namespace's pid 1 dies with its group, and the kernel kills the rest
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert proc.returncode == 0, f"cluster run failed (exit {proc.returncode}):\n{log[-4000:]}"
    out = json.loads(out_path.read_text())

    # Two live nodes, and the two evaluator actors were placed one on each.
    assert len(set(out["cluster_nodes"])) == 2
    actor_nodes = {a["node_id"] for a in out["actor_nodes"]}
    assert actor_nodes == set(out["cluster_nodes"]), out["actor_nodes"]
    # Tasks go round-robin over the actors, so with more tasks than actors both nodes evaluated.
    assert out["evaluations"] >= 2 * len(out["actor_nodes"])
    # The archive is complete (driver-side single writer) and the run finished.
    summary = out["summary"]
    assert summary["stop_reason"].startswith("finished"), summary
    assert summary["winner"]["test_score"] is not None
    assert set(out["statuses"]) <= {"evaluated", "failed", "rejected", "stopped_early", "pruned"}
    # The global limit held across both nodes, and it did bind (calls from both nodes overlapped).
    assert out["llm"]["total"] >= out["evaluations"]
    assert out["llm"]["max"] <= LIMIT, out["llm"]
    assert out["llm"]["max"] == LIMIT, out["llm"]
    # Every process the cluster started is gone with the namespace.
    left = subprocess.run(["pgrep", "-f", temp_dir], capture_output=True, text=True).stdout.split()
    assert left == [], f"processes left behind: {left}"


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "driver":
    import contextlib

    with contextlib.redirect_stdout(sys.stderr):  # Ray and the search print; only the JSON goes to stdout
        result = drive(json.loads(Path(sys.argv[2]).read_text()))
    print(json.dumps(result, default=str))
