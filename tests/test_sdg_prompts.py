"""Synthetic-prompt jobs (`nemotron_nb.sdg.jobs`, `nemotron_nb.sdg.prompts`): a job killed with SIGKILL and rerun
loses and duplicates nothing; a second run of a job while the first runs is refused at once; endpoint failures,
malformed server JSON, empty generations and unknown sampling parameters give clear errors and keep the partial
results; the `sdg_prompts` stage runs on the torch backend and through `nemotron-nb serve` + the OpenAI backend."""
import json, os, signal, subprocess, sys, textwrap, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import pytest
from conftest import ROOT
from nemotron_nb.files import BusyError, read_jsonl
from nemotron_nb.llm import OpenAIBackend
from nemotron_nb.llm.server import serve_process
from nemotron_nb.sdg.jobs import run_generation
from nemotron_nb.sdg.prompts import parse_list
from nemotron_nb.testing import FakeBackend, make_tiny_model_dir

SAMPLING = dict(temperature=0.0, max_tokens=32, seed=0)

def tasks(n=40):
    ask = "Can you generate 3 questions about topic number {}?"
    return [dict(messages=[dict(role="user", content=ask.format(i))], topic=i) for i in range(n)]

def listed(out, task):
    p = parse_list(out, 3)
    return p.items or None, dict(format=p.format, rejected_items=p.rejected)

# A job in a child process, slowed down so that a kill lands mid-run (and sometimes mid-write).
CHILD = textwrap.dedent("""
    import sys, time
    from nemotron_nb.sdg.jobs import run_generation
    from nemotron_nb.testing import FakeBackend
    sys.path.insert(0, {tests!r})
    from test_sdg_prompts import tasks, listed, SAMPLING
    class Slow(FakeBackend):
        def generate(self, conversations, sampling=None):
            time.sleep(0.2)
            return super().generate(conversations, sampling)
    run_generation({job!r}, tasks(), Slow(), SAMPLING, {out!r}, listed, batch_size=2, progress=False)
""")

def lines(path): return path.read_bytes().count(b"\n") if path.exists() else 0

def test_sigkill_then_rerun_loses_and_duplicates_nothing(tmp_path):
    path = tmp_path / "killed.jsonl"
    script = CHILD.format(tests=str(ROOT / "tests"), out=str(tmp_path), job="killed")
    seen = []
    for kill_at in (6, 20):                           # two kills at growing progress
        proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while lines(path) < kill_at and proc.poll() is None and time.monotonic() < deadline: time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
        seen.append(lines(path))
    assert seen == sorted(seen) and 0 < seen[-1] < 40, seen   # each run resumed after the last
    fb = FakeBackend()
    recs = run_generation("killed", tasks(), fb, SAMPLING, tmp_path, listed, batch_size=2, progress=False)
    on_disk = read_jsonl(path)
    assert len(recs) == 40 == len(on_disk) == len({r["key"] for r in on_disk})        # none lost, none twice
    assert sorted(r["task"]["topic"] for r in on_disk) == list(range(40))
    assert fb.conversations == 40 - seen[-1]                                            # only the missing ones
    for r in on_disk:                                                                   # each record is the right one
        assert r["ok"] and r["response"] == FakeBackend.reply(r["task"]["messages"][-1]["content"])
    stats = json.loads((tmp_path / "killed.stats.json").read_text())
    assert (stats["requested"], stats["produced"], stats["missing"], stats["error"]) == (40, 40, 0, None)

def test_second_run_of_a_job_is_refused_while_the_first_runs(tmp_path):
    "Two runs of one job at once: the second is refused at once, naming the job and its file; the first finishes alone"
    path = tmp_path / "busy.jsonl"
    script = CHILD.format(tests=str(ROOT / "tests"), out=str(tmp_path), job="busy")
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while lines(path) < 2 and proc.poll() is None and time.monotonic() < deadline: time.sleep(0.01)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        fb, t0 = FakeBackend(), time.monotonic()
        with pytest.raises(BusyError) as e:
            run_generation("busy", tasks(), fb, SAMPLING, tmp_path, listed, batch_size=2, progress=False)
        assert time.monotonic() - t0 < 5 and fb.calls == 0                    # at once, asking the model nothing
        assert f"job 'busy' is already running: another run holds the lock on {path}" in str(e.value)
        assert proc.wait(120) == 0, proc.stderr.read().decode()[-2000:]
    finally:
        if proc.poll() is None: proc.kill()
    on_disk = read_jsonl(path)
    assert len(on_disk) == 40 == len({r["key"] for r in on_disk})                  # the first run alone wrote them
    assert json.loads((tmp_path / "busy.stats.json").read_text())["produced"] == 40
    assert len(run_generation("busy", tasks(), FakeBackend(), SAMPLING, tmp_path, listed, progress=False)) == 40

class Stub(BaseHTTPRequestHandler):
    "An OpenAI-compatible endpoint that misbehaves as `self.server.mode` says"
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        mode = self.server.mode
        if mode == "malformed": data = b"{'choices': not json"
        else:
            content = "" if mode == "empty" else FakeBackend.reply(body["messages"][-1]["content"])
            choice = dict(index=0, message=dict(role="assistant", content=content), finish_reason="stop")
            data = json.dumps(dict(choices=[choice])).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *a): pass

@pytest.fixture
def stub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    server.mode = "ok"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()

def url(server): return f"http://127.0.0.1:{server.server_address[1]}/v1"

def test_failures_are_clear_and_keep_partial_results(tmp_path, stub):
    ts = tasks(12)
    done = run_generation("job", ts[:5], OpenAIBackend(url(stub), "stub"), SAMPLING, tmp_path, listed, batch_size=4,
                          progress=False)
    assert len(done) == 5
    path = tmp_path / "job.jsonl"
    before = path.read_bytes()
    def fails(backend, sampling=SAMPLING):
        with pytest.raises(Exception) as e:
            run_generation("job", ts, backend, sampling, tmp_path, listed, batch_size=4, progress=False)
        assert path.read_bytes().startswith(before) and len(read_jsonl(path)) >= 5      # partial results kept
        return str(e.value)
    # an unreachable endpoint (nothing listens on port 9)
    msg = fails(OpenAIBackend("http://127.0.0.1:9/v1", "stub", max_retries=1, backoff=0.01))
    assert "job 'job' stopped with 5 of 12 records done" in msg, msg
    assert "cannot reach http://127.0.0.1:9/v1/chat/completions" in msg, msg
    assert "a rerun resumes after them" in msg
    assert json.loads((tmp_path / "job.stats.json").read_text())["error"].startswith("BatchError")
    # malformed JSON from the server
    stub.mode = "malformed"
    msg = fails(OpenAIBackend(url(stub), "stub", max_retries=0))
    assert "malformed JSON from" in msg and "5 of 12 records done" in msg, msg
    # empty generations
    stub.mode = "empty"
    msg = fails(OpenAIBackend(url(stub), "stub"))
    assert "only empty generations for all 4 conversations of a batch" in msg, msg
    assert "check max_tokens, stop strings" in msg, msg
    # an unknown sampling parameter: refused before any request
    msg = fails(OpenAIBackend(url(stub), "stub"), dict(SAMPLING, temprature=1.0))
    assert "unknown sampling parameter 'temprature'" in msg
    assert path.read_bytes() == before                                                   # nothing was touched
    # fixed, the rerun only does the missing 7
    stub.mode = "ok"
    fixed = OpenAIBackend(url(stub), "stub")
    assert len(run_generation("job", ts, fixed, SAMPLING, tmp_path, listed, progress=False)) == 12
    assert len(read_jsonl(path)) == 12

# The stage at a reduced size (the pipeline's defaults are in the notebook's parameters cell).
SMALL = dict(n_macro_topics=2, n_subtopics=1, manual_topics=["cooking"], n_open_qa=1, n_writing_pairs=2, n_writing=1,
             n_revisions=1, n_documents=2, n_closed_qa=1, math_school_levels=["middle school"],
             math_keywords=["primes"], n_math_topics=1, n_math_problems=1, n_python_topics=1, n_python_keywords=2,
             n_python_problems=1,
             n_if_single=3, n_if_all_turns=2, n_if_second_turn=2, n_two_turn=2, n_real=8, max_tokens=12, batch_size=16)
KINDS = {"open_qa", "writing", "closed_qa", "math", "python", "if_single", "if_all_turns", "if_second_turn", "two_turn",
         "real_sft", "real_preference"}

@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    "A random tiny model with a trained tokenizer, and a small default corpus"
    from nemotron_nb.corpus import build_default_corpus
    d = tmp_path_factory.mktemp("sdg_inputs")
    build_default_corpus(d / "corpus", scale=0.05)
    return make_tiny_model_dir(d / "model"), d / "corpus"

def run_stage(out, model, corpus, **params):
    import papermill as pm
    pm.execute_notebook(str(ROOT / "nbs" / "stages" / "sdg_prompts.ipynb"), str(out / "sdg_prompts.ipynb"),
                        parameters=dict(out_dir=str(out), model_dir=str(model), corpus_dir=str(corpus), **SMALL,
                                        **params),
                        kernel_name="python3", progress_bar=False, cwd=str(out))
    return json.loads((out / "metrics.json").read_text())

def check_outputs(out, metrics):
    assert KINDS <= set(metrics["prompts"]) and all(metrics["prompts"][k] > 0 for k in KINDS), metrics["prompts"]
    for k in KINDS:
        rows = read_jsonl(out / "prompts" / f"{k}.jsonl")
        assert len(rows) == metrics["prompts"][k] and len({r["id"] for r in rows}) == len(rows)
        assert all(r["kind"] == k and r["messages"] and r["messages"][-1]["role"] == "user" for r in rows)
    sft = {r["prompt"] for r in read_jsonl(out / "prompts" / "real_sft.jsonl")}
    assert not sft & {r["prompt"] for r in read_jsonl(out / "prompts" / "real_preference.jsonl")}
    stats = json.loads((out / "stats.json").read_text())
    assert all(s["missing"] == 0 and s["error"] is None for s in stats.values())
    assert metrics["jobs_requested"] == sum(s["requested"] for s in stats.values())

def test_stage_torch_backend(tmp_path, inputs):
    out = tmp_path / "sdg_prompts"
    out.mkdir()
    metrics = run_stage(out, *inputs, backend="torch")
    check_outputs(out, metrics)
    # a rerun resumes every job: nothing is generated again and the prompts are the same
    before = {k: (out / "prompts" / f"{k}.jsonl").read_text() for k in KINDS}
    again = run_stage(out, *inputs, backend="torch")
    assert again["prompts"] == metrics["prompts"]
    assert all((out / "prompts" / f"{k}.jsonl").read_text() == v for k, v in before.items())
    assert all(s["resumed"] == s["requested"] for s in json.loads((out / "stats.json").read_text()).values())

def test_stage_through_serve_and_openai_backend(tmp_path, inputs):
    model, corpus = inputs
    out = tmp_path / "sdg_prompts"
    out.mkdir()
    with serve_process(model) as base_url:
        metrics = run_stage(out, model, corpus, backend="openai", base_url=base_url)
    assert metrics["backend"] == "openai"
    check_outputs(out, metrics)
