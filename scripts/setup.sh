#!/usr/bin/env bash
# Installs every Debian 12 package that percetrain's build and tests need. Idempotent: it only
# calls apt (or pip) when something is missing, and is quiet when everything is there.
#   bash scripts/setup.sh         Debian's LibTorch 1.13 build, the demo and its tests
#   bash scripts/setup.sh --venv  also the pinned Python environment .venv (requirements.txt):
#                                 LibTorch 2.x for `scripts/build.sh --cuda`, and transformers,
#                                 peft, tokenizers, ... for the reference tests (tests/reference/)
# The CUDA build also needs the CUDA 13 toolkit (nvcc, cuBLAS, cuDNN, NCCL), which the project's
# machines have installed; this script does not install it.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libtorch-dev                 # LibTorch 1.13 (CPU)
  libgloo-dev                  # headers of Gloo, which c10d's ProcessGroupGloo includes (the library is in LibTorch)
  python3-torch                # torchrun, which the distributed tests start their ranks with
  libopenblas0-pthread         # fp32 matmul ~30x faster than the reference BLAS LibTorch gets otherwise
  libsentencepiece-dev sentencepiece
  nlohmann-json3-dev libcli11-dev libspdlog-dev libgtest-dev
  libpcre2-dev libutf8proc-dev
  libssl-dev                   # SHA-256 checksums of checkpoint files (libcrypto)
  wordnet-base                 # WordNet 3.0 database for METEOR's synonym stage (read at run time)
  clang libclang-rt-dev        # clang++ and libFuzzer with ASan/UBSan for the fuzz targets (scripts/fuzz.sh)
  python3 python3-venv         # the .venv of --venv
)
venv=0
case "${1:-}" in
  "") ;;
  --venv) venv=1 ;;
  *) echo "setup: unknown option '$1' (use --venv, or nothing)" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "setup: done"
fi

if ((venv)); then
  root="$(cd "$(dirname "$0")/.." && pwd)"
  stamp="$root/.venv/requirements.txt"  # what the environment was last made from
  if ! cmp -s "$root/requirements.txt" "$stamp" 2>/dev/null; then
    echo "setup: installing the Python environment $root/.venv from requirements.txt (~800 MB download, ~1.9 GB installed)"
    start=$SECONDS
    [[ -x "$root/.venv/bin/python" ]] || python3 -m venv "$root/.venv"
    # --no-deps: requirements.txt lists every package pinned, dependencies included (see its header).
    "$root/.venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
      -r "$root/requirements.txt"
    cp "$root/requirements.txt" "$stamp"
    echo "setup: Python environment done in $((SECONDS - start)) s ($(du -sm "$root/.venv" | cut -f1) MB)"
  fi
fi
