"""percetrain's models against transformers (fp32, CPU), on small random models that transformers
itself makes (from_config + save_pretrained, safetensors; hf_models.py): llama with GQA (tied and
untied embeddings, llama3 RoPE scaling), mistral with a sliding window shorter than the sequence,
qwen2 with random q/k/v biases, qwen3 with an explicit head_dim and random q/k norms.

1. `percetrain logprobs` equals transformers' log_softmax of the logits at the next token
   (<= 1e-5): one row without padding, and three rows as one right-padded batch (the padding
   training and score use) against transformers on the same padded batch with its attention mask
   and on each row alone.
2. `percetrain train` (2 steps) writes a final/ that AutoModelForCausalLM.from_pretrained loads,
   with the logits percetrain gives for it (<= 1e-5), and weights that moved.
3. One step's gradients (`logprobs --loss-grad`) of CE and of PerCE's loss with fixed weights,
   -(1/n) sum_i w_i log p_i over the n scored tokens, equal torch autograd on the transformers
   model to 1e-4 of each tensor's largest gradient.
"""
import json

from common import Checks, Workdir, percetrain, read_jsonl, skip, ROOT

try:
    import torch
    import transformers
    from safetensors import safe_open
except ImportError as e:
    skip(f"{e.name} is not installed: create the reference environment (.venv) as the README's setup says")

import hf_models

LOGPROB_TOL = 1e-5
GRAD_TOL = 1e-4  # relative to the tensor's largest |gradient|
ROWS = [12, 9, 5]  # lengths: longer than mistral's sliding window (4); two rows get padding
TRAINED = ("llama_tied", "llama3", "qwen3")

# Parameters whose gradients are compared, by case (tied models have no lm_head).
COMMON_GRADS = ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
                "model.layers.0.self_attn.k_proj.weight", "model.layers.1.self_attn.v_proj.weight",
                "model.layers.1.mlp.down_proj.weight", "model.layers.0.input_layernorm.weight",
                "model.norm.weight"]
EXTRA_GRADS = {
    "qwen2": ["model.layers.0.self_attn.q_proj.bias", "model.layers.0.self_attn.k_proj.bias",
              "model.layers.1.self_attn.v_proj.bias"],
    "qwen3": ["model.layers.0.self_attn.q_norm.weight", "model.layers.1.self_attn.k_norm.weight"],
}


def ids_args(rows):
    return [a for r in rows for a in ("--ids", ",".join(map(str, r)))]


def percetrain_logprobs(folder, rows, *extra):
    """Per row, percetrain's log-probs of the tokens after the first (one JSON line per row)."""
    out = percetrain("logprobs", "--model", folder, "--json", *ids_args(rows), *extra).stdout
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [[t["logprob"] for t in line["tokens"][1:]] for line in lines]


def flat(rows_of_values):
    return [v for row in rows_of_values for v in row]


def read_gradients(path):
    with safe_open(str(path), "pt") as f:
        return f.metadata(), {k: f.get_tensor(k) for k in f.keys()}


def check_logprobs(checks, case, folder, model, rows):
    single = percetrain_logprobs(folder, rows[:1])
    checks.close(f"{case}: logprobs, one row without padding", flat(single),
                 flat(hf_models.row_logprobs(model, rows[:1], padded=False)), LOGPROB_TOL)
    batch = percetrain_logprobs(folder, rows)
    checks.close(f"{case}: logprobs, right-padded batch of {len(rows)} vs transformers on the padded batch",
                 flat(batch), flat(hf_models.row_logprobs(model, rows, padded=True)), LOGPROB_TOL)
    checks.close(f"{case}: logprobs, right-padded batch of {len(rows)} vs transformers on each row alone",
                 flat(batch), flat(hf_models.row_logprobs(model, rows, padded=False)), LOGPROB_TOL)


def check_gradients(checks, case, folder, model, rows, work):
    generator = torch.Generator().manual_seed(7)
    # PerCE weights lie in [clip_min, clip_max] = [0.8, 5]; fixed here instead of from PIR.
    weights = [(0.8 + 4.2 * torch.rand(len(r) - 1, generator=generator, dtype=torch.float64)).tolist()
               for r in rows]
    for label, w in (("ce", None), ("perce fixed weights", weights)):
        out = work / f"{case}-{label.split()[0]}-grad.safetensors"
        extra = ["--loss-grad", out]
        if w:
            extra += [a for row in w for a in ("--weights", ",".join(repr(x) for x in row))]
        percetrain("logprobs", "--model", folder, *ids_args(rows), *extra)
        meta, got = read_gradients(out)
        # The weights percetrain used are float32; give autograd the same.
        w32 = [torch.tensor(row, dtype=torch.float32).tolist() for row in w] if w else None
        loss, want = hf_models.loss_gradients(model, rows, w32)
        checks.close(f"{case} {label}: loss", [float(meta["loss"])], [loss], 0.0, 1e-6)
        checks.equal(f"{case} {label}: gradient names", sorted(got), sorted(want))
        names = COMMON_GRADS + (["lm_head.weight"] if "lm_head.weight" in want else []) + EXTRA_GRADS.get(case, [])
        for name in names:
            if name not in got or name not in want:
                checks.true(f"{case} {label}: grad {name}", False, "absent")
                continue
            scale = want[name].abs().max().item()
            checks.close(f"{case} {label}: grad {name} / max|ref| ({scale:.3g})", (got[name] / scale).numpy(),
                         (want[name] / scale).numpy(), GRAD_TOL)


def check_training(checks, case, folder, rows, work):
    data = work / "train.jsonl"
    if not data.exists():
        with open(ROOT / "data" / "demo" / "train.jsonl", encoding="utf-8") as src:
            data.write_text("".join(src.readline() for _ in range(4)), encoding="utf-8")
    run = work / f"run-{case}"
    job = {
        "model": {"path": str(folder), "device": "cpu", "dtype": "float32"},
        "tokenizer": {"path": str(folder)},
        "data": {"train_file": str(data), "preset": "longlamp_product_review", "retrieval": "bm25", "top_k": 1,
                 "max_length": 128},
        "objective": {"name": "perce"},
        "train": {"lr": 1e-2, "schedule": "constant", "batch_size": 2, "micro_batch_size": 2, "max_steps": 2,
                  "seed": 1, "log_every": 1},
        "output": {"dir": str(run)},
    }
    config = work / f"job-{case}.json"
    config.write_text(json.dumps(job, indent=2), encoding="utf-8")
    percetrain("train", "--config", config)
    final = run / "final"
    trained = hf_models.load_model(final)
    ours = percetrain_logprobs(final, rows)
    checks.close(f"{case}: train final/ loaded by transformers, logprobs of a padded batch",
                 flat(ours), flat(hf_models.row_logprobs(trained, rows, padded=True)), LOGPROB_TOL)
    before = percetrain_logprobs(folder, rows)
    moved = max(abs(a - b) for a, b in zip(flat(ours), flat(before)))
    checks.true(f"{case}: training changed the model", moved > 1e-3, f"largest log-prob change {moved:.3g}")
    metrics = read_jsonl(run / "metrics.jsonl")
    checks.true(f"{case}: two training steps logged", sum(1 for m in metrics if "loss" in m) == 2,
                f"{len(metrics)} metrics lines")


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    checks = Checks("models against transformers")
    rows = hf_models.random_rows(ROWS, seed=1)
    with Workdir("models") as work:
        work = work.resolve()  # job configs resolve relative paths against their own folder
        for index, case in enumerate(hf_models.CASES):
            folder = work / case
            model = hf_models.make_model(case, folder, seed=10 * index)
            check_logprobs(checks, case, folder, model, rows)
            check_gradients(checks, case, folder, model, rows, work)
            if case in TRAINED:
                check_training(checks, case, folder, rows, work)
    checks.finish()


if __name__ == "__main__":
    main()
