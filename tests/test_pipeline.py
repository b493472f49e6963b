"""The stage runner (`nemotron-nb pipeline run`): skipping, one stage alone, failures, validation before work,
and the main job `configs/tiny.yaml` (validated, and run for real at reduced sizes in `test_tiny_pipeline`)."""
import json, os, subprocess, sys, time
from pathlib import Path
import nbformat, pytest, yaml
from conftest import ROOT, stage_notebook
from nemotron_nb.pipeline import (run_pipeline, plan_pipeline, load_pipeline, read_marker, PipelineError, StageFailed,
                                  MARKER)

MET = "import json, pathlib\npathlib.Path(out_dir, 'metrics.json').write_text(json.dumps({'value': v}))"
TOY = """
name: toy
stages:
  - name: make
    parameters: {value: 3}
    outputs: [n.txt]
  - name: square
    inputs: {n_file: "${make.out_dir}/n.txt"}
  - name: report
    inputs: {sq_file: "${square.out_dir}/sq.txt"}
"""

@pytest.fixture
def toy(tmp_path):
    "A three-stage toy pipeline (make -> square -> report) in tmp_path; returns (yaml, out)"
    stage_notebook(tmp_path/"make.ipynb", "out_dir = ''\nvalue = 1",
                   "import pathlib\npathlib.Path(out_dir, 'n.txt').write_text(str(value))\nv = value", MET)
    stage_notebook(tmp_path/"square.ipynb", "out_dir = ''\nn_file = ''\nfail = False",
                   "import pathlib\nv = int(pathlib.Path(n_file).read_text())**2",
                   "assert not fail, 'asked to fail'\npathlib.Path(out_dir, 'sq.txt').write_text(str(v))", MET)
    stage_notebook(tmp_path/"report.ipynb", "out_dir = ''\nsq_file = ''",
                   "import pathlib\nv = int(pathlib.Path(sq_file).read_text())", MET)
    (tmp_path/"toy.yaml").write_text(TOY)
    return tmp_path/"toy.yaml", tmp_path/"runs"/"toy"

def cli(*args, cwd=None):
    return subprocess.run(["nemotron-nb", *map(str, args)], capture_output=True, text=True, cwd=cwd)

def statuses(rows): return [r["status"] for r in rows]

def test_run_then_skip_then_rerun_downstream(toy):
    y, out = toy
    rows = run_pipeline(y, out)
    assert statuses(rows) == ["ran"] * 3 and rows[-1]["metrics"] == {"value": 9}
    for s in ("make", "square", "report"):   # artifacts, metrics.json, executed copy, marker
        assert {"metrics.json", f"{s}.ipynb", MARKER} <= {p.name for p in (out/s).iterdir()}
    executed = nbformat.read(str(out/"make"/"make.ipynb"), as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    assert not list(out.rglob("kernel*"))                   # kernel sockets live in a temporary dir, not here
    assert statuses(run_pipeline(y, out)) == ["skip"] * 3
    # --force on one stage reruns it; the next full run reruns what depends on it, nothing else
    assert statuses(run_pipeline(y, out, stage="square", force=True)) == ["unselected", "ran", "unselected"]
    assert statuses(run_pipeline(y, out)) == ["skip", "skip", "ran"]
    # a changed parameter changes the key of its stage and of everything downstream
    rows = run_pipeline(y, out, overrides=["make.value=2"])
    assert statuses(rows) == ["ran"] * 3 and rows[-1]["metrics"] == {"value": 4}
    # so does an edited stage notebook (here a changed default in its parameters cell)
    nb = nbformat.read(str(y.parent/"report.ipynb"), as_version=4)
    nb.cells[0].source += "\nunused = 1"
    nbformat.write(nb, str(y.parent/"report.ipynb"))
    assert statuses(run_pipeline(y, out, overrides=["make.value=2"])) == ["skip", "skip", "ran"]

def test_one_stage_alone(toy):
    y, out = toy
    r = cli("pipeline", "run", y, "--out", out, "--stage", "square")
    assert r.returncode == 2 and "comes from stage 'make', which has not completed" in r.stderr
    assert not out.exists()
    assert cli("pipeline", "run", y, "--out", out, "--stage", "make").returncode == 0
    r = cli("pipeline", "run", y, "--out", out, "--stage", "square")
    assert r.returncode == 0, r.stderr
    assert [l.split()[:2] for l in r.stdout.splitlines()] == [["make", "unselected"], ["square", "ran"],
                                                              ["report", "unselected"]]
    assert read_marker(out/"square")["metrics"] == {"value": 9} and not (out/"report").exists()

def test_failure_names_stage_and_cell_and_keeps_earlier_outputs(toy):
    y, out = toy
    r = cli("pipeline", "run", y, "--out", out, "--set", "square.fail=true")
    assert r.returncode == 1
    cell = "cell 3 of square.ipynb (\"assert not fail, 'asked to fail'\")"
    assert f"stage 'square' failed in {cell}" in r.stderr, r.stderr
    assert "AssertionError: asked to fail" in r.stderr and str(out/"square"/"square.ipynb") in r.stderr
    assert read_marker(out/"make") is not None and (out/"make"/"n.txt").read_text() == "3"
    assert read_marker(out/"square") is None and not (out/"report").exists()
    summary = json.loads((out/"pipeline.json").read_text())["stages"]
    assert [s["status"] for s in summary] == ["ran", "failed"]
    # the executed copy holds the traceback in place
    assert "AssertionError" in (out/"square"/"square.ipynb").read_text()
    # fixed, the rerun starts from the failed stage
    assert statuses(run_pipeline(y, out)) == ["skip", "ran", "ran"]

def test_interrupted_stage_keeps_its_dir_changed_key_empties_it(toy):
    y, out = toy
    run_pipeline(y, out)
    (out/"square"/MARKER).unlink()                          # as if killed before finishing
    (out/"square"/"checkpoint.bin").write_text("resume me")
    assert statuses(run_pipeline(y, out)) == ["skip", "ran", "ran"]
    assert (out/"square"/"checkpoint.bin").exists()         # same key: kept for the stage to resume from
    run_pipeline(y, out, overrides=["make.value=4"])
    assert not (out/"square"/"checkpoint.bin").exists()     # new key: a fresh out_dir

def test_kernel_waits_passively(tmp_path, monkeypatch):
    "Kernels start with OMP_WAIT_POLICY=PASSIVE (spinning OpenMP threads crawl on shared cores), unless it is set"
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    stage_notebook(tmp_path/"env.ipynb", "out_dir = ''", "import os\nv = os.environ.get('OMP_WAIT_POLICY')", MET)
    (tmp_path/"env.yaml").write_text("stages:\n  - {name: env}")
    assert run_pipeline(tmp_path/"env.yaml", tmp_path/"run")[0]["metrics"] == {"value": "PASSIVE"}
    assert "OMP_WAIT_POLICY" not in os.environ

def test_two_runners_never_share_a_run_dir(toy):
    import fcntl
    y, out = toy
    out.mkdir(parents=True)
    with open(out/".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)        # as a running `pipeline run` holds it
        r = cli("pipeline", "run", y, "--out", out)
    assert r.returncode == 2 and "another `nemotron-nb pipeline run` is writing to" in r.stderr
    assert not (out/"make").exists()

@pytest.mark.parametrize("override,message", [
    ("make.valeu=4", "stage 'make': unknown parameter 'valeu'; make.ipynb takes ['out_dir', 'value']"),
    ("square.out_dir=/tmp/x", "out_dir is set by the runner"),
    ("report.sq_file=/no/such/file", "stage 'report': input sq_file='/no/such/file' does not exist"),
    ("square.n_file=${make.out_dir}/m.txt", "is not among the outputs of stage 'make': ['n.txt']"),
    ("make.value=${report.out_dir}",                         # a parameter, not an input: text, not a reference
     "parameter value='${report.out_dir}' is a str; make.ipynb expects an int"),
])
def test_rejected_before_any_work(toy, override, message):
    y, out = toy
    r = cli("pipeline", "run", y, "--out", out, "--set", override)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert not out.exists()

def test_bad_pipeline_files(toy, tmp_path):
    y, out = toy
    bad = tmp_path/"bad.yaml"
    cases = {
        "stages:\n  - {name: square, inputs: {n_file: '${make.out_dir}/n.txt'}}\n  - {name: make}":
            "references 'make', which is not an earlier stage",
        "stages:\n  - {name: make, notebok: x.ipynb}": "unknown key(s) ['notebok']",
        "stages:\n  - {name: make}\n  - {name: make}": "stage name 'make' is used twice",
        "stages:\n  - {name: nothere}": "nothere.ipynb does not exist",
        "stages: []": "non-empty `stages:` list",
    }
    for text, message in cases.items():
        bad.write_text(text)
        with pytest.raises(PipelineError, match=None) as e: run_pipeline(bad, out)
        assert message in str(e.value), (text, str(e.value))
    stage_notebook(tmp_path/"noparams.ipynb", "x = 1")
    nb = nbformat.read(str(tmp_path/"noparams.ipynb"), as_version=4)
    nb.cells[0].metadata = {}
    nbformat.write(nb, str(tmp_path/"noparams.ipynb"))
    bad.write_text("stages:\n  - {name: noparams}")
    with pytest.raises(PipelineError, match="no cell tagged `parameters`"): run_pipeline(bad, out)
    stage_notebook(tmp_path/"unparsed.ipynb", "out_dir = ''\nratio = 0.5   # final lr = ratio x lr")
    bad.write_text("stages:\n  - {name: unparsed}")
    with pytest.raises(PipelineError, match="papermill cannot parse parameter line 'ratio = 0.5"):
        run_pipeline(bad, out)
    assert not out.exists()

STAGES = ["tokenizer", "pretrain", "continued_pretraining", "reward", "sdg_prompts", "sft_code", "sft_general", "dpo",
          "rpo"]

def test_tiny_yaml_validates(tmp_path):
    "The main job's stage notebooks exist, keep their `parameters` tags after nbdev_clean, and accept tiny.yaml"
    pipe = load_pipeline(ROOT/"configs"/"tiny.yaml")
    assert pipe.names == STAGES
    for s in pipe.stages:
        cells = nbformat.read(str(s.notebook), as_version=4).cells
        assert any(c.metadata.get("tags") == ["parameters"] for c in cells), s.notebook
    r = cli("pipeline", "run", ROOT/"configs"/"tiny.yaml", "--out", tmp_path/"nonexistent"/"tiny", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert [l.split()[1] for l in r.stdout.splitlines()] == ["run"] * len(STAGES)

# The real main job (every stage notebook, for real, each reading the outputs of the stages before it) at reduced
# sizes: a few minutes on 2 cores, so it is in the default suite; the full-size run is the README command itself.
TINY_FAST = ["tokenizer.corpus_scale=0.3", "tokenizer.max_chars=500000", "tokenizer.vocab_size=1024",
             "pretrain.steps=24", "pretrain.warmup_steps=4", "pretrain.eval_every=12", "pretrain.save_every=12",
             "continued_pretraining.steps=8", "continued_pretraining.save_every=4",
             "reward.steps=6", "reward.batch_tokens=512", "reward.train_prompts=40", "reward.val_prompts=8",
             "reward.pairs_per_subset=3", "reward.eval_every=3", "reward.warmup_steps=2",
             "sdg_prompts.n_macro_topics=2", "sdg_prompts.n_subtopics=1", "sdg_prompts.manual_topics=[cooking]",
             "sdg_prompts.n_open_qa=1", "sdg_prompts.n_writing_pairs=2", "sdg_prompts.n_writing=1",
             "sdg_prompts.n_documents=2", "sdg_prompts.n_closed_qa=1", "sdg_prompts.math_school_levels=[middle school]",
             "sdg_prompts.math_keywords=[primes]",
             "sdg_prompts.n_math_topics=1", "sdg_prompts.n_python_topics=1", "sdg_prompts.n_python_keywords=2",
             "sdg_prompts.n_if_single=3", "sdg_prompts.n_if_all_turns=2", "sdg_prompts.n_if_second_turn=2",
             "sdg_prompts.n_two_turn=2", "sdg_prompts.n_real=8", "sdg_prompts.max_tokens=12",
             "sft_code.max_records=15", "sft_code.heldout_records=4", "sft_code.global_batch=4",
             "sft_code.micro_batch=4",
             "sft_code.max_new_tokens=16", "sft_code.save_every=0",
             "sft_general.train_tasks=60", "sft_general.heldout_tasks=12", "sft_general.epochs=1",
             "sft_general.code_fraction=0.2", "sft_general.global_batch=4", "sft_general.micro_batch=4",
             "sft_general.code_max_new_tokens=16", "sft_general.save_every=0",
             *[f"{s}.{k}" for s in ("dpo", "rpo") for k in ("prompts=24", "responses_per_prompt=2", "max_tokens=6",
                                                          "heldout_prompts=6", "global_batch=4", "micro_batch=2",
                                                          "warmup_steps=0")],
             "rpo.iterations=2"]

def test_tiny_pipeline(tmp_path):
    out, t0 = tmp_path/"tiny", time.time()
    args = [a for o in TINY_FAST for a in ("--set", o)]
    r = cli("pipeline", "run", ROOT/"configs"/"tiny.yaml", "--out", out, *args)
    assert r.returncode == 0, r.stderr[-6000:]
    assert [l.split()[1] for l in r.stdout.splitlines()] == ["ran"] * len(STAGES)
    for s in ("continued_pretraining", "sft_code", "sft_general", "dpo", "rpo"):
        names = {p.name for p in (out/s/"model").iterdir()}
        assert {"config.json", "model.safetensors", "tokenizer.model"} <= names, s
    assert (out/"reward"/"model"/"reward_config.json").exists()
    rpo = json.loads((out/"rpo"/"metrics.json").read_text())
    assert rpo["references"][0] == str(out/"dpo"/"model")          # RPO starts from, and refers to, the DPO model
    prompts = json.loads((out/"sdg_prompts"/"metrics.json").read_text())
    assert all(n > 0 for n in prompts["prompts"].values()), prompts["prompts"]
    for s in STAGES:
        m = json.loads((out/s/"metrics.json").read_text())
        assert m, s
        executed = nbformat.read(str(out/s/f"{s}.ipynb"), as_version=4)
        if s not in ("tokenizer", "sdg_prompts"):   # training stages: their loss/LR plots are in the executed copy
            assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {})
                       for c in executed.cells for o in c.get("outputs", [])), s
    r2 = cli("pipeline", "run", ROOT/"configs"/"tiny.yaml", "--out", out, *args)
    assert [l.split()[1] for l in r2.stdout.splitlines()] == ["skip"] * len(STAGES)
    print(f"tiny pipeline at reduced size: {time.time() - t0:.0f}s")

# --- Nothing lost on bad input --------------------------------------------------------------------------------------
def snapshot(d:Path)->dict:
    "Every file under `d`: relative path -> bytes"
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}

def test_failed_rerun_keeps_the_completed_outputs(toy):
    "A rerun whose changed parameters make the stage fail runs beside the outputs and leaves them as they were"
    y, out = toy
    run_pipeline(y, out)
    before = {s: snapshot(out/s) for s in ("make", "square", "report")}
    r = cli("pipeline", "run", y, "--out", out, "--set", "square.fail=true")
    assert r.returncode == 1 and "AssertionError: asked to fail" in r.stderr, r.stderr
    assert {s: snapshot(out/s) for s in ("make", "square", "report")} == before
    attempts = list(out.glob(".square.next-*"))
    assert len(attempts) == 1 and str(attempts[0]/"square.ipynb") in r.stderr            # the failed attempt, named
    assert "AssertionError" in (attempts[0]/"square.ipynb").read_text()
    assert statuses(run_pipeline(y, out)) == ["skip"] * 3                                 # still complete

def test_wrong_type_is_refused_before_any_work(toy):
    y, out = toy
    run_pipeline(y, out)
    before = snapshot(out/"make")
    r = cli("pipeline", "run", y, "--out", out, "--set", "make.value=abc")
    assert r.returncode == 2, r.stderr
    assert "stage 'make': parameter value='abc' is a str; make.ipynb expects an int (its default is 1)" in r.stderr, \
        r.stderr
    assert snapshot(out/"make") == before

def test_tiny_yaml_steps_abc_is_refused_before_any_work(tmp_path):
    "The issue's case: `--set pretrain.steps=abc` names stage, parameter, value and type before any stage runs"
    r = cli("pipeline", "run", ROOT/"configs"/"tiny.yaml", "--out", tmp_path/"tiny", "--set", "pretrain.steps=abc",
            "--set", "pretrain.lr=1", "--set", "tokenizer.vocab_size=4096.0")
    assert r.returncode == 2, r.stderr
    assert "stage 'pretrain': parameter steps='abc' is a str; pretrain.ipynb expects an int" in r.stderr, r.stderr
    assert "vocab_size=4096.0 is a float; tokenizer.ipynb expects an int" in r.stderr     # all at once
    assert "lr=" not in r.stderr                                                          # an int is a fine float
    assert not (tmp_path/"tiny").exists()

def test_force_keeps_files_the_runner_did_not_write(toy):
    y, out = toy
    run_pipeline(y, out)
    (out/"square"/"notes.txt").write_text("mine")
    (out/"square"/"mine").mkdir()
    (out/"square"/"mine"/"plot.png").write_bytes(b"png")
    assert statuses(run_pipeline(y, out, stage="square", force=True)) == ["unselected", "ran", "unselected"]
    assert (out/"square"/"notes.txt").read_text() == "mine" and (out/"square"/"mine"/"plot.png").read_bytes() == b"png"
    assert (out/"square"/"sq.txt").read_text() == "9" and read_marker(out/"square") is not None
    assert not [p.name for p in out.iterdir() if p.name.startswith(".square.")]          # no attempt left behind

def test_a_swap_cut_short_is_finished_by_the_next_run(toy):
    "A runner killed between the two renames of a replacement leaves both directories; the next run completes it"
    import shutil
    y, out = toy
    run_pipeline(y, out)
    (out/"square"/"notes.txt").write_text("mine")
    shutil.copytree(out/"square", out/".square.next-cut")                  # the completed new run
    (out/".square.next-cut"/"notes.txt").unlink()
    os.replace(out/"square", out/".square.old-cut")                        # killed right after the first rename
    assert statuses(run_pipeline(y, out)) == ["skip"] * 3
    assert (out/"square"/"notes.txt").read_text() == "mine" and (out/"square"/"sq.txt").read_text() == "9"
    assert not [p for p in out.iterdir() if p.name.startswith(".square")]
    os.replace(out/"square", out/".square.old-cut")                        # no new run to put in place: the old returns
    assert statuses(run_pipeline(y, out)) == ["skip"] * 3 and (out/"square"/"notes.txt").exists()

def test_changed_or_deleted_outputs_rerun_the_stage(toy):
    y, out = toy
    run_pipeline(y, out)
    (out/"square"/"sq.txt").write_text("8")                                               # same size, other bytes
    plans = plan_pipeline(load_pipeline(y), out)
    assert [p.status for p in plans] == ["skip", "run", "run"]
    assert "sq.txt has changed since it was written" in plans[1].reason, plans[1].reason
    assert statuses(run_pipeline(y, out)) == ["skip", "ran", "ran"] and (out/"square"/"sq.txt").read_text() == "9"
    (out/"make"/"n.txt").unlink()
    plans = plan_pipeline(load_pipeline(y), out)
    assert [p.status for p in plans] == ["run"] * 3 and "n.txt is missing" in plans[0].reason
    (out/"make"/"make.ipynb").write_text("{}")                                           # reports are not checked
    assert statuses(run_pipeline(y, out)) == ["ran"] * 3
    (out/"make"/"make.ipynb").write_text("{}")
    assert statuses(run_pipeline(y, out)) == ["skip"] * 3

def test_yaml_syntax_error_names_file_and_line(toy, tmp_path):
    y, out = toy
    bad = tmp_path/"bad.yaml"
    bad.write_text("name: bad\nstages:\n  - name: make\n    parameters: {value: 3\n  - name: square\n")
    with pytest.raises(PipelineError) as e: run_pipeline(bad, out)
    assert str(e.value).startswith(f"{bad}:5: not valid YAML"), str(e.value)
    with pytest.raises(PipelineError, match=r"--set make.value=\[1: not valid YAML"):
        load_pipeline(y, ["make.value=[1"])

@pytest.mark.parametrize("where", ["file", "unwritable"])
def test_out_must_be_a_writable_directory(toy, where):
    y, out = toy
    if where == "file":
        out.parent.mkdir(parents=True)
        out.parent.joinpath("afile").write_text("x")
        bad, message = out.parent/"afile"/"run", f"{out.parent/'afile'} is a file, not a directory"
    else: bad, message = Path("/proc/nemotron-nb-run"), "cannot write in /proc"
    r = cli("pipeline", "run", y, "--out", bad)
    assert r.returncode == 2 and f"--out {bad}: {message}" in r.stderr, r.stderr

@pytest.mark.parametrize("blend,message", [
    ("{englsh: 0.7, multilingual: 0.15, code: 0.15}", "englsh"),
    ("{english: 0, multilingual: 0, code: 0}", "weight"),
])
def test_bad_blend_is_an_error_before_any_work(tmp_path, blend, message):
    "The pretrain stage notebook's `validate` cell checks the blend when the run is planned, before any stage runs"
    r = cli("pipeline", "run", ROOT/"configs"/"tiny.yaml", "--out", tmp_path/"tiny", "--set", f"pretrain.blend={blend}")
    assert r.returncode == 2 and "stage 'pretrain': its validate cell raised ValueError" in r.stderr, r.stderr
    assert message in r.stderr and not (tmp_path/"tiny").exists()

def test_validate_cells_report_every_stage_at_once(toy):
    "A cell tagged `validate` runs with the stage's parameters when the run is planned; all stages' problems at once"
    y, out = toy
    for name, check in (("make", "if value == 99: raise ValueError('value 99 is not allowed')"),
                        ("square", "assert not fail, 'fail=True is refused here'")):
        nb = nbformat.read(str(y.parent/f"{name}.ipynb"), as_version=4)
        cell = nbformat.v4.new_code_cell(check)
        cell.metadata["tags"] = ["validate"]
        nb.cells.insert(1, cell)
        nbformat.write(nb, str(y.parent/f"{name}.ipynb"))
    with pytest.raises(PipelineError) as e: run_pipeline(y, out, overrides=["make.value=99", "square.fail=true"])
    assert "stage 'make': its validate cell raised ValueError: value 99 is not allowed" in str(e.value), str(e.value)
    assert "stage 'square': its validate cell raised AssertionError: fail=True is refused here" in str(e.value)
    assert not out.exists()
    assert statuses(run_pipeline(y, out)) == ["ran"] * 3                                  # the cells run as usual too

# --- A killed runner leaves nothing running --------------------------------------------------------------------------
TICK = ("import os, pathlib, time\nfor i in range(3000):\n"
        "    pathlib.Path(out_dir, f\"tick.{os.environ.get('RANK', '0')}\").write_text(str(i))\n    time.sleep(0.2)")

@pytest.mark.parametrize("launch,sig", [("", "SIGTERM"), ("", "SIGINT"), (", launch: {nproc_per_node: 2}", "SIGTERM")])
def test_killed_runner_ends_its_kernels(tmp_path, launch, sig):
    "Kill `pipeline run` while its stage writes a file every 0.2 s: once the runner has exited, nothing writes"
    import signal
    stage_notebook(tmp_path/"tick.ipynb", "out_dir = ''", TICK)
    (tmp_path/"tick.yaml").write_text(f"stages:\n  - {{name: tick{launch}}}\n")
    out, n = tmp_path/"runs", 2 if launch else 1
    with open(tmp_path/"runner.log", "w") as log:
        runner = subprocess.Popen(["nemotron-nb", "pipeline", "run", str(tmp_path/"tick.yaml"), "--out", str(out)],
                                  stdout=log, stderr=log)
    try:
        deadline = time.time() + 240
        while len(list(out.glob("tick/tick.*[0-9]"))) < n and time.time() < deadline: time.sleep(0.2)
        assert len(list(out.glob("tick/tick.*[0-9]"))) == n, (tmp_path/"runner.log").read_text()
        time.sleep(1)
        runner.send_signal(getattr(signal, sig))
        try: runner.wait(60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"runner alive 60 s after {sig}:\n{(tmp_path/'runner.log').read_text()}")
    finally:
        if runner.poll() is None: runner.kill()
    ticks = {p.name: p.read_text() for p in out.glob("tick/tick.*[0-9]")}
    time.sleep(2)
    after = {p.name: p.read_text() for p in out.glob("tick/tick.*[0-9]")}
    log = (tmp_path/"runner.log").read_text()
    assert after == ticks, f"still written after the runner exited; runner's log:\n{log}"
    assert runner.returncode != 0 and "interrupted" in log, (runner.returncode, log)

def test_every_stage_notebook_has_parameters_the_runner_can_read():
    "papermill reads each stage's parameters cell (one simple assignment a line); the runner checks types against it"
    from nemotron_nb.pipeline import notebook_parameters
    for nb in sorted((ROOT / "nbs" / "stages").glob("*.ipynb")):
        assert "out_dir" in notebook_parameters(nb), nb.name
