#!/usr/bin/env bash
# The GPU check, one script for a GPU machine that has PyTorch 2.x, transformers, CMake, ninja and
# nvcc but no package registry (docs/gpu.md). Here, first: bash scripts/fetch_gpu_debs.sh (the
# Debian packages the build needs, carried as .cache/gpu-debs). There, in the repository root:
#   bash scripts/gpu_check.sh            (PYTHON=... picks the Python that holds torch; OUT=DIR keeps the log)
# Steps, each printed with its time: unpack the packages into .cache/gpu-root (never into /);
# build percetrain against that Python's torch into build-gpu/; --version; the CUDA tests (they
# skip with one line where no GPU is visible) and the decoder tests; log-probs on CUDA in fp32 and
# bf16 against transformers on the same random model; a 2-rank NCCL equivalence check where there
# are 2 GPUs; a bench table (ms/step, tokens/s, MFU against the measured bf16 matmul peak) of a
# ~1B-parameter Llama shape with and without activation checkpointing. Without a GPU it runs the
# same steps on the CPU (small shapes), which is how it is tested on the project's machines.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
python="${PYTHON:-python3}"
log="${OUT:-$root/build-gpu}/gpu_check.log"
mkdir -p "$(dirname "$log")"
exec > >(tee "$log") 2>&1
t0=$SECONDS
step() { echo; echo "=== [$((SECONDS - t0)) s] $*"; }

step "unpacking the carried Debian packages"
sysroot="$root/.cache/gpu-root"
if compgen -G ".cache/gpu-debs/*.deb" >/dev/null; then
  mkdir -p "$sysroot"
  for deb in .cache/gpu-debs/*.deb; do dpkg-deb -x "$deb" "$sysroot"; done
  libdir="$sysroot/usr/lib/x86_64-linux-gnu"
  # pkgconf alone gets the unpacked libraries on its library path (it needs libpkgconf); the
  # binaries built here find them through their rpath (LDFLAGS), and nothing else is touched.
  printf '#!/bin/sh\nLD_LIBRARY_PATH="%s" exec "%s" "$@"\n' "$libdir" "$sysroot/usr/bin/pkgconf" >"$sysroot/pkg-config"
  chmod +x "$sysroot/pkg-config"
  export PKG_CONFIG="$sysroot/pkg-config" PKG_CONFIG_SYSROOT_DIR="$sysroot"
  export PKG_CONFIG_LIBDIR="$libdir/pkgconfig:$sysroot/usr/share/pkgconfig"
  export CXXFLAGS="-isystem $sysroot/usr/include ${CXXFLAGS:-}"
  export LDFLAGS="-L$libdir -Wl,-rpath,$libdir ${LDFLAGS:-}"
  prefix_extra=";$sysroot/usr"
  echo "$(ls .cache/gpu-debs/*.deb | wc -l) packages into $sysroot"
else
  prefix_extra=""
  echo "no .cache/gpu-debs (bash scripts/fetch_gpu_debs.sh where a registry is reachable): using the system's packages"
fi

step "building percetrain against $python's torch"
mkdir -p build-gpu
torch_dir="$("$python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')"
arch="$("$python" -c 'import torch; c = torch.cuda.get_device_capability() if torch.cuda.is_available() else (9, 0); print(f"{c[0]}.{c[1]}")')"
gpus="$("$python" -c 'import torch; print(torch.cuda.device_count())')"
echo "torch $("$python" -c 'import torch; print(torch.__version__)') at $torch_dir; $gpus GPU(s); compute capability $arch"
# The carried Debian libraries (GoogleTest, SentencePiece) use the C++11 string ABI.
if [[ "$("$python" -c 'import torch; print(torch.compiled_with_cxx11_abi())')" != True ]]; then
  echo "gpu_check: this torch uses the pre-C++11 string ABI; the carried Debian libraries need the C++11 one"; exit 1
fi
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$torch_dir$prefix_extra" \
  -DTORCH_CUDA_ARCH_LIST="$arch" -DPERCETRAIN_TEST_PYTHON="$("$python" -c 'import sys; print(sys.executable)')" >build-gpu/configure.log 2>&1 ||
  { tail -30 build-gpu/configure.log; exit 1; }
cmake --build build-gpu -j "$(nproc)" >build-gpu/build.log 2>&1 ||
  { grep -E "error|FAILED" build-gpu/build.log | head -40; echo "gpu_check: the build failed (build-gpu/build.log)"; exit 1; }
build-gpu/percetrain --version
ldd build-gpu/percetrain | grep -E "libtorch_cuda|libnccl|libc10_cuda" || echo "gpu_check: warning: libtorch_cuda is not linked"

step "CUDA and decoder tests"
# Exit status 77 means some tests skipped (no GPU), which is not a failure here.
status=0
build-gpu/percetrain_tests --gtest_filter='Architectures/CudaTest.*:Cuda.*:Architectures/ArchTest.*:Architectures/GoldenModelTest.*' \
  >build-gpu/cuda_tests.log 2>&1 || status=$?
{ grep -E "CUDA vs CPU|bf16 CUDA|no CUDA device|^\[  (PASSED|FAILED)  \]|^\[  SKIPPED \] [0-9]+ test" \
    build-gpu/cuda_tests.log || true; } | sort -u
if ((status != 0 && status != 77)); then tail -20 build-gpu/cuda_tests.log; echo "gpu_check: tests failed (build-gpu/cuda_tests.log)"; exit 1; fi

step "log-probs against transformers"
export HF_HUB_DISABLE_PROGRESS_BARS=1 TRANSFORMERS_VERBOSITY=error
device=cpu
if ((gpus > 0)); then device=cuda; fi
for dtype in float32 bfloat16; do
  PERCETRAIN_BINARY=build-gpu/percetrain "$python" tests/reference/compare_logprobs.py --device "$device" --dtype "$dtype"
done

step "2-rank NCCL equivalence"
if ((gpus >= 2)); then
  PERCETRAIN_BINARY=build-gpu/percetrain TORCHRUN="$python -m torch.distributed.run" bash scripts/nccl_check.sh
else
  echo "skipped: $gpus GPU(s) visible, 2 needed"
fi

step "bench"
if ((gpus > 0)); then
  shape=configs/shapes/llama-1b-config.json
  settings=(--set model.device=cuda --set model.dtype=bfloat16 --set train.batch_size=4 --set train.micro_batch_size=4
            --with-length 2048 --without-length 512 --response-length 256 --steps 5 --warmup 2)
else  # the CPU part: the same command on the medium shape, fp32
  shape=configs/shapes/llama-medium-config.json
  settings=(--set train.batch_size=1 --set train.micro_batch_size=1 --with-length 128 --without-length 64
            --response-length 32 --steps 2 --warmup 1)
fi
build-gpu/percetrain bench --config configs/demo.json --random-config "$shape" \
  --variants ce,perce,perce+checkpointing "${settings[@]}"
step "done: log in $log"
