#!/usr/bin/env bash
# The performance anchor: one training step (fp32, AdamW, batch 4 x 256 tokens, loss on the last
# 128; PerCE adds 4 x 129 tokens without the profile) of a Llama shape in
#   transformers   Hugging Face LlamaForCausalLM on PyTorch 2.x (.venv)
#   plain          a plain PyTorch 2.x loop (.venv; scripts/bench_vs_pytorch.py)
#   percetrain-1   percetrain on Debian's LibTorch 1.13 (build/)
#   percetrain-2   percetrain on LibTorch 2.x from the same torch wheel (build-cuda/, run on the CPU)
# for CE and PerCE, alternating ROUNDS times (default 3) so that every implementation sees the
# same load on a shared machine; prints one Markdown table of medians and each one's speed-up
# over transformers. Shapes: SHAPES (default the medium preset's, configs/shapes/llama-medium-config.json,
# and configs/shapes/llama-large-config.json). Needs bash scripts/setup.sh --venv and both builds.
#   ROUNDS=3 STEPS=3 bash scripts/bench_vs_pytorch.sh
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${STEPS:-3}"
rounds="${ROUNDS:-3}"
shapes="${SHAPES:-configs/shapes/llama-medium-config.json configs/shapes/llama-large-config.json}"
python=.venv/bin/python
for f in "$python" build/percetrain build-cuda/percetrain; do
  [[ -x "$f" ]] || { echo "bench_vs_pytorch: $f is missing (bash scripts/setup.sh --venv; bash scripts/build.sh; bash scripts/build.sh --cuda)" >&2; exit 1; }
done
results=$(mktemp)
trap 'rm -f "$results"' EXIT
lengths=(--with-length 256 --without-length 129 --response-length 128)
for shape in $shapes; do
  for ((i = 0; i < rounds; i++)); do
    echo "bench_vs_pytorch: $shape, round $((i + 1)) of $rounds" >&2
    for objective in ce perce; do
      for impl in transformers plain; do
        # Assigned first: set -e stops on a failed substitution here, not inside an echo's arguments.
        run=$("$python" scripts/bench_vs_pytorch.py --config "$shape" --impl "$impl" --objective "$objective" \
          --steps "$steps" | tail -n 1)
        echo "{\"shape\": \"$shape\", \"round\": $i, \"run\": $run}" >>"$results"
      done
    done
    for build in build build-cuda; do
      json=$("$build/percetrain" bench --config configs/demo.json --random-config "$shape" --variants ce,perce \
        --steps "$steps" --json --set train.batch_size=4 --set train.micro_batch_size=4 "${lengths[@]}" | tr -d '\n')
      echo "{\"shape\": \"$shape\", \"round\": $i, \"build\": \"$build\", \"bench\": $json}" >>"$results"
    done
  done
done
"$python" - "$results" <<'PY'
import collections, json, statistics, sys
ms = collections.defaultdict(list)
torch_versions = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    if "run" in r:
        run = r["run"]
        ms[(r["shape"], run["objective"], run["implementation"])].append(run["ms_per_step"])
        torch_versions[run["implementation"]] = run["torch"]
    else:
        name = "percetrain 1.13" if r["build"] == "build" else "percetrain 2.x"
        for v in r["bench"]["results"]:
            ms[(r["shape"], v["variant"], name)].append(v["ms_per_step"])
tokens = {"ce": 4 * 256, "perce": 4 * (256 + 129)}
print("| shape | objective | implementation | ms/step (median; rounds) | tokens/s | vs transformers |")
print("|---|---|---|---|---|---|")
for (shape, objective, impl), values in sorted(ms.items(), key=lambda kv: (kv[0][0], kv[0][1], ["transformers", "plain", "percetrain 1.13", "percetrain 2.x"].index(kv[0][2]))):
    m = statistics.median(values)
    ref = statistics.median(ms[(shape, objective, "transformers")])
    label = impl if not impl in torch_versions else f"{impl} (torch {torch_versions[impl]})"
    print(f"| {shape.split('/')[-1].replace('-config.json', '')} | {objective} | {label} | {m:.0f} "
          f"({', '.join(f'{v:.0f}' for v in values)}) | {tokens[objective] / m * 1000:.0f} | {ref / m:.2f}x |")
PY
