"""Export: the best agent becomes a standalone module that runs as a script and as an import; promote seeds it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from conftest import small_config
from faulty_endpoint import FaultyEndpoint
from metasearch.archive import Archive
from metasearch.export import export_module, promote
from metasearch.search import Search
from metasearch.seeds import load_seeds


def _archived_run(tmp_path: Path) -> str:
    cfg = small_config(tmp_path, budget__iterations=1, suite__val=10, suite__test=10)
    Search(cfg).run()
    return cfg.archive


def test_exported_module_runs_as_script_and_import(tmp_path: Path, sim_server: str) -> None:
    archive_path = _archived_run(tmp_path)
    out = tmp_path / "agent.py"
    res = subprocess.run([sys.executable, "-m", "metasearch", "export", "--best", "-o", str(out), "--archive",
                          archive_path], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    source = out.read_text()
    assert "import metasearch" not in source and "from metasearch" not in source
    # As a script, in a clean interpreter that cannot see the metasearch package (-I, no site-packages path tricks
    # needed: the module imports only openai and the standard library).
    script = subprocess.run([sys.executable, str(out), "What is 17*3?", "--base-url", sim_server,
                             "--model", "sim-default"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert script.returncode == 0, script.stderr
    assert script.stdout.strip() != ""
    spec = importlib.util.spec_from_file_location("exported_agent", out)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    answer = module.solve("What is 17*3?", model="sim-default", base_url=sim_server)
    assert isinstance(answer, str) and answer.strip() != ""
    assert module.PROVENANCE["candidate"] > 0


def test_export_refuses_a_missing_archive(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "metasearch", "export", "--best", "--archive",
                          str(tmp_path / "none.db")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "Traceback" not in res.stderr and res.stderr.strip()


def test_promoted_winner_becomes_a_seed_with_provenance(tmp_path: Path) -> None:
    archive_path = _archived_run(tmp_path)
    with Archive(archive_path, create=False) as archive:
        best = archive.top(1, k=1)[0]
        run = archive.get_run(1)
    seed_dir = tmp_path / "seeds"
    path = promote(best, run, seed_dir)
    assert path.read_text().startswith("# Promoted by metasearch:")
    seeds = load_seeds(["all"], seed_dir)
    assert [s.name for s in seeds] == [best["name"]]
    assert export_module(best, run).count("def forward(") == 1


def test_exported_agent_tops_up_samples_from_a_server_that_ignores_n(tmp_path: Path) -> None:
    """An exported self-consistency agent still gets its n samples from llama.cpp (one choice per reply)."""
    candidate = {"id": 1, "run_id": 1, "name": "CoT-SC", "code": load_seeds(["cot_sc"])[0].code,
                 "score": None, "test_score": None}
    out = tmp_path / "agent.py"
    out.write_text(export_module(candidate))
    spec = importlib.util.spec_from_file_location("exported_sc", out)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with FaultyEndpoint(single_choice=True) as server:
        lm = module.LM("canned", base_url=server.base_url)
        texts = lm.ask("sample", temperature=0.9, n=3)
        assert len(texts) == 3 and [b["n"] for b in server.stats.bodies] == [3, 1, 1]
        assert module.forward(module.Task("What is 2+2?"), lm) is not None
