#!/usr/bin/env bash
# Decode tokens/s with and without the KV cache, on the demo-sized model and on a randomly
# initialised Qwen3-0.6B-shaped model (nothing is downloaded; the 0.6B weights stay in memory).
#   PERCETRAIN=path/to/percetrain  BENCH_DIR=scratch folder  DEVICE=cpu|cuda|auto
#   DEMO_PROMPT / DEMO_NEW, QWEN_PROMPT / QWEN_NEW: prompt and new-token counts of the two runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${PERCETRAIN:-build/percetrain}"
work="${BENCH_DIR:-build/bench-generate}"
device="${DEVICE:-cpu}"
mkdir -p "$work"

"$bin" init-model --arch llama --preset tiny --tokenizer data/tokenizer --out "$work/tiny-llama" --overwrite >/dev/null
echo "== demo-sized model: percetrain init-model --arch llama --preset tiny"
"$bin" generate --benchmark --model "$work/tiny-llama" --device "$device" \
  --prompt-tokens "${DEMO_PROMPT:-64}" --new-tokens "${DEMO_NEW:-64}"

# configs/shapes/qwen3-0.6b-config.json is Qwen3-0.6B's config.json (hidden 1024, 28 layers, 16 heads /
# 8 kv heads, head_dim 128, intermediate 3072, vocabulary 151936, tied embeddings).
echo "== Qwen3-0.6B-shaped model, random weights"
"$bin" generate --benchmark --random-config configs/shapes/qwen3-0.6b-config.json --device "$device" \
  --prompt-tokens "${QWEN_PROMPT:-64}" --new-tokens "${QWEN_NEW:-16}"
