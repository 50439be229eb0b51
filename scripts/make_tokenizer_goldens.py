#!/usr/bin/python3
"""Writes tests/golden/tokenizer/: reference SentencePiece ids for percetrain's tokenizer tests.

Run with Debian's /usr/bin/python3 (package python3-sentencepiece, the same 0.1.97 library the
C++ code links). For the Llama 2 tokenizer (../shared/fixtures/llama2-tokenizer.model, never
copied into the repository) and the demo tokenizer (data/tokenizer/tokenizer.model) it writes

  <name>_ids.jsonl   one line per string of TEXTS below:
                     {"text", "ids" (sp.encode, no BOS), "pieces"[, "decoded"]}
                     "decoded" is present only when sp.decode(ids) != text (no round trip).
  meta.json          vocab size, special ids (control and unknown) and an FNV-1a 64 hash of
                     all pieces, so that a test checks the whole vocabulary without a copy.

Usage: /usr/bin/python3 scripts/make_tokenizer_goldens.py [--llama2 PATH]
"""

import argparse
import json
import os
import sys

import sentencepiece as spm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TEXTS = [
    # Empty and whitespace.
    "", " ", "  ", "   ", "\t", "\n", "\r\n", " \n ", "\n\n\n", "\t\t\tindented",
    "a  b", "a   b    c", "a\tb", "a\nb", "line one\nline two\n", "trailing space ",
    "trailing spaces   ", " leading space", "  two leading spaces", "    four leading spaces",
    "\tleading tab", "\nleading newline", "mixed \t \n whitespace", "a \u00a0b (no-break space)",
    "ideographic\u3000space", "zero\u200bwidth", "soft\u00adhyphen", "\ufeffbyte order mark",
    # English.
    "Hello", "Hello world", "Hello, world!", "hello", "HELLO WORLD", "The quick brown fox jumps over the lazy dog.",
    "It's a beautiful day, isn't it?", "I can't believe it's not butter!",
    "She said, \"Don't go there.\"", "Wait... what?!", "Well -- that was unexpected.",
    "Mr. and Mrs. Smith live at 221B Baker St., London.", "e.g., i.e., etc., vs.",
    "The U.S.A. and the U.K. signed the treaty in 1945.",
    "Supercalifragilisticexpialidocious", "antidisestablishmentarianism",
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    "Once upon a time, in a land far, far away, there lived a curious little fox who loved to read.",
    "To be, or not to be, that is the question.",
    "All human beings are born free and equal in dignity and rights.",
    "The mitochondria is the powerhouse of the cell.",
    "Tokenization splits text into pieces; byte fallback covers the rest.",
    "state-of-the-art, well-known, mother-in-law", "rock'n'roll", "o'clock", "don't won't shan't",
    "CamelCaseIdentifier", "snake_case_identifier", "SCREAMING_SNAKE_CASE", "kebab-case-word",
    # Review-like text (the demo's domain).
    "This blender is great! Five stars.", "Terrible product. Broke after 2 days :(",
    "I bought this for my wife's birthday and she loves it <3",
    "Pros: cheap, light. Cons: flimsy, loud.", "★★★★☆ would buy again",
    "5/5 stars!!! Highly recommend!!!", "meh... it's ok i guess", "Worth every penny.",
    "The battery life is about 12 hours, which is fine for the price ($29.99).",
    "Arrived on 3/14/2023 in perfect condition; setup took 5 minutes.",
    "Rating: 2 out of 5. The zipper broke on day one and customer service never replied.",
    "My kids LOVE this board game -- we play it every Friday night :)",
    # Numbers.
    "0", "1", "7", "42", "123", "2024", "1234567890", "3.14159", "-273.15", "+1", "1,000,000",
    "1.000.000,50", "6.02e23", "1e-9", "0x1F", "0b1010", "007", "1st 2nd 3rd 4th", "50%", "$5",
    "€12.50", "£3", "¥1000", "12:30", "23:59:59", "2024-01-31", "31/12/1999", "+44 20 7946 0958",
    "(555) 123-4567", "v1.2.3", "3/4", "½ ¼ ¾", "x² + y² = z²", "10^6", "99 bottles of beer",
    "The year 1999 had 365 days; 2000 had 366.",
    # Code.
    "def add(a, b):\n    return a + b\n",
    "for i in range(10):\n\tprint(i)",
    "int main() { return 0; }",
    "#include <iostream>\nint main() {\n  std::cout << \"hi\\n\";\n}\n",
    "if (x != nullptr && x->next) { x = x->next; }",
    "const auto [key, value] = *map.begin();",
    "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;",
    "{\"key\": \"value\", \"list\": [1, 2, 3], \"null\": null}",
    "<html><body><p class=\"x\">Hi</p></body></html>",
    "$ ls -la /usr/bin | grep python3 > out.txt 2>&1",
    "git commit -m \"fix: handle empty input\"",
    "lambda x: x ** 2 if x > 0 else -x",
    "a[i][j] += b[k] * c;  // accumulate",
    "/* block comment */ x = y >> 2 | z << 3;",
    "fn main() -> Result<(), Box<dyn Error>> { Ok(()) }",
    "https://example.com/path?query=1&other=two#frag",
    "user.name+tag@example.co.uk",
    "C:\\Users\\Public\\Documents\\file.txt",
    "#hashtag @mention",
    "\\frac{a}{b} + \\sum_{i=1}^{n} x_i",
    "    indented code block with four spaces",
    # Accents, composed (NFC) and decomposed (NFD); identity normalisation keeps them apart.
    "café", "cafe\u0301", "naïve", "nai\u0308ve", "résumé", "re\u0301sume\u0301",
    "Ångström", "A\u030angstro\u0308m", "\u212bngstr\u00f6m (angstrom sign)", "Zürich",
    "São Paulo", "Kraków", "Łódź", "Crème brûlée", "jalapeño", "façade", "Ærøskøbing",
    "straße", "STRASSE", "İstanbul ıi", "Việt Nam", "Ñandú", "\u0301 lone combining mark",
    "ﬁ ligature", "Ω ohm \u2126", "ｆｕｌｌｗｉｄｔｈ　ＡＢＣ１２３",
    # Other scripts.
    "Привет, мир!", "Καλημέρα κόσμε", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया",
    "สวัสดีชาวโลก", "Բարեւ աշխարհ", "გამარჯობა", "ሰላም ልዑል", "ᚠᚢᚦᚨᚱᚲ",
    # CJK.
    "你好，世界！", "我爱自然语言处理。", "中文和English混合text", "こんにちは世界",
    "カタカナとひらがなと漢字", "東京は日本の首都です。", "안녕하세요 세계", "한국어 텍스트",
    "\u1100\u1161\u11a8 (conjoining jamo)", "漢字", "一二三四五六七八九十", "「引用」『二重』",
    "日本語のテキスト、句読点。", "繁體中文與简体中文",
    # Emoji and symbols.
    "🙂", "😀😃😄", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇺🇸🇯🇵", "1️⃣", "❤️", "I ❤ NY",
    "The 🐶 ate my 📚!", "☕️ + 🥐 = 😋", "🚀🚀🚀 to the moon", "∑∫√∞≠≈", "→ ← ↑ ↓ ⇒",
    "┌─┐│└┘", "©®™", "♠♣♥♦", "°C °F", "±×÷", "‰ ‱", "§ ¶ †", "⁇",
    # SentencePiece's own markers and special-token spellings are plain text to sp.encode.
    "<s>", "</s>", "<unk>", "<s>Hello</s>", "<pad>", "[INST] Hi [/INST]",
    "\u2581", "\u2581\u2581", "\u2581Hello", "a\u2581b", "<0x41>",
    # Control characters and repetition.
    "\x00", "a\x00b", "\x01\x02\x03", "bell\x07", "\x7f", "\u0085next line", "\u2028\u2029",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "!!!!!!!!!!", "..........", "----------",
    "==========", "ababababababab", "1111111111", "   \t   \t   ",
    "The End.",
]


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "{:016x}".format(h)


def write_goldens(sp, path):
    lines = []
    for text in TEXTS:
        ids = sp.encode(text)
        row = {"text": text, "ids": ids, "pieces": [sp.id_to_piece(i) for i in ids]}
        decoded = sp.decode(ids)
        if decoded != text:
            row["decoded"] = decoded
        lines.append(json.dumps(row, ensure_ascii=False))
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")


def meta(sp):
    n = sp.get_piece_size()
    pieces = "\n".join(sp.id_to_piece(i) for i in range(n)).encode("utf-8")
    return {
        "vocab_size": n,
        "unk_id": sp.unk_id(), "bos_id": sp.bos_id(), "eos_id": sp.eos_id(), "pad_id": sp.pad_id(),
        "special_ids": [i for i in range(n) if sp.is_control(i) or sp.is_unknown(i)],
        "pieces_fnv1a64": fnv1a64(pieces),  # every piece in id order, joined by "\n"
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama2", default=os.path.join(ROOT, "..", "shared", "fixtures", "llama2-tokenizer.model"))
    ap.add_argument("--demo", default=os.path.join(ROOT, "data", "tokenizer", "tokenizer.model"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "golden", "tokenizer"))
    args = ap.parse_args()

    assert len(TEXTS) == len(set(TEXTS)), "duplicate strings in TEXTS"
    os.makedirs(args.out, exist_ok=True)
    out_meta = {}
    for name, model in (("llama2", args.llama2), ("demo", args.demo)):
        sp = spm.SentencePieceProcessor(model_file=model)
        write_goldens(sp, os.path.join(args.out, name + "_ids.jsonl"))
        out_meta[name] = meta(sp)
        print("{}: {} strings, vocab {}".format(name, len(TEXTS), sp.get_piece_size()))
    with open(os.path.join(args.out, "meta.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump(out_meta, f, indent=2, sort_keys=True)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
