#!/usr/bin/env bash
# Encode throughput of percetrain's tokenizer.json implementation against Hugging Face `tokenizers`
# (the Rust library, from the pinned .venv) in the same run, on the real Qwen3 and Llama 3 files in
# ../shared/fixtures: ~4 MB of English (project-generated review prose) and ~2 MB of mixed-script
# text (the parity corpus repeated). One thread on both sides (TOKENIZERS_PARALLELISM=false makes
# encode_batch sequential), loading excluded; both must report the same token count. Needs the
# .venv (README setup) and a built build/percetrain.
#   bash scripts/bench_tokenizers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
fixtures=../shared/fixtures
python=.venv/bin/python
for need in "$python" build/percetrain "$fixtures/qwen3-tokenizer/tokenizer.json" "$fixtures/llama3-tokenizer/tokenizer.json"; do
  [[ -e "$need" ]] || { echo "bench_tokenizers: $need is missing" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

/usr/bin/python3 scripts/make_tokenizer_corpus.py "$work/english.txt" --lines 40000 >/dev/null
"$python" - "$work/english.txt" tests/golden/tokenizer/hf_corpus.jsonl "$work/english.jsonl" "$work/mixed.jsonl" <<'PY'
import json, sys
eng, corpus, out_e, out_m = sys.argv[1:]
with open(eng, encoding="utf-8") as f, open(out_e, "w", encoding="utf-8") as o:
    for line in f.read().split("\n"):
        if line:
            o.write(json.dumps({"text": line}, ensure_ascii=False) + "\n")
with open(corpus, encoding="utf-8") as f:
    texts = [json.loads(l)["text"] for l in f.read().split("\n") if l]
size = 0
with open(out_m, "w", encoding="utf-8") as o:
    while size < 2e6:
        for t in texts:
            o.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
            size += len(t.encode("utf-8"))
PY

cat >"$work/bench.py" <<'PY'
import json, sys, time
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
with open(sys.argv[2], encoding="utf-8") as f:
    texts = [json.loads(l)["text"] for l in f.read().split("\n") if l]
size = sum(len(t.encode("utf-8")) for t in texts)
t0 = time.perf_counter()
tokens = sum(len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False))
s = time.perf_counter() - t0
print(f"bytes {size} tokens {tokens} seconds {s:.3f} MB/s {size / 1e6 / s:.2f}")
PY

printf "%-8s %-8s %12s %14s %8s %s\n" model text "C++ MB/s" "tokenizers MB/s" ratio tokens
for model in qwen3 llama3; do
  for text in english mixed; do
    cpp=$(build/percetrain tokenize --tokenizer "$fixtures/$model-tokenizer" --no-special --bench --input "$work/$text.jsonl")
    ref=$(TOKENIZERS_PARALLELISM=false "$python" "$work/bench.py" "$fixtures/$model-tokenizer/tokenizer.json" "$work/$text.jsonl")
    ct=$(awk '{print $4}' <<<"$cpp"); rt=$(awk '{print $4}' <<<"$ref")
    [[ "$ct" == "$rt" ]] || echo "warning: token counts differ ($ct vs $rt)" >&2
    cm=$(awk '{print $8}' <<<"$cpp"); rm_=$(awk '{print $8}' <<<"$ref")
    printf "%-8s %-8s %12s %14s %7.2fx %s\n" "$model" "$text" "$cm" "$rm_" "$(awk -v a="$cm" -v b="$rm_" 'BEGIN{print a/b}')" "$ct"
  done
done
