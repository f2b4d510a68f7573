"""What a prompt does, read from its text: the simulated LLM scores prompts with these features.

The workflow renderer and the seed agents must write prompts that trigger the features they mean, so the
phrases are part of the contract (docs/architecture.md). Matching is case-insensitive and accepts the common
rephrasings listed here:

| feature        | triggered by (any of)                                                                          |
|----------------|-----------------------------------------------------------------------------------------------|
| cot            | "Let's think step by step", "step by step", "step-by-step", "chain of thought", "show your     |
|                | reasoning", "reason carefully", "think carefully", "work it out"                               |
| role           | a system message "You are <role>." naming a specific role (not "a helpful assistant"), or     |
|                | "act as <role>" / "as an expert"; 1.0 (0.5 for a generic "expert"/"assistant" role)            |
| step_back      | "step back" / "step-back" together with "principle(s)" / "concept(s)" / "first principles"     |
| aggregate      | "Here are several candidate answers", "candidate answers", "candidate solutions",              |
|                | "all the above solutions", "reconcile"; value = number of earlier answers shown                |
| debate         | "Other agents answered", "other agents' answers/solutions", "answers from other agents",       |
|                | "debate"; value = number of earlier answers shown                                              |
| critique       | a real critique present: a "Critique:" / "Feedback:" label followed by at least 5 words of     |
|                | content (an instruction to critique does not count; see critique_request)                      |
| critique_request | asked to write a critique: "critique", "give feedback", "find errors", "review the answer"   |
| refine         | "Improve your answer", "refine your answer", "revise your answer", "improved answer",          |
|                | "update your answer", "correct your answer"                                                    |
| verify         | "Verify", "double-check", "check your answer", "check the answer", "check each step"           |
| diverse        | "another interesting way", "different approach", "diverse", "a different answer"               |
| json           | the prompt asks for a JSON object                                                              |
| earlier        | number of earlier answers found anywhere in the prompt ("Answer: X" lines, "answer": "X")      |
| context_tokens | estimated prompt size in tokens (about 4 characters a token)                                   |
"""

from __future__ import annotations

import re
from typing import Any

CHARS_PER_TOKEN = 4.0

_COT = re.compile(r"step[\s-]+by[\s-]+step|chain[\s-]of[\s-]thought|show your (?:reasoning|work)|reason carefully"
                  r"|think carefully|work it out|reason through")
_STEP_BACK = re.compile(r"step[\s-]*back")
_PRINCIPLE = re.compile(r"principle|concept|abstraction")
_AGGREGATE = re.compile(r"several candidate answers|candidate (?:answers|solutions)|"
                        r"all the above (?:solutions|answers)|reconcile|the following (?:answers|solutions)")
_DEBATE = re.compile(r"other agents?(?:'|’)?s?\s+(?:answered|answers|solutions|responses|replied)|"
                     r"answers? from (?:the )?other agents|\bdebate\b")
_CRITIQUE_LABEL = re.compile(r"(?:^|\n)\s*[#*]*\s*(?:critique|feedback)\s*[#*]*\s*:\s*(.+?)(?=\n\s*\n|\Z)",
                             re.S)
_CRITIQUE_REQ = re.compile(r"\bcritique\b|give (?:your )?feedback|find (?:any )?(?:errors|mistakes)|"
                           r"review the (?:answer|solution)")
_REFINE = re.compile(r"(?:improve|refine|revise|update|correct) (?:your|the) (?:previous )?(?:answer|solution)|"
                     r"improved (?:answer|solution)")
_VERIFY = re.compile(r"\bverify\b|double[\s-]check|check (?:your|the) (?:answer|solution|result)|"
                     r"check each step")
_DIVERSE = re.compile(r"another interesting way|different approach|\bdiverse\b|a different answer")
_JSON = re.compile(r"\bjson\b")
_ROLE_SYSTEM = re.compile(r"^\s*you are (.{3,120}?)(?:[.!\n]|$)", re.I)
_ROLE_INLINE = re.compile(r"\bact as (?:an? |the )?([\w -]{3,60})|\bas an? (expert|specialist)\b", re.I)
_GENERIC_ROLE = re.compile(r"helpful|assistant|language model|\bai\b|chatbot", re.I)

# "Answer: 42" / "Answer 2: 42" / "final answer is 42" / JSON "answer": "42". Placeholders such as
# "Answer: <value>" or "answer: Your final answer" are dropped by `_plausible`.
_ANSWER_LINE = re.compile(r"(?:^|\n)[ \t>*-]*(?:final )?answer(?:\s*#?\s*\d+)?[ \t*]*[:=][ \t*]*([^\n]{1,120})", re.I)
_ANSWER_JSON = re.compile(r"[\"']answer[\"']\s*:\s*(?:\"([^\"\n]{1,120})\"|'([^'\n]{1,120})'|(-?[\d.,/]+))", re.I)


def message_text(content: Any) -> str:
    """Text of a message's content: a string, or OpenAI content parts [{type: text, text: ...}]."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _plausible(value: str) -> bool:
    v = value.strip()
    if not v or v.startswith(("<", "[", "{", "...", "your ", "Your ")):
        return False
    low = v.lower()
    return not any(w in low for w in ("the final answer", "your answer", "a number", "placeholder", "value>"))


def earlier_answers(text: str) -> list[str]:
    """Answers already given earlier and quoted in the prompt, in order (raw text, not normalised)."""
    found: list[tuple[int, str]] = []
    for m in _ANSWER_LINE.finditer(text):
        value = m.group(1).strip().strip("*`\"' ").rstrip(".,;")
        if _plausible(value):
            found.append((m.start(1), value))
    for m in _ANSWER_JSON.finditer(text):
        value = next(g for g in m.groups() if g is not None).strip().rstrip(".,;")
        if _plausible(value):
            found.append((m.start(), value))
    return [v for _, v in sorted(found)]


def _role_score(messages: list[dict]) -> float:
    for msg in messages:
        text = message_text(msg.get("content"))
        if msg.get("role") == "system":
            m = _ROLE_SYSTEM.search(text)
            if m:
                role = m.group(1)
                if _GENERIC_ROLE.search(role):
                    return 0.0
                return 0.5 if re.fullmatch(r"\s*(?:an? )?(?:expert|specialist)\s*", role, re.I) else 1.0
        m = _ROLE_INLINE.search(text)
        if m:
            return 0.5 if m.group(2) else 1.0
    return 0.0


def role_text(messages: list[dict]) -> str:
    """The role a prompt assigns ("a math professor"), or "" when it assigns none or a generic one."""
    for msg in messages:
        if not isinstance(msg, dict):
            continue
        text = message_text(msg.get("content"))
        if msg.get("role") == "system":
            m = _ROLE_SYSTEM.search(text)
            if m and not _GENERIC_ROLE.search(m.group(1)):
                return m.group(1).strip()
        m = _ROLE_INLINE.search(text)
        if m:
            return (m.group(1) or m.group(2) or "").strip()
    return ""


def _critique_present(text: str) -> bool:
    for m in _CRITIQUE_LABEL.finditer(text):
        body = m.group(1).strip()
        if len(re.findall(r"[A-Za-z]{2,}", body)) >= 5 and not body.startswith("<"):
            return True
    return False


def prompt_features(messages: list[dict]) -> dict[str, float]:
    """Features of a chat request: which techniques the prompt applies (see the table in the module docstring)."""
    texts = [message_text(m.get("content")) for m in messages if isinstance(m, dict)]
    full = "\n\n".join(texts)
    low = full.lower()  # patterns are lowercase: one lower() is much faster than re.I on long prompts
    answers = earlier_answers(full)
    n_earlier = float(len(answers))
    step_back = bool(_STEP_BACK.search(low) and _PRINCIPLE.search(low))
    aggregate = bool(_AGGREGATE.search(low))
    debate = bool(_DEBATE.search(low))
    return {
        "cot": 1.0 if _COT.search(low) else 0.0,
        "role": _role_score([m for m in messages if isinstance(m, dict)]),
        "step_back": 1.0 if step_back else 0.0,
        "aggregate": n_earlier if aggregate else 0.0,
        "debate": n_earlier if debate else 0.0,
        "critique": 1.0 if _critique_present(low) else 0.0,
        "critique_request": 1.0 if _CRITIQUE_REQ.search(low) else 0.0,
        "refine": 1.0 if _REFINE.search(low) else 0.0,
        "verify": 1.0 if _VERIFY.search(low) else 0.0,
        "diverse": 1.0 if _DIVERSE.search(low) else 0.0,
        "json": 1.0 if _JSON.search(low) else 0.0,
        "earlier": n_earlier,
        "context_tokens": float(round(len(full) / CHARS_PER_TOKEN)),
    }
