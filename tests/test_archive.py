"""The archive stores runs, candidates, evaluations and the journal, and refuses files it must not touch."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from metasearch.archive import Archive, code_hash
from metasearch.errors import ArchiveError

CODE_A = 'NAME = "CoT"\n\ndef forward(task, lm):\n    return lm.ask(task.question)\n'
CODE_B = 'NAME = "SC"\n\ndef forward(task, lm):\n    return majority_vote(lm.ask(task.question, n=5))\n'
CODE_C = 'NAME = "Mix"\n\ndef forward(task, lm):\n    return majority_vote(lm.ask(task.question, n=3))\n'
CODE_D = 'NAME = "Refine"\n\ndef forward(task, lm):\n    return lm.ask("Improve your answer " + task.question)\n'


def new_run(archive: Archive, name: str = "r", seed: int = 0) -> int:
    return archive.create_run(name, config={"name": name, "seed": seed}, seed=seed, strategy="meta",
                              suite="builtin:arith", model="sim-default", base_url="sim://default")


@pytest.fixture()
def path(tmp_path: Path) -> Path:
    return tmp_path / "arc.db"


@pytest.fixture()
def archive(path: Path):
    with Archive(path, writer=True) as arc:
        yield arc


def build_run(archive: Archive, name: str, shift: float = 0.0) -> int:
    """A small run with lineage, scores, evaluations and events, built the same way every time."""
    run = new_run(archive, name)
    a, _ = archive.add_candidate(run, CODE_A, name="CoT", origin="seed", iteration=0)
    b, _ = archive.add_candidate(run, CODE_B, name="SC", origin="seed", iteration=0)
    c, _ = archive.add_candidate(run, CODE_C, name="Mix", origin="meta", parent_ids=[a, b], iteration=1,
                                 ir={"ops": ["cot", "sc"], "n": 3}, predicted_mean=0.5, predicted_std=0.1)
    for cid, score in ((a, 0.4), (b, 0.6), (c, 0.7 + shift)):
        archive.record_evaluations(cid, "val", [{"task_id": f"t{i}", "score": float(i % 2), "answer": str(i),
                                                 "latency_s": 0.1 * cid} for i in range(3)])
        archive.update_candidate(cid, status="evaluated", score=score, ci_low=score - 0.1, ci_high=score + 0.1,
                                 n_tasks=3, tokens=100, cost=0.001)
    archive.log_event(run, "proposed", {"candidate_id": c, "parent_ids": [a, b], "elapsed_s": 0.123 * c})
    archive.log_event(run, "evaluated", {"cid": c, "score": 0.7 + shift})
    return run


# ---------------------------------------------------------------------- round trip and queries


def test_round_trip_of_run_candidate_evaluations_and_events(archive: Archive) -> None:
    run = new_run(archive, "demo", seed=7)
    cid, created = archive.add_candidate(run, CODE_A, name="CoT", thought="step by step", origin="seed",
                                         ir={"op": "cot"}, iteration=0)
    assert created
    archive.update_candidate(cid, status="evaluated", score=0.5, ci_low=0.4, ci_high=0.6, n_tasks=10,
                             tokens=1234, cost=0.01, llm_calls=10)
    archive.record_evaluations(cid, "val", [{"task_id": "t1", "score": 1.0, "answer": "42", "prompt_tokens": 10,
                                             "completion_tokens": 5, "cost": 0.001, "latency_s": 0.2,
                                             "llm_calls": 1}])
    seq = archive.log_event(run, "candidate", {"cid": cid})
    archive.finish_run(run, "finished", {"best": cid})
    archive.set_run_field(run, value_model_json={"kind": "forest"})

    got = archive.get_candidate(cid)
    assert (got["name"], got["thought"], got["origin"], got["status"]) == ("CoT", "step by step", "seed", "evaluated")
    assert got["code"] == CODE_A and got["code_hash"] == code_hash(CODE_A)
    assert got["parent_ids"] == [] and got["ir"] == {"op": "cot"}
    assert (got["score"], got["ci_low"], got["ci_high"], got["tokens"], got["llm_calls"]) == (0.5, 0.4, 0.6, 1234, 10)
    assert got["created_at"].endswith("+00:00")
    [ev] = archive.evaluations(cid)
    assert (ev["split"], ev["task_id"], ev["score"], ev["answer"], ev["completion_tokens"]) == ("val", "t1", 1.0,
                                                                                                "42", 5)
    assert seq == 1 and archive.events(run)[0]["data"] == {"cid": cid}
    r = archive.get_run(run)
    assert (r["status"], r["seed"], r["config"], r["summary"]) == ("finished", 7, {"name": "demo", "seed": 7},
                                                                   {"best": cid})
    assert r["value_model_json"] == '{"kind":"forest"}'
    assert [x["id"] for x in archive.runs()] == [run]


def test_get_run_by_name_returns_latest_and_missing_raises(archive: Archive) -> None:
    first, second = new_run(archive, "same"), new_run(archive, "same")
    assert archive.get_run("same")["id"] == second
    assert archive.get_run(first)["id"] == first
    assert archive.get_run(str(first))["id"] == first
    with pytest.raises(ArchiveError, match="no run"):
        archive.get_run("nope")
    with pytest.raises(ArchiveError, match="no candidate"):
        archive.get_candidate(999)


def test_same_code_in_a_run_is_stored_once(archive: Archive) -> None:
    run, other = new_run(archive), new_run(archive, "other")
    cid, created = archive.add_candidate(run, CODE_A, name="CoT", origin="seed")
    again, created_again = archive.add_candidate(run, CODE_A, name="renamed", origin="meta")
    assert (again, created, created_again) == (cid, True, False)
    assert archive.get_candidate(cid)["name"] == "CoT"          # nothing written on a duplicate
    assert archive.add_candidate(other, CODE_A, name="CoT", origin="seed")[1]   # dedup is per run
    assert len(archive.candidates(run)) == 1


def test_trailing_whitespace_and_blank_lines_do_not_change_the_hash(archive: Archive) -> None:
    noisy = "\n".join(line + "   \t" for line in CODE_A.splitlines()) + "\n\n\n"
    assert code_hash(noisy) == code_hash(CODE_A) == code_hash(CODE_A.replace("\n", "\r\n"))
    assert code_hash("  " + CODE_A) != code_hash(CODE_A)        # leading indentation is meaning
    assert code_hash(CODE_A.replace("lm.ask", "lm.ask_json")) != code_hash(CODE_A)
    run = new_run(archive)
    cid, _ = archive.add_candidate(run, CODE_A, name="CoT", origin="seed")
    assert archive.add_candidate(run, noisy, name="CoT", origin="seed") == (cid, False)
    assert archive.find_by_hash(run, noisy)["id"] == cid
    assert archive.find_by_hash(run, CODE_B) is None


def test_lineage_ancestors_nearest_first_and_descendants(archive: Archive) -> None:
    run = new_run(archive)
    a, _ = archive.add_candidate(run, CODE_A, name="a", origin="seed")
    b, _ = archive.add_candidate(run, CODE_B, name="b", origin="seed")
    c, _ = archive.add_candidate(run, CODE_C, name="c", origin="meta", parent_ids=[b, a])
    d, _ = archive.add_candidate(run, CODE_D, name="d", origin="meta", parent_ids=[c, a])   # diamond via a
    assert [(x["id"], x["depth"]) for x in archive.ancestors(d)] == [(c, 1), (a, 1), (b, 2)]
    assert [(x["id"], x["depth"]) for x in archive.descendants(a)] == [(c, 1), (d, 1)]
    assert [(x["id"], x["depth"]) for x in archive.descendants(b)] == [(c, 1), (d, 2)]
    assert archive.ancestors(a) == [] and archive.descendants(d) == []
    assert archive.get_candidate(d)["parent_ids"] == [c, a]


def test_top_k_sorts_evaluated_by_score_desc_with_ties_by_id(archive: Archive) -> None:
    run, other = new_run(archive), new_run(archive, "other")
    ids = []
    for i, score in enumerate([0.5, 0.9, 0.5, 0.7, None]):
        cid, _ = archive.add_candidate(run, f"x = {i}\n", name=f"c{i}", origin="random")
        if score is not None:
            archive.update_candidate(cid, status="evaluated", score=score, test_score=1 - score)
        ids.append(cid)
    failed, _ = archive.add_candidate(run, "boom\n", name="failed", origin="meta")
    archive.update_candidate(failed, status="failed", score=0.99)
    foreign, _ = archive.add_candidate(other, "y = 1\n", name="other", origin="seed")
    archive.update_candidate(foreign, status="evaluated", score=0.8)

    assert [c["id"] for c in archive.top(run, k=10)] == [ids[1], ids[3], ids[0], ids[2]]
    assert [c["id"] for c in archive.top(run, k=2)] == [ids[1], ids[3]]
    assert [c["id"] for c in archive.top(k=2)] == [ids[1], foreign]
    assert [c["id"] for c in archive.top(run, k=10, by="test_score")] == [ids[0], ids[2], ids[3], ids[1]]
    assert [c["id"] for c in archive.top(run, k=10, status=None)][:2] == [failed, ids[1]]
    assert archive.top(run, k=10, status=None)[-1]["id"] == ids[4]    # unscored last
    assert archive.top(run, k=0) == []


def test_stats_counts_statuses_best_and_totals(archive: Archive) -> None:
    run = build_run(archive, "r")
    bad, _ = archive.add_candidate(run, "oops\n", name="bad", origin="meta")
    archive.update_candidate(bad, status="failed", error="NameError", error_kind="runtime")
    stats = archive.stats(run)
    assert stats["candidates"] == 4 and stats["by_status"]["evaluated"] == 3 and stats["by_status"]["failed"] == 1
    assert stats["best_score"] == pytest.approx(0.7) and stats["best_id"] == archive.top(run, k=1)[0]["id"]
    assert stats["tokens"] == 300 and stats["cost"] == pytest.approx(0.003)
    assert stats["evaluations"] == 9 and stats["events"] == 2


def test_record_evaluations_is_idempotent_and_replaces(archive: Archive) -> None:
    run = new_run(archive)
    cid, _ = archive.add_candidate(run, CODE_A, name="CoT", origin="seed")
    rows = [{"task_id": f"t{i}", "score": 0.0} for i in range(5)]
    archive.record_evaluations(cid, "val", rows)
    archive.record_evaluations(cid, "val", rows)
    archive.record_evaluations(cid, "val", [{"task_id": "t0", "score": 1.0, "error": None}])
    archive.record_evaluations(cid, "test", [{"task_id": "t0", "score": 0.5}])
    got = archive.evaluations(cid, "val")
    assert len(got) == 5 and got[0]["score"] == 1.0
    assert len(archive.evaluations(cid)) == 6
    with pytest.raises(ValueError):
        archive.record_evaluations(cid, "val", [{"task_id": "t9", "score": 1.0}, {"task": "bad"}])
    assert len(archive.evaluations(cid, "val")) == 5           # the valid first row was not written either
    with pytest.raises(ValueError):
        archive.record_evaluations(cid, "train", rows)


def test_log_event_numbers_each_run_separately(archive: Archive) -> None:
    r1, r2 = new_run(archive, "a"), new_run(archive, "b")
    assert [archive.log_event(r1, "x", {}), archive.log_event(r1, "y", {"i": 1}), archive.log_event(r2, "x", {})] \
        == [1, 2, 1]
    assert [e["kind"] for e in archive.events(r1)] == ["x", "y"]
    assert [e["seq"] for e in archive.events(r1, kind="y")] == [2]


def test_transaction_rolls_back_every_write_on_error(archive: Archive) -> None:
    run = new_run(archive)
    with pytest.raises(RuntimeError):
        with archive.transaction():
            archive.add_candidate(run, CODE_A, name="CoT", origin="seed")
            archive.log_event(run, "x", {})
            raise RuntimeError("crash mid-iteration")
    assert archive.candidates(run) == [] and archive.events(run) == []
    with archive.transaction():
        archive.add_candidate(run, CODE_A, name="CoT", origin="seed")
        with pytest.raises(KeyError):
            with archive.transaction():                    # nested: only the inner block is undone
                archive.add_candidate(run, CODE_B, name="SC", origin="seed")
                raise KeyError("inner")
    assert [c["name"] for c in archive.candidates(run)] == ["CoT"]


def test_invalid_enum_values_and_frozen_fields_are_rejected(archive: Archive) -> None:
    run = new_run(archive)
    with pytest.raises(ValueError):
        archive.add_candidate(run, CODE_A, name="x", origin="alien")
    cid, _ = archive.add_candidate(run, CODE_A, name="x", origin="seed")
    for bad in ({"status": "great"}, {"code": "x = 2"}, {"nonsense": 1}):
        with pytest.raises(ValueError):
            archive.update_candidate(cid, **bad)
    with pytest.raises(ValueError):
        archive.finish_run(run, "exploded")
    with pytest.raises(ArchiveError, match="no run"):
        archive.add_candidate(999, CODE_B, name="x", origin="seed")


def test_concurrent_writers_threads_share_one_archive(archive: Archive) -> None:
    run = new_run(archive)

    def work(t: int) -> None:
        for i in range(20):
            cid, _ = archive.add_candidate(run, f"x = {t * 100 + i}\n", name="t", origin="random")
            archive.record_evaluations(cid, "val", [{"task_id": "a", "score": 1.0}])
            archive.log_event(run, "added", {"cid": cid})

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(archive.candidates(run)) == 80
    assert [e["seq"] for e in archive.events(run)] == list(range(1, 81))


# ---------------------------------------------------------------------- snapshot (determinism)


def test_snapshot_of_identically_built_runs_is_equal(archive: Archive) -> None:
    archive.add_candidate(new_run(archive, "padding"), "z = 0\n", name="pad", origin="seed")  # shift the ids
    first = build_run(archive, "first")
    second = build_run(archive, "second")
    assert archive.get_candidate(archive.candidates(first)[0]["id"])["id"] != archive.candidates(second)[0]["id"]
    snap1, snap2 = archive.snapshot(first), archive.snapshot(second)
    assert snap1 == snap2
    assert snap1["candidates"][2]["parent_ids"] == ["#0", "#1"]
    assert snap1["events"][0]["data"] == {"candidate_id": "#2", "parent_ids": ["#0", "#1"]}
    assert "created_at" not in snap1["candidates"][0] and "latency_s" not in snap1["evaluations"][0]
    third = build_run(archive, "third", shift=0.01)
    assert archive.snapshot(third) != snap1


# ---------------------------------------------------------------------- files: WAL, reopen, refusals


def test_wal_mode_and_pragmas(archive: Archive, path: Path) -> None:
    assert archive.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert archive.conn.execute("PRAGMA synchronous").fetchone()[0] == 1          # NORMAL
    assert archive.conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0
    with sqlite3.connect(path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"      # persistent in the file
        meta = dict(other.execute("SELECT key, value FROM meta"))
    assert meta == {"schema_version": "1", "app": "metasearch"}


def test_reopening_keeps_data_and_readers_see_committed_writes(path: Path) -> None:
    with Archive(path, writer=True) as arc:
        run = build_run(arc, "r")
        with Archive(path, create=False) as reader:                 # a concurrent reader, no lock
            assert len(reader.candidates(run)) == 3
            arc.add_candidate(run, CODE_D, name="late", origin="meta")
            assert len(reader.candidates(run)) == 4
    with Archive(path, writer=True) as again:
        assert again.get_run(run)["name"] == "r" and len(again.candidates(run)) == 4
        assert new_run(again, "next") == run + 1


def test_missing_archive_with_create_false(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="no such archive"):
        Archive(tmp_path / "absent.db", create=False)
    assert not (tmp_path / "absent.db").exists()


def test_unwritable_location_is_an_archive_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ArchiveError, match="cannot create directory"):
        Archive(blocker / "arc.db")


def test_garbage_file_is_refused_and_untouched(path: Path) -> None:
    garbage = bytes(range(256)) * 40
    path.write_bytes(garbage)
    with pytest.raises(ArchiveError, match="not an SQLite database") as err:
        Archive(path, writer=True)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert path.read_bytes() == garbage


def test_corrupt_archive_pages_are_refused_and_untouched(path: Path) -> None:
    with Archive(path, writer=True) as arc:
        run = new_run(arc)
        for i in range(300):
            arc.add_candidate(run, f"x = {i}\n" + "# padding\n" * 50, name=f"c{i}", origin="random")
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 8 * page
    for start in range(2 * page, len(data) - page, 3 * page):     # keep the header, smash later pages
        data[start + 8:start + 200] = b"\xde\xad\xbe\xef" * 48
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="corrupt") as err:
        Archive(path, writer=True)
    assert "\n" not in str(err.value)
    assert path.read_bytes() == bytes(data)


def test_foreign_sqlite_file_is_refused_and_untouched(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO customers (name) VALUES ('ada')")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(ArchiveError, match="not a metasearch archive"):
        Archive(path, writer=True)
    assert path.read_bytes() == before


def test_file_with_only_the_response_cache_is_adopted(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE llm_cache (key TEXT PRIMARY KEY, response_json TEXT, created_at TEXT)")
        conn.execute("INSERT INTO llm_cache VALUES ('k', '{}', 'now')")
    conn.close()
    with Archive(path, writer=True) as arc:
        assert new_run(arc) == 1
        assert arc.conn.execute("SELECT COUNT(*) FROM llm_cache").fetchone()[0] == 1


def test_newer_schema_version_is_refused_and_untouched(path: Path) -> None:
    Archive(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(ArchiveError, match="schema version 2, newer"):
        Archive(path)
    assert path.read_bytes() == before


def test_disk_full_is_an_archive_error(archive: Archive) -> None:
    run = new_run(archive)
    pages = archive.conn.execute("PRAGMA page_count").fetchone()[0]
    archive.conn.execute(f"PRAGMA max_page_count = {pages + 2}")
    with pytest.raises(ArchiveError, match="full"):
        for i in range(100):
            archive.add_candidate(run, f"x = {i}\n" + "#" * 4000, name="big", origin="random")
    archive.conn.execute("PRAGMA max_page_count = 1073741823")
    assert archive.add_candidate(run, "fine = 1\n", name="ok", origin="seed")[1]   # usable afterwards


# ---------------------------------------------------------------------- the writer lock


def test_second_writer_in_another_process_is_refused(path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from metasearch.archive import Archive
            arc = Archive({str(path)!r}, writer=True)
            print("ready", flush=True)
            sys.stdin.read()
            arc.close()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(ArchiveError) as err:
            Archive(path, writer=True)
        assert str(err.value) == f"{path} is in use by another metasearch process (pid {holder.pid})"
        with Archive(path, create=False) as reader:                # readers never lock
            assert reader.runs() == []
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    with Archive(path, writer=True) as arc:                        # released when the holder closes
        assert arc.runs() == []


def test_lock_is_released_when_the_holder_is_killed(path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from metasearch.archive import Archive; import time; "
                               f"a = Archive({str(path)!r}, writer=True); print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(ArchiveError, match="in use"):
            Archive(path, writer=True)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    Archive(path, writer=True).close()


def test_second_writer_in_the_same_process_is_refused(path: Path) -> None:
    with Archive(path, writer=True):
        with pytest.raises(ArchiveError, match="in use"):
            Archive(path, writer=True)
    Archive(path, writer=True).close()
