import os
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

# pytest runs two test files at once (-n 2) on a 2-core machine; two processes each spinning two OpenMP threads
# oversubscribe the cores, which made training steps 10-30x slower here. One thread per process (inherited by the
# notebook and torchrun subprocesses the tests start) keeps both cores busy without contention.
os.environ.setdefault("OMP_NUM_THREADS", "1")

@pytest.fixture
def root(): return ROOT

def stage_notebook(path, params:str, *cells:str):
    "A notebook with a `parameters` cell, then code cells"
    import nbformat
    pc = nbformat.v4.new_code_cell(params, metadata=dict(tags=["parameters"]))
    nb = nbformat.v4.new_notebook(cells=[pc, *map(nbformat.v4.new_code_cell, cells)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}
    nbformat.write(nb, str(path))

def run_flags() -> list[str]:
    "Test flags to force, from NEMOTRON_NB_FLAGS (e.g. 'slow dist')"
    return os.environ.get("NEMOTRON_NB_FLAGS", "").split()
