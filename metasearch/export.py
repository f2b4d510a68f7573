"""Export a candidate as a standalone Python module: `forward`, a small LM on the `openai` client, `solve()`, a CLI.

The module needs only `openai` and the standard library: the candidate helpers are inlined from
`metasearch/tasks/helpers.py` (pure standard library by design), so the exported agent runs anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_HELPERS = Path(__file__).resolve().parent / "tasks" / "helpers.py"

_RUNTIME = '''
# ---- runtime: a small LM on the openai client (metasearch's candidate contract) --------------------------------
import json as _json
import os as _os
import re as _re
import sys as _sys

from openai import OpenAI as _OpenAI


class Task:
    """What `forward` receives: the question, its kind ('math' | 'qa' | 'mc' | 'code'), an id and metadata."""

    def __init__(self, question, kind="math", id="task", meta=None):
        self.question = question
        self.kind = kind
        self.id = id
        self.meta = dict(meta or {})


class LM:
    """lm.ask / lm.ask_json as in metasearch, on any OpenAI-compatible endpoint."""

    def __init__(self, model, base_url=None, api_key=None, timeout=60.0, max_retries=3):
        self.model = model
        self.client = _OpenAI(base_url=base_url or _os.environ.get("OPENAI_BASE_URL"),
                              api_key=api_key or _os.environ.get("OPENAI_API_KEY") or "sk-no-key",
                              timeout=timeout, max_retries=max_retries)

    def _chat(self, messages, temperature=0.0, n=1, json_mode=False):
        kwargs = {"model": self.model, "messages": messages, "temperature": temperature, "n": n}
        if json_mode:
            kwargs["response_format"] = {"type": "json_object"}
        reply = self.client.chat.completions.create(**kwargs)
        texts = [(c.message.content or "") for c in reply.choices]
        while len(texts) < n:  # servers such as llama.cpp ignore n > 1: top up with single calls
            more = self._chat(messages, temperature=temperature, n=1, json_mode=json_mode)
            if not more:
                break
            texts += more
        return texts[:n]

    def ask(self, prompt, system=None, temperature=0.0, n=1):
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        texts = self._chat(messages, temperature=temperature, n=n)
        return texts if n > 1 else texts[0]

    def ask_json(self, prompt, fields, system=None, temperature=0.0, repairs=2):
        spec = ", ".join(f"{k}: {v}" for k, v in fields.items())
        ask = f"{prompt}\\n\\nReply with a JSON object with the fields: {spec}"
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": ask}]
        last = ""
        for _ in range(repairs + 1):
            last = self._chat(messages, temperature=temperature, json_mode=True)[0]
            match = _re.search(r"\\{.*\\}", last, _re.S)
            try:
                data = _json.loads(match.group(0) if match else last)
                if isinstance(data, dict) and all(k in data for k in fields):
                    return data
            except ValueError:
                pass
        raise ValueError(f"the model did not answer with a JSON object with fields {list(fields)}: {last[:200]}")


def solve(question, *, model=DEFAULT_MODEL, base_url=DEFAULT_BASE_URL, api_key=None, kind="math"):
    """Answer one question with this agent."""
    return str(forward(Task(question, kind=kind), LM(model, base_url=base_url, api_key=api_key)))


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(description=f"{NAME}: an agent exported by metasearch.")
    parser.add_argument("question")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--base-url", default=DEFAULT_BASE_URL, help="OpenAI-compatible endpoint (or OPENAI_BASE_URL)")
    parser.add_argument("--kind", default="math", choices=["math", "qa", "mc", "code"])
    args = parser.parse_args(argv)
    print(solve(args.question, model=args.model, base_url=args.base_url, kind=args.kind))


if __name__ == "__main__":
    main()
'''


def _helpers_source() -> str:
    lines = [ln for ln in _HELPERS.read_text(encoding="utf-8").splitlines() if not ln.startswith("from __future__")]
    return "\n".join(lines)


def export_module(candidate: dict[str, Any], run: dict[str, Any] | None = None) -> str:
    """Source of the standalone module for an archived candidate (a row from `Archive.get_candidate`)."""
    base_url = (run or {}).get("base_url") or ""
    default_base = base_url if base_url.startswith("http") else None
    default_model = (run or {}).get("model") or "gpt-4o-mini"
    score = candidate.get("test_score") if candidate.get("test_score") is not None else candidate.get("score")
    provenance = {"candidate": candidate["id"], "run": candidate.get("run_id"), "name": candidate["name"],
                  "validation_score": candidate.get("score"), "test_score": candidate.get("test_score"),
                  "model": default_model, "base_url": base_url}
    title = str(candidate["name"]).replace("\\", "/").replace('"""', '"')  # a name cannot end the docstring
    header = (f'"""{title}: an agent found by metasearch.\n\n'
              f"Score {score if score is None else round(score, 4)} (see PROVENANCE). Usage:\n"
              f'    python {{this file}} "What is 17*3?" --base-url http://127.0.0.1:8000/v1 --model MODEL\n'
              f"    from agent import solve; solve(question, model=..., base_url=...)\n"
              f'Needs only the `openai` package and the standard library.\n"""\n')
    parts = [header,
             f"PROVENANCE = {dict(sorted(provenance.items()))!r}",  # a Python literal: None, not JSON's null
             f"DEFAULT_MODEL = {default_model!r}",
             f"DEFAULT_BASE_URL = {default_base!r}",
             "",
             "# ---- candidate helpers (inlined copy of the metasearch candidate helpers) ----",
             _helpers_source(),
             "",
             "# ---- the agent (archived candidate code, verbatim) ----",
             candidate["code"].rstrip(),
             "",
             _RUNTIME]
    return "\n".join(parts) + "\n"


def write_export(candidate: dict[str, Any], run: dict[str, Any] | None, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(export_module(candidate, run), encoding="utf-8")
    return out


def promote(candidate: dict[str, Any], run: dict[str, Any] | None, seed_dir: Path) -> Path:
    """Copy a winner into the seed library with its provenance, so later searches start from it."""
    stem = f"promoted_r{candidate.get('run_id')}_c{candidate['id']}"
    target = seed_dir / f"{stem}.py"
    provenance = {"candidate": candidate["id"], "run": candidate.get("run_id"), "run_name": (run or {}).get("name"),
                  "score": candidate.get("score"), "test_score": candidate.get("test_score"),
                  "model": (run or {}).get("model")}
    text = f"# Promoted by metasearch: {json.dumps(provenance, sort_keys=True)}\n{candidate['code'].rstrip()}\n"
    seed_dir.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target
