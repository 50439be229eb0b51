#!/usr/bin/python3
"""The same Llama-shaped training step in plain PyTorch (Debian's python3-torch, the LibTorch
underneath percetrain), written the way a user would: nn.Modules, Hugging Face's eager attention
with repeat_kv, full [B, T, V] logits and F.cross_entropy over the response positions, AdamW.
Prints one JSON line with ms/step. Run by scripts/bench_vs_pytorch.sh, which runs percetrain's
`bench --variants ce` on the same shapes and prints the ratio."""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
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
        self.h, self.kv, self.d = c["heads"], c["kv_heads"], c["hidden"] // c["heads"]
        hid, inter = c["hidden"], c["intermediate"]
        self.q = nn.Linear(hid, self.h * self.d, bias=False)
        self.k = nn.Linear(hid, self.kv * self.d, bias=False)
        self.v = nn.Linear(hid, self.kv * self.d, bias=False)
        self.o = nn.Linear(self.h * self.d, hid, bias=False)
        self.gate = nn.Linear(hid, inter, bias=False)
        self.up = nn.Linear(hid, inter, bias=False)
        self.down = nn.Linear(inter, hid, bias=False)
        self.n1, self.n2 = RMSNorm(hid), RMSNorm(hid)

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


class Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed = nn.Embedding(c["vocab"], c["hidden"])
        self.layers = nn.ModuleList(Layer(c) for _ in range(c["layers"]))
        self.norm = RMSNorm(c["hidden"])
        self.head = nn.Linear(c["hidden"], c["vocab"], bias=False)
        d = c["hidden"] // c["heads"]
        self.register_buffer("inv_freq", 1.0 / (10000.0 ** (torch.arange(0, d, 2).float() / d)), persistent=False)

    def forward(self, ids):
        B, T = ids.shape
        pos = torch.arange(T, dtype=torch.float32)
        freqs = pos[:, None] * self.inv_freq[None]
        emb = torch.cat((freqs, freqs), -1)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]
        mask = torch.full((T, T), torch.finfo(torch.float32).min).triu(1)[None, None]
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return self.head(self.norm(x))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--intermediate", type=int, default=1408)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=4000)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--length", type=int, default=256)
    p.add_argument("--response", type=int, default=128)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    c = dict(hidden=a.hidden, intermediate=a.intermediate, layers=a.layers, heads=a.heads,
             kv_heads=a.kv_heads, vocab=a.vocab)
    model = Model(c)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = torch.randint(3, a.vocab, (a.batch, a.length))
    labels = ids.clone()
    labels[:, : a.length - a.response] = -100  # loss on the response tokens only

    def step():
        opt.zero_grad()
        logits = model(ids)[:, :-1].float()
        loss = F.cross_entropy(logits.reshape(-1, a.vocab), labels[:, 1:].reshape(-1), ignore_index=-100)
        loss.backward()
        opt.step()

    for _ in range(a.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    ms = (time.perf_counter() - t0) / a.steps * 1000
    print(json.dumps({"implementation": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "ms_per_step": ms, "tokens_per_s": a.batch * a.length / ms * 1000}))


if __name__ == "__main__":
    main()
