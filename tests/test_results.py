"""The committed results files under nbs/results/ say how they were made, and which of them the code has outgrown.

Every results JSON records the command that made it, the git commit and a hash of the code that computed it
(`files.write_result`). The test fails when a file lacks that record, and reports (as a warning, not a failure:
rerunning an experiment can take half an hour) every file whose code has changed since it was written, with the
command that regenerates it.
"""
import json, re, warnings
from conftest import ROOT
from nemotron_nb.files import stale_results

RESULTS = ROOT / "nbs" / "results"

def test_committed_results_record_command_commit_and_code_hash():
    files = sorted(RESULTS.glob("*.json"))
    assert files
    for p in files:
        prov = json.loads(p.read_text()).get("provenance")
        assert prov and {"command", "commit", "code_hash", "modules"} <= set(prov), f"{p.name}: no provenance"
        assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", prov["commit"]), f"{p.name}: written outside a git checkout"
    for name, why in stale_results(RESULTS).items(): warnings.warn(f"results/{name}: {why}")
