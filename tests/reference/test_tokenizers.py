"""percetrain's tokenizers against Hugging Face `tokenizers` / `transformers` and `sentencepiece`.

Id for id, with and without special tokens, through `percetrain tokenize`, on the project's
tokenizer corpora (tests/golden/tokenizer/hf_corpus.jsonl, the SentencePiece corpus of
llama2_ids.jsonl and EXTRA below) for the real Qwen3 and Llama 3 tokenizer.json files, Llama 3 with Meta's
current BOS-adding post-processor, and the Llama 2 tokenizer.model; the library decodes
percetrain's ids back to the text. Chat prompts, as the data pipeline builds them (read from
`percetrain inspect-data`), equal transformers' apply_chat_template of the templates in the
fixtures' tokenizer_config.json: text, token count, ids, and the response tokens that follow.
"""
import json
import shutil
import unicodedata

from common import ROOT, Checks, Workdir, percetrain, read_jsonl, require_fixture, skip

try:
    import sentencepiece
    import tokenizers
    import transformers
    from transformers import AutoTokenizer
except ImportError as e:
    skip(f"{e.name} is not installed: run the README's setup (the pinned .venv)")

GOLDEN = ROOT / "tests" / "golden" / "tokenizer"


# Strings hf_corpus.jsonl left out because the JavaScript port it was first checked against
# disagreed with the Rust library there (U+0085 and U+FEFF as whitespace, full case folding after
# an apostrophe), and characters newer than Unicode 13 (letters, marks and digits of Unicode 14
# and 15: the Unicode tables of the regex engines and of NFC).
EXTRA = ["\u0085", "a\u0085b", "x \u0085 y", "\ufeff", "\ufeffhello", " \ufeff ", "it'\u017f", "he'\u212a",
         "I'\u017fS", "don'\u017ft", "'S'T'RE'VE'M'LL'D", "'\u0130s", "x'\u0131", "\u2028line\u2029para",
         "\u000b\u000c\u001c\u001d\u001e\u001f", "a\u00a0\u00a0b", "\u3000\u3000x", "\u1680ogham\u180e",
         "1\u200a2\u2009\u2008 3", "\u205f\u202f\u2007", "new \U0001FAE8 shaking face", "\U0001FA77 pink heart",
         "ab\uA7C0cd", "x\U0001DF00y", "a\U00010780b", "\U0001E030\U0001E031x", "word\U0001E4F1\U0001E4F29",
         "\U00031350\U00031351 ext h", "\u0c5d\u0cdd", "a'\U0001DF00", "x\u0cf3y", "1\U0001E4F0", "\U00011F00 kawi"]


def corpus():
    """Both corpora and EXTRA, in order, without repeats."""
    texts = [r["text"] for r in read_jsonl(GOLDEN / "hf_corpus.jsonl")]
    texts += [r["text"] for r in read_jsonl(GOLDEN / "llama2_ids.jsonl")]
    return list(dict.fromkeys(texts + EXTRA))


def llama3_bos_folder(base, work):
    """Llama 3 with the post-processor Meta's tokenizer.json has today (TemplateProcessing adds
    <|begin_of_text|>); the fixture, an older copy, adds none. Otherwise the same files."""
    folder = work / "llama3-bos"
    folder.mkdir()
    j = json.loads((base / "tokenizer.json").read_text(encoding="utf-8"))
    j["post_processor"] = json.loads((GOLDEN / "llama3_bos_post_processor.json").read_text(encoding="utf-8"))
    (folder / "tokenizer.json").write_text(json.dumps(j, ensure_ascii=False), encoding="utf-8")
    shutil.copy(base / "tokenizer_config.json", folder / "tokenizer_config.json")
    return folder


def percetrain_ids(tokenizer, texts_file, special):
    args = ["tokenize", "--json", "--tokenizer", tokenizer, "--input", texts_file] + ([] if special else ["--no-special"])
    return [json.loads(line)["ids"] for line in percetrain(*args).stdout.splitlines()]


def compare_ids(checks, name, got, want, texts):
    """One check over the whole corpus: the number of texts that differ, and the first of them."""
    bad = [i for i in range(len(texts)) if got[i] != want[i]]
    detail = f"{len(texts) - len(bad)} of {len(texts)} texts id-for-id ({sum(map(len, want))} ids)"
    if bad:
        i = bad[0]
        detail += f"; first difference {json.dumps(texts[i])[:120]}: percetrain {got[i][:20]} reference {want[i][:20]}"
    checks.true(name, len(got) == len(want) and not bad, detail)


def check_hf(checks, name, folder, texts, texts_file, expect_text):
    """percetrain against tokenizers.Tokenizer (tokenizer.json) and AutoTokenizer (the folder)."""
    lib = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    auto = AutoTokenizer.from_pretrained(str(folder))
    for special in (False, True):
        mode = "with special tokens" if special else "without special tokens"
        got = percetrain_ids(folder, texts_file, special)
        want = [e.ids for e in lib.encode_batch(texts, add_special_tokens=special)]
        compare_ids(checks, f"{name} {mode} = tokenizers {tokenizers.__version__}", got, want, texts)
        want_auto = [auto(t, add_special_tokens=special)["input_ids"] for t in texts]
        compare_ids(checks, f"{name} {mode} = transformers {transformers.__version__} AutoTokenizer", got, want_auto, texts)
        if not special:
            # The library's decoder gives back the text (Qwen3's NFC form of it) from percetrain's ids.
            back = lib.decode_batch(got, skip_special_tokens=False)
            bad = [t for t, b in zip(texts, back) if b != expect_text(t)]
            checks.true(f"{name} tokenizers.decode(percetrain ids) = text", not bad,
                        f"{len(texts) - len(bad)} of {len(texts)} round-trip"
                        + (f"; first not: {json.dumps(bad[0])[:120]}" if bad else ""))
    return auto


def check_llama2(checks, model, texts, texts_file):
    sp = sentencepiece.SentencePieceProcessor(model_file=str(model))
    plain = [sp.encode(t) for t in texts]
    got = percetrain_ids(model, texts_file, False)
    compare_ids(checks, f"llama2 without special tokens = sentencepiece {sentencepiece.__version__}", got, plain, texts)
    # Llama 2 adds BOS and no EOS (what LlamaTokenizer does by default).
    got_special = percetrain_ids(model, texts_file, True)
    compare_ids(checks, "llama2 with special tokens = [BOS] + sentencepiece", got_special,
                [[sp.bos_id()] + ids for ids in plain], texts)
    # SentencePiece does not give every text back (it folds runs of spaces, drops a leading one);
    # where it does, it must from percetrain's ids too.
    round_trips = [i for i, t in enumerate(texts) if sp.decode(plain[i]) == t]
    bad = [texts[i] for i in round_trips if sp.decode(got[i]) != texts[i]]
    checks.true("llama2 sentencepiece.decode(percetrain ids) = text", not bad and len(round_trips) > len(texts) // 2,
                f"{len(round_trips) - len(bad)} of the {len(round_trips)} texts the library round-trips "
                f"({len(texts) - len(round_trips)} of {len(texts)} it does not, e.g. leading/repeated spaces)"
                + (f"; first not: {json.dumps(bad[0])[:120]}" if bad else ""))


# ---------------------------------------------------------------------------------------------
# Chat prompts through the data pipeline (inspect-data) against apply_chat_template.

SYSTEM = "You write product reviews in the user's own voice."
PROFILE_ITEM = "Loved the grinder; hated the noise."
# (user message, response). Responses start with a letter, so that encoding prompt and response
# apart (as the pipeline does) equals encoding them together (as the template does).
CHATS = [
    ("Write a review of a stainless steel kettle, 4 stars.", "Great kettle. Boils fast, looks good."),
    ("  Review title: \"Quiet at last\"\nProduct: fan heater (5 stars)  ", "Finally a heater I can sleep next to.\nFive stars."),
    ("Schreib eine Bewertung für das Café — kurz, bitte. 日本語もOK?", "Sehr gut! 美味しい☕ coffee, 4/5."),
    ("Tabs\tand\n\nblank lines\n", "Fine\tenough."),
    ("\u3000Pasted from a web page:\u00a0review a desk lamp.\u00a0", "Bright\u00a0and cheap."),
]


def parse_inspect(output):
    """The personalised and counterfactual prompt texts, their token counts and the response
    pieces of every record that inspect-data printed in full."""
    records = []
    lines = output.split("\n")
    i = 0
    while i < len(lines):
        if not lines[i].startswith("personalised prompt ("):
            i += 1
            continue
        rec = {}
        for key, header in (("personalised", "personalised prompt ("), ("counterfactual", "counterfactual prompt (")):
            assert lines[i].startswith(header), lines[i]
            rec[key + "_tokens"] = int(lines[i][len(header):].split(" ")[0])
            i += 1
            block = []
            while not lines[i].startswith(("counterfactual prompt (", "response (")):
                assert lines[i].startswith("    "), lines[i]
                block.append(lines[i][4:])
                i += 1
            rec[key] = "\n".join(block)
        rec["response"] = lines[i].split("): ", 1)[1]
        records.append(rec)
        i += 1
    return records


def check_chat(checks, work, name, fmt, folder, auto, kwargs, strip_bos, no_bos=False):
    """One chat format against one template: both prompts of every CHATS record, with and without
    a system prompt. no_bos: the tokenizer adds no BOS (its post-processor has none), so the ids
    are the template's without the <|begin_of_text|> it writes as text."""
    def unbos(ids):
        return ids[1:] if no_bos and ids[:1] == [auto.bos_token_id] else ids
    slug = name.replace("/", "-")
    data = work / f"chat-{slug}.jsonl"
    with open(data, "w", encoding="utf-8") as f:
        for k, (user, output) in enumerate(CHATS):
            f.write(json.dumps({"id": str(k), "input": user, "output": output, "profile": [{"text": PROFILE_ITEM}]},
                               ensure_ascii=False) + "\n")
    prompts, expected = [], []
    for system in (SYSTEM, ""):
        config = work / f"chat-{slug}.json"
        config.write_text(json.dumps({
            "model": {"path": str(work / "no-model")},
            "tokenizer": {"path": str(folder)},
            "data": {"train_file": str(data), "item_template": "{text}", "prompt_template": "{profile}{input}",
                     "profile_template": "Past reviews:\n{items}\n\n", "retrieval": "first", "top_k": 1,
                     "chat_format": fmt, "system_prompt": system}}))
        got = parse_inspect(percetrain("inspect-data", "--config", config, "--limit", len(CHATS)).stdout)
        checks.true(f"chat {name}: inspect-data printed every record ({'with' if system else 'no'} system prompt)",
                    len(got) == len(CHATS), f"{len(got)} of {len(CHATS)}")
        for rec, (user, output) in zip(got, CHATS):
            for key, content in (("personalised", f"Past reviews:\n{PROFILE_ITEM}\n\n{user}"), ("counterfactual", user)):
                messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": content}]
                text = auto.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs)
                ids = unbos(list(auto.apply_chat_template(messages, tokenize=True, add_generation_prompt=True,
                                                          return_dict=False, **kwargs)))
                # percetrain's prompt text leaves BOS to the tokenizer (Llama 3's template writes it as text).
                want_text = text[len(auto.bos_token):] if strip_bos and text.startswith(auto.bos_token) else text
                prompts.append(rec[key])
                expected.append((key, messages, want_text, ids, rec[key + "_tokens"], rec["response"], output))
    if not expected:
        return
    texts_ok = [p == e[2] for p, e in zip(prompts, expected)]
    first = next((i for i, ok in enumerate(texts_ok) if not ok), None)
    checks.true(f"chat {name}: prompt text = apply_chat_template({', '.join(f'{k}={v}' for k, v in kwargs.items())})",
                all(texts_ok), f"{sum(texts_ok)} of {len(texts_ok)} prompts identical"
                + ("" if first is None else f"; first not:\n  percetrain: {json.dumps(prompts[first])}\n  reference:  {json.dumps(expected[first][2])}"))
    prompts_file = work / f"chat-{slug}-prompts.jsonl"
    with open(prompts_file, "w", encoding="utf-8") as f:
        for p in prompts:
            f.write(json.dumps({"text": p}, ensure_ascii=False) + "\n")
    got_ids = percetrain_ids(folder, prompts_file, True)
    compare_ids(checks, f"chat {name}: prompt ids = apply_chat_template(tokenize=True)"
                + (" without its leading BOS" if no_bos else ""), got_ids,
                [e[3] for e in expected], prompts)
    counts = [e[4] for e in expected]
    checks.equal(f"chat {name}: inspect-data's prompt token counts", counts, [len(e[3]) for e in expected])
    if fmt != "chatml":
        # The training sequence is the template's whole conversation: prompt + answer + turn end
        # (Qwen3's template ends the turn with "<|im_end|>\n"; the model stops at <|im_end|>).
        # Not for chatml: Qwen3's template renders an answer with the think block, as format qwen3.
        bad = []
        for e in expected:
            key, messages, _, ids, _, response, output = e
            full = unbos(list(auto.apply_chat_template(messages + [{"role": "assistant", "content": output}],
                                                       tokenize=True, return_dict=False, **kwargs)))
            if fmt == "qwen3" and full[-1:] == auto.convert_tokens_to_ids(["Ċ"]):
                full = full[:-1]
            # Llama 3's template writes the next assistant header whatever add_generation_prompt says.
            header = auto.encode("<|start_header_id|>assistant<|end_header_id|>\n\n", add_special_tokens=False)
            if fmt == "llama3" and full[-len(header):] == header:
                full = full[:-len(header)]
            want = "|".join(auto.convert_ids_to_tokens(full[len(ids):]))
            if full[:len(ids)] != ids or response != want:
                bad.append(f"{key} {json.dumps(output)}: percetrain {response} reference {want}")
        checks.true(f"chat {name}: response tokens = the template's assistant turn", not bad,
                    f"{len(expected) - len(bad)} of {len(expected)} sequences" + (f"; first not: {bad[0]}" if bad else ""))


def main():
    qwen3 = require_fixture("qwen3-tokenizer")
    llama3 = require_fixture("llama3-tokenizer")
    llama2 = require_fixture("llama2-tokenizer.model")
    checks = Checks("tokenizers")
    texts = corpus()
    with Workdir("tokenizers") as work:
        work = work.resolve()  # the configs name files by absolute path
        texts_file = work / "corpus.jsonl"
        with open(texts_file, "w", encoding="utf-8") as f:
            for t in texts:
                f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
        llama3_bos = llama3_bos_folder(llama3, work)
        nfc = lambda t: unicodedata.normalize("NFC", t)
        same = lambda t: t
        auto_qwen3 = check_hf(checks, "qwen3", qwen3, texts, texts_file, nfc)
        auto_llama3 = check_hf(checks, "llama3", llama3, texts, texts_file, same)
        auto_llama3_bos = check_hf(checks, "llama3-bos", llama3_bos, texts, texts_file, same)
        check_llama2(checks, llama2, texts, texts_file)

        # Qwen3's template without enable_thinking is chatml; with enable_thinking=False it adds the
        # empty think block that format qwen3 writes (and the template writes around every answer).
        check_chat(checks, work, "chatml/qwen3", "chatml", qwen3, auto_qwen3, {}, False)
        check_chat(checks, work, "qwen3/qwen3", "qwen3", qwen3, auto_qwen3, {"enable_thinking": False}, False)
        check_chat(checks, work, "llama3/llama3-bos", "llama3", llama3_bos, auto_llama3_bos, {}, True)
        # percetrain adds BOS as the tokenizer's post-processor says, as tokenizer(text) does; the
        # fixture's older copy adds none, so its prompts lack the BOS the template writes as text.
        check_chat(checks, work, "llama3/llama3", "llama3", llama3, auto_llama3, {}, True, no_bos=True)
    checks.finish()


if __name__ == "__main__":
    main()
