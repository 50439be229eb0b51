#!/usr/bin/env python3
"""One training step of a Llama-shaped model in PyTorch, as people write it, for comparison with
`percetrain bench` on the same shape (scripts/bench_vs_pytorch.sh alternates them):
  --impl transformers  Hugging Face transformers' LlamaForCausalLM (what people fine-tune with):
                       default attention (SDPA), logits for every position, loss on the response
  --impl plain         a plain PyTorch loop: nn.Modules, eager attention with repeat_kv, full
                       [B, T, V] logits, F.cross_entropy
  --objective ce       token-averaged cross-entropy on the response tokens
  --objective perce    PerCE: one more forward without the profile under no_grad, weights
                       clip(log p_with - log p_without, 0.8, 5.0), weighted CE / response tokens
AdamW, fp32, random token ids; the shape comes from a Hugging Face config.json (--config). Prints
one JSON line: ms/step and tokens/s (with and without-profile tokens, as percetrain counts them).
Run it with the project's .venv (torch 2.x); the plain model also runs on Debian's torch 1.13."""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        x32 = x.float()
        return self.weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)


def rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.h, self.kv = c["num_attention_heads"], c["num_key_value_heads"]
        hid, inter = c["hidden_size"], c["intermediate_size"]
        self.d = hid // self.h
        self.q = nn.Linear(hid, self.h * self.d, bias=False)
        self.k = nn.Linear(hid, self.kv * self.d, bias=False)
        self.v = nn.Linear(hid, self.kv * self.d, bias=False)
        self.o = nn.Linear(self.h * self.d, hid, bias=False)
        self.gate = nn.Linear(hid, inter, bias=False)
        self.up = nn.Linear(hid, inter, bias=False)
        self.down = nn.Linear(inter, hid, bias=False)
        self.n1, self.n2 = RMSNorm(hid, c["rms_norm_eps"]), RMSNorm(hid, c["rms_norm_eps"])

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        h = self.n1(x)
        q = self.q(h).view(B, T, self.h, self.d).transpose(1, 2)
        k = self.k(h).view(B, T, self.kv, self.d).transpose(1, 2)
        v = self.v(h).view(B, T, self.kv, self.d).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        rep = self.h // self.kv
        k = k[:, :, None].expand(B, self.kv, rep, T, self.d).reshape(B, self.h, T, self.d)
        v = v[:, :, None].expand(B, self.kv, rep, T, self.d).reshape(B, self.h, T, self.d)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(self.d) + mask
        att = att.softmax(-1, dtype=torch.float32).to(q.dtype)
        x = x + self.o((att @ v).transpose(1, 2).reshape(B, T, -1))
        h = self.n2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class PlainModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList(Layer(c) for _ in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        d = c["hidden_size"] // c["num_attention_heads"]
        theta = c.get("rope_theta", 10000.0)
        self.register_buffer("inv_freq", 1.0 / (theta ** (torch.arange(0, d, 2).float() / d)), persistent=False)

    def forward(self, ids):  # -> logits [B, T, V]
        B, T = ids.shape
        freqs = torch.arange(T, dtype=torch.float32)[:, None] * self.inv_freq[None]
        emb = torch.cat((freqs, freqs), -1)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]
        mask = torch.full((T, T), torch.finfo(torch.float32).min).triu(1)[None, None]
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return self.head(self.norm(x))


def make_model(impl, c):
    if impl == "plain":
        return PlainModel(c), lambda model, ids: model(ids)
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(**{k: v for k, v in c.items() if k not in ("architectures", "model_type")}))
    return model, lambda model, ids: model(input_ids=ids).logits


def response_logprobs(logits, ids, response):
    """log P of the last `response` tokens of each row: [B, response], in fp32."""
    pred = logits[:, -response - 1 : -1].float()
    return pred.log_softmax(-1).gather(-1, ids[:, -response:, None]).squeeze(-1)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="Hugging Face config.json of the shape")
    p.add_argument("--impl", choices=["transformers", "plain"], default="transformers")
    p.add_argument("--objective", choices=["ce", "perce"], default="ce")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--length", type=int, default=256, help="tokens per sequence with the profile")
    p.add_argument("--without-length", type=int, default=129, help="tokens per sequence without it (perce)")
    p.add_argument("--response", type=int, default=128)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    with open(a.config) as f:
        c = json.load(f)
    model, logits_of = make_model(a.impl, c)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    V = c["vocab_size"]
    ids = torch.randint(3, V, (a.batch, a.length))
    # The profile-free prompt keeps the query and response: the last without_length tokens.
    without = ids[:, -a.without_length :].clone()

    def step():
        opt.zero_grad()
        if a.objective == "perce":
            with torch.no_grad():
                base = response_logprobs(logits_of(model, without), without, a.response)
        logp = response_logprobs(logits_of(model, ids), ids, a.response)
        if a.objective == "ce":
            loss = -logp.mean()
        else:
            weights = (logp.detach() - base).clamp(0.8, 5.0)
            loss = -(weights * logp).sum() / logp.numel()
        loss.backward()
        opt.step()

    for _ in range(a.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    ms = (time.perf_counter() - t0) / a.steps * 1000
    tokens = a.batch * (a.length + (a.without_length if a.objective == "perce" else 0))
    print(json.dumps({"implementation": a.impl, "objective": a.objective, "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "ms_per_step": ms, "tokens_per_s": tokens / ms * 1000}))


if __name__ == "__main__":
    main()
