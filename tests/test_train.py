"""Kill a training run with SIGKILL mid-way, restart it, and compare with an uninterrupted run step for step; and the
learning rate under a batch ramp, which follows consumed samples (so a ramp leaves the schedule unchanged)."""
import json, os, signal, subprocess, sys, time
from dataclasses import replace
from pathlib import Path
import pytest
from conftest import ROOT

# A training process: tiny_gqa on a learnable synthetic stream (packed rows of arithmetic sequences), fp32.
# argv: out_dir, seconds to sleep per row read (slows the run down so the test can kill it mid-way).
SCRIPT = r'''
import sys, time, torch
torch.set_num_threads(1)
from nemotron_nb.config import preset
from nemotron_nb.model import NemotronLM
from nemotron_nb.train import TrainConfig, train

class Rows(torch.utils.data.Dataset):
    "Packed rows of two documents each: x_t = a + b*t (mod 120), position ids restarting at the second"
    def __init__(self, n, T=32, delay=0.0):
        g = torch.Generator().manual_seed(0)
        self.a, self.b = torch.randint(1, 120, (n,), generator=g), torch.randint(1, 7, (n,), generator=g)
        self.n, self.T, self.delay = n, T, delay
    def __len__(self): return self.n
    def __getitem__(self, i):
        time.sleep(self.delay)
        t = torch.arange(self.T + 1)
        seq = 1 + (self.a[i] + self.b[i] * t) % 120
        pos = torch.cat([torch.arange(self.T // 2), torch.arange(self.T - self.T // 2)])
        labels = seq[1:].clone(); labels[self.T // 2 - 1] = -100          # no target across the document end
        return dict(input_ids=seq[:-1], labels=labels, position_ids=pos)

out, delay = sys.argv[1], float(sys.argv[2])
cfg = TrainConfig(steps=30, global_batch=4, micro_batch=2, lr=3e-3, min_lr=3e-4, warmup_steps=5,
                  eval_every=5, eval_batches=2, save_every=10, keep_last=2, precision="fp32")
torch.manual_seed(0)
model = NemotronLM(preset("tiny_gqa", vocab_size=128, seq_length=32))
train(model, Rows(64, delay=delay), cfg, out, eval_data=Rows(8), progress=False)
'''

def _run(script, out, delay=0.0, **kw):
    return subprocess.Popen([sys.executable, str(script), str(out), str(delay)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)

def _metrics(out):
    p = Path(out) / "metrics.jsonl"
    rows = []
    for line in (p.read_text().splitlines() if p.exists() else []):
        try: rows.append(json.loads(line))
        except json.JSONDecodeError: pass
    return rows

def test_sigkill_and_resume_reproduces_the_loss_curve(tmp_path):
    script = tmp_path / "run.py"; script.write_text(SCRIPT)
    full = _run(script, tmp_path / "full")
    _, err = full.communicate(timeout=300)
    assert full.returncode == 0, err[-3000:]

    killed = _run(script, tmp_path / "killed", delay=0.02)
    deadline = time.time() + 240
    while time.time() < deadline and not any(r["step"] >= 14 for r in _metrics(tmp_path / "killed")):
        assert killed.poll() is None, killed.communicate()[1][-3000:]
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL); killed.wait()
    assert killed.returncode == -signal.SIGKILL
    ckpts = sorted(p.name for p in (tmp_path / "killed" / "checkpoints").iterdir() if not p.name.startswith("."))
    assert ckpts == ["step_000010"], ckpts                              # killed between two checkpoints
    assert 14 <= max(r["step"] for r in _metrics(tmp_path / "killed")) < 20
    assert not (tmp_path / "killed" / "model").exists()

    resumed = _run(script, tmp_path / "killed")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]

    a, b = _metrics(tmp_path / "full"), _metrics(tmp_path / "killed")
    assert [r["step"] for r in b] == list(range(1, 31))                 # rows after the checkpoint were replaced
    for ra, rb in zip(a, b):
        for k in ("loss", "lr", "grad_norm", "eval_loss", "tokens", "consumed_samples"):
            assert ra.get(k) == rb.get(k), (ra["step"], k, ra.get(k), rb.get(k))
    from safetensors.torch import load_file
    wa, wb = (load_file(str(tmp_path / d / "model" / "model.safetensors")) for d in ("full", "killed"))
    assert all((wa[k] == wb[k]).all() for k in wa)

def test_lr_follows_consumed_samples_under_a_batch_ramp(tmp_path):
    "At equal consumed samples a ramped run has the LR of a run at the final batch (warmup and decay counted in samples)"
    import torch
    from nemotron_nb.config import preset
    from nemotron_nb.model import NemotronLM
    from nemotron_nb.train import TrainConfig, train
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 100, (64, 17), generator=g)
    rows = [dict(input_ids=r[:-1], labels=r[1:], position_ids=torch.arange(16)) for r in ids]
    common = dict(micro_batch=4, lr=1e-3, min_lr=1e-4, warmup_steps=3, decay_steps=6, eval_every=0, save_every=0)
    flat = TrainConfig(steps=10, global_batch=8, **common)
    ramped = TrainConfig(steps=14, global_batch=8, rampup_batch_size=(4, 4, 8), **common)   # batches 4, 4, then 8
    def run(c, d):
        torch.manual_seed(0)
        return train(NemotronLM(preset("tiny_gqa", vocab_size=128, seq_length=16)), rows, c, tmp_path / d, progress=False)
    def lr_by_samples(metrics):   # samples consumed before the step -> its LR
        before = [0] + [r["consumed_samples"] for r in metrics[:-1]]
        return dict(zip(before, (r["lr"] for r in metrics)))
    a, b = lr_by_samples(run(flat, "flat")), lr_by_samples(run(ramped, "ramped"))
    assert sorted(b)[:4] == [0, 4, 8, 16]
    common_samples = sorted(set(a) & set(b))
    assert len(common_samples) == 10
    for s in common_samples: assert b[s] == pytest.approx(a[s], rel=1e-12, abs=0), (s, a[s], b[s])
    assert b[4] == pytest.approx(1e-3 * (4 / 8 + 1) / 3)           # half a full-batch step into the warmup
    assert b[8] != pytest.approx(1e-3 * (2 + 1) / 3)                 # what a step-counted warmup would give at step 2
    # and a ramped run resumed from a checkpoint continues with the same learning rates and losses
    torch.manual_seed(0)
    part = replace(ramped, steps=6, save_every=3)
    train(NemotronLM(preset("tiny_gqa", vocab_size=128, seq_length=16)), rows, part, tmp_path / "resumed", progress=False)
    resumed = run(ramped, "resumed")
    full = run(ramped, "ramped")
    assert [(r["lr"], r["loss"]) for r in resumed] == [(r["lr"], r["loss"]) for r in full]
