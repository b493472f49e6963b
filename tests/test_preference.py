"""Preference tuning: our DPO loss equals TRL's DPOTrainer loss on the same batch, the reference log-prob cache
survives a new process, and the `dpo` and `rpo` stage notebooks run end to end at toy size (RPO chaining its
references), reusing their pairs and cached reference log-probs on a rerun."""
import json, subprocess, sys, warnings
from pathlib import Path
import pytest, torch
from conftest import ROOT
from nemotron_nb.config import preset
from nemotron_nb.model import NemotronLM
from nemotron_nb.tokenizer import train_tokenizer
from nemotron_nb.reward import RewardModel
from nemotron_nb.align.preference import (dpo_loss, rpo_loss, encode_pairs, sequence_logprobs, reference_logprobs,
                                          record_key)
from nemotron_nb.files import read_jsonl

RECS = [dict(prompt=[{"role": "user", "content": f"What is {a} + {b}?"}], chosen=f"{a} + {b} = {a + b}.",
             rejected=f"I think {a} + {b} is {a + b + 2}, but I am not sure.", chosen_reward=3.0, rejected_reward=0.5)
        for a in range(3) for b in range(3)]

@pytest.fixture(scope="module")
def tok():
    import pydoc_data.topics
    texts = [v for _, v in sorted(pydoc_data.topics.topics.items())][:60]
    return train_tokenizer(texts + ["red blue green cat dog apple hammer 0 1 2 3 4 5 6 7 8 9"] * 3, vocab_size=700)

def model_dir(tok, path, seed, seq_length=128):
    torch.manual_seed(seed)
    NemotronLM(preset("tiny_gqa", vocab_size=tok.vocab_size, seq_length=seq_length)).save_pretrained(
        path, generation_config=dict(eos_token_id=tok.stop_ids, bos_token_id=tok.bos_id, pad_token_id=tok.pad_id))
    tok.save_pretrained(path)
    return path

def test_dpo_loss_equals_trl(tok, tmp_path):
    "TRL's DPOTrainer (sigmoid loss) on one of its batches: our dpo_loss on the log-probs it used agrees within 1e-6"
    trl = pytest.importorskip("trl")
    import datasets, transformers
    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    pol, ref = model_dir(tok, tmp_path / "pol", 1), model_dir(tok, tmp_path / "ref", 2)
    ds = datasets.Dataset.from_list([dict(prompt=r["prompt"], chosen=[{"role": "assistant", "content": r["chosen"]}],
                                          rejected=[{"role": "assistant", "content": r["rejected"]}]) for r in RECS])
    for beta in (0.05, 1.0):
        args = trl.DPOConfig(output_dir=str(tmp_path / "trl"), per_device_train_batch_size=3, beta=beta,
                             loss_type=["sigmoid"], report_to=[], use_cpu=True, save_strategy="no")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load = lambda d: transformers.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
            trainer = trl.DPOTrainer(model=load(pol), ref_model=load(ref), args=args, train_dataset=ds,
                                     processing_class=transformers.AutoTokenizer.from_pretrained(pol))
        seen = {}
        for name, m in (("policy", trainer.model), ("reference", trainer.ref_model)):
            m.forward = (lambda f, n: lambda *a, **k: seen.setdefault(n, f(*a, **k)))(m.forward, name)
        batch = next(iter(trainer.get_train_dataloader()))
        with torch.no_grad(): trl_loss = trainer.compute_loss(trainer.model, batch).item()
        pi, rf = (seen[n].log_probs.sum(1).double() for n in ("policy", "reference"))
        B = len(pi) // 2
        assert abs(dpo_loss(pi[:B], pi[B:], rf[:B], rf[B:], beta).item() - trl_loss) < 1e-6
        with torch.no_grad():
            ours, _ = sequence_logprobs(NemotronLM.from_pretrained(pol), batch["input_ids"], batch["completion_mask"])
        torch.testing.assert_close(ours, pi.float(), atol=1e-4 * pi.abs().max().item(), rtol=0)
    # TRL's tokenization of the pairs is ours (ids and response masks)
    rows = {(tuple(i), tuple(m)) for e in encode_pairs(tok, RECS, 128) for i, m in ((e[0], e[1]), (e[2], e[3]))}
    n = batch["attention_mask"].sum(-1).tolist()
    assert all((tuple(batch["input_ids"][k, :n[k]].tolist()), tuple(batch["completion_mask"][k, :n[k]].tolist()))
               in rows for k in range(len(n)))

def test_rpo_distances_are_symmetric_under_swapping_the_pair():
    "Swapping chosen and rejected (and their rewards) leaves every RPO distance unchanged; DPO has no rewards to swap"
    g = torch.Generator().manual_seed(0)
    pc, pr, rc, rr = (torch.randn(6, generator=g) * 3 for _ in range(4))
    z = torch.zeros(6)
    for d in ("bwd_kl", "fwd_kl", "sq"):
        torch.testing.assert_close(rpo_loss(pc, pr, z, z, rc, rr, 0.7, 1.3, d),
                                   rpo_loss(pr, pc, z, z, rr, rc, 0.7, 1.3, d))
    assert not torch.isclose(dpo_loss(pc, pr, z, z), dpo_loss(pr, pc, z, z))

def test_reference_cache_is_reused_by_a_new_process(tok, tmp_path):
    "Reference log-probs written by one process are read by another without loading the reference model"
    ref = model_dir(tok, tmp_path / "ref", 0)
    cache = tmp_path / "data" / "ref.jsonl"
    lp = reference_logprobs(ref, RECS, cache)
    code = f"""
import json, torch
from unittest import mock
from nemotron_nb.model import NemotronLM
from nemotron_nb.align.preference import reference_logprobs
recs = json.loads(open({str(tmp_path / 'recs.json')!r}).read())
with mock.patch.object(NemotronLM, "from_pretrained", side_effect=AssertionError("reference loaded")):
    print(json.dumps(reference_logprobs({str(ref)!r}, recs, {str(cache)!r}).tolist()))
"""
    (tmp_path / "recs.json").write_text(json.dumps(RECS))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert torch.tensor(json.loads(out.stdout)).tolist() == lp.tolist()
    assert {r["key"] for r in read_jsonl(cache)} == {record_key(r) for r in RECS}

def test_stage_notebooks_run(tok, tmp_path):
    "nbs/stages/dpo.ipynb then rpo.ipynb at toy size; a rerun of rpo reuses its pairs and the reference cache"
    import papermill as pm
    sft = model_dir(tok, tmp_path / "sft", 0)
    torch.manual_seed(0)
    rm = RewardModel(NemotronLM(preset("tiny_gqa", vocab_size=tok.vocab_size, seq_length=128)), tok)
    rm.save_pretrained(tmp_path / "rm")
    common = dict(reward_model_dir=str(tmp_path / "rm"), prompts=24, responses_per_prompt=2, max_tokens=6,
                  heldout_prompts=6, global_batch=4, micro_batch=2, warmup_steps=0)
    def run(name, **params):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pm.execute_notebook(str(ROOT / "nbs" / "stages" / f"{name}.ipynb"),
                                str(tmp_path / f"{name}.executed.ipynb"), kernel_name="python3",
                                parameters=dict(**common, **params), progress_bar=False)
        return json.loads((tmp_path / name / "metrics.json").read_text())
    m = run("dpo", out_dir=str(tmp_path / "dpo"), sft_model_dir=str(sft))
    assert m["pairs"] > 0 and set(m["heldout_accuracy"]) == {"sft", "dpo"}
    assert (tmp_path / "dpo" / "model" / "model.safetensors").exists()
    assert (tmp_path / "dpo" / "data" / "ref_logprobs.jsonl").exists()
    m = run("rpo", out_dir=str(tmp_path / "rpo"), model_dir=str(tmp_path / "dpo" / "model"), iterations=2)
    # the start as given; the stage's own iterations relative to its directory (they move with a swapped-in rerun)
    assert m["references"] == [str(tmp_path / "dpo" / "model"), "iteration_1/model"]
    assert (tmp_path / "rpo" / m["references"][1] / "model.safetensors").exists()
    assert set(m["heldout"]) == {"start", "rpo_1", "rpo_2"}
    assert (tmp_path / "rpo" / "model" / "tokenizer.model").exists()
    cache = read_jsonl(tmp_path / "rpo" / "data" / "ref_logprobs.jsonl")
    assert len({r["ref_model"] for r in cache}) == 2
    before = (tmp_path / "rpo" / "data" / "pairs_1.jsonl").read_text()
    run("rpo", out_dir=str(tmp_path / "rpo"), model_dir=str(tmp_path / "dpo" / "model"), iterations=2)
    assert (tmp_path / "rpo" / "data" / "pairs_1.jsonl").read_text() == before
    assert len(read_jsonl(tmp_path / "rpo" / "data" / "ref_logprobs.jsonl")) == len(cache)    # nothing recomputed
