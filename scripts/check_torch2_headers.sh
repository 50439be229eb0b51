#!/usr/bin/env bash
# Compiles (syntax only) every LibTorch source against Debian 13's LibTorch 2.6 headers, the
# closest this Debian 12 machine gets to the 2.x build GPU users run: it checks the code behind
# `TORCH_VERSION_MAJOR >= 2` and the 2.x API, not CUDA (PERCETRAIN_WITH_CUDA needs the CUDA
# toolkit's headers) and not linking (trixie's libtorch needs glibc 2.38 and libstdc++ 14).
# Downloads one .deb (libtorch-dev, ~2.4 MB) from deb.debian.org into WORK_DIR (default
# build/torch2-headers) and unpacks it there; installs nothing.
# Usage: scripts/check_torch2_headers.sh [JOBS]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK_DIR="${WORK_DIR:-$ROOT/build/torch2-headers}"
JOBS="${1:-2}"
MIRROR=http://deb.debian.org/debian
mkdir -p "$WORK_DIR"
cd "$WORK_DIR"
if [[ ! -d root/usr/include/torch ]]; then
  deb=$(curl -fsS --max-time 120 "$MIRROR/dists/trixie/main/binary-amd64/Packages.xz" | xz -d |
        awk '/^Package: libtorch-dev$/{p=1} p&&/^Filename:/{print $2; exit}')
  [[ -n "$deb" ]] || { echo "check_torch2_headers: libtorch-dev not found in trixie's index" >&2; exit 1; }
  curl -fsS --max-time 300 -o libtorch-dev.deb "$MIRROR/$deb"
  dpkg -x libtorch-dev.deb root
fi
inc="$WORK_DIR/root/usr/include"
grep -h "define TORCH_VERSION_M" "$inc/torch/csrc/api/include/torch/version.h"
cd "$ROOT"
export inc
find src -name '*.cpp' ! -path 'src/tokenizer/spm_module/*' | sort |
  xargs -P "$JOBS" -I{} sh -c 'g++ -std=c++17 -fsyntax-only -DPERCETRAIN_VERSION="\"check\"" \
      -DPERCETRAIN_SOURCE_DIR="\".\"" -DPERCETRAIN_SPM_MODULE="\"none\"" -Iinclude -Isrc \
      -isystem "$inc" -isystem "$inc/torch/csrc/api/include" {} 2>&1 | grep -E "error" | head -5 |
      sed "s|^|{}: |"; true' | tee "$WORK_DIR/errors.txt"
if [[ -s "$WORK_DIR/errors.txt" ]]; then echo "check_torch2_headers: errors above" >&2; exit 1; fi
echo "check_torch2_headers: every source compiles against LibTorch 2.x headers"
