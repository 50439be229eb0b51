"""Small random models made by transformers itself, for the reference tests: one config per case
(llama with GQA, tied and untied embeddings, llama3 RoPE scaling; mistral with a sliding window;
qwen2 with q/k/v biases; qwen3 with an explicit head_dim and q/k norms), saved with
save_pretrained as safetensors together with the demo tokenizer (percetrain reads a model folder's
tokenizer), and the transformers side of the comparisons: log-probs of a padded batch and the
gradients of the weighted cross-entropy."""
import shutil
from pathlib import Path

import torch

from common import ROOT

# The demo tokenizer (4,000 pieces, <unk>/<s>/</s> = 0/1/2, no pad): every model's vocabulary.
TOKENIZER_DIR = ROOT / "data" / "tokenizer"
TOKENIZER_FILES = ("tokenizer.model", "tokenizer_config.json")
VOCAB = 4000

_COMMON = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
               rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2, initializer_range=0.15,
               tie_word_embeddings=False, attention_dropout=0.0)

# Case name -> (model_type, config keywords on top of _COMMON).
CASES = {
    "llama": ("llama", dict(rope_theta=10000.0)),
    "llama_tied": ("llama", dict(tie_word_embeddings=True, rope_theta=10000.0)),
    # head_dim 16: eight frequency bands. With theta 5e5 and original length 8 (low/high
    # wavelength bounds 8 and 2) the first band is smoothed and the others are scaled, so a
    # reader that misses the scaling (or theta) gets different logits.
    "llama3": ("llama", dict(num_attention_heads=2, num_key_value_heads=1,
                             rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 4.0,
                                              "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                              "original_max_position_embeddings": 8})),
    "mistral": ("mistral", dict(sliding_window=4, rope_theta=10000.0)),
    "qwen2": ("qwen2", dict(rope_theta=1000000.0)),
    "qwen3": ("qwen3", dict(head_dim=16, rope_theta=1000000.0)),
}


def _config(arch, **overrides):
    from transformers import AutoConfig

    model_type, extra = CASES[arch]
    kwargs = dict(_COMMON, **extra)
    kwargs.update(overrides)
    if "rope_theta" in kwargs and "rope_parameters" not in kwargs:
        kwargs["rope_parameters"] = {"rope_type": "default", "rope_theta": kwargs.pop("rope_theta")}
    return AutoConfig.for_model(model_type, **kwargs)


def make_model(arch, out_dir, seed=0, **overrides):
    """Writes a random `arch` model (a key of CASES; config keywords in `overrides`) to `out_dir`
    with transformers' from_config + save_pretrained (safetensors) and the demo tokenizer files.
    Norm weights and biases are randomised too (transformers starts them at 1 and 0, which would
    hide a norm or bias that is read wrongly or not at all). Returns the transformers model (fp32,
    eval mode)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    config = _config(arch, **overrides)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="eager")
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.copy_(1.0 + 0.5 * torch.randn(param.shape, generator=generator))
            elif name.endswith(".bias"):
                param.copy_(0.5 * torch.randn(param.shape, generator=generator))
    model.eval()
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
    for name in TOKENIZER_FILES:
        shutil.copy(TOKENIZER_DIR / name, out_dir / name)
    return model


def load_model(folder):
    """transformers' AutoModelForCausalLM.from_pretrained, fp32, eager attention, eval mode."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    return model


def random_rows(lengths, seed, low=3, high=VOCAB):
    """Lists of random token ids (no special ids), one per length."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(low, high, (n,), generator=generator).tolist() for n in lengths]


def pad_right(rows, pad_id=0):
    """Right-padded ids and attention mask [B, T] (as percetrain's training batches pad)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, row in enumerate(rows):
        ids[b, :len(row)] = torch.tensor(row)
        mask[b, :len(row)] = 1
    return ids, mask


def next_token_logprobs(model, ids, mask):
    """log_softmax of the logits at each position, taken at the next token: [B, T-1]
    (meaningless where position t or t+1 is padding)."""
    logits = model(input_ids=ids, attention_mask=mask).logits.float()
    return torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)


def row_logprobs(model, rows, padded=True):
    """Per row, the log-probs of its tokens after the first: from one right-padded batch forward
    with its attention mask (padded=True) or each row run alone."""
    with torch.no_grad():
        if padded:
            ids, mask = pad_right(rows)
            lp = next_token_logprobs(model, ids, mask)
            return [lp[b, :len(r) - 1].tolist() for b, r in enumerate(rows)]
        out = []
        for r in rows:
            ids = torch.tensor([r])
            out.append(next_token_logprobs(model, ids, torch.ones_like(ids))[0].tolist())
        return out


def loss_gradients(model, rows, weights=None):
    """-(1/n) sum_i w_i log p_i over every token after the first of every row (n tokens), on
    one right-padded batch; weights: one list per row (None: all 1). Returns (loss, {name: grad})."""
    model.zero_grad(set_to_none=True)
    ids, mask = pad_right(rows)
    lp = next_token_logprobs(model, ids, mask)
    w = torch.zeros_like(lp)
    for b, r in enumerate(rows):
        w[b, :len(r) - 1] = torch.tensor(weights[b], dtype=w.dtype) if weights else 1.0
    n = sum(len(r) - 1 for r in rows)
    loss = -(w * lp).sum() / n
    loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return loss.item(), grads
