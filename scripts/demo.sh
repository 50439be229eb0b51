#!/usr/bin/env bash
# The embedded default: PerCE fine-tuning of a tiny Llama-shaped model (created on first use from
# the shipped demo tokenizer) on the shipped demo personalisation data, on the CPU.
# Everything it writes goes under build/demo/ (the final model is build/demo/run/final); each run
# starts over (--overwrite removes only what the previous demo run wrote).
set -euo pipefail
cd "$(dirname "$0")/.."
build/percetrain train --config configs/demo.json --overwrite "$@"
