#!/usr/bin/env bash
# Configures and builds percetrain (binary, SentencePiece module, tests) into build/.
#   BUILD_DIR=... to build elsewhere; extra arguments go to the CMake configure step, e.g.
#   -DCMAKE_PREFIX_PATH=/opt/libtorch for LibTorch 2.x.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${BUILD_DIR:-build}"
generator=()
if command -v ninja >/dev/null && [[ ! -f "$build_dir/CMakeCache.txt" || -f "$build_dir/build.ninja" ]]; then
  generator=(-G Ninja)
fi
cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
