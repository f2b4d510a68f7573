"""`LM`: the only door to an LLM endpoint, always through the official `openai` client.

It adds what a search needs around the bare client: retries with capped exponential backoff and full jitter
(honouring Retry-After) on 429/5xx/timeouts/dropped connections/malformed replies, one concurrency limit per
endpoint for the whole process, a seed on every request, token and cost accounting against the run budget, and
the response cache. `sim://PROFILE` reaches the in-process simulated LLM through the same `openai` client via an
httpx transport, so no code path differs between the simulator and a real server.

The endpoint comes from the config's `[endpoint] base_url` (the CLI's `metasearch run --endpoint URL` overrides it);
`OPENAI_BASE_URL` is deliberately not consulted, so a run's endpoint is always the one recorded with it.
"""

from __future__ import annotations

import json
import math
import random
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import openai

try:  # the HTTP library the openai client is built on: httpx2 from openai 3, httpx before
    from httpx2 import Response as _RawResponse
except ImportError:  # pragma: no cover - older openai releases
    from httpx import Response as _RawResponse

from metasearch.config import BudgetConfig, EndpointConfig
from metasearch.errors import EndpointError
from metasearch.llm.accounting import Accountant, Usage
from metasearch.llm.cache import ResponseCache
from metasearch.llm.seeding import derive_seed
from metasearch.tasks.base import Task

__all__ = ["LM", "TaskLM", "ChatResult", "Usage", "LLMCallError", "EndpointUnavailable", "endpoint_limit",
           "json_instruction", "parse_json_reply"]

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 20.0
RETRY_AFTER_CAP_S = 20.0  # a server asking for longer gets this, so one call's total time stays bounded
MAX_PROMPT_CHARS = 100_000
MAX_N = 16
MAX_FIELDS = 20
_SIM_BASE_URL = "http://sim.local/v1"


class LLMCallError(Exception):
    """An LLM call failed for good (retries exhausted, a non-retryable 4xx, or an unusable JSON reply).

    Not a user error: the candidate's task scores 0 with this message recorded, and the search goes on.
    """


class EndpointUnavailable(LLMCallError, EndpointError):
    """The endpoint failed every attempt (429/5xx, timeouts, dropped connections, malformed replies).

    This says nothing about the candidate, so it is not scored: the search stops with one line (exit 2) and
    `resume` redoes the unfinished work once the endpoint is back, instead of recording the task as a 0.
    """


class _Malformed(Exception):
    """A 200 reply that is not a usable chat completion (retried like a 5xx)."""


@dataclass
class ChatResult:
    """The texts of one chat call (one per choice), its usage, and whether the cache answered it."""

    texts: list[str]
    usage: Usage
    cached: bool


# One limit per endpoint for the whole process: every LM and thread calling the same (base_url, model) shares it.
_LIMITS: dict[tuple[str, str], threading.BoundedSemaphore] = {}
_LIMITS_LOCK = threading.Lock()


def endpoint_limit(endpoint: EndpointConfig) -> threading.BoundedSemaphore:
    """The process-wide semaphore of an endpoint; the first LM to ask for it fixes its size."""
    key = (endpoint.base_url, endpoint.model)
    with _LIMITS_LOCK:
        sem = _LIMITS.get(key)
        if sem is None:
            sem = _LIMITS[key] = threading.BoundedSemaphore(endpoint.concurrency)
        return sem


def json_instruction(fields: dict[str, str]) -> str:
    """The sentence that asks for a JSON reply with the given fields."""
    listed = ", ".join(f"{name}: {desc}" for name, desc in fields.items())
    return f"Reply with a JSON object with the fields: {listed}"


_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


def parse_json_reply(text: str, fields: Iterable[str]) -> dict[str, Any]:
    """The first JSON object in `text` (code fences and leading prose tolerated) having every field.

    Raises ValueError saying what is wrong, which is fed back to the model in a repair round.
    """
    decoder = json.JSONDecoder()
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    found: dict[str, Any] | None = None
    for chunk in candidates:
        chunk = chunk.strip()
        for start in [i for i, ch in enumerate(chunk) if ch == "{"][:50]:
            try:
                value, _ = decoder.raw_decode(chunk, start)
            except ValueError:
                continue
            if isinstance(value, dict):
                found = value
                break
        if found is not None:
            break
    if found is None:
        raise ValueError("no JSON object found in the reply")
    missing = [f for f in fields if f not in found]
    if missing:
        raise ValueError(f"the JSON object lacks the fields: {', '.join(missing)}")
    return found


def _estimate_tokens(text: str) -> int:
    return len(text) // 4


def _retry_after_s(headers: Any) -> float | None:
    """Seconds asked by `retry-after-ms` / `Retry-After` (seconds or an HTTP date), if any."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _cause_text(err: BaseException) -> str:
    """The innermost useful message of a connection error (e.g. '[Errno 111] Connection refused')."""
    seen: list[str] = []
    cur: BaseException | None = err
    while cur is not None and len(seen) < 8:
        msg = str(cur).strip()
        if msg:
            seen.append(msg)
        cur = cur.__cause__ or cur.__context__
    return seen[-1] if seen else type(err).__name__


def _looks_html(body: str) -> bool:
    head = body.lstrip()[:200].lower()
    return head.startswith("<!doctype html") or head.startswith("<html") or head.startswith("<")


def _parse_completion(content: bytes, n: int) -> tuple[list[str], dict[str, Any] | None]:
    """Texts (ordered by choice index) and the usage dict of a chat completion body; `_Malformed` otherwise."""
    try:
        data = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        snippet = content[:60].decode("utf-8", "replace")
        raise _Malformed(f"reply is not JSON ({snippet!r})") from None
    if not isinstance(data, dict):
        raise _Malformed("reply is not a JSON object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise _Malformed("reply has no choices")
    if n > 1 and len(choices) != n:
        raise _Malformed(f"reply has {len(choices)} choices, asked for {n}")
    if not all(isinstance(c, dict) for c in choices):
        raise _Malformed("reply has a malformed choice")
    ordered = sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c.get("index"), int) else 0)
    texts = []
    for choice in ordered[:n]:
        message = choice.get("message")
        text = message.get("content") if isinstance(message, dict) else None
        if not isinstance(text, str):
            raise _Malformed("reply has a choice without text content")
        texts.append(text)
    usage = data.get("usage")
    return texts, usage if isinstance(usage, dict) else None


def _token_count(usage: dict[str, Any] | None, key: str) -> int | None:
    value = usage.get(key) if usage else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


class _Asking:
    """`ask` / `ask_json` on top of a `chat` method: shared by LM and TaskLM."""

    def chat(self, messages: list[dict[str, Any]], *, temperature: float = 0.0, n: int = 1,
             seed: int | None = None, json_mode: bool = False, max_tokens: int | None = None) -> ChatResult:
        raise NotImplementedError

    def _call_seed(self, seed: int | None) -> int | None:
        """The seed of one ask/ask_json call: the given one, else the object's derived one (None: by content)."""
        return seed

    def ask(self, prompt: str, *, system: str | None = None, temperature: float = 0.0, n: int = 1,
            seed: int | None = None, max_tokens: int | None = None) -> str | list[str]:
        """One prompt → the reply text, or a list of `n` texts when n > 1."""
        seed = self._call_seed(seed)
        result = self.chat(_messages(prompt, system), temperature=temperature, n=n, seed=seed,
                           max_tokens=max_tokens)
        return result.texts[0] if n == 1 else result.texts

    def ask_json(self, prompt: str, *, fields: dict[str, str], system: str | None = None,
                 temperature: float = 0.0, seed: int | None = None, repairs: int = 2) -> dict[str, Any]:
        """Ask for a JSON object with `fields`; re-ask up to `repairs` times with the error fed back."""
        if not fields:
            raise ValueError("ask_json needs at least one field")
        repairs = max(0, repairs)
        seed = self._call_seed(seed)
        instruction = json_instruction(fields)
        messages = _messages(f"{prompt}\n\n{instruction}", system)
        problem = ""
        for attempt in range(repairs + 1):
            attempt_seed = seed if attempt == 0 or seed is None else derive_seed(seed, "repair", attempt)
            text = self.chat(messages, temperature=temperature, seed=attempt_seed, json_mode=True).texts[0]
            try:
                return parse_json_reply(text, fields)
            except ValueError as err:
                problem = str(err)
            messages = [*messages, {"role": "assistant", "content": text},
                        {"role": "user", "content": f"That reply was not usable: {problem}. {instruction}"}]
        raise LLMCallError(f"no usable JSON reply after {repairs + 1} attempts: {problem}")


def _messages(prompt: str, system: str | None) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    msgs.append({"role": "user", "content": prompt})
    return msgs


class LM(_Asking):
    """A client of one endpoint with retries, a shared concurrency limit, seeds, accounting, budget and cache.

    >>> lm = LM(EndpointConfig(base_url="sim://default"))      # doctest: +SKIP
    >>> lm.ask("What is 2 + 3? Let's think step by step.")     # doctest: +SKIP
    """

    def __init__(self, endpoint: EndpointConfig, *, seed: int = 0, cache: ResponseCache | None = None,
                 accountant: Accountant | None = None, tasks: Iterable[Task] = (),
                 budget: BudgetConfig | None = None, backoff_base_s: float = BACKOFF_BASE_S,
                 backoff_cap_s: float = BACKOFF_CAP_S) -> None:
        self.endpoint = endpoint
        self.seed = seed
        self.cache = cache if endpoint.cache else None
        self.accountant = accountant if accountant is not None else (Accountant(budget) if budget else None)
        self._backoff_base = backoff_base_s
        self._backoff_cap = backoff_cap_s
        # Only sleep times use this; replies never depend on it.
        self._jitter = random.Random(derive_seed("jitter", endpoint.base_url, seed))
        self._limit = endpoint_limit(endpoint)
        self._usage = Usage()
        self._lock = threading.Lock()
        self._sim: Any = None
        self._client = self._make_client(list(tasks))

    # -- construction -------------------------------------------------------------------------------------------

    @property
    def is_simulated(self) -> bool:
        return self.endpoint.base_url.startswith("sim://")

    def _make_client(self, tasks: list[Task]) -> openai.OpenAI:
        common = {"max_retries": 0, "timeout": self.endpoint.timeout_s}
        if not self.is_simulated:
            return openai.OpenAI(base_url=self.endpoint.base_url, api_key=self.endpoint.api_key(), **common)
        from metasearch.llm.server import SimTransport
        from metasearch.llm.simulated import SimulatedLLM

        profile = self.endpoint.base_url[len("sim://"):].strip("/") or "default"
        self._sim = SimulatedLLM(profile, tasks)
        transport = SimTransport(self._sim)
        import httpx

        if isinstance(transport, httpx.BaseTransport):
            http_client: Any = httpx.Client(transport=transport, base_url=_SIM_BASE_URL)
        else:  # a transport written for httpx2, the openai client's own HTTP library
            import httpx2

            http_client = httpx2.Client(transport=transport, base_url=_SIM_BASE_URL)
        return openai.OpenAI(base_url=_SIM_BASE_URL, api_key="sim", http_client=http_client, **common)

    def register(self, tasks: Iterable[Task]) -> None:
        """Make tasks known to the in-process simulator (no-op for real endpoints)."""
        if self._sim is not None:
            self._sim.register(list(tasks))

    # -- calls --------------------------------------------------------------------------------------------------

    @property
    def usage(self) -> Usage:
        """Totals of every call made through this LM (a copy)."""
        with self._lock:
            return self._usage.copy()

    def for_task(self, candidate_key: str, task_id: str) -> "TaskLM":
        """The `lm` a candidate sees while answering one task."""
        return TaskLM(self, candidate_key, task_id)

    def chat(self, messages: list[dict[str, Any]], *, temperature: float = 0.0, n: int = 1,
             seed: int | None = None, json_mode: bool = False, max_tokens: int | None = None) -> ChatResult:
        """One chat completion with `n` choices. Without a seed, one is derived from the LM seed and the request.

        Raises EndpointUnavailable (every attempt failed), LLMCallError (a non-retryable bad request),
        EndpointError (key rejected / wrong URL or model), BudgetExceeded.
        """
        if not isinstance(messages, list) or not messages:
            raise ValueError("messages must be a non-empty list")
        if not 1 <= n <= 128:
            raise ValueError(f"n must be between 1 and 128, got {n}")
        params = {"temperature": float(temperature), "n": n, "json_mode": bool(json_mode), "max_tokens": max_tokens}
        if seed is None:
            seed = derive_seed(self.seed, ResponseCache.key_for("", self.endpoint.model, messages, params, None))
        if n > 1 and not self.endpoint.native_n:
            return self._chat_one_by_one(messages, temperature=temperature, n=n, seed=seed, json_mode=json_mode,
                                         max_tokens=max_tokens)
        if self.accountant is not None:
            self.accountant.check()
        cache, key = self.cache, ""
        if cache is not None:
            key = ResponseCache.key_for(self.endpoint.base_url, self.endpoint.model, messages, params, seed)
            hit = cache.get(key)
            if hit is not None and isinstance(hit.get("texts"), list) and len(hit["texts"]) == n:
                usage = Usage(prompt_tokens=int(hit.get("prompt_tokens", 0)),
                              completion_tokens=int(hit.get("completion_tokens", 0)), cost=0.0, calls=1,
                              cached_calls=1)
                return self._record(ChatResult(list(hit["texts"]), usage, cached=True))
        texts, raw_usage = self._call_with_retries(messages, params, seed)
        prompt_tokens = _token_count(raw_usage, "prompt_tokens")
        if prompt_tokens is None:
            prompt_tokens = sum(_estimate_tokens(str(m.get("content") or "")) for m in messages)
        completion_tokens = _token_count(raw_usage, "completion_tokens")
        if completion_tokens is None:
            completion_tokens = sum(_estimate_tokens(t) for t in texts)
        cost = (prompt_tokens * self.endpoint.price_prompt_per_1k
                + completion_tokens * self.endpoint.price_completion_per_1k) / 1000
        if cache is not None:
            cache.put(key, {"texts": texts, "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                            "model": self.endpoint.model})
        usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost=cost, calls=1)
        return self._record(ChatResult(texts, usage, cached=False))

    def _chat_one_by_one(self, messages: list[dict[str, Any]], *, temperature: float, n: int, seed: int,
                         json_mode: bool, max_tokens: int | None) -> ChatResult:
        """`n` samples as `n` single calls, for servers that answer one choice whatever `n` says (llama.cpp).

        Each call has its own seed derived from the request's, so the samples differ at temperature > 0 and the
        same request gives the same samples; each call is cached, billed and counted on its own (they are sent
        and paid for one by one)."""
        parts = [self.chat(messages, temperature=temperature, n=1, seed=derive_seed(seed, "sample", i),
                           json_mode=json_mode, max_tokens=max_tokens) for i in range(n)]
        usage = Usage()
        for part in parts:
            usage.add(part.usage)
        return ChatResult([part.texts[0] for part in parts], usage, cached=all(part.cached for part in parts))

    def _record(self, result: ChatResult) -> ChatResult:
        with self._lock:
            self._usage.add(result.usage)
        if self.accountant is not None:
            self.accountant.charge(result.usage)  # may raise BudgetExceeded: the reply is already cached
        return result

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt))."""
        return self._jitter.uniform(0.0, min(self._backoff_cap, self._backoff_base * 2 ** attempt))

    def _call_with_retries(self, messages: list[dict[str, Any]], params: dict[str, Any],
                           seed: int) -> tuple[list[str], dict[str, Any] | None]:
        request: dict[str, Any] = {"model": self.endpoint.model, "messages": messages,
                                   "temperature": params["temperature"], "n": params["n"], "seed": seed}
        if params["max_tokens"] is not None:
            request["max_tokens"] = params["max_tokens"]
        if params["json_mode"]:
            request["response_format"] = {"type": "json_object"}
        attempts = self.endpoint.max_retries + 1
        cause = ""
        for attempt in range(attempts):
            wait: float | None = None
            try:
                with self._limit:
                    # The client's generic `post` (openai's documented way to send a request as it is): the same
                    # base URL, auth, timeout and status errors as `chat.completions.create`, without re-validating
                    # a request built here (0.94 vs 1.48 ms of CPU per call, a third of the driver's share).
                    content = self._client.post("/chat/completions", body=request, cast_to=_RawResponse).content
                return _parse_completion(content, params["n"])
            except openai.APIStatusError as err:
                status = err.status_code
                if status in (401, 403, 404):
                    raise EndpointError(self._status_message(err)) from None
                if 400 <= status < 500 and status not in (408, 409, 425, 429):
                    raise LLMCallError(f"endpoint {self.endpoint.base_url}: HTTP {status}: "
                                       f"{_short(err.message)} (not retried)") from None
                cause = f"HTTP {status}" + (" (rate limited)" if status == 429 else "")
                wait = _retry_after_s(err.response.headers)
            except openai.APITimeoutError:
                cause = f"no reply within {self.endpoint.timeout_s:g}s"
            except openai.APIConnectionError as err:
                cause = f"connection error: {_cause_text(err)}"
            except _Malformed as err:
                cause = f"malformed reply: {err}"
            if attempt + 1 < attempts:
                delay = min(wait, RETRY_AFTER_CAP_S) if wait is not None else self._backoff(attempt)
                time.sleep(delay)
        raise EndpointUnavailable(f"endpoint {self.endpoint.base_url}: call failed after {attempts} "
                                  f"attempt{'s' if attempts > 1 else ''}: {cause}")

    def _status_message(self, err: openai.APIStatusError) -> str:
        url = self.endpoint.base_url
        body = err.response.text if err.response is not None else ""
        if err.status_code == 401:
            return f"endpoint {url}: API key rejected (401); set ${self.endpoint.api_key_env}"
        if err.status_code == 403:
            return f"endpoint {url}: access denied (403)"
        if _looks_html(body):
            return f"endpoint {url}: not an OpenAI-compatible API (got HTML, HTTP {err.status_code})"
        return f"endpoint {url}: not found (404): check base_url and model {self.endpoint.model!r}"

    # -- probe --------------------------------------------------------------------------------------------------

    def check(self) -> None:
        """Probe the endpoint once (GET /models, else a 1-token chat); raise EndpointError saying what is wrong."""
        url = self.endpoint.base_url
        client = self._client.with_options(max_retries=0, timeout=min(self.endpoint.timeout_s, 15.0))
        try:
            try:
                raw = client.models.with_raw_response.list()
                body = raw.text
                kind = "models"
            except openai.APIStatusError as err:
                if err.status_code not in (404, 405) or _looks_html(err.response.text):
                    raise
                raw = client.chat.completions.with_raw_response.create(
                    model=self.endpoint.model, messages=[{"role": "user", "content": "ping"}], max_tokens=1)
                body = raw.text
                kind = "chat"
        except openai.APIStatusError as err:
            if err.status_code in (401, 403) or _looks_html(err.response.text):
                raise EndpointError(self._status_message(err)) from None
            raise EndpointError(f"endpoint {url}: HTTP {err.status_code} from the probe: "
                                f"{_short(err.message)}") from None
        except openai.APITimeoutError:
            raise EndpointError(f"endpoint {url}: no reply within {self.endpoint.timeout_s:g}s") from None
        except openai.APIConnectionError as err:
            cause = _cause_text(err)
            what = "connection refused" if "refused" in cause.lower() else f"cannot connect ({cause})"
            raise EndpointError(f"endpoint {url}: {what}") from None
        self._check_probe_body(body, kind)

    def _check_probe_body(self, body: str, kind: str) -> None:
        url = self.endpoint.base_url
        if _looks_html(body):
            raise EndpointError(f"endpoint {url}: not an OpenAI-compatible API (got HTML)")
        try:
            data = json.loads(body)
        except ValueError:
            raise EndpointError(f"endpoint {url}: not an OpenAI-compatible API (reply is not JSON)") from None
        expected = "data" if kind == "models" else "choices"
        if not isinstance(data, dict) or not isinstance(data.get(expected), list):
            raise EndpointError(f"endpoint {url}: not an OpenAI-compatible API (no '{expected}' in the reply)")

    def close(self) -> None:
        """Close the HTTP client (the cache and accountant belong to the caller)."""
        self._client.close()

    def __enter__(self) -> "LM":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _short(text: Any, limit: int = 200) -> str:
    one_line = " ".join(str(text).split())
    return one_line if len(one_line) <= limit else one_line[: limit - 3] + "..."


class TaskLM(_Asking):
    """The `lm` of one candidate on one task: seeds derived per call, usage counted for this task.

    Call i's seed is derive_seed(search seed, candidate_key, task_id, i) unless the candidate gives one, so the
    same candidate on the same task repeats its calls exactly, and a rerun hits the cache.
    """

    _ASK_ARGS = ("prompt", "system", "temperature", "n", "seed", "max_tokens")
    _ASK_JSON_ARGS = ("prompt", "fields", "system", "temperature", "seed", "repairs")

    def __init__(self, lm: LM, candidate_key: str, task_id: str) -> None:
        self.lm = lm
        self.candidate_key = candidate_key
        self.task_id = task_id
        self._calls = 0
        self._usage = Usage()
        self._lock = threading.Lock()

    @property
    def calls(self) -> int:
        """How many ask/ask_json/chat calls the candidate made (repairs inside ask_json not counted)."""
        with self._lock:
            return self._calls

    @property
    def usage(self) -> Usage:
        with self._lock:
            return self._usage.copy()

    def _call_seed(self, seed: int | None) -> int:
        with self._lock:
            index = self._calls
            self._calls += 1
        return seed if seed is not None else derive_seed(self.lm.seed, self.candidate_key, self.task_id, index)

    def chat(self, messages: list[dict[str, Any]], *, temperature: float = 0.0, n: int = 1,
             seed: int | None = None, json_mode: bool = False, max_tokens: int | None = None) -> ChatResult:
        """LM.chat with this task's seed (when none is given) and usage counted here."""
        if seed is None:
            seed = self._call_seed(None)
        result = self.lm.chat(messages, temperature=temperature, n=n, seed=seed, json_mode=json_mode,
                              max_tokens=max_tokens)
        with self._lock:
            self._usage.add(result.usage)
        return result

    def handle(self, method: str, kwargs: dict[str, Any]) -> Any:
        """Serve one request from the sandbox pipe: only ask / ask_json, with checked arguments.

        A malformed request raises ValueError with a message fit to show the candidate's author.
        """
        if method == "ask":
            args = self._validate("lm.ask", kwargs, self._ASK_ARGS)
            return self.ask(**args)
        if method == "ask_json":
            args = self._validate("lm.ask_json", kwargs, self._ASK_JSON_ARGS)
            if "fields" not in args:
                raise ValueError("lm.ask_json: missing argument 'fields'")
            return self.ask_json(**args)
        raise ValueError(f"unknown lm method {str(method)[:40]!r} (only ask and ask_json)")

    @staticmethod
    def _validate(name: str, kwargs: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(kwargs, dict):
            raise ValueError(f"{name}: arguments must be a mapping")
        for key in kwargs:
            if key not in allowed:
                raise ValueError(f"{name}: unknown argument {str(key)[:40]!r} (allowed: {', '.join(allowed)})")
        if "prompt" not in kwargs:
            raise ValueError(f"{name}: missing argument 'prompt'")
        _check_text(name, "prompt", kwargs["prompt"], optional=False)
        _check_text(name, "system", kwargs.get("system"), optional=True)
        if "temperature" in kwargs:
            t = kwargs["temperature"]
            if not _is_number(t) or not 0.0 <= float(t) <= 2.0:
                raise ValueError(f"{name}: temperature must be a number between 0 and 2, got {_show(t)}")
        _check_int(name, kwargs, "n", 1, MAX_N, nullable=False)
        _check_int(name, kwargs, "seed", 0, 2**63 - 1, nullable=True)
        _check_int(name, kwargs, "max_tokens", 1, 100_000, nullable=True)
        _check_int(name, kwargs, "repairs", 0, 5, nullable=False)
        if "fields" in kwargs:
            fields = kwargs["fields"]
            if not isinstance(fields, dict) or not 1 <= len(fields) <= MAX_FIELDS:
                raise ValueError(f"{name}: fields must be a dict of 1 to {MAX_FIELDS} name: description pairs")
            for k, v in fields.items():
                if not isinstance(k, str) or not isinstance(v, str) or not k or len(k) > 100 or len(v) > 2000:
                    raise ValueError(f"{name}: each field must map a name (1-100 chars) to a description string "
                                     f"(≤ 2000 chars)")
        return dict(kwargs)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _show(x: Any) -> str:
    return _short(repr(x), 40)


def _check_text(name: str, arg: str, value: Any, *, optional: bool) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise ValueError(f"{name}: {arg} must be a string, got {type(value).__name__}")
    if len(value) > MAX_PROMPT_CHARS:
        raise ValueError(f"{name}: {arg} is {len(value):,} characters, the limit is {MAX_PROMPT_CHARS:,}")


def _check_int(name: str, kwargs: dict[str, Any], arg: str, lo: int, hi: int, *, nullable: bool) -> None:
    if arg not in kwargs or (nullable and kwargs[arg] is None):
        return
    value = kwargs[arg]
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ValueError(f"{name}: {arg} must be an integer from {lo} to {hi}, got {_show(value)}")
