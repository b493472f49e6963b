"""Parallel layouts against one process: tp=2, pp=2 x 2 virtual stages, dp=2, 2x2x2, and resharding checkpoints.

Each test launches tests/dist_worker.py on CPU processes (gloo) through `nemotron-nb launch`'s function and reads
the JSON rank 0 writes: per-step loss and grad norm of the layout and of the single-process reference.
Then the pretraining stage notebook itself on 2, 4 and (flag `dist`) 8 CPU ranks, one papermill kernel per rank,
directly and through the pipeline's `launch` option, against the same notebook in one process; a failing rank
named by the pipeline; and, where CUDA exists, one NCCL step.
"""
import json, math, subprocess, sys
import pytest
import nbformat
from conftest import ROOT, run_flags, stage_notebook

TOL = 1e-5
LAUNCH = "import sys; from nemotron_nb.launch import launch_main; sys.exit(launch_main(sys.argv[1:]))"

def launch(tmp_path, nproc:int, layout:str, variants:str, vp:int=1, **kw)->dict:
    "Run the worker on `nproc` ranks via launch_main; returns rank 0's results"
    out = tmp_path / f"r-{layout.replace(',', '')}-{variants.replace(',', '-')}.json"
    args = ["--layout", layout, "--vp", str(vp), "--variants", variants, "--out", str(out)]
    for k, v in kw.items(): args += [f"--{k}", str(v)]
    if nproc == 1:                        # one plain process, no process group: run it here
        import dist_worker
        dist_worker.main(args)
    else:
        cmd = [sys.executable, "-c", LAUNCH, "--nproc", str(nproc), "--", str(ROOT / "tests" / "dist_worker.py"), *args]
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=420)
        assert r.returncode == 0, f"{layout} {variants} failed:\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}"
    return {v["variant"]: v for v in json.loads(out.read_text())["variants"]}

def assert_parity(rec:dict, steps:int=4):
    assert len(rec["steps"]) == steps == len(rec["reference"])
    assert rec["max_loss_diff"] < TOL, (rec["variant"], rec["steps"], rec["reference"])
    assert rec["max_grad_norm_diff"] < TOL, (rec["variant"], rec["steps"], rec["reference"])
    assert rec["eval_loss_diff"] < TOL, rec["variant"]

def expected_tp2_sharding(name:str, p:dict):
    "Each weight as the plan puts it at tp=2 (without FSDP): a dropped or changed plan fails here"
    full, local, pl = p["full"], p["local"], p["placements"]
    if name.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight", "up_proj.weight", "embed_tokens.weight", "lm_head.weight")):
        assert pl == ["S(0)"] and local == [full[0] // 2, full[1]], (name, p)       # output columns / vocabulary rows
    elif name.endswith(("o_proj.weight", "down_proj.weight")):
        assert pl == ["S(1)"] and local == [full[0], full[1] // 2], (name, p)       # input rows
    else:
        assert "norm" in name and pl == ["R"] and local == full, (name, p)          # sequence-parallel norms

@pytest.fixture(scope="module")
def tp2(tmp_path_factory):
    "The tp=2 run (and the checkpoint it saves after step 2), shared by the tests below"
    tmp = tmp_path_factory.mktemp("tp2")
    recs = launch(tmp, 2, "1,1,2", "base,no_sp,loss_parallel,unpacked,swap_k", save=tmp / "ckpt")
    return recs, tmp / "ckpt"

def test_tp2_matches_one_process(tp2):
    recs, _ = tp2
    for v in ("base", "no_sp", "loss_parallel", "unpacked"): assert_parity(recs[v])
    assert len(recs["base"]["placements"]) == 1 + 4 * 10 + 3     # embedding, 4 blocks, norm (2), head
    for name, p in recs["base"]["placements"].items(): expected_tp2_sharding(name, p)

def test_tp2_misplaced_shard_breaks_equality(tp2):
    recs, _ = tp2
    bad = recs["swap_k"]                  # rank 0 holds rank 1's k_proj rows and vice versa
    assert bad["max_loss_diff"] > 10 * TOL and bad["max_grad_norm_diff"] > 100 * TOL, bad

def test_pp2_interleaved_and_other_schedules(tmp_path):
    recs = launch(tmp_path, 2, "1,2,1", "interleaved,1f1b,gpipe", vp=2)
    for v in ("interleaved", "1f1b", "gpipe"): assert_parity(recs[v])
    layers = sorted({k.split(".")[2] for k in recs["interleaved"]["placements"] if ".layers." in k})
    assert layers == ["0", "2"]           # rank 0 holds stages 0 and 2 of four: layers 0 and 2

def test_dp2_matches_one_process(tmp_path):
    assert_parity(launch(tmp_path, 2, "2,1,1", "base")["base"])

def test_dp2_pp2_tp2_matches_one_process(tmp_path):
    rec = launch(tmp_path, 8, "2,2,2", "base", vp=2)["base"]
    assert_parity(rec)
    q = rec["placements"]["model.layers.0.self_attn.q_proj.weight"]
    assert q["local"] == [16, 64] and q["full"] == [64, 64]          # a quarter: split over tp, sharded over dp

def test_checkpoint_saved_at_tp2_resumes_at_tp1_and_pp2(tp2, tmp_path):
    _, ckpt = tp2
    assert (ckpt / "state.json").exists() and json.loads((ckpt / "state.json").read_text())["layout"]["tp"] == 2
    one = launch(tmp_path, 1, "1,1,1", "base", load=ckpt)["base"]           # one plain process, no process group
    pp2 = launch(tmp_path, 2, "1,2,1", "base", vp=2, load=ckpt)["base"]
    for rec in (one, pp2):
        assert rec["first_step"] == 2
        assert_parity(rec, steps=2)       # steps 3 and 4; step 4 needs the optimizer state too

def test_checkpoint_exports_hf_from_any_layout(tp2, tmp_path):
    import torch
    from nemotron_nb.model import NemotronLM
    from nemotron_nb.parallel import export_hf
    _, ckpt = tp2
    export_hf(ckpt, tmp_path / "hf")
    m = NemotronLM.from_pretrained(tmp_path / "hf")
    assert m.config.num_layers == 4 and m.lm_head.weight.shape == (512, 64)
    assert torch.isfinite(m(torch.zeros(1, 4, dtype=torch.long))).all()

def allreduce_notebook(path):
    "A two-cell stage notebook: parameters, then an all-reduce over the ranks written to out_dir"
    code = ("import os, json, torch, torch.distributed as dist\n"
            "from nemotron_nb.parallel import init_mesh\n"
            "mesh = init_mesh(dp=int(os.environ['WORLD_SIZE']))\n"
            "t = torch.tensor([dist.get_rank() + 1.0]); dist.all_reduce(t)\n"
            "open(f'{out_dir}/rank{dist.get_rank()}.json', 'w').write(json.dumps(dict(world=dist.get_world_size(), total=t.item())))\n"
            "dist.destroy_process_group()")
    stage_notebook(path, "out_dir = '.'", code)

@pytest.mark.parametrize("nproc", [2, pytest.param(4, marks=pytest.mark.skipif("dist" not in run_flags(),
                                                                           reason="4 kernels: NEMOTRON_NB_FLAGS=dist"))])
def test_notebook_runs_one_papermill_kernel_per_rank(tmp_path, nproc):
    from nemotron_nb.pipeline import run_stage_distributed
    allreduce_notebook(tmp_path / "stage.ipynb")
    out = tmp_path / "out"
    out.mkdir()
    run_stage_distributed(tmp_path / "stage.ipynb", out / "stage.ipynb", dict(out_dir=str(out)), dict(nproc_per_node=nproc), cwd=out)
    got = [json.loads((out / f"rank{r}.json").read_text()) for r in range(nproc)]
    assert all(g == dict(world=nproc, total=nproc * (nproc + 1) / 2) for g in got)
    assert sorted(p.name for p in out.glob("stage*.ipynb")) == ["stage.ipynb"] + [f"stage.rank{r}.ipynb" for r in range(1, nproc)]

def test_launch_writes_slurm_script(tmp_path):
    from nemotron_nb.launch import launch_main
    f = tmp_path / "job.sbatch"
    assert launch_main(["--nnodes", "96", "--nproc", "8", "--gpus-per-node", "8", "--slurm", str(f), "--", "train.py", "--tp", "8"]) == 0
    s = f.read_text()
    assert "#SBATCH --nodes=96" in s and "#SBATCH --gpus-per-node=8" in s
    assert "srun --kill-on-bad-exit=1 python -m torch.distributed.run --nproc-per-node=8 --nnodes=96 --rdzv-backend=c10d" in s
    assert "--rdzv-endpoint=${HEAD}:29500 --rdzv-id=${SLURM_JOB_ID} train.py --tp 8" in s
    r = subprocess.run(["bash", "-n", str(f)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

# --- The pretraining stage notebook on several ranks, against the same notebook in one process -------------------
# One papermill kernel per rank (torchrun), through `pipeline.run_stage_distributed` and the pipeline's `launch`
# option. Tiny sizes: the `tiny` preset (4 layers, hidden 128), 32-token rows, 4 steps of a batch ramp 4, 4, 8, 8 (so
# the number of micro-batches, and under pipelining the schedule, changes mid-run). The trainer's own AdamW eps 1e-8
# turns float rounding between layouts into weight differences of up to ~1e-4 (see 05_parallel), so the weights are
# compared loosely; losses and gradient norms to 1e-5.
import time
STAGE = ROOT / "nbs" / "stages" / "pretrain.ipynb"
SMALL = dict(seq_len=32, steps=4, global_batch=8, micro_batch=2, warmup_steps=2, eval_every=2, eval_batches=2,
             save_every=2, rampup_batch_size=[4, 4, 8],
             precision="fp32")   # the stage's default bf16 would round each layout's reduction order differently
dist_only = pytest.mark.skipif("dist" not in run_flags(), reason="8 kernels, ~80 s on 2 cores: NEMOTRON_NB_FLAGS=dist")

@pytest.fixture(scope="module")
def stage_inputs(tmp_path_factory):
    "A small default corpus and a 512-piece tokenizer, as the tokenizer stage writes them"
    import warnings
    from nemotron_nb.corpus import build_default_corpus, load_corpus, source_kind
    from nemotron_nb.tokenizer import train_tokenizer
    d = tmp_path_factory.mktemp("inputs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                 # a source missing on this machine is a warning
        build_default_corpus(d / "corpus", scale=0.05)
    src = load_corpus(d / "corpus")
    train_tokenizer((t for n, ds in src.items() if source_kind(n) != "qa" for t in ds["text"]), d / "tokenizer",
                    vocab_size=512, max_chars=200_000)
    return dict(tokenizer_dir=str(d / "tokenizer"), corpus_dir=str(d / "corpus"))

def stage_params(out, inputs, **layout): return dict(out_dir=str(out), **inputs, **SMALL, **layout)

@pytest.fixture(scope="module")
def one_process(stage_inputs, tmp_path_factory):
    "The stage run in one process (plain papermill), the reference"
    import papermill as pm
    out = tmp_path_factory.mktemp("one")
    t0 = time.time()
    pm.execute_notebook(str(STAGE), str(out / "pretrain.ipynb"), parameters=stage_params(out, stage_inputs), kernel_name="python3",
                        progress_bar=False, cwd=str(out))
    print(f"one-process stage: {time.time() - t0:.0f}s")
    return out

def stage_rows(out): return [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]

def assert_same_run(out, ref, nproc:int):
    "The distributed stage run in `out` trained like the one-process run in `ref`, and wrote what it should"
    import torch
    from nemotron_nb.model import NemotronLM
    a, b = stage_rows(out), stage_rows(ref)
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, SMALL["steps"] + 1))
    assert [r["consumed_samples"] for r in a] == [4, 8, 16, 24]                 # the ramp: 4, 4, 8, 8
    for x, y in zip(a, b):
        assert x["lr"] == y["lr"], (x, y)
        assert abs(x["loss"] - y["loss"]) < TOL and abs(x["grad_norm"] - y["grad_norm"]) < TOL, (x, y)
        assert abs(x.get("eval_loss", 0) - y.get("eval_loss", 0)) < TOL, (x, y)
    assert sum("eval_loss" in r for r in a) == 2
    m, r = NemotronLM.from_pretrained(out / "model"), NemotronLM.from_pretrained(ref / "model")
    sm, sr = m.state_dict(), r.state_dict()
    assert max((sm[k] - sr[k]).abs().max().item() for k in sr) < 1e-3
    x = torch.randint(0, m.config.vocab_size, (2, SMALL["seq_len"]))
    with torch.no_grad(): assert (m(x) - r(x)).abs().max().item() < 1e-3
    assert (out / "model" / "tokenizer.model").exists()
    assert json.loads((out / "metrics.json").read_text())["layout"]["dp"] >= 1
    copies = sorted(p.name for p in out.glob("pretrain*.ipynb"))
    assert copies == ["pretrain.ipynb"] + [f"pretrain.rank{k}.ipynb" for k in range(1, nproc)]
    def images(nb): return sum("image/png" in o.get("data", {}) for c in nbformat.read(str(nb), as_version=4).cells
                               for o in c.get("outputs", []))
    assert images(out / "pretrain.ipynb") >= 3 and images(out / "pretrain.rank1.ipynb") == 0   # only rank 0 plots

def test_pretrain_stage_on_2_ranks_pp2_interleaved(stage_inputs, one_process, tmp_path):
    "run_stage_distributed directly: pp=2 with 2 virtual stages per rank (ScheduleInterleaved1F1B)"
    from nemotron_nb.pipeline import run_stage_distributed
    t0 = time.time()
    run_stage_distributed(STAGE, tmp_path / "pretrain.ipynb", stage_params(tmp_path, stage_inputs, pp=2, vp=2),
                          dict(nproc_per_node=2), cwd=tmp_path)
    print(f"2 ranks (pp=2, vp=2): {time.time() - t0:.0f}s")
    assert_same_run(tmp_path, one_process, 2)
    assert json.loads((tmp_path / "pretrain.json").read_text())["layout"] == dict(
        dp=1, pp=2, tp=1, vp=2, schedule="interleaved1f1b", rampup_batch_size=[4, 4, 8])

def launch_pipeline(tmp_path, inputs, nproc:int, **layout):
    "A one-stage pipeline file running the pretraining stage notebook on `nproc` ranks"
    import yaml
    stage = dict(name="pretrain", inputs=inputs, parameters=dict(SMALL, **layout), launch=dict(nproc_per_node=nproc),
                 outputs=["model", "pretrain.json"])
    y = tmp_path / "par.yaml"
    y.write_text(yaml.safe_dump(dict(name="par", notebooks=str(STAGE.parent), stages=[stage])))
    return y

def run_launch_pipeline(tmp_path, inputs, nproc, **layout):
    from nemotron_nb.pipeline import run_pipeline
    y, out = launch_pipeline(tmp_path, inputs, nproc, **layout), tmp_path / "runs"
    t0 = time.time()
    rows = run_pipeline(y, out)
    print(f"{nproc} ranks {layout}: {time.time() - t0:.0f}s")
    assert [r["status"] for r in rows] == ["ran"] and rows[0]["metrics"]["layout"] == dict(
        dp=layout.get("dp", 1), pp=layout.get("pp", 1), tp=layout.get("tp", 1), vp=layout.get("vp", 1),
        schedule="interleaved1f1b" if layout.get("pp", 1) > 1 else None, rampup_batch_size=[4, 4, 8])
    return y, out

def test_pretrain_stage_on_4_ranks_through_the_pipeline(stage_inputs, one_process, tmp_path):
    "The pipeline's `launch: {nproc_per_node: 4}`: dp=2 (FSDP2) x tp=2 (tensor + sequence parallel)"
    from nemotron_nb.pipeline import run_pipeline
    y, out = run_launch_pipeline(tmp_path, stage_inputs, 4, dp=2, tp=2)
    assert_same_run(out / "pretrain", one_process, 4)
    assert [r["status"] for r in run_pipeline(y, out)] == ["skip"]                # complete: not relaunched

@dist_only
def test_pretrain_stage_on_8_ranks_2x2x2(stage_inputs, one_process, tmp_path):
    "dp x pp x tp = 2 x 2 x 2 with 2 virtual stages per pipeline rank: FSDP2 over TP over an interleaved pipeline"
    _, out = run_launch_pipeline(tmp_path, stage_inputs, 8, dp=2, pp=2, tp=2, vp=2)
    assert_same_run(out / "pretrain", one_process, 8)

def test_failing_rank_is_named_by_the_pipeline(tmp_path):
    "Rank 1 raises; rank 0 then fails in an all_reduce whose partner is gone: the message names rank 1 and its cell"
    from nemotron_nb.pipeline import run_pipeline, StageFailed, read_marker
    cells = ["import os, torch, torch.distributed as dist\nfrom nemotron_nb.parallel import init_mesh\n"
             "mesh = init_mesh(dp=int(os.environ['WORLD_SIZE']))",
             "assert dist.get_rank() != 1, 'rank 1 asked to fail'",
             "t = torch.ones(1); dist.all_reduce(t)\nopen(f'{out_dir}/metrics.json', 'w').write('{}')"]
    stage_notebook(tmp_path / "toy.ipynb", "out_dir = '.'", *cells)
    (tmp_path / "toy.yaml").write_text("stages:\n  - {name: toy, launch: {nproc_per_node: 2}}\n")
    t0 = time.time()
    with pytest.raises(StageFailed) as e: run_pipeline(tmp_path / "toy.yaml", tmp_path / "runs")
    print(f"failing 2-rank toy stage: {time.time() - t0:.0f}s")
    msg = str(e.value)
    assert msg.startswith("stage 'toy' failed on rank 1 of 2 in cell 3 of toy.rank1.ipynb (\"assert dist.get_rank() != 1"), msg
    assert "AssertionError: rank 1 asked to fail" in msg and str(tmp_path / "runs" / "toy" / "toy.rank1.ipynb") in msg
    assert read_marker(tmp_path / "runs" / "toy") is None
    assert json.loads((tmp_path / "runs" / "pipeline.json").read_text())["stages"][0]["status"] == "failed"

def test_launch_options_checked_before_any_work(tmp_path):
    from nemotron_nb.pipeline import run_pipeline, PipelineError
    stage_notebook(tmp_path / "toy.ipynb", "out_dir = '.'")
    (tmp_path / "toy.yaml").write_text("stages:\n  - {name: toy, launch: {nproc: 2}}\n")
    with pytest.raises(PipelineError, match=r"unknown launch option\(s\) \['nproc'\]; allowed: \['nproc_per_node'\]"):
        run_pipeline(tmp_path / "toy.yaml", tmp_path / "runs")
    assert not (tmp_path / "runs").exists()

# --- NCCL: cannot run here (no GPU); guarded, and checked where CUDA exists ----------------------------------------
NCCL_STEP = r'''
import json, sys, torch, torch.distributed as dist
from nemotron_nb.config import preset
from nemotron_nb.model import NemotronLM, lm_loss
from nemotron_nb.checkpoint import randomize_
from nemotron_nb.parallel import init_mesh, parallelize, train_step, local_micro_batches
mesh = init_mesh()                                    # CUDA present: NCCL, this rank bound to its GPU
cfg = preset("tiny_gqa", num_layers=2, seq_length=16)
g = torch.Generator().manual_seed(0)
ids = torch.randint(0, cfg.vocab_size, (4, 17), generator=g)
batch = dict(input_ids=ids[:, :-1], labels=ids[:, 1:])
ref = randomize_(NemotronLM(cfg), seed=0, std=0.02)
pm = parallelize(randomize_(NemotronLM(cfg), seed=0, std=0.02).cuda(), mesh)
out = train_step(pm, torch.optim.AdamW(pm.parameters(), lr=1e-3), local_micro_batches(pm, batch))
loss = lm_loss(ref(batch["input_ids"]), batch["labels"]).item()
json.dump(dict(backend=dist.get_backend(), device=str(pm.device), loss=out["loss"], ref=loss), open(sys.argv[1], "w"))
dist.destroy_process_group()
'''

def _cuda()->bool:
    import torch
    return torch.cuda.is_available()

@pytest.mark.skipif(not _cuda(), reason="no CUDA device: NCCL cannot run here")
def test_nccl_world_of_one_trains_a_step(tmp_path):
    script, out = tmp_path / "nccl_step.py", tmp_path / "r.json"
    script.write_text(NCCL_STEP)
    r = subprocess.run([sys.executable, "-c", LAUNCH, "--nproc", "1", "--", str(script), str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    res = json.loads(out.read_text())
    assert res["backend"] == "nccl" and res["device"].startswith("cuda")
    assert abs(res["loss"] - res["ref"]) < 1e-4, res          # TF32 is off by default for fp32 matmuls

# --- Every objective through the same step: the reward model's regression and DPO, dp=2 and tp=2 ------------------
@pytest.mark.parametrize("layout", ["2,1,1", "1,1,2"], ids=["dp2", "tp2"])
def test_reward_and_dpo_objectives_match_one_process(tmp_path, layout):
    "2 ranks against a plain single-process loop: per-step loss, grad norm and DPO statistics within 1e-5"
    recs = launch(tmp_path, 2, layout, "reward,dpo")
    for name in ("reward", "dpo"):
        assert_parity(recs[name])
        assert recs[name]["max_stat_diff"] < TOL, recs[name]
    assert set(recs["dpo"]["steps"][0]) >= {"accuracy", "margin", "kl_ref", "preference_loss"}
    head = recs["reward"]["placements"]["head.weight"]
    assert head["full"] == [5, 64]                            # the reward head, outside the language model
    if layout == "1,1,2":
        assert recs["reward"]["placements"]["backbone.model.layers.0.mlp.up_proj.weight"]["placements"] == ["S(0)"]
        assert head["placements"] == []                       # whole on every tensor-parallel rank

# --- The alignment stages through the pipeline's `launch` option: reward (dp=2), code SFT (tp=2), DPO (dp=2), RPO (tp=2)
SMALL_ALIGN = dict(
    reward=dict(steps=4, batch_tokens=256, train_prompts=24, val_prompts=6, pairs_per_subset=2, eval_every=2,
                warmup_steps=1, global_batch=2, dp=2),
    sft_code=dict(max_records=16, heldout_records=4, global_batch=4, micro_batch=2, max_new_tokens=8, save_every=0,
                  max_chars=300, overlong="truncate",
                  tp=2),
    **{s: dict(prompts=12, responses_per_prompt=2, max_tokens=6, heldout_prompts=4, global_batch=4, micro_batch=2,
               warmup_steps=0, **layout) for s, layout in (("dpo", dict(dp=2)), ("rpo", dict(tp=2, iterations=1)))})

@pytest.fixture(scope="module")
def base_model(stage_inputs, tmp_path_factory):
    "A random `tiny` model with the stage inputs' tokenizer, in Hugging Face layout"
    import torch
    from nemotron_nb.config import preset
    from nemotron_nb.model import NemotronLM
    from nemotron_nb.tokenizer import Tokenizer
    d = tmp_path_factory.mktemp("base") / "model"
    tok = Tokenizer.from_pretrained(stage_inputs["tokenizer_dir"])
    torch.manual_seed(0)
    NemotronLM(preset("tiny", vocab_size=tok.vocab_size, seq_length=512)).save_pretrained(d)
    tok.save_pretrained(d)
    return str(d)

def test_alignment_stages_train_distributed_through_the_pipeline(stage_inputs, base_model, tmp_path):
    "Reward, SFT and preference training run under FSDP2 and tensor-parallel layouts, one papermill kernel per rank"
    import yaml
    from nemotron_nb.pipeline import run_pipeline
    inputs = dict(reward=dict(base_model_dir=base_model),
                  sft_code=dict(model_dir=base_model, corpus_dir=stage_inputs["corpus_dir"]),
                  dpo=dict(sft_model_dir="${sft_code.out_dir}/model", reward_model_dir="${reward.out_dir}/model"),
                  rpo=dict(model_dir="${dpo.out_dir}/model", reward_model_dir="${reward.out_dir}/model"))
    stages = [dict(name=s, inputs=inputs[s], parameters=p, launch=dict(nproc_per_node=2), outputs=["model"])
              for s, p in SMALL_ALIGN.items()]
    y = tmp_path / "align.yaml"
    y.write_text(yaml.safe_dump(dict(name="align", notebooks=str(STAGE.parent), stages=stages)))
    t0 = time.time()
    rows = run_pipeline(y, tmp_path / "runs")
    print(f"4 alignment stages on 2 ranks each: {time.time() - t0:.0f}s")
    assert [r["status"] for r in rows] == ["ran"] * 4
    for row, (s, p) in zip(rows, SMALL_ALIGN.items()):
        out = tmp_path / "runs" / s
        assert {k: row["metrics"]["layout"][k] for k in ("dp", "tp")} == {"dp": p.get("dp", 1), "tp": p.get("tp", 1)}
        assert (out / f"{s}.rank1.ipynb").exists()                      # a second kernel trained too
        lines = (out / ("iteration_1" if s == "rpo" else ".") / "metrics.jsonl").read_text().splitlines()
        log = [json.loads(l) for l in lines]
        assert log and all(math.isfinite(r["loss"]) for r in log), s
    from nemotron_nb.reward import RewardModel
    assert RewardModel.from_pretrained(tmp_path / "runs" / "reward" / "model").kind == "regression"
