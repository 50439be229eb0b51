"""Writes the tokenizer.json goldens of tests/tokenizer/hf_tokenizer_test.cpp with Hugging Face
`tokenizers` and transformers' apply_chat_template, from the real Qwen3 and Llama 3 files in
../shared/fixtures (never copied into the repository):

  tests/golden/tokenizer/hf_ids.jsonl  for every string of hf_corpus.jsonl (same line order) its
      ids without special tokens, "qwen3" and "llama3", and with them, "<name>_special", stored
      only where they differ; "llama3_bos" is Llama 3 with the BOS-adding post-processor of
      llama3_bos_post_processor.json (Meta's current tokenizer.json; the fixture predates it),
      stored only with special tokens (without them it is "llama3"). "nfc": the NFC form of the
      text where it differs (Qwen3 normalises to NFC, so that is what its ids decode to).
  tests/golden/tokenizer/hf_chat.json  a system + user conversation rendered by the models' own
      chat_template (tokenizer_config.json) with add_generation_prompt, and its ids.

Every string is decoded back and checked against the text (its NFC form for Qwen3).
hf_corpus.jsonl itself is a fixed, checked-in corpus written for this project.
tests/reference/test_tokenizers.py checks percetrain against the same libraries live.

  .venv/bin/python scripts/make_hf_tokenizer_goldens.py [--fixtures ../shared/fixtures]
"""
import argparse
import json
import unicodedata
from pathlib import Path

from tokenizers import Tokenizer
from transformers import AutoTokenizer

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "tokenizer"

MESSAGES = [
    {"role": "system", "content": "You write product reviews in the user's own voice."},
    {"role": "user", "content": "Write a review of a stainless steel kettle, 4 stars.  "},
]


def dumps(value, **kwargs):
    return json.dumps(value, ensure_ascii=False, **kwargs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixtures", default=str(ROOT.parent / "shared" / "fixtures"))
    args = parser.parse_args()
    fixtures = Path(args.fixtures)
    qwen3_dir, llama3_dir = fixtures / "qwen3-tokenizer", fixtures / "llama3-tokenizer"

    llama3_json = json.loads((llama3_dir / "tokenizer.json").read_text(encoding="utf-8"))
    llama3_json["post_processor"] = json.loads((GOLDEN / "llama3_bos_post_processor.json").read_text(encoding="utf-8"))
    tokenizers = {
        "qwen3": Tokenizer.from_file(str(qwen3_dir / "tokenizer.json")),
        "llama3": Tokenizer.from_file(str(llama3_dir / "tokenizer.json")),
        "llama3_bos": Tokenizer.from_str(json.dumps(llama3_json)),
    }

    # split("\n"), not splitlines(): the corpus holds U+2028, U+0085 and other line separators.
    corpus = (GOLDEN / "hf_corpus.jsonl").read_text(encoding="utf-8").split("\n")
    texts = [json.loads(line)["text"] for line in corpus if line]
    lines, total = [], 0
    for text in texts:
        nfc = unicodedata.normalize("NFC", text)
        row = {}
        for name, tok in tokenizers.items():
            plain = tok.encode(text, add_special_tokens=False).ids
            special = tok.encode(text, add_special_tokens=True).ids
            back = tok.decode(plain, skip_special_tokens=False)
            if back != (nfc if name == "qwen3" else text):
                raise SystemExit(f"{name}: the library's decode does not give back {dumps(text)}")
            if name == "llama3_bos":
                # Same pre-tokenizer and model as "llama3": only the post-processor differs.
                if plain != row["llama3"]:
                    raise SystemExit(f"llama3_bos differs from llama3 without special tokens on {dumps(text)}")
            else:
                row[name] = plain
            if special != plain:
                row[name + "_special"] = special
            total += len(plain) + len(special)
        if nfc != text:
            row["nfc"] = nfc
        lines.append(dumps(row, separators=(",", ":")))
    (GOLDEN / "hf_ids.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote ids of {len(texts)} strings x {len(tokenizers)} tokenizers x 2 modes ({total} ids)")

    # The chat template renders <|begin_of_text|> as text for Llama 3, so the ids need no BOS from
    # the post-processor: the fixture's own tokenizer is the one to use.
    chat = {"messages": MESSAGES}
    qwen3 = AutoTokenizer.from_pretrained(str(qwen3_dir))
    llama3 = AutoTokenizer.from_pretrained(str(llama3_dir))
    for name, tok, kwargs in (("qwen3", qwen3, {}), ("qwen3_no_thinking", qwen3, {"enable_thinking": False}),
                              ("llama3", llama3, {})):
        text = tok.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True, **kwargs)
        ids = list(tok.apply_chat_template(MESSAGES, tokenize=True, add_generation_prompt=True, return_dict=False, **kwargs))
        if ids != tokenizers[name.split("_")[0]].encode(text, add_special_tokens=False).ids:
            raise SystemExit(f"{name}: apply_chat_template's ids are not those of its text")
        chat[name] = {"text": text, "ids": ids}
    (GOLDEN / "hf_chat.json").write_text(dumps(chat, indent=1) + "\n", encoding="utf-8")
    print("wrote hf_chat.json")


if __name__ == "__main__":
    main()
