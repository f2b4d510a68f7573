"""The seed library: hand-designed agents (and promoted winners) as files in `archive/`.

Seed files are read as text and their NAME / THOUGHT constants are read with `ast.literal_eval`: a seed is a
candidate like any other and is never executed in the search process. Loading does not depend on the working
directory: the library is found from the package location unless a folder is given.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from metasearch import REPO_ROOT
from metasearch.errors import ConfigError

SEED_DIR = REPO_ROOT / "archive"


@dataclass(frozen=True)
class SeedAgent:
    stem: str
    name: str
    thought: str
    code: str
    path: Path


def read_constants(code: str, names: tuple[str, ...] = ("NAME", "THOUGHT")) -> dict[str, object]:
    """Top-level literal assignments of `names` in candidate source, without executing it."""
    out: dict[str, object] = {}
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return out
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            key = node.targets[0].id
            if key in names:
                try:
                    out[key] = ast.literal_eval(node.value)
                except ValueError:
                    pass
    return out


def load_seed_file(path: Path) -> SeedAgent:
    code = path.read_text(encoding="utf-8")
    consts = read_constants(code)
    return SeedAgent(stem=path.stem, name=str(consts.get("NAME", path.stem)), thought=str(consts.get("THOUGHT", "")),
                     code=code, path=path)


def load_seeds(selection: list[str], seed_dir: Path | None = None) -> list[SeedAgent]:
    """Seeds by file stem (or "all"), sorted by stem so runs are reproducible."""
    folder = seed_dir or SEED_DIR
    files = sorted(p for p in folder.glob("*.py") if not p.name.startswith("_"))
    by_stem = {p.stem: p for p in files}
    if not selection or "all" in selection:
        chosen = files
    else:
        unknown = [s for s in selection if s not in by_stem]
        if unknown:
            raise ConfigError(f"strategy.seeds: unknown seed agent(s) {', '.join(unknown)} "
                              f"(known: {', '.join(by_stem)})")
        chosen = [by_stem[s] for s in sorted(set(selection))]
    if not chosen:
        raise ConfigError(f"strategy.seeds: no seed agents found in {folder}")
    return [load_seed_file(p) for p in chosen]
