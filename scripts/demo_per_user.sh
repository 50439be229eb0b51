#!/usr/bin/env bash
# The per-user adapter table of docs/adapters.md ("One adapter per user"): on top of the shared demo model
# (build/demo/run/final, made by scripts/demo.sh when missing) trains one LoRA adapter per user
# (lora.per_user) on that user's training reviews, once with PerCE and once with CE, then measures
# the held-out reviews (data/demo/test.jsonl, one per user) with the shared model alone and with each
# user's adapter: mean log P of personal-span tokens and of the other tokens (`score`), and ROUGE-L /
# METEOR of generated reviews (temperature 0.4, seed 0, 64 new tokens).
#   bash scripts/demo_per_user.sh                 (after scripts/build.sh; ~3 minutes on 2 cores)
#   RANK=8 LR=5e-3 EPOCHS=4 BATCH=4 to change the adapters' training.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/percetrain
shared=$PWD/build/demo/run/final
out=$PWD/build/demo/per-user
[[ -f $shared/model.safetensors ]] || bash scripts/demo.sh --quiet
mkdir -p "$out"
common=(--config configs/demo.json --set "model.path=$shared")

measure() {  # NAME [--adapters DIR]
  local name=$1
  shift
  rm -f "$out/$name.scores.jsonl" "$out/$name.predictions.jsonl"
  "$bin" score "${common[@]}" --quiet --out "$out/$name.scores.jsonl" "$@" >/dev/null
  "$bin" generate "${common[@]}" --data data/demo/test.jsonl --out "$out/$name.predictions.jsonl" \
    --set generate.max_new_tokens=64 "$@" >/dev/null 2>&1
  "$bin" eval --predictions "$out/$name.predictions.jsonl" --references data/demo/test.jsonl \
    --out "$out/$name.eval.json" >/dev/null
}

measure shared
for objective in perce ce; do
  start=$(date +%s)
  "$bin" train "${common[@]}" --overwrite --quiet --set "output.dir=$out/train-$objective" \
    --set objective.name=$objective --set lora.per_user=true --set lora.rank="${RANK:-8}" \
    --set train.lr="${LR:-5e-3}" --set train.epochs="${EPOCHS:-4}" --set train.batch_size="${BATCH:-4}" \
    --set train.micro_batch_size="${BATCH:-4}" --set train.warmup_ratio=0 --set train.save_every=0 >/dev/null
  echo "per-user $objective adapters: trained in $(( $(date +%s) - start )) s"
  measure "per-user-$objective" --adapters "$out/train-$objective/adapters"
done

OUT="$out" python3 - <<'EOF'
import json, os
out = os.environ["OUT"]
print("| held-out reviews (32 users, one each) | personal-span tokens: mean log P | other tokens: mean log P | ROUGE-L | METEOR |")
print("|---|---|---|---|---|")
for name, label in (("shared", "shared PerCE model alone"), ("per-user-perce", "+ per-user adapters, PerCE"),
                    ("per-user-ce", "+ per-user adapters, CE")):
    s = json.load(open("%s/%s.scores.summary.json" % (out, name)))["ground_truth"]["mean_logp"]
    e = json.load(open("%s/%s.eval.json" % (out, name)))
    m = e["metrics"]
    print("| %s | %.3f | %.3f | %.4f | %.4f |" % (label, s["personal"], s["other"], m["rougeL"], m["meteor"]))
EOF
