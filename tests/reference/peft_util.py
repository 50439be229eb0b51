"""Helpers of the adapter reference test (test_adapters.py): small random base models made by
transformers itself, per-token log-probs from transformers / peft and from `percetrain logprobs`.
"""
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from common import ROOT, percetrain

# The demo tokenizer (4,000 pieces): percetrain reads a tokenizer from the model folder even for
# --ids, and `train` tokenises with it, so the bases have its vocabulary size.
TOKENIZER_DIR = ROOT / "data" / "tokenizer"
VOCAB = 4000


def make_base(folder, arch, seed):
    """A 2-layer random `arch` (llama: GQA, untied embeddings; qwen3: explicit head_dim, q/k norms,
    tied embeddings) made with from_config + save_pretrained (safetensors), with the demo
    tokenizer's files beside it. Norm weights are drawn away from 1 so that a norm applied in the
    wrong place shows; initializer_range is large enough for the log-probs to differ from uniform."""
    import transformers

    torch.manual_seed(seed)
    common = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  initializer_range=0.2, bos_token_id=1, eos_token_id=2, rms_norm_eps=1e-6)
    if arch == "llama":
        config = transformers.LlamaConfig(**common, tie_word_embeddings=False)
    elif arch == "qwen3":
        config = transformers.Qwen3Config(**common, head_dim=16, tie_word_embeddings=True)
    else:
        raise ValueError(arch)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="eager")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    folder = Path(folder)
    model.save_pretrained(folder, safe_serialization=True)
    for name in ("tokenizer.model", "tokenizer_config.json"):
        shutil.copy(TOKENIZER_DIR / name, folder / name)
    return folder


def load_base(folder):
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager")
    return model.eval()


def load_peft(base_dir, adapter_dir):
    """PeftModel.from_pretrained on a freshly loaded base (peft changes the base in place)."""
    import peft

    return peft.PeftModel.from_pretrained(load_base(base_dir), str(adapter_dir)).eval()


def model_logprobs(model, ids):
    """log P(ids[t] | ids[<t]) for t >= 1, float64 numpy."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    logp = torch.log_softmax(logits[:-1], dim=-1)
    return logp.gather(1, torch.tensor(ids[1:]).unsqueeze(1)).squeeze(1).numpy()


def percetrain_logprobs(model_dir, ids, adapter=None):
    args = ["logprobs", "--model", model_dir, "--ids", ",".join(map(str, ids)), "--json"]
    if adapter is not None:
        args += ["--adapter", adapter]
    tokens = json.loads(percetrain(*args).stdout)["tokens"]
    if [t["id"] for t in tokens] != list(ids):
        raise RuntimeError(f"percetrain logprobs scored other ids: {[t['id'] for t in tokens]}")
    return np.array([t["logprob"] for t in tokens[1:]], dtype=np.float64)


def random_ids(n, seed):
    g = torch.Generator().manual_seed(seed)
    return [1] + torch.randint(3, VOCAB, (n - 1,), generator=g).tolist()
