#!/usr/bin/env bash
# One Llama-shaped training step (hidden 512, 6 layers, GQA 8/4, vocabulary 4000, batch 4 x 256
# tokens, loss on the last 128) in plain PyTorch and in percetrain, in one run, and the ratio.
# Needs build/percetrain and Debian's python3-torch (bash scripts/setup.sh --reference).
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${STEPS:-3}"
py=$(/usr/bin/python3 scripts/bench_vs_pytorch.py --steps "$steps" | tail -n 1)
pt=$(build/percetrain bench --config configs/demo.json --variants ce --steps "$steps" --json \
  --set model.path=../build/bench/medium --set model.init_preset=medium \
  --set train.batch_size=4 --set train.micro_batch_size=4 \
  --with-length 256 --without-length 129 --response-length 128)
/usr/bin/python3 - "$py" "$pt" <<'PY'
import json, sys
py = json.loads(sys.argv[1]); pt = json.loads(sys.argv[2])["results"][0]
print(f"plain PyTorch {py['torch']}: {py['ms_per_step']:.1f} ms/step, {py['tokens_per_s']:.0f} tokens/s")
print(f"percetrain:        {pt['ms_per_step']:.1f} ms/step, {pt['tokens_per_s']:.0f} tokens/s, "
      f"MFU {100 * pt['model_flops_per_s'] / pt['matmul_peak_flops_per_s']:.1f}% of a "
      f"{pt['matmul_peak_flops_per_s'] / 1e9:.1f} GFLOP/s matmul")
print(f"speed-up: {py['ms_per_step'] / pt['ms_per_step']:.2f}x")
PY
