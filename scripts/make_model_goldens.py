#!/usr/bin/python3
"""Writes golden data for the C++ decoder: tiny random Hugging Face-style causal LMs plus
log-probs, loss and gradients from an independent float64 reference written here in plain torch.

The reference follows the published semantics of Hugging Face transformers (modeling_llama.py,
modeling_mistral.py, modeling_qwen2.py, modeling_qwen3.py, modeling_rope_utils.py,
masking_utils.py); the code below is written from those semantics, not copied:

  * RMSNorm: y = w * (x / sqrt(mean(x^2) + eps)). HF computes the normalisation in float32 and
    casts back before multiplying by the weight; here everything is float64, so the casts are
    identities.
  * RoPE, "rotate_half" layout: for head dim d, inv_freq[k] = 1 / theta^(2k/d), k < d/2;
    angle[p, k] = p * inv_freq[k]; cos/sin are taken of cat(angle, angle) (length d), and
    x_rot = x * cos + rotate_half(x) * sin with rotate_half(x) = cat(-x[d/2:], x[:d/2]).
    The rotary dim is the attention head_dim (explicit config.head_dim when present).
  * llama3 rope scaling (HF _compute_llama3_parameters): wavelen = 2*pi / inv_freq;
    wavelen < orig/high_freq_factor: unchanged; wavelen > orig/low_freq_factor: inv_freq/factor;
    otherwise s = (orig/wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor) and
    inv_freq' = (1 - s) * inv_freq / factor + s * inv_freq. Attention factor stays 1.
  * GQA: query head h reads key/value head h // (num_heads / num_kv_heads) (HF repeat_kv).
  * Attention scores scaled by head_dim ** -0.5; o_proj input size is num_heads * head_dim.
  * Qwen2: q/k/v projections have biases (o_proj has none). Qwen3: q_norm/k_norm are RMSNorms
    over head_dim applied per head right after the projection and BEFORE RoPE.
  * MLP: down(silu(gate(x)) * up(x)). Pre-norm residual blocks, final norm, lm_head (the
    embedding matrix when tie_word_embeddings).
  * Mask: key j is visible from query i iff j <= i and attention_mask[b, j] == 1 and, for
    sliding-window models (mistral), i - j < sliding_window, i.e. the query sees itself and the
    sliding_window - 1 keys before it (sliding_window keys in all). Indices are positions in
    the padded array (HF's q_idx/kv_idx = cache positions), not position_ids. Source:
    transformers src/transformers/masking_utils.py, sliding_window_overlay
    (kv_idx > q_idx - sliding_window) AND-ed with causal_mask_function (kv_idx <= q_idx);
    the older mistral _prepare_4d_causal_attention_mask_with_cache_position masks
    j > i or j <= i - sliding_window, the same rule. (HF's flash-attention path used a window
    one key wider until PR #40163, issue #39408; eager/sdpa never did.)
    Padding only masks keys; query rows that see no key at all (left-pad positions) produce
    garbage in HF and are never read here.
  * position_ids = cumsum(attention_mask) - 1 with pad positions set to 1 (HF generate).

Weights are drawn in float64 from numpy's PCG64 with a fixed seed, rounded to float32 and
stored as F32; the reference computes in float64 from exactly those float32 values, so a
float32 C++ forward should match the goldens to ~1e-5.

Usage: /usr/bin/python3 scripts/make_model_goldens.py [--out tests/golden/models]
Deterministic: two runs write byte-identical files. See tests/golden/models/README.md.
"""

import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch

torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)

DT = torch.float64
BATCH, SEQ = 3, 12
LEFT_PAD, RIGHT_PAD = 4, 3  # row 1: first 4 positions pad; row 2: last 3 positions pad

# ---------------------------------------------------------------------------------------------
# Cases. Dims are chosen so every folder stays small (weights F32 + F64 gradients).

COMMON = {
    "attention_dropout": 0.0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "hidden_act": "silu",
    "initializer_range": 0.02,
    "torch_dtype": "float32",
    "use_cache": True,
}

CASES = [
    ("llama", 101, {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": 96, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 128, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
        "rope_scaling": None, "tie_word_embeddings": False, "attention_bias": False,
        "mlp_bias": False, "pretraining_tp": 1,
        # no head_dim: Llama-2 configs derive it as hidden_size / num_attention_heads
    }),
    ("llama3", 202, {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": 96, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16,
        "max_position_embeddings": 512, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
        "tie_word_embeddings": True, "attention_bias": False, "mlp_bias": False,
        "pretraining_tp": 1,
    }),
    ("mistral", 303, {
        # shaped like Mistral-7B-v0.1's config.json: no head_dim, no rope_scaling
        "architectures": ["MistralForCausalLM"], "model_type": "mistral",
        "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "sliding_window": 4, "tie_word_embeddings": False,
    }),
    ("qwen2", 404, {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
        "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 128, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
        "rope_scaling": None, "tie_word_embeddings": True,
        "use_sliding_window": False, "sliding_window": 128, "max_window_layers": 2,
    }),
    ("qwen3", 505, {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
        "vocab_size": 64, "hidden_size": 32, "intermediate_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
        "max_position_embeddings": 128, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
        "rope_scaling": None, "tie_word_embeddings": False, "attention_bias": False,
        "use_sliding_window": False, "sliding_window": None, "max_window_layers": 2,
    }),
]


def head_dim_of(cfg):
    return cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]


def window_of(cfg):
    """Sliding window in effect for every layer, or None (HF: mistral always when set;
    qwen2/qwen3 only when use_sliding_window, and then only for layers >= max_window_layers,
    which with max_window_layers == num_hidden_layers is none)."""
    if cfg["model_type"] == "mistral":
        return cfg.get("sliding_window")
    if cfg.get("use_sliding_window"):
        raise NotImplementedError("per-layer sliding windows are not exercised here")
    return None


def has_qkv_bias(cfg):
    return cfg["model_type"] == "qwen2" or bool(cfg.get("attention_bias"))


def has_qk_norm(cfg):
    return cfg["model_type"] == "qwen3"


# ---------------------------------------------------------------------------------------------
# Parameters.

def make_params(cfg, seed):
    """Returns an ordered list of (HF name, float32 numpy array)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    H, V, I = cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"]
    nh, nkv, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], head_dim_of(cfg)

    def mat(rows, cols, std):
        return rng.standard_normal((rows, cols)) * std

    def norm_w(n):
        return 1.0 + 0.2 * rng.standard_normal(n)

    def bias(n):
        return 0.3 * rng.standard_normal(n)

    out = [("model.embed_tokens.weight", mat(V, H, 0.35))]
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        out.append((p + "input_layernorm.weight", norm_w(H)))
        out.append((p + "self_attn.q_proj.weight", mat(nh * hd, H, 0.25)))
        out.append((p + "self_attn.k_proj.weight", mat(nkv * hd, H, 0.25)))
        out.append((p + "self_attn.v_proj.weight", mat(nkv * hd, H, 0.25)))
        if has_qkv_bias(cfg):
            out.append((p + "self_attn.q_proj.bias", bias(nh * hd)))
            out.append((p + "self_attn.k_proj.bias", bias(nkv * hd)))
            out.append((p + "self_attn.v_proj.bias", bias(nkv * hd)))
        if has_qk_norm(cfg):
            out.append((p + "self_attn.q_norm.weight", norm_w(hd)))
            out.append((p + "self_attn.k_norm.weight", norm_w(hd)))
        out.append((p + "self_attn.o_proj.weight", mat(H, nh * hd, 0.2)))
        out.append((p + "post_attention_layernorm.weight", norm_w(H)))
        out.append((p + "mlp.gate_proj.weight", mat(I, H, 0.25)))
        out.append((p + "mlp.up_proj.weight", mat(I, H, 0.25)))
        out.append((p + "mlp.down_proj.weight", mat(H, I, 0.15)))
    out.append(("model.norm.weight", norm_w(H)))
    if not cfg["tie_word_embeddings"]:
        out.append(("lm_head.weight", mat(V, H, 0.3)))
    return [(n, a.astype(np.float32)) for n, a in out]


def grad_names(cfg):
    names = ["model.embed_tokens.weight",
             "model.layers.0.self_attn.q_proj.weight",
             "model.layers.0.self_attn.k_proj.weight",
             "model.layers.1.mlp.down_proj.weight",
             "model.norm.weight"]
    if not cfg["tie_word_embeddings"]:
        names.append("lm_head.weight")
    if has_qkv_bias(cfg):
        names.append("model.layers.0.self_attn.q_proj.bias")
    if has_qk_norm(cfg):
        names += ["model.layers.0.self_attn.q_norm.weight",
                  "model.layers.0.self_attn.k_norm.weight"]
    return names


# ---------------------------------------------------------------------------------------------
# Reference forward (float64).

def rope_bands(cfg):
    """inv_freq plus, for llama3 scaling, the band of each frequency (0 unchanged, 1 smoothed,
    2 divided by factor) and the boundary margins."""
    hd = head_dim_of(cfg)
    theta = float(cfg["rope_theta"])
    inv = [1.0 / theta ** (2.0 * k / hd) for k in range(hd // 2)]
    rs = cfg.get("rope_scaling")
    if rs is None:
        return torch.tensor(inv, dtype=DT), None
    kind = rs.get("rope_type", rs.get("type"))
    if kind != "llama3":
        raise NotImplementedError(kind)
    short_wl, long_wl = llama3_boundaries(rs)
    new, bands = zip(*(llama3_scale(f, rs) for f in inv))
    return torch.tensor(new, dtype=DT), (list(bands), [2.0 * math.pi / f for f in inv],
                                         short_wl, long_wl)


def llama3_boundaries(rs):
    orig = rs["original_max_position_embeddings"]
    return orig / rs["high_freq_factor"], orig / rs["low_freq_factor"]


def llama3_scale(f, rs):
    """(scaled inverse frequency, band): band 0 unchanged (wavelength < orig/high_freq_factor),
    2 divided by factor (wavelength > orig/low_freq_factor), 1 smoothed in between."""
    factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    orig = rs["original_max_position_embeddings"]
    short_wl, long_wl = llama3_boundaries(rs)
    wl = 2.0 * math.pi / f
    if wl < short_wl:
        return f, 0
    if wl > long_wl:
        return f / factor, 2
    s = (orig / wl - lo) / (hi - lo)
    return s * f + (1.0 - s) * f / factor, 1


def rms_norm(x, w, eps):
    return w * (x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps))


def rotate(x, cos, sin):
    half = x.shape[-1] // 2
    swapped = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + swapped * sin


def allowed_keys(cfg, attention_mask, window):
    """bool [B, T, T]: allowed[b, i, j] per the rule in the module docstring."""
    T = attention_mask.shape[1]
    i = torch.arange(T).view(T, 1)
    j = torch.arange(T).view(1, T)
    ok = j <= i
    if window is not None:
        ok = ok & (i - j < window)
    return ok.unsqueeze(0) & attention_mask.bool().unsqueeze(1)


def attention_vectorised(q, k, v, allowed, n_rep, kv_map):
    # q: [B, nh, T, hd], k/v: [B, nkv, T, hd]
    B, nh, T, hd = q.shape
    if kv_map == "block":
        idx = torch.arange(nh) // n_rep
    else:  # deliberately wrong mapping, used only by the sensitivity checks
        idx = torch.arange(nh) % k.shape[1]
    k, v = k[:, idx], v[:, idx]
    scores = q @ k.transpose(-1, -2) * hd ** -0.5
    # Rows with no visible key (queries on left padding) attend to everything; they are never
    # read, and this keeps them finite so no NaN reaches the backward pass.
    eff = allowed | ~allowed.any(dim=-1, keepdim=True)
    scores = scores.masked_fill(~eff.unsqueeze(1), float("-inf"))
    return torch.softmax(scores, dim=-1) @ v  # [B, nh, T, hd]


def attention_loop(q, k, v, attention_mask, window, n_rep):
    """Independent check: explicit per (row, head, query) loop, key list built from the rule,
    kv head h // n_rep indexed directly (no repeat)."""
    B, nh, T, hd = q.shape
    am = attention_mask.tolist()
    rows = []
    for b in range(B):
        heads = []
        for h in range(nh):
            kv = h // n_rep
            outs = []
            for i in range(T):
                keys = [j for j in range(T)
                        if j <= i and am[b][j] == 1 and (window is None or i - j < window)]
                if not keys:
                    outs.append(torch.zeros(hd, dtype=DT))
                    continue
                kk = k[b, kv, keys]  # [n, hd]
                s = (kk @ q[b, h, i]) / math.sqrt(hd)
                p = torch.exp(s - s.max())
                p = p / p.sum()
                outs.append(p @ v[b, kv, keys])
            heads.append(torch.stack(outs))
        rows.append(torch.stack(heads))
    return torch.stack(rows)


def forward(cfg, P, input_ids, attention_mask, position_ids, layers=None, loop=False,
            kv_map="block", qk_norm_after_rope=False, ignore_rope_scaling=False, drop_bias=False,
            window="config", lora=None):
    """Returns logits [B, T, V]. P maps HF names to float64 tensors. `lora` maps module paths
    (model.layers.0.self_attn.q_proj) to (A [r, in], B [out, r], scaling): the projection adds
    scaling * (x A^T) B^T to x W^T, PEFT's unmerged LoRA forward. The keyword switches other
    than `layers`/`loop`/`lora` are deliberate mistakes used by the sensitivity checks."""
    B, T = input_ids.shape
    nh, nkv, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], head_dim_of(cfg)
    n_rep = nh // nkv
    eps = cfg["rms_norm_eps"]
    win = window_of(cfg) if window == "config" else window
    n_layers = cfg["num_hidden_layers"] if layers is None else layers

    if ignore_rope_scaling:
        inv_freq, _ = rope_bands(dict(cfg, rope_scaling=None))
    else:
        inv_freq, _ = rope_bands(cfg)
    ang = position_ids.to(DT).unsqueeze(-1) * inv_freq  # [B, T, hd/2]
    ang = torch.cat([ang, ang], dim=-1).unsqueeze(1)  # [B, 1, T, hd]
    cos, sin = torch.cos(ang), torch.sin(ang)
    allowed = allowed_keys(cfg, attention_mask, win)

    def proj(x, path):
        out = x @ P[path + ".weight"].T
        if lora is not None and path in lora:
            a, b, scaling = lora[path]
            out = out + scaling * ((x @ a.T) @ b.T)
        return out

    x = P["model.embed_tokens.weight"][input_ids]  # [B, T, H]
    for l in range(n_layers):
        p = "model.layers.%d." % l
        y = rms_norm(x, P[p + "input_layernorm.weight"], eps)
        q = proj(y, p + "self_attn.q_proj")
        k = proj(y, p + "self_attn.k_proj")
        v = proj(y, p + "self_attn.v_proj")
        if has_qkv_bias(cfg) and not drop_bias:
            q = q + P[p + "self_attn.q_proj.bias"]
            k = k + P[p + "self_attn.k_proj.bias"]
            v = v + P[p + "self_attn.v_proj.bias"]
        q = q.view(B, T, nh, hd).transpose(1, 2)
        k = k.view(B, T, nkv, hd).transpose(1, 2)
        v = v.view(B, T, nkv, hd).transpose(1, 2)
        if has_qk_norm(cfg) and not qk_norm_after_rope:
            q = rms_norm(q, P[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, P[p + "self_attn.k_norm.weight"], eps)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        if has_qk_norm(cfg) and qk_norm_after_rope:
            q = rms_norm(q, P[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, P[p + "self_attn.k_norm.weight"], eps)
        if loop:
            a = attention_loop(q, k, v, attention_mask, win, n_rep)
        else:
            a = attention_vectorised(q, k, v, allowed, n_rep, kv_map)
        a = a.transpose(1, 2).reshape(B, T, nh * hd)
        x = x + proj(a, p + "self_attn.o_proj")
        y = rms_norm(x, P[p + "post_attention_layernorm.weight"], eps)
        g = proj(y, p + "mlp.gate_proj")
        u = proj(y, p + "mlp.up_proj")
        x = x + proj(torch.nn.functional.silu(g) * u, p + "mlp.down_proj")
    x = rms_norm(x, P["model.norm.weight"], eps)
    head = P["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else P["lm_head.weight"]
    return x @ head.T


def next_token_logprobs(logits, input_ids):
    lp = torch.log_softmax(logits[:, :-1], dim=-1)
    return lp.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)  # [B, T-1]


# ---------------------------------------------------------------------------------------------
# Inputs.

def make_inputs(cfg, seed):
    rng = np.random.Generator(np.random.PCG64(seed + 7))
    V = cfg["vocab_size"]
    ids = rng.integers(3, V, size=(BATCH, SEQ)).astype(np.int64)
    am = np.ones((BATCH, SEQ), dtype=np.int64)
    am[1, :LEFT_PAD] = 0
    am[2, SEQ - RIGHT_PAD:] = 0
    ids[am == 0] = 0
    pos = np.cumsum(am, axis=1) - 1
    pos[am == 0] = 1
    return torch.from_numpy(ids), torch.from_numpy(am), torch.from_numpy(pos)


def valid_targets(am):
    return (am[:, :-1] == 1) & (am[:, 1:] == 1)  # [B, T-1]


def unpadded_logprobs(cfg, P, ids, am):
    """Each row alone, without padding, laid out at the padded row's positions."""
    out = torch.zeros(BATCH, SEQ - 1, dtype=DT)
    for b in range(BATCH):
        cols = [t for t in range(SEQ) if am[b, t] == 1]
        assert cols == list(range(cols[0], cols[-1] + 1)), "padding must be at the ends"
        row = ids[b, cols].unsqueeze(0)
        n = row.shape[1]
        logits = forward(cfg, P, row, torch.ones(1, n, dtype=torch.int64),
                         torch.arange(n).unsqueeze(0))
        out[b, cols[0]:cols[0] + n - 1] = next_token_logprobs(logits, row)[0]
    return out


# ---------------------------------------------------------------------------------------------
# Minimal safetensors writer/reader.

ST_DTYPES = {"F32": "<f4", "F64": "<f8", "I64": "<i8"}


def safetensors_bytes(tensors, metadata=None):
    """tensors: list of (name, dtype tag, numpy array). Data laid out in list order."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for name, tag, arr in tensors:
        data = np.ascontiguousarray(arr, dtype=np.dtype(ST_DTYPES[tag])).tobytes()
        header[name] = {"dtype": tag, "shape": [int(s) for s in arr.shape],
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def safetensors_read(blob):
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        arr = np.frombuffer(blob[base + a:base + b], dtype=np.dtype(ST_DTYPES[info["dtype"]]))
        out[name] = arr.reshape(info["shape"])
    return out


def write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)


# ---------------------------------------------------------------------------------------------
# Self-checks.

def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def maxdiff(a, b):
    return float((a - b).abs().max())


def self_checks(name, cfg, P, ids, am, pos, logits, lp, lp_unpad, loss, grads, gnames):
    valid = valid_targets(am)
    qvalid = am.bool()

    # (a) independent per-head loop attention gives the same logits on every real position.
    ref = forward(cfg, P, ids, am, pos, loop=True)
    d = maxdiff(logits[qvalid], ref[qvalid])
    check(d < 1e-11, "%s: loop attention differs by %g" % (name, d))

    # (a') RoPE: rotate() equals an explicit rotation of each pair (k, k + hd/2) by p*inv_freq[k].
    inv_freq, _ = rope_bands(cfg)
    hd = head_dim_of(cfg)
    x = torch.from_numpy(np.random.Generator(np.random.PCG64(5)).standard_normal(hd))
    for p in (0, 1, 7, 11):
        a = p * inv_freq
        got = rotate(x, torch.cos(torch.cat([a, a])), torch.sin(torch.cat([a, a])))
        want = x.clone()
        for k in range(hd // 2):
            c, s_ = math.cos(float(a[k])), math.sin(float(a[k]))
            want[k] = x[k] * c - x[k + hd // 2] * s_
            want[k + hd // 2] = x[k] * s_ + x[k + hd // 2] * c
        check(maxdiff(got, want) < 1e-14, "%s: rope layout" % name)

    # (b) padding invariance of the reference itself.
    d = maxdiff(lp[valid], lp_unpad[valid])
    check(d < 1e-11, "%s: padded vs unpadded log-probs differ by %g" % (name, d))
    check(bool((lp[~valid] == 0).all()) and bool((lp_unpad[~valid] == 0).all()),
          "%s: non-valid entries must be 0" % name)

    # (b') gradients are padding invariant too: the same loss built from unpadded rows.
    tot = int(valid.sum())
    loss_u = -sum(unpadded_logprobs(cfg, P, ids, am)[valid]) / tot
    gu = torch.autograd.grad(loss_u, [P[n] for n in gnames])
    for n, g1, g2 in zip(gnames, grads, gu):
        d = maxdiff(g1, g2)
        check(d < 1e-11, "%s: grad %s padded vs unpadded differs by %g" % (name, n, d))

    # (d) central finite differences along random directions agree with autograd.
    rng = np.random.Generator(np.random.PCG64(99))
    for n, g in zip(gnames, grads):
        direction = torch.from_numpy(rng.standard_normal(tuple(P[n].shape)))
        h = 1e-5
        with torch.no_grad():
            base = P[n].clone()
            P[n].copy_(base + h * direction)
            lp_p = next_token_logprobs(forward(cfg, P, ids, am, pos), ids)
            P[n].copy_(base - h * direction)
            lp_m = next_token_logprobs(forward(cfg, P, ids, am, pos), ids)
            P[n].copy_(base)
        fd = float((-(lp_p[valid].mean()) + lp_m[valid].mean()) / (2 * h))
        an = float((g * direction).sum())
        check(abs(fd - an) <= 1e-6 * max(1.0, abs(an)),
              "%s: finite difference for %s: %g vs autograd %g" % (name, n, fd, an))

    # (e) the log-probs are far from uniform and vary.
    v = lp[valid]
    check(float(v.std()) > 0.3, "%s: log-probs barely vary (std %g)" % (name, float(v.std())))
    check(abs(float(v.mean()) + math.log(cfg["vocab_size"])) > 0.1,
          "%s: log-probs look uniform" % name)

    # (f) sensitivity: plausible implementation mistakes must move the goldens.
    def moved(tag, **kw):
        alt = next_token_logprobs(forward(cfg, P, ids, am, pos, **kw), ids)
        dd = maxdiff(alt[valid], lp[valid])
        check(dd > 1e-3, "%s: golden insensitive to %s (max diff %g)" % (name, tag, dd))
        return dd

    sens = {}
    if cfg["num_attention_heads"] != cfg["num_key_value_heads"] and cfg["num_key_value_heads"] > 1:
        sens["kv_map"] = moved("interleaved kv-head mapping", kv_map="interleave")
    if has_qk_norm(cfg):
        sens["qk_norm_order"] = moved("q/k norm after RoPE", qk_norm_after_rope=True)
    if cfg.get("rope_scaling"):
        sens["rope_scaling"] = moved("ignoring rope_scaling", ignore_rope_scaling=True)
    if has_qkv_bias(cfg):
        sens["bias"] = moved("dropping q/k/v biases", drop_bias=True)
    if window_of(cfg) is not None:
        sens["window"] = moved("ignoring the sliding window", window=None)
        for off in (-1, 1):
            sens["window%+d" % off] = moved("window off by %+d" % off,
                                             window=window_of(cfg) + off)
    return sens


def window_probe(cfg, P, seed):
    """(c) With one layer, query i sees keys i-W+1..i: changing token i-W leaves the logits
    at i unchanged, changing token i-W+1 changes them; with two layers token i-W does matter."""
    W = window_of(cfg)
    rng = np.random.Generator(np.random.PCG64(seed + 13))
    ids = torch.from_numpy(rng.integers(3, cfg["vocab_size"], size=(1, SEQ)).astype(np.int64))
    am = torch.ones(1, SEQ, dtype=torch.int64)
    pos = torch.arange(SEQ).unsqueeze(0)
    i = SEQ - 2

    def logp_at(tokens, layers):
        lg = forward(cfg, P, tokens, am, pos, layers=layers)
        return torch.log_softmax(lg[0, i], dim=-1)

    def changed(j, layers):
        t2 = ids.clone()
        t2[0, j] = 3 + (int(t2[0, j]) - 3 + 5) % (cfg["vocab_size"] - 3)
        return maxdiff(logp_at(ids, layers), logp_at(t2, layers))

    with torch.no_grad():
        for j in range(0, i - W + 1):
            d = changed(j, 1)
            check(d == 0.0, "window probe: 1 layer, token %d (i-j=%d) moved logits by %g"
                  % (j, i - j, d))
        for j in range(i - W + 1, i + 1):
            d = changed(j, 1)
            check(d > 1e-4, "window probe: 1 layer, token %d (i-j=%d) had no effect" % (j, i - j))
        d = changed(i - W, 2)
        check(d > 1e-4, "window probe: 2 layers, token i-W should be reachable")
        d = changed(i - 2 * (W - 1) - 1, 2)
        check(d == 0.0, "window probe: 2 layers, token beyond 2(W-1) moved logits by %g" % d)


# ---------------------------------------------------------------------------------------------

def build_case(name, seed, cfg_specific, out_dir):
    cfg = dict(COMMON)
    cfg.update(cfg_specific)
    params = make_params(cfg, seed)
    P = {n: torch.from_numpy(a.astype(np.float64)).requires_grad_(True) for n, a in params}
    gnames = grad_names(cfg)
    for n in gnames:
        check(n in P, "%s: missing param %s" % (name, n))

    # llama3: all three bands of the scaling formula must occur, away from the boundaries.
    _, bands = rope_bands(cfg)
    if bands is not None:
        kinds, wls, short_wl, long_wl = bands
        check(set(kinds) == {0, 1, 2}, "%s: llama3 bands %s do not cover all three"
              % (name, kinds))
        # the smoothed band must join the other two continuously at both boundaries
        rs = cfg["rope_scaling"]
        for wl in (short_wl, long_wl):
            below = llama3_scale(2.0 * math.pi / (wl * (1 - 1e-9)), rs)[0] * wl * (1 - 1e-9)
            above = llama3_scale(2.0 * math.pi / (wl * (1 + 1e-9)), rs)[0] * wl * (1 + 1e-9)
            check(abs(below - above) < 1e-6 * above, "%s: llama3 scaling discontinuous" % name)
        for wl in wls:
            check(min(abs(wl - short_wl), abs(wl - long_wl)) > 0.05 * short_wl,
                  "%s: wavelength %g too close to a band boundary" % (name, wl))

    ids, am, pos = make_inputs(cfg, seed)
    logits = forward(cfg, P, ids, am, pos)
    valid = valid_targets(am)
    lp = next_token_logprobs(logits, ids)
    loss = -lp[valid].mean()
    grads = torch.autograd.grad(loss, [P[n] for n in gnames])
    lp = lp.detach().masked_fill(~valid, 0.0)
    with torch.no_grad():
        lp_unpad = unpadded_logprobs(cfg, P, ids, am).masked_fill(~valid, 0.0)

    sens = self_checks(name, cfg, P, ids, am, pos, logits.detach(), lp, lp_unpad, loss, grads,
                       gnames)
    if window_of(cfg) is not None:
        window_probe(cfg, P, seed)

    case_dir = os.path.join(out_dir, name)
    os.makedirs(case_dir, exist_ok=True)
    with open(os.path.join(case_dir, "config.json"), "w") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    model_blob = safetensors_bytes([(n, "F32", a) for n, a in params], {"format": "pt"})
    golden = [("input_ids", "I64", ids.numpy()),
              ("attention_mask", "I64", am.numpy()),
              ("position_ids", "I64", pos.numpy()),
              ("logprobs", "F64", lp.numpy()),
              ("logprobs_unpadded", "F64", lp_unpad.numpy()),
              ("loss", "F64", np.array(float(loss), dtype=np.float64).reshape(()))]
    golden += [("grad." + n, "F64", g.detach().numpy()) for n, g in zip(gnames, grads)]
    golden_blob = safetensors_bytes(golden, {
        "case": name, "generator": "scripts/make_model_goldens.py",
        "mask": "key j visible from query i iff j <= i and attention_mask[b,j] == 1"
                + (" and i - j < %d" % window_of(cfg) if window_of(cfg) else ""),
        "loss": "-mean(logprobs over entries whose source and target are not padding)"})

    # round trip through the reader
    back = safetensors_read(model_blob)
    check(all(np.array_equal(back[n], a) for n, a in params), "%s: model round trip" % name)
    back = safetensors_read(golden_blob)
    check(all(np.array_equal(back[n], a) for n, _, a in golden), "%s: golden round trip" % name)

    write_file(os.path.join(case_dir, "model.safetensors"), model_blob)
    write_file(os.path.join(case_dir, "golden.safetensors"), golden_blob)

    if bands is not None:
        sens["llama3_bands"] = "".join(str(k) for k in bands[0])
    size = sum(os.path.getsize(os.path.join(case_dir, f)) for f in os.listdir(case_dir))
    v = lp[valid]
    print("%-8s %-8s L=%d H=%d heads=%d/%d hd=%d V=%d tied=%s window=%s  loss=%.6f  "
          "logprob range [%.3f, %.3f]  sensitivity %s  %d bytes"
          % (name, cfg["model_type"], cfg["num_hidden_layers"], cfg["hidden_size"],
             cfg["num_attention_heads"], cfg["num_key_value_heads"], head_dim_of(cfg),
             cfg["vocab_size"], cfg["tie_word_embeddings"], window_of(cfg), float(loss),
             float(v.min()), float(v.max()),
             ",".join("%s=%s" % (k, v if isinstance(v, str) else "%.3g" % v)
                      for k, v in sens.items()) or "-", size))


# ---------------------------------------------------------------------------------------------
# LoRA adapters in PEFT's on-disk layout, applied by the reference as PEFT's LoRA Linear does:
# y = x W^T (+ b) + scaling * (x A^T) B^T with scaling = lora_alpha / r, A [r, in] saved as
# base_model.model.<module>.lora_A.weight and B [out, r] as ...lora_B.weight (peft
# tuners/lora/layer.py, utils/save_and_load.py); "all-linear" is written expanded, as PEFT does.

PEFT_PREFIX = "base_model.model."
LORA_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# The keys PEFT 0.10-0.13 writes into adapter_config.json for a LoRA CAUSAL_LM adapter.
PEFT_CONFIG_KEYS = {
    "alpha_pattern", "auto_mapping", "base_model_name_or_path", "bias", "fan_in_fan_out",
    "inference_mode", "init_lora_weights", "layer_replication", "layers_pattern",
    "layers_to_transform", "loftq_config", "lora_alpha", "lora_dropout", "megatron_config",
    "megatron_core", "modules_to_save", "peft_type", "r", "rank_pattern", "revision",
    "target_modules", "task_type", "use_dora", "use_rslora"}

LORA_CASES = [
    # (base case, seed, r, lora_alpha, target_modules as given to LoraConfig). B is random and
    # non-zero (a trained adapter), unlike PEFT's B = 0 at initialisation.
    ("llama", 611, 4, 8, ["v_proj", "q_proj", "down_proj"]),
    ("qwen3", 622, 2, 6, "all-linear"),
]
LORA_GRADS = ["model.layers.0.self_attn.q_proj", "model.layers.1.mlp.down_proj"]


def module_path(layer, name):
    block = "self_attn" if name in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
    return "model.layers.%d.%s.%s" % (layer, block, name)


def projection_shape(cfg, name):
    """(in, out) of a projection."""
    H, I = cfg["hidden_size"], cfg["intermediate_size"]
    q = cfg["num_attention_heads"] * head_dim_of(cfg)
    kv = cfg["num_key_value_heads"] * head_dim_of(cfg)
    return {"q_proj": (H, q), "k_proj": (H, kv), "v_proj": (H, kv), "o_proj": (q, H),
            "gate_proj": (H, I), "up_proj": (H, I), "down_proj": (I, H)}[name]


def expand_targets(targets):
    if isinstance(targets, str):
        check(targets == "all-linear", "only all-linear is used as a string")
        return list(LORA_MODULES)
    return [n for n in LORA_MODULES if n in targets]


def make_lora(cfg, seed, r, names):
    """[(PEFT tensor name, float32 array)]: A ~ U(-1/sqrt(in), 1/sqrt(in)) as PEFT draws it,
    B ~ N(0, 0.25^2) standing in for a trained adapter."""
    rng = np.random.Generator(np.random.PCG64(seed))
    out = []
    for layer in range(cfg["num_hidden_layers"]):
        for name in names:
            fan_in, fan_out = projection_shape(cfg, name)
            bound = 1.0 / math.sqrt(fan_in)
            path = PEFT_PREFIX + module_path(layer, name)
            out.append((path + ".lora_A.weight", rng.uniform(-bound, bound, (r, fan_in))))
            out.append((path + ".lora_B.weight", 0.25 * rng.standard_normal((fan_out, r))))
    return [(n, a.astype(np.float32)) for n, a in out]


def lora_modules(tensors, scaling):
    """PEFT tensors -> {module path: (A, B, scaling)} in float64, requiring grad."""
    T = {n: torch.from_numpy(np.asarray(a, dtype=np.float64)).requires_grad_(True) for n, a in tensors}
    out = {}
    for n in T:
        if n.endswith(".lora_A.weight"):
            path = n[len(PEFT_PREFIX):-len(".lora_A.weight")]
            out[path] = (T[n], T[PEFT_PREFIX + path + ".lora_B.weight"], scaling)
    return out


def peft_adapter_config(r, alpha, names, base, dropout=0.0):
    return {
        "alpha_pattern": {}, "auto_mapping": None, "base_model_name_or_path": base,
        "bias": "none", "fan_in_fan_out": False, "inference_mode": True,
        "init_lora_weights": True, "layer_replication": None, "layers_pattern": None,
        "layers_to_transform": None, "loftq_config": {}, "lora_alpha": alpha,
        "lora_dropout": dropout, "megatron_config": None, "megatron_core": "megatron.core",
        "modules_to_save": None, "peft_type": "LORA", "r": r, "rank_pattern": {},
        "revision": None, "target_modules": names, "task_type": "CAUSAL_LM",
        "use_dora": False, "use_rslora": False}


def merged_params(P, lora):
    M = dict(P)
    for path, (a, b, scaling) in lora.items():
        M[path + ".weight"] = P[path + ".weight"] + scaling * (b @ a)
    return M


def build_lora_case(base_name, seed, r, alpha, targets, out_dir):
    cfg = dict(COMMON)
    base_seed, spec = next((sd, c) for n, sd, c in CASES if n == base_name)
    cfg.update(spec)
    P = {n: torch.from_numpy(a.astype(np.float64)) for n, a in make_params(cfg, base_seed)}
    ids, am, pos = make_inputs(cfg, base_seed)
    valid = valid_targets(am)
    names = expand_targets(targets)
    scaling = alpha / r
    tensors = make_lora(cfg, seed, r, names)
    L = lora_modules(tensors, scaling)
    tag = "%s/lora" % base_name

    lp = next_token_logprobs(forward(cfg, P, ids, am, pos, lora=L), ids)
    loss = -lp[valid].mean()
    gnames = [PEFT_PREFIX + m + ".lora_" + h + ".weight" for m in LORA_GRADS if m in L for h in "AB"]
    gtensors = [L[n[len(PEFT_PREFIX):-len(".lora_A.weight")]]["AB".index(n[-8])] for n in gnames]
    grads = torch.autograd.grad(loss, gtensors)
    lp = lp.detach().masked_fill(~valid, 0.0)

    with torch.no_grad():
        # The merged weights W + scaling B A give the unmerged forward's log-probs.
        lp_merged = next_token_logprobs(forward(cfg, merged_params(P, L), ids, am, pos), ids)
        d = maxdiff(lp_merged[valid], lp[valid])
        check(d < 1e-11, "%s: merged and unmerged differ by %g" % (tag, d))
        # The adapter matters, and so do its scaling and each kind of module it adapts.
        base_lp = next_token_logprobs(forward(cfg, P, ids, am, pos), ids)
        sens = {"adapter": maxdiff(base_lp[valid], lp[valid])}
        unscaled = {m: (a, b, float(alpha)) for m, (a, b, _) in L.items()}
        sens["alpha_not_over_r"] = maxdiff(
            next_token_logprobs(forward(cfg, P, ids, am, pos, lora=unscaled), ids)[valid], lp[valid])
        for name in names:
            partial = {m: v for m, v in L.items() if not m.endswith("." + name)}
            sens["without_" + name] = maxdiff(
                next_token_logprobs(forward(cfg, P, ids, am, pos, lora=partial), ids)[valid],
                lp[valid])
        for k, v in sens.items():
            check(v > 1e-3, "%s: golden insensitive to %s (max diff %g)" % (tag, k, v))

    # (d) finite differences along a random direction agree with autograd for the A/B grads.
    rng = np.random.Generator(np.random.PCG64(98))
    for n, t, g in zip(gnames, gtensors, grads):
        direction = torch.from_numpy(rng.standard_normal(tuple(t.shape)))
        h = 1e-5
        with torch.no_grad():
            keep = t.clone()
            t.copy_(keep + h * direction)
            lp_p = next_token_logprobs(forward(cfg, P, ids, am, pos, lora=L), ids)
            t.copy_(keep - h * direction)
            lp_m = next_token_logprobs(forward(cfg, P, ids, am, pos, lora=L), ids)
            t.copy_(keep)
        fd = float((-(lp_p[valid].mean()) + lp_m[valid].mean()) / (2 * h))
        an = float((g * direction).sum())
        check(abs(fd - an) <= 1e-6 * max(1.0, abs(an)),
              "%s: finite difference for %s: %g vs autograd %g" % (tag, n, fd, an))

    lora_dir = os.path.join(out_dir, base_name, "lora")
    os.makedirs(lora_dir, exist_ok=True)
    written_targets = targets if not isinstance(targets, str) else names  # PEFT expands
    config = peft_adapter_config(r, alpha, written_targets, "tests/golden/models/" + base_name)
    check(set(config) == PEFT_CONFIG_KEYS, "adapter config keys")
    with open(os.path.join(lora_dir, "adapter_config.json"), "w") as f:
        f.write(json.dumps(config, indent=2, sort_keys=True))
    adapter_blob = safetensors_bytes([(n, "F32", a) for n, a in tensors], {"format": "pt"})
    golden = [("logprobs", "F64", lp.numpy()),
              ("loss", "F64", np.array(float(loss), dtype=np.float64).reshape(()))]
    golden += [("grad." + n, "F64", g.detach().numpy()) for n, g in zip(gnames, grads)]
    golden_blob = safetensors_bytes(golden, {
        "case": tag, "generator": "scripts/make_model_goldens.py",
        "lora": "W x + (lora_alpha / r) * B A x on %s, r=%d, lora_alpha=%s"
                % (",".join(names), r, alpha),
        "inputs": "input_ids, attention_mask, position_ids of ../golden.safetensors"})
    back = safetensors_read(adapter_blob)
    check(all(np.array_equal(back[n], a) for n, a in tensors), "%s: adapter round trip" % tag)
    write_file(os.path.join(lora_dir, "adapter_model.safetensors"), adapter_blob)
    write_file(os.path.join(lora_dir, "golden.safetensors"), golden_blob)
    print("%-12s r=%d alpha=%s targets=%s  loss=%.6f  sensitivity %s"
          % (tag, r, alpha, ",".join(names), float(loss),
             ",".join("%s=%.3g" % kv for kv in sens.items())))


def safetensors_header(blob):
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8:8 + n].decode("utf-8"))


def check_adapter(adapter_dir, base_dir):
    """--check-adapter: reads an adapter folder as PEFT writes it (the PEFT 0.10-0.13 key set,
    tensor names and shapes, F32, metadata format pt), applies it to the base folder's model with
    this reference and prints the log-probs of the base's golden batch as JSON."""
    with open(os.path.join(base_dir, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(base_dir, "model.safetensors"), "rb") as f:
        P = {n: torch.from_numpy(a.astype(np.float64)) for n, a in safetensors_read(f.read()).items()}
    with open(os.path.join(base_dir, "golden.safetensors"), "rb") as f:
        g = safetensors_read(f.read())
    ids, am, pos = (torch.from_numpy(np.array(g[k])) for k in
                    ("input_ids", "attention_mask", "position_ids"))
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        conf = json.load(f)
    check(set(conf) == PEFT_CONFIG_KEYS, "adapter_config.json keys differ from PEFT's: extra %s, "
          "missing %s" % (sorted(set(conf) - PEFT_CONFIG_KEYS), sorted(PEFT_CONFIG_KEYS - set(conf))))
    for key, want in (("peft_type", "LORA"), ("task_type", "CAUSAL_LM"), ("bias", "none"),
                      ("use_dora", False), ("modules_to_save", None), ("fan_in_fan_out", False),
                      ("inference_mode", True), ("rank_pattern", {}), ("alpha_pattern", {})):
        check(conf[key] == want, "adapter_config.json: %s is %r, not %r" % (key, conf[key], want))
    r, alpha = conf["r"], conf["lora_alpha"]
    check(isinstance(r, int) and r > 0, "r must be a positive int")
    check(isinstance(alpha, (int, float)) and alpha > 0, "lora_alpha must be a positive number")
    names = conf["target_modules"]
    check(isinstance(names, list) and names and all(n in LORA_MODULES for n in names),
          "target_modules must be an expanded list of projection names: %r" % (names,))
    with open(os.path.join(adapter_dir, "adapter_model.safetensors"), "rb") as f:
        blob = f.read()
    header = safetensors_header(blob)
    check(header.get("__metadata__") == {"format": "pt"}, "metadata must be {'format': 'pt'}")
    tensors = safetensors_read(blob)
    expected = {}
    for layer in range(cfg["num_hidden_layers"]):
        for name in names:
            fan_in, fan_out = projection_shape(cfg, name)
            path = PEFT_PREFIX + module_path(layer, name)
            expected[path + ".lora_A.weight"] = [r, fan_in]
            expected[path + ".lora_B.weight"] = [fan_out, r]
    check(set(tensors) == set(expected), "tensor names differ: extra %s, missing %s"
          % (sorted(set(tensors) - set(expected)), sorted(set(expected) - set(tensors))))
    for n, shape in expected.items():
        check(header[n]["dtype"] == "F32", "%s is %s, not F32" % (n, header[n]["dtype"]))
        check(list(tensors[n].shape) == shape, "%s is %s, not %s" % (n, tensors[n].shape, shape))
    scaling = alpha / math.sqrt(r) if conf["use_rslora"] else alpha / r
    L = lora_modules(sorted(tensors.items()), scaling)
    with torch.no_grad():
        lp = next_token_logprobs(forward(cfg, P, ids, am, pos, lora=L), ids)
    lp = lp.masked_fill(~valid_targets(am), 0.0)
    print(json.dumps({"tensors": len(tensors), "logprobs": lp.tolist()}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join("tests", "golden", "models"))
    ap.add_argument("--check-adapter", metavar="DIR",
                    help="read a PEFT LoRA adapter folder strictly and print the log-probs of "
                         "--base's golden batch with it as JSON, instead of writing goldens")
    ap.add_argument("--base", metavar="DIR", help="base case folder for --check-adapter")
    args = ap.parse_args()
    if args.check_adapter:
        if not args.base:
            ap.error("--check-adapter needs --base")
        check_adapter(args.check_adapter, args.base)
        return 0
    os.makedirs(args.out, exist_ok=True)
    for name, seed, cfg in CASES:
        build_case(name, seed, cfg, args.out)
    for base_name, seed, r, alpha, targets in LORA_CASES:
        build_lora_case(base_name, seed, r, alpha, targets, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
