#!/usr/bin/env bash
# Renders a `percetrain score --html` report to a PNG with headless Chromium (for the screenshot in
# docs/scoring.md). Needs Debian's `chromium` package, which setup.sh does not install:
#   apt-get install -y chromium
# Usage: scripts/render_report.sh REPORT.html OUT.png [WIDTH HEIGHT]
set -euo pipefail
if (($# < 2)); then
  echo "usage: $0 REPORT.html OUT.png [WIDTH HEIGHT]" >&2
  exit 2
fi
report="$(realpath "$1")"
out="$(realpath -m "$2")"
width="${3:-1280}"
height="${4:-1100}"
browser="$(command -v chromium || command -v chromium-browser || true)"
if [[ -z "$browser" ]]; then
  echo "render_report: chromium is not installed (apt-get install -y chromium)" >&2
  exit 1
fi
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
# The report loads nothing from the network; these flags keep Chromium itself offline and quiet.
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --hide-scrollbars --user-data-dir="$profile" --window-size="${width},${height}" \
  --screenshot="$out" "file://$report" >/dev/null 2>&1
[[ -s "$out" ]] || { echo "render_report: no screenshot was written" >&2; exit 1; }
echo "$out"
