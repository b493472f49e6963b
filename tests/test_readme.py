"""The README as a new user meets it: every command it shows works from a fresh clone, in the order shown, offline;
its stage list matches the main job's pipeline file; what a run writes is ignored by git."""
import json, os, re, shutil, signal, socket, subprocess, sys, time
from pathlib import Path
import pytest
from conftest import ROOT

README = (ROOT / "README.md").read_text()
# What CI and other tests run already: the install and test commands, and the main job (tests/test_pipeline.py)
NOT_HERE = ("pip install", "pytest", "nemotron-nb pipeline run configs/tiny.yaml")

def snippets(text:str)->list[tuple[str, str]]:
    "The README's fenced code blocks, in order: (language, code)"
    return re.findall(r"^```(\w+)\n(.*?)^```", text, flags=re.S | re.M)

def free_port()->int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def fresh_clone(dest:Path)->Path:
    "The files a clone of this checkout holds (tracked and not ignored; what a commit would hold), as a new git repo"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.splitlines()
    for f in files:
        if (ROOT / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dest / f)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return dest

def test_readme_snippets_run_in_order_from_a_fresh_clone(tmp_path):
    clone = fresh_clone(tmp_path / "clone")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    port, servers, ran = free_port(), [], []
    def sh(line:str):
        r = subprocess.run(["bash", "-c", line], cwd=clone, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"README command failed: {line}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
        return r.stdout
    try:
        for lang, code in snippets(README):
            if lang == "python":
                r = subprocess.run([sys.executable, "-"], input=code, cwd=clone, env=env, capture_output=True,
                                   text=True, timeout=600)
                assert r.returncode == 0, f"README Python snippet failed:\n{code}\n{r.stderr[-3000:]}"
                ran.append(code.splitlines()[0])
                continue
            assert lang == "sh", lang
            for line in code.splitlines():
                if not line.strip() or line.lstrip().startswith(NOT_HERE): continue
                line = line.replace("8000", str(port))               # a free port, not the README's
                if line.startswith("nemotron-nb serve"):            # a server: start it, wait until it listens
                    cmd = line.split("#")[0].strip().rstrip("&").split()
                    proc = subprocess.Popen(cmd, cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                            text=True, start_new_session=True)
                    servers.append(proc)
                    first = proc.stdout.readline()
                    assert f"on http://127.0.0.1:{port}" in first, first
                elif line.startswith("curl"):
                    assert [m["id"] for m in json.loads(sh(line))["data"]] == ["tiny"]
                else: sh(line)
                ran.append(line)
    finally:
        for proc in servers:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
    assert any(l.startswith("nemotron-nb serve") for l in ran) and any(l.startswith("curl") for l in ran), ran
    assert (clone / "out" / "tiny" / "tokenizer.model").exists()

def test_readme_lists_the_stages_of_tiny_yaml_in_order():
    from nemotron_nb.pipeline import load_pipeline
    table = README[README.index("| stage | what it does | paper |"):]
    rows = re.findall(r"^\| `(\w+)` \|", table.split("\n\n")[0], flags=re.M)
    assert rows == load_pipeline(ROOT / "configs" / "tiny.yaml").names

def test_run_outputs_are_ignored_by_git():
    r = subprocess.run(["git", "check-ignore", "out/tiny/model.safetensors", "runs/tiny/pretrain/metrics.json"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.stdout.split() == ["out/tiny/model.safetensors", "runs/tiny/pretrain/metrics.json"], r.stdout
