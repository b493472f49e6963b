import os
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

@pytest.fixture
def root(): return ROOT

def run_flags() -> list[str]:
    "Test flags to force, from NEMOTRON_NB_FLAGS (e.g. 'slow dist')"
    return os.environ.get("NEMOTRON_NB_FLAGS", "").split()
