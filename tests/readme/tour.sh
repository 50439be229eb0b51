#!/usr/bin/env bash
# The README's 5-minute tour as a new user pastes it: every ```sh block of the section "A 5-minute
# tour", in order, after step 1 (bash scripts/demo.sh), in a scratch copy of the repository whose
# build/percetrain is the binary under test. Then the score summary the tour shows must be what the
# README prints (the AUROC line, to the last digit). Run by CTest (ReadmeTour) for build/, the
# README's own build (LibTorch 1.13): another LibTorch trains the demo to slightly other weights.
#   bash tests/readme/tour.sh BUILD_DIR
set -euo pipefail
source_dir="$(cd "$(dirname "$0")/../.." && pwd)"
build_dir="$(cd "${1:?usage: tour.sh BUILD_DIR}" && pwd)"
if [[ "$build_dir" != "$source_dir/build" ]]; then
  echo "skipped: the README's tour runs build/ (LibTorch 1.13); this is $build_dir" >&2
  exit 77
fi
readme="$source_dir/README.md"
work="$(mktemp -d "${TMPDIR:-/tmp}/readme-tour-XXXXXX")"
trap 'rm -rf "$work"' EXIT
cp -r "$source_dir/configs" "$source_dir/data" "$source_dir/scripts" "$work/"
mkdir -p "$work/build"
ln -s "$build_dir/percetrain" "$work/build/percetrain"

# The tour's shell blocks, in order (one command may continue over lines with a backslash).
tour="$(awk '/^## A 5-minute tour/{on=1; next} /^## /{on=0} on' "$readme")"
blocks="$(printf '%s\n' "$tour" | awk '/^```sh$/{inside=1; next} /^```$/{inside=0; next} inside')"
[[ -n "$blocks" ]] || { echo "README.md: no sh blocks in 'A 5-minute tour'" >&2; exit 1; }
# What the tour says score prints: the AUROC line of the first plain ``` block.
expected="$(printf '%s\n' "$tour" | awk '/^```/{if (mode == "") mode = ($0 == "```" ? "plain" : "code"); else mode = ""; next}
                                          mode == "plain"' | grep 'AUROC')"
[[ -n "$expected" ]] || { echo "README.md: the tour shows no AUROC line" >&2; exit 1; }

cd "$work"
echo "== bash scripts/demo.sh --quiet (step 1)"
bash scripts/demo.sh --quiet >/dev/null
printf '%s\n' "$blocks" > tour-commands.sh
echo "== the tour's commands:"
cat tour-commands.sh
bash -euo pipefail tour-commands.sh > tour-output.txt 2>&1 || { cat tour-output.txt; echo "a tour command failed" >&2; exit 1; }
got="$(grep 'AUROC' tour-output.txt || true)"
if [[ "$got" != "$expected" ]]; then
  echo "the tour's score printed:" >&2
  echo "  $got" >&2
  echo "README.md shows:" >&2
  echo "  $expected" >&2
  exit 1
fi
for f in build/demo/report.html build/demo/predictions.jsonl build/demo/run/report.html; do
  [[ -s "$f" ]] || { echo "the tour did not write $f" >&2; exit 1; }
done
echo "README tour: every command ran; score printed the README's line: $got"
