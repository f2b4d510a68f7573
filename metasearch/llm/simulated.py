"""The simulated LLM: a deterministic surrogate of a chat model, in the spirit of NAS-Bench.

It finds which known task a prompt is about, reads what the prompt does (`prompt_features`) and answers
correctly with probability sigmoid(ability - difficulty + effects + interactions); wrong answers come from a
small per-task set of distractors with one dominant, so voting saturates as with real models. Prompts that
quote earlier answers (aggregation, debate, refinement) pull the reply towards the gold answer when it is among
them and towards their plurality otherwise. Every random choice is a sha256 of the request, so the same
request gives the same reply in every process; temperature 0 ignores the seed.

Profiles (ability, effect sizes, interactions, distractors, tokens, latency, meta-agent bug rate) are TOML files
in `metasearch/llm/profiles/`; a profile may `extends = "other"` and override only some keys.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import statistics
import tomllib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metasearch.errors import ConfigError
from metasearch.llm.prompt_features import earlier_answers, message_text, prompt_features, role_text
from metasearch.tasks.base import Task
from metasearch.tasks.helpers import extract_answer, normalize_answer, normalize_number

PROFILE_DIR = Path(__file__).with_name("profiles")
META_MARKER = "# Metasearch meta-agent"
CREATED = 1_700_000_000  # fixed, so whole response bodies are deterministic
CHARS_PER_TOKEN = 4.0
WINDOW = 40  # grounding: questions are indexed by their first WINDOW normalised characters
_NORMAL = statistics.NormalDist()
_BOUNDARY = re.compile(r"[^a-z0-9]")


class ProfileError(ConfigError):
    """A simulated-LLM profile is missing or malformed."""


class SimRequestError(ValueError):
    """A malformed chat.completions request body (the server answers 400 with this message)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


# ----------------------------------------------------------------------------------------------- profiles

@dataclass(frozen=True)
class Profile:
    """A simulated model: every number that shapes its behaviour, loaded from a TOML file."""

    name: str
    description: str
    ability: float
    difficulty: dict[str, float]
    effects: dict[str, float]
    interactions: dict[str, float]
    earlier: dict[str, float]
    judge: dict[str, float]
    distractors: dict[str, float]
    tokens: dict[str, float]
    latency: dict[str, float]
    bug_rate: float
    source: str = ""

    @property
    def model(self) -> str:
        return f"sim-{self.name}"


# Every setting a profile may hold, by section: a misspelt key is an error, not a silently ignored number.
KNOWN: dict[str, set[str]] = {
    "difficulty": {"scale", "offset", "task_noise", "derived_low", "derived_high"},
    "effects": {"cot", "role", "step_back", "aggregate", "debate", "critique", "refine", "verify", "diverse", "json",
                "long_context", "context_free_tokens", "temperature"},
    "interactions": {"refine_without_critique", "refine_fix", "debate_hardness", "role_x_step_back",
                     "aggregate_x_verify", "cot_x_step_back", "debate_x_critique", "aggregate_x_role",
                     "critique_x_verify", "debate_x_role", "debate_x_step_back"},
    "earlier": {"present_bonus", "absent_penalty", "plurality_weight", "anchor", "verify_keep"},
    "judge": {"ability", "difficulty_weight", "sycophancy"},
    "distractors": {"count", "dominant"},
    "tokens": {"steps_base", "steps_per_difficulty", "max_steps"},
    "latency": {"base_ms", "per_token_ms", "prompt_per_token_ms", "jitter"},
    "meta": {"bug_rate"},
}
_SECTIONS = tuple(KNOWN)


def list_profiles() -> list[str]:
    """Names of the shipped profiles."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def _read_toml(name_or_path: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    path = Path(name_or_path) if name_or_path.endswith(".toml") else PROFILE_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise ProfileError(f"unknown simulator profile '{name_or_path}' (available: {', '.join(list_profiles())})")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ProfileError(f"{path}: not valid TOML: {err}") from None
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if parent in seen:
        raise ProfileError(f"{path}: profile inheritance loops through '{parent}'")
    base = _read_toml(str(parent), (*seen, str(parent)))
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return base


def load_profile(name: str | Profile = "default") -> Profile:
    """Load `profiles/<name>.toml` (or a path to a .toml file); raises ProfileError with one line."""
    if isinstance(name, Profile):
        return name
    data = _read_toml(str(name))
    where = f"profile '{name}'"
    unknown = set(data) - {"name", "description", "ability", *_SECTIONS}
    if unknown:
        raise ProfileError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    for section in _SECTIONS:
        if not isinstance(data.get(section, {}), dict):
            raise ProfileError(f"{where}: [{section}] must be a table")
        bad = set(data.get(section, {})) - KNOWN[section]
        if bad:
            raise ProfileError(f"{where}: unknown key(s) in [{section}]: {', '.join(sorted(bad))}")
    try:
        sections = {s: {k: float(v) for k, v in dict(data.get(s, {})).items()} for s in _SECTIONS}
        return Profile(name=str(data.get("name", Path(str(name)).stem)), description=str(data.get("description", "")),
                       ability=float(data.get("ability", 0.0)), difficulty=sections["difficulty"],
                       effects=sections["effects"], interactions=sections["interactions"],
                       earlier=sections["earlier"], judge=sections["judge"], distractors=sections["distractors"],
                       tokens=sections["tokens"], latency=sections["latency"],
                       bug_rate=sections["meta"].get("bug_rate", 0.0), source=str(name))
    except (TypeError, ValueError) as err:
        raise ProfileError(f"{where}: every setting must be a number ({err})") from None


# ----------------------------------------------------------------------------------------------- helpers

def _digest(*parts: Any) -> bytes:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode("utf-8")).digest()


def _uniform(*parts: Any) -> float:
    """A number in (0, 1) fixed by `parts`."""
    return (int.from_bytes(_digest(*parts)[:8], "big") + 0.5) / 2.0**64


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, x))))


def _norm_text(text: str) -> str:
    return " ".join(text.lower().split())


def answer_key(value: str, kind: str) -> str:
    """How the simulator compares answers: normalised number, choice letter or normalised text."""
    if kind == "code":
        return _norm_text(value)
    if kind == "mc":
        return extract_answer(value, "mc") or _norm_text(value)
    number = normalize_number(value)
    if number is not None:
        return number
    if kind == "math":
        extracted = extract_answer(value, "math")
        return normalize_number(extracted) or normalize_answer(extracted)
    return normalize_answer(value)


@dataclass
class _TaskInfo:
    """What the simulator knows about one task: gold, latent difficulty, its distractors."""

    task: Task
    raw_difficulty: float
    difficulty: float
    gold_key: str
    distractors: list[str]
    weights: list[float]
    keys: dict[str, str] = field(default_factory=dict)  # answer key -> display form, gold and distractors


def _math_distractors(task: Task, count: int) -> list[str]:
    gold = normalize_number(task.answer)
    if gold is None or "/" in gold:
        return [f"{task.answer} (approx.)", "0", "1"][:count]
    g = float(gold)
    numbers = [float(n) for n in re.findall(r"\d+(?:\.\d+)?", task.question)][:6]
    pool = [g + 1, g - 1, g * 2, g + 10, g - 10, round(g / 2), g + (numbers[-1] if numbers else 3),
            abs(g - (numbers[0] if numbers else 7)), g * 3, g + 2]
    ordered = sorted(pool, key=lambda v: _uniform("distractor-order", task.id, v))
    out: list[str] = []
    for v in ordered:
        text = str(int(v)) if float(v).is_integer() else f"{v:.2f}".rstrip("0")
        if text != gold and text not in out and (v >= 0 or g < 0):
            out.append(text)
        if len(out) == count:
            break
    return out


def _distractors(task: Task, count: int) -> list[str]:
    if task.kind == "mc":
        letters = "ABCDE" if re.search(r"\(E\)|\bE[).]", task.question) else "ABCD"
        others = [c for c in letters if c != task.answer.strip().upper()[:1]]
        return sorted(others, key=lambda c: _uniform("mc-order", task.id, c))[:count]
    if task.kind == "code":
        gold = task.answer
        variants = [gold.replace("return ", "return None and ", 1), gold.replace("+", "-", 1),
                    gold.replace("<", "<=", 1), gold + "\n    raise ValueError('unexpected input')\n"]
        return [v for v in dict.fromkeys(variants) if v != gold][:count] or [gold + "\n# wrong"]
    if task.kind == "qa":
        names = [n for n in dict.fromkeys(re.findall(r"\b[A-Z][a-z]{2,}\b", task.question))
                 if n.lower() != task.answer.strip().lower() and n not in {"Who", "What", "Which", "How", "The"}]
        names = sorted(names, key=lambda n: _uniform("qa-order", task.id, n))
        generic = [f"not {task.answer}", "unknown", f"{task.answer} and others"]
        return (names + generic)[:count]
    return _math_distractors(task, count)


# ----------------------------------------------------------------------------------------------- request parsing

_FIELD_SEGMENT = re.compile(r"fields?\b[^:\n]{0,40}:", re.I)
_FIELD_NAME = re.compile(r"(?:^|[,;\n{]|\band\b)\s*[-*]?\s*[`\"']?([A-Za-z_][A-Za-z0-9_]{0,40})[`\"']?\s*:")
_JSON_KEY = re.compile(r"[\"']([A-Za-z_][A-Za-z0-9_]{0,40})[\"']\s*:")
_PRINCIPLES_REQ = re.compile(r"(?:what|which|identify|list|explain|state|recall)\b[^.?\n]{0,40}"
                             r"\b(?:principles|concepts)\b", re.I)
_ROLE_REQ = re.compile(r"choose (?:an? |the |one )?(?:\w+ )?(?:role|expert)|which expert|select (?:an? |the )?"
                       r"(?:\w+ )?(?:role|expert)|pick (?:an? |the )?(?:\w+ )?(?:role|expert)", re.I)
_ROLE_FIT = {"math": r"math|arithmetic|number|calculat|account|teacher|professor|tutor|scientist|engineer|expert",
             "mc": r"math|arithmetic|number|calculat|teacher|professor|tutor|expert|exam",
             "qa": r"logic|reason|puzzle|detective|analyst|teacher|professor|expert|reader",
             "code": r"program|software|engineer|developer|coder|python|computer|expert"}


def asked_fields(messages: list[dict], response_format: Any) -> list[str] | None:
    """The JSON fields a request asks for, or None when it does not ask for JSON."""
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        props = schema.get("properties") if isinstance(schema, dict) else None
        if isinstance(props, dict) and props:
            return list(props)
    user = [message_text(m.get("content")) for m in messages if m.get("role") != "assistant"]
    text = user[-1] if user else ""
    json_mode = isinstance(response_format, dict) and response_format.get("type") in ("json_object", "json_schema")
    at = max(text.lower().rfind("json"), -1)
    if not json_mode and at < 0:
        return None
    tail = text[at:] if at >= 0 else text
    names: list[str] = []
    seg = _FIELD_SEGMENT.search(tail)
    if seg:
        names = _FIELD_NAME.findall(" ," + tail[seg.end():])
    if not names:
        names = _JSON_KEY.findall(tail)
    names = [n for n in dict.fromkeys(names) if n.lower() not in {"e", "g", "eg", "example", "json", "type"}]
    return names or ["thinking", "answer"]


def _validate(body: Any) -> dict[str, Any]:
    """Check an OpenAI chat.completions body; raises SimRequestError naming the bad parameter."""
    if not isinstance(body, dict):
        raise SimRequestError("request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise SimRequestError("'messages' must be a non-empty array", "messages")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("system", "user", "assistant", "developer", "tool"):
            raise SimRequestError(f"messages[{i}] must be an object with a valid 'role'", f"messages[{i}]")
        if not isinstance(msg.get("content"), (str, list)):
            raise SimRequestError(f"messages[{i}].content must be a string or an array of parts",
                                  f"messages[{i}].content")
    n = body.get("n", 1)
    if n is None:
        n = 1
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 128:
        raise SimRequestError("'n' must be an integer in [1, 128]", "n")
    temperature = body.get("temperature", 1.0)
    if temperature is None:
        temperature = 1.0
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not 0 <= temperature <= 2:
        raise SimRequestError("'temperature' must be a number in [0, 2]", "temperature")
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise SimRequestError("'seed' must be an integer", "seed")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise SimRequestError("'max_tokens' must be a positive integer", "max_tokens")
    rf = body.get("response_format")
    if rf is not None and (not isinstance(rf, dict) or rf.get("type") not in ("text", "json_object", "json_schema")):
        raise SimRequestError("'response_format.type' must be 'text', 'json_object' or 'json_schema'",
                              "response_format")
    return {"messages": messages, "n": n, "temperature": float(temperature), "seed": seed,
            "max_tokens": max_tokens, "response_format": rf, "model": body.get("model")}


def _count_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN)) if text else 0


# ----------------------------------------------------------------------------------------------- the model

class SimulatedLLM:
    """A deterministic simulated chat model that knows a bank of tasks.

    >>> sim = SimulatedLLM("default", tasks=[Task("t1", "What is 2 + 3?", "5")])
    >>> body = {"model": "sim-default", "messages": [{"role": "user", "content": "What is 2 + 3?"}]}
    >>> sim.complete(body)["choices"][0]["message"]["content"].splitlines()[-1].startswith("Answer:")
    True
    """

    def __init__(self, profile: str | Profile = "default", tasks: Iterable[Task] = ()) -> None:
        self.profile = load_profile(profile)
        self._by_prefix: dict[str, list[str]] = {}
        self._short: dict[int, dict[str, str]] = {}
        self._info: dict[str, _TaskInfo] = {}
        self._norm_question: dict[str, str] = {}
        self.register(tasks)

    # -- task bank -------------------------------------------------------------------------------------
    def register(self, tasks: Iterable[Task]) -> int:
        """Add tasks to the bank (same id again replaces it); returns how many were added."""
        count = 0
        for task in tasks:
            if isinstance(task, dict):
                task = Task.from_dict(task)
            norm = _norm_text(task.question)
            if not norm:
                continue
            self._info[task.id] = self._make_info(task)
            self._norm_question[task.id] = norm
            if len(norm) >= WINDOW:
                ids = self._by_prefix.setdefault(norm[:WINDOW], [])
                if task.id not in ids:
                    ids.append(task.id)
            else:
                self._short.setdefault(len(norm), {})[norm] = task.id
            count += 1
        return count

    @property
    def tasks(self) -> list[Task]:
        return [info.task for info in self._info.values()]

    def _make_info(self, task: Task) -> _TaskInfo:
        d = self.profile.difficulty
        raw = task.meta.get("difficulty") if isinstance(task.meta, dict) else None
        if not isinstance(raw, (int, float)) or isinstance(raw, bool):
            lo, hi = d.get("derived_low", -1.5), d.get("derived_high", 2.5)
            raw = lo + (hi - lo) * _uniform("difficulty", task.id)
        noise = _NORMAL.inv_cdf(_uniform("task-noise", task.id)) * d.get("task_noise", 0.0)
        difficulty = d.get("scale", 1.0) * float(raw) + d.get("offset", 0.0) + noise
        count = int(self.profile.distractors.get("count", 3))
        distractors = _distractors(task, max(1, count))
        dom = self.profile.distractors.get("dominant", 0.6)
        rest = (1.0 - dom) / max(1, len(distractors) - 1)
        weights = [dom] + [rest] * (len(distractors) - 1) if len(distractors) > 1 else [1.0]
        gold_key = answer_key(task.answer, task.kind)
        keys = {gold_key: task.answer}
        for dis in distractors:
            keys.setdefault(answer_key(dis, task.kind), dis)
        return _TaskInfo(task, float(raw), difficulty, gold_key, distractors, weights, keys)

    def find_task(self, text: str) -> Task | None:
        """The registered task whose question appears in `text` (the longest one if several), else None."""
        info = self._find(text)
        return info.task if info else None

    def _find(self, text: str) -> _TaskInfo | None:
        norm = _norm_text(text)
        # a question starts at the beginning or after a non-alphanumeric character: only look there
        starts = [0] + [m.end() for m in _BOUNDARY.finditer(norm)]
        best: str | None = None
        for i in starts:
            ids = self._by_prefix.get(norm[i:i + WINDOW])
            if ids:
                for tid in ids:
                    q = self._norm_question[tid]
                    if norm.startswith(q, i) and (best is None or len(q) > len(self._norm_question[best])):
                        best = tid
        if best is None:
            for length, table in sorted(self._short.items(), reverse=True):
                for i in starts:
                    tid = table.get(norm[i:i + length])
                    if tid is not None:
                        return self._info[tid]
        return self._info[best] if best else None

    # -- the request -----------------------------------------------------------------------------------
    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """Answer an OpenAI chat.completions request body with a response body (deterministic)."""
        req = _validate(body)
        messages = req["messages"]
        text = "\n\n".join(message_text(m.get("content")) for m in messages)
        temperature, n = req["temperature"], req["n"]
        seed = req["seed"] if temperature > 0 else None
        base = [messages, temperature, n, seed]
        if META_MARKER in text:
            contents = [self._meta_reply(text, base, i if temperature > 0 else 0) for i in range(n)]
        else:
            feats = prompt_features(messages)
            info = self._find(text)
            fields = asked_fields(messages, req["response_format"])
            contents = [self._reply(messages, text, feats, info, fields, temperature,
                                    base + [i if temperature > 0 else 0]) for i in range(n)]
        choices = []
        prompt_tokens = sum(_count_tokens(message_text(m.get("content"))) + 4 for m in messages) + 3
        completion_tokens = 0
        for i, content in enumerate(contents):
            finish = "stop"
            if req["max_tokens"] is not None and _count_tokens(content) > req["max_tokens"]:
                content, finish = content[: int(req["max_tokens"] * CHARS_PER_TOKEN)], "length"
            completion_tokens += _count_tokens(content)
            choices.append({"index": i, "message": {"role": "assistant", "content": content},
                            "logprobs": None, "finish_reason": finish})
        return {"id": "chatcmpl-sim-" + _digest(base, self.profile.name).hex()[:24],
                "object": "chat.completion", "created": CREATED,
                "model": req["model"] or self.profile.model, "system_fingerprint": f"sim-{self.profile.name}",
                "choices": choices,
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}}

    def latency_s(self, body: dict[str, Any], response: dict[str, Any]) -> float:
        """Seconds a real server would take for this reply: base + per token, with deterministic jitter."""
        lat = self.profile.latency
        usage = response.get("usage", {})
        n = max(1, len(response.get("choices", [])))
        per_choice = usage.get("completion_tokens", 0) / n
        ms = (lat.get("base_ms", 0.0) + lat.get("per_token_ms", 0.0) * per_choice
              + lat.get("prompt_per_token_ms", 0.0) * usage.get("prompt_tokens", 0))
        jitter = lat.get("jitter", 0.0)
        if jitter:
            ms *= 1.0 + jitter * (2.0 * _uniform("latency", response.get("id", "")) - 1.0)
        return max(0.0, ms) / 1000.0

    # -- meta-agent mode -------------------------------------------------------------------------------
    def _meta_reply(self, text: str, base: list[Any], index: int) -> str:
        try:
            from metasearch.space import meta_sim
        except ModuleNotFoundError as err:
            raise RuntimeError("meta-agent mode needs metasearch.space.meta_sim, which is not installed") from err
        rng = random.Random(int.from_bytes(_digest(base, index, "meta")[:8], "big"))
        proposal = meta_sim.propose(text, rng, self.profile.bug_rate)
        return json.dumps({k: proposal.get(k, "") for k in ("thought", "name", "code")})

    # -- task replies ----------------------------------------------------------------------------------
    def _logit(self, info: _TaskInfo, f: dict[str, float], temperature: float, role_fit: float) -> float:
        e, x = self.profile.effects, self.profile.interactions
        agg, deb = f["aggregate"] > 0, f["debate"] > 0
        refine = f["refine"] > 0 and f["earlier"] > 0
        logit = self.profile.ability - info.difficulty
        logit += e.get("cot", 0) * f["cot"] + e.get("role", 0) * f["role"] * role_fit
        logit += e.get("step_back", 0) * f["step_back"] + e.get("verify", 0) * f["verify"]
        logit += e.get("diverse", 0) * f["diverse"] + e.get("json", 0) * f["json"]
        if agg:
            logit += e.get("aggregate", 0) + x.get("aggregate_x_verify", 0) * f["verify"]
            logit += x.get("aggregate_x_role", 0) * f["role"] * role_fit
        if deb:
            logit += e.get("debate", 0) + x.get("debate_hardness", 0) * max(0.0, info.raw_difficulty)
            logit += x.get("debate_x_critique", 0) * f["critique"]
            logit += x.get("debate_x_role", 0) * f["role"] * role_fit
            logit += x.get("debate_x_step_back", 0) * f["step_back"]
        if refine:
            logit += e.get("refine", 0)
            logit += e.get("critique", 0) if f["critique"] else x.get("refine_without_critique", 0)
        logit += x.get("critique_x_verify", 0) * f["critique"] * f["verify"]
        logit += x.get("role_x_step_back", 0) * f["role"] * role_fit * f["step_back"]
        logit += x.get("cot_x_step_back", 0) * f["cot"] * f["step_back"]
        extra = f["context_tokens"] - e.get("context_free_tokens", 1500)
        if extra > 0:
            logit += e.get("long_context", 0) * extra / 1000.0
        return logit + e.get("temperature", 0) * temperature

    def _role_fit(self, messages: list[dict], kind: str) -> float:
        role = role_text(messages)
        if not role:
            return 1.0
        return 1.0 if re.search(_ROLE_FIT.get(kind, _ROLE_FIT["math"]), role, re.I) else -0.5

    def _choose(self, info: _TaskInfo, f: dict[str, float], earlier: list[str], temperature: float,
                role_fit: float, key: list[Any]) -> str:
        """The answer (display form) this call gives: gold or a distractor, pulled by earlier answers."""
        kind = info.task.kind
        logit = self._logit(info, f, temperature, role_fit)
        ek = [answer_key(a, kind) for a in earlier]
        ek = [k for k in ek if k in info.keys]  # only answers a model could have given on this task
        wrong_counts = Counter(k for k in ek if k != info.gold_key)
        if ek and f["diverse"]:
            # asked for a different approach: it steers away from the earlier answers instead of reconciling
            logit -= self.profile.earlier.get("absent_penalty", 0) * ek.count(info.gold_key) / len(ek)
            wrong_counts = Counter()
        elif ek and f["verify"] and not (f["aggregate"] or f["debate"] or f["refine"]) and \
                _uniform(key, "keep") < self.profile.earlier.get("verify_keep", 0):
            # asked to verify a proposed answer: a model mostly stands by it, right or wrong
            return info.keys[ek[-1]]
        elif ek:
            share = ek.count(info.gold_key) / len(ek)
            ear = self.profile.earlier
            if share > 0:
                logit += ear.get("present_bonus", 0) + ear.get("plurality_weight", 0) * (share - 0.5)
            else:
                logit -= ear.get("absent_penalty", 0)
                if f["refine"]:
                    logit += self.profile.interactions.get("refine_fix", 0)
        if _uniform(key, "correct") < _sigmoid(logit):
            return info.task.answer.strip()
        if wrong_counts and _uniform(key, "anchor") < self.profile.earlier.get("anchor", 0):
            top = max(wrong_counts.values())
            return info.keys[next(k for k in ek if wrong_counts.get(k) == top)]
        u, acc = _uniform(key, "distractor"), 0.0
        for dis, w in zip(info.distractors, info.weights):
            acc += w
            if u <= acc:
                return dis
        return info.distractors[-1]

    def _judge(self, info: _TaskInfo, f: dict[str, float], target: str, key: list[Any]) -> bool:
        """Whether a critique calls `target` correct."""
        j = self.profile.judge
        right = answer_key(target, info.task.kind) == info.gold_key
        skill = (j.get("ability", 0) - j.get("difficulty_weight", 0) * info.difficulty
                 + self.profile.effects.get("verify", 0) * f["verify"])
        syc = j.get("sycophancy", 0)
        p_says_correct = _sigmoid(skill + syc) if right else 1.0 - _sigmoid(skill - syc)
        return _uniform(key, "judge") < p_says_correct

    def _reply(self, messages: list[dict], text: str, f: dict[str, float], info: _TaskInfo | None,
               fields: list[str] | None, temperature: float, key: list[Any]) -> str:
        question_text = info.task.question if info else ""
        earlier = earlier_answers(text.replace(question_text, " ") if question_text else text)
        intent = "answer"
        last_user = next((message_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
        if _ROLE_REQ.search(last_user):
            intent = "role"
        elif _PRINCIPLES_REQ.search(last_user) and not f["refine"]:
            intent = "principles"
        elif f["critique_request"] and not f["refine"] and earlier and not f["critique"]:
            intent = "critique"
        parts: dict[str, str] = {}
        if info is None:
            answer = self._uninformed_answer(text)
            parts = {"answer": answer, "thinking": "The question does not give me enough to be sure, so this is "
                     "my best guess from the numbers mentioned.", "feedback": "I cannot tell whether the answer "
                     "is right without the full problem.", "correct": "False"}
        elif intent == "critique":
            says_correct = self._judge(info, f, earlier[-1], key)
            target = earlier[-1]
            parts = {"answer": target, "correct": "True" if says_correct else "False",
                     "feedback": (f"The reasoning is sound and each step checks out; the final answer {target} "
                                  "is correct.") if says_correct else
                     (f"There is an error: one of the steps miscomputes the running total, so the final answer "
                      f"{target} is not right. Recompute each step carefully and check the operations."),
                     "thinking": "I re-read the solution and checked each operation against the question."}
        elif intent == "principles":
            parts = {"answer": "", "thinking": self._principles(info), "principles": self._principles(info)}
        elif intent == "role":
            parts = {"answer": self._pick_role(last_user, info.task.kind), "thinking": "The task needs "
                     "careful step-by-step calculation, so this expert fits best."}
        else:
            role_fit = self._role_fit(messages, info.task.kind)
            answer = self._choose(info, f, earlier, temperature, role_fit, key)
            parts = {"answer": answer, "thinking": self._reasoning(info, f, key)}
        if fields is not None:
            return json.dumps({name: self._field_value(name, parts, intent) for name in fields})
        return self._as_text(parts, intent, info)

    # -- reply text ------------------------------------------------------------------------------------
    @staticmethod
    def _field_value(name: str, parts: dict[str, str], intent: str) -> str:
        low = name.lower()
        if low in ("answer", "final_answer", "solution", "result", "code", "output", "choice", "role", "expert"):
            return parts.get("answer", "")
        if "correct" in low:
            return parts.get("correct", "True")
        if "feedback" in low or "critique" in low:
            return parts.get("feedback", parts.get("thinking", ""))
        if "principle" in low:
            return parts.get("principles", parts.get("thinking", ""))
        if low in ("thinking", "reasoning", "rationale", "explanation", "thought", "analysis"):
            return parts.get("thinking", "")
        return parts.get("answer", "") if "answer" in low else parts.get("thinking", "")

    @staticmethod
    def _as_text(parts: dict[str, str], intent: str, info: _TaskInfo | None) -> str:
        if intent == "critique":
            return "Feedback: " + parts["feedback"]
        if intent == "principles":
            return parts["principles"]
        if intent == "role":
            return parts["answer"]
        answer = parts["answer"]
        if info is not None and info.task.kind == "code":
            return f"{parts['thinking']}\n\n```python\n{answer}\n```"
        return f"{parts['thinking']}\nAnswer: {answer}" if parts["thinking"] else f"Answer: {answer}"

    def _reasoning(self, info: _TaskInfo, f: dict[str, float], key: list[Any]) -> str:
        numbers = re.findall(r"\d+(?:\.\d+)?", info.task.question)[:8]
        reasons = f["cot"] or f["step_back"] or f["aggregate"] or f["debate"] or f["refine"] or f["verify"]
        if not reasons:
            return "The result is computed directly from the question." if _uniform(key, "tone") < 0.5 else ""
        tok = self.profile.tokens
        steps = round(tok.get("steps_base", 3.0) + tok.get("steps_per_difficulty", 1.0) * info.raw_difficulty)
        steps = max(1, min(int(tok.get("max_steps", 8)), steps))
        templates = ["Start from the quantity given first{n}.", "Apply the next operation to the running total{n}.",
                     "Keep track of what was added and what was removed{n}.", "Combine the groups: count times "
                     "size{n}.", "Update the running total after this step{n}.", "Check the intermediate result "
                     "against the question{n}.", "Carry the total into the last step{n}.", "Read what the question "
                     "asks for exactly{n}."]
        lines = []
        if f["aggregate"] or f["debate"]:
            lines.append("Comparing the earlier answers, I check which one follows from the question.")
        if f["critique"]:
            lines.append("Taking the feedback into account, I redo the calculation.")
        for i in range(steps):
            t = templates[int(_uniform(key, "step", i) * len(templates))]
            num = f" ({numbers[i % len(numbers)]})" if numbers else ""
            lines.append(f"Step {i + 1}: " + t.format(n=num))
        if f["verify"]:
            lines.append("Verification: recomputing the steps gives the same total.")
        return "\n".join(lines)

    @staticmethod
    def _principles(info: _TaskInfo) -> str:
        if info.task.kind == "qa":
            return ("Principles: ordering relations are transitive; build the full order from the pairwise facts, "
                    "then read off the extreme asked for.")
        if info.task.kind == "code":
            return "Principles: restate the specification, handle edge cases, keep the function pure and simple."
        return ("Principles: keep a running total; adding and removing change it by the amount; buying or selling "
                "groups changes it by count times size; sharing equally is division; apply steps in order.")

    @staticmethod
    def _pick_role(prompt: str, kind: str) -> str:
        options = re.findall(r"['\"]([A-Z][A-Za-z ]{2,40})['\"]", prompt)
        fit = _ROLE_FIT.get(kind, _ROLE_FIT["math"])
        for option in options:
            if re.search(fit, option, re.I):
                return option
        return options[0] if options else {"qa": "Logic Puzzle Expert", "code": "Senior Software Engineer"}.get(
            kind, "Math Professor")

    @staticmethod
    def _uninformed_answer(text: str) -> str:
        numbers = re.findall(r"\d+", text)
        return numbers[-1] if numbers else "I am not sure"
