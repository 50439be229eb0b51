#!/usr/bin/env bash
# The embedded default: a tiny model made from the shipped demo tokenizer, scored on demo text.
# Everything it writes goes under build/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/percetrain
"$bin" init-model --arch llama --preset tiny --tokenizer data/tokenizer --out build/demo/tiny-llama --seed 0
"$bin" logprobs --model build/demo/tiny-llama \
  --text "I always reach for my trusty French press; bold, smoky and worth every penny."
