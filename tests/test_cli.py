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
    code = ("import sys, nemotron_nb.model, nemotron_nb.checkpoint, nemotron_nb.cli\n"
            "bad = [m for m in ('vllm', 'transformer_engine') if m in sys.modules]\nassert not bad, bad")
    subprocess.run(["python", "-c", code], check=True)

def test_launch_is_a_subcommand(tmp_path):
    "`nemotron-nb launch` prints the torchrun line (dry run) and writes a SLURM script that bash can parse"
    argv = ["nemotron-nb", "launch", "--nproc", "4", "--dry-run", "--", "-m", "nemotron_nb.bench", "model"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    assert "torch.distributed.run --nproc-per-node=4 --standalone -m nemotron_nb.bench model" in out
    script = tmp_path / "job.sbatch"
    subprocess.run(["nemotron-nb", "launch", "--nnodes", "2", "--nproc", "8", "--slurm", str(script), "--", "train.py"],
                   capture_output=True, text=True, check=True)
    text = script.read_text()
    assert "#SBATCH --nodes=2" in text and "--nnodes=2" in text and "--rdzv-endpoint=${HEAD}:29500" in text
    subprocess.run(["bash", "-n", str(script)], check=True)

def test_serve_is_a_subcommand(tmp_path):
    "`nemotron-nb serve DIR --port 0` answers the OpenAI models route on loopback"
    import httpx, re
    from nemotron_nb.testing import make_tiny_model_dir
    model_dir = make_tiny_model_dir(tmp_path / "tiny-chat", vocab_size=512)
    proc = subprocess.Popen(["nemotron-nb", "serve", str(model_dir), "--port", "0", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = proc.stdout.readline()
        m = re.search(r"serving tiny-chat on (http://\S+)", first)
        assert m, first
        assert [d["id"] for d in httpx.get(m.group(1) + "/models", timeout=30).json()["data"]] == ["tiny-chat"]
    finally:
        proc.terminate()
        proc.wait(10)
