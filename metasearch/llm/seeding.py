"""Seeds for LLM calls, derived from what identifies a call, so reruns repeat exactly.

Python's `hash()` is salted per process; sha256 over `repr` is the same in every process and on every machine.
"""

from __future__ import annotations

import hashlib

SEED_SPACE = 2**31


def derive_seed(*parts: object) -> int:
    """A seed in [0, 2**31) determined only by `parts` (compared by their `repr`).

    >>> derive_seed(0, "cand", "task-1", 0) == derive_seed(0, "cand", "task-1", 0)
    True
    """
    digest = hashlib.sha256(repr(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % SEED_SPACE
