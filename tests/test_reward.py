"""The reward model reads the end-of-response token (never padding), is invariant to padding side and batch order,
saves/loads without pickle, fails clearly offline, and its stage notebook runs end to end at toy size."""
import json, os, subprocess, sys, warnings
from pathlib import Path
import pytest, torch
from conftest import ROOT
from nemotron_nb.config import preset
from nemotron_nb.model import NemotronLM
from nemotron_nb.tokenizer import train_tokenizer
from nemotron_nb.reward import (RewardModel, pad_batch, last_token_index, helpsteer_messages, ATTRIBUTES, HEAD_FILE,
                                REWARD_CONFIG)
from nemotron_nb.synthetic_ratings import synthetic_helpsteer

CONVS = [
    [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "2 + 3 = 5."}],
    [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "5."},
     {"role": "user", "content": "And 4 + 4?"}, {"role": "assistant", "content": "Let me add them. 4 + 4 = 8."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
     {"role": "assistant", "content": "Hello!"}],
    [{"role": "user", "content": "Explain the for statement."},
     {"role": "assistant", "content": "It iterates over the elements of a sequence, " * 6}],
]

@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    import pydoc_data.topics
    return train_tokenizer([v for _, v in sorted(pydoc_data.topics.topics.items())][:40], vocab_size=800)

@pytest.fixture(scope="module")
def rm(tok):
    torch.manual_seed(0)
    return RewardModel(NemotronLM(preset("tiny_gqa", vocab_size=tok.vocab_size, seq_length=256)), tok).eval()

def test_head_input_is_end_of_response_hidden_state(rm, tok):
    "The head's input, in a padded batch, is each conversation's own final hidden state at its end-of-response token"
    seqs = [rm.encode(c) for c in CONVS]
    assert {s[-1] for s in seqs} == {tok.turn_start_id}                  # every rendering ends with the marker
    seen = []
    hook = rm.head.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach().clone()))
    try:
        with torch.no_grad():
            alone = [rm.backbone(torch.tensor([s]))[0, -1] for s in seqs]  # (hidden,) each, no padding anywhere
            for side in ("right", "left"):
                ids, mask = pad_batch(seqs, tok.pad_id, side=side)
                assert (ids[torch.arange(len(seqs)), last_token_index(mask)] == tok.turn_start_id).all()
                seen.clear()
                rm(ids, mask)
                torch.testing.assert_close(seen[0], torch.stack(alone), atol=1e-5, rtol=1e-5)
    finally: hook.remove()

def test_scores_ignore_padding_side_padding_ids_and_batch_order(rm, tok):
    seqs = [rm.encode(c) for c in CONVS]
    with torch.no_grad():
        ref = torch.cat([rm(torch.tensor([s])) for s in seqs])
        for side in ("right", "left"):
            ids, mask = pad_batch(seqs, tok.pad_id, side=side)
            torch.testing.assert_close(rm(ids, mask), ref, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(rm(ids.masked_fill(mask == 0, 42), mask), ref, atol=1e-5, rtol=1e-5)
            ids, mask = pad_batch(seqs, tok.pad_id, side=side, length=max(map(len, seqs)) + 7)   # extra padding
            torch.testing.assert_close(rm(ids, mask), ref, atol=1e-5, rtol=1e-5)
        perm = [3, 1, 0, 2]
        ids, mask = pad_batch([seqs[i] for i in perm], tok.pad_id)
        torch.testing.assert_close(rm(ids, mask), ref[perm], atol=1e-5, rtol=1e-5)
    rev = rm.score(CONVS[::-1], batch_size=3)[::-1]
    for bs in (1, 2, 16):
        for a, b in zip(rm.score(CONVS, batch_size=bs), rev):
            assert a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-5 for k in a)

def test_last_token_matters_padding_does_not(rm, tok):
    base = rm.score(CONVS[:1])[0]
    other = [CONVS[0][0], {"role": "assistant", "content": "2 + 3 = 6."}]
    assert abs(rm.score([other])[0]["reward"] - base["reward"]) > 1e-6

def test_save_load_round_trip_without_pickle(rm, tmp_path):
    from safetensors.torch import load_file
    rm.save_pretrained(tmp_path / "rm")
    names = {p.name for p in (tmp_path / "rm").iterdir()}
    assert {"config.json", "model.safetensors", HEAD_FILE, REWARD_CONFIG, "tokenizer.model"} <= names
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)
    assert "lm_head.weight" not in load_file(str(tmp_path / "rm" / "model.safetensors"))
    rc = json.loads((tmp_path / "rm" / REWARD_CONFIG).read_text())
    assert rc["attributes"] == list(ATTRIBUTES) and rc["weights"]["verbosity"] == -0.33
    loaded = RewardModel.from_pretrained(tmp_path / "rm")
    for a, b in zip(loaded.score(CONVS), rm.score(CONVS)): assert all(abs(a[k] - b[k]) < 1e-6 for k in a)

def test_hub_offline_is_a_clear_error(tmp_path):
    code = "from nemotron_nb.reward import load_helpsteer2\nload_helpsteer2('nvidia/HelpSteer2')"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert r.returncode != 0 and "ConnectionError" in r.stderr and "pass a local JSONL or parquet file" in r.stderr

def test_stage_notebook_runs(tok, tmp_path):
    "nbs/stages/reward.ipynb at toy size: writes the reward model, metrics.json and eval.png"
    import papermill as pm
    base = tmp_path / "base"
    torch.manual_seed(0)
    NemotronLM(preset("tiny_gqa", vocab_size=tok.vocab_size, seq_length=256)).save_pretrained(base)
    tok.save_pretrained(base)
    out = tmp_path / "reward"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm.execute_notebook(str(ROOT / "nbs" / "stages" / "reward.ipynb"), str(tmp_path / "executed.ipynb"),
                            kernel_name="python3",
                            parameters=dict(out_dir=str(out), base_model_dir=str(base), steps=4, batch_tokens=400,
                                            train_prompts=40, val_prompts=8, pairs_per_subset=3, eval_every=2),
                            progress_bar=False)
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["attributes"]) == set(ATTRIBUTES) and 0 <= m["reasoning_accuracy"] <= 1
    assert (out / "eval.png").exists() and (out / "bradley_terry" / "model" / HEAD_FILE).exists()
    assert RewardModel.from_pretrained(out / "model").kind == "regression"
