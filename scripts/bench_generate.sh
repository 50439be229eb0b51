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

"$bin" init-model --arch llama --preset tiny --tokenizer data/tokenizer --out "$work/tiny-llama" >/dev/null
echo "== demo-sized model: percetrain init-model --arch llama --preset tiny"
"$bin" generate --benchmark --model "$work/tiny-llama" --device "$device" \
  --prompt-tokens "${DEMO_PROMPT:-64}" --new-tokens "${DEMO_NEW:-64}"

# Qwen3-0.6B's config.json (hidden 1024, 28 layers, 16 heads / 8 kv heads, head_dim 128,
# intermediate 3072, vocabulary 151936, tied embeddings).
cat >"$work/qwen3-0.6b-config.json" <<'JSON'
{
  "architectures": ["Qwen3ForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151645,
  "head_dim": 128,
  "hidden_act": "silu",
  "hidden_size": 1024,
  "initializer_range": 0.02,
  "intermediate_size": 3072,
  "max_position_embeddings": 40960,
  "max_window_layers": 28,
  "model_type": "qwen3",
  "num_attention_heads": 16,
  "num_hidden_layers": 28,
  "num_key_value_heads": 8,
  "rms_norm_eps": 1e-06,
  "rope_scaling": null,
  "rope_theta": 1000000,
  "sliding_window": null,
  "tie_word_embeddings": true,
  "torch_dtype": "bfloat16",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 151936
}
JSON
echo "== Qwen3-0.6B-shaped model, random weights"
"$bin" generate --benchmark --random-config "$work/qwen3-0.6b-config.json" --device "$device" \
  --prompt-tokens "${QWEN_PROMPT:-64}" --new-tokens "${QWEN_NEW:-16}"
