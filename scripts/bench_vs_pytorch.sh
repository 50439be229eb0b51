#!/usr/bin/env bash
# One Llama-shaped training step (hidden 512, 6 layers, GQA 8/4, vocabulary 4000, batch 4 x 256
# tokens, loss on the last 128) in plain PyTorch and in percetrain, alternating ROUNDS times
# (default 3) so that both see the same load on a shared machine, and the median of each.
# Needs build/percetrain and Debian's python3-torch (bash scripts/setup.sh --reference).
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${STEPS:-3}"
rounds="${ROUNDS:-3}"
results=()
for ((i = 0; i < rounds; i++)); do
  results+=("$(/usr/bin/python3 scripts/bench_vs_pytorch.py --steps "$steps" | tail -n 1)")
  results+=("$(build/percetrain bench --config configs/demo.json --variants ce --steps "$steps" --json \
    --set model.path=../build/bench/medium --set model.init_preset=medium \
    --set train.batch_size=4 --set train.micro_batch_size=4 \
    --with-length 256 --without-length 129 --response-length 128)")
done
/usr/bin/python3 - "${results[@]}" <<'PY'
import json, statistics, sys
py, pt = [], []
for text in sys.argv[1:]:
    j = json.loads(text)
    if "results" in j:
        pt.append(j["results"][0])
    else:
        py.append(j)
for k, (a, b) in enumerate(zip(py, pt)):
    print(f"round {k + 1}: plain PyTorch {a['ms_per_step']:.1f} ms/step, percetrain {b['ms_per_step']:.1f} ms/step "
          f"({100 * b['model_flops_per_s'] / b['matmul_peak_flops_per_s']:.1f}% MFU of a "
          f"{b['matmul_peak_flops_per_s'] / 1e9:.1f} GFLOP/s matmul): {a['ms_per_step'] / b['ms_per_step']:.2f}x")
a = statistics.median(r["ms_per_step"] for r in py)
b = statistics.median(r["ms_per_step"] for r in pt)
mfu = statistics.median(r["model_flops_per_s"] / r["matmul_peak_flops_per_s"] for r in pt)
ratios = sorted(x["ms_per_step"] / y["ms_per_step"] for x, y in zip(py, pt))
print(f"median: plain PyTorch {py[0]['torch']} {a:.1f} ms/step, percetrain {b:.1f} ms/step, "
      f"percetrain MFU {100 * mfu:.1f}%; speed-up {a / b:.2f}x (median of the rounds' ratios "
      f"{statistics.median(ratios):.2f}x, range {ratios[0]:.2f}-{ratios[-1]:.2f}x)")
PY
