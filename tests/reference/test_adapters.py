"""LoRA adapters against peft: percetrain's trained adapters (final/ of a LoRA run and a per-user
adapter) load with PeftModel.from_pretrained and score as `percetrain logprobs --adapter` does;
adapters peft writes (non-zero B, with and without rsLoRA, all seven projections, alpha != r)
score in percetrain as in peft; `merge-adapter` equals merge_and_unload, weight by weight; the
adapter_config.json percetrain writes has what vLLM's loader reads, and `train` warns about a rank
vLLM does not serve.
"""
import json
import warnings

import numpy as np
import torch

from common import ROOT, Checks, Workdir, percetrain, skip

try:
    import peft
    import safetensors.torch
    import transformers
except ImportError as e:
    skip(f"{e.name} is not installed in the reference environment; bash scripts/setup.sh installs it")

from hf_models import load_model
from peft_util import load_peft, make_base, model_logprobs, percetrain_logprobs, random_ids

ALL_SEVEN = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LOGPROB_TOL = 1e-5
WEIGHT_TOL = 1e-6  # merged fp32 weights: W + s * B A computed in another order, ~1 ulp of the sum
VLLM_WARNING = "is not one of vLLM's --max-lora-rank values"

torch.set_num_threads(1)
transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
# peft 0.21.2 calls transformers' deprecated is_gradient_checkpointing; noise, not a finding.
warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
torch.manual_seed(0)
checks = Checks("adapters against peft " + peft.__version__)
ids = random_ids(24, seed=7)


def compare_adapter(name, base_dir, adapter_dir):
    """percetrain logprobs --adapter against PeftModel.from_pretrained on the same ids; returns how
    far the adapter moves the log-probs from the base's (a check that it does something)."""
    want = model_logprobs(load_peft(base_dir, adapter_dir), ids)
    got = percetrain_logprobs(base_dir, ids, adapter=adapter_dir)
    checks.close(f"{name}: log-probs, percetrain --adapter vs PeftModel", got, want, LOGPROB_TOL)
    return float(np.abs(want - model_logprobs(load_model(base_dir), ids)).max())


def check_moves(name, shift):
    # Far above the tolerance: otherwise the comparison could not tell an applied adapter from none.
    checks.true(f"{name}: the adapter changes the base's log-probs", shift > 1e-2,
                f"max |adapted - base| {shift:.3g} (needs > 0.01)")


def check_b_nonzero(name, adapter_dir):
    tensors = safetensors.torch.load_file(str(adapter_dir / "adapter_model.safetensors"))
    bs = [t for k, t in tensors.items() if ".lora_B." in k]
    smallest = min(float(t.abs().max()) for t in bs) if bs else 0.0
    checks.true(f"{name}: every lora_B trained away from zero", bs and smallest > 1e-3,
                f"{len(bs)} lora_B tensors, smallest max|B| {smallest:.3g} (needs > 1e-3)")


def check_vllm_config(name, adapter_dir, rank, alpha, targets):
    """The keys vLLM's PEFTHelper reads, with the types it expects."""
    c = json.loads((adapter_dir / "adapter_config.json").read_text())
    problems = []
    if not (type(c.get("r")) is int and c["r"] == rank):
        problems.append(f"r {c.get('r')!r} (want int {rank})")
    if not (type(c.get("lora_alpha")) in (int, float) and c["lora_alpha"] == alpha):
        problems.append(f"lora_alpha {c.get('lora_alpha')!r} (want number {alpha})")
    tm = c.get("target_modules")
    if not (isinstance(tm, list) and all(isinstance(t, str) for t in tm) and sorted(tm) == sorted(targets)):
        problems.append(f"target_modules {tm!r} (want a list of {sorted(targets)})")
    if "modules_to_save" not in c or c["modules_to_save"] is not None:
        problems.append(f"modules_to_save {c.get('modules_to_save', 'absent')!r} (want null)")
    if c.get("use_dora") is not False:
        problems.append(f"use_dora {c.get('use_dora', 'absent')!r} (want false)")
    if c.get("bias") != "none":
        problems.append(f"bias {c.get('bias', 'absent')!r} (want \"none\")")
    if c.get("peft_type") != "LORA" or type(c.get("use_rslora")) is not bool:
        problems.append(f"peft_type {c.get('peft_type')!r}, use_rslora {c.get('use_rslora')!r}")
    checks.true(f"{name}: adapter_config.json has what vLLM reads", not problems,
                "; ".join(problems) or f"r {c['r']}, lora_alpha {c['lora_alpha']}, {len(tm)} target_modules, "
                "modules_to_save null, use_dora false, bias none")


def check_warning(name, stderr, rank, expected):
    lines = [line for line in stderr.splitlines() if VLLM_WARNING in line]
    if expected:
        ok = len(lines) == 1 and lines[0].startswith(f"warning: LoRA rank {rank} ")
        detail = lines[0] if lines else "no warning on stderr"
    else:
        ok, detail = not lines, "no warning" if not lines else lines[0]
    checks.true(f"{name}: rank {rank} {'warns' if expected else 'does not warn'} about vLLM", ok, detail)


def check_merge(name, base_dir, adapter_dir, out_dir):
    """merge-adapter against peft's merge_and_unload: every tensor of the written folder, then the
    merged folder's log-probs in percetrain against the merged peft model."""
    percetrain("merge-adapter", "--model", base_dir, "--adapter", adapter_dir, "--out", out_dir)
    merged = load_peft(base_dir, adapter_dir).merge_and_unload()
    reference_dir = out_dir.parent / (out_dir.name + "-peft")
    merged.save_pretrained(reference_dir, safe_serialization=True)
    want = safetensors.torch.load_file(str(reference_dir / "model.safetensors"))
    got = safetensors.torch.load_file(str(out_dir / "model.safetensors"))
    checks.equal(f"{name}: merged tensor names", sorted(got), sorted(want))
    keys = sorted(set(got) & set(want))
    checks.close(f"{name}: merged weights, merge-adapter vs merge_and_unload ({len(keys)} tensors)",
                 np.concatenate([got[k].double().flatten().numpy() for k in keys]),
                 np.concatenate([want[k].double().flatten().numpy() for k in keys]), WEIGHT_TOL)
    base = safetensors.torch.load_file(str(base_dir / "model.safetensors"))
    changed = sum(not torch.equal(want[k], base[k]) for k in keys if k in base)
    checks.true(f"{name}: the merge changed weights", changed > 0, f"{changed} of {len(keys)} tensors differ from the base")
    checks.close(f"{name}: log-probs of the merged folder, percetrain vs merged peft model",
                 percetrain_logprobs(out_dir, ids), model_logprobs(merged, ids), LOGPROB_TOL)


def write_training_data(path):
    """Four demo reviews each of two users: enough for a LoRA run and a per-user run of a few steps."""
    taken = {}
    with open(ROOT / "data" / "demo" / "train.jsonl", encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if record["user"] in ("u00", "u01") and len(taken.setdefault(record["user"], [])) < 4:
                taken[record["user"]].append(line)
    path.write_text("".join(taken["u00"] + taken["u01"]), encoding="utf-8")


with Workdir("adapters") as work:
    llama = make_base(work / "llama", "llama", seed=0)
    qwen3 = make_base(work / "qwen3", "qwen3", seed=1)

    # 1. percetrain's own adapters: final/ of a LoRA run (r 8, all seven projections) and a
    # per-user adapter (r 4, rsLoRA, q/v); a high lr so that B moves well away from zero.
    write_training_data(work / "train.jsonl")
    job = {
        "model": {"path": str(llama), "device": "cpu", "dtype": "float32"},
        "tokenizer": {"path": str(ROOT / "data" / "tokenizer")},
        "data": {"train_file": str(work / "train.jsonl"), "preset": "longlamp_product_review",
                 "retrieval": "bm25", "top_k": 1, "max_length": 256},
        "objective": {"name": "perce"},
        "lora": {"rank": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["all-linear"]},
        "train": {"lr": 2e-2, "schedule": "constant", "batch_size": 4, "micro_batch_size": 4, "max_steps": 8,
                  "seed": 3, "log_every": 100, "save_every": 0, "keep_last": 1},
        "output": {"dir": str(work / "run")},
    }
    (work / "job.json").write_text(json.dumps(job, indent=2))
    run = percetrain("train", "--config", work / "job.json")
    final = work / "run" / "final"
    check_b_nonzero("train final/", final)
    check_moves("train final/", compare_adapter("train final/ (r 8, alpha 16, all-linear)", llama, final))
    check_vllm_config("train final/", final, 8, 16, ALL_SEVEN)
    check_warning("train", run.stderr, 8, expected=False)

    per_user = percetrain("train", "--config", work / "job.json", "--set", "lora.per_user=true",
                          "--set", "lora.rank=4", "--set", "lora.alpha=6", "--set", "lora.use_rslora=true",
                          "--set", 'lora.target_modules=["q_proj","v_proj"]', "--set", "objective.name=ce",
                          "--set", f"output.dir={work / 'per-user'}")
    user_dir = work / "per-user" / "adapters" / "u01"
    check_b_nonzero("per-user adapters/u01", user_dir)
    check_moves("per-user adapters/u01",
                compare_adapter("per-user adapters/u01 (r 4, alpha 6, rsLoRA, q/v)", llama, user_dir))
    check_vllm_config("per-user adapters/u01", user_dir, 4, 6, ["q_proj", "v_proj"])
    check_warning("train with lora.per_user", per_user.stderr, 4, expected=True)

    # 2. Adapters peft writes: all seven projections, alpha != r, random non-zero B.
    written = {}
    for base_name, base_dir, rslora in (("llama", llama, False), ("qwen3", qwen3, True), ("llama", llama, True)):
        name = f"peft-{base_name}-{'rslora' if rslora else 'lora'}"
        torch.manual_seed(11 + len(written))
        config = peft.LoraConfig(r=4, lora_alpha=12, target_modules=ALL_SEVEN, lora_dropout=0.0,
                                 use_rslora=rslora, task_type="CAUSAL_LM")
        model = peft.get_peft_model(load_model(base_dir), config)
        with torch.no_grad():
            for key, p in model.named_parameters():
                if ".lora_B." in key:
                    p.normal_(0.0, 0.2)
        model.save_pretrained(work / name)
        written[name] = (base_dir, work / name)
        check_moves(name, compare_adapter(f"{name} (r 4, alpha 12, seven projections)", base_dir, work / name))

    # 3. merge-adapter against merge_and_unload, for a trained adapter and peft-written ones.
    check_merge("merge train final/", llama, final, work / "merged-final")
    for name in ("peft-llama-lora", "peft-qwen3-rslora"):
        check_merge(f"merge {name}", *written[name], work / f"merged-{name}")

checks.finish()
