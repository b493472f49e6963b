"""Every notebook in nbs/ is a test case: all its unflagged cells must run without error."""
import subprocess, sys
import pytest
from conftest import ROOT, run_flags

NOTEBOOKS = sorted((ROOT / "nbs").glob("*.ipynb"))

@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook(nb):
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "run_notebook.py"), str(nb), *run_flags()],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, f"{nb.name} failed:\n{r.stdout[-4000:]}\n{r.stderr[-8000:]}"
