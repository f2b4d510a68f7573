"""metasearch: a self-evolving agent search engine (Meta Agent Search, value-pruned MCTS) on a sandboxed Ray evaluator."""

from pathlib import Path

__version__ = "0.1.0"

#: The repository root when run from a checkout or an editable install; holds ``archive/`` (the seed library).
REPO_ROOT = Path(__file__).resolve().parents[1]
