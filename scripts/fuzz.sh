#!/usr/bin/env bash
# Builds and runs the libFuzzer targets of fuzz/, one per parser of user files (docs/fuzzing.md).
#   bash scripts/fuzz.sh build [DIR]               configure DIR (default build-fuzz) with clang++ and
#                                                  build every target with ASan and UBSan
#   bash scripts/fuzz.sh run NAME [SECONDS] [DIR]  fuzz one target for SECONDS (default 60), seeded
#                                                  from fuzz/corpus/NAME and fuzz/regressions/NAME
#   bash scripts/fuzz.sh list                      the targets' names
# `run` writes nothing under fuzz/: the inputs it finds go to DIR/corpus/NAME (kept between runs),
# its log to DIR/logs/NAME.log, and a crash, leak, sanitizer report or hang to DIR/findings/NAME-*;
# it exits non-zero on a finding. Exit 77 (CTest: skipped) when clang++ or libFuzzer is absent.
# `ctest --test-dir build` runs `build` and `run NAME 30` for each target (Fuzz.*).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

targets() { for f in fuzz/*.cpp; do basename "$f" .cpp; done; }

check_clang() {
  local cxx="${FUZZ_CXX:-clang++}"
  if ! command -v "$cxx" >/dev/null; then
    echo "fuzz: $cxx not found; bash scripts/setup.sh installs clang and libclang-rt-dev" >&2
    exit 77
  fi
  local runtime
  runtime="$("$cxx" -print-resource-dir)/lib/linux/libclang_rt.fuzzer-$(uname -m).a"
  if [[ ! -f "$runtime" ]]; then
    echo "fuzz: libFuzzer's runtime $runtime is absent; bash scripts/setup.sh installs libclang-rt-dev" >&2
    exit 77
  fi
}

case "${1:-}" in
  list)
    targets
    ;;
  build)
    check_clang
    dir="${2:-build-fuzz}"
    generator=()
    if command -v ninja >/dev/null && [[ ! -f "$dir/CMakeCache.txt" || -f "$dir/build.ninja" ]]; then
      generator=(-G Ninja)
    fi
    cmake -S fuzz -B "$dir" "${generator[@]}" -DCMAKE_CXX_COMPILER="${FUZZ_CXX:-clang++}" >/dev/null
    cmake --build "$dir" -j "${FUZZ_JOBS:-2}"
    ;;
  run)
    check_clang
    name="${2:?fuzz: run needs a target name (bash scripts/fuzz.sh list)}"
    seconds="${3:-60}"
    dir="$(cd "${4:-build-fuzz}" && pwd)"
    binary="$dir/fuzz_$name"
    [[ -x "$binary" ]] || { echo "fuzz: $binary is absent; run bash scripts/fuzz.sh build first" >&2; exit 1; }
    seeds=("$root/fuzz/corpus/$name")
    [[ -d "$root/fuzz/regressions/$name" ]] && seeds+=("$root/fuzz/regressions/$name")
    mkdir -p "$dir/corpus/$name" "$dir/findings" "$dir/logs"
    log="$dir/logs/$name.log"
    # The first folder receives what the run finds; the committed seeds are only read.
    # -timeout: one input running 10 s is a hang; -rss_limit_mb: one using 2 GB is a finding.
    status=0
    "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -dict="$root/fuzz/json.dict" -artifact_prefix="$dir/findings/$name-" \
      "$dir/corpus/$name" "${seeds[@]}" >"$log" 2>&1 || status=$?
    if ((status != 0)); then
      tail -n 60 "$log"
      echo "fuzz: $name found a problem (exit $status); the input is in $dir/findings/ (log: $log)" >&2
      exit 1
    fi
    # One line: executions, speed, edges covered and corpus size at the end.
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
    speed="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")"
    cov="$(grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9]*/[^ ]*' "$log" | tail -n 1)"
    echo "fuzz: $name ran $seconds s, $runs inputs ($speed/s), $cov, no finding"
    ;;
  *)
    echo "usage: bash scripts/fuzz.sh build [DIR] | run NAME [SECONDS] [DIR] | list" >&2
    exit 2
    ;;
esac
