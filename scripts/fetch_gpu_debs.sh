#!/usr/bin/env bash
# Fetches, here, the few Debian packages that building percetrain needs beyond what the GPU
# machines have (they hold PyTorch 2.x, transformers, CMake, ninja and nvcc, but reach no package
# registry): headers and libraries of SentencePiece, JSON, CLI11, GoogleTest, Gloo, PCRE2,
# utf8proc, OpenSSL, and pkg-config. Into .cache/gpu-debs/ (git-ignored), 20 files, 8 MB; they travel
# with the working tree (carry .cache/gpu-debs) and scripts/gpu_check.sh unpacks them into a
# folder of their own there, never into /. Uses this machine's configured apt sources.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.cache/gpu-debs
packages=(
  libsentencepiece-dev libsentencepiece0 nlohmann-json3-dev libcli11-dev libgtest-dev googletest
  libgloo-dev libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3
  libutf8proc-dev libutf8proc2 libssl-dev libssl3 pkg-config pkgconf pkgconf-bin libpkgconf3
)
mkdir -p "$out"
cd "$out"
rm -f ./*.deb
# A machine whose package lists were never fetched knows no package: fetch them once, then retry.
apt-get -o APT::Sandbox::User=root download "${packages[@]}" >/dev/null 2>&1 ||
  { apt-get update -qq && apt-get -o APT::Sandbox::User=root download "${packages[@]}" >/dev/null; }
echo "fetch_gpu_debs: $(ls ./*.deb | wc -l) packages, $(du -sm . | cut -f1) MB in $out"
