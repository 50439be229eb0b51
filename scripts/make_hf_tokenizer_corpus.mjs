// Writes tests/golden/tokenizer/hf_corpus.jsonl: the strings the tokenizer.json parity tests
// encode, written for this project (hand-written fragments, plus seeded combinations of them).
// Deterministic: same output on every run.   node scripts/make_hf_tokenizer_corpus.mjs [OUT]
//
// Kept out on purpose, with the reason: U+0085 and U+FEFF (JavaScript's \s disagrees with the
// Rust library's on them), characters newer than Unicode 13 (Debian 12's utf8proc/PCRE2 tables
// predate them), and the long s / Kelvin sign after an apostrophe (the JavaScript port rewrites
// `(?i:'s|...)` to ASCII-only cases, the Rust library folds case fully).
import fs from "node:fs";

const out = process.argv[2] ?? new URL("../tests/golden/tokenizer/hf_corpus.jsonl", import.meta.url).pathname;

let seed = 20260307;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
const pick = (xs) => xs[Math.floor(rand() * xs.length)];
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));

const corpus = [];
const add = (s) => corpus.push(s);

// --- English prose
const prose = [
  "The quick brown fox jumps over the lazy dog.",
  "I bought this blender last spring and it still works like the day I got it.",
  "Honestly, the battery life is the only reason I kept these headphones.",
  "She said the tent was easy to set up, but it took us forty minutes in the rain.",
  "Personalisation means the model writes the way you write, not the way everyone writes.",
  "We evaluate on three tasks: abstract generation, review writing, and topic writing.",
  "Results improved by more than ten percent on average (up to 68% on one metric).",
  "Mr. and Mrs. Smith arrived at 5 p.m., exactly as planned; nobody else did.",
  "\"Is it worth it?\" he asked. \"Absolutely,\" she replied, \"if you cook every day.\"",
  "Well... I'm not sure -- maybe? Let's see what happens!!!",
  "E-mail me at jane.doe@example.com or visit https://example.org/path?q=1&r=two#frag.",
  "The U.S.A., the U.K. and the E.U. signed the agreement on 3 March.",
  "Its colour is grey, its flavour is mild; its behaviour is predictable.",
  "A well-known, state-of-the-art, end-to-end system.",
  "Pros: cheap, light, quiet. Cons: flimsy lid, short cord, no warranty.",
  "To be, or not to be, that is the question:",
  "All work and no play makes Jack a dull boy.",
  "ALL CAPS SENTENCES ARE SHOUTING, SAID THE MODERATOR.",
  "lowercase only text without any punctuation at all",
  "Title Case Is Used For Headlines In Many Newspapers",
  "The paper's models are Qwen3-4B, Qwen3-14B and Llama-3-8B.",
  "Five stars. Would buy again.",
  "One star: arrived broken, customer service never answered.",
  "It's the customers' choice, not the company's.",
  "He was born in 1987 and moved to Berlin in 2015.",
  "Temperature 0.4, top-p 0.95, at most 512 new tokens.",
  "Section 4.2 (see Table 3 and Fig. 7b) explains why.",
  "#hashtag @mention $dollar %percent ^caret &ampersand *star",
  "Semicolons; colons: dashes - en dashes \u2013 em dashes \u2014 ellipses \u2026",
  "\u201cCurly quotes\u201d and \u2018single curly quotes\u2019 are common in edited text.",
];
prose.forEach(add);

// --- code
const code = [
  "def main():\n    print(\"hello, world\")\n\nif __name__ == \"__main__\":\n    main()\n",
  "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}",
  "const x = await fetch(url).then((r) => r.json());",
  "#include <vector>\n#include <string>\n\nint main(int argc, char** argv) { return 0; }",
  "SELECT id, name FROM users WHERE age >= 21 ORDER BY name DESC LIMIT 10;",
  "{\"key\": \"value\", \"list\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true}}",
  "git commit -m 'fix: handle empty input' && git push origin main",
  "    return self._cache.get(key, default)  # fall back when missing",
  "x=1;y=2;z=x+y*3//2**4%5",
  "if (a && b || !c) { throw new Error(`bad ${value}`); }",
  "<div class=\"row\"><span id='a1'>Text</span></div>",
  "fn add(a: i32, b: i32) -> i32 {\n    a + b\n}",
  "std::unique_ptr<Tokenizer> t = load_tokenizer(path);",
  "$ ls -la /usr/local/bin | grep -E '^d' | wc -l",
  "matrix[i][j] += alpha * (x[i] - mean) / (std + 1e-5);",
  "// TODO(someone): remove this hack\n/* block\n * comment\n */",
  "lambda x: x ** 2 if x > 0 else -x",
  "CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL);",
  "import numpy as np\narr = np.zeros((3, 4), dtype=np.float32)",
  "\t\tcase 'a': return 1;\n\t\tdefault: break;",
  "a_b_c = snake_case_name + camelCaseName + PascalCaseName + SCREAMING_CASE",
  "http://localhost:8080/api/v2/items/42?limit=100&offset=0",
  "key1=value1\nkey2 = value2\n[section]\nname=\"quoted\"",
  "=> -> <= >= != == === !== ++ -- += -= *= /= <<= >>= ::",
  "0x1F 0b1010 0o777 1e10 3.0f 2.5e-3 1_000_000",
];
code.forEach(add);

// --- numbers of every length
for (let n = 1; n <= 40; ++n) {
  let s = "";
  for (let i = 0; i < n; ++i) s += String((i * 7 + n) % 10);
  add(s);
  add(`Total: ${s} units`);
  if (n % 3 === 0) add(`-${s}.${s.slice(0, 2)}`);
}
["0", "00", "007", "1,234", "12,345,678", "3.14159", "-0.5", "+42", "1/2", "3:45", "2024-01-31",
 "12:30:59.999", "+1 (555) 123-4567", "$19.99", "\u20ac5,00", "50%", "1st 2nd 3rd 4th", "10^6",
 "1e-9", "\u00bd \u00be \u2153", "\u0661\u0662\u0663", "\u0967\u0968\u0969", "\uff11\uff12\uff13",
 "\u2460\u2461\u2462", "\u00b2\u00b3", "ISBN 978-3-16-148410-0", "v1.2.3-rc.4", "192.168.0.1",
 "pi is 3.141592653589793238462643383279"].forEach(add);
for (let i = 0; i < 40; ++i) add(String(int(0, 10 ** int(1, 15))));

// --- whitespace runs
const words = ["alpha", "beta", "gamma", "delta", "hello", "world", "token", "space"];
for (let n = 1; n <= 20; ++n) add(`${pick(words)}${" ".repeat(n)}${pick(words)}`);
for (let n = 1; n <= 12; ++n) add(`${" ".repeat(n)}${pick(words)}${" ".repeat(n % 5)}`);
for (let n = 1; n <= 8; ++n) add(`${pick(words)}${"\t".repeat(n)}${pick(words)}`);
for (let n = 1; n <= 8; ++n) add(`${pick(words)}${"\n".repeat(n)}${pick(words)}`);
[" ", "  ", "\t", "\n", "\n\n", "\r\n", "\r\n\r\n", " \n ", "\t \t", " \t\n\r ", "a \n b", "a\n \nb",
 "line one\r\nline two\r\n", "trailing   ", "   leading", "\n\nstarts with newlines", "ends with newlines\n\n\n",
 "mixed \t\t  \n\n  \t end", "x\u00a0y", "x\u2003y", "x\u3000y", "x\u2028y", "x\u2029y", "x\u200by",
 "x\u000by\u000cz", " . , ; ", "word  .  word", "  \u00a0 ", "\t\tindented\n\t\t\tdeeper\n"].forEach(add);

// --- contractions
const subjects = ["I", "you", "he", "she", "it", "we", "they", "that", "there", "who"];
const tails = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'VE", "'M", "'LL", "'D", "'Re", "\u2019s", "\u2019ll"];
for (const t of tails) add(`${pick(subjects)}${t} ${pick(["fine", "here", "done", "going"])}`);
["don't", "DON'T", "won't", "can't", "shouldn't've", "y'all", "o'clock", "rock 'n' roll", "'tis",
 "the '90s", "it's", "IT'S", "Isn't it?", "I'm", "I'M", "we'd've", "'s", "'", "''", "' s", "'ss",
 "James's book", "the boys' toys", "l'homme", "aujourd'hui", "c'est la vie", "d'Artagnan"].forEach(add);

// --- accents, composed and decomposed
const accented = ["caf\u00e9", "na\u00efve", "r\u00e9sum\u00e9", "cr\u00e8me br\u00fbl\u00e9e", "\u00c5ngstr\u00f6m",
  "Z\u00fcrich", "S\u00e3o Paulo", "Ti\u1ebfng Vi\u1ec7t", "\u0153uvre", "stra\u00dfe", "\u00e9t\u00e9",
  "\u00d1and\u00fa", "Dvo\u0159\u00e1k", "\u0141\u00f3d\u017a", "\u1e9e", "fa\u00e7ade", "pi\u00f1ata", "jalape\u00f1o"];
for (const w of accented) {
  add(w);
  add(w.normalize("NFD"));
  add(`The word "${w.normalize("NFD")}" is decomposed here.`);
}
["\u212b", "\u2126", "e\u0301\u0301", "\u0301alone", "a\u0308\u0304", "\u1100\u1161\u11a8", "\u1112\u1161\u11ab\u1100\u1173\u11af",
 "\ufb01ne \ufb02ow", "\u2160 \u2161 \u2162", "\uff21\uff22\uff23", "\u00bd", "\u0041\u030a", "\u0958\u0959",
 "o\u0302\u0323", "o\u0323\u0302"].forEach(add);

// --- CJK and other scripts
["\u4eca\u5929\u5929\u6c14\u5f88\u597d\u3002", "\u6211\u559c\u6b22\u5b66\u4e60\u673a\u5668\u5b66\u4e60\u548c\u81ea\u7136\u8bed\u8a00\u5904\u7406\u3002",
 "\u3053\u3093\u306b\u3061\u306f\u3001\u4e16\u754c\uff01", "\u6771\u4eac\u90fd\u6e0b\u8c37\u533a", "\u30ab\u30bf\u30ab\u30ca\u3068\u3072\u3089\u304c\u306a",
 "\uc548\ub155\ud558\uc138\uc694, \ubc18\uac11\uc2b5\ub2c8\ub2e4.", "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8",
 "\u7e41\u9ad4\u4e2d\u6587\u8207\u7c21\u4f53\u4e2d\u6587", "\u4e2d\u6587English\u6df7\u5408123", "\u300c\u5f15\u7528\u300d\u3010\u62ec\u5f27\u3011\uff08\u5168\u89d2\uff09",
 "\u0417\u0434\u0440\u0430\u0432\u0441\u0442\u0432\u0443\u0439, \u043c\u0438\u0440!", "\u039a\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1 \u03ba\u03cc\u03c3\u03bc\u03b5",
 "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645", "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd", "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
 "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e0a\u0e32\u0e27\u0e42\u0e25\u0e01", "\u10d2\u10d0\u10db\u10d0\u10e0\u10ef\u10dd\u10d1\u10d0", "\u0532\u0561\u0580\u0565\u0582",
 "\u12e8\u12a0\u121b\u122d\u129b", "\u0ba4\u0bae\u0bbf\u0bb4\u0bcd", "\u1781\u17d2\u1798\u17c2\u179a"].forEach(add);
const cjkChars = "\u7684\u4e00\u662f\u4e0d\u4e86\u4eba\u6211\u5728\u6709\u4ed6\u8fd9\u4e3a\u4e4b\u5927\u6765\u4ee5\u4e2a\u4e2d\u4e0a\u4eec\u3042\u3044\u3046\u3048\u304a\u30a2\u30a4\u30a6\uac00\ub098\ub2e4\ub77c";
for (let i = 0; i < 40; ++i) {
  let s = "";
  const n = int(1, 30);
  for (let k = 0; k < n; ++k) s += pick([...cjkChars]);
  add(s);
}

// --- emoji (Unicode 13 or older)
["\ud83d\udc4d", "\ud83d\udc4d\ud83c\udffd", "\ud83d\udc4b\ud83c\udffb\ud83d\udc4b\ud83c\udfff",
 "\ud83d\udc68\u200d\ud83d\udc69\u200d\ud83d\udc67\u200d\ud83d\udc66", "\ud83d\udc69\ud83c\udffe\u200d\ud83d\udcbb",
 "\ud83c\udff3\ufe0f\u200d\ud83c\udf08", "\ud83c\uddef\ud83c\uddf5\ud83c\uddeb\ud83c\uddf7", "1\ufe0f\u20e3 #\ufe0f\u20e3",
 "\u2764\ufe0f", "\u2764", "\ud83d\ude00\ud83d\ude03\ud83d\ude04\ud83d\ude01", "I love it \ud83d\ude0d\ud83d\ude0d\ud83d\ude0d!!",
 "\ud83e\uddd1\u200d\ud83e\udd1d\u200d\ud83e\uddd1", "\ud83c\udff4\udb40\udc67\udb40\udc62\udb40\udc73\udb40\udc63\udb40\udc74\udb40\udc7f",
 "\u263a\ufe0e vs \u263a\ufe0f", "\ud83d\udc41\u200d\ud83d\udde8", "5 \u2b50 review", "\ud83d\udd25\ud83d\udd25 hot take"].forEach(add);
const emoji = ["\ud83d\ude00", "\ud83d\udc4d", "\ud83c\udf89", "\ud83d\ude80", "\u2728", "\ud83d\udca1", "\ud83c\udf55", "\ud83d\udc36", "\ud83c\udf0d"];
const skin = ["", "\ud83c\udffb", "\ud83c\udffc", "\ud83c\udffd", "\ud83c\udffe", "\ud83c\udfff"];
for (let i = 0; i < 30; ++i) add(`${pick(words)} ${pick(emoji)}${pick(["\ud83d\udc4d", "\ud83d\udc4b", "\u270b"])}${pick(skin)} ${pick(words)}`);

// --- unusual but valid UTF-8
["\ufffd", "a\ufffdb", "\uffff", "\ufffe", "\udbff\udfff", "\ue000\uf8ff", "\u0000", "a\u0001b\u001fc",
 "\u007f", "\u0080\u0081\u009f", "\u00a0", "\u00ad", "\u200e\u200f", "\u202e reversed \u202c", "\u2060",
 "\u00c3\u00a9 is mojibake for \u00e9", "\u00e2\u20ac\u2122", "\ud800\udc00", "\ud83f\udffd", "\u034f",
 "\u0300\u0301\u0302", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324", "\u0130stanbul \u0131",
 "\u1e9b\u0323", "\u0345", "\uff9f\uff9e", "\u3099\u309a", "\u0f00\u0f01", "\ud834\udd1e \ud835\udc00\ud835\udc01",
 "\u00ff\u0100\u017f", "\u01c4\u01c5\u01c6", "<0x41>", "\u0120\u010a\u0109", "\u0120hello"].forEach(add);

// --- special tokens inside text (Qwen3's and Llama 3's)
const specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<tool_call>",
  "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
  "<|reserved_special_token_0|>", "<|reserved_special_token_250|>", "<|finetune_right_pad_id|>", "<|vision_pad|>"];
for (const t of specials) {
  add(t);
  add(`before${t}after`);
  add(` ${t} `);
  add(`${t}${t}`);
  add(`text ${t}\nmore`);
}
["<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
 "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
 "<|im_start", "im_start|>", "<|im_end |>", "< |im_end|>", "<|IM_END|>", "<|im_end|", "<<|im_end|>>",
 "<|<|im_end|>|>", "<|reserved_special_token_999|>", "<|begin_of_text", "<think>\n\n</think>\n\n",
 "<|endoftext|><|endoftext|>hello", "<s>", "</s>", "[INST] hi [/INST]", "<unk>", "<pad>", "<|>", "<||>"].forEach(add);

// --- seeded combinations of everything above
const fragments = corpus.slice();
const separators = ["", " ", "  ", "\n", "\t", ", ", ". ", "\n\n", " - "];
while (corpus.length < 1150) {
  const n = int(2, 5);
  let s = pick(fragments);
  for (let k = 1; k < n; ++k) s += pick(separators) + pick(fragments);
  if (s.length <= 600) add(s);
}
add("");
add(prose.join(" ").repeat(3));
add(code.join("\n"));

fs.writeFileSync(out, corpus.map((text) => JSON.stringify({ text })).join("\n") + "\n");
console.log(`wrote ${corpus.length} strings to ${out}`);
