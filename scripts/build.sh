#!/usr/bin/env bash
# Configures and builds percetrain (binary, SentencePiece module, tests).
#   bash scripts/build.sh          into build/, against Debian's LibTorch 1.13 (CPU)
#   bash scripts/build.sh --cuda   into build-cuda/, against LibTorch 2.x from the torch wheel in
#                                  .venv (bash scripts/setup.sh --venv) with the machine's CUDA
#                                  toolkit: links libtorch_cuda and NCCL, and runs on machines
#                                  without a GPU too
# BUILD_DIR=... builds elsewhere; other arguments go to the CMake configure step, e.g.
# -DCMAKE_PREFIX_PATH=/opt/libtorch for a LibTorch archive, or -DTORCH_CUDA_ARCH_LIST="8.0;9.0".
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
build_dir="${BUILD_DIR:-build}"
extra=()
if [[ "${1:-}" == "--cuda" ]]; then
  shift
  build_dir="${BUILD_DIR:-build-cuda}"
  python="$root/.venv/bin/python"
  [[ -x "$python" ]] || { echo "build: $python is absent; run bash scripts/setup.sh --venv first" >&2; exit 1; }
  nvcc="${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
  [[ -x "$nvcc" ]] || { echo "build: nvcc not found (the CUDA 13 toolkit); put it on PATH or set CUDACXX" >&2; exit 1; }
  # The wheel's folder itself, not its share/cmake: CMake then finds the wheel's libtorch.so in
  # <prefix>/lib before Debian's /usr/lib one (with share/cmake it silently linked Debian's 1.13).
  torch_dir="$("$python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')"
  # Compute capabilities compiled for (Ampere, Hopper, Blackwell). Nothing is detected: there may be no GPU.
  extra=(-DCMAKE_PREFIX_PATH="$torch_dir" -DCMAKE_CUDA_COMPILER="$nvcc" -DTORCH_CUDA_ARCH_LIST="8.0;9.0;10.0"
         -DPERCETRAIN_TEST_PYTHON="$python")
fi
generator=()
if command -v ninja >/dev/null && [[ ! -f "$build_dir/CMakeCache.txt" || -f "$build_dir/build.ninja" ]]; then
  generator=(-G Ninja)
fi
cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "${extra[@]}" "$@" >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
