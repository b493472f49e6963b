"""SFT: the packed loss is exactly the per-conversation loss on assistant tokens; a rerun resumes; the model
directory's generation config stops at a turn's end for transformers; the two stage notebooks chain at toy size."""
import json, sysconfig, warnings
from pathlib import Path
import pytest, torch
import torch.nn.functional as F
from conftest import ROOT
from nemotron_nb.config import preset
from nemotron_nb.model import NemotronLM
from nemotron_nb.tokenizer import train_tokenizer
from nemotron_nb.train import lm_loss_sum
from nemotron_nb.align.sft import make_general_tasks, sft_dataset, save_chat_model, run_sft, sft_stage

STDLIB = Path(sysconfig.get_paths()["stdlib"])
MODULES = ["textwrap.py", "shlex.py", "fnmatch.py", "glob.py", "string.py", "bisect.py", "heapq.py", "colorsys.py"]

@pytest.fixture(scope="module")
def tok():
    import pydoc_data.topics
    texts = [v for _, v in sorted(pydoc_data.topics.topics.items())][:60] + [(STDLIB / m).read_text() for m in MODULES]
    return train_tokenizer(texts, vocab_size=800)

@pytest.fixture(scope="module")
def base_dir(tok, tmp_path_factory):
    d = tmp_path_factory.mktemp("base") / "model"
    torch.manual_seed(0)
    save_chat_model(NemotronLM(preset("tiny_gqa", vocab_size=tok.vocab_size, seq_length=256)), tok, d)
    return d

def test_packed_loss_is_per_conversation_assistant_loss(tok):
    "Summed loss of packed rows == sum over conversations, each alone, of cross-entropy on its assistant tokens"
    torch.manual_seed(0)
    model = NemotronLM(preset("tiny_gqa", vocab_size=tok.vocab_size, seq_length=256)).eval()
    recs = make_general_tasks(30, seed=5, two_turn_share=0.5, system_share=0.5)
    data = sft_dataset(recs, tok, seq_len=256)
    assert data.stats["packed"] == 30 and data.stats["rows"] < 30
    with torch.no_grad():
        packed = sum(lm_loss_sum(model, {k: v[None] for k, v in data[i].items()})[0].item() for i in range(len(data)))
        alone, count = 0.0, 0
        for r in recs:
            ids, mask = tok.encode_chat(r["messages"])
            logits = model(torch.tensor([ids]))[0]                            # (T, vocab)
            target = torch.tensor(ids[1:])
            keep = torch.tensor(mask[1:]).bool()
            alone += F.cross_entropy(logits[:-1][keep], target[keep], reduction="sum").item()
            count += int(keep.sum())
    assert data.stats["trained_tokens"] == count
    assert abs(packed - alone) < 1e-3 * count, (packed, alone)

def test_rerun_resumes_and_generation_config(tok, base_dir, tmp_path):
    from transformers import GenerationConfig
    recs = make_general_tasks(40, seed=1)
    st = sft_stage("tiny", "general", epochs=1, global_batch=4, micro_batch=4)
    first = run_sft(base_dir, recs, st, tmp_path / "run", eval_records=recs[:8])
    again = run_sft(base_dir, recs, st, tmp_path / "run", eval_records=recs[:8])
    assert again["log"] == first["log"] and first["log"][-1]["step"] == first["train_config"]["steps"]
    gc = GenerationConfig.from_pretrained(tmp_path / "run" / "model")
    assert gc.eos_token_id == tok.stop_ids and gc.pad_token_id == tok.pad_id

def test_stage_notebooks_chain(tok, base_dir, tmp_path):
    "sft_code then sft_general at toy size: models, records and metrics.json, a share of the code records mixed in"
    import papermill as pm
    corpus = tmp_path / "corpus"
    for split, mods in (("train", MODULES[:6]), ("heldout", MODULES[6:])):
        (corpus / "code_python").mkdir(parents=True, exist_ok=True)
        (corpus / "code_python" / f"{split}.jsonl").write_text(
            "".join(json.dumps(dict(text=(STDLIB / m).read_text(), source="code_python")) + "\n" for m in mods))
    (corpus / "manifest.json").write_text(json.dumps(dict(sources={"code_python": {}})))
    run = lambda nb, **p: pm.execute_notebook(str(ROOT / "nbs" / "stages" / f"{nb}.ipynb"),
                                              str(tmp_path / f"{nb}.ipynb"), kernel_name="python3", parameters=p,
                                              progress_bar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run("sft_code", out_dir=str(tmp_path / "sft_code"), model_dir=str(base_dir), corpus_dir=str(corpus),
            max_records=15, heldout_records=4, global_batch=4, micro_batch=4, max_new_tokens=16, save_every=0)
        code = json.loads((tmp_path / "sft_code" / "metrics.json").read_text())
        assert code["records"] == 15 and code["steps"] >= 1 and 0 <= code["pass_rate_after"] <= 1
        run("sft_general", out_dir=str(tmp_path / "sft_general"), model_dir=str(tmp_path / "sft_code" / "model"),
            code_records=str(tmp_path / "sft_code" / "data" / "train.jsonl"),
            code_heldout=str(tmp_path / "sft_code" / "data" / "heldout.jsonl"), train_tasks=60, heldout_tasks=12,
            epochs=1, code_fraction=0.2, global_batch=4, micro_batch=4, code_max_new_tokens=16, save_every=0)
    gen = json.loads((tmp_path / "sft_general" / "metrics.json").read_text())
    assert gen["code_records_mixed"] == round(0.2 * 15) and gen["records"] == 60 + gen["code_records_mixed"]
    assert set(gen["accuracy_after"]) >= {"add", "list", "all", "code"}
    for stage in ("sft_code", "sft_general"):
        names = {p.name for p in (tmp_path / stage / "model").iterdir()}
        assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.model"} <= names
