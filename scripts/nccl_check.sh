#!/usr/bin/env bash
# Two ranks on NCCL train what one rank trains (the GPU check's multi-GPU step; needs 2 GPUs):
# three steps of the demo job in fp32 on cuda, once on one rank and once through torchrun on two
# with the nccl backend, then the largest difference of the final weights relative to each
# tensor's magnitude. Adam runs in its linear regime (adam_eps 1), as in the Gloo equivalence
# test (docs/distributed.md), so that the comparison sees gradients, not Adam's sign-like steps.
#   PERCETRAIN_BINARY=build-gpu/percetrain TORCHRUN="python3 -m torch.distributed.run" bash scripts/nccl_check.sh
# DEVICE=cpu BACKEND=gloo runs the same check on the CPU (how the script itself is tested here).
set -euo pipefail
bin="$(realpath "${PERCETRAIN_BINARY:-$(dirname "$0")/../build-gpu/percetrain}")"  # before the cd
cd "$(dirname "$0")/.."
torchrun="${TORCHRUN:-torchrun}"
python="${PYTHON:-python3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/nccl_check.XXXXXX")"
trap 'rm -rf "$work"' EXIT
device="${DEVICE:-cuda}"
backend="${BACKEND:-nccl}"
common=(--config configs/demo.json --quiet --set model.device="$device" --set model.dtype=float32
        --set train.max_steps=3 --set train.adam_eps=1 --set train.distributed.backend="$backend"
        --set model.path="$work/model")
"$bin" train "${common[@]}" --set output.dir="$work/one" >/dev/null
$torchrun --no_python --standalone --nproc_per_node 2 "$bin" train "${common[@]}" --set output.dir="$work/two" >/dev/null
"$python" - "$work/one/final/model.safetensors" "$work/two/final/model.safetensors" "$backend" <<'PY'
import sys
from safetensors.torch import load_file
one, two = load_file(sys.argv[1]), load_file(sys.argv[2])
worst = max(((one[k].double() - two[k].double()).abs().max() / one[k].double().abs().max().clamp_min(1e-30)).item() for k in one)
print(f"{sys.argv[3]}: 2 ranks vs 1 after 3 steps, worst difference relative to each tensor's magnitude {worst:.2e}")
sys.exit(0 if worst < 1e-5 else 1)
PY
