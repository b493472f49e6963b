"""One rank of a parity run: train a tiny model under a parallel layout and compare with one process.

Run under torchrun (or `nemotron-nb launch`), e.g.
    torchrun --standalone --nproc-per-node 2 tests/dist_worker.py --layout 1,1,2 --variants base,swap_k --out r.json
Rank 0 also runs the single-process reference (plain `lm_loss`, `clip_grad_norm_`, AdamW) and writes, per
variant, the per-step loss and grad norm of both, their largest differences, and how rank 0 holds each weight.
Without torchrun and with layout 1,1,1 it runs in one plain process (no process group): the `--load` path of
the resharding test.
"""
import argparse, json, os, sys, time, warnings
from dataclasses import replace
import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor
from nemotron_nb.config import preset
from nemotron_nb.model import NemotronLM, lm_loss
from nemotron_nb.checkpoint import randomize_
from nemotron_nb.parallel import (init_mesh, parallelize, train_step, eval_step, local_micro_batches, BatchRamp,
                                  save_distributed, load_distributed)

warnings.filterwarnings("ignore", message=".*FSDP2-wrapped module.*returned a view")
warnings.filterwarnings("ignore", message=".*sequential all_reduce operations.*")
CFG = preset("tiny_gqa", num_layers=4, seq_length=16)     # 8 heads, 2 KV groups: tp=2 splits both
RAMP = BatchRamp(start=4, increment=4, ramp_samples=8, global_batch=8)   # batches 4, 4, 8, 8
STEPS = 4

def build_model(swap_k:bool=False)->NemotronLM:
    "The tiny model every rank builds from the same seed (norms and biases random too)"
    torch.manual_seed(0)
    model = randomize_(NemotronLM(CFG), seed=0, std=0.02)
    if swap_k:   # misplace a shard: rank 0 of tp=2 gets the k_proj rows rank 1 should hold, and vice versa
        for blk in model.model.layers.values():
            w = blk.self_attn.k_proj.weight.data
            w.copy_(torch.cat(w.chunk(2, dim=0)[::-1]))
    return model

def batches(packed:bool=True)->list[dict]:
    "STEPS global batches following RAMP: packed documents, some labels masked"
    g, consumed, out = torch.Generator().manual_seed(1), 0, []
    for _ in range(STEPS):
        B, T = RAMP.batch_size(consumed), CFG.seq_length
        ids = torch.randint(0, CFG.vocab_size, (B, T + 1), generator=g)
        b = dict(input_ids=ids[:, :-1], labels=ids[:, 1:].clone())
        if packed:
            pos = torch.arange(T).repeat(B, 1)
            pos[:, 6:] -= 6                                   # a second document starts at token 6 ...
            pos[::2, 11:] = torch.arange(T - 11)              # ... and a third at 11 on even rows
            b["position_ids"] = pos
            b["labels"][:, 5] = -100                          # no target across a document end
            b["labels"][1, :8] = -100                         # and a partly masked row
        out.append(b)
        consumed += B
    return out

def optimizer(params):
    # eps 1e-6: Adam's first step is ~lr*sign(g), so gradients below eps=1e-8 would turn fp32 rounding
    # differences between layouts into 1e-4 weight differences; 1e-6 keeps the comparison about the layout
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.1, eps=1e-6)

def reference(data)->tuple[list[dict], float]:
    "The single-process run (plain forward, lm_loss, clip_grad_norm_, AdamW): per-step records, final loss on batch 0"
    model = build_model()
    opt = optimizer(model.parameters())
    out = []
    for b in data:
        opt.zero_grad()
        loss = lm_loss(model(b["input_ids"], position_ids=b.get("position_ids")), b["labels"])
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        out.append(dict(loss=loss.item(), grad_norm=norm.item()))
    with torch.no_grad():
        b = data[0]
        final = lm_loss(model(b["input_ids"], position_ids=b.get("position_ids")), b["labels"]).item()
    return out, final

def placements(pm)->dict:
    "How this rank holds each weight: local shape and DTensor placements"
    out = {}
    for k, p in pm.model.named_parameters():
        out[k] = dict(local=list(p.to_local().shape) if isinstance(p, DTensor) else list(p.shape),
                      full=list(p.shape), placements=[str(x) for x in p.placements] if isinstance(p, DTensor) else [])
    return out

VARIANTS = {  # name -> parallelize keywords (and model/data switches)
    "base": {}, "swap_k": dict(swap_k=True), "no_sp": dict(sequence_parallel=False),
    "loss_parallel": dict(loss_parallel=True), "1f1b": dict(vp=1, schedule="1f1b"),
    "gpipe": dict(vp=1, schedule="gpipe"), "interleaved": dict(vp=2, schedule="interleaved1f1b"),
    "unpacked": dict(packed=False),
}

def run_variant(mesh, name:str, vp:int, save:str|None, load:str|None)->dict:
    kw = dict(VARIANTS[name])
    swap, packed = kw.pop("swap_k", False), kw.pop("packed", True)
    kw.setdefault("vp", vp)
    data = batches(packed)
    pm = parallelize(build_model(swap), mesh, seq_len=CFG.seq_length, **kw)
    opt = optimizer(pm.parameters())
    t0, steps, first = time.time(), [], 0
    if load:
        first = load_distributed(pm, opt, load)["step"]
    for i, b in enumerate(data[first:], start=first):
        steps.append(train_step(pm, opt, local_micro_batches(pm, b, micro_batch=1), max_grad_norm=1.0))
        if save and i + 1 == 2: save_distributed(pm, opt, save, step=2, consumed_samples=sum(len(d["input_ids"]) for d in data[:2]))
    ev = eval_step(pm, local_micro_batches(pm, data[0], micro_batch=1))
    seconds = time.time() - t0
    rec = dict(variant=name, steps=steps, eval_loss=ev["loss"], seconds=round(seconds, 2), first_step=first,
               placements=placements(pm))
    return rec

# --- Other objectives: the reward model's regression and DPO, through the same step ---------------------------------
# Each step has two micro-batches of right-padded rows of different lengths (one per data-parallel rank at dp=2);
# the reference is a plain loop: the objective's summed loss over the step's micro-batches divided by their
# targets, backward, clip_grad_norm_, AdamW.

def reward_batches()->list[list[dict]]:
    "STEPS steps of two micro-batches: 3 conversations each, 5..16 tokens, some attributes unrated"
    from nemotron_nb.reward import MISSING
    g, out = torch.Generator().manual_seed(2), []
    for _ in range(STEPS):
        step = []
        for _ in range(2):
            lens = torch.randint(5, CFG.seq_length + 1, (3,), generator=g)
            ids, mask = torch.zeros(3, int(lens.max()), dtype=torch.long), torch.zeros(3, int(lens.max()), dtype=torch.long)
            for i, n in enumerate(lens.tolist()):
                ids[i, :n] = torch.randint(1, CFG.vocab_size, (n,), generator=g)
                mask[i, :n] = 1
            labels = torch.randint(0, 5, (3, 5), generator=g).float()
            labels[0, 1] = labels[2, 4] = MISSING
            step.append(dict(input_ids=ids, attention_mask=mask, labels=labels))
        out.append(step)
    return out

def dpo_batches()->list[list[dict]]:
    "STEPS steps of two micro-batches: 2 pairs each, prompts of 4 tokens, responses of 2..11 tokens"
    g, out = torch.Generator().manual_seed(3), []
    for _ in range(STEPS):
        step = []
        for _ in range(2):
            lens = torch.randint(6, CFG.seq_length, (2, 2), generator=g)
            T = int(lens.max())
            ids, mask = torch.zeros(2, 2, T, dtype=torch.long), torch.zeros(2, 2, T, dtype=torch.long)
            for b in range(2):
                for j in range(2):
                    n = int(lens[b, j])
                    ids[b, j, :n] = torch.randint(1, CFG.vocab_size, (n,), generator=g)
                    mask[b, j, 4:n] = 1                             # the response after a 4-token prompt
            step.append(dict(input_ids=ids, loss_mask=mask, lengths=lens,
                             ref_logprobs=-20 - 10 * torch.rand(2, 2, generator=g), rewards=torch.full((2, 2), float("nan"))))
        out.append(step)
    return out

def objective(name:str):
    "(model builder, step batches, loss function) of an objective"
    if name == "reward":
        from nemotron_nb.reward import RewardModel, regression_loss_sum
        def build():
            torch.manual_seed(0)
            return RewardModel(build_model())
        return build, reward_batches(), regression_loss_sum
    from nemotron_nb.align.preference import PreferenceLoss, PreferenceConfig
    return build_model, dpo_batches(), PreferenceLoss(PreferenceConfig("dpo", beta=0.5, sft_weight=0.1))

def objective_reference(name:str)->list[dict]:
    "The plain single-process run of an objective: per-step loss, grad norm and statistics"
    build, data, loss_fn = objective(name)
    model = build()
    opt, out = optimizer(model.parameters()), []
    for step in data:
        opt.zero_grad()
        outs = [loss_fn(model, mb) for mb in step]
        n = sum(o[1] for o in outs)
        (sum(o[0] for o in outs) / n).backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        stats = {k: sum(float(o[2][k]) for o in outs) / n for k in (outs[0][2] if len(outs[0]) > 2 else {})}
        out.append(dict(loss=sum(o[0].item() for o in outs) / n, grad_norm=norm.item(), **stats))
    return out

def run_objective(mesh, name:str)->dict:
    build, data, loss_fn = objective(name)
    pm = parallelize(build(), mesh)
    opt = optimizer(pm.parameters())
    t0 = time.time()
    steps = [train_step(pm, opt, local_micro_batches(pm, step), loss_fn, max_grad_norm=1.0) for step in data]
    return dict(variant=name, steps=steps, seconds=round(time.time() - t0, 2), placements=placements(pm))

def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--layout", default="1,1,1", help="dp,pp,tp")
    ap.add_argument("--vp", type=int, default=1)
    ap.add_argument("--variants", default="base", help="parallelize variants of the LM objective, or 'reward', 'dpo'")
    ap.add_argument("--save"), ap.add_argument("--load")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    dp, pp, tp = map(int, a.layout.split(","))
    torch.set_num_threads(1)
    mesh = init_mesh(dp, pp, tp) if "RANK" in os.environ else None
    names = a.variants.split(",")
    recs = [run_objective(mesh, v) if v in ("reward", "dpo") else run_variant(mesh, v, a.vp, a.save if v == "base" else None, a.load)
            for v in names]
    if not dist.is_initialized() or dist.get_rank() == 0:
        refs = {True: reference(batches(True)), False: reference(batches(False))}
        for r in recs:
            if r["variant"] in ("reward", "dpo"):
                r["reference"] = objective_reference(r["variant"])
                stats = [k for k in r["reference"][0] if k not in ("loss", "grad_norm")]
                r["max_stat_diff"] = max([abs(s[k] - q[k]) for s, q in zip(r["steps"], r["reference"]) for k in stats] or [0])
                r["eval_loss_diff"] = 0.0
            else:
                rr, r["reference_eval_loss"] = refs[r["variant"] != "unpacked"]
                r["reference"] = rr[r["first_step"]:]
                r["eval_loss_diff"] = abs(r["eval_loss"] - r["reference_eval_loss"])
            r["max_loss_diff"] = max(abs(s["loss"] - q["loss"]) for s, q in zip(r["steps"], r["reference"]))
            r["max_grad_norm_diff"] = max(abs(s["grad_norm"] - q["grad_norm"]) for s, q in zip(r["steps"], r["reference"]))
        out = dict(layout=dict(dp=dp, pp=pp, tp=tp, vp=a.vp), world=dp * pp * tp, variants=recs)
        tmp = a.out + ".tmp"
        with open(tmp, "w") as f: json.dump(out, f, indent=1)
        os.replace(tmp, a.out)
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()

if __name__ == "__main__":
    main()
