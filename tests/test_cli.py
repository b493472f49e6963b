"""The installed console script."""
import json, subprocess

def test_presets_json():
    out = subprocess.run(["nemotron-nb", "presets", "--json"], capture_output=True, text=True, check=True).stdout
    rows = {r["name"]: r for r in map(json.loads, out.splitlines())}
    assert rows["nemotron4_340b"]["layers"] == 96 and rows["nemotron4_340b"]["kv_groups"] == 8
    assert round(rows["nemotron4_340b"]["embedding"] / 1e9, 1) == 9.4
    assert round(rows["nemotron4_340b"]["non_embedding"] / 1e9, 1) == 331.6
    assert {"tiny", "nemotron4_15b"} <= rows.keys()

def test_presets_table_and_unknown_command():
    out = subprocess.run(["nemotron-nb", "presets"], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[0].split()[:5] == ["name", "layers", "hidden", "heads", "kv_groups"]
    r = subprocess.run(["nemotron-nb", "frobnicate"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown command 'frobnicate'" in r.stderr

def test_package_import_is_light():
    "Importing the package and its core modules never imports optional GPU engines"
    code = ("import sys, nemotron_nb.model, nemotron_nb.checkpoint, nemotron_nb.cli;"
            "bad = [m for m in ('vllm', 'transformer_engine') if m in sys.modules]; assert not bad, bad")
    subprocess.run(["python", "-c", code], check=True)
