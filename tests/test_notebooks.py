"""Every notebook in nbs/ is a test case: all its unflagged cells must run without error.

A notebook whose unflagged cells read committed figures from `nbs/results/` says so in its test's name
(`07_continued_pretraining-reads_committed_results`): such a test checks the committed file and the code that reads
it, not a fresh run (the slow cells that make the file are flagged; `tests/test_results.py` checks their provenance).
"""
import json, subprocess, sys
import pytest
from conftest import ROOT, run_flags

NOTEBOOKS = sorted((ROOT / "nbs").glob("*.ipynb"))

def reads_committed_results(nb)->bool:
    "Whether an unflagged code cell of `nb` reads a file under `results/`"
    cells = [("".join(c["source"])) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
    return any('"results/' in s or "'results/" in s or 'glob("bench_model_' in s for s in cells
               if not s.lstrip().startswith("#| slow"))

def notebook_id(nb): return nb.stem + ("-reads_committed_results" if reads_committed_results(nb) else "")

@pytest.mark.parametrize("nb", NOTEBOOKS, ids=notebook_id)
def test_notebook(nb):
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "run_notebook.py"), str(nb), *run_flags()],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, f"{nb.name} failed:\n{r.stdout[-4000:]}\n{r.stderr[-8000:]}"
