"""Optuna tuning of a candidate's numeric parameters: Pareto front with the original, tuned variants archived."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from conftest import small_config
from metasearch.archive import Archive
from metasearch.space import render, validate
from metasearch.tuning import Point, TuneError, apply_params, mark_front, storage_url, tunable_params, tune

SC = {"stages": [{"op": "self_consistency", "n": 3, "temperature": 0.8}, {"op": "self_refine", "rounds": 1}]}
TUNED = {"stages": [{"op": "self_consistency", "n": 3, "temperature": 0.8}, {"op": "verify"}]}


def _archive(tmp_path: Path) -> tuple[str, int, int]:
    cfg = small_config(tmp_path, suite__val=6, suite__test=6)
    with Archive(cfg.archive, writer=True) as archive:
        run = archive.create_run("t", config=cfg.model_dump(mode="json"), seed=0, strategy="mcts", suite="arith",
                                 model="sim", base_url="sim://default")
        wf = validate(TUNED)
        cid, _ = archive.add_candidate(run, render(wf), name="SC+verify", origin="mcts", iteration=1, ir=wf.to_dict())
        archive.update_candidate(cid, status="evaluated", score=0.5)
        free, _ = archive.add_candidate(run, "def forward(task, lm):\n    return lm.ask(task.question)\n",
                                        name="free-form", origin="meta", iteration=1)
    return cfg.archive, cid, free


def test_params_and_front() -> None:
    params = tunable_params(validate(SC).to_dict())
    assert [p.key for p in params] == ["s0.n", "s0.temperature", "s1.rounds"]
    tuned = apply_params(validate(SC).to_dict(), {"s0.n": 7.0, "s1.rounds": 3})
    assert tuned["stages"][0]["n"] == 7 and tuned["stages"][1]["rounds"] == 3
    pts = [Point(1, "a", {}, 0.5, 0, 1, 1.0, 1, 5), Point(2, "b", {}, 0.6, 0, 1, 2.0, 1, 5),
           Point(3, "c", {}, 0.4, 0, 1, 3.0, 1, 5)]
    mark_front(pts)
    assert [p.on_front for p in pts] == [True, True, False]


def test_short_tune_gives_front_with_original_and_archives_variants(tmp_path: Path) -> None:
    path, cid, _ = _archive(tmp_path)
    result = tune(path, cid, trials=3, tasks=4, use_ray=False)
    originals = [p for p in result.points if p.original]
    assert len(originals) == 1 and originals[0].candidate_id == cid
    assert result.front and all(p.on_front for p in result.front)
    assert all(p.n_tasks == 4 and p.cost_per_task > 0 for p in result.points)
    with Archive(path) as archive:
        tuned = [c for c in archive.candidates() if c["origin"] == "tuned"]
        assert tuned and all(c["parent_ids"] == [cid] and c["status"] == "evaluated" for c in tuned)
        assert all(c["score"] is not None and c["n_tasks"] == 4 and c["tokens"] > 0 for c in tuned)
        assert archive.get_candidate(cid)["score"] == 0.5  # the original's search record is untouched
    study = optuna.load_study(study_name=result.study_name, storage=storage_url(path))
    assert len(study.trials) == 3 and study.directions[1] == optuna.study.StudyDirection.MINIMIZE


def test_cli_tune_json_and_plot_and_untunable(tmp_path: Path) -> None:
    from metasearch.cli import app

    path, cid, free = _archive(tmp_path)
    png = tmp_path / "front.png"
    out = CliRunner().invoke(app, ["tune", str(cid), "--trials", "2", "--tasks", "3", "--no-ray", "--archive", path,
                                   "--plot", str(png), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["candidate_id"] == cid and any(p["original"] for p in data["points"]) and data["front"]
    assert png.stat().st_size > 1000
    with pytest.raises(TuneError, match="no workflow IR"):
        tune(path, free, trials=1, use_ray=False)
