"""Helpers of the adapter reference test (test_adapters.py): small random base models made by
transformers itself, per-token log-probs from transformers / peft and from `percetrain logprobs`.
"""
import json
from pathlib import Path

import numpy as np
import torch

from common import percetrain
from hf_models import VOCAB, load_model, make_model


def make_base(folder, arch, seed):
    """A 2-layer random base made by transformers (hf_models.make_model): llama with GQA and
    untied embeddings, or qwen3 with an explicit head_dim, q/k norms and tied embeddings; norms
    randomised there, initializer_range large enough for the log-probs to differ from uniform."""
    overrides = dict(initializer_range=0.2)
    if arch == "qwen3":
        overrides["tie_word_embeddings"] = True
    elif arch != "llama":
        raise ValueError(arch)
    make_model(arch, folder, seed=seed, **overrides)
    return Path(folder)


def load_peft(base_dir, adapter_dir):
    """PeftModel.from_pretrained on a freshly loaded base (peft changes the base in place)."""
    import peft

    return peft.PeftModel.from_pretrained(load_model(base_dir), str(adapter_dir)).eval()


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
