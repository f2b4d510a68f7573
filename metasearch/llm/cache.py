"""The LLM response cache: one SQLite table in the archive file, so reruns of a search cost nothing.

The key covers everything that changes a reply (endpoint, model, messages, sampling parameters, seed), so a
change of temperature, n, JSON mode or max_tokens never returns a stale answer. The cache keeps its own
connection (WAL, busy timeout) beside the archive's writer; several processes (Ray actors) may share the file.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

_SCHEMA = "CREATE TABLE IF NOT EXISTS llm_cache (key TEXT PRIMARY KEY, response_json TEXT, created_at TEXT)"


class ResponseCache:
    """`get`/`put` JSON-able responses by key; thread-safe (one connection, one lock)."""

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 30_000) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=busy_timeout_ms / 1000,
                                     isolation_level=None)
        self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute(_SCHEMA)

    @staticmethod
    def key_for(base_url: str, model: str, messages: list[dict[str, Any]], params: dict[str, Any],
                seed: int | None) -> str:
        """sha256 of the canonical JSON of the request: same request → same key, in any process."""
        blob = json.dumps({"base_url": base_url, "model": model, "messages": messages, "params": params,
                           "seed": seed}, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored response, or None on a miss (an unreadable entry counts as a miss)."""
        with self._lock:
            row = self._conn.execute("SELECT response_json FROM llm_cache WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            value = json.loads(row[0])
        except (TypeError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def put(self, key: str, response: dict[str, Any]) -> None:
        """Store (or replace) a response."""
        blob = json.dumps(response, sort_keys=True, ensure_ascii=False)
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO llm_cache (key, response_json, created_at) VALUES (?, ?, ?)",
                               (key, blob, now))

    def clear(self) -> int:
        """Delete every entry; returns how many there were."""
        with self._lock:
            return self._conn.execute("DELETE FROM llm_cache").rowcount

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM llm_cache").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "ResponseCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
