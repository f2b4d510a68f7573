"""Plots of a run: every PNG from a small real search on the simulated LLM, plus the layout/front/rank helpers."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from conftest import small_config
from metasearch.archive import Archive
from metasearch.errors import ArchiveError
from metasearch.plots import PLOT_KINDS, best_candidate, lineage_layout, pareto_front, plot_run, rank_correlation

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def real_run_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished small search (3 seeds, 3 meta iterations) shared by this session's plot and report tests."""
    root = tmp_path_factory.getbasetemp() / "seeing-real-run"
    archive = root / "archive.db"
    if not (root / "done").exists():
        from metasearch.search import Search

        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        Search(small_config(root)).run()
        (root / "done").touch()
    return archive


def writable_copy(archive: Path, dest: Path) -> Path:
    """A copy to modify (the shared archive stays pristine)."""
    dest.mkdir(parents=True, exist_ok=True)
    with Archive(archive, create=False) as src:
        src.conn.execute(f"VACUUM INTO '{dest / 'copy.db'}'")
    return dest / "copy.db"


def distinct_colours(png: Path) -> int:
    pixels = (imread(png)[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
    return len(np.unique(pixels, axis=0))


@pytest.fixture(scope="module")
def real_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return real_run_archive(tmp_path_factory)


def test_plot_run_writes_every_plot_as_a_real_png(real_archive: Path, tmp_path: Path) -> None:
    with Archive(real_archive, create=False) as archive:
        paths = plot_run(archive, 1, tmp_path / "plots")
    # The meta-agent strategy has no value model: that plot is skipped, every other one is written, in order.
    assert [p.name for p in paths] == [f"run1-{k}.png" for k in PLOT_KINDS if k != "value_model"]
    for path in paths:
        assert path.read_bytes().startswith(PNG_MAGIC)
        assert path.stat().st_size > 5_000
        height, width = imread(path).shape[:2]
        assert width >= 600 and height >= 300
        assert distinct_colours(path) > 30, f"{path.name} looks blank"


def test_plots_are_byte_identical_across_calls(real_archive: Path, tmp_path: Path) -> None:
    with Archive(real_archive, create=False) as archive:
        first = plot_run(archive, "small", tmp_path / "a")
        second = plot_run(archive, 1, tmp_path / "b")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


def test_value_model_plot_appears_once_candidates_carry_predictions(real_archive: Path, tmp_path: Path) -> None:
    copy = writable_copy(real_archive, tmp_path)
    with Archive(copy, writer=True) as archive:
        scored = [c for c in archive.candidates(1) if c["score"] is not None]
        for i, c in enumerate(scored):
            archive.update_candidate(c["id"], predicted_mean=0.2 + 0.1 * i, predicted_std=0.05)
        paths = plot_run(archive, 1, tmp_path / "plots")
    assert paths[-1].name == "run1-value_model.png"
    assert distinct_colours(paths[-1]) > 30


def test_unknown_run_is_an_archive_error(real_archive: Path, tmp_path: Path) -> None:
    with Archive(real_archive, create=False) as archive, pytest.raises(ArchiveError, match="no run 'nope'"):
        plot_run(archive, "nope", tmp_path)
    assert not list(tmp_path.glob("*.png"))


def test_best_candidate_is_the_searchs_winner_not_the_best_test_score(real_archive: Path, tmp_path: Path) -> None:
    copy = writable_copy(real_archive, tmp_path)
    with Archive(copy, writer=True) as archive:
        winner = archive.get_run(1)["summary"]["winner"]["id"]
        assert best_candidate(archive, 1)["id"] == winner
        # A finalist that happens to score higher on test must not be crowned (that is selection on test).
        other = next(c for c in archive.candidates(1) if c["id"] != winner)
        archive.update_candidate(other["id"], test_score=1.0, test_ci_low=0.9, test_ci_high=1.0, test_n=30)
        assert best_candidate(archive, 1)["id"] == winner


def test_pareto_front_keeps_only_undominated_points() -> None:
    points = [(1.0, 0.5, 1), (2.0, 0.4, 2), (2.0, 0.7, 3), (3.0, 0.7, 4), (4.0, 0.9, 5), (0.5, 0.2, 6)]
    assert pareto_front(points) == [(0.5, 0.2, 6), (1.0, 0.5, 1), (2.0, 0.7, 3), (4.0, 0.9, 5)]


def test_lineage_layout_puts_each_ancestor_on_its_longest_path_layer() -> None:
    # 9 ← {7, 1}; 7 ← {4, 5}; 4 ← {1}; 5 ← {2}: ancestor 1 is both a parent and a great-grandparent of 9.
    parents = {9: [7, 1], 7: [4, 5], 4: [1], 5: [2]}
    pos = lineage_layout(9, parents)
    assert {n: layer for n, (_, layer) in pos.items()} == {9: 0, 7: 1, 4: 2, 5: 2, 1: 3, 2: 3}
    for layer in range(4):
        xs = [x for x, lay in pos.values() if lay == layer]
        assert len(xs) == len(set(xs)), "two nodes of one layer overlap"
    # Barycentre ordering: 1 sits above 4 and 2 above 5, so the edges 4→1 and 5→2 do not cross.
    assert (pos[1][0] < pos[2][0]) == (pos[4][0] < pos[5][0])


def test_lineage_layout_of_a_seed_is_a_single_node() -> None:
    assert lineage_layout(3, {}) == {3: (0.0, 0)}


def test_rank_correlation() -> None:
    assert rank_correlation([0.1, 0.2, 0.3], [1, 2, 5]) == pytest.approx(1.0)
    assert rank_correlation([0.1, 0.2, 0.3], [3, 2, 1]) == pytest.approx(-1.0)
    assert rank_correlation([0.1, 0.1, 0.3, 0.4], [1, 2, 3, 4]) == pytest.approx(0.9486833)
    assert rank_correlation([0.5, 0.5], [1, 2]) is None
    assert rank_correlation([0.5], [1]) is None
