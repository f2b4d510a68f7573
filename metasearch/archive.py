"""The archive: one SQLite file (WAL) holding every run, candidate, per-task evaluation and journal event.

Why SQLite: one file a user can copy, browse with Datasette and query with plain SQL; WAL lets `metasearch archive`
read while a search writes. One process writes (the search orchestrator, `writer=True`, guarded by an exclusive
`flock` on `<path>.lock`); readers never lock. A file that is not ours, corrupt or from a newer metasearch is refused
with one line and never modified.

Example::

    with Archive("runs/metasearch.db", writer=True) as archive:
        run = archive.create_run("demo", config={}, seed=0, strategy="meta", suite="builtin:arith",
                                 model="sim-default", base_url="sim://default")
        cid, created = archive.add_candidate(run, code, name="CoT", origin="seed")
        archive.record_evaluations(cid, "val", [{"task_id": "t1", "score": 1.0}])
        archive.update_candidate(cid, status="evaluated", score=1.0)
        archive.top(run, k=5)

Code identity (`code_hash`): sha256 (hex) of the UTF-8 code after normalising line endings to `\\n`, stripping
trailing whitespace from every line and dropping trailing blank lines. So re-indented end-of-line spaces or an extra
final newline do not make a "new" candidate; anything else (including leading whitespace) does.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from metasearch.errors import ArchiveError

RUN_STATUSES = ("running", "finished", "stopped", "failed")
ORIGINS = ("seed", "meta", "mcts", "random", "promoted", "tuned", "manual")
CANDIDATE_STATUSES = ("proposed", "evaluated", "failed", "pruned", "rejected", "stopped_early")
SPLITS = ("val", "test", "dry")
BUSY_TIMEOUT_MS = 5000

# Fields that differ between two identical runs for reasons other than behaviour (wall clock, measured time).
VOLATILE_KEYS = frozenset({"created_at", "latency_s", "elapsed_s", "duration_s", "wall_s", "timestamp"})

_SQLITE_MAGIC = b"SQLite format 3\x00"


def _enum(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ({_enum(RUN_STATUSES)})),
    created_at TEXT,
    seed INTEGER,
    strategy TEXT,
    suite TEXT,
    model TEXT,
    base_url TEXT,
    config_json TEXT,
    summary_json TEXT,
    value_model_json TEXT
);
CREATE TABLE IF NOT EXISTS candidates (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    iteration INTEGER,
    name TEXT,
    thought TEXT,
    code TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    parent_ids TEXT NOT NULL DEFAULT '[]',
    origin TEXT NOT NULL CHECK (origin IN ({_enum(ORIGINS)})),
    ir_json TEXT,
    status TEXT NOT NULL CHECK (status IN ({_enum(CANDIDATE_STATUSES)})),
    error TEXT,
    error_kind TEXT,
    score REAL,
    ci_low REAL,
    ci_high REAL,
    n_tasks INTEGER,
    test_score REAL,
    test_ci_low REAL,
    test_ci_high REAL,
    test_n INTEGER,
    tokens INTEGER,
    cost REAL,
    llm_calls INTEGER,
    predicted_mean REAL,
    predicted_std REAL,
    created_at TEXT,
    UNIQUE (run_id, code_hash)
);
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY,
    candidate_id INTEGER NOT NULL REFERENCES candidates(id),
    split TEXT NOT NULL CHECK (split IN ({_enum(SPLITS)})),
    task_id TEXT NOT NULL,
    score REAL,
    answer TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    cost REAL,
    latency_s REAL,
    llm_calls INTEGER,
    error TEXT,
    error_kind TEXT,
    UNIQUE (candidate_id, split, task_id)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data_json TEXT,
    created_at TEXT,
    UNIQUE (run_id, seq)
);
CREATE TABLE IF NOT EXISTS llm_cache (
    key TEXT PRIMARY KEY,
    response_json TEXT,
    created_at TEXT
);
CREATE INDEX IF NOT EXISTS idx_candidates_run_status_score ON candidates (run_id, status, score DESC);
CREATE INDEX IF NOT EXISTS idx_candidates_status_score ON candidates (status, score DESC);
CREATE INDEX IF NOT EXISTS idx_candidates_run_test_score ON candidates (run_id, test_score);
CREATE INDEX IF NOT EXISTS idx_candidates_code_hash ON candidates (code_hash);
CREATE INDEX IF NOT EXISTS idx_evaluations_candidate_split ON evaluations (candidate_id, split);
CREATE INDEX IF NOT EXISTS idx_events_run_seq ON events (run_id, seq);
"""

TABLES = ("meta", "runs", "candidates", "evaluations", "events", "llm_cache")
RUN_COLUMNS = ("name", "status", "created_at", "seed", "strategy", "suite", "model", "base_url", "config_json",
               "summary_json", "value_model_json")
CANDIDATE_COLUMNS = ("run_id", "iteration", "name", "thought", "code", "code_hash", "parent_ids", "origin", "ir_json",
                     "status", "error", "error_kind", "score", "ci_low", "ci_high", "n_tasks", "test_score",
                     "test_ci_low", "test_ci_high", "test_n", "tokens", "cost", "llm_calls", "predicted_mean",
                     "predicted_std", "created_at")
# Identity and provenance are fixed at insertion; everything else may be updated as evaluation proceeds.
_FROZEN_CANDIDATE_COLUMNS = frozenset({"run_id", "code", "code_hash", "created_at"})
EVALUATION_COLUMNS = ("task_id", "score", "answer", "prompt_tokens", "completion_tokens", "cost", "latency_s",
                      "llm_calls", "error", "error_kind")


def code_hash(code: str) -> str:
    """sha256 of the code with line endings, trailing per-line whitespace and trailing blank lines normalised."""
    lines = [line.rstrip() for line in code.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _dumps(value: Any) -> str:
    """Canonical JSON (sorted keys, compact) so equal data is stored as equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _is_io_error(err: sqlite3.Error) -> bool:
    """Errors the user can act on (disk, permissions, another process, a damaged file), not bugs in our SQL."""
    if isinstance(err, (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)):
        return False
    message = str(err).lower()
    return isinstance(err, sqlite3.DatabaseError) and any(
        part in message for part in ("disk is full", "readonly", "read-only", "unable to open", "disk i/o",
                                     "database is locked", "no such file", "malformed", "not a database"))


class Archive:
    """Storage for runs, candidates (code, lineage, scores), per-task evaluations and the resume journal.

    Thread-safe: one connection guarded by a re-entrant lock; `transaction()` groups several writes atomically.
    """

    SCHEMA_VERSION = 1

    def __init__(self, path: str | Path, *, writer: bool = False, create: bool = True) -> None:
        """Open (or create, unless `create=False`) the archive at `path`; `writer=True` takes the writer lock."""
        self.path = Path(path)
        self.writer = writer
        self._lock = threading.RLock()
        self._depth = 0
        self._lock_fd: int | None = None
        self._conn: sqlite3.Connection | None = None
        try:
            self._open(create)
        except BaseException:
            self.close()
            raise
        # Imported here: sqlite-utils pulls in numpy (~150 ms) and most CLI commands never open an archive.
        import sqlite_utils

        self.db = sqlite_utils.Database(self._conn, execute_plugins=False)

    # ------------------------------------------------------------------ opening and validation

    def _fail(self, cause: str) -> ArchiveError:
        """One line naming the file and the cause (SQLite messages can span lines)."""
        return ArchiveError(f"{self.path}: {' '.join(cause.split())}")

    def _open(self, create: bool) -> None:
        existed = self.path.exists()
        if existed and not self.path.is_file():
            raise self._fail("is not a file")
        if not existed and not create:
            raise self._fail("no such archive (run a search first or pass --archive)")
        if existed:
            self._check_header()
        else:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise self._fail(f"cannot create directory {self.path.parent}: {err.strerror or err}") from None
        if self.writer:
            self._acquire_writer_lock()
        try:
            self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None,
                                         timeout=BUSY_TIMEOUT_MS / 1000)
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        except sqlite3.Error as err:
            raise self._fail(f"cannot open: {err}") from None
        tables = self._validate(existed, create)
        if self.writer and not os.access(self.path, os.W_OK):
            raise self._fail("is read-only")
        try:
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            if self.writer or not set(TABLES) <= tables:
                mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise self._fail(f"cannot switch to WAL journal mode (got {mode})")
            if not set(TABLES) <= tables:
                with self.transaction():
                    # Statement by statement: executescript() would COMMIT the open transaction first.
                    for statement in filter(str.strip, SCHEMA.split(";")):
                        self._conn.execute(statement)
                    self._conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                                       (str(self.SCHEMA_VERSION),))
                    self._conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('app', 'metasearch')")
        except sqlite3.Error as err:
            raise self._fail(f"cannot write: {err}") from None

    def _check_header(self) -> None:
        """Refuse a non-SQLite file before SQLite touches it (an empty file is a valid empty database)."""
        try:
            with open(self.path, "rb") as handle:
                head = handle.read(len(_SQLITE_MAGIC))
        except OSError as err:
            raise self._fail(f"cannot read: {err.strerror or err}") from None
        if head and head != _SQLITE_MAGIC:
            raise self._fail("is not an SQLite database")

    def _validate(self, existed: bool, create: bool) -> set[str]:
        """Check integrity and identity without writing; returns the tables present."""
        assert self._conn is not None
        try:
            rows = self._conn.execute("PRAGMA quick_check(1)").fetchall()
            tables = {r[0] for r in self._conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
        except sqlite3.DatabaseError as err:
            if _is_io_error(err):
                raise self._fail(f"cannot read: {err}") from None
            raise self._fail(f"is corrupt ({err})") from None
        if rows != [("ok",)]:
            raise self._fail(f"is corrupt (quick_check: {rows[0][0] if rows else 'no result'})")
        # A file holding only the response cache was made by metasearch.llm.cache before the archive: adopt it.
        if tables <= {"llm_cache"} and "meta" not in tables:
            if existed and not tables and not create:
                raise self._fail("is empty, not a metasearch archive")
            return tables
        if "meta" not in tables:
            raise self._fail("is an SQLite database but not a metasearch archive")
        try:
            meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as err:
            raise self._fail(f"is not a metasearch archive (meta table unreadable: {err})") from None
        if meta.get("app") != "metasearch":
            raise self._fail("is an SQLite database but not a metasearch archive")
        try:
            version = int(meta.get("schema_version", ""))
        except ValueError:
            raise self._fail(f"has an invalid schema_version {meta.get('schema_version')!r}") from None
        if version > self.SCHEMA_VERSION:
            raise self._fail(f"has schema version {version}, newer than this metasearch supports "
                             f"({self.SCHEMA_VERSION}); upgrade metasearch")
        if version < self.SCHEMA_VERSION:
            raise self._fail(f"has unknown old schema version {version}")
        return tables

    def _acquire_writer_lock(self) -> None:
        """Exclusive, non-blocking flock on `<path>.lock`; the kernel frees it if the process dies."""
        lock_path = f"{self.path}.lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise self._fail(f"cannot create lock file {lock_path}: {err.strerror or err}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise ArchiveError(f"{self.path} is in use by another metasearch process (pid {holder})") from None
            raise self._fail(f"cannot lock {lock_path}: {err.strerror or err}") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        except OSError as err:  # e.g. a full disk: say so in one line rather than run on and fail mid-write
            os.close(fd)
            raise self._fail(f"cannot write lock file {lock_path}: {err.strerror or err}") from None
        self._lock_fd = fd

    def close(self) -> None:
        """Close the connection and release the writer lock (idempotent)."""
        with self._lock:
            if self._conn is not None:
                try:
                    if self.writer:
                        self._conn.execute("PRAGMA optimize")
                except sqlite3.Error:
                    pass
                self._conn.close()
                self._conn = None
            if self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ low-level helpers

    @property
    def conn(self) -> sqlite3.Connection:
        """The live connection (raises once closed)."""
        if self._conn is None:
            raise ArchiveError(f"{self.path}: archive is closed")
        return self._conn

    @contextmanager
    def transaction(self) -> Iterator[Archive]:
        """Group writes atomically; nests (inner blocks become savepoints). Disk/permission errors → ArchiveError."""
        with self._lock:
            conn = self.conn
            depth = self._depth
            try:
                conn.execute("BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT sp{depth}")
            except sqlite3.Error as err:
                raise self._translate(err) from None
            self._depth += 1
            try:
                yield self
            except BaseException as err:
                self._depth = depth
                if conn.in_transaction:
                    conn.execute("ROLLBACK" if depth == 0 else f"ROLLBACK TO sp{depth}")
                    if depth:
                        conn.execute(f"RELEASE sp{depth}")
                if isinstance(err, sqlite3.Error) and _is_io_error(err):
                    raise self._translate(err) from None
                raise
            self._depth = depth
            try:
                conn.execute("COMMIT" if depth == 0 else f"RELEASE sp{depth}")
            except sqlite3.Error as err:
                if depth == 0 and conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise self._translate(err) from None

    def _translate(self, err: sqlite3.Error) -> Exception:
        if _is_io_error(err):
            return self._fail(f"cannot write: {err}")
        return err

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[dict]:
        with self._lock:
            self.conn  # raises if closed
            try:
                return list(self.db.query(sql, tuple(params)))
            except sqlite3.DatabaseError as err:
                if _is_io_error(err):
                    raise self._fail(f"cannot read: {err}") from None
                raise

    def _value(self, sql: str, params: Iterable[Any] = ()) -> Any:
        with self._lock:
            try:
                row = self.conn.execute(sql, tuple(params)).fetchone()
            except sqlite3.DatabaseError as err:
                if _is_io_error(err):
                    raise self._fail(f"cannot read: {err}") from None
                raise
        return None if row is None else row[0]

    # ------------------------------------------------------------------ runs

    def create_run(self, name: str, *, config: dict, seed: int, strategy: str, suite: str, model: str,
                   base_url: str) -> int:
        """Record a new run (status 'running') with everything needed to reproduce it; returns its id."""
        with self.transaction():
            cur = self.conn.execute(
                "INSERT INTO runs (name, status, created_at, seed, strategy, suite, model, base_url, config_json) "
                "VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?)",
                (name, _now(), seed, strategy, suite, model, base_url, _dumps(config)))
            return int(cur.lastrowid)

    def get_run(self, run: int | str) -> dict:
        """A run by id, or by name (the latest run with that name); a digit string falls back to the id."""
        if isinstance(run, int):
            rows = self._rows("SELECT * FROM runs WHERE id = ?", (run,))
        else:
            rows = self._rows("SELECT * FROM runs WHERE name = ? ORDER BY id DESC LIMIT 1", (run,))
            if not rows and str(run).isdigit():
                rows = self._rows("SELECT * FROM runs WHERE id = ?", (int(run),))
        if not rows:
            raise self._fail(f"no run {run!r}")
        return _decode_run(rows[0])

    def runs(self) -> list[dict]:
        """All runs, oldest first."""
        return [_decode_run(r) for r in self._rows("SELECT * FROM runs ORDER BY id")]

    def finish_run(self, run_id: int, status: str, summary: dict | None = None) -> None:
        """Mark a run finished/stopped/failed and store its summary."""
        if status not in RUN_STATUSES:
            raise ValueError(f"run status must be one of {RUN_STATUSES}, not {status!r}")
        fields: dict[str, Any] = {"status": status}
        if summary is not None:
            fields["summary_json"] = summary
        self.set_run_field(run_id, **fields)

    def set_run_field(self, run_id: int, **fields: Any) -> None:
        """Update run columns by name; dict/list values of `*_json` columns are JSON-encoded."""
        unknown = set(fields) - set(RUN_COLUMNS)
        if unknown:
            raise ValueError(f"unknown run fields: {sorted(unknown)}")
        if "status" in fields and fields["status"] not in RUN_STATUSES:
            raise ValueError(f"run status must be one of {RUN_STATUSES}, not {fields['status']!r}")
        values = {k: (_dumps(v) if k.endswith("_json") and not isinstance(v, str) and v is not None else v)
                  for k, v in fields.items()}
        self._update("runs", run_id, values)

    def _update(self, table: str, row_id: int, values: dict[str, Any]) -> None:
        if not values:
            return
        assignments = ", ".join(f"{column} = ?" for column in values)
        with self.transaction():
            cur = self.conn.execute(f"UPDATE {table} SET {assignments} WHERE id = ?", (*values.values(), row_id))
            if cur.rowcount == 0:
                raise self._fail(f"no {table[:-1]} with id {row_id}")

    # ------------------------------------------------------------------ candidates

    def add_candidate(self, run_id: int, code: str, *, name: str, thought: str = "", origin: str,
                      parent_ids: Iterable[int] = (), ir: dict | None = None, iteration: int | None = None,
                      status: str = "proposed", predicted_mean: float | None = None,
                      predicted_std: float | None = None) -> tuple[int, bool]:
        """Store a candidate; returns (id, created). Same normalised code in the run → (existing id, False)."""
        if origin not in ORIGINS:
            raise ValueError(f"origin must be one of {ORIGINS}, not {origin!r}")
        if status not in CANDIDATE_STATUSES:
            raise ValueError(f"status must be one of {CANDIDATE_STATUSES}, not {status!r}")
        digest = code_hash(code)
        parents = [int(p) for p in parent_ids]
        with self.transaction():
            existing = self._value("SELECT id FROM candidates WHERE run_id = ? AND code_hash = ?", (run_id, digest))
            if existing is not None:
                return int(existing), False
            try:
                cur = self.conn.execute(
                    "INSERT INTO candidates (run_id, iteration, name, thought, code, code_hash, parent_ids, origin, "
                    "ir_json, status, predicted_mean, predicted_std, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id, iteration, name, thought, code, digest, _dumps(parents), origin,
                     None if ir is None else _dumps(ir), status, predicted_mean, predicted_std, _now()))
            except sqlite3.IntegrityError as err:
                if "FOREIGN KEY" in str(err):
                    raise self._fail(f"no run with id {run_id}") from None
                raise
            return int(cur.lastrowid), True

    def find_by_hash(self, run_id: int, code: str) -> dict | None:
        """The candidate of this run whose normalised code equals `code`, if any."""
        rows = self._rows("SELECT * FROM candidates WHERE run_id = ? AND code_hash = ?", (run_id, code_hash(code)))
        return _decode_candidate(rows[0]) if rows else None

    def get_candidate(self, cid: int) -> dict:
        """One candidate with `parent_ids` as a list and `ir` decoded (raw `ir_json` kept)."""
        rows = self._rows("SELECT * FROM candidates WHERE id = ?", (int(cid),))
        if not rows:
            raise self._fail(f"no candidate with id {cid}")
        return _decode_candidate(rows[0])

    def update_candidate(self, cid: int, **fields: Any) -> None:
        """Update candidate columns (scores, status, error, costs...); `ir=` and list `parent_ids` are encoded."""
        if "ir" in fields:
            fields["ir_json"] = fields.pop("ir")
        unknown = set(fields) - set(CANDIDATE_COLUMNS)
        if unknown:
            raise ValueError(f"unknown candidate fields: {sorted(unknown)}")
        frozen = set(fields) & _FROZEN_CANDIDATE_COLUMNS
        if frozen:
            raise ValueError(f"candidate fields cannot change after insertion: {sorted(frozen)}")
        if "status" in fields and fields["status"] not in CANDIDATE_STATUSES:
            raise ValueError(f"status must be one of {CANDIDATE_STATUSES}, not {fields['status']!r}")
        if "origin" in fields and fields["origin"] not in ORIGINS:
            raise ValueError(f"origin must be one of {ORIGINS}, not {fields['origin']!r}")
        if "parent_ids" in fields:
            fields["parent_ids"] = _dumps([int(p) for p in fields["parent_ids"]])
        if "ir_json" in fields and fields["ir_json"] is not None and not isinstance(fields["ir_json"], str):
            fields["ir_json"] = _dumps(fields["ir_json"])
        self._update("candidates", int(cid), fields)

    def candidates(self, run_id: int | None = None, status: str | None = None) -> list[dict]:
        """Candidates in insertion order, optionally of one run and/or one status."""
        where, params = _where(run_id=run_id, status=status)
        return [_decode_candidate(r) for r in self._rows(f"SELECT * FROM candidates {where} ORDER BY id", params)]

    def top(self, run_id: int | None = None, k: int = 20, by: str = "score", *,
            status: str | None = "evaluated") -> list[dict]:
        """The k best candidates by `score` or `test_score`, descending, ties by id.

        Default: evaluated candidates with that score set. `status=None` ranks every status, unscored last.
        """
        if by not in ("score", "test_score"):
            raise ValueError(f"by must be 'score' or 'test_score', not {by!r}")
        if k < 0:
            raise ValueError("k must be >= 0")
        where, params = _where(run_id=run_id, status=status)
        if status == "evaluated":
            where += f" AND {by} IS NOT NULL"
            order = f"{by} DESC, id"
        else:
            order = f"{by} IS NULL, {by} DESC, id"
        rows = self._rows(f"SELECT * FROM candidates {where} ORDER BY {order} LIMIT ?", (*params, k))
        return [_decode_candidate(r) for r in rows]

    def ancestors(self, cid: int) -> list[dict]:
        """Every ancestor, nearest first (breadth-first, parents in listed order); each has a `depth` (parent=1)."""
        start = self.get_candidate(cid)
        seen = {start["id"]}
        found: list[dict] = []
        frontier = [p for p in start["parent_ids"]]
        depth = 1
        while frontier:
            ids = [p for p in dict.fromkeys(frontier) if p not in seen]
            seen.update(ids)
            rows = {r["id"]: r for r in self.candidates_by_ids(ids)}
            frontier = []
            for pid in ids:
                if pid in rows:
                    found.append({**rows[pid], "depth": depth})
                    frontier.extend(rows[pid]["parent_ids"])
            depth += 1
        return found

    def descendants(self, cid: int) -> list[dict]:
        """Every descendant, nearest first (breadth-first, children by id); each has a `depth` (child=1)."""
        self.get_candidate(cid)
        children: dict[int, list[int]] = {}
        # Children are always inserted after their parents, so only later rows can descend from `cid`.
        for row in self._rows("SELECT id, parent_ids FROM candidates WHERE id > ? AND parent_ids != '[]' "
                              "ORDER BY id", (int(cid),)):
            for parent in json.loads(row["parent_ids"]):
                children.setdefault(int(parent), []).append(row["id"])
        seen = {int(cid)}
        order: list[tuple[int, int]] = []
        frontier = [int(cid)]
        depth = 1
        while frontier:
            nxt = []
            for node in frontier:
                for child in children.get(node, []):
                    if child not in seen:
                        seen.add(child)
                        nxt.append(child)
                        order.append((child, depth))
            frontier = nxt
            depth += 1
        rows = {r["id"]: r for r in self.candidates_by_ids([c for c, _ in order])}
        return [{**rows[c], "depth": d} for c, d in order]

    def candidates_by_ids(self, ids: Iterable[int]) -> list[dict]:
        """Candidates with these ids (missing ids skipped), in id order."""
        ids = sorted({int(i) for i in ids})
        out: list[dict] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            out += [_decode_candidate(r) for r in
                    self._rows(f"SELECT * FROM candidates WHERE id IN ({marks}) ORDER BY id", chunk)]
        return out

    # ------------------------------------------------------------------ evaluations

    def record_evaluations(self, cid: int, split: str, rows: list[dict]) -> None:
        """Store per-task results in one transaction; re-recording a (candidate, split, task) replaces it."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        params = []
        for row in rows:
            unknown = set(row) - set(EVALUATION_COLUMNS)
            if unknown:
                raise ValueError(f"unknown evaluation fields: {sorted(unknown)}")
            if row.get("task_id") is None:
                raise ValueError("each evaluation row needs a task_id")
            params.append((int(cid), split, str(row["task_id"]),
                           *(row.get(column) for column in EVALUATION_COLUMNS[1:])))
        columns = ", ".join(EVALUATION_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in EVALUATION_COLUMNS[1:])
        sql = (f"INSERT INTO evaluations (candidate_id, split, {columns}) "
               f"VALUES ({', '.join('?' * (len(EVALUATION_COLUMNS) + 2))}) "
               f"ON CONFLICT (candidate_id, split, task_id) DO UPDATE SET {updates}")
        with self.transaction():
            try:
                self.conn.executemany(sql, params)
            except sqlite3.IntegrityError as err:
                if "FOREIGN KEY" in str(err):
                    raise self._fail(f"no candidate with id {cid}") from None
                raise

    def evaluations(self, cid: int, split: str | None = None) -> list[dict]:
        """Per-task results of a candidate, by split then task id."""
        where, params = _where(candidate_id=int(cid), split=split)
        return self._rows(f"SELECT * FROM evaluations {where} ORDER BY split, task_id", params)

    # ------------------------------------------------------------------ journal

    def log_event(self, run_id: int, kind: str, data: dict) -> int:
        """Append an event to the run's journal; returns its seq (1, 2, ... per run)."""
        with self.transaction():
            seq = int(self._value("SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE run_id = ?", (run_id,)))
            try:
                self.conn.execute("INSERT INTO events (run_id, seq, kind, data_json, created_at) "
                                  "VALUES (?, ?, ?, ?, ?)", (run_id, seq, kind, _dumps(data), _now()))
            except sqlite3.IntegrityError as err:
                if "FOREIGN KEY" in str(err):
                    raise self._fail(f"no run with id {run_id}") from None
                raise
            return seq

    def events(self, run_id: int, kind: str | None = None) -> list[dict]:
        """The run's journal in seq order; `data` is the decoded `data_json`."""
        where, params = _where(run_id=run_id, kind=kind)
        rows = self._rows(f"SELECT * FROM events {where} ORDER BY seq", params)
        return [{**r, "data": _loads(r["data_json"])} for r in rows]

    # ------------------------------------------------------------------ summaries

    def stats(self, run_id: int) -> dict:
        """Counts by status, best val/test score (and which candidate), tokens, cost, LLM calls, evaluations."""
        self.get_run(run_id)
        by_status = dict.fromkeys(CANDIDATE_STATUSES, 0)
        for row in self._rows("SELECT status, COUNT(*) AS n FROM candidates WHERE run_id = ? GROUP BY status",
                              (run_id,)):
            by_status[row["status"]] = row["n"]
        totals = self._rows("SELECT COUNT(*) AS n, COALESCE(SUM(tokens), 0) AS tokens, COALESCE(SUM(cost), 0.0) AS "
                            "cost, COALESCE(SUM(llm_calls), 0) AS llm_calls FROM candidates WHERE run_id = ?",
                            (run_id,))[0]
        best = self.top(run_id, k=1)
        best_test = self.top(run_id, k=1, by="test_score")
        n_eval = self._value("SELECT COUNT(*) FROM evaluations e JOIN candidates c ON c.id = e.candidate_id "
                             "WHERE c.run_id = ?", (run_id,))
        return {"run_id": run_id, "candidates": totals["n"], "by_status": by_status,
                "best_id": best[0]["id"] if best else None, "best_score": best[0]["score"] if best else None,
                "best_test_id": best_test[0]["id"] if best_test else None,
                "best_test_score": best_test[0]["test_score"] if best_test else None,
                "tokens": totals["tokens"], "cost": totals["cost"], "llm_calls": totals["llm_calls"],
                "evaluations": n_eval,
                "events": self._value("SELECT COUNT(*) FROM events WHERE run_id = ?", (run_id,))}

    def snapshot(self, run_id: int) -> dict:
        """The run's behaviour as comparable data: equal for two runs built from the same inputs and seed.

        Drops timestamps and measured times (`VOLATILE_KEYS`), row ids and run ids; candidate ids (in
        `parent_ids`, evaluations, and event data under `cid`/`cids`/`parent_ids`/keys ending in `candidate_id`
        or `candidate_ids`) become the candidate's position in the run ("#0", "#1"...), or `hash:<code_hash>` for
        a candidate of another run.
        """
        run = self.get_run(run_id)
        cands = self._rows("SELECT * FROM candidates WHERE run_id = ? ORDER BY id", (run_id,))
        ordinal = {c["id"]: f"#{i}" for i, c in enumerate(cands)}

        def ref(cid: Any) -> Any:
            if isinstance(cid, bool) or not isinstance(cid, int):
                return cid
            if cid in ordinal:
                return ordinal[cid]
            digest = self._value("SELECT code_hash FROM candidates WHERE id = ?", (cid,))
            return f"hash:{digest}" if digest else f"missing:{cid}"

        def clean(value: Any, key: str = "") -> Any:
            if isinstance(value, dict):
                return {k: clean(v, k) for k, v in sorted(value.items()) if k not in VOLATILE_KEYS}
            if _is_candidate_key(key):
                return [ref(v) for v in value] if isinstance(value, list) else ref(value)
            if isinstance(value, list):
                return [clean(v) for v in value]
            return value

        candidates = []
        for c in cands:
            row = {k: v for k, v in c.items() if k not in ("id", "run_id", "parent_ids", "ir_json")
                   and k not in VOLATILE_KEYS}
            row["parent_ids"] = [ref(p) for p in json.loads(c["parent_ids"])]
            row["ir"] = clean(_loads(c["ir_json"]))
            candidates.append(row)
        evaluations = []
        if cands:
            for e in self._rows("SELECT e.* FROM evaluations e JOIN candidates c ON c.id = e.candidate_id "
                                "WHERE c.run_id = ? ORDER BY e.candidate_id, e.split, e.task_id", (run_id,)):
                row = {k: v for k, v in e.items() if k not in ("id", "candidate_id") and k not in VOLATILE_KEYS}
                evaluations.append({"candidate": ordinal[e["candidate_id"]], **row})
        events = [{"seq": e["seq"], "kind": e["kind"], "data": clean(e["data"])} for e in self.events(run_id)]
        run_part = {k: run[k] for k in ("seed", "strategy", "suite", "model", "base_url", "status")}
        return {"run": run_part, "candidates": candidates, "evaluations": evaluations, "events": events}


# ---------------------------------------------------------------------- row helpers


def _where(**conditions: Any) -> tuple[str, list[Any]]:
    """`WHERE a = ? AND b = ?` for the conditions that are not None (always a valid clause)."""
    parts = [f"{column} = ?" for column, value in conditions.items() if value is not None]
    params = [value for value in conditions.values() if value is not None]
    return "WHERE " + (" AND ".join(parts) if parts else "1"), params


def _decode_candidate(row: dict) -> dict:
    return {**row, "parent_ids": json.loads(row["parent_ids"] or "[]"), "ir": _loads(row.get("ir_json"))}


def _decode_run(row: dict) -> dict:
    return {**row, "config": _loads(row["config_json"]), "summary": _loads(row["summary_json"])}


def _is_candidate_key(key: str) -> bool:
    return key in ("cid", "cids", "parent_ids") or key.endswith(("candidate_id", "candidate_ids"))
