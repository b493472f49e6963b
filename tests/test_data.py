"""Data checks a notebook cannot hold: processes racing to build one cache, DataLoader worker processes."""
import multiprocessing as mp
import time
import torch
from nemotron_nb.data import pack_sources

DOCS = {"a": [f"document {i} of source a. " * (1 + i % 7) for i in range(40)],
        "b": [f"b{i}: " + "xyz " * (3 + i % 11) for i in range(30)]}
WEIGHTS = {"a": 1.0, "b": 2.0}

class SlowByteTokenizer:
    "Bytes as ids, slow enough that racing builders overlap"
    eos_id, vocab_size = 2, 259
    def encode(self, text, bos=False, eos=False):
        time.sleep(0.005)
        return [b + 3 for b in text.encode("utf-8")]

def _build(cache, barrier, q):
    barrier.wait()
    ds = pack_sources(DOCS, WEIGHTS, SlowByteTokenizer(), 32, 60, seed=3, cache_dir=cache)
    q.put((str(ds.path), torch.stack([ds[i]["input_ids"] for i in range(len(ds))]).tolist()))

def test_racing_builders_agree(tmp_path):
    ctx = mp.get_context("fork")
    barrier, q = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=_build, args=(tmp_path, barrier, q)) for _ in range(3)]
    for p in procs: p.start()
    results = [q.get(timeout=120) for _ in procs]
    for p in procs: p.join(timeout=30)
    assert all(p.exitcode == 0 for p in procs)
    assert all(r == results[0] for r in results)
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]      # losers cleaned up after themselves
    again = pack_sources(DOCS, WEIGHTS, SlowByteTokenizer(), 32, 60, seed=3, cache_dir=tmp_path)
    assert again.tokenized == [] and str(again.path) == results[0][0]

def test_dataloader_worker_processes(tmp_path):
    ds = pack_sources(DOCS, WEIGHTS, SlowByteTokenizer(), 32, 45, seed=0, cache_dir=tmp_path)
    ref = torch.stack([ds[i]["labels"] for i in range(len(ds))])
    dl = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, multiprocessing_context="spawn")
    assert torch.equal(torch.cat([b["labels"] for b in dl]), ref)
