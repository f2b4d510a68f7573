"""The HTML report (content, self-containment, a real headless Chromium render), `compare`, and `browse`."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from test_plots import real_run_archive, writable_copy
from metasearch import browse
from metasearch.archive import Archive
from metasearch.cli import main
from metasearch.errors import UserError
from metasearch.report import failure_reason, group_failures, render_report, run_overview, write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DOCS_SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "report.png"


@pytest.fixture(scope="module")
def real_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return real_run_archive(tmp_path_factory)


@pytest.fixture(scope="module")
def report_file(real_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real run's report, rendered once for the tests that only read it."""
    with Archive(real_archive, create=False) as archive:
        return write_report(archive, "small", tmp_path_factory.mktemp("report") / "out" / "report.html")


def run_cli(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["metasearch", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
        raise SystemExit(0)
    return int(exit_info.value.code or 0)


def screenshot(html_file: Path, png: Path, profile: Path) -> None:
    """Load the file in headless Chromium (no network, throwaway profile) and save a 1280x2000 screenshot."""
    assert CHROMIUM is not None
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={profile}", f"--screenshot={png}", "--window-size=1280,2000",
                    html_file.resolve().as_uri()], check=True, capture_output=True, timeout=120)


def test_report_names_the_winner_with_its_scores_and_embeds_every_plot(real_archive: Path,
                                                                       report_file: Path) -> None:
    with Archive(real_archive, create=False) as archive:
        winner = archive.get_run(1)["summary"]["winner"]
        failed = [c for c in archive.candidates(1) if c["status"] == "failed"]
    text = report_file.read_text(encoding="utf-8")
    best = re.search(r"<h3 id='best-name'>(.*?)</h3>", text).group(1)
    assert f"#{winner['id']} {winner['name']}" in best
    score_line = re.search(r"<p id='best-score'>(.*?)</p>", text).group(1)
    assert f"validation {winner['score']:.3f}" in score_line and f"test {winner['test_score']:.3f}" in score_line
    assert "winner" in text and "seed" in text
    assert text.count("data:image/png;base64,") == 4  # no value model in a meta-agent run
    code = re.search(r'<div class="code">(.*?)</div>', text, re.S).group(1)
    assert 'style="color:' in code  # pygments with inline styles, no stylesheet
    assert "forward" in html.unescape(re.sub(r"<[^>]+>", "", code))
    for c in failed:  # every failed candidate is counted under its reason
        assert f"#{c['id']}" in text and failure_reason(c["error"], kind=c["error_kind"])[:30] in text.replace("&#x27;", "'")


def test_report_is_self_contained(report_file: Path) -> None:
    text = report_file.read_text(encoding="utf-8")
    assert "<script" not in text and "<link" not in text and "@import" not in text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text)
    assert not re.search(r"url\(", text)


def test_report_escapes_names_and_errors_from_generated_code(real_archive: Path, tmp_path: Path) -> None:
    copy = writable_copy(real_archive, tmp_path)
    with Archive(copy, writer=True) as archive:
        winner = archive.get_run(1)["summary"]["winner"]["id"]
        archive.update_candidate(winner, name="<script>alert(1)</script>")
        loser = next(c for c in archive.candidates(1) if c["id"] != winner)
        archive.update_candidate(loser["id"], status="failed", error_kind="runtime", error="<img src=x onerror=1>")
        text = render_report(archive, 1)
    assert "<script>" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_failures_group_by_kind_and_message_prefix_with_numbers_normalised() -> None:
    groups = group_failures([(1, "runtime", "line 3: name 'x1' is not defined"),
                             (2, "runtime", "line 12: name 'x2' is not defined\nTraceback ..."),
                             (3, "timeout", "wall time 20s exceeded"), (4, None, None)])
    assert [(g.kind, g.count, g.examples) for g in groups] == [("runtime", 2, [1, 2]), ("timeout", 1, [3]),
                                                              ("unknown", 1, [4])]
    assert groups[0].reason == "line N: name 'xN' is not defined"
    assert len(failure_reason("e" * 500)) == 80
    # A wrapper that repeats the kind does not split a group.
    assert len(group_failures([(1, "lm", "lm: ValueError: x"), (2, "lm", "lm: lm: ValueError: x")])) == 1


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("METASEARCH_REQUIRE_CHROMIUM"),
                    reason="chromium is not installed (apt-get install -y chromium); CI requires it")
def test_report_renders_in_headless_chromium(report_file: Path, tmp_path: Path) -> None:
    png = tmp_path / "shot.png"
    screenshot(report_file, png, tmp_path / "profile")
    pixels = (imread(png)[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
    assert pixels.shape[0] == 1280 * 2000
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    assert len(colours) > 200, "screenshot has too few colours: the page did not render"
    assert counts.max() / counts.sum() < 0.9, "screenshot is nearly one colour"
    if os.environ.get("METASEARCH_UPDATE_DOCS") == "1":
        shutil.copyfile(png, DOCS_SCREENSHOT)


def test_report_command_writes_the_file_and_bad_run_exits_2(real_archive: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.html"
    assert run_cli(monkeypatch, "report", "1", "-o", str(out), "--archive", str(real_archive)) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    capsys.readouterr()
    assert run_cli(monkeypatch, "report", "42", "-o", str(tmp_path / "x.html"), "--archive", str(real_archive)) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "no run '42'" in err
    assert not (tmp_path / "x.html").exists()


def test_archive_plot_command(real_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(monkeypatch, "archive", "plot", "small", "--out", str(tmp_path), "--archive",
                   str(real_archive)) == 0
    printed = capsys.readouterr().out.split()
    assert printed and all(Path(p).stat().st_size > 0 for p in printed)


def test_compare_shows_both_runs_side_by_side(real_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    copy = writable_copy(real_archive, tmp_path)
    with Archive(copy, writer=True) as archive:  # a second run: one finished evaluated candidate
        run = archive.create_run("other", config={}, seed=7, strategy="random", suite="builtin:arith",
                                 model="sim-default", base_url="sim://default")
        cid, _ = archive.add_candidate(run, "def forward(task, lm):\n    return '1'\n", name="One", origin="seed")
        archive.update_candidate(cid, status="evaluated", score=0.25, ci_low=0.1, ci_high=0.4, n_tasks=20,
                                 tokens=100, cost=0.5)
        a, b = run_overview(archive, 1), run_overview(archive, "other")
    assert (a["strategy"], b["strategy"]) == ("meta", "random")
    assert b["by_status"]["evaluated"] == 1 and b["best_test"] is None and b["tokens"] == 100
    assert a["spend_scope"] == "run" and a["tokens"] == a_tokens(copy)
    assert run_cli(monkeypatch, "archive", "compare", "1", "other", "--archive", str(copy), "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["b"]["best_val"]["name"] == "One"
    assert run_cli(monkeypatch, "archive", "compare", "1", "other", "--archive", str(copy)) == 0
    table = capsys.readouterr().out
    assert "random" in table and "meta" in table and "0.250 ± 0.150 (n=20)" in table
    assert run_cli(monkeypatch, "archive", "compare", "1", "999", "--archive", str(copy)) == 2


def a_tokens(archive_path: Path) -> int:
    with Archive(archive_path, create=False) as archive:
        return archive.get_run(1)["summary"]["spent"]["total_tokens"]


def test_browse_without_datasette_says_how_to_install(real_archive: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(browse.shutil, "which", lambda name: None)
    monkeypatch.setitem(sys.modules, "datasette", None)  # import datasette → ImportError
    with pytest.raises(UserError, match="pip install"):
        browse.datasette_executable()
    assert run_cli(monkeypatch, "archive", "browse", "--archive", str(real_archive)) == 2
    err = capsys.readouterr().err
    assert "metasearch[browse]" in err and err.strip().count("\n") == 0


def test_browse_print_command_is_read_only_with_canned_queries(real_archive: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("datasette") is None:
        pytest.skip("datasette is not installed (pip install 'metasearch[browse]')")
    assert run_cli(monkeypatch, "archive", "browse", "--archive", str(real_archive), "--port", "8123",
                   "--print-command") == 0
    argv = capsys.readouterr().out.split()
    assert argv[1:4] == ["serve", "--immutable", str(real_archive.resolve())]
    assert argv[argv.index("--port") + 1] == "8123" and argv[argv.index("--host") + 1] == "127.0.0.1"
    meta = json.loads(Path(argv[argv.index("--metadata") + 1]).read_text())
    assert set(meta["databases"]["archive"]["queries"]) >= {"top_candidates", "failures_by_reason", "cost_by_run"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_json(url: str, deadline: float) -> object:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError:
            raise  # the server answered: a failing query, not a server still starting
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_datasette_serves_the_canned_queries(real_archive: Path, tmp_path: Path) -> None:
    if shutil.which("datasette") is None:
        pytest.skip("datasette is not installed (pip install 'metasearch[browse]')")
    port = _free_port()
    meta = browse.write_metadata(real_archive, tmp_path / "meta.json")
    proc = subprocess.Popen(browse.browse_command(real_archive, meta, port=port), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}/archive"
        top = _get_json(f"{base}/top_candidates.json?_shape=array", time.monotonic() + 30)
        with Archive(real_archive, create=False) as archive:
            best = archive.top(1, k=1)[0]
        assert top[0]["id"] == best["id"] and top[0]["name"] == best["name"]
        failures = _get_json(f"{base}/failures_by_reason.json?_shape=array", time.monotonic() + 5)
        assert sum(row["n"] for row in failures) == sum(1 for c in archive_candidates(real_archive)
                                                        if c["status"] in ("failed", "rejected"))
        costs = _get_json(f"{base}/cost_by_run.json?_shape=array", time.monotonic() + 5)
        assert costs[0]["name"] == "small" and costs[0]["eval_tokens"] > 0
        assert _get_json(f"{base}/task_errors_by_reason.json?_shape=array", time.monotonic() + 5) is not None
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def archive_candidates(path: Path) -> list[dict]:
    with Archive(path, create=False) as archive:
        return archive.candidates(1)
