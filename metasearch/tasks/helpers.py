"""Answer helpers shared by the scorer, candidates and exported agents.

Pure standard library on purpose: the sandbox hands these functions to candidate code and `export` inlines
this file's source text verbatim into standalone modules, so it may import only `re`, `collections` and
`string`, and must not depend on the metasearch package. Every function accepts any input (None, numbers,
bytes...) and returns "" rather than raising, because it runs on whatever text a model produced.
"""

import collections
import re
import string

_NUMBER_RE = re.compile(
    r"(?:(?<![\w.)\]])-)?"             # a minus sign, unless it is a subtraction ("5-3")
    r"\$?"
    r"(?:(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)"  # digits, maybe thousands commas and decimals
    r"(?:[eE][-+]?\d+)?"               # exponent
    r"(?:\s*/\s*\d+)?"                 # a fraction's denominator
)
_ANSWER_RE = re.compile(r"answer\s*(?:is|:)", re.IGNORECASE)
_ARTICLES_RE = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)
_CODE_BLOCK_RE = re.compile(r"```[ \t]*(python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_UNCLOSED_BLOCK_RE = re.compile(r"```[ \t]*(?:python|py|python3)[ \t]*\n(.*)\Z", re.DOTALL | re.IGNORECASE)


def _as_text(value):
    """Any input as text: None and odd types become "" or their str(), bytes are decoded leniently."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, bool):
        return ""
    if isinstance(value, (int, float)):
        return str(value)
    return ""


def _gcd(a, b):
    while b:
        a, b = b, a % b
    return abs(a)


def _strip_zeros(digits):
    """'0042.500' -> '42.5'; '1.000' -> '1'; '.5' -> '0.5'."""
    if "." in digits:
        whole, frac = digits.split(".", 1)
        frac = frac.rstrip("0")
    else:
        whole, frac = digits, ""
    whole = whole.lstrip("0") or "0"
    return whole + ("." + frac if frac else "")


def _float_text(x):
    """A float as short canonical text: integral values without '.0', others via repr."""
    if x != x or x in (float("inf"), float("-inf")):
        return None
    if x == int(x) and abs(x) < 1e16:
        return str(int(x))
    text = repr(x)
    return text[:-2] if text.endswith(".0") else text


def normalize_number(s: object) -> "str | None":
    """Canonical text of a number, or None when `s` is not one number.

    Strips outer spaces, '$', thousands commas, a trailing '%' or '.', and a leading '+'; integers and decimals keep
    their exact digits ('42.50' -> '42.5', '42.0' -> '42', '1,234' -> '1234', '-0' -> '0'); fractions are
    reduced ('6/8' -> '3/4', '4/2' -> '2'); exponents are evaluated ('1e3' -> '1000').
    """
    text = _as_text(s).strip()
    if not text:
        return None
    text = text.replace("$", "").strip().rstrip(".").rstrip("%").strip()
    text = re.sub(r"\s*/\s*", "/", re.sub(r"^([-+])\s+", r"\1", text))
    if not text or any(ch.isspace() for ch in text):
        return None
    if re.fullmatch(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?", text):
        text = text.replace(",", "")
    sign = ""
    if text[:1] in "+-":
        sign, text = ("-" if text[0] == "-" else ""), text[1:]
    if re.fullmatch(r"\d+(?:\.\d*)?|\.\d+", text):
        body = _strip_zeros(text)
        return body if body == "0" else sign + body
    frac = re.fullmatch(r"(\d+)/(\d+)", text)
    if frac:
        num, den = int(frac.group(1)), int(frac.group(2))
        if den == 0:
            return None
        g = _gcd(num, den) or 1
        num, den = num // g, den // g
        if num == 0:
            return "0"
        return sign + (str(num) if den == 1 else "%d/%d" % (num, den))
    if re.fullmatch(r"(?:\d+(?:\.\d*)?|\.\d+)[eE][-+]?\d+", text):
        try:
            value = float(text)
        except (OverflowError, ValueError):
            return None
        body = _float_text(value)
        if body is None:
            return None
        return body if body == "0" else sign + body
    return None


def _numbers(text):
    """Every number-looking span in `text`, in order (as raw text)."""
    return [m.group(0) for m in _NUMBER_RE.finditer(text)]


def _last_boxed(text):
    """Content of the last closed \\boxed{...} (nested braces allowed) and its offset; (None, -1) if none.

    One pass with a stack of open braces, so text full of unclosed braces stays linear time.
    """
    best, best_at = None, -1
    stack = []
    for m in re.finditer(r"\\boxed\s*\{|[{}]", text):
        token = m.group(0)
        if token == "}":
            if stack:
                boxed_at, content_at = stack.pop()
                if boxed_at > best_at:
                    best, best_at = text[content_at:m.start()], boxed_at
        else:
            stack.append((m.start() if token != "{" else -1, m.end()))
    return best, best_at


def _after_last_answer(text):
    """The text after the last 'Answer:' / 'answer is' marker, and the marker's offset; (None, -1) if none."""
    last = None
    for m in _ANSWER_RE.finditer(text):
        last = m
    if last is None:
        return None, -1
    return text[last.end():], last.start()


def _unlatex(text):
    """Plain text from the LaTeX a model puts around numbers: \\frac{a}{b} -> a/b, \\text{x} -> x, \\! dropped."""
    text = text.replace("{,}", ",")
    text = re.sub(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}", r"(\1)/(\2)", text)
    text = re.sub(r"\((\s*-?\d+(?:\.\d+)?\s*)\)", r"\1", text)
    text = re.sub(r"\\(?:text|mathrm|mathbf)\s*\{([^{}]*)\}", r"\1", text)
    return re.sub(r"\\[!,;: ]|\\left|\\right", "", text)


def _math_value(segment):
    """A math answer from a short segment: its first number normalised, else the cleaned text."""
    segment = _unlatex(segment.strip())
    boxed, _ = _last_boxed(segment)
    if boxed is not None:
        segment = _unlatex(boxed.strip())
    first_line = segment.split("\n", 1)[0].strip() if segment else ""
    whole = normalize_number(first_line)
    if whole is not None:
        return whole
    nums = _numbers(first_line) or _numbers(segment)
    if nums:
        value = normalize_number(nums[0])
        if value is not None:
            return value
    return first_line.strip(" \t*_`$.").strip()


def _extract_math(text):
    after, at = _after_last_answer(text)
    boxed, boxed_at = _last_boxed(text)
    if boxed is not None and boxed_at > at:
        return _math_value(boxed)
    if after is not None:
        value = _math_value(after)
        if value:
            return value
    if boxed is not None:
        return _math_value(boxed)
    nums = _numbers(text)
    for raw in reversed(nums):
        value = normalize_number(raw)
        if value is not None:
            return value
    return ""


def _extract_mc(text):
    stripped = text.strip().strip("*_`'\"").strip()
    whole = re.fullmatch(r"\(?([A-Ea-e])\)?[.):]?", stripped)
    if whole:
        return whole.group(1).upper()
    after, _ = _after_last_answer(text)
    if after is not None:
        m = re.search(r"\(([A-Ea-e])\)|\b([A-E])\b|^\s*\**([a-e])\b", after)
        if m:
            return next(g for g in m.groups() if g).upper()
    m = None
    for m in re.finditer(r"(?:option|choice)\s*\(?([A-E])\b", text, re.IGNORECASE):
        pass
    if m is not None:
        return m.group(1).upper()
    parens = re.findall(r"\(([A-E])\)", text)
    if parens:
        return parens[-1]
    lone = re.findall(r"(?<![\w'])([A-E])(?=\s*[.):,;!]|\s*\**\s*$)", text)
    return lone[-1] if lone else ""


def _extract_qa(text):
    after, _ = _after_last_answer(text)
    if after is not None:
        lines = [ln.strip() for ln in after.splitlines() if ln.strip()]
        if lines:
            return lines[0].strip(" *_`").strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _extract_code(text):
    blocks = _CODE_BLOCK_RE.findall(text)
    python_blocks = [body for lang, body in blocks if lang]
    if python_blocks:
        return python_blocks[-1].strip("\n")
    if blocks:
        return blocks[-1][1].strip("\n")
    unclosed = _UNCLOSED_BLOCK_RE.search(text)
    if unclosed:
        return unclosed.group(1).strip("\n")
    return text


def extract_answer(text: object, kind: str = "math") -> str:
    """The final answer in a model's reply, by task kind.

    math: the value after the last 'Answer:' (or 'answer is') or in a later \\boxed{}, else the last number;
    numbers are normalised (no '$', commas or trailing '.0'). mc: a choice letter A-E. qa: the text after the
    last 'Answer:', else the last non-empty line. code: the last ```python block, else the whole text.
    """
    text = _as_text(text)
    if not text.strip():
        return ""
    kind = kind if isinstance(kind, str) else "math"
    if kind == "code":
        return _extract_code(text)
    if kind == "mc":
        return _extract_mc(text)
    if kind == "qa":
        return _extract_qa(text)
    return _extract_math(text)


def normalize_answer(s: object) -> str:
    """SQuAD/DROP normalisation: lowercase, numbers canonical, punctuation and articles dropped, spaces collapsed."""
    text = _as_text(s).lower()
    tokens = []
    for token in re.split(r"\s+|-(?!\d)", text):
        if not token:
            continue
        number = normalize_number(token.strip("!?;:,'\"()[]{}"))
        if number is not None:
            tokens.append(number)
            continue
        token = "".join(ch for ch in token if ch not in _PUNCT)
        token = _ARTICLES_RE.sub(" ", token).strip()
        if token:
            tokens.append(token)
    return " ".join(tokens)


def _vote_key(answer):
    """What two answers must share to count as the same vote.

    Gentler than normalize_answer: case, spacing, articles and outer punctuation are ignored, inner
    punctuation is kept, so 'x+1' and 'x-1' (or two programs) stay different votes.
    """
    number = normalize_number(answer)
    if number is not None:
        return number
    words = answer.lower().strip().strip(string.punctuation + " ").split()
    return " ".join(w for w in words if w not in ("a", "an", "the"))


def majority_vote(answers: object) -> str:
    """The most common answer (compared normalised; ties go to the earliest); "" if none is non-empty.

    Returns the first original (stripped) spelling of the winning answer, so code and case survive.
    """
    if isinstance(answers, (str, bytes)) or answers is None:
        answers = [answers]
    try:
        items = list(answers)
    except TypeError:
        return ""
    counts = collections.Counter()
    first = {}
    for item in items:
        text = _as_text(item).strip()
        key = _vote_key(text) or text
        if not key:
            continue
        counts[key] += 1
        if key not in first:
            first[key] = (len(first), text)
    if not counts:
        return ""
    best = max(counts, key=lambda k: (counts[k], -first[k][0]))
    return first[best][1]
