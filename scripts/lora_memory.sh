#!/usr/bin/env bash
# Measures what a LoRA step costs per token (peak RSS of `percetrain bench`, PerCE with gradient
# checkpointing, batch 1) on random llama-shaped models of hidden size 512 with 6 and 12 layers at
# five lengths, fits peak = a_L + (p L + f) T + c T^2 jointly (c: the one layer whose attention
# probabilities are alive at a time, a CPU cost that SDPA avoids on GPUs), and computes from p and f (and the parameter counts of the paper's models) what fits on 24 / 80 /
# 141 GB GPUs at the paper's length. Prints the measurements, the fit and the table.
#   bash scripts/lora_memory.sh            (after scripts/build.sh; ~5 minutes on 2 cores)
#   LENGTHS="512 768 1024 1536 2048" RANK=8 TARGETS=q_proj,v_proj PAPER_LENGTH=5000 to change them.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/percetrain
out=build/bench/lora-memory
mkdir -p "$out"
lengths=(${LENGTHS:-512 768 1024 1536 2048})
rank=${RANK:-8}
targets=${TARGETS:-q_proj,v_proj}

for layers in 6 12; do
  cat > "$out/llama-512x$layers.json" <<EOF
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 512, "intermediate_size": 1408,
 "num_hidden_layers": $layers, "num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": 4000,
 "hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 8192,
 "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32"}
EOF
  for T in "${lengths[@]}"; do
    "$bin" bench --config configs/demo.json --random-config "$out/llama-512x$layers.json" \
      --variants perce+checkpointing --steps 1 --warmup 1 --json \
      --set lora.rank="$rank" --set "lora.target_modules=[\"${targets//,/\",\"}\"]" \
      --set train.batch_size=1 --set train.micro_batch_size=1 \
      --with-length "$T" --without-length $((T / 4)) --response-length $((T / 8)) \
      > "$out/L$layers-T$T.json" 2>/dev/null
  done
done

OUT="$out" LENGTHS="${lengths[*]}" RANK="$rank" TARGETS="$targets" PAPER_LENGTH="${PAPER_LENGTH:-5000}" python3 - <<'EOF'
import json, os
out, lengths = os.environ["OUT"], [int(t) for t in os.environ["LENGTHS"].split()]
rank, targets, T_paper = int(os.environ["RANK"]), os.environ["TARGETS"].split(","), int(os.environ["PAPER_LENGTH"])
C_m, I_m = 512, 1408
MiB, GiB = 2**20, 2**30

def solve(rows, ys):  # least squares by the normal equations, Gauss-Jordan with pivoting
    n = len(rows[0])
    A = [[sum(r[i] * r[j] for r in rows) for j in range(n)] + [sum(r[i] * y for r, y in zip(rows, ys))] for i in range(n)]
    for i in range(n):
        p = max(range(i, n), key=lambda k: abs(A[k][i]))
        A[i], A[p] = A[p], A[i]
        for k in range(n):
            if k != i:
                f = A[k][i] / A[i][i]
                A[k] = [x - f * y for x, y in zip(A[k], A[i])]
    return [A[i][n] / A[i][i] for i in range(n)]

rows, ys = [], []
print("measured (peak RSS, MiB; CPU, float32, PerCE + gradient checkpointing, LoRA r%d on %s):" % (rank, ",".join(targets)))
for L in (6, 12):
    for T in lengths:
        r = json.load(open("%s/L%d-T%d.json" % (out, L, T)))["results"][0]
        rows.append([1.0 if L == 6 else 0.0, 1.0 if L == 12 else 0.0, float(L * T), float(T), float(T * T)])
        ys.append(r["peak_rss_mib"] * MiB)
        print("  %2d layers, T = %5d: %8.1f MiB (model states %.1f MiB)" % (
            L, T, r["peak_rss_mib"], (r["weight_bytes"] + r["gradient_bytes"] + r["optimizer_state_bytes"]) / MiB))
a6, a12, per_layer, fixed, quad = solve(rows, ys)
worst = max(abs(sum(c * x for c, x in zip([a6, a12, per_layer, fixed, quad], row)) - y) for row, y in zip(rows, ys))
print("fit: peak = a_L + (%.0f L + %.0f) bytes x T + %.1f bytes x T^2 (a_6 = %.0f MiB, a_12 = %.0f MiB; worst residual %.1f MiB)" % (
    per_layer, fixed, quad, a6 / MiB, a12 / MiB, worst / MiB))
print("per token: %.0f bytes per layer (%.2f x hidden x 4 bytes) + %.0f bytes (%.2f x (hidden + intermediate) x 4 bytes)" % (
    per_layer, per_layer / (4 * C_m), fixed, fixed / (4 * (C_m + I_m))))

# The paper's models (config.json values) and LoRA on them; bf16 on the GPU.
models = {
    "Qwen3-4B": dict(N=4.02e9, L=36, C=2560, I=9728, H=32, KV=8, D=128),
    "Llama-3-8B": dict(N=8.03e9, L=32, C=4096, I=14336, H=32, KV=8, D=128),
    "Qwen3-14B": dict(N=14.77e9, L=40, C=5120, I=17408, H=40, KV=8, D=128),
}
io = {"q_proj": lambda m: (m["C"], m["H"] * m["D"]), "k_proj": lambda m: (m["C"], m["KV"] * m["D"]),
      "v_proj": lambda m: (m["C"], m["KV"] * m["D"]), "o_proj": lambda m: (m["H"] * m["D"], m["C"]),
      "gate_proj": lambda m: (m["C"], m["I"]), "up_proj": lambda m: (m["C"], m["I"]),
      "down_proj": lambda m: (m["I"], m["C"])}
loss_chunk = 256 * MiB    # objective.chunk_tokens 0: the chunked loss's temporaries stay within this
overhead = 2 * GiB        # CUDA context and allocator slack (assumed, not measured)
print("\ncomputed for bf16 weights on a GPU, per %d-token sequence with gradient checkpointing (GiB):" % T_paper)
print("| model | base weights (2 B/param) | LoRA r%d %s: params, states (16 B/param) | activations per sequence | total, micro-batch 1 | 24 GB | 80 GB | 141 GB |" % (rank, "+".join(targets)))
print("|---|---|---|---|---|---|---|---|")
for name, m in models.items():
    lora = m["L"] * sum(rank * sum(io[t](m)) for t in targets)
    weights = 2 * m["N"] + 16 * lora
    act = T_paper * (per_layer * m["L"] * m["C"] / C_m + fixed * (m["C"] + m["I"]) / (C_m + I_m)) / 2  # bf16: half of fp32
    fixed_cost = weights + loss_chunk + overhead
    cells = []
    for gb in (24, 80, 141):
        cap = gb * 1e9
        n = int((cap - fixed_cost) // act) if cap > fixed_cost else 0
        cells.append("no" if n < 1 else "yes, %d sequence%s" % (n, "" if n == 1 else "s"))
    print("| %s | %.1f | %.2f M, %.0f MiB | %.2f | %.1f | %s |" % (
        name, 2 * m["N"] / GiB, lora / 1e6, 16 * lora / MiB, act / GiB, (fixed_cost + act) / GiB, " | ".join(cells)))
EOF
