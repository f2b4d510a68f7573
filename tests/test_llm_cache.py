"""The response cache: keys cover every sampling parameter, entries persist in the archive file, threads share it."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from metasearch.llm.cache import ResponseCache

MSGS = [{"role": "user", "content": "What is 2 + 2?"}]
PARAMS = {"temperature": 0.0, "n": 1, "json_mode": False, "max_tokens": None}


def test_key_is_canonical_and_sensitive_to_every_part() -> None:
    key = ResponseCache.key_for("http://x/v1", "m", MSGS, PARAMS, 1)
    assert key == ResponseCache.key_for("http://x/v1", "m", [{"content": "What is 2 + 2?", "role": "user"}],
                                        dict(reversed(list(PARAMS.items()))), 1)
    assert len(key) == 64 and int(key, 16) >= 0
    variants = [
        ("http://y/v1", "m", MSGS, PARAMS, 1),
        ("http://x/v1", "m2", MSGS, PARAMS, 1),
        ("http://x/v1", "m", [{"role": "user", "content": "What is 2 + 3?"}], PARAMS, 1),
        ("http://x/v1", "m", MSGS, {**PARAMS, "temperature": 0.7}, 1),
        ("http://x/v1", "m", MSGS, {**PARAMS, "n": 2}, 1),
        ("http://x/v1", "m", MSGS, {**PARAMS, "json_mode": True}, 1),
        ("http://x/v1", "m", MSGS, {**PARAMS, "max_tokens": 5}, 1),
        ("http://x/v1", "m", MSGS, PARAMS, 2),
    ]
    keys = {ResponseCache.key_for(*v) for v in variants}  # type: ignore[arg-type]
    assert len(keys) == len(variants) and key not in keys


def test_put_get_len_clear(tmp_path: Path) -> None:
    with ResponseCache(tmp_path / "a.db") as cache:
        assert cache.get("k1") is None and len(cache) == 0
        cache.put("k1", {"texts": ["a"], "prompt_tokens": 3})
        cache.put("k2", {"texts": ["b", "c"]})
        cache.put("k1", {"texts": ["a2"]})  # replaces
        assert cache.get("k1") == {"texts": ["a2"]} and len(cache) == 2
        assert cache.clear() == 2 and len(cache) == 0 and cache.get("k2") is None


def test_entries_persist_and_live_in_the_llm_cache_table_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "archive.db"
    with ResponseCache(path) as cache:
        cache.put("k", {"texts": ["é ünïcode"]})
    with ResponseCache(path) as reopened:
        assert reopened.get("k") == {"texts": ["é ünïcode"]}
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    cols = [r[1] for r in conn.execute("PRAGMA table_info(llm_cache)")]
    assert cols == ["key", "response_json", "created_at"]
    assert conn.execute("SELECT created_at FROM llm_cache").fetchone()[0].startswith("20")
    conn.close()


def test_an_unreadable_entry_is_a_miss(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with ResponseCache(path) as cache:
        conn = sqlite3.connect(path)
        conn.execute("INSERT INTO llm_cache VALUES ('bad', '{not json', '2024')")
        conn.execute("INSERT INTO llm_cache VALUES ('list', '[1]', '2024')")
        conn.commit()
        conn.close()
        assert cache.get("bad") is None and cache.get("list") is None and len(cache) == 2


def test_threads_and_a_second_connection_share_the_cache(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    cache, other = ResponseCache(path), ResponseCache(path)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(50):
                (cache if i % 2 else other).put(f"{t}-{i}", {"texts": [str(i)]})
                assert cache.get(f"{t}-{i}") == {"texts": [str(i)]}
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(cache) == 400 == len(other)
    cache.close()
    other.close()
